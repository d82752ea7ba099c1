"""Resumable ingest: killed (SIGKILL) mid-write, rerun with ``resume=True``, chunk by chunk.

The child processes (the ``killed_ingest`` fixture) ingest a small uint16 HDF5 volume
(so the intensity statistics are journaled too) and kill themselves with SIGKILL
just before a chosen chunk write or just before publishing: a real kill at a
chosen moment.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from emqc._chunk_journal import journal_location
from emqc.ingest import ingest, staging_path
from emqc.sources._array import ArraySource

SHAPE = (80, 96, 112)
CHUNK = 32  # 3 x 3 x 4 = 36 chunks at level 0, then 2 x 2 x 2, then 1
KW = dict(voxel_size_nm=(10, 10, 10), chunk=CHUNK, progress=False)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("resume") / "raw.h5"
    rng = np.random.default_rng(3)
    data = (rng.normal(30000, 6000, SHAPE)).clip(0, 65535).astype(np.uint16)
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=data, chunks=(16, 32, 32))
    return f"{path}:/raw"


@pytest.fixture(scope="module")
def reference(source, tmp_path_factory):
    return ingest(source, tmp_path_factory.mktemp("ref") / "ref.ome.zarr", **KW)


def _records(dest: Path) -> list[Path]:
    return sorted(p for p in Path(journal_location(dest)).glob("chunks/*/*") if p.is_file())


@pytest.mark.parametrize("when", ["create", "0", "1", "20", "36", "42", "digest", "publish"])
def test_a_killed_ingest_resumes_chunk_by_chunk(killed_ingest, source, reference, tmp_path, when):
    dest = tmp_path / "vol.ome.zarr"
    killed_ingest(source, dest, when)
    recorded = len(_records(dest))
    if when.isdigit():
        assert recorded == int(when)  # one write at a time: each finished one is recorded
    elif when == "digest":
        assert recorded == reference.chunks_written  # every chunk: the rerun writes none
    else:  # no chunk yet ("create"), or the journal went just before publishing ("publish")
        assert recorded == 0
    result = ingest(source, dest, **KW, resume=True)
    assert result.root_digest == reference.root_digest
    assert result.chunks_reused == recorded
    assert result.chunks_written + result.chunks_reused == reference.chunks_written
    assert not Path(journal_location(dest)).exists() and not staging_path(dest).exists()


def test_chunks_changed_or_lost_after_they_were_recorded_are_rewritten(
    killed_ingest, source, reference, tmp_path
):
    dest = tmp_path / "vol.ome.zarr"
    killed_ingest(source, dest, "30")
    staged = staging_path(dest) / "0" / "c"
    chunk_files = sorted(p for p in staged.rglob("*") if p.is_file())
    flipped, lost = chunk_files[3], chunk_files[7]
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    lost.unlink()
    result = ingest(source, dest, **KW, resume=True)
    assert result.root_digest == reference.root_digest
    assert result.chunks_reused == 30 - 2


def test_a_changed_source_file_starts_the_ingest_over(killed_ingest, source, reference, tmp_path):
    dest = tmp_path / "vol.ome.zarr"
    killed_ingest(source, dest, "20")
    path = Path(source.split(":/")[0])
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    try:
        result = ingest(source, dest, **KW, resume=True)
    finally:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert result.chunks_reused == 0
    assert result.root_digest == reference.root_digest


def test_a_plain_ingest_discards_the_journal_and_starts_over(
    killed_ingest, source, reference, tmp_path
):
    dest = tmp_path / "vol.ome.zarr"
    killed_ingest(source, dest, "20")
    result = ingest(source, dest, **KW, overwrite=True)
    assert result.chunks_reused == 0 and result.root_digest == reference.root_digest
    assert not Path(journal_location(dest)).exists()


def test_an_ingest_that_fails_removes_its_chunks_and_journal(
    killed_ingest, source, tmp_path, monkeypatch
):
    import emqc._ingest_levels as levels

    write = levels._write_chunk
    n = [0]

    def failing(*args, **kwargs):
        n[0] += 1
        if n[0] == 10:
            raise OSError("simulated I/O error")
        return write(*args, **kwargs)

    monkeypatch.setattr(levels, "_write_chunk", failing)
    dest = tmp_path / "vol.ome.zarr"
    with pytest.raises(OSError, match="simulated"):
        ingest(source, dest, **KW, resume=True)
    assert not dest.exists() and not staging_path(dest).exists()
    assert not Path(journal_location(dest)).exists()


def test_a_source_without_files_is_ingested_but_never_resumed(tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (40, 40, 40), dtype=np.uint8)
    dest = tmp_path / "vol.ome.zarr"
    result = ingest(ArraySource(img, voxel_size_nm=(10, 10, 10)), dest, **KW, resume=True)
    assert result.chunks_reused == 0
    assert not Path(journal_location(dest)).exists()


def test_cli_ingest_resume_says_how_many_chunks_it_kept(killed_ingest, source, reference, tmp_path):
    from click.testing import CliRunner

    from emqc.cli import cli

    dest = tmp_path / "vol.ome.zarr"
    killed_ingest(source, dest, "12")
    res = CliRunner().invoke(
        cli,
        ["ingest", source, str(dest), "--voxel-size", "10,10,10", "--chunk", "32", "--resume",
         "--no-progress"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "(12 kept from a killed run)" in res.output
    assert f"sha256:{reference.root_digest}" in res.output


@pytest.mark.parametrize("garbage", [b"{not json", b"[1, 2]", b'{"kind": "linear"}'])
def test_an_unreadable_journaled_intensity_rule_is_measured_again(
    killed_ingest, source, reference, tmp_path, garbage
):
    dest = tmp_path / "vol.ome.zarr"
    killed_ingest(source, dest, "20")
    (Path(journal_location(dest)) / "rule.json").write_bytes(garbage)
    result = ingest(source, dest, **KW, resume=True)
    assert result.chunks_reused == 20 and result.root_digest == reference.root_digest


def test_a_resumed_ingest_drops_the_chunk_temporaries_a_killed_writer_left(tmp_path):
    from emqc.ingest import remove_store_temporaries

    vol = tmp_path / "v.ome.zarr"
    (vol / "0" / "c" / "0" / "1").mkdir(parents=True)
    kept = vol / "0" / "c" / "0" / "1" / "1"
    kept.write_bytes(b"chunk")
    stale = vol / "0" / "c" / "0" / "1" / "1.11965e9f53044ebe9d86e80fd405203c.partial"
    stale.write_bytes(b"half a chunk")
    other = vol / "notes.partial"  # not zarr's pattern: not ours to delete
    other.write_bytes(b"x")
    assert remove_store_temporaries(vol) == 1
    assert kept.exists() and other.exists() and not stale.exists()
    assert remove_store_temporaries(tmp_path / "missing") == 0
