"""The arithmetic the benchmarks measure against: model FLOPs of the sequences a run embeds,
counted per sequence from its token count, and the GPU's bf16 matrix rate measured in the run.

Per token and layer, ESM-2 does 12 d^2 multiply-adds in its four projections (q, k, v and out,
fc1 and fc2 of width 4d) and DNABERT-S 4 d^2 + 3 d i (Wqkv, out, the gated layer of width 2i,
wo); attention adds 4 d L FLOPs for a sequence of L tokens (scores and weighted sum).
"""

import time
from pathlib import Path

import numpy as np
import torch

from virnucpro.planning.sizing import esm2_tokens

# DNABERT-S's tokens are counted on a systematic sample of about this many frames of a larger
# table: tokenizing ten million frames takes a minute of 16 cores, and the sample's mean is
# within a small fraction of a percent of the whole's
DNABERT_S_TOKENIZED = 200_000
BLOCK_BYTES = 1 << 26  # of the frame table read at a time


def esm2_flops(cfg, lengths):
    """FLOPs of ESM-2 (cfg: ESM2Config) over sequences of the given token counts."""
    d, tokens = cfg.embed_dim, np.asarray(lengths, dtype=np.float64)
    return cfg.num_layers * float((24 * d * d * tokens + 4 * d * tokens**2).sum())


def dnabert_flops(cfg, lengths):
    """FLOPs of DNABERT-S (cfg: DNABertConfig) over sequences of the given token counts."""
    d, i = cfg.hidden_size, cfg.intermediate_size
    tokens = np.asarray(lengths, dtype=np.float64)
    per_layer = 2 * (4 * d * d + 3 * d * i) * tokens + 4 * d * tokens**2
    return cfg.num_hidden_layers * float(per_layer.sum())


def bf16_matmul_tflops(device="cuda", size=8192, repeats=20):
    """The device's bf16 matrix rate: the median of `repeats` size^3 products on random data."""
    a, b = (torch.randn(size, size, device=device, dtype=torch.bfloat16) for _ in range(2))
    on_gpu = torch.device(device).type == "cuda"
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        if on_gpu:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        a @ b
        if on_gpu:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / float(np.median(times)) / 1e12


def frame_table_flops(frames_tsv, configs, dnabert_s_checkpoint):
    """Frames, tokens and model FLOPs of every frame of a frame table (a TSV with `nucleotide`
    and `protein` columns, as io.shards.frame_table writes), read a block at a time, for the
    models of `configs` ({kind: ESM2Config or DNABertConfig}): ESM-2 from every protein's
    length, DNABERT-S from the tokens (its checkpoint's tokenizer) of every k-th frame, scaled
    to all frames, k such that about DNABERT_S_TOKENIZED frames are tokenized."""
    from virnucpro.models.encoders import NucleotideEncoder

    every = max(1, round(_rows_estimate(frames_tsv) / DNABERT_S_TOKENIZED))
    frames, esm2_counts, esm2, sampled = 0, 0, 0.0, []
    for block, fields in _table_blocks(frames_tsv, ("nucleotide", "protein")):
        starts, ends = fields["protein"]
        tokens = esm2_tokens(ends - starts)
        esm2_counts += int(tokens.sum())
        esm2 += esm2_flops(configs["esm2"], tokens) if "esm2" in configs else 0.0
        starts, ends = fields["nucleotide"]
        pick = np.arange(-frames % every, len(starts), every)  # rows frames + i, i in pick
        sampled += [block[s:e].decode() for s, e in zip(starts[pick], ends[pick], strict=True)]
        frames += len(starts)
    counted = {"frames": frames, "dnabert_s_tokenized_every": every}
    flops = {}
    if "esm2" in configs:
        counted["esm2_tokens"], flops["esm2"] = esm2_counts, esm2
    if "dnabert_s" in configs:
        lengths = NucleotideEncoder.tokenize(dnabert_s_checkpoint, sampled).lengths
        scale = frames / max(len(lengths), 1)
        counted["dnabert_s_tokens"] = round(sum(lengths) * scale)
        flops["dnabert_s"] = dnabert_flops(configs["dnabert_s"], lengths) * scale
    counted |= {f"{kind}_tflop": round(f / 1e12, 6) for kind, f in flops.items()}
    return counted | {"model_tflop": round(sum(flops.values()) / 1e12, 6)}


def _rows_estimate(path):
    """The rows of a TSV, from its size and the length of its first rows."""
    with open(path, "rb") as table:
        head = table.read(1 << 20)
    return Path(path).stat().st_size * max(head.count(b"\n"), 1) / max(len(head), 1)


def _table_blocks(path, columns):
    """Yield (block, {column: (starts, ends)}) for each block of whole rows of a TSV: the
    block's bytes and the byte range of the given columns in each of its rows."""
    with open(path, "rb") as table:
        header = table.readline().rstrip(b"\n").decode().split("\t")
        at = {c: header.index(c) for c in columns}
        while block := table.read(BLOCK_BYTES):
            whole = block.rfind(b"\n") + 1
            if not whole:
                return  # a last row without its newline: not one the workflow wrote
            table.seek(whole - len(block), 1)  # the part row: the next block's start
            codes = np.frombuffer(block, np.uint8, count=whole)
            separators = np.flatnonzero(codes <= ord("\n"))  # tabs (9) and newlines (10)
            newline = codes[separators] == ord("\n")
            line_ends = separators[newline]
            tabs = separators[~newline].reshape(len(line_ends), len(header) - 1)
            starts = np.column_stack([np.r_[0, line_ends[:-1] + 1], tabs + 1])
            ends = np.column_stack([tabs, line_ends])
            yield block, {c: (starts[:, i], ends[:, i]) for c, i in at.items()}
