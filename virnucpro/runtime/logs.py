"""Send a job's log lines and any traceback to the file Snakemake gave it."""

import logging
import os
import sys


def log_to(path):
    sys.stderr = open(path, "w", buffering=1, encoding="utf-8")  # noqa: SIM115 - for the job's life
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def process_age():
    """Seconds since this process began (Linux's /proc; None elsewhere): a job's log gives it,
    so that the time Python and Snakemake's script preamble took before the job's code is seen."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/uptime", encoding="ascii") as uptime:
            now = float(uptime.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return now - ticks / os.sysconf("SC_CLK_TCK")
