"""A 3D dataset inside an HDF5 file (``file.h5:/path/in/file``) through h5py."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from emqc.errors import (
    CorruptSourceError,
    InputError,
    SourceNotFoundError,
    UnsupportedSourceError,
)

from ._base import VolumeSource
from ._util import check_dtype, short_list, voxel_size

#: ``file.h5``, ``file.hdf5`` or ``file.hdf``, optionally followed by ``:dataset``.
HDF5_SPEC = re.compile(r"^(?P<file>.*?\.(?:h5|hdf5|hdf))(?::(?P<dataset>.*))?$", re.IGNORECASE)

#: Voxel-size attributes tried, in order, on the dataset and then on the file root:
#: (key, nm per stored unit). All are read as (z, y, x).
VOXEL_SIZE_KEYS: tuple[tuple[str, float], ...] = (
    ("resolution_nm_zyx", 1.0),  # nm, z y x (the data shipped with emqc)
    ("resolution", 1.0),  # nm, z y x (CREMI)
    ("voxel_size", 1.0),  # nm, z y x (funlib / daisy)
    ("element_size_um", 1e3),  # µm, z y x (ilastik, Fiji's HDF5 plugin)
)


class Hdf5Source(VolumeSource):
    """One 3D dataset of an HDF5 file, read with h5py.

    The spec is ``path/to/file.h5:/group/dataset``. Without ``:dataset`` the file
    must hold exactly one 3D dataset, which is then used. Each :meth:`read` opens
    the file anew (h5py objects cannot be pickled).

    Voxel size, from the first of these attributes found on the dataset, then on
    the file's root group (all three values must be positive numbers, in z, y, x
    order): ``resolution_nm_zyx`` (nm), ``resolution`` (nm, the CREMI
    convention), ``voxel_size`` (nm, funlib/daisy), ``element_size_um`` (µm,
    ilastik/Fiji). An attribute that is present but not three positive numbers is
    skipped with a warning. None when no attribute is found.
    """

    format = "hdf5"

    def __init__(self, spec: str) -> None:
        self.spec = spec
        m = HDF5_SPEC.match(spec)
        if m is None:
            raise UnsupportedSourceError(
                f"{spec!r} is not an HDF5 source; write it as 'file.h5:/path/to/dataset'."
            )
        path = Path(m["file"]).expanduser().resolve()
        self._path = str(path)
        if not path.is_file():
            raise SourceNotFoundError(
                f"{path} does not exist (or is not a file). Check the path and rerun."
            )
        try:
            with h5py.File(path, "r") as f:
                self._dataset = _pick_dataset(f, path, m["dataset"])
                ds = f[self._dataset]
                if ds.ndim != 3:
                    raise UnsupportedSourceError(
                        f"{path}:{self._dataset} is {ds.ndim}D (shape {ds.shape}); emqc reads one "
                        "single-channel 3D volume (Z, Y, X). " + _others(f, path)
                    )
                self.shape = tuple(int(n) for n in ds.shape)  # type: ignore[assignment]
                self.dtype = check_dtype(ds.dtype, f"{path}:{self._dataset}")
                self.native_chunks = ds.chunks or (1, 1, self.shape[2])
                self.voxel_size_nm = _voxel_size(ds.attrs, path, self._dataset)
                if self.voxel_size_nm is None:
                    self.voxel_size_nm = _voxel_size(f.attrs, path, "/")
        except InputError:
            raise
        except (OSError, KeyError, ValueError) as exc:
            raise CorruptSourceError(
                f"{path} is not a readable HDF5 file: it is truncated or corrupt (h5py: {exc}). "
                "Re-export or re-copy that file and rerun."
            ) from exc

    def _read(self, z: slice, y: slice, x: slice) -> np.ndarray:
        try:
            with h5py.File(self._path, "r") as f:
                out = f[self._dataset][z, y, x]
        except (OSError, KeyError, ValueError) as exc:
            raise CorruptSourceError(
                f"{self._path}:{self._dataset} could not be read (h5py: {exc}); the file is "
                "truncated or corrupt, or compressed with an HDF5 filter that is not installed "
                "(e.g. install hdf5plugin). Re-export or re-copy the file and rerun."
            ) from exc
        return out

    def files(self) -> list[Path]:
        return [Path(self._path)]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "dataset": self._dataset}


def _datasets(f: h5py.File) -> list[tuple[str, tuple[int, ...]]]:
    found: list[tuple[str, tuple[int, ...]]] = []
    f.visititems(
        lambda name, obj: (
            found.append(("/" + name, obj.shape)) if isinstance(obj, h5py.Dataset) else None
        )
    )
    return found


def _others(f: h5py.File, path: Path) -> str:
    vols = [f"{n} {s}" for n, s in _datasets(f) if len(s) == 3]
    if vols:
        return (
            f"3D datasets in {path.name}: {short_list(vols)}. Give one as "
            f"'{path}:/path/to/dataset'."
        )
    return f"{path.name} holds no 3D dataset."


def _pick_dataset(f: h5py.File, path: Path, name: str | None) -> str:
    if name:
        name = "/" + name.lstrip("/")
        if isinstance(f.get(name), h5py.Dataset):
            return name
        raise SourceNotFoundError(f"{path} has no dataset {name}. " + _others(f, path))
    vols = [n for n, s in _datasets(f) if len(s) == 3]
    if len(vols) == 1:
        return vols[0]
    if not vols:
        raise UnsupportedSourceError(
            f"{path} holds no 3D dataset (datasets: "
            f"{short_list([f'{n} {s}' for n, s in _datasets(f)])}). emqc reads one "
            "single-channel 3D volume (Z, Y, X)."
        )
    raise InputError(f"{path} holds several 3D datasets, so name one. " + _others(f, path))


def _voxel_size(
    attrs: h5py.AttributeManager, path: Path, owner: str
) -> tuple[float, float, float] | None:
    for key, nm_per_unit in VOXEL_SIZE_KEYS:
        if key not in attrs:
            continue
        try:
            values = np.asarray(attrs[key], dtype=float).ravel()
        except (TypeError, ValueError):
            values = np.empty(0)
        vox = voxel_size(v * nm_per_unit for v in values) if values.size == 3 else None
        if vox is not None:
            return vox
        warnings.warn(
            f"{path}: attribute {key!r} of {owner} is {attrs[key]!r}, not three positive "
            "numbers (z, y, x); it is ignored as a voxel size.",
            UserWarning,
            stacklevel=3,
        )
    return None
