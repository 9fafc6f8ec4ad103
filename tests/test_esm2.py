"""Our packed ESM-2 against fair-esm's own ESM2 run as the original ran it, on the same random
weights read from one fair-esm checkpoint file. FP32 on the CPU: per-sequence cosine >= 0.99999."""

import argparse

import esm
import numpy as np
import pytest
import torch

from virnucpro.embed import ProteinEncoder
from virnucpro.engine import embed_all
from virnucpro.models import esm2
from virnucpro.packing import PackedBatch
from virnucpro.random_checkpoints import write_esm2

from reference import fair_esm

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
LENGTHS = [1, 2, 3, 9, 30, 166, 167, 511, 1022, 1023, 1024, 1100]
SHAPES = [(1, 32, 2), (3, 96, 6), (2, 320, 20), (2, 160, 4)]  # layers, width, heads


def proteins(seed):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list(AMINO_ACIDS), size=n)) for n in LENGTHS]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "L{}-D{}-H{}".format(*s))
def test_packed_esm2_matches_fair_esm(tmp_path, shape, record_property):
    path = write_esm2(tmp_path / "esm2_test.pt", *shape, seed=sum(shape))
    sequences = proteins(seed=shape[1])
    expected = fair_esm.embed(*fair_esm.load(path), sequences)
    encoder = ProteinEncoder.load(path, torch.device("cpu"), torch.float32)
    vectors, _ = embed_all(encoder, ProteinEncoder.tokenize(path, sequences), "cpu", 3000)
    ours = torch.from_numpy(vectors)
    cosine = torch.nn.functional.cosine_similarity(ours, expected, dim=1)
    max_abs = (ours - expected).abs().max().item()
    record_property("max_abs_diff", max_abs)
    print(f"ESM-2 {shape}: min cosine {cosine.min().item():.8f}, max |diff| {max_abs:.2e}")
    assert cosine.min().item() >= 0.99999, dict(zip(LENGTHS, cosine.tolist(), strict=True))


def test_tokens_match_fair_esm_batch_converter():
    _, _, expected = esm2.ALPHABET.get_batch_converter(truncation_seq_length=1024)(
        [(str(i), s) for i, s in enumerate(proteins(seed=1))]
    )
    for row, sequence in enumerate(proteins(seed=1)):
        tokens = esm2.tokenize(sequence)
        assert len(tokens) == min(len(sequence), 1024) + 2
        assert (torch.from_numpy(tokens) == expected[row, : len(tokens)]).all()


def test_masked_tokens_are_rescaled_per_sequence_like_fair_esm(esm2_tiny):
    """With <mask> tokens the token-dropout rescale is 0.88 / (1 - masked fraction)."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        reference, _ = esm.pretrained.load_model_and_alphabet_local(str(esm2_tiny))
    reference.eval()
    ours, _ = esm2.load_model(esm2_tiny)
    tokens = esm2.tokenize("MKTAYIAKQRQISFVKSHFSRQ").copy()
    tokens[[3, 7, 8]] = esm2.ALPHABET.mask_idx
    with torch.no_grad():
        expected = reference(torch.from_numpy(tokens)[None], repr_layers=[3])["representations"][3][
            0
        ]
        got = ours(PackedBatch.from_token_lists([tokens]))
    assert torch.nn.functional.cosine_similarity(got, expected, dim=1).min() >= 0.99999


def test_converted_safetensors_gives_the_same_model(esm2_tiny, tmp_path):
    converted = tmp_path / "esm2.safetensors"
    esm2.convert_checkpoint(esm2_tiny, converted)
    (a, info_a), (b, info_b) = esm2.load_model(esm2_tiny), esm2.load_model(converted)
    assert info_a == info_b == {"name": "esm2_t3_tiny", "random_weights": True}
    batch = PackedBatch.from_token_lists([esm2.tokenize(p) for p in proteins(seed=3)[:6]])
    with torch.no_grad():
        assert torch.equal(a(batch), b(batch))


def test_a_checkpoint_of_another_shape_is_refused_with_its_name(esm2_tiny, tmp_path):
    converted = tmp_path / "esm2.safetensors"
    esm2.convert_checkpoint(esm2_tiny, converted)
    broken = tmp_path / "not_esm2.pt"
    torch.save({"model": {"x": torch.zeros(1)}}, broken)
    with pytest.raises(ValueError, match="not a fair-esm ESM-2 checkpoint"):
        esm2.load_model(broken)
