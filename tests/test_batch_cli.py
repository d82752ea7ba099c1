"""``emqc batch`` end to end: the real networks, a real local Dask cluster (worker processes),
bad entries listed with reasons, a rerun that redoes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from emqc.batch import output_digests
from emqc.testing import synthetic_h5

pytestmark = pytest.mark.slow


def emqc_batch(manifest: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "emqc", "batch", str(manifest), "--no-progress", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_bad_entries_are_listed_the_good_samples_finish_and_a_rerun_redoes_nothing(tmp_path):
    for i in range(2):
        synthetic_h5(tmp_path / f"s{i}.h5", i, shape=(48, 128, 128))
    broken = synthetic_h5(tmp_path / "broken.h5", 2, shape=(48, 128, 128))
    broken.write_bytes(broken.read_bytes()[:5000])
    manifest = tmp_path / "study.yaml"
    manifest.write_text(
        "study: cli-test\noutput: out\nseed: 3\nblock_vox: [32, 48, 48]\nblocks: 2\nsamples:\n"
        "  - {id: s0, source: s0.h5:/raw, voxel_size_nm: [10, 10, 10]}\n"
        "  - {id: gone, source: gone.h5:/raw, voxel_size_nm: [10, 10, 10]}\n"
        "  - {id: coarse, source: s1.h5:/raw, voxel_size_nm: [50, 50, 50]}\n"
        "  - {id: corrupt, source: broken.h5:/raw, voxel_size_nm: [10, 10, 10]}\n"
        "  - {id: s1, source: s1.h5:/raw, voxel_size_nm: [10, 10, 10]}\n"
    )
    first = emqc_batch(manifest, "--workers", "2", "--concurrent-samples", "2")
    assert first.returncode == 1, first.stderr
    assert "Traceback" not in first.stderr
    assert "dashboard" in first.stderr.lower()
    failures = [line for line in first.stderr.splitlines() if line.startswith("failed: ")]
    assert len(failures) == 3, first.stderr
    assert any(
        f.startswith("failed: gone at ingest") and "gone.h5 does not exist" in f for f in failures
    )
    assert any(
        f.startswith("failed: coarse at ingest") and "too far from the 10 nm" in f for f in failures
    )
    assert any(f.startswith("failed: corrupt at ingest") and "broken.h5" in f for f in failures)
    for sample in ("s0", "s1"):
        assert sample in first.stdout
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    done = {r["sample"]: r for r in summary["samples"] if r["status"] == "done"}
    assert set(done) == {"s0", "s1"}
    for row in done.values():
        assert 0 <= row["membrane_integrity_mean"] <= 1 and row["membrane_integrity_verdict"]
    models = json.loads((tmp_path / "out/samples/s0/summary.json").read_text())["models"]
    assert "fibsem3d" in models and len(models["fibsem3d"]["sha256"]) == 64

    before = output_digests(tmp_path / "out")
    second = emqc_batch(manifest, "--workers", "1", "--threads-per-worker", "2")
    assert second.returncode == 1
    assert output_digests(tmp_path / "out") == before
    runs = sorted((tmp_path / "out/runs").glob("*.json"))
    log = json.loads(runs[-1].read_text())
    assert log["samples"]["s0"]["ran"] == {} and log["samples"]["s0"]["reused"]["score"] == 2
