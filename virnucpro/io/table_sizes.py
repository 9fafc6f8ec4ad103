"""The bytes of a sample's tables as its aggregation wrote them, given by the last line of its
summary, so that a later stage that reads a table tells one cut short (at a line end too, where
its rows look whole) from a whole one, and a summary without that line is itself cut short."""

import os
from pathlib import Path

from .damage import DamagedFile

LINE_START = "tables as written (bytes): "


def sizes_line(tables):
    """The summary's last line: each of `tables` (paths) by name, and its bytes."""
    return LINE_START + ", ".join(f"{Path(t).name} {os.path.getsize(t)}" for t in tables)


def check_sizes(summary_txt, tables):
    """DamagedFile naming `summary_txt` unless it ends with its sizes_line, or naming the first
    of `tables` (tables of its directory that the line lists) whose bytes differ from it."""
    text = Path(summary_txt).read_text(encoding="utf-8", errors="replace")
    last = text.removesuffix("\n").rpartition("\n")[2]
    try:
        if not text.endswith("\n") or not last.startswith(LINE_START):
            raise ValueError
        sizes = {
            name: int(size)
            for name, size in (entry.split(" ") for entry in last[len(LINE_START) :].split(", "))
        }
    except ValueError:
        raise DamagedFile(
            summary_txt,
            f"it lacks its last line, '{LINE_START}...' (it is cut short, or an older virnucpro "
            "wrote it)",
        ) from None
    for table in tables:
        size, written = os.path.getsize(table), sizes.get(Path(table).name)
        if size != written:
            raise DamagedFile(
                table,
                f"it holds {size} bytes, but {summary_txt} says it was written with {written}",
            )
