"""``emqc demo``, the main job, run as a user runs it (a real local Dask cluster)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from emqc.manifest import verify_volume
from emqc.sampling.volume import read_block_list


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "emqc", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "SYNTHETIC" in proc.stderr and str(out) in proc.stdout
    for sample in ("S01", "S02"):
        volume = out / "volumes" / f"{sample}.ome.zarr"
        assert verify_volume(volume).ok
        blocks = read_block_list(out / "blocks" / f"{sample}.blocks.json")
        assert len(blocks.blocks) == 4 and blocks.seed == 20261123
        png = np.asarray(Image.open(out / "blocks" / f"{sample}.blocks.png").convert("L"))
        assert png.std() > 20  # four block images, not a blank canvas
