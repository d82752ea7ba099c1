"""``open_source``: pick the reader for what the user gave."""

from __future__ import annotations

import os
from pathlib import Path

from emqc import storage
from emqc.errors import SourceNotFoundError, StorageError, UnsupportedSourceError

from ._base import VolumeSource

#: Every input form emqc reads: format name -> example spec.
SUPPORTED_FORMATS: dict[str, str] = {
    "tiff-stack": "slices/  or  'slices/*.tif'  (folder or glob of 2D .tif/.tiff slices)",
    "png-stack": "slices/  or  'slices/*.png'  (folder or glob of 2D .png slices)",
    "tiff": "volume.tif  (multipage TIFF, ImageJ hyperstack or 3D OME-TIFF)",
    "mrc": "volume.mrc  (also .rec, .st, .map)",
    "hdf5": "volume.h5:/raw  (also .hdf5, .hdf; file, colon, dataset path)",
    "zarr": "volume.zarr  or  container.zarr/raw  (Zarr v2 or v3 array; also on object "
    "storage: s3://bucket/volume.zarr, gs://…)",
    "ome-zarr": "image.ome.zarr  (OME-Zarr image group; full resolution is read; also "
    "s3://bucket/image.ome.zarr)",
    "n5": "container.n5/raw  (N5 dataset)",
    "precomputed": "precomputed://file:///data/em  (also precomputed://gs://…, s3://…)",
}

MRC_SUFFIXES = (".mrc", ".rec", ".st", ".map")


def open_source(spec: str | os.PathLike[str]) -> VolumeSource:
    """Open a 3D EM volume lazily, whatever its format.

    Only headers and metadata are read here; voxels are read by
    :meth:`VolumeSource.read`. Axis order is always (Z, Y, X).

    Parameters
    ----------
    spec : str or path-like
        One of (checked in this order):

        - ``precomputed://<url>``: a Neuroglancer precomputed layer
          (``file://``, ``gs://``, ``s3://``, ``https://``).
        - ``s3://``, ``gs://``, ``gcs://`` or another fsspec URL: a Zarr array or
          OME-Zarr image on object storage (endpoint and credentials as in
          :mod:`emqc.storage`).
        - ``file.h5:/dataset`` (also ``.hdf5``, ``.hdf``): a 3D HDF5 dataset.
        - a glob pattern (holds ``*``, ``?`` or ``[``): TIFF or PNG slices.
        - a folder with ``zarr.json``, ``.zarray`` or ``.zgroup``: Zarr array or
          OME-Zarr image; with an ``attributes.json``: N5; otherwise a folder of
          ``.tif``/``.tiff``/``.png`` slices.
        - a ``.tif``/``.tiff`` file: a 3D multipage TIFF.
        - a ``.mrc``/``.rec``/``.st``/``.map`` file: MRC.

    Returns
    -------
    VolumeSource

    Raises
    ------
    emqc.errors.SourceNotFoundError
        Nothing exists at ``spec`` (or a glob or folder holds no slice).
    emqc.errors.UnsupportedSourceError
        ``spec`` is not one of the forms above (the message lists them).
    emqc.errors.StorageError
        An object store cannot be read (bucket missing, access denied, unreachable).
    emqc.errors.CorruptSourceError, ShapeMismatchError, UnsupportedDtypeError
        The source exists but its headers are truncated or corrupt, its slices
        disagree, or its voxels are not single-channel greyscale.

    Examples
    --------
    >>> src = open_source("scans/sample3/*.tif")  # doctest: +SKIP
    >>> src.shape, src.voxel_size_nm  # doctest: +SKIP
    ((1800, 4096, 4096), None)
    >>> block = src[0:64, 0:256, 0:256]  # doctest: +SKIP
    """
    spec = os.fspath(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise TypeError(f"spec must be a non-empty path or URL string, got {spec!r}")
    if spec.startswith("precomputed://"):
        from ._precomputed import PrecomputedSource

        return PrecomputedSource(spec)
    if storage.is_remote(spec):
        return _open_remote(spec)
    if "://" in spec:
        raise UnsupportedSourceError(
            f"{spec!r} is a URL; emqc reads remote volumes only as Neuroglancer precomputed "
            f"layers, written 'precomputed://{spec}'. " + _forms()
        )

    from ._hdf5 import HDF5_SPEC, Hdf5Source

    if HDF5_SPEC.match(spec):
        return Hdf5Source(spec)

    from ._stack import PNG_SUFFIXES, TIFF_SUFFIXES, SliceStackSource, is_glob

    if is_glob(spec) and not os.path.exists(spec):
        return SliceStackSource(spec)

    path = Path(spec).expanduser()
    if not path.exists():
        raise SourceNotFoundError(f"{path.absolute()} does not exist. Check the path and rerun.")
    if path.is_dir():
        from ._n5 import N5Source, n5_attributes
        from ._zarr import ZarrSource, is_zarr

        if is_zarr(path):
            return ZarrSource(spec)
        if n5_attributes(path) is not None:
            return N5Source(spec)
        return SliceStackSource(spec)
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        from ._tiff import MultipageTiffSource

        return MultipageTiffSource(spec)
    if suffix in MRC_SUFFIXES:
        from ._mrc import MrcSource

        return MrcSource(spec)
    if suffix in PNG_SUFFIXES:
        raise UnsupportedSourceError(
            f"{path.absolute()} is one 2D image, not a volume. Give the folder or a glob of the "
            "slices (e.g. 'slices/*.png') instead."
        )
    raise UnsupportedSourceError(
        f"{path.absolute()} is not in a format emqc reads (suffix {suffix or '(none)'!r}). "
        + _forms()
    )


def _open_remote(url: str) -> VolumeSource:
    """A Zarr or OME-Zarr source on object storage; anything else there is refused."""
    from ._zarr import ZarrSource, is_zarr

    try:
        storage.filesystem_for(url)
    except StorageError as exc:  # no fsspec driver for the protocol is installed
        raise UnsupportedSourceError(
            f"{exc.message} A Neuroglancer precomputed layer there is read as "
            f"'precomputed://{url}' instead."
        ) from exc
    storage.probe(url, "read")
    if is_zarr(url):
        return ZarrSource(url)
    if not storage.exists(url):
        raise SourceNotFoundError(f"nothing is stored at {url}. Check the URL and rerun.")
    raise UnsupportedSourceError(
        f"{url} holds no Zarr metadata (zarr.json, .zarray or .zgroup). On object storage emqc "
        f"reads Zarr and OME-Zarr volumes, and Neuroglancer layers written 'precomputed://{url}'; "
        "copy a file of another format to local disk first. " + _forms()
    )


def _forms() -> str:
    return (
        "Supported inputs: "
        + "; ".join(f"{name}: {example}" for name, example in SUPPORTED_FORMATS.items())
        + "."
    )
