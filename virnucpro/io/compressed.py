"""Compressed input: which format a file is in, told by its first bytes, and how to read it."""

import bz2
import lzma
import sys
import zlib

from xopen import xopen

if sys.version_info >= (3, 14):
    from compression import zstd
else:  # the backport, which xopen (>= 2.1) installs before Python 3.14
    from backports import zstd

# The magic bytes that open a file of each format, under xopen's name for it. Hand-written
# because xopen tells the format by the file name first, and a name can be wrong.
MAGIC = {
    "gz": b"\x1f\x8b",
    "bz2": b"BZh",
    "xz": b"\xfd7zXZ\x00",
    "zst": b"\x28\xb5\x2f\xfd",
}
NAMES = {"gz": "gzip", "bz2": "bzip2", "xz": "xz", "zst": "zstd"}
# Streaming decompressors, each with decompress(data), eof and unused_data.
_DECOMPRESSORS = {
    "gz": lambda: zlib.decompressobj(wbits=31),
    "bz2": bz2.BZ2Decompressor,
    "xz": lzma.LZMADecompressor,
    "zst": zstd.ZstdDecompressor,
}


def format_of(path):
    """'gz', 'bz2', 'xz' or 'zst' for a compressed file, None for any other."""
    with open(path, "rb") as probe:
        start = probe.read(max(map(len, MAGIC.values())))
    return next((name for name, magic in MAGIC.items() if start.startswith(magic)), None)


def open_text(path, fmt):
    """Open a file of format `fmt` (from format_of) as UTF-8 text, a byte-order mark at the start
    dropped, any line endings read as '\\n'. Decoding is strict: a byte that is not UTF-8 raises
    UnicodeDecodeError rather than becoming another letter."""
    text = {"encoding": "utf-8-sig", "newline": None}
    if fmt is None:
        return open(path, **text)
    # threads=0 decompresses in this process: with threads, xopen may pipe the file through an
    # external zstd or xz, whose output ends early without an error on a truncated file.
    return xopen(path, "rt", format=fmt, threads=0, **text)


def decompressor(fmt):
    """A new streaming decompressor for one member (gzip) or stream of a file of format `fmt`."""
    return _DECOMPRESSORS[fmt]()
