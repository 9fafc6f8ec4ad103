"""Fetch the published models into resources/: streamed to a temporary name, checked, renamed.

Files whose publishers give a checksum are verified against it (the classifiers are git blobs
of the original repository, so their git blob id is one). Where none is published (fair-esm,
Hugging Face), the downloaded file is checked by reading it as the model it must be.
"""

import hashlib
import logging
import shutil
import urllib.request
from pathlib import Path

from .atomic import atomic_path
from .catalog import catalog
from .models import dnabert_s, esm2

log = logging.getLogger(__name__)

BLOCK = 1 << 20


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
    verified: against `checksum` ("<kind>:<hex>") if given, by `check` (a model name) if given."""
    destination = Path(destination)
    with atomic_path(destination) as tmp:
        with urllib.request.urlopen(url, timeout=120) as response, open(tmp, "wb") as out:
            expected = response.headers.get("Content-Length")
            shutil.copyfileobj(response, out, BLOCK)
        size = tmp.stat().st_size
        if expected is not None and size != int(expected):
            raise OSError(f"{url}: received {size} bytes of {expected}; try again")
        if checksum:
            kind, _, want = checksum.partition(":")
            got = file_digest(tmp, kind)
            if got != want.lower():
                raise ValueError(
                    f"{url}: {kind} checksum {got} does not match the published {want}; the file "
                    "was not kept. Retry, or check the address in the model catalogue."
                )
        if check:
            _check_model_file(tmp, check, url)
    log.info("%s -> %s (%d bytes)", url, destination, size)


def _check_model_file(path, check, url):
    """Read a downloaded file as the model file it must be; raise if it is anything else."""
    if check in esm2.PRESETS:
        cfg, _, _ = esm2.read_fair_esm(path)
        found, wanted = cfg, esm2.PRESETS[check]
    elif check == "dnabert_s_config":
        found, wanted = dnabert_s.DNABertConfig.from_json(path), dnabert_s.DNABertConfig()
    elif check == "dnabert_s_weights":
        found, wanted = dnabert_s.read_weights_file(path).keys(), dnabert_s.expected_names()
    elif check == "dnabert_s_tokenizer":
        found = dnabert_s.load_tokenizer_file(path).get_vocab_size()
        wanted = dnabert_s.DNABertConfig().vocab_size
    else:
        raise ValueError(f"unknown check {check!r} in the model catalogue")
    if found != wanted:
        raise ValueError(f"{url} is not the published {check}: found {found}, expected {wanted}")


def download_model(relative_path, destination, entry=None):
    """Fetch one catalogue file (or the given `entry`, {url, checksum?, check?})."""
    entry = entry or catalog()[relative_path]
    download(entry["url"], destination, entry.get("checksum"), entry.get("check"))
