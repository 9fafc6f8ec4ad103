"""Why a sample's jobs failed, as their logs say: the last line of the Python traceback a job's
script wrote there (virnucpro.runtime.logs sends a job's log lines and any traceback to the file
Snakemake gives it, logs/<rule>/<sample>[/<shard>].log), which names the exception and, for the
workflow's own errors, the file, the record and the fix."""

import glob
import re
from pathlib import Path

TRACEBACK = "Traceback (most recent call last):"
_MODULE = re.compile(r"^(?:\w+\.)+(?=\w+: )")  # of the exception's name: InputError, not a path


def sample_failure(logs_dir, sample, since):
    """'<rule>: <error>' of the first of the sample's jobs to fail in the run that started at
    `since` (seconds since the epoch), by its log; None where no log of that run shows one."""
    logs_dir, name = Path(logs_dir), glob.escape(sample)
    failed = []
    for log in [*logs_dir.glob(f"*/{name}.log"), *logs_dir.glob(f"*/{name}/*.log")]:
        written = log.stat().st_mtime
        if written < since:
            continue  # a log of an earlier run
        text = log.read_text(encoding="utf-8", errors="replace")
        if TRACEBACK in text:
            error = _MODULE.sub("", text[text.rindex(TRACEBACK) :].strip().splitlines()[-1])
            failed.append((written, f"{log.relative_to(logs_dir).parts[0]}: {error}"))
    return min(failed)[1] if failed else None
