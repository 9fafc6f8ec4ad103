"""The workflow's fixed costs on this machine (issue 19 asks for them on an idle 2-core one):
the README demo's wall, its dry run, and the plan (`snakemake -n`) of 500 samples of realistic
size, each repeated, with the median and every value.

    python benchmarks/planning.py --out benchmarks/results/<date>-<machine>-planning.json
    python benchmarks/planning.py --quick      # 50 samples, each figure once: that it runs

Every command runs in a fresh copy of the workflow in a temporary directory (as the tests copy
it, conftest.copy_workflow), so the repository's results/ is untouched:
- demo: the README's `snakemake --profile profiles/local --configfile config/demo/config.yaml
  config/demo/training.yaml` from nothing: it builds the demo's models, trains a classifier,
  evaluates it and calls the two demo samples;
- demo dry run: the same command with --dry-run in a fresh copy, twice in a row (the first
  with Snakemake's caches of that directory empty), and once more after the demo ran;
- plan of many samples: the README's command with -n, config/config.yaml and a sheet of
  --samples samples of 2,000 reads of 150 bp (samples.reads, about 330 kB of FASTA each), at
  `shards: auto`, which reads the start of each sample's FASTA to size its shards.
The load average before and after is kept beside the figures: on a busy machine they are
not the idle machine's.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from record import save
from samples import read_genomes, reads, write_fasta
from workflow_run import REPO

sys.path.insert(0, str(REPO / "tests"))  # the tests' copy of a run directory
from conftest import copy_workflow  # noqa: E402

README = ["--profile", "profiles/local"]
DEMO = [*README, "--configfile", "config/demo/config.yaml", "config/demo/training.yaml"]
READS_PER_SAMPLE = 2_000


def snakemake_seconds(directory, *args):
    """Seconds the Snakemake command `args` takes in `directory`; an error if it fails."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", *args], cwd=directory, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"snakemake {' '.join(args)} failed:\n{done.stderr[-6000:]}")
    return round(seconds, 2)


def demo_figures(scratch, repeat):
    """{figure: seconds} of one fresh copy: two dry runs, the demo, a dry run after it."""
    run = copy_workflow(scratch / f"demo-{repeat}")
    return {
        "demo_dry_run_first_s": snakemake_seconds(run, *DEMO, "--dry-run"),
        "demo_dry_run_second_s": snakemake_seconds(run, *DEMO, "--dry-run"),
        "demo_s": snakemake_seconds(run, *DEMO),
        "demo_dry_run_after_demo_s": snakemake_seconds(run, *DEMO, "--dry-run"),
    }


def many_samples(scratch, count):
    """A sample sheet of `count` samples of READS_PER_SAMPLE reads each, in `scratch`."""
    genomes = read_genomes(REPO / "tests" / "data" / "dvf")
    rows = ["sample\tfasta\tchunk_size\tchunking"]
    for i in range(count):
        fasta = scratch / "samples" / f"sample{i}.fa"
        write_fasta(reads(genomes, READS_PER_SAMPLE, 150, seed=i), fasta)
        rows.append(f"sample{i}\t{fasta}\t300\toverlap")
    sheet = scratch / "samples.tsv"
    sheet.write_text("\n".join(rows) + "\n")
    return sheet


def cpu_name():
    with open("/proc/cpuinfo") as info:
        names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
    return names[0] if names else "unknown CPU"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="the result file (JSON)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="50 samples, each figure once")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.samples = 1, 50
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-planning-") as scratch:
        scratch = Path(scratch)
        runs = [demo_figures(scratch, repeat) for repeat in range(args.repeats)]
        values = {figure: [run[figure] for run in runs] for figure in runs[0]}
        sheet = many_samples(scratch, args.samples)
        plan = copy_workflow(scratch / "plan")
        values[f"plan_{args.samples}_samples_s"] = [
            snakemake_seconds(plan, *README, "-n", "--config", f"samples={sheet}")
            for _ in range(args.repeats)
        ]
    figures = {
        figure: {"median": statistics.median(seconds), "all": seconds}
        for figure, seconds in values.items()
    }
    device = f"{os.cpu_count()} cores, {cpu_name()}"
    save(
        "planning",
        device,
        args.out,
        figures=figures,
        reads_per_sample=READS_PER_SAMPLE,
        load_average_before=[round(x, 2) for x in load_before],
        load_average_after=[round(x, 2) for x in os.getloadavg()],
    )


if __name__ == "__main__":
    main()
