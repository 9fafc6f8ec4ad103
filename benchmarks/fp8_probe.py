"""ESM-2 3B with FP8 linear layers (virnucpro.models.fp8) beside the fp16 path, in one process,
on the same frames and random full-size weights: tokens/s of the packed engine's loop for
50- and 166-residue proteins, and per-sequence cosine of the FP8 vectors against fp16's and,
on a prefix, against fair-esm's FP32 model.

    python benchmarks/fp8_probe.py --workdir /tmp/fp8 --out benchmarks/results/<date>-<gpu>-fp8.json
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from baselines import fair_esm, timed
from embed_throughput import proteins
from record import save

from virnucpro.embed import ProteinEncoder
from virnucpro.engine import embed_all
from virnucpro.models.fp8 import esm2_to_fp8
from virnucpro.random_checkpoints import write_esm2

WORKLOADS = {"protein_50": (60_000, 50), "protein_166": (20_000, 166)}  # sequences, residues
REFERENCE_PREFIX = 256  # sequences compared with fair-esm's FP32 model


def loop(encoder, tokens):
    """(vectors, tokens/s) of the engine's loop, warmed up (compiled) on a prefix first."""
    embed_all(encoder, tokens[:20_000], "cuda", encoder.max_batch_tokens)
    (vectors, _), seconds = timed(
        lambda: embed_all(encoder, tokens, "cuda", encoder.max_batch_tokens)
    )
    return vectors, sum(map(len, tokens)) / seconds


def cosines(a, b):
    a, b = torch.as_tensor(a).float().cpu(), torch.as_tensor(b).float().cpu()
    cos = torch.nn.functional.cosine_similarity(a, b, dim=1).numpy()
    return {
        "min": round(float(cos.min()), 6),
        "p1": round(float(np.percentile(cos, 1)), 6),
        "mean": round(float(cos.mean()), 6),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.workdir / "esm2_t36_3B_UR50D.pt"
    if not path.exists():
        write_esm2(path, 36, 2560, 40, seed=3, device="cuda")
    sequences = {w: proteins(n, k, k, seed=i) for i, (w, (n, k)) in enumerate(WORKLOADS.items())}
    tokens = {w: ProteinEncoder.tokenize(path, s) for w, s in sequences.items()}
    encoder = ProteinEncoder.load(path, torch.device("cuda"), torch.float16)
    fp16 = {w: loop(encoder, t) for w, t in tokens.items()}
    esm2_to_fp8(encoder.model)
    fp8 = {w: loop(encoder, t) for w, t in tokens.items()}
    del encoder
    torch.cuda.empty_cache()
    reference = fair_esm.load(path, "cuda")
    results = {}
    for w in WORKLOADS:
        prefix = sequences[w][:REFERENCE_PREFIX]
        fp32 = fair_esm.embed(*reference, prefix)
        results[w] = {
            "fp16_tokens_per_s": round(fp16[w][1]),
            "fp8_tokens_per_s": round(fp8[w][1]),
            "speed_up": round(fp8[w][1] / fp16[w][1], 3),
            "cosine_fp8_vs_fp16": cosines(fp8[w][0], fp16[w][0]),
            "cosine_fp8_vs_fp32": cosines(fp8[w][0][:REFERENCE_PREFIX], fp32),
            "cosine_fp16_vs_fp32": cosines(fp16[w][0][:REFERENCE_PREFIX], fp32),
        }
    save("fp8_probe", torch.cuda.get_device_name(), args.out, workloads=results)


if __name__ == "__main__":
    main()
