"""Model downloads: pinned, whole and verified, or absent with a one-line error naming the URL
and the config key to set instead (file:// locations; no download site is reached)."""

import os
import re
import subprocess
import sys

import pytest
import yaml

from virnucpro.demo.random_checkpoints import write_esm2
from virnucpro.models.catalog import catalog
from virnucpro.models.download import DownloadError, download, download_model, file_digest
from virnucpro.runtime.lifeline import SNAKEMAKE_PID

from conftest import REAL_DNABERT_S, REPO

SCRIPT = REPO / "workflow" / "scripts" / "download_model.py"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def test_git_blob_ids_match_git(tmp_path):
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 1000)
    git = subprocess.run(
        ["git", "hash-object", str(blob)], capture_output=True, text=True, check=True
    )
    assert file_digest(blob, "git-sha1") == git.stdout.strip()


@pytest.mark.parametrize("kind", ["git-sha1", "sha256"])
def test_a_verified_download_lands_whole(tmp_path, kind):
    source = tmp_path / "500_model.pth"
    source.write_bytes(b"classifier bytes" * 4096)
    entry = {
        "url": source.as_uri(),
        "checksum": f"{kind}:{file_digest(source, kind)}",
        "config_key": "models.classifier_500",
    }
    destination = tmp_path / "resources" / "models" / "500_model.pth"
    download_model("500_model.pth", destination, entry)
    assert destination.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in destination.parent.iterdir()) == ["500_model.pth"]


def test_a_checksum_mismatch_keeps_nothing(tmp_path):
    source = tmp_path / "300_model.pth"
    source.write_bytes(b"tampered")
    destination = tmp_path / "models" / "300_model.pth"
    with pytest.raises(DownloadError, match="its git-sha1 is [0-9a-f]{40}, not the published 0+;"):
        download(source.as_uri(), destination, checksum="git-sha1:" + "0" * 40)
    assert list(destination.parent.iterdir()) == []  # no partial or temporary file left


def test_an_esm2_download_is_checked_against_its_named_shape(tmp_path):
    checkpoint = write_esm2(tmp_path / "esm2_t6_8M_UR50D.pt", 6, 320, 20)
    download(checkpoint.as_uri(), tmp_path / "got" / "ok.pt", check="esm2_t6_8M_UR50D")
    with pytest.raises(DownloadError, match="not the published esm2_t12_35M_UR50D"):
        download(checkpoint.as_uri(), tmp_path / "got" / "bad.pt", check="esm2_t12_35M_UR50D")
    assert not (tmp_path / "got" / "bad.pt").exists()


def missing_file_entry(tmp_path):
    return {
        "url": (tmp_path / "nowhere" / "500_model.pth").as_uri(),
        "checksum": "git-sha1:" + "0" * 40,
        "config_key": "models.classifier_500",
    }


def test_a_failed_download_is_one_line_with_the_url_and_the_key_to_set(tmp_path):
    entry = missing_file_entry(tmp_path)
    with pytest.raises(DownloadError) as error:
        download_model("500_model.pth", tmp_path / "models" / "500_model.pth", entry)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"cannot download {entry['url']}: ")
    assert "No such file or directory" in message
    assert "set models.classifier_500 in config/config.yaml to your copy" in message


def test_the_download_rule_logs_a_failure_as_that_one_line(tmp_path):
    """The rule's script, with the `snakemake` object Snakemake would give it."""
    entry, log = missing_file_entry(tmp_path), tmp_path / "download_model.log"
    run = f"""
from types import SimpleNamespace as NS
snakemake = NS(
    log=[{str(log)!r}],
    wildcards=NS(path="500_model.pth"),
    output=[{str(tmp_path / "models" / "500_model.pth")!r}],
    params=NS(entry={entry!r}),
)
exec(compile(open({str(SCRIPT)!r}).read(), {str(SCRIPT)!r}, "exec"))
"""
    env = {**os.environ, SNAKEMAKE_PID: str(os.getpid())}  # this test stands for Snakemake
    result = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True, env=env)
    assert result.returncode == 1
    lines = log.read_text().splitlines()
    assert len(lines) == 1, lines
    assert entry["url"] in lines[0] and "models.classifier_500" in lines[0]


def test_every_download_is_pinned_verified_and_names_its_config_key():
    config_keys = yaml.safe_load(SCHEMA.read_text())["properties"]["models"]["properties"]
    pinned = re.compile(
        r"^https://(huggingface\.co/[\w-]+/[\w-]+/resolve|raw\.githubusercontent\.com/[\w-]+/"
        r"[\w-]+)/[0-9a-f]{40}/"
    )
    for path, entry in catalog().items():
        assert entry["url"].endswith("/" + path.split("/")[-1])
        assert entry["config_key"].removeprefix("models.") in config_keys, path
        if path == "esm2_t36_3B_UR50D.pt":  # fair-esm: no revisions, no published checksum
            assert entry["check"] == "esm2_t36_3B_UR50D" and "checksum" not in entry
        else:
            assert pinned.match(entry["url"]), entry["url"]
            assert re.fullmatch(r"(sha256:[0-9a-f]{64}|git-sha1:[0-9a-f]{40})", entry["checksum"])


def test_the_catalogue_pins_the_original_classifiers():
    entries = catalog()
    assert (
        entries["300_model.pth"]["checksum"] == "git-sha1:a0b5b85e7c1e44f00cde146d091beb82b2c8e855"
    )
    assert (
        entries["500_model.pth"]["checksum"] == "git-sha1:fc35d5ef9f1f4564eea7036f34f4f8ec6000d33d"
    )


@pytest.mark.parametrize("name", ["config.json", "tokenizer.json"])
def test_the_dnabert_s_checksums_are_those_of_the_published_files_we_hold(name):
    """tests/data/dnabert-s holds the published config.json and tokenizer.json."""
    expected = catalog()[f"DNABERT-S/{name}"]["checksum"]
    assert f"sha256:{file_digest(REAL_DNABERT_S / name, 'sha256')}" == expected
