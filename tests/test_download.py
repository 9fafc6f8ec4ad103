"""Model downloads: whole and verified, or absent with a clear error (file:// locations)."""

import subprocess

import pytest

from virnucpro.catalog import catalog
from virnucpro.download import download, download_model, file_digest
from virnucpro.random_checkpoints import write_esm2


def test_git_blob_ids_match_git(tmp_path):
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 1000)
    git = subprocess.run(
        ["git", "hash-object", str(blob)], capture_output=True, text=True, check=True
    )
    assert file_digest(blob, "git-sha1") == git.stdout.strip()


def test_a_verified_download_lands_whole(tmp_path):
    source = tmp_path / "500_model.pth"
    source.write_bytes(b"classifier bytes" * 4096)
    entry = {"url": source.as_uri(), "checksum": f"git-sha1:{file_digest(source, 'git-sha1')}"}
    destination = tmp_path / "resources" / "models" / "500_model.pth"
    download_model("500_model.pth", destination, entry)
    assert destination.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in destination.parent.iterdir()) == ["500_model.pth"]


def test_a_checksum_mismatch_keeps_nothing(tmp_path):
    source = tmp_path / "300_model.pth"
    source.write_bytes(b"tampered")
    destination = tmp_path / "models" / "300_model.pth"
    with pytest.raises(ValueError, match="does not match the published"):
        download(source.as_uri(), destination, checksum="git-sha1:" + "0" * 40)
    assert list(destination.parent.iterdir()) == []  # no partial or temporary file left


def test_an_esm2_download_is_checked_against_its_named_shape(tmp_path):
    checkpoint = write_esm2(tmp_path / "esm2_t6_8M_UR50D.pt", 6, 320, 20)
    download(checkpoint.as_uri(), tmp_path / "got" / "ok.pt", check="esm2_t6_8M_UR50D")
    with pytest.raises(ValueError, match="not the published esm2_t12_35M_UR50D"):
        download(checkpoint.as_uri(), tmp_path / "got" / "bad.pt", check="esm2_t12_35M_UR50D")
    assert not (tmp_path / "got" / "bad.pt").exists()


def test_the_catalogue_pins_the_original_classifiers():
    entries = catalog()
    assert (
        entries["300_model.pth"]["checksum"] == "git-sha1:a0b5b85e7c1e44f00cde146d091beb82b2c8e855"
    )
    assert (
        entries["500_model.pth"]["checksum"] == "git-sha1:fc35d5ef9f1f4564eea7036f34f4f8ec6000d33d"
    )
    for path, entry in entries.items():
        assert entry["url"].startswith("https://") and entry["url"].endswith(path.split("/")[-1])
        assert "checksum" in entry or "check" in entry, path
