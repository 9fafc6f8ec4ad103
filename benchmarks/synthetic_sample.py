"""A synthetic sample whose reads keep stop-free frames, for stage profiles at scale: each
read is random sense codons in frame F1 (so it keeps at least that frame), most 500 bp long,
the rest 150-499 bp.

    python benchmarks/synthetic_sample.py --frames 200000 --out sample.fa.gz
"""

import argparse
import gzip

import numpy as np

from virnucpro.frames import CODON_TABLE

SENSE = np.array([c for c, aa in sorted(CODON_TABLE.items()) if aa != "*"])


def reads(n, seed):
    rng = np.random.default_rng(seed)
    lengths = np.where(rng.random(n) < 0.8, 500, rng.integers(150, 500, n))
    for i, length in enumerate(lengths):
        codons = SENSE[rng.integers(0, len(SENSE), length // 3 + 1)]
        yield f"read{i}", "".join(codons)[:length]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200_000, help="about this many kept frames")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with gzip.open(args.out, "wt", compresslevel=1) as out:
        for name, sequence in reads(args.frames, args.seed):
            out.write(f">{name}\n{sequence}\n")


if __name__ == "__main__":
    main()
