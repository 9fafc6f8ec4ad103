import numpy as np
import torch
import torch.nn.functional as F

from virnucpro.io import shards
from virnucpro.io.shards import (
    frame_row,
    frame_table,
    read_shard,
    shard_blocks,
    shard_entry,
    shard_name,
)
from virnucpro.models.attention import PaddedRows
from virnucpro.models.dnabert_s import alibi_slopes
from virnucpro.models.packing import PackedBatch, TokenStore, segment_mean
from virnucpro.planning.sizing import esm2_tokens, frame_seconds

MODELS = ("dnabert_s", "esm2")


def write_table(tmp_path, residues, n_shards, block=1000):
    """A frame table of frames of `residues` residues (and 3x as many bases), added in blocks
    of `block` frames as the preparing stage adds them."""
    frames, manifest = tmp_path / "frames.tsv", tmp_path / "manifest.tsv"
    with frame_table(frames, manifest, n_shards, MODELS) as table:
        for start in range(0, len(residues), block):
            part = np.asarray(residues[start : start + block])
            rows = "".join(
                frame_row(f"f{start + i}", "A" * (3 * n), "K" * n) for i, n in enumerate(part)
            )
            table.add(rows.encode(), part, 3 * part)
    return frames, manifest


def test_shards_are_runs_of_consecutive_frames_of_equal_work(tmp_path):
    residues = np.random.default_rng(0).integers(10, 167, 20000)
    frames, manifest = write_table(tmp_path, residues, 8)
    work, first = [], 0
    for s in range(8):
        ordinals, ids, nucleotides, proteins = read_shard(frames, manifest, shard_name(s))
        assert ordinals.tolist() == list(range(first, first + len(ordinals)))
        assert ids == [f"f{o}" for o in ordinals]
        assert [len(p) for p in proteins] == residues[first : first + len(ordinals)].tolist()
        assert [len(n) for n in nucleotides] == [3 * len(p) for p in proteins]
        work.append(frame_seconds(residues[ordinals], 3 * residues[ordinals], MODELS).sum())
        first += len(ordinals)
    assert first == len(residues)
    most = frame_seconds([166], [498], MODELS)[0]
    assert max(work) - min(work) <= 2 * most  # equal up to about one frame


def test_the_cut_does_not_depend_on_how_the_rows_were_added(tmp_path):
    residues = np.random.default_rng(1).integers(10, 167, 5000)
    one = write_table(tmp_path / "one", residues, 3, block=5000)
    many = write_table(tmp_path / "many", residues, 3, block=7)
    for a, b in zip(one, many, strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_shards_count_every_token_esm2_computes_for_long_proteins():
    """<cls> + all residues + <eos>: the original attends over whole proteins (SPEC §4)."""
    assert esm2_tokens([1, 1024, 1025, 3000]).tolist() == [3, 1026, 1027, 3002]


def test_more_shards_than_frames_leaves_some_empty(tmp_path):
    frames, manifest = write_table(tmp_path, [100, 5, 50], 5)
    sizes = [len(read_shard(frames, manifest, shard_name(s))[0]) for s in range(5)]
    assert sum(sizes) == 3 and sizes.count(0) == 2
    frames, manifest = write_table(tmp_path / "empty", [], 3)
    assert [len(read_shard(frames, manifest, shard_name(s))[0]) for s in range(3)] == [0, 0, 0]


def test_packed_batch_layout():
    batch = PackedBatch.from_token_lists([np.array([7, 8, 9]), np.array([5]), np.array([1, 2])])
    assert batch.tokens.tolist() == [7, 8, 9, 5, 1, 2]
    assert batch.cu_seqlens.tolist() == [0, 3, 4, 6] and batch.max_seqlen == 3
    assert batch.positions.tolist() == [0, 1, 2, 0, 0, 1]
    assert batch.seq_index.tolist() == [0, 0, 0, 1, 2, 2]
    hidden = torch.arange(12, dtype=torch.float32).view(6, 2)
    assert segment_mean(hidden, batch).tolist() == [[2, 3], [6, 7], [9, 10]]


def test_packed_attention_equals_attention_on_each_sequence_alone():
    torch.manual_seed(0)
    lengths = [5, 1, 17, 9]
    batch = PackedBatch.from_token_lists([np.zeros(n, dtype=np.int64) for n in lengths])
    q, k, v = (torch.randn(sum(lengths), 12, 8) for _ in range(3))
    slopes = alibi_slopes(12)
    for bias in (None, slopes):
        rows = PaddedRows(batch, bias, torch.float32)
        packed = rows.unpad(rows(rows.pad(q), rows.pad(k), rows.pad(v), 8**-0.5))
        start = 0
        for n in lengths:
            qs, ks, vs = (t[start : start + n].transpose(0, 1) for t in (q, k, v))
            mask = None
            if bias is not None:
                where = torch.arange(n)
                mask = -bias[:, None, None] * (where[:, None] - where[None, :]).abs()
            alone = F.scaled_dot_product_attention(qs, ks, vs, attn_mask=mask, scale=8**-0.5)
            torch.testing.assert_close(packed[start : start + n], alone.transpose(0, 1))
            start += n


def test_a_token_store_selects_and_packs_sequences_without_copying_tokens():
    arrays = [np.array([7, 8, 9]), np.array([5]), np.array([1, 2])]
    store = TokenStore.concatenate(
        [TokenStore.from_arrays(arrays[:2]), TokenStore.from_arrays(arrays[2:])]
    )
    assert len(store) == 3 and store.flat.dtype == np.int32
    assert [t.tolist() for t in store] == [[7, 8, 9], [5], [1, 2]]
    reordered = store[np.array([2, 0])]
    assert reordered.flat is store.flat and reordered.lengths.tolist() == [2, 3]
    assert reordered[1].tolist() == [7, 8, 9] and store[1:][0].tolist() == [5]
    batch = reordered.batch(rows=16)
    expected = PackedBatch.from_token_lists([arrays[2], arrays[0]], rows=16)
    for name in ("tokens", "cu_seqlens", "positions", "seq_index"):
        assert torch.equal(getattr(batch, name), getattr(expected, name)), name
    assert (batch.max_seqlen, batch.rows) == (3, 16)


def test_a_shard_read_in_blocks_is_the_shard_read_whole(tmp_path, monkeypatch):
    residues = np.random.default_rng(3).integers(1, 40, 300)
    frames, manifest = write_table(tmp_path, residues, 3)
    whole = read_shard(frames, manifest, "shard_0001")
    monkeypatch.setattr(shards, "READ_BYTES", 100)  # a row or two a read
    blocks = list(shard_blocks(frames, manifest, "shard_0001", ("ordinal", "protein")))
    assert len(blocks) > 10 and set(blocks[0]) == {"ordinal", "protein"}
    assert np.concatenate([b["ordinal"] for b in blocks]).tolist() == whole[0].tolist()
    assert [p for b in blocks for p in b["protein"]] == whole[3]
    longest = max(map(len, whole[3]))
    assert int(shard_entry(frames, manifest, "shard_0001")["max_residues"]) == longest
