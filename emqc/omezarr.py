"""emqc's on-disk image: an OME-Zarr (NGFF 0.5) multiscale image on zarr 3.

Layout of an ingested volume ``DEST``::

    DEST/
      zarr.json               group; attributes "ome" (NGFF 0.5 multiscales, nm scale)
      0/zarr.json, 0/c/...    level 0, uint8, chunks (128, 128, 128)
      1/ ... n/               pyramid levels (see emqc.pyramid)
      emqc-manifest.json      SHA-256 of every stored file + root digest + provenance;
                              written last: its presence means the volume is complete

``DEST`` is a local folder or an object-store URL (``s3://bucket/vol.ome.zarr``); both
hold the same bytes under the same keys (see :func:`emqc.storage.zarr_store`).

Every chunk of every level is written, even all-zero ones (``write_empty_chunks``),
so that "every chunk file exists" is a property the manifest can check. Reads go
through :class:`StrictStore`, which raises :class:`~emqc.errors.MissingChunkError`
where zarr would silently return the fill value for a missing chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
import zarr.codecs
from zarr.abc.store import ByteRequest
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import WrapperStore

from . import storage
from .errors import IncompleteVolumeError, MissingChunkError
from .pyramid import Level, level_translation

__all__ = [
    "StrictStore",
    "ImageLayout",
    "create_image",
    "open_image",
    "chunk_keys",
    "DEFAULT_CHUNK",
]

DEFAULT_CHUNK = 128
NGFF_VERSION = "0.5"
AXES = ("z", "y", "x")


class StrictStore(WrapperStore[Any]):
    """A store that raises on a missing chunk instead of reading it as the fill value.

    zarr 3 treats an absent chunk as "uninitialised" and returns ``fill_value``
    for it, so a deleted or never-written chunk reads as zeros with no error. emqc
    writes every chunk, so absence always means loss or tampering.
    """

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        buf = await self._store.get(key, prototype, byte_range)
        if buf is None and _is_chunk_key(key):
            raise MissingChunkError(
                f"chunk {key} is missing from {self._store}. The volume is not whole: run "
                "`emqc verify` on it to list every missing or altered chunk, then re-ingest "
                "it from the source (or restore it from a copy)."
            )
        return buf

    async def get_partial_values(self, prototype, key_ranges):  # type: ignore[no-untyped-def]
        key_ranges = list(key_ranges)
        bufs = await self._store.get_partial_values(prototype, key_ranges)
        for (key, _), buf in zip(key_ranges, bufs, strict=True):
            if buf is None and _is_chunk_key(key):
                raise MissingChunkError(f"chunk {key} is missing from {self._store}.")
        return bufs


def _is_chunk_key(key: str) -> bool:
    return "/c/" in f"/{key}" and not key.endswith("zarr.json")


@dataclass(frozen=True)
class ImageLayout:
    """The levels of an emqc image and their physical scale."""

    levels: tuple[Level, ...]
    chunk: tuple[int, int, int]

    @property
    def voxel_size_nm(self) -> tuple[float, float, float]:
        return self.levels[0].voxel_size_nm

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.levels[0].shape


def level_chunks(shape: tuple[int, ...], chunk: tuple[int, int, int]) -> tuple[int, int, int]:
    """Chunk shape of a level: the layout's chunk, clipped to the level's shape."""
    return tuple(min(c, n) for c, n in zip(chunk, shape, strict=True))  # type: ignore[return-value]


def create_image(path: Path | str, layout: ImageLayout) -> list[zarr.Array]:
    """Create the group, every level's empty array and the NGFF metadata at ``path``.

    Parameters
    ----------
    path : Path or str
        Folder to create, or an object-store URL. It holds nothing but, at most, what
        an earlier call killed part-way left there: arrays at the level paths are
        replaced, so such leftovers never stop a resumed ingest.
    layout : ImageLayout
        Levels and chunk shape.

    Returns
    -------
    list of zarr.Array
        One writable array per level, level 0 first.
    """
    # "a", not "w": "w" empties the prefix first, deleting the partial marker on a store
    group = zarr.open_group(storage.zarr_store(path, read_only=False), mode="a", zarr_format=3)
    arrays = []
    for i, level in enumerate(layout.levels):
        arrays.append(
            group.create_array(
                str(i),
                shape=level.shape,
                chunks=level_chunks(level.shape, layout.chunk),
                dtype=np.uint8,
                fill_value=0,
                compressors=zarr.codecs.ZstdCodec(level=1),
                dimension_names=AXES,
                config={"write_empty_chunks": True},
                overwrite=True,
            )
        )
    base = layout.levels[0].voxel_size_nm
    datasets = [
        {
            "path": str(i),
            "coordinateTransformations": [
                {"type": "scale", "scale": list(level.voxel_size_nm)},
                {
                    "type": "translation",
                    "translation": level_translation(level.voxel_size_nm, base),
                },
            ],
        }
        for i, level in enumerate(layout.levels)
    ]
    group.attrs["ome"] = {
        "version": NGFF_VERSION,
        "multiscales": [
            {
                "name": "image",
                "axes": [{"name": a, "type": "space", "unit": "nanometer"} for a in AXES],
                "datasets": datasets,
                "type": "mean",
                "metadata": {
                    "description": "2x block mean per level (emqc.pyramid.downsample_mean)",
                    "chunk": list(layout.chunk),
                },
            }
        ],
    }
    return arrays


def reopen_image(path: Path | str, layout: ImageLayout) -> list[zarr.Array] | None:
    """Writable arrays of an unfinished image at ``path`` created for ``layout``, else ``None``.

    Used to resume an ingest (:mod:`emqc._chunk_journal`): the image's metadata must
    describe exactly ``layout`` (level shapes, voxel sizes, chunks), or it is not reused.
    """
    try:
        found, _ = open_image(path, strict=False)
        group = zarr.open_group(storage.zarr_store(path, read_only=False), mode="r+", zarr_format=3)
        arrays = [group[str(i)] for i in range(len(layout.levels))]
    except (IncompleteVolumeError, FileNotFoundError, KeyError):
        return None
    same = found.levels == layout.levels and all(
        tuple(a.chunks) == level_chunks(lv.shape, layout.chunk)
        for a, lv in zip(arrays, layout.levels, strict=True)
    )
    return arrays if same else None


def open_image(path: Path | str, *, strict: bool = True) -> tuple[ImageLayout, list[zarr.Array]]:
    """Open an emqc image read-only.

    Parameters
    ----------
    path : Path or str
        The image folder, or its object-store URL.
    strict : bool, optional
        Read through :class:`StrictStore` (missing chunks raise). Default True.

    Returns
    -------
    layout : ImageLayout
    arrays : list of zarr.Array
        One per level, level 0 first.

    Raises
    ------
    IncompleteVolumeError
        When the folder is not an OME-Zarr image written by emqc.
    """
    store: Any = storage.zarr_store(path, read_only=True)
    if strict:
        store = StrictStore(store)
    try:
        with storage.storage_errors(path, "read"):
            group = zarr.open_group(store, mode="r", zarr_format=3)
        ms = group.attrs["ome"]["multiscales"][0]
    except (FileNotFoundError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise IncompleteVolumeError(
            f"{path} is not an OME-Zarr image that emqc can read (no readable zarr.json with "
            f"NGFF multiscales: {exc}). Give the folder that `emqc ingest` wrote."
        ) from exc
    arrays = [group[d["path"]] for d in ms["datasets"]]
    levels = []
    prev_voxel: tuple[float, ...] | None = None
    for d, arr in zip(ms["datasets"], arrays, strict=True):
        voxel = tuple(float(v) for v in d["coordinateTransformations"][0]["scale"])
        factors = (
            (1, 1, 1)
            if prev_voxel is None
            else tuple(round(v / p) for v, p in zip(voxel, prev_voxel, strict=True))
        )
        levels.append(Level(tuple(arr.shape), voxel, factors))  # type: ignore[arg-type]
        prev_voxel = voxel
    chunk = tuple(ms.get("metadata", {}).get("chunk", arrays[0].chunks))
    return ImageLayout(tuple(levels), chunk), arrays  # type: ignore[arg-type]


def chunk_keys(array: zarr.Array) -> list[str]:
    """Store keys of every chunk of ``array`` (relative to the array), in C order."""
    grid = [range(-(-n // c)) for n, c in zip(array.shape, array.chunks, strict=True)]
    return [
        array.metadata.encode_chunk_key((i, j, k))
        for i in grid[0]
        for j in grid[1]
        for k in grid[2]
    ]
