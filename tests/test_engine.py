"""The batch engine's safety paths and the compiled layer code, on the CPU."""

import copy
import re

import numpy as np
import pytest
import torch
from torch._dynamo.eval_frame import _debug_get_cache_entry_list

from virnucpro.io.h5store import embedding_writer
from virnucpro.models import dnabert_s, esm2
from virnucpro.models.attention import PackedRows, PaddedRows, padded_length
from virnucpro.models.checkpoints import load_dnabert_s, load_esm2
from virnucpro.models.compile import compile_blocks, eager_in_this_thread
from virnucpro.models.encoders import NucleotideEncoder, ProteinEncoder
from virnucpro.models.packing import PackedBatch
from virnucpro.planning.sizing import esm2_tokens
from virnucpro.runtime import progress
from virnucpro.runtime.engine import Engine, consecutive_ranges, embed_all

PROTEINS = ["MKTAYIAKQRQISFVKSHFSRQ" * k for k in (1, 2, 3, 5, 7)] + ["M", "MK"]


def test_consecutive_ranges_respect_the_budget():
    assert consecutive_ranges([5, 5, 5, 20, 1], 0, 10) == [(0, 2), (2, 3), (3, 4), (4, 5)]
    assert consecutive_ranges([5, 5, 5], 1, 100) == [(1, 3)]


def test_padded_layouts_count_every_sequence_at_the_longest_padded_length():
    # 16, then 9 padded to 16 (2 x 16 = 32 rows); a third would make 3 x 16 = 48
    assert consecutive_ranges([16, 9, 3, 3], 0, 32, padded=True) == [(0, 2), (2, 4)]


def ranges_one_by_one(lengths, budget, padded):
    """consecutive_ranges from 0 as a loop over the sequences, one at a time."""
    ranges, first, longest = [], 0, 0
    for index, length in enumerate(lengths):
        rows = padded_length(length) if padded else length
        if padded:
            grown = (index - first + 1) * max(longest, rows)
        else:
            grown = sum(lengths[first : index + 1])
        if index > first and grown > budget:
            ranges.append((first, index))
            first, longest = index, 0
        longest = max(longest, rows)
    return ranges + [(first, len(lengths))] if lengths else ranges


@pytest.mark.parametrize("padded", [False, True], ids=["packed", "padded"])
def test_consecutive_ranges_in_array_arithmetic_are_those_found_one_by_one(padded):
    rng = np.random.default_rng(5)
    for _ in range(200):
        lengths = rng.integers(1, 60, rng.integers(0, 80)).tolist()
        budget = int(rng.integers(1, 300))
        assert consecutive_ranges(lengths, 0, budget, padded) == ranges_one_by_one(
            lengths, budget, padded
        ), (lengths, budget)


def test_every_gpu_batch_of_a_run_has_one_row_count(esm2_tiny):
    encoder = ProteinEncoder.load(esm2_tiny, torch.device("cpu"), torch.float16)
    on_gpu = Engine(encoder, torch.device("cuda"))  # nothing runs: the layout arithmetic only
    assert on_gpu.rows([52, 300, 12], 256) == 300  # a longer sequence than the budget: its own
    assert on_gpu.rows([52, 30], 98304) == 98304
    assert Engine(encoder, torch.device("cpu")).rows([52, 30], 98304) is None


def test_a_long_protein_is_budgeted_by_every_token_it_attends_over(esm2_tiny):
    """Tokens, batch budget, GPU row count and shard sizes all count the whole protein, which
    the original attends over whole (SPEC §4)."""
    tokens = ProteinEncoder.tokenize(esm2_tiny, ["M" * 3000, "MK"])
    lengths = [len(t) for t in tokens]
    assert lengths == esm2_tokens([3000, 2]).tolist() == [3002, 4]
    assert consecutive_ranges(lengths, 0, 2048) == [(0, 1), (1, 2)]
    encoder = ProteinEncoder.load(esm2_tiny, torch.device("cpu"), torch.float16)
    assert Engine(encoder, torch.device("cuda")).rows(lengths, 2048) == 3002


@pytest.mark.parametrize("kind", ["esm2", "dnabert_s"])
@torch.no_grad()
def test_a_batch_computed_in_more_rows_gives_the_same_vectors(esm2_tiny, dnabert_tiny, kind):
    if kind == "esm2":
        encoder = ProteinEncoder.load(esm2_tiny, torch.device("cpu"), torch.float32)
        tokens = ProteinEncoder.tokenize(esm2_tiny, PROTEINS)
    else:
        encoder = NucleotideEncoder.load(dnabert_tiny, torch.device("cpu"), torch.float32)
        tokens = NucleotideEncoder.tokenize(dnabert_tiny, ["ACGTTGCAAT" * k for k in (1, 4, 9)])
    own = encoder(PackedBatch.from_token_lists(tokens))
    roomy = encoder(PackedBatch.from_token_lists(tokens, rows=10 * sum(len(t) for t in tokens)))
    torch.testing.assert_close(roomy, own)
    with pytest.raises(ValueError, match="cannot be computed in 3"):
        encoder(PackedBatch.from_token_lists(tokens, rows=3))


def test_filler_rows_stay_out_of_the_dense_kernel():
    torch.manual_seed(0)
    batch = PackedBatch.from_token_lists([np.zeros(8, dtype=np.int64)] * 5, rows=64)
    layout = PackedRows(batch)
    assert layout.uniform
    q, k, v = (torch.randn(40, 4, 16) for _ in range(3))
    got = layout(*(layout.pad(t) for t in (q, k, v)), 0.25)
    plain = PaddedRows(
        PackedBatch.from_token_lists([np.zeros(8, dtype=np.int64)] * 5), None, q.dtype
    )
    torch.testing.assert_close(layout.unpad(got), plain(q, k, v, 0.25))
    assert got.shape[0] == 64 and not got[40:].any()
    assert layout.cu_seqlens.tolist() == [0, 8, 16, 24, 32, 40, 64]  # one filler of 24 rows


def test_the_first_batch_is_timed_apart_from_the_loop(esm2_tiny):
    encoder = ProteinEncoder.load(esm2_tiny, torch.device("cpu"), torch.float32)
    tokens = ProteinEncoder.tokenize(esm2_tiny, PROTEINS * 3)
    _, stats = embed_all(encoder, tokens, "cpu", 400)
    assert stats.batches > 2 and 0 < stats.first_batch_tokens < stats.tokens
    assert stats.first_batch_seconds > 0 and stats.tokens_per_second > 0


def test_a_loop_logs_its_progress_with_a_rate_and_the_time_left(esm2_tiny, monkeypatch, caplog):
    monkeypatch.setattr(progress, "PROGRESS_SECONDS", 0.0)  # every batch, not every 30 s
    encoder = ProteinEncoder.load(esm2_tiny, torch.device("cpu"), torch.float32)
    tokens = ProteinEncoder.tokenize(esm2_tiny, PROTEINS * 3)
    with caplog.at_level("INFO", logger="virnucpro.runtime.progress"):
        _, stats = embed_all(encoder, tokens, "cpu", 400)
    lines = [r.getMessage() for r in caplog.records if r.name == "virnucpro.runtime.progress"]
    # each batch but the last (which ends the loop, and the loop's summary says the rest)
    assert len(lines) == stats.batches - 1
    done = [
        int(re.match(r"ESM-2: (\d+) of 21 frames \(\d+%\), [\d,]+ tokens/s, about ", line)[1])
        for line in lines
    ]
    assert done == sorted(done) and done[0] > 0 and done[-1] < 21, lines
    assert all(re.search(r"about (\d+ min \d\d s|\d+ s) left$", line) for line in lines), lines


def test_durations_read_as_a_person_writes_them():
    assert [progress.duration(s) for s in (12.4, 450, 7500, float("inf"))] == [
        "12 s",
        "7 min 30 s",
        "2 h 05 min",
        "an unknown time",
    ]


def test_an_fp16_overflow_is_recomputed_in_fp32(esm2_tiny):
    tokens = ProteinEncoder.tokenize(esm2_tiny, PROTEINS)
    wide = ProteinEncoder.load(esm2_tiny, torch.device("cpu"), torch.float32)
    half = ProteinEncoder.load(esm2_tiny, torch.device("cpu"), torch.float16)
    # activations beyond fp16's 65504, well within fp32's range; the same fp16 values in both
    boosted = (wide.model.layers[0].fc1.weight * 3e4).half()
    with torch.no_grad():
        for encoder in (wide, half):
            encoder.model.layers[0].fc1.weight.copy_(boosted)
    expected, _ = embed_all(wide, tokens, "cpu", 10_000)
    got, stats = embed_all(half, tokens, "cpu", 200)
    assert stats.recomputed_in_fp32 == stats.batches > 1
    assert np.isfinite(got).all()
    # The two runs pack different batches, so fp32 sums in another order (and MKL's order also
    # varies with memory alignment); with fc1 weights boosted 3e4-fold that reaches 1.2e-5
    # (seen once in CI). An fp16 result would be non-finite.
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


class _MemoryLimited:
    """A real encoder on a device with room for at most `limit` rows a batch (on the CPU: its
    sequences padded to the longest, which is what takes memory): past that it
    raises the error the CUDA allocator raises, or torch.compile's error wrapping it when memory
    runs out while kernels are compiled. (A real GPU test runs out of memory for real.)"""

    def __init__(self, encoder, limit, wrapped=False):
        self.encoder, self.limit, self.wrapped = encoder, limit, wrapped
        self.dim, self.dtype, self.alibi = encoder.dim, encoder.dtype, encoder.alibi
        self.name = encoder.name

    def __call__(self, batch):
        if batch.n_seqs * padded_length(batch.max_seqlen) > self.limit:
            if not self.wrapped:
                raise torch.OutOfMemoryError("CUDA out of memory (test)")
            try:
                raise torch.OutOfMemoryError("CUDA out of memory while autotuning (test)")
            except torch.OutOfMemoryError as error:
                raise RuntimeError("InductorError: compilation failed") from error
        return self.encoder(batch)


@pytest.mark.parametrize("wrapped", [False, True], ids=["allocator", "while-compiling"])
@pytest.mark.slow
def test_out_of_memory_halves_the_budget_and_loses_nothing(esm2_tiny, wrapped):
    encoder = ProteinEncoder.load(esm2_tiny, torch.device("cpu"), torch.float32)
    tokens = ProteinEncoder.tokenize(esm2_tiny, PROTEINS * 4)
    expected, _ = embed_all(encoder, tokens, "cpu", 100_000)
    got, stats = embed_all(_MemoryLimited(encoder, 300, wrapped), tokens, "cpu", 2000)
    assert stats.out_of_memory_retries == 3 and stats.batch_tokens == 250
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_other_errors_are_not_taken_for_out_of_memory(esm2_tiny):
    def broken(batch):
        raise ValueError("not a memory problem")

    broken.dim, broken.dtype, broken.alibi, broken.name = 64, torch.float32, False, "ESM-2"
    with pytest.raises(ValueError, match="not a memory problem"):
        embed_all(broken, ProteinEncoder.tokenize(esm2_tiny, PROTEINS), "cpu", 64)


def test_a_failed_run_leaves_no_embedding_file(tmp_path, esm2_tiny):
    encoder = ProteinEncoder.load(esm2_tiny, torch.device("cpu"), torch.float32)
    tokens = ProteinEncoder.tokenize(esm2_tiny, PROTEINS)
    path = tmp_path / "shard.h5"
    writer = embedding_writer(path, range(len(tokens)), ["f"] * len(tokens))
    with pytest.raises(torch.OutOfMemoryError), writer as out:
        out.vectors(encoder.dim, np.float32)
        Engine(_MemoryLimited(encoder, limit=1), torch.device("cpu")).run(tokens, 64, out.write)
    assert list(tmp_path.iterdir()) == []


@torch.no_grad()
@pytest.mark.slow
def test_compiled_layer_code_matches_eager(esm2_tiny, dnabert_tiny):
    """The block methods compiled on a GPU (models.compile), compiled here whole (no graph
    break allowed)."""

    def check(fn, *args):
        compiled = torch.compile(fn, dynamic=True, fullgraph=True)
        torch.testing.assert_close(compiled(*args), fn(*args))

    model, _ = load_esm2(esm2_tiny)
    batch = PackedBatch.from_token_lists(ProteinEncoder.tokenize(esm2_tiny, PROTEINS))
    x = model.embed_tokens(batch.tokens)
    cos, sin = esm2.rotary_tables(batch.positions, model.rotary_inv_freq)
    attended = torch.randn(x.shape[0], model.cfg.attention_heads, model.cfg.head_dim)
    check(esm2.Block.attention_inputs, model.layers[0], x, cos, sin)
    check(esm2.Block.output_and_mlp, model.layers[2], x, attended)

    model, _ = load_dnabert_s(dnabert_tiny)
    tokens = NucleotideEncoder.tokenize(dnabert_tiny, ["ACGTTGCAAT" * k for k in (1, 4, 9)])
    batch = PackedBatch.from_token_lists(tokens)
    x = model.word_embeddings(batch.tokens)
    attended = torch.randn(x.shape[0], model.cfg.num_attention_heads, model.cfg.head_dim)
    check(dnabert_s.Layer.output_and_mlp, model.layers[0], x, attended)


def compiled_as_on_a_gpu(model, monkeypatch):
    """compile_blocks(model) as it compiles a model on a GPU, the CPU model taken for one."""
    with monkeypatch.context() as patched:
        patched.setattr(torch.Tensor, "is_cuda", property(lambda tensor: True))
        return compile_blocks(model)


@torch.no_grad()
def test_compiled_blocks_keep_their_own_weights_and_run_eagerly_when_asked(esm2_tiny, monkeypatch):
    """Each block's compiled methods are bound to it, and a copy's (Encoder.float32_copy) to
    the copy's blocks; within eager_in_this_thread they run uncompiled. On the CPU compile_blocks
    leaves a model as it is."""
    model, _ = load_esm2(esm2_tiny)
    assert compile_blocks(model) is model
    assert not any(name in vars(block) for block in model.layers for name in block.COMPILED)
    batch = PackedBatch.from_token_lists(ProteinEncoder.tokenize(esm2_tiny, PROTEINS))
    expected = model(batch)
    compiled_as_on_a_gpu(model, monkeypatch)
    other = copy.deepcopy(model)
    other.layers[0].fc2.bias.add_(1.0)
    for block, copied in zip(model.layers, other.layers, strict=True):
        for name in esm2.Block.COMPILED:
            assert getattr(block, name).__self__ is block
            assert getattr(copied, name).__self__ is copied
    with eager_in_this_thread():
        assert torch.equal(model(batch), expected)
        assert not torch.allclose(other(batch), expected)


@torch.no_grad()
@pytest.mark.slow
def test_one_compilation_serves_every_block(esm2_tiny, dnabert_tiny, monkeypatch):
    """compile_blocks compiles each method once for all of a model's blocks (their weights
    are graph inputs), and the compiled model computes what the eager one does."""
    torch._dynamo.reset()
    dna = NucleotideEncoder.tokenize(dnabert_tiny, ["ACGTTGCAAT" * k for k in (1, 4, 9)])
    for (model, _), tokens in (
        (load_esm2(esm2_tiny), ProteinEncoder.tokenize(esm2_tiny, PROTEINS)),
        (load_dnabert_s(dnabert_tiny), dna),
    ):
        assert len(model.layers) > 1
        batch = PackedBatch.from_token_lists(tokens)
        expected = model(batch)
        torch.testing.assert_close(compiled_as_on_a_gpu(model, monkeypatch)(batch), expected)
    compiled = (
        esm2.Block.attention_inputs,
        esm2.Block.output_and_mlp,
        dnabert_s.Layer.output_and_mlp,
    )
    assert [len(_debug_get_cache_entry_list(fn.__code__)) for fn in compiled] == [1, 1, 1]
