"""N5 datasets through tensorstore (driver ``n5`` on the local file system)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import tensorstore as ts

from emqc.errors import CorruptSourceError, UnsupportedSourceError

from ._base import VolumeSource
from ._util import check_dtype, files_under, short_list, to_nm, voxel_size

_TS_ERRORS = (ValueError, OSError, RuntimeError)


def n5_attributes(path: Path) -> dict[str, Any] | None:
    """The parsed ``attributes.json`` of an N5 node, or None when there is none."""
    attrs = path / "attributes.json"
    if not (path.is_dir() and attrs.is_file()):
        return None
    try:
        with open(attrs, encoding="utf-8") as fh:
            found = json.load(fh)
    except (OSError, ValueError) as exc:
        raise CorruptSourceError(
            f"{attrs} is not readable JSON ({exc}); re-copy the N5 container and rerun."
        ) from exc
    return found if isinstance(found, dict) else None


class N5Source(VolumeSource):
    """A 3D N5 dataset (a folder whose ``attributes.json`` has ``dimensions``).

    N5 lists dimensions fastest-varying first, i.e. (x, y, z) for a volume;
    tensorstore keeps that order, and this reader transposes it to (Z, Y, X):
    ``shape`` and ``native_chunks`` are ``dimensions`` and ``blockSize`` reversed.

    Voxel size, from ``attributes.json`` (both in x, y, z order, reversed here):
    ``pixelResolution`` as ``{"dimensions": [x, y, z], "unit": "nm"}`` (the
    n5-viewer form), else ``resolution`` [x, y, z] with ``units`` (one unit string
    or one per axis). None when no unit is given, since the unit is then unknown.

    Chunks missing on disk read as zeros (N5 writers skip empty blocks).
    """

    format = "n5"

    def __init__(self, spec: str) -> None:
        self.spec = spec
        root = Path(spec).expanduser().resolve()
        self._root = str(root)
        attrs = n5_attributes(root) or {}
        dims = attrs.get("dimensions")
        if not isinstance(dims, list):
            found = [
                str(p.parent.relative_to(root))
                for p in sorted(root.rglob("attributes.json"))
                if "dimensions" in (n5_attributes(p.parent) or {})
            ]
            raise UnsupportedSourceError(
                f"{root} is an N5 group, not a dataset. Datasets inside: {short_list(found)}. "
                f"Give one as '{root}/<name>'."
            )
        if len(dims) != 3:
            raise UnsupportedSourceError(
                f"{root} is a {len(dims)}D N5 dataset (dimensions {dims}, x first); emqc reads "
                "one single-channel 3D volume. Export a 3D dataset first."
            )
        arr = self._open()
        self.shape = tuple(int(n) for n in reversed(arr.shape))  # type: ignore[assignment]
        self.dtype = check_dtype(arr.dtype.numpy_dtype, str(root))
        block = attrs.get("blockSize") or list(arr.chunk_layout.read_chunk.shape)
        self.native_chunks = tuple(int(n) for n in reversed(block))  # type: ignore[assignment]
        self.voxel_size_nm = _voxel_size(attrs)

    def _open(self) -> ts.TensorStore:
        spec = {"driver": "n5", "kvstore": {"driver": "file", "path": self._root}}
        try:
            return ts.open(spec, read=True).result()
        except _TS_ERRORS as exc:
            raise CorruptSourceError(
                f"{self._root} could not be opened as N5 (tensorstore: {exc}). Check "
                "attributes.json (or re-copy the container) and rerun."
            ) from exc

    def _read(self, z: slice, y: slice, x: slice) -> np.ndarray:
        arr = self._open()
        try:
            out = arr[x, y, z].read().result().transpose(2, 1, 0)
        except _TS_ERRORS as exc:
            raise CorruptSourceError(
                f"{self._root} could not be read (tensorstore: {exc}); a block is truncated or "
                "corrupt. Re-copy the container and rerun."
            ) from exc
        return out

    def files(self) -> list[Path]:
        return files_under(Path(self._root))


def _voxel_size(attrs: dict[str, Any]) -> tuple[float, float, float] | None:
    pr = attrs.get("pixelResolution")
    if isinstance(pr, dict) and isinstance(pr.get("dimensions"), list):
        values, units = pr["dimensions"], [pr.get("unit")] * 3
    elif isinstance(attrs.get("resolution"), list):
        values, units = attrs["resolution"], attrs.get("units")
        units = [units] * 3 if isinstance(units, str) or units is None else units
    else:
        return None
    if len(values) != 3 or not isinstance(units, list) or len(units) != 3:
        return None
    try:
        return voxel_size(
            to_nm(float(v), u) for v, u in zip(values[::-1], units[::-1], strict=True)
        )
    except (TypeError, ValueError):
        return None
