"""Zarr v2/v3 arrays and OME-Zarr images (zarr-python 3 reads both formats).

Local folders and object-store URLs (``s3://bucket/vol.zarr``, ``gs://...``; see
:mod:`emqc.storage`) are read alike; a URL is kept as a string, so the source stays
small and picklable and every read opens the store anew.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from emqc import storage
from emqc.errors import (
    CorruptSourceError,
    EmqcError,
    UnsupportedDtypeError,
    UnsupportedSourceError,
)

from ._base import VolumeSource
from ._util import check_dtype, files_under, short_list, to_nm, voxel_size

#: Files that mark a folder as a Zarr node.
ZARR_MARKERS = ("zarr.json", ".zarray", ".zgroup")
_ZARR_ERRORS = (OSError, ValueError, KeyError, IndexError, TypeError, json.JSONDecodeError)


def is_zarr(path: Path | str) -> bool:
    """True when ``path`` (folder or URL) holds Zarr v2 or v3 metadata."""
    if storage.is_remote(path):
        return any(storage.exists(storage.join(path, m)) for m in ZARR_MARKERS)
    path = Path(path)
    return path.is_dir() and any((path / m).is_file() for m in ZARR_MARKERS)


def _open(location: Path | str) -> Any:
    return storage.zarr_store(location, read_only=True)


class ZarrSource(VolumeSource):
    """A 3D Zarr array, or the full-resolution level of an OME-Zarr image.

    - A folder holding an array (``vol.zarr`` or ``vol.zarr/raw``): read as is, as
      (Z, Y, X). Voxel size: None, unless the folder is a level of an OME-Zarr image
      whose metadata lies in the parent folder, in which case that level's scale is
      used as below.
    - An OME-Zarr image group (NGFF 0.4 ``multiscales`` attribute, or 0.5 under
      ``ome``): the first multiscale's first dataset, the full resolution. Axes of
      type space are (Z, Y, X) in their stored order; any other axis (channel,
      time) must have length 1. Voxel size: the product of the dataset's and the
      multiscale's ``scale`` transforms, in each axis' ``unit`` (angstrom,
      nanometer, micrometer, ... converted to nm); None when a spatial axis has no
      unit.
    - Any other group: refused, listing the arrays inside.

    Chunks missing on disk read as the array's fill value: zarr writes no chunk
    that holds only the fill value, so a missing chunk is not an error here.
    """

    def __init__(self, spec: str) -> None:
        self.spec = spec
        root: Path | str = (
            spec.rstrip("/") if storage.is_remote(spec) else Path(spec).expanduser().resolve()
        )
        self._root = str(root)
        try:
            with storage.storage_errors(root, "read"):
                node = zarr.open(store=_open(root), mode="r")
                if isinstance(node, zarr.Group):
                    array_dir, ome = _ome_image(node, root)
                    self.format = "ome-zarr"
                else:
                    array_dir, ome = root, _ome_level(root)
                    self.format = "ome-zarr" if ome else "zarr"
                arr = zarr.open_array(store=_open(array_dir), mode="r")
        except EmqcError:
            raise
        except _ZARR_ERRORS as exc:
            raise CorruptSourceError(
                f"{root} could not be opened as Zarr: its metadata is missing or corrupt "
                f"(zarr: {exc}). Check the folder (or re-copy it) and rerun."
            ) from exc
        self._array_dir = str(array_dir)
        if ome:
            axes, scale = ome
            if len(axes) != arr.ndim:
                raise CorruptSourceError(
                    f"{root}: the OME-Zarr metadata lists {len(axes)} axes but the array "
                    f"{storage.basename(array_dir)} has {arr.ndim} dimensions. Fix or re-export "
                    "the metadata."
                )
            spatial = [i for i, a in enumerate(axes) if _is_space(a)]
        else:
            axes, scale = [{"name": f"dim_{i}"} for i in range(arr.ndim)], None
            spatial = [0, 1, 2] if arr.ndim == 3 else []
        extra = [n for i, n in enumerate(arr.shape) if i not in spatial and n != 1]
        if len(spatial) != 3 or extra:
            multichannel = any(
                _is_channel(a) and n > 1 for a, n in zip(axes, arr.shape, strict=True)
            )
            kind = UnsupportedDtypeError if multichannel else UnsupportedSourceError
            raise kind(
                f"{array_dir} is an array of shape {arr.shape} (axes "
                f"{[a.get('name') for a in axes]}); emqc reads one single-channel 3D volume "
                "(Z, Y, X). Give a 3D array, or export one channel and time point first."
            )
        self._spatial = spatial
        self.shape = tuple(int(arr.shape[i]) for i in spatial)  # type: ignore[assignment]
        self.dtype = check_dtype(arr.dtype, str(array_dir))
        self.native_chunks = tuple(int(arr.chunks[i]) for i in spatial)  # type: ignore[assignment]
        self._ndim = arr.ndim
        self.voxel_size_nm = None
        if scale is not None and len(scale) == arr.ndim:
            units = [axes[i].get("unit") for i in spatial]
            self.voxel_size_nm = voxel_size(
                to_nm(scale[i], u) for i, u in zip(spatial, units, strict=True)
            )

    def _read(self, z: slice, y: slice, x: slice) -> np.ndarray:
        index: list[Any] = [0] * self._ndim
        for i, s in zip(self._spatial, (z, y, x), strict=True):
            index[i] = s
        try:
            with storage.storage_errors(self._array_dir, "read"):
                arr = zarr.open_array(store=_open(self._array_dir), mode="r")
                out = np.asarray(arr[tuple(index)])
        except EmqcError:
            raise
        except _ZARR_ERRORS + (RuntimeError,) as exc:
            raise CorruptSourceError(
                f"{self._array_dir} could not be read (zarr: {exc}); a chunk is truncated or "
                "corrupt. Re-copy the array and rerun."
            ) from exc
        return out

    def files(self) -> list[Path]:
        """The array's files, plus the group metadata files of an OME-Zarr image.

        Empty on an object store, whose objects are not fetched twice for provenance.
        """
        if storage.is_remote(self._root):
            return []
        root, array_dir = Path(self._root), Path(self._array_dir)
        meta = [root / m for m in (*ZARR_MARKERS, ".zattrs")] if root != array_dir else []
        return [p for p in meta if p.is_file()] + files_under(array_dir)


def _is_space(axis: dict[str, Any]) -> bool:
    return axis.get("type") == "space" or (
        axis.get("type") is None and axis.get("name") in ("z", "y", "x")
    )


def _is_channel(axis: dict[str, Any]) -> bool:
    return axis.get("type") == "channel" or axis.get("name") == "c"


def _multiscales(attrs: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The ``multiscales`` list of NGFF 0.5 (under ``ome``) or 0.4 (top level) attributes."""
    ome = attrs.get("ome")
    found = (ome if isinstance(ome, dict) else attrs).get("multiscales")
    return found if isinstance(found, list) and found else None


def _axes_and_scale(ms: dict[str, Any], dataset: dict[str, Any]) -> tuple[list, list | None]:
    axes = [a if isinstance(a, dict) else {"name": a} for a in ms.get("axes", [])]
    scale: list[float] | None = None
    for transforms in (
        dataset.get("coordinateTransformations"),
        ms.get("coordinateTransformations"),
    ):
        for t in transforms or []:
            if t.get("type") == "scale" and "scale" in t:
                s = [float(v) for v in t["scale"]]
                scale = s if scale is None else [a * b for a, b in zip(scale, s, strict=True)]
    return axes, scale


def _ome_image(group: zarr.Group, root: Path | str) -> tuple[Path | str, tuple[list, list | None]]:
    """Full-resolution array folder and (axes, scale) of an OME-Zarr image group."""
    mss = _multiscales(dict(group.attrs))
    if mss is None:
        arrays = [
            f"{name} {tuple(a.shape)}"
            for name, a in group.members(max_depth=None)
            if isinstance(a, zarr.Array)
        ]
        raise UnsupportedSourceError(
            f"{root} is a Zarr group, not an array or an OME-Zarr image. Arrays inside: "
            f"{short_list(arrays)}. Give one as '{root}/<name>'."
        )
    dataset = mss[0]["datasets"][0]
    return storage.join(root, dataset["path"]), _axes_and_scale(mss[0], dataset)


def _ome_level(array_dir: Path | str) -> tuple[list, list | None] | None:
    """(axes, scale) when ``array_dir`` is a level listed by an OME-Zarr image in its parent."""
    parent = storage.parent(array_dir)
    if not is_zarr(parent):
        return None
    try:
        mss = _multiscales(dict(zarr.open_group(store=_open(parent), mode="r").attrs))
    except _ZARR_ERRORS:
        return None
    for ms in mss or []:
        for dataset in ms.get("datasets", []):
            if dataset.get("path") == storage.basename(array_dir):
                return _axes_and_scale(ms, dataset)
    return None
