"""Ingest under bad input and bad luck: a clear error each time, nothing left that looks complete.

Bad inputs go through the command line, as a user meets them: exit status 2, one
paragraph naming the file, the problem and the fix, and never a traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from emqc.cli import cli
from emqc.errors import OutOfSpaceError
from emqc.ingest import EmqcWarning, ingest, staging_path
from emqc.manifest import MANIFEST_NAME, read_manifest
from emqc.sources._array import ArraySource


def run_cli(*args: str):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def assert_clear_error(result, *needles: str, code: int = 2) -> None:
    """Exit ``code``; an ``error:`` paragraph (after any progress lines) naming ``needles``; no traceback."""
    err = result.stderr
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = err.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert len(starts) == 1, err
    message = "\n".join(lines[starts[0] :])
    for needle in needles:
        assert needle in message, f"{needle!r} not in: {message}"


def nothing_written(dest: Path) -> bool:
    return not dest.exists() and not staging_path(dest.absolute()).exists()


@pytest.fixture
def slices(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path / "slices"
    folder.mkdir()
    for z in range(12):
        tifffile.imwrite(folder / f"s_{z:03d}.tif", rng.integers(0, 255, (40, 48), dtype=np.uint8))
    return folder


# --- bad input ------------------------------------------------------------------------------


def test_truncated_tiff_slice(slices, tmp_path):
    victim = slices / "s_005.tif"
    victim.write_bytes(victim.read_bytes()[:300])
    dest = tmp_path / "out.ome.zarr"
    assert_clear_error(run_cli("ingest", str(slices), str(dest), "--voxel-size", "8"), "s_005.tif")
    assert nothing_written(dest)


def test_corrupt_tiff_slice(slices, tmp_path):
    (slices / "s_003.tif").write_bytes(b"II*\x00" + os.urandom(3000))
    dest = tmp_path / "out.ome.zarr"
    assert_clear_error(run_cli("ingest", str(slices), str(dest), "--voxel-size", "8"), "s_003.tif")
    assert nothing_written(dest)


def test_slices_of_different_shapes(slices, tmp_path):
    tifffile.imwrite(slices / "s_007.tif", np.zeros((40, 50), np.uint8))
    dest = tmp_path / "out.ome.zarr"
    assert_clear_error(
        run_cli("ingest", str(slices), str(dest), "--voxel-size", "8"), "s_007.tif", "50"
    )
    assert nothing_written(dest)


def test_rgb_slices(tmp_path):
    folder = tmp_path / "rgb"
    folder.mkdir()
    for z in range(3):
        tifffile.imwrite(folder / f"c_{z}.tif", np.zeros((20, 20, 3), np.uint8), photometric="rgb")
    dest = tmp_path / "out.ome.zarr"
    assert_clear_error(run_cli("ingest", str(folder), str(dest), "--voxel-size", "8"), "c_0.tif")
    assert nothing_written(dest)


def test_float_volume_with_nan(tmp_path):
    data = np.random.default_rng(1).random((10, 30, 30)).astype(np.float32)
    data[4, 5, 6] = np.nan
    path = tmp_path / "float.h5"
    with h5py.File(path, "w") as f:
        f["raw"] = data
    dest = tmp_path / "out.ome.zarr"
    assert_clear_error(
        run_cli("ingest", f"{path}:/raw", str(dest), "--voxel-size", "8"), "float.h5", "NaN"
    )
    assert nothing_written(dest)


def test_16bit_is_scaled_by_the_stated_rule(tmp_path):
    data = np.random.default_rng(2).integers(1000, 3000, (16, 32, 32)).astype(np.uint16)
    path = tmp_path / "stack16.tif"
    tifffile.imwrite(path, data)
    dest = tmp_path / "out.ome.zarr"
    result = run_cli("ingest", str(path), str(dest), "--voxel-size", "8", "--no-progress")
    assert result.exit_code == 0, result.output
    rule = read_manifest(dest).provenance["intensity_rule"]
    assert rule["kind"] == "linear" and rule["source_dtype"] == "uint16"
    assert 1000 <= rule["lo"] < 1010 and 2990 < rule["hi"] <= 3000


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    dest = tmp_path / "out.ome.zarr"
    assert_clear_error(
        run_cli("ingest", str(tmp_path / "empty"), str(dest), "--voxel-size", "8"), "empty"
    )
    assert nothing_written(dest)


def test_missing_voxel_size(slices, tmp_path):
    dest = tmp_path / "out.ome.zarr"
    assert_clear_error(run_cli("ingest", str(slices), str(dest)), str(slices), "--voxel-size")
    assert nothing_written(dest)


def test_hdf5_dataset_that_does_not_exist(tmp_path):
    path = tmp_path / "vol.h5"
    with h5py.File(path, "w") as f:
        f["volume/raw"] = np.zeros((4, 4, 4), np.uint8)
    dest = tmp_path / "out.ome.zarr"
    assert_clear_error(
        run_cli("ingest", f"{path}:/volume/missing", str(dest), "--voxel-size", "8"),
        "vol.h5",
        "/volume/missing",
        "volume/raw",
    )
    assert nothing_written(dest)


def test_destination_exists_needs_overwrite(slices, tmp_path):
    dest = tmp_path / "out.ome.zarr"
    assert (
        run_cli("ingest", str(slices), str(dest), "--voxel-size", "8", "--no-progress").exit_code
        == 0
    )
    before = read_manifest(dest).root_digest
    assert_clear_error(
        run_cli("ingest", str(slices), str(dest), "--voxel-size", "8"), str(dest), "--overwrite"
    )
    assert read_manifest(dest).root_digest == before  # untouched
    again = run_cli(
        "ingest", str(slices), str(dest), "--voxel-size", "8", "--overwrite", "--no-progress"
    )
    assert again.exit_code == 0 and read_manifest(dest).root_digest == before


def test_foreign_folder_is_never_overwritten(slices, tmp_path):
    dest = tmp_path / "precious"
    dest.mkdir()
    (dest / "thesis.tex").write_text("do not delete")
    assert_clear_error(
        run_cli("ingest", str(slices), str(dest), "--voxel-size", "8", "--overwrite"),
        "not an emqc volume",
    )
    assert (dest / "thesis.tex").read_text() == "do not delete"


# --- bad luck: full disk, killed process ----------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A real 2 MiB tmpfs: writes fail with ENOSPC exactly as on a full disk."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        _unmount(mnt)


def _unmount(mnt: Path) -> None:
    """Unmount, retrying while a closing file keeps it busy, else detach it lazily.

    A mount left behind makes the folder undeletable, and pytest's clean-up of old
    temporary folders then fails in a later run.
    """
    for _ in range(20):
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    subprocess.run(["umount", "--lazy", str(mnt)], check=True, capture_output=True)


def test_disk_full_gives_clear_error_and_removes_partial_output(tiny_disk, medulla):
    dest = tiny_disk / "cube.ome.zarr"
    with (
        pytest.warns(EmqcWarning, match=r"has 2\.1 MB free and the volume needs up to 17\.9 MB"),
        pytest.raises(
            OutOfSpaceError, match=r"ran out of disk space writing .*cube\.ome\.zarr.*Free at least"
        ),
    ):
        ingest(ArraySource(medulla.raw, voxel_size_nm=(10, 10, 10)), dest, progress=False)
    assert nothing_written(dest)
    assert not any(tiny_disk.iterdir())


def _ingest_cmd(src: str, dest: Path) -> list[str]:
    return [sys.executable, "-m", "emqc", "ingest", src, str(dest), "--no-progress"]


@pytest.mark.slow
def test_killed_ingest_leaves_nothing_complete_and_rerun_restarts_cleanly(medulla, tmp_path):
    # A 500³ volume (the real cube tiled 2x2x2) takes a few seconds to ingest.
    big = np.tile(medulla.raw, (2, 2, 2))
    src = tmp_path / "big.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("raw", data=big, chunks=(64, 64, 64)).attrs["resolution_nm_zyx"] = [
            10,
            10,
            10,
        ]
    reference = tmp_path / "reference.ome.zarr"
    subprocess.run(_ingest_cmd(f"{src}:/raw", reference), check=True, capture_output=True)
    expected = read_manifest(reference).root_digest

    dest = tmp_path / "killed.ome.zarr"
    rng = np.random.default_rng(3)
    killed_mid_write = 0
    for delay in rng.uniform(0.2, 1.0, size=3):
        proc = subprocess.Popen(
            _ingest_cmd(f"{src}:/raw", dest), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while (
            not staging_path(dest).exists() and proc.poll() is None and time.monotonic() < deadline
        ):
            time.sleep(0.02)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.returncode == 0:  # finished before the kill: start the next round from scratch
            import shutil

            shutil.rmtree(dest)
            continue
        killed_mid_write += staging_path(dest).exists()
        assert not (dest / MANIFEST_NAME).exists(), (
            "a killed ingest left a DEST that looks complete"
        )
        verify = subprocess.run(
            [sys.executable, "-m", "emqc", "verify", str(dest)], capture_output=True, text=True
        )
        assert verify.returncode != 0 and "Traceback" not in verify.stderr

    assert killed_mid_write >= 1, "no kill landed while the ingest was writing"
    had_partial = staging_path(dest).exists()
    rerun = subprocess.run(_ingest_cmd(f"{src}:/raw", dest), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert ("did not finish" in rerun.stderr) == had_partial  # it said what it found
    assert read_manifest(dest).root_digest == expected


# --- provenance -----------------------------------------------------------------------------


def test_provenance_records_source_digests_operator_time_and_voxel_size(slices, tmp_path):
    import hashlib
    from datetime import UTC, datetime

    import emqc

    dest = tmp_path / "out.ome.zarr"
    result = run_cli(
        "ingest",
        str(slices),
        str(dest),
        "--voxel-size",
        "8,6,6",
        "--operator",
        "Ada L.",
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    prov = read_manifest(dest).provenance
    files = sorted(slices.iterdir())
    assert [Path(f["path"]) for f in prov["source"]["files"]] == files
    for entry, path in zip(prov["source"]["files"], files, strict=True):
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert entry["size"] == path.stat().st_size
    assert prov["operator"] == "Ada L." and prov["emqc_version"] == emqc.__version__
    assert prov["voxel_size_nm"] == [8.0, 6.0, 6.0] and prov["voxel_size_origin"] == "given"
    created = datetime.fromisoformat(prov["created_utc"])
    assert created.tzinfo is not None and abs((datetime.now(UTC) - created).total_seconds()) < 120
    assert prov["source"]["spec"] == str(slices) and prov["source"]["format"] == "tiff-stack"


def test_failed_final_rename_puts_the_old_volume_back(slices, tmp_path, monkeypatch):
    import errno

    dest = tmp_path / "out.ome.zarr"
    ingest(str(slices), dest, voxel_size_nm=(8, 8, 8), progress=False)
    before = read_manifest(dest).root_digest
    real_replace = os.replace

    def failing_publish(src, dst):
        if str(src).endswith(".emqc-partial"):
            raise OSError(errno.EIO, "simulated I/O error")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_publish)
    with pytest.raises(OSError, match="simulated"):
        ingest(str(slices), dest, voxel_size_nm=(8, 8, 6), overwrite=True, progress=False)
    monkeypatch.undo()
    assert read_manifest(dest).root_digest == before  # the old volume is back, unchanged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ome.zarr", "slices"]


def test_ingest_prints_progress_and_a_summary(slices, tmp_path):
    for attempt in range(2):  # a second invocation in the same process still prints
        dest = tmp_path / f"out{attempt}.ome.zarr"
        result = run_cli("ingest", str(slices), str(dest), "--voxel-size", "8")
        assert result.exit_code == 0
        assert "Writing level 0 (12×40×48)" in result.stderr
        assert "root digest     sha256:" in result.stdout
    quiet = run_cli(
        "-q",
        "ingest",
        str(slices),
        str(tmp_path / "q.ome.zarr"),
        "--voxel-size",
        "8",
        "--no-progress",
    )
    assert quiet.exit_code == 0 and quiet.stderr == ""
