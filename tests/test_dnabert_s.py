"""Our packed DNABERT-S against a plain padded implementation of SPEC §3, one sequence at a
time as the original ran it, with the real tokenizer and random weights: cosine >= 0.99999."""

import json
import shutil

import numpy as np
import pytest
import torch

from virnucpro.demo.random_checkpoints import write_dnabert_s
from virnucpro.models import dnabert_s
from virnucpro.models.architectures import DNABertConfig
from virnucpro.models.checkpoints import dnabert_s_weights_file, load_dnabert_s
from virnucpro.models.encoders import NucleotideEncoder
from virnucpro.runtime.engine import embed_all

from conftest import REAL_DNABERT_S
from reference import dnabert as reference


def frames(seed, n=12):
    """Frame-like nucleotide strings: 3P+1 bases of 1 to 501, some with IUPAC letters."""
    rng = np.random.default_rng(seed)
    out = []
    for length in [1, 4, 10, 101, 301, 499, 501] + list(rng.integers(20, 502, n - 7)):
        text = "".join(rng.choice(list("ACGT"), size=length))
        out.append(text)
    out.append("ACGTNNNACGTRYACGT" * 5)
    return out


def check_against_reference(directory, sequences, heads):
    encoder = NucleotideEncoder.load(directory, torch.device("cpu"), torch.float32)
    tokens = NucleotideEncoder.tokenize(directory, sequences)
    ours = torch.from_numpy(embed_all(encoder, tokens, "cpu", 1500)[0])
    state = torch.load(dnabert_s_weights_file(directory), weights_only=True)
    expected = torch.stack([reference.embed_one(state, t, heads) for t in tokens])
    cosine = torch.nn.functional.cosine_similarity(ours, expected, dim=1)
    max_abs = (ours - expected).abs().max().item()
    print(f"DNABERT-S {directory.name}: min cosine {cosine.min():.8f}, max |diff| {max_abs:.2e}")
    assert cosine.min().item() >= 0.99999


def test_packed_dnabert_s_matches_the_plain_reference(dnabert_tiny):
    check_against_reference(dnabert_tiny, frames(seed=1), heads=12)


@pytest.mark.slow
def test_full_size_real_config(tmp_path):
    """The real config.json (768 wide, 12 layers) and tokenizer, random weights."""
    cfg = DNABertConfig.from_json(REAL_DNABERT_S / "config.json")
    assert cfg == DNABertConfig()
    directory = write_dnabert_s(
        tmp_path / "DNABERT-S", cfg, REAL_DNABERT_S / "tokenizer.json", seed=5
    )
    check_against_reference(directory, frames(seed=2, n=8)[:4], heads=12)


@pytest.mark.parametrize(
    ("weights", "prefix"), [("pytorch_model.bin", ""), ("model.safetensors", "bert.")]
)
def test_weight_formats_and_prefixes_load_the_same_model(tmp_path, dnabert_tiny, weights, prefix):
    cfg = DNABertConfig.from_json(dnabert_tiny / "config.json")
    other = write_dnabert_s(
        tmp_path / "other",
        cfg,
        dnabert_tiny / "tokenizer.json",
        seed=12,
        weights=weights,
        prefix=prefix,
    )
    a, _ = load_dnabert_s(dnabert_tiny)
    b, _ = load_dnabert_s(other)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name


def test_real_tokenizer_padding_and_truncation_are_off():
    tokenizer = dnabert_s.load_tokenizer(REAL_DNABERT_S)
    saved = json.loads((REAL_DNABERT_S / "tokenizer.json").read_text())
    assert saved["padding"] and saved["truncation"]["max_length"] == 2000  # the file enables both
    short, long = dnabert_s.tokenize_all(tokenizer, ["ACGTACGTAC", "ACGTTGCA" * 2500])
    assert short[0] == 1 and short[-1] == 2 and len(short) < 10
    assert len(long) > 2000 and 3 not in long  # untruncated, unpadded


def test_unknown_weights_are_refused(tmp_path, dnabert_tiny):
    broken = tmp_path / "broken"
    shutil.copytree(dnabert_tiny, broken)
    state = torch.load(broken / "pytorch_model.bin", weights_only=True)
    state["encoder.layer.0.attention.self.rotary.weight"] = torch.zeros(1)
    torch.save(state, broken / "pytorch_model.bin")
    with pytest.raises(ValueError, match="not part of DNABERT-S"):
        load_dnabert_s(broken)
