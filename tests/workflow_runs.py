"""Running Snakemake on a copy of the workflow (see conftest's `workdir`), for the tests."""

import re
import subprocess
import sys

DEMO = ["--configfile", "config/demo/config.yaml"]
# the demo with its training run, as the README runs it: the 300 bp sample's classifier trained
TRAINING_DEMO = [*DEMO, "config/demo/training.yaml"]


def snakemake(cwd, *args, check=True, env=None):
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", *args], cwd=cwd, capture_output=True, text=True, env=env
    )
    if check and result.returncode != 0:
        command = " ".join(args)
        raise AssertionError(f"snakemake {command} failed:\n{result.stdout}\n{result.stderr}")
    return result


def planned(cwd, *args, config=DEMO):
    """(rule, first output) of every job a dry run plans."""
    text = snakemake(cwd, *args, *config, "--dry-run", "--cores", "2").stdout  # targets first
    return re.findall(r"^rule (\w+):\n(?:    .*\n)*?    output: ([^,\s]+)", text, re.M)


def aggregation(*samples):
    """The jobs of the samples' aggregation (which also writes their viral FASTA and plots)
    and the one table of all samples, sorted as a dry run's plan is here."""
    jobs = [("tabulate_samples", "results/samples.tsv")]
    jobs += [("aggregate_sample", f"results/{sample}/prediction_results.txt") for sample in samples]
    return jobs


def set_config(workdir, **embedding):
    """Add or replace keys of the demo config's `embedding:` section."""
    path = workdir / "config" / "demo" / "config.yaml"
    lines = [
        line
        for line in path.read_text().splitlines()
        if not any(line.startswith(f"  {key}:") for key in embedding)
    ]
    at = lines.index("embedding:") + 1
    lines[at:at] = [f"  {key}: {value}" for key, value in embedding.items()]
    path.write_text("\n".join(lines) + "\n")
