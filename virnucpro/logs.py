"""Send a job's log lines and any traceback to the file Snakemake gave it."""

import logging
import sys


def log_to(path):
    sys.stderr = open(path, "w", buffering=1, encoding="utf-8")  # noqa: SIM115 - for the job's life
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
