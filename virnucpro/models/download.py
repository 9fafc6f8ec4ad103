"""Fetch the published models into resources/: streamed to a temporary name, checked, renamed.

Every file comes from a fixed revision of its source (catalog.yaml) and is verified against the
checksum public sources give for it. fair-esm publishes none for its ESM-2 checkpoint (and its
download site has no revisions): that file is checked by reading it as the model it must be.
A download that fails raises DownloadError, whose message is one line: the URL, what went
wrong, and the config key that points the workflow at a copy of one's own instead.
"""

import hashlib
import http.client
import logging
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from ..io.atomic import atomic_path
from . import checkpoints
from .architectures import ESM2_PRESETS
from .catalog import catalog

log = logging.getLogger(__name__)

BLOCK = 1 << 20


class DownloadError(Exception):
    """A model file that could not be fetched whole and verified (nothing was kept)."""


def file_digest(path, algorithm):
    """`sha256` of a file, or `git-sha1`: the id git gives it as a blob."""
    path = Path(path)
    if algorithm == "git-sha1":
        digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    elif algorithm == "sha256":
        digest = hashlib.sha256()
    else:
        raise ValueError(f"unknown checksum kind {algorithm!r}: use git-sha1 or sha256")
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def download(url, destination, checksum=None, check=None):
    """Fetch `url` (https:// or file://) to `destination`, which appears only once complete and
    verified: against `checksum` ("<kind>:<hex>") if given, as the fair-esm ESM-2 named by
    `check` if given. Raises DownloadError, one line naming the URL, on any failure."""
    destination = Path(destination)
    try:
        with atomic_path(destination) as tmp:
            size = _fetch(url, tmp)
            if checksum:
                kind, _, want = checksum.partition(":")
                got = file_digest(tmp, kind)
                if got != want.lower():
                    raise ValueError(f"its {kind} is {got}, not the published {want}")
            if check:
                _check_esm2(tmp, check)
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise DownloadError(f"cannot download {url}: {_why(error)}; nothing was kept") from error
    log.info("%s -> %s (%d bytes)", url, destination, size)


def _fetch(url, path):
    """Stream `url` into `path`; its size in bytes."""
    with urllib.request.urlopen(url, timeout=120) as response, open(path, "wb") as out:
        expected = response.headers.get("Content-Length")
        shutil.copyfileobj(response, out, BLOCK)
    size = path.stat().st_size
    if expected is not None and size != int(expected):
        raise OSError(f"the transfer stopped after {size} of {expected} bytes")
    return size


def _why(error):
    """An error's first line; for a URLError the reason (an unreachable host, a missing file)
    without urllib's wrapping, for an HTTPError its status."""
    if type(error) is urllib.error.URLError:
        error = error.reason
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _check_esm2(path, name):
    """Raise unless the file reads as the fair-esm ESM-2 checkpoint `name` (its shape)."""
    try:
        cfg, _, _ = checkpoints.read_fair_esm(path)
    except ValueError:
        raise ValueError(f"it is not a fair-esm ESM-2 checkpoint ({name})") from None
    if cfg != ESM2_PRESETS[name]:
        raise ValueError(f"it is not the published {name}: found {cfg}")


def download_model(relative_path, destination, entry=None):
    """Fetch one catalogue file (or the given `entry`: url, config_key, checksum or check)."""
    entry = entry or catalog()[relative_path]
    try:
        download(entry["url"], destination, entry.get("checksum"), entry.get("check"))
    except DownloadError as error:
        raise DownloadError(
            f"{error}. If you have the model, set {entry['config_key']} in config/config.yaml "
            "to your copy and the workflow will not download it."
        ) from error.__cause__
