"""How voxel values of any supported type become the 8-bit greyscale emqc stores.

emqc stores every volume as ``uint8``: EM detectors deliver 8 to 16 bits of which
the preservation scores need far fewer, and one type keeps every later stage
simple. The rule is stated, recorded in each volume's provenance, and applied
blockwise, so a chunk's stored value never depends on how the volume was chunked:

- ``uint8``: stored unchanged (``identity``); so is integer data of any type
  whose values all lie in 0..255 (8-bit data in a 16-bit container, as MRC
  mode 6 and many cameras write it).
- integer types of at most 16 bits (``uint16``, ``int16``, ``int8``): ``lo`` and
  ``hi`` are the 0.01th and 99.99th percentiles of all voxel values, computed
  exactly from a histogram of the whole volume; ``v`` maps to
  ``round(255 * (clip(v, lo, hi) - lo) / (hi - lo))``. The percentiles ignore
  the rare hot or dead pixels that would otherwise squash the contrast.
- other integer and floating types: the same map with ``lo``, ``hi`` the
  volume's minimum and maximum. Floating volumes with NaN or infinite values are
  refused: emqc cannot know what such voxels mean.
- boolean, complex and multi-channel (RGB) data are refused.

``lo``/``hi`` can also be given explicitly (``emqc ingest --intensity-range``).
Rounding is half-up (``floor(x + 0.5)``) in float64.

References
----------
.. [1] scikit-image, ``skimage.exposure.rescale_intensity`` (same linear map,
   with ``in_range`` from percentiles as in its contrast-stretching example).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from .errors import UnsupportedDtypeError

__all__ = [
    "IntensityRule",
    "IntensityStats",
    "PERCENTILES",
    "needs_stats",
    "histogram_bins",
    "block_stats",
    "merge_stats",
    "rule_from_stats",
    "apply_rule",
    "check_dtype",
]

#: Lower and upper percentile used for integer types of at most 16 bits.
PERCENTILES = (0.01, 99.99)


@dataclass(frozen=True)
class IntensityRule:
    """The map from source values to stored ``uint8`` values.

    Attributes
    ----------
    kind : {"identity", "linear"}
        ``identity`` for uint8 input; ``linear`` clips to ``[lo, hi]`` and maps to 0..255.
    source_dtype : str
        Voxel type of the source.
    lo, hi : float
        Input values mapped to 0 and 255 (``linear`` only).
    basis : str
        How ``lo``/``hi`` were chosen, in words (recorded in provenance).
    """

    kind: Literal["identity", "linear"]
    source_dtype: str
    lo: float = 0.0
    hi: float = 255.0
    basis: str = "uint8 stored unchanged"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IntensityRule:
        return cls(**d)


@dataclass(frozen=True)
class IntensityStats:
    """Whole-volume statistics the rule needs, merged from per-block statistics."""

    minimum: float
    maximum: float
    nonfinite: int
    histogram: np.ndarray | None  # counts per value offset by ``histogram_offset``, or None
    histogram_offset: int = 0


def check_dtype(dtype: np.dtype, *, where: str) -> None:
    """Refuse voxel types that no stated rule turns into 8-bit greyscale.

    Parameters
    ----------
    dtype : numpy dtype
        Voxel type of the source.
    where : str
        The file or source, named in the error message.

    Raises
    ------
    UnsupportedDtypeError
        For boolean, complex, structured (e.g. RGB records), object or
        extended-precision types.
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "uif" or dtype.fields is not None or dtype.itemsize > 8:
        raise UnsupportedDtypeError(
            f"{where} holds voxels of type {dtype}, which emqc cannot store as 8-bit greyscale EM. "
            "emqc reads single-channel integer or floating-point volumes; convert the data to "
            "uint8 or uint16 greyscale (for RGB, take one channel or convert to luminance) and rerun."
        )


def needs_stats(dtype: np.dtype) -> bool:
    """True unless the type is ``uint8`` (stored unchanged)."""
    return np.dtype(dtype) != np.uint8


def histogram_bins(dtype: np.dtype) -> tuple[int, int] | None:
    """``(offset, n_bins)`` of the exact value histogram for ≤16-bit integers, else None."""
    dtype = np.dtype(dtype)
    if dtype.kind in "ui" and dtype.itemsize <= 2:
        info = np.iinfo(dtype)
        return -int(info.min), int(info.max) - int(info.min) + 1
    return None


def block_stats(block: np.ndarray) -> IntensityStats:
    """Statistics of one block; :func:`merge_stats` combines them over the volume.

    Parameters
    ----------
    block : (Z, Y, X) ndarray
        Voxels of any supported type.

    Returns
    -------
    IntensityStats
    """
    bins = histogram_bins(block.dtype)
    if block.dtype.kind == "f":
        finite = np.isfinite(block)
        nonfinite = int(block.size - np.count_nonzero(finite))
        values = block[finite] if nonfinite else block
    else:
        nonfinite, values = 0, block
    if values.size == 0:
        return IntensityStats(np.inf, -np.inf, nonfinite, None)
    hist = None
    if bins is not None:
        offset, n = bins
        hist = np.bincount((values.ravel().astype(np.int64) + offset), minlength=n)
    return IntensityStats(
        float(values.min()), float(values.max()), nonfinite, hist, bins[0] if bins else 0
    )


def merge_stats(parts: list[IntensityStats]) -> IntensityStats:
    """Combine per-block statistics into whole-volume statistics."""
    hists = [p.histogram for p in parts if p.histogram is not None]
    return IntensityStats(
        minimum=min(p.minimum for p in parts),
        maximum=max(p.maximum for p in parts),
        nonfinite=sum(p.nonfinite for p in parts),
        histogram=np.sum(hists, axis=0) if hists else None,
        histogram_offset=parts[0].histogram_offset if parts else 0,
    )


def rule_from_stats(dtype: np.dtype, stats: IntensityStats | None, *, where: str) -> IntensityRule:
    """The rule for a source of type ``dtype`` with whole-volume ``stats``.

    Parameters
    ----------
    dtype : numpy dtype
        Voxel type of the source.
    stats : IntensityStats or None
        Whole-volume statistics (unused for ``uint8``).
    where : str
        The source, named in error messages.

    Raises
    ------
    UnsupportedDtypeError
        When a floating volume holds NaN or infinite values.
    """
    dtype = np.dtype(dtype)
    check_dtype(dtype, where=where)
    if not needs_stats(dtype):
        return IntensityRule("identity", str(dtype))
    assert stats is not None, "statistics are required for non-uint8 sources"
    if dtype.kind in "ui" and stats.minimum >= 0 and stats.maximum <= 255:
        return IntensityRule(
            "identity", str(dtype), basis="integer values already within 0..255, stored unchanged"
        )
    if stats.nonfinite:
        raise UnsupportedDtypeError(
            f"{where} holds {stats.nonfinite} NaN or infinite voxel value(s) ({dtype}). emqc cannot "
            "tell what such voxels mean; replace them (for example with the background value) and "
            "convert the volume to uint8/uint16, or crop them away, then rerun."
        )
    if stats.histogram is not None:
        cdf = np.cumsum(stats.histogram) / stats.histogram.sum()
        lo_i = int(np.searchsorted(cdf, PERCENTILES[0] / 100.0))
        hi_i = int(np.searchsorted(cdf, PERCENTILES[1] / 100.0))
        lo, hi = float(lo_i - stats.histogram_offset), float(hi_i - stats.histogram_offset)
        basis = f"{PERCENTILES[0]}th..{PERCENTILES[1]}th percentile of all voxel values"
    else:
        lo, hi = stats.minimum, stats.maximum
        basis = "minimum..maximum of all voxel values"
    if hi <= lo:
        hi = lo + 1.0  # a constant volume maps to 0; tissue detection will report it
    return IntensityRule("linear", str(dtype), lo, hi, basis)


def explicit_rule(dtype: np.dtype, lo: float, hi: float) -> IntensityRule:
    """A linear rule with a user-given input range ``[lo, hi]``."""
    if not hi > lo:
        raise ValueError(f"intensity range must have hi > lo, got lo={lo}, hi={hi}")
    return IntensityRule("linear", str(np.dtype(dtype)), float(lo), float(hi), "given by the user")


def apply_rule(block: np.ndarray, rule: IntensityRule) -> np.ndarray:
    """Map one block to ``uint8`` by ``rule``.

    Parameters
    ----------
    block : (Z, Y, X) ndarray
    rule : IntensityRule

    Returns
    -------
    (Z, Y, X) ndarray of uint8
    """
    if rule.kind == "identity":
        return np.asarray(block, dtype=np.uint8)
    # Multiply before dividing so that exact halves (e.g. 127.5) stay exact in float64.
    scaled = (
        (np.clip(block.astype(np.float64), rule.lo, rule.hi) - rule.lo)
        * 255.0
        / (rule.hi - rule.lo)
    )
    return np.floor(scaled + 0.5).astype(np.uint8)
