"""Outputs appear whole or not at all: what a killed writer leaves is removed by the next
writer of that output, and a second writer never runs beside a live one."""

import errno
import fcntl
import os
import signal
import subprocess
import sys

import pytest

from virnucpro.io.atomic import OutputBusy, atomic_open

# A writer that stops half-way through its output and waits: the test ends or kills it.
WRITER = """
import sys, time
from virnucpro.io.atomic import atomic_open
with atomic_open(sys.argv[1]) as handle:
    handle.write("half of it")
    handle.flush()
    print("writing", flush=True)
    sys.stdin.readline()
    handle.write(", and the rest")
"""


def start_writer(path):
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout.readline() == "writing\n"
    return writer


def temporaries(directory):
    return sorted(p.name for p in directory.glob(".*.tmp"))


def test_a_killed_writers_temporary_file_is_removed_by_the_next_writer_of_that_output(tmp_path):
    out = tmp_path / "table.tsv"
    other = tmp_path / ".table.tsv.gz.abcd1234.tmp"  # another output's, not this one's
    other.write_text("")
    writer = start_writer(out)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    (left,) = [name for name in temporaries(tmp_path) if name != other.name]
    assert left.startswith(".table.tsv.")

    with atomic_open(out) as handle:
        handle.write("whole")
    assert out.read_text() == "whole"
    assert temporaries(tmp_path) == [other.name]


def test_a_second_writer_of_an_output_being_written_stops_and_names_the_other(tmp_path):
    out = tmp_path / "table.tsv"
    writer = start_writer(out)
    (busy,) = temporaries(tmp_path)
    expected = rf"{out} is being written by another process.*{busy}"
    with pytest.raises(OutputBusy, match=expected), atomic_open(out) as handle:
        handle.write("mine")
    writer.communicate("go on\n")
    assert writer.returncode == 0
    assert out.read_text() == "half of it, and the rest"
    assert temporaries(tmp_path) == []


def test_without_file_locks_a_writer_goes_on_and_leaves_other_temporary_files(
    tmp_path, monkeypatch, caplog
):
    """A filesystem without locks (Lustre mounted `noflock`) cannot be made here; its flock can:
    it fails with ENOSYS."""

    def no_locks(fd, operation):
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))

    out = tmp_path / "table.tsv"
    unknown = tmp_path / ".table.tsv.abcd1234.tmp"  # cut off, or still being written
    unknown.write_text("half of it")
    monkeypatch.setattr(fcntl, "flock", no_locks)
    with atomic_open(out) as handle:
        handle.write("whole")
    assert out.read_text() == "whole"
    assert temporaries(tmp_path) == [unknown.name]
    assert f"{unknown} is left: its filesystem has no file locks" in caplog.text
