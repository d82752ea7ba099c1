"""Shared fixtures: the real EM volumes under ``EMQC_DATA`` and isolation of global state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from emqc import datasets, storage
from emqc.errors import SourceNotFoundError
from emqc.manifest import MANIFEST_NAME

REPO_ROOT = Path(__file__).resolve().parents[1]


def _load(name: str) -> datasets.RealVolume:
    try:
        return datasets.load(name)
    except SourceNotFoundError as exc:
        pytest.skip(f"real EM data not available: {exc.message}")


@pytest.fixture(scope="session")
def medulla() -> datasets.RealVolume:
    """The isotropic 10 nm FIB-SEM cube (250³ uint8, Drosophila medulla, Janelia FlyEM), with neuron ids."""
    return _load("medulla")


@pytest.fixture(scope="session")
def vnc() -> datasets.RealVolume:
    """The ssTEM stack (20×1024×1024 uint8, 50×4.6×4.6 nm, Drosophila VNC), with membrane/synapse labels."""
    return _load("vnc")


@pytest.fixture(scope="session")
def isbi() -> datasets.RealVolume:
    """The ISBI 2012 training stack (30×512×512 uint8, 50×4×4 nm), with membrane labels."""
    return _load("isbi")


@pytest.fixture(autouse=True)
def _isolate_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test in its own temporary folder so nothing is written into the repo."""
    monkeypatch.chdir(tmp_path)


# --- the real cube exported to every input format emqc reads ---------------------------------
# Shared by the reader conformance tests (test_sources.py) and the ingest acceptance
# tests (test_ingest_formats.py).


@dataclass(frozen=True)
class Export:
    """One export of the cube: how to open it and what the reader must report."""

    spec: str
    format: str
    voxel_size_nm: tuple[float, float, float] | None
    dtype: str = "uint8"
    n_files: int | None = None  # exact number of files(), when known
    first_files: tuple[str, ...] = ()  # names files() must start with (natural order)


SLICE_NAMES = ("slice_0.tif", "slice_1.tif", "slice_2.tif")


def _write_tiff_stack(cube: np.ndarray, folder: Path, **kwargs: object) -> None:
    import tifffile

    folder.mkdir()
    for i, plane in enumerate(cube):
        # Unpadded numbers: only a natural sort puts slice_2 before slice_10.
        tifffile.imwrite(folder / f"slice_{i}.tif", plane, **kwargs)


@pytest.fixture
def write_tiff_stack():
    """Write a (Z, Y, X) array as one TIFF per slice, named slice_0.tif, slice_1.tif, ..."""
    return _write_tiff_stack


def _export(kind: str, cube: np.ndarray, root: Path) -> Export:  # noqa: C901 - one branch per format
    vox = (10.0, 10.0, 10.0)
    if kind == "tiff-stack":
        _write_tiff_stack(cube, root / "tiffs")
        return Export(str(root / "tiffs"), "tiff-stack", None, "uint8", len(cube), SLICE_NAMES)
    if kind == "tiff-stack-zlib-imagej":
        meta = {"spacing": 0.01, "unit": "um"}
        _write_tiff_stack(
            cube,
            root / "ztiffs",
            imagej=True,
            resolution=(100, 100),
            metadata=meta,
            compression="zlib",
            rowsperstrip=32,
        )
        return Export(str(root / "ztiffs"), "tiff-stack", vox, "uint8", len(cube), SLICE_NAMES)
    if kind == "glob":
        _write_tiff_stack(cube, root / "globbed")
        (root / "globbed" / "notes.txt").write_text("not a slice")
        spec = str(root / "globbed" / "slice_*.tif")
        return Export(spec, "tiff-stack", None, "uint8", len(cube), SLICE_NAMES)
    if kind == "png-stack":
        from PIL import Image

        (root / "pngs").mkdir()
        for i, plane in enumerate(cube):
            Image.fromarray(plane).save(root / "pngs" / f"z{i}.png")
        return Export(
            str(root / "pngs"),
            "png-stack",
            None,
            "uint8",
            len(cube),
            ("z0.png", "z1.png", "z2.png"),
        )
    if kind == "tiff-imagej":
        import tifffile

        tifffile.imwrite(
            root / "vol.tif",
            cube,
            imagej=True,
            resolution=(100, 100),
            metadata={"spacing": 0.01, "unit": "um", "axes": "ZYX"},
        )
        return Export(str(root / "vol.tif"), "tiff", vox, n_files=1)
    if kind == "ome-tiff-zlib":
        import tifffile

        meta = {
            "axes": "ZYX",
            "PhysicalSizeX": 0.01,
            "PhysicalSizeY": 0.01,
            "PhysicalSizeZ": 10,
            "PhysicalSizeZUnit": "nm",
        }
        tifffile.imwrite(root / "vol.ome.tif", cube, ome=True, metadata=meta, compression="zlib")
        return Export(str(root / "vol.ome.tif"), "tiff", vox, n_files=1)
    if kind == "mrc":
        import mrcfile

        with mrcfile.new(root / "vol.mrc") as mrc:
            mrc.set_data(cube)
            mrc.voxel_size = 100.0  # Å
        # mrcfile stores uint8 as mode 6 (uint16): the reader passes that through.
        return Export(str(root / "vol.mrc"), "mrc", vox, dtype="uint16", n_files=1)
    if kind == "hdf5":
        import h5py

        with h5py.File(root / "vol.h5", "w") as f:
            ds = f.create_dataset("volumes/raw", data=cube, chunks=(64, 64, 64), compression="gzip")
            ds.attrs["resolution_nm_zyx"] = vox
            f.create_dataset("thumbnail", data=cube[0])
        return Export(f"{root / 'vol.h5'}:/volumes/raw", "hdf5", vox, n_files=1)
    if kind in ("zarr-v3", "zarr-v2"):
        import zarr

        if kind == "zarr-v3":
            arr = zarr.create_array(
                root / "v3.zarr", shape=cube.shape, chunks=(64, 64, 64), dtype=cube.dtype
            )
            arr[...] = cube
            return Export(str(root / "v3.zarr"), "zarr", None)
        group = zarr.open_group(root / "v2.zarr", mode="w", zarr_format=2)
        group.create_array("raw", shape=cube.shape, chunks=(50, 64, 100), dtype=cube.dtype)[...] = (
            cube
        )
        return Export(str(root / "v2.zarr" / "raw"), "zarr", None)
    if kind == "ome-zarr":
        import zarr

        with warnings.catch_warnings():
            # ome-zarr 0.18 builds a deprecated Scaler as a default argument at import.
            warnings.filterwarnings("ignore", "Call to deprecated class Scaler", DeprecationWarning)
            from ome_zarr.writer import write_image
        write_image(
            cube,
            zarr.open_group(root / "img.ome.zarr", mode="w"),
            axes="zyx",
            scale={"z": 10.0, "y": 10.0, "x": 10.0},
            axes_units={"z": "nanometer", "y": "nanometer", "x": "nanometer"},
            scale_factors=[{"z": 2, "y": 2, "x": 2}],
            storage_options={"chunks": (64, 64, 64)},
        )
        return Export(str(root / "img.ome.zarr"), "ome-zarr", vox)
    if kind == "n5":
        import tensorstore as ts

        spec = {
            "driver": "n5",
            "kvstore": {"driver": "file", "path": str(root / "vol.n5")},
            "metadata": {
                "dimensions": list(cube.shape[::-1]),
                "blockSize": [64, 64, 64],
                "dataType": "uint8",
                "compression": {"type": "gzip"},
            },
        }
        arr = ts.open(spec, create=True).result()
        arr[...] = cube.T  # N5 lists dimensions x first
        attrs_file = root / "vol.n5" / "attributes.json"
        attrs = json.loads(attrs_file.read_text())
        attrs.update(resolution=[10, 10, 10], units=["nm", "nm", "nm"])
        attrs_file.write_text(json.dumps(attrs))
        return Export(str(root / "vol.n5"), "n5", vox)
    if kind == "precomputed":
        from cloudvolume import CloudVolume

        url = f"file://{root / 'layer'}"
        info = CloudVolume.create_new_info(
            num_channels=1,
            layer_type="image",
            data_type="uint8",
            encoding="raw",
            resolution=[10, 10, 10],
            voxel_offset=[5, 6, 7],
            chunk_size=[64, 64, 64],
            volume_size=list(cube.shape[::-1]),
        )
        vol = CloudVolume(url, info=info, progress=False, parallel=False)
        vol.commit_info()
        vol[5:, 6:, 7:] = cube.T[..., None]
        return Export(f"precomputed://{url}", "precomputed", vox)
    raise AssertionError(kind)


KINDS = [
    "tiff-stack",
    "tiff-stack-zlib-imagej",
    "glob",
    "png-stack",
    "tiff-imagej",
    "ome-tiff-zlib",
    "mrc",
    "hdf5",
    "zarr-v3",
    "zarr-v2",
    "ome-zarr",
    "n5",
    "precomputed",
]


@pytest.fixture
def export_volume():
    """``export_volume(kind, cube, folder) -> Export``: write ``cube`` in one of ``KINDS``."""
    return _export


@pytest.fixture(scope="session", params=KINDS)
def exported(request, medulla, tmp_path_factory) -> tuple[Export, np.ndarray]:
    root = tmp_path_factory.mktemp(request.param)
    return _export(request.param, medulla.raw, root), medulla.raw


# --- an ingest killed (SIGKILL) at a chosen moment, for the resume tests --------------------
# Shared by test_ingest_resume.py and test_object_storage.py.

_KILLED_INGEST_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import emqc._ingest_levels as levels
    import emqc.ingest as ing

    src, dest, when = sys.argv[1], sys.argv[2], sys.argv[3]
    if when in ("digest", "publish"):  # hashing the written files; publishing the volume
        name = {"digest": "digest_tree", "publish": "publish_output"}[when]
        setattr(ing, name, lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL))
    elif when == "create":  # creating the image: level 0's array is there, the rest is not
        import zarr
        make = zarr.Group.create_array

        def killing(self, name, **kwargs):
            if name == "1":
                os.kill(os.getpid(), signal.SIGKILL)
            return make(self, name, **kwargs)

        zarr.Group.create_array = killing
    else:
        n, write = [0], levels._write_chunk

        def killing(*args, **kwargs):
            n[0] += 1
            if n[0] > int(when):
                os.kill(os.getpid(), signal.SIGKILL)
            return write(*args, **kwargs)

        levels._write_chunk = killing
    ing.ingest(src, dest, voxel_size_nm=(10, 10, 10), chunk=32, progress=False, resume=True,
               overwrite=True)
    """
)


def _killed_ingest(source: str, dest: Path | str, when: str) -> None:
    """Ingest ``source`` into ``dest`` (folder or URL) in a child that SIGKILLs itself."""
    env = {**os.environ, "DASK_NUM_WORKERS": "1"}  # one chunk write at a time
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_INGEST_CHILD, source, str(dest), when],
        env=env,
        capture_output=True,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert not storage.exists(storage.join(dest, MANIFEST_NAME))


@pytest.fixture
def killed_ingest():
    """``killed_ingest(source, dest, when)``: a child process ingests ``source`` into ``dest``
    (folder or URL; 10 nm voxels, 32³ chunks, ``resume=True``) and SIGKILLs itself just
    before its ``int(when) + 1``-th chunk write, while creating the image's arrays
    (``"create"``: level 0's array exists, the NGFF metadata does not), before hashing
    what it wrote (``"digest"``) or before publishing (``"publish"``, after its journal is
    removed)."""
    return _killed_ingest
