"""Inputs that are not what their writer wrote (truncated, cut off, unreadable): named, and
removed by the job that finds them, so that running the same command again remakes them.

Left in place, such a file looks up to date to Snakemake, and every rerun fails on it again.
Removed, it is missing, and Snakemake remakes it and what was made from it, nothing else.
"""

from contextlib import contextmanager
from pathlib import Path


class DamagedFile(Exception):
    """`path` is damaged: `problem` says how."""

    def __init__(self, path, problem):
        self.path, self.problem = Path(path), problem
        super().__init__(f"{path} is damaged: {problem}")

    def __reduce__(self):  # from a worker process to the job's, which removes the file
        return type(self), (self.path, self.problem)


@contextmanager
def removing_damaged_inputs():
    """For a job: a damaged input found in the block is removed, and the error says so."""
    try:
        yield
    except DamagedFile as damaged:
        damaged.path.unlink(missing_ok=True)
        raise DamagedFile(
            damaged.path,
            f"{damaged.problem}. It has been removed: run the same command again, and it is "
            "made anew, with what depends on it",
        ) from None
