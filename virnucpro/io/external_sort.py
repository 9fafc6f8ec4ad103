"""Lines sorted by their first tab-separated field, byte by byte, for tables of tens of millions
of rows.

GNU sort rather than Python's sorted(): it holds a fixed buffer (BUFFER) and merges sorted runs
from disk beyond it, sorts on several threads, and runs beside the process that feeds it, so a
sample's ids are never all held as Python strings. With LC_ALL=C it compares bytes, and UTF-8's
byte order is the order of code points, which is how Python sorts strings. The key is the first
field alone (-k1,1), not the whole line: a line's tab would otherwise sort after the control
characters an id may hold (str.split() does not cut at all of them), and a shorter id before
its extensions.
"""

import os
import subprocess
from contextlib import contextmanager

BUFFER = "256M"  # sort's memory; beyond it, runs on disk, merged at the end


@contextmanager
def sorting_into(out, threads, temporary_dir):
    """Yield a binary file to write lines to; once it is closed (at the latest when the block
    ends), the lines are sorted by their first field and written to the open file `out`, after
    what it holds, and the block's end waits for them. Runs that do not fit the buffer are kept
    in `temporary_dir`, which should have the room of the lines (a /tmp may not)."""
    out.flush()
    process = subprocess.Popen(
        [
            "sort",
            "--field-separator=\t",
            "--key=1,1",
            f"--buffer-size={BUFFER}",
            f"--parallel={max(threads, 1)}",
            f"--temporary-directory={temporary_dir}",
        ],
        stdin=subprocess.PIPE,
        stdout=out,
        stderr=subprocess.PIPE,
        env={**os.environ, "LC_ALL": "C"},
    )
    try:
        yield process.stdin
        process.stdin.close()
        error = process.stderr.read().decode(errors="replace")
        if process.wait():
            raise RuntimeError(f"sort failed ({process.returncode}): {error}")
    finally:
        if process.poll() is None:  # the block failed: the lines are not needed
            process.kill()
            process.wait()
