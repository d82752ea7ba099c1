"""Shared fixtures: the real EM volumes under ``EMQC_DATA`` and isolation of global state."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    """Folder of the real EM volumes: ``$EMQC_DATA``, else ``../shared/data`` beside the repo."""
    env = os.environ.get("EMQC_DATA")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "data")


@dataclass(frozen=True)
class RealVolume:
    """A real EM volume read from ``EMQC_DATA`` with its voxel size in nm (z, y, x)."""

    path: Path
    image: np.ndarray
    voxel_size_nm: tuple[float, float, float]


def _load(relpath: str) -> RealVolume:
    path = data_root() / relpath
    if not path.is_file():
        pytest.skip(f"real EM data not found at {path}; set EMQC_DATA to the shared data folder")
    import h5py

    with h5py.File(path, "r") as f:
        raw = f["raw"]
        image = raw[...]
        # The attribute sits on the dataset in some files and on the file in others.
        attrs = raw.attrs if "resolution_nm_zyx" in raw.attrs else f.attrs
        res = tuple(float(v) for v in attrs["resolution_nm_zyx"])
    return RealVolume(path=path, image=image, voxel_size_nm=res)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def medulla() -> RealVolume:
    """The isotropic 10 nm FIB-SEM cube (250³ uint8, Drosophila medulla, Janelia FlyEM)."""
    return _load("medulla-fib-10nm/medulla_fib_10nm_250cube.h5")


@pytest.fixture(scope="session")
def vnc() -> RealVolume:
    """The serial-section TEM stack (20×1024×1024 uint8, 50×4.6×4.6 nm, Drosophila VNC)."""
    return _load("vnc-sstem/vnc_sstem_stack1.h5")


@pytest.fixture(autouse=True)
def _isolate_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test in its own temporary folder so nothing is written into the repo."""
    monkeypatch.chdir(tmp_path)
