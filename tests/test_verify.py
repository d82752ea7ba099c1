"""Digests, verification and strict reads of an ingested volume (the real FIB-SEM cube)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emqc.errors import IncompleteVolumeError, IntegrityError, MissingChunkError
from emqc.ingest import ingest
from emqc.manifest import MANIFEST_NAME, digest_tree, root_digest, verify_volume
from emqc.sources._array import ArraySource
from emqc.volume import open_volume


@pytest.fixture(scope="module")
def pristine(medulla, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("verify") / "cube.ome.zarr"
    ingest(ArraySource(medulla.raw, voxel_size_nm=medulla.voxel_size_nm), path, progress=False)
    return path


@pytest.fixture
def volume(pristine: Path, tmp_path: Path) -> Path:
    """A private copy each test may damage."""
    import shutil

    return Path(shutil.copytree(pristine, tmp_path / "copy.ome.zarr"))


def test_untouched_volume_verifies(volume):
    report = verify_volume(volume)
    assert report.ok and report.n_files == 14 and not report.problems()


def test_root_digest_is_reproducible_with_coreutils_rule(volume):
    manifest = json.loads((volume / MANIFEST_NAME).read_text())
    assert root_digest(digest_tree(volume)) == manifest["root_digest"]


def test_deleted_chunk_is_reported_by_name(volume):
    (volume / "0" / "c" / "1" / "0" / "1").unlink()
    report = verify_volume(volume)
    assert report.missing == ("0/c/1/0/1",) and not report.altered
    with pytest.raises(IntegrityError, match=r"missing: level 0 chunk \(1, 0, 1\) \[0/c/1/0/1\]"):
        report.raise_for_problems()


def test_flipped_byte_is_reported_by_name(volume):
    chunk = volume / "1" / "c" / "0" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x01
    chunk.write_bytes(bytes(data))
    report = verify_volume(volume)
    assert report.altered == ("1/c/0/0/0",) and not report.missing
    # A same-size alteration escapes the fast presence check but not the digests.
    assert verify_volume(volume, mode="presence").ok


def test_truncated_chunk_is_caught_even_by_presence_check(volume):
    chunk = volume / "0" / "c" / "0" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-10])
    assert verify_volume(volume, mode="presence").altered == ("0/c/0/0/0",)


def test_extra_file_is_reported(volume):
    (volume / "0" / "c" / "9").mkdir()
    (volume / "0" / "c" / "9" / "9").write_bytes(b"x")
    assert verify_volume(volume).unexpected == ("0/c/9/9",)


def test_edited_metadata_is_altered(volume):
    meta = volume / "zarr.json"
    meta.write_text(meta.read_text().replace("10.0", "12.0", 1))
    assert "zarr.json" in verify_volume(volume).altered


def test_edited_manifest_is_detected(volume):
    path = volume / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    manifest["files"][0]["sha256"] = "0" * 64
    path.write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match="altered"):
        verify_volume(volume)


def test_volume_without_manifest_is_incomplete(volume):
    (volume / MANIFEST_NAME).unlink()
    with pytest.raises(IncompleteVolumeError, match="not a complete emqc volume"):
        open_volume(volume)


def test_open_volume_refuses_missing_chunk(volume):
    (volume / "0" / "c" / "0" / "1" / "0").unlink()
    with pytest.raises(IntegrityError, match=r"level 0 chunk \(0, 1, 0\)"):
        open_volume(volume)


def test_strict_read_raises_where_zarr_would_return_zeros(volume, medulla):
    vol = open_volume(volume)
    np.testing.assert_array_equal(vol.read((0, 0, 0), (250, 250, 250)), medulla.raw)
    (volume / "0" / "c" / "1" / "1" / "1").unlink()  # disappears after opening
    with pytest.raises(MissingChunkError, match="0/c/1/1/1"):
        vol.read((200, 200, 200), (10, 10, 10))
    # chunks that are still there read normally
    np.testing.assert_array_equal(vol.read((0, 0, 0), (8, 8, 8)), medulla.raw[:8, :8, :8])


def test_chunk_removed_from_disk_and_manifest_is_still_missing(volume):
    from emqc.manifest import FileDigest, write_manifest

    manifest = json.loads((volume / MANIFEST_NAME).read_text())
    (volume / "0" / "c" / "0" / "0" / "1").unlink()
    files = [FileDigest(**f) for f in manifest["files"] if f["path"] != "0/c/0/0/1"]
    write_manifest(volume, files, manifest["provenance"])  # a consistent, forged manifest
    assert verify_volume(volume).missing == ("0/c/0/0/1",)
