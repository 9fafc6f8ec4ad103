"""Where an embedding job's fixed start goes: the job's own code (`embed.embed_shard`) on the
first frames of a shard of an end-to-end run, in a fresh process under cProfile, with the run's
compile cache (so: a warm start), printing the job's timeline and the functions that took the
time of its main thread.

    python benchmarks/job_start.py --run /tmp/w/run-reads --sample reads --frames 20000 \
        > benchmarks/results/<date>-<gpu>-job-start.txt
"""

import argparse
import cProfile
import io
import logging
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path

import yaml

from virnucpro.io.shards import MANIFEST_COLUMNS
from virnucpro.runtime.logs import process_age


def small_shard(run, sample, frames, out):
    """The first `frames` rows of the run's first shard as a one-shard table and manifest."""
    shards = run / "results" / sample / "shards"
    row = (shards / "manifest.tsv").read_text().split("\n")[1].split("\t")
    first = dict(zip(MANIFEST_COLUMNS, row, strict=True))
    with open(shards / "frames.tsv", "rb") as table:
        header = table.readline()
        table.seek(int(first["start_byte"]))
        rows = b"".join(table.read(int(first["end_byte"])).splitlines(keepends=True)[:frames])
    (out / "frames.tsv").write_bytes(header + rows)
    first.update(frames=rows.count(b"\n"), start_byte=len(header), end_byte=len(header + rows))
    values = [str(first[c]) for c in MANIFEST_COLUMNS]
    (out / "manifest.tsv").write_text("\t".join(MANIFEST_COLUMNS) + "\n" + "\t".join(values) + "\n")


def child(run, out):
    """The job, as workflow/scripts/embed_shard.py calls it, in this process."""
    logging.basicConfig(
        stream=sys.stdout, level=logging.INFO, format="%(relativeCreated)8.0f ms %(message)s"
    )
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(run / "resources" / "torch_compile_cache")
    started = time.perf_counter()
    import torch

    from virnucpro.stages.embed import embed_shard

    print(f"imports: {time.perf_counter() - started:.2f} s", flush=True)
    torch.set_num_threads(2)
    models = yaml.safe_load((run / "config" / "config.yaml").read_text())["models"]
    chunk_size = (run / "config" / "samples.tsv").read_text().splitlines()[1].split("\t")[2]
    embed_shard(
        out / "frames.tsv",
        out / "manifest.tsv",
        "shard_0000",
        {"dnabert_s": out / "d.h5", "esm2": out / "e.h5"},
        models,
        classifier_path=models[f"classifier_{chunk_size}"],
    )
    print(f"job code done {process_age():.2f} s into the process", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="an end_to_end.py run directory")
    parser.add_argument("--sample", default="reads")
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/job_start"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.child:
        profiler = cProfile.Profile()
        profiler.runcall(child, args.run, args.out)
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(25)
        print(text.getvalue())
        print(f"exiting {process_age():.2f} s into the process", flush=True)
        return
    small_shard(args.run, args.sample, args.frames, args.out)
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, *sys.argv[1:], "--child"], check=True)
    print(f"process, start to end: {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
