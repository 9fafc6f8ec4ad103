"""Inputs that are not what their writer wrote (truncated, cut off, unreadable): named, and
removed by the job that finds them, so that running the same command again remakes them.

Left in place, such a file looks up to date to Snakemake, and every rerun fails on it again.
Removed, it is missing, and Snakemake remakes it and what was made from it, nothing else.
"""

import os
from contextlib import contextmanager
from pathlib import Path


class DamagedFile(Exception):
    """`path` is damaged: `problem` says how."""

    def __init__(self, path, problem):
        self.path, self.problem = Path(path), problem
        super().__init__(f"{path} is damaged: {problem}")

    def __reduce__(self):  # from a worker process to the job's, which removes the file
        return type(self), (self.path, self.problem)


class InputGone(Exception):
    """An input of a job was removed while the run ran."""


_AGAIN = "run the same command again, and it is made anew, with what depends on it"


@contextmanager
def removing_damaged_inputs(inputs):
    """For a job: a damaged input found in the block is removed, and the error says so. One of
    `inputs` found missing was removed after the run planned the job, most likely by another
    job that found it damaged (two jobs of a sample read its frame table): said so, not as a
    bare FileNotFoundError."""
    try:
        yield
    except DamagedFile as damaged:
        raise removed(damaged) from None
    except FileNotFoundError as missing:
        if missing.filename is None or _absolute(missing.filename) not in map(_absolute, inputs):
            raise
        raise InputGone(
            f"{missing.filename} was removed while this run ran (a job that finds an input "
            f"damaged removes it, and its log says why): {_AGAIN}"
        ) from None


def removed(damaged):
    """Remove the file of a DamagedFile; the DamagedFile that says so."""
    damaged.path.unlink(missing_ok=True)
    return DamagedFile(damaged.path, f"{damaged.problem}. It has been removed: {_AGAIN}")


def _absolute(path):
    return os.path.abspath(os.fspath(path))
