"""Our packed ESM-2 against fair-esm's own ESM2 run as the original ran it, on the same random
weights read from one fair-esm checkpoint file (fp16 tensors, rotary frequencies included, as
the published files store them). FP32 on the CPU: per-sequence cosine >= 0.99999."""

import argparse
import shutil

import esm
import numpy as np
import pytest
import torch

from virnucpro.demo.random_checkpoints import write_esm2
from virnucpro.models import esm2
from virnucpro.models.checkpoints import load_esm2
from virnucpro.models.encoders import ProteinEncoder
from virnucpro.models.packing import PackedBatch
from virnucpro.planning.sizing import esm2_tokens
from virnucpro.runtime.engine import embed_all

from reference import fair_esm

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
# Past 1024 residues the original attends over the whole protein and averages residues 1..1024;
# 2100 is past fair-esm's 2048-token batches, so the reference computes it in a batch of its own
LENGTHS = [1, 2, 3, 9, 30, 166, 167, 511, 1022, 1023, 1024, 1025, 1100, 1500, 2100]
# layers, width, heads; (1, 1280, 20): one layer of ESM-2 650M's width and heads
SHAPES = [(1, 32, 2), (3, 96, 6), (2, 320, 20), (2, 160, 4), (1, 1280, 20)]


def proteins(seed):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list(AMINO_ACIDS), size=n)) for n in LENGTHS]


def embed_like_fair_esm(path, sequences):
    """(ours, fair-esm's) [N, D] embeddings of `sequences` with the checkpoint at `path`."""
    expected = fair_esm.embed(*fair_esm.load(path), sequences)
    encoder = ProteinEncoder.load(path, torch.device("cpu"), torch.float32)
    vectors, _ = embed_all(encoder, ProteinEncoder.tokenize(path, sequences), "cpu", 3000)
    return torch.from_numpy(vectors), expected


def rewrite_rotary(source, target, change):
    """A copy of a fair-esm checkpoint (and its contact-regression file) with
    `change(name, tensor)` applied to each layer's rotary frequencies (None removes them)."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        data = torch.load(source, weights_only=True)
    for name in [k for k in data["model"] if k.endswith("rot_emb.inv_freq")]:
        value = change(name, data["model"].pop(name))
        if value is not None:
            data["model"][name] = value
    torch.save(data, target)
    regression = "{}-contact-regression.pt"
    shutil.copy(
        source.with_name(regression.format(source.stem)),
        target.with_name(regression.format(target.stem)),
    )
    return target


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "L{}-D{}-H{}".format(*s))
@pytest.mark.slow
def test_packed_esm2_matches_fair_esm(tmp_path, shape, record_property):
    path = write_esm2(tmp_path / "esm2_test.pt", *shape, seed=sum(shape))
    ours, expected = embed_like_fair_esm(path, proteins(seed=shape[1]))
    cosine = torch.nn.functional.cosine_similarity(ours, expected, dim=1)
    max_abs = (ours - expected).abs().max().item()
    record_property("max_abs_diff", max_abs)
    print(f"ESM-2 {shape}: min cosine {cosine.min().item():.8f}, max |diff| {max_abs:.2e}")
    assert cosine.min().item() >= 0.99999, dict(zip(LENGTHS, cosine.tolist(), strict=True))


def test_rotary_frequencies_are_the_checkpoints_fp16_values(tmp_path):
    """Every hidden state of a 1024-residue protein (within the mean's window, so only the
    rotary angles can differ) against fair-esm's, the checkpoint's frequencies stored in fp16:
    rotating with fp32 values recomputed instead moves them by about 2e-3."""
    written = write_esm2(tmp_path / "esm2_written.pt", 2, 64, 4, seed=5)
    path = rewrite_rotary(written, tmp_path / "esm2_fp16.pt", lambda name, value: value.half())
    reference, _ = fair_esm.load(path)
    ours, _ = load_esm2(path)
    tokens = esm2.tokenize(proteins(seed=7)[LENGTHS.index(1024)])
    with torch.no_grad():
        expected = reference(torch.from_numpy(tokens)[None], repr_layers=[2])["representations"]
        got = ours(PackedBatch.from_token_lists([tokens]))
    torch.testing.assert_close(got, expected[2][0], rtol=0, atol=1e-5)


def test_the_checkpoint_writer_stores_rotary_frequencies_like_the_published_files(esm2_tiny):
    with torch.serialization.safe_globals([argparse.Namespace]):
        body = torch.load(esm2_tiny, weights_only=True)["model"]
    stored = [v for k, v in body.items() if k.endswith("rot_emb.inv_freq")]
    assert len(stored) == 3 and all(v.dtype == torch.float16 for v in stored)
    assert body["encoder.sentence_encoder.embed_tokens.weight"].dtype == torch.float16


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_casting_the_model_keeps_the_stored_rotary_frequencies(esm2_tiny, tmp_path, dtype):
    with torch.serialization.safe_globals([argparse.Namespace]):
        body = torch.load(esm2_tiny, weights_only=True)["model"]
    stored = body["encoder.sentence_encoder.layers.0.self_attn.rot_emb.inv_freq"]
    model, _ = load_esm2(esm2_tiny, dtype=dtype)
    assert next(model.parameters()).dtype == dtype
    assert model.rotary_inv_freq.dtype == torch.float16
    assert torch.equal(model.rotary_inv_freq, stored)
    assert torch.equal(model.float().rotary_inv_freq, stored)


def test_tokens_match_the_originals_batch_converter():
    """The original calls fair-esm's batch converter without truncation_seq_length."""
    _, _, expected = esm2.ALPHABET.get_batch_converter()(
        [(str(i), s) for i, s in enumerate(proteins(seed=1))]
    )
    for row, sequence in enumerate(proteins(seed=1)):
        tokens = esm2.tokenize(sequence)
        assert len(tokens) == len(sequence) + 2 == esm2_tokens([len(sequence)])[0]
        assert (torch.from_numpy(tokens) == expected[row, : len(tokens)]).all()


def test_masked_tokens_are_rescaled_per_sequence_like_fair_esm(esm2_tiny):
    """With <mask> tokens the token-dropout rescale is 0.88 / (1 - masked fraction)."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        reference, _ = esm.pretrained.load_model_and_alphabet_local(str(esm2_tiny))
    reference.eval()
    ours, _ = load_esm2(esm2_tiny)
    tokens = esm2.tokenize("MKTAYIAKQRQISFVKSHFSRQ").copy()
    tokens[[3, 7, 8]] = esm2.ALPHABET.mask_idx
    with torch.no_grad():
        expected = reference(torch.from_numpy(tokens)[None], repr_layers=[3])["representations"][3][
            0
        ]
        got = ours(PackedBatch.from_token_lists([tokens]))
    assert torch.nn.functional.cosine_similarity(got, expected, dim=1).min() >= 0.99999


def test_a_checkpoint_of_another_shape_is_refused_with_its_name(tmp_path):
    broken = tmp_path / "not_esm2.pt"
    torch.save({"model": {"x": torch.zeros(1)}}, broken)
    with pytest.raises(ValueError, match="not a fair-esm ESM-2 checkpoint"):
        load_esm2(broken)


def test_a_checkpoint_without_or_with_differing_rotary_frequencies_is_refused(esm2_tiny, tmp_path):
    missing = rewrite_rotary(esm2_tiny, tmp_path / "missing.pt", lambda name, value: None)
    with pytest.raises(ValueError, match=r"missing\.pt has no rotary frequencies .*published"):
        load_esm2(missing)
    differing = rewrite_rotary(
        esm2_tiny,
        tmp_path / "differing.pt",
        lambda name, value: value * 2 if ".layers.1." in name else value,
    )
    with pytest.raises(ValueError, match=r"differing\.pt: the layers' rotary frequencies"):
        load_esm2(differing)


def test_a_checkpoint_named_as_a_published_one_must_have_its_shape(tmp_path):
    path = write_esm2(tmp_path / "esm2_t6_8M_UR50D.pt", 2, 32, 2)
    with pytest.raises(ValueError, match=r"esm2_t6_8M_UR50D\.pt: it is named as the published"):
        load_esm2(path)
