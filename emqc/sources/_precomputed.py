"""Neuroglancer precomputed volumes (``precomputed://file://…``, ``gs://…``, ``s3://…``)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from emqc.errors import (
    CorruptSourceError,
    EmqcError,
    SourceNotFoundError,
    UnsupportedDtypeError,
)

from ._base import VolumeSource
from ._util import check_dtype, files_under, voxel_size

PREFIX = "precomputed://"


class PrecomputedSource(VolumeSource):
    """Scale 0 (full resolution) of a precomputed image layer, read with cloud-volume.

    cloud-volume returns cutouts as (x, y, z, channel); this reader keeps the only
    channel and transposes to (Z, Y, X). Coordinates are relative to the layer's
    ``voxel_offset``: index 0 here is the first voxel of the layer's bounds.
    Missing chunks are errors (``fill_missing=False``), not zeros.

    The ``info`` file is read once, at open, and handed to every later read, so a
    remote layer is not asked for it again per read.

    Voxel size: the scale's ``resolution`` (nm, x y z) reversed to (z, y, x).
    """

    format = "precomputed"

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self._url = spec if spec.startswith(PREFIX) else PREFIX + spec
        self._info: dict[str, Any] | None = None
        vol = self._volume()
        self._info = copy.deepcopy(vol.info)
        if int(vol.num_channels) != 1:
            raise UnsupportedDtypeError(
                f"{spec} has {vol.num_channels} channels; emqc needs single-channel greyscale "
                "EM. Give a single-channel layer."
            )
        self._offset = tuple(int(v) for v in vol.voxel_offset)  # x, y, z
        self.shape = tuple(int(n) for n in reversed(tuple(vol.shape)[:3]))  # type: ignore[assignment]
        self.dtype = check_dtype(np.dtype(vol.dtype), spec)
        self.native_chunks = tuple(int(n) for n in reversed(tuple(vol.chunk_size)))  # type: ignore[assignment]
        self.voxel_size_nm = voxel_size(float(v) for v in reversed(tuple(vol.resolution)))
        self._key = str(vol.key)

    def _volume(self) -> Any:
        from cloudvolume import CloudVolume
        from cloudvolume.exceptions import InfoUnavailableError, ScaleUnavailableError

        try:
            return CloudVolume(
                self._url,
                mip=0,
                fill_missing=False,
                parallel=False,
                progress=False,
                bounded=True,
                cache=False,
                info=self._info,
                provenance={} if self._info is not None else None,
            )
        except (InfoUnavailableError, ScaleUnavailableError) as exc:
            raise SourceNotFoundError(
                f"{self.spec}: no precomputed layer there (cloud-volume: {exc}). Check the URL; "
                "it must name the layer folder holding the 'info' file."
            ) from exc
        except EmqcError:
            raise
        except Exception as exc:  # cloud-volume raises many kinds; none is a bug of ours
            raise CorruptSourceError(
                f"{self.spec} could not be opened as a precomputed layer (cloud-volume: "
                f"{type(exc).__name__}: {exc}). Check the URL, credentials and 'info' file."
            ) from exc

    def _read(self, z: slice, y: slice, x: slice) -> np.ndarray:
        from cloudvolume.exceptions import EmptyVolumeException

        ox, oy, oz = self._offset
        vol = self._volume()
        try:
            cut = vol[
                x.start + ox : x.stop + ox, y.start + oy : y.stop + oy, z.start + oz : z.stop + oz
            ]
        except EmptyVolumeException as exc:
            raise CorruptSourceError(
                f"{self.spec}: chunk {exc} is missing, so the box z={z.start}:{z.stop}, "
                f"y={y.start}:{y.stop}, x={x.start}:{x.stop} cannot be read (missing chunks are "
                "not read as zeros). Re-upload the missing chunks and rerun."
            ) from exc
        except Exception as exc:  # decoding and transport errors of many kinds
            raise CorruptSourceError(
                f"{self.spec}: the box z={z.start}:{z.stop}, y={y.start}:{y.stop}, "
                f"x={x.start}:{x.stop} could not be read (cloud-volume: {type(exc).__name__}: "
                f"{exc}). Check the chunks there and rerun."
            ) from exc
        out = np.asarray(cut)[..., 0].transpose(2, 1, 0)
        return out

    def files(self) -> list[Path]:
        """``info`` and every file of scale 0, for a ``file://`` layer; [] for remote ones."""
        location = self._url[len(PREFIX) :]
        if not location.startswith("file://"):
            return []
        root = Path(location[len("file://") :]).expanduser().resolve()
        return [p for p in [root / "info"] if p.is_file()] + files_under(root / self._key)
