"""Block origins drawn uniformly at random among the positions wholly inside tissue.

A block position is a level-0 voxel corner ``(z, y, x)``; it is *valid* when the
block lies inside the volume and every coarse mask voxel it touches, even in part,
is tissue. Validity is checked in O(1) through a summed-area table of the mask.

Along one axis, a position ``o`` touches mask cells ``o // s`` to
``(o + b - 1) // s``; for a given first cell the block spans one of two numbers of
cells. Positions therefore fall into *classes* (first cell, span) per axis, each a
contiguous run of positions, and validity depends only on the class triple. Counting
classes gives the exact number of valid positions without enumerating them, and
sampling a class with weight equal to its number of positions, then a position
inside it, is exactly uniform too: that is how a sparse mask is sampled without an
unbounded number of rejections.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from emqc.errors import NoTissueError, SamplingError

__all__ = ["count_valid_positions", "draw_seed", "rng_for", "sample_block_origins"]

# Below this fraction of valid positions, rejection sampling is replaced by sampling
# the valid classes by weight (at most 32 draws per valid one are expected above it).
_REJECTION_MIN_FRACTION = 1 / 32
# Candidates drawn per call to the generator: part of the algorithm (the output for a
# seed depends on it), so it is a constant, never tuned at run time.
_BATCH = 1024
_SEED_BITS = 128


def draw_seed() -> int:
    """A fresh 128-bit seed from the operating system's secure random source."""
    return secrets.randbits(_SEED_BITS)


def rng_for(seed: int, volume_digest: str) -> np.random.Generator:
    """The random generator for a seed and a volume, the same on every machine.

    Parameters
    ----------
    seed : int
        User's or :func:`draw_seed`'s seed, ``0 <= seed < 2**128``.
    volume_digest : str
        Hex SHA-256 digest (64 characters) of the volume's content.

    Returns
    -------
    numpy.random.Generator
        PCG64 seeded by a :class:`numpy.random.SeedSequence` whose entropy is the
        digest's 8 and the seed's 4 32-bit words, each at fixed width so that no two
        (seed, digest) pairs share an entropy.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}: {seed!r}")
    seed = int(seed)
    if not 0 <= seed < 2**_SEED_BITS:
        raise ValueError(f"seed must satisfy 0 <= seed < 2**{_SEED_BITS}, got {seed}")
    if not isinstance(volume_digest, str):
        raise TypeError(f"volume_digest must be a hex str, got {type(volume_digest).__name__}")
    try:
        digest = bytes.fromhex(volume_digest)
    except ValueError as exc:
        raise ValueError(f"volume_digest must be hex, got {volume_digest!r}") from exc
    if len(digest) != 32:
        raise ValueError(
            f"volume_digest must be a SHA-256 digest (64 hex digits), got {volume_digest!r}"
        )
    words = [int.from_bytes(digest[i : i + 4], "big") for i in range(0, 32, 4)]
    words += [(seed >> (32 * i)) & 0xFFFFFFFF for i in reversed(range(_SEED_BITS // 32))]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(words)))


def _int(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}: {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _triple(name: str, value: Sequence[int]) -> tuple[int, int, int]:
    if isinstance(value, str) or not isinstance(value, Sequence | np.ndarray) or len(value) != 3:
        raise TypeError(f"{name} must be 3 ints (z, y, x), got {value!r}")
    return tuple(_int(f"{name} {tuple(value)}: each", v, 1) for v in value)  # type: ignore


@dataclass(frozen=True)
class _Axis:
    """Position classes along one axis: index ``[k, c]`` is span ``spans[k]`` from cell ``c``."""

    spans: tuple[int, int]
    counts: np.ndarray  # (2, C) int64: positions in each class
    starts: np.ndarray  # (2, C) int64: first position of each class


def _axis(length: int, block: int, scale: int) -> _Axis:
    o = np.arange(length - block + 1, dtype=np.int64)
    first = o // scale
    span = (o + block - 1) // scale - first + 1
    lo = int(span.min())
    k = span - lo  # 0 or 1: a run of s positions crosses at most one more cell boundary
    ncells = int(first[-1]) + 1
    counts = np.zeros((2, ncells), dtype=np.int64)
    np.add.at(counts, (k, first), 1)
    starts = np.zeros((2, ncells), dtype=np.int64)
    # Within a first cell the span grows with o, so class k=0 precedes k=1.
    starts[0] = np.arange(ncells) * scale
    starts[1] = starts[0] + counts[0]
    return _Axis(spans=(lo, lo + 1), counts=counts, starts=starts)


class _Problem:
    """A validated sampling problem: summed-area table and per-axis position classes."""

    def __init__(
        self,
        valid: np.ndarray,
        mask_scale: Sequence[int],
        volume_shape: Sequence[int],
        block_shape: Sequence[int],
    ) -> None:
        if not isinstance(valid, np.ndarray):
            raise TypeError(f"valid must be a numpy ndarray, got {type(valid).__name__}")
        if valid.ndim != 3 or valid.dtype != bool:
            raise TypeError(f"valid must be a 3-D bool array, got {valid.ndim}-D {valid.dtype}")
        self.scale = _triple("mask_scale", mask_scale)
        self.volume = _triple("volume_shape", volume_shape)
        self.block = _triple("block_shape", block_shape)
        ceil = tuple(-(-v // s) for v, s in zip(self.volume, self.scale, strict=True))
        floor = tuple(v // s for v, s in zip(self.volume, self.scale, strict=True))
        if any(not f <= m <= c for f, m, c in zip(floor, valid.shape, ceil, strict=True)):
            raise ValueError(
                f"valid has shape {valid.shape}, but volume_shape={self.volume} at "
                f"mask_scale={self.scale} needs {ceil} (or {floor} if the level drops "
                "partial voxels)"
            )
        if any(b > v for b, v in zip(self.block, self.volume, strict=True)):
            raise SamplingError(
                f"block_shape={self.block} voxels does not fit in volume_shape={self.volume}"
            )
        self.mask = valid
        # Level-0 voxels that no mask voxel covers (a level that drops partial voxels)
        # count as non-tissue: padding with False keeps the check conservative.
        padded = np.zeros(ceil, dtype=bool)
        padded[tuple(slice(0, m) for m in valid.shape)] = valid
        # Summed-area table (Crow 1984) with a zero plane in front along each axis, and
        # two copies of the last plane behind, so that the boxes of classes that hold
        # no position can be read through plain slices too (they count as non-tissue).
        self.sat = np.zeros(tuple(c + 3 for c in ceil), dtype=np.int64)
        cz, cy, cx = ceil
        sums = padded.cumsum(0, dtype=np.int64).cumsum(1).cumsum(2)
        self.sat[1 : cz + 1, 1 : cy + 1, 1 : cx + 1] = sums
        self.sat[cz + 1 :] = self.sat[cz]
        self.sat[:, cy + 1 :] = self.sat[:, cy : cy + 1]
        self.sat[:, :, cx + 1 :] = self.sat[:, :, cx : cx + 1]
        self.axes = [_axis(*a) for a in zip(self.volume, self.block, self.scale, strict=True)]
        self.n_positions = int(
            np.prod([v - b + 1 for v, b in zip(self.volume, self.block, strict=True)])
        )
        # Per span combination: which first-cell triples are valid, and their weights.
        self.classes: dict[tuple[int, int, int], np.ndarray] = {}
        self.n_valid = 0
        for ks in itertools.product((0, 1), repeat=3):
            ok = self._valid_classes(ks)
            weights = [a.counts[k] for a, k in zip(self.axes, ks, strict=True)]
            self.classes[ks] = ok
            self.n_valid += int(np.einsum("zyx,z,y,x->", ok, *weights, dtype=np.int64))

    def _box_sums(self, lo: tuple, hi: tuple) -> np.ndarray:
        """Mask sums over the cells ``[lo, hi)``: (z, y, x) index arrays or slices."""
        s, (z0, y0, x0), (z1, y1, x1) = self.sat, lo, hi
        return (
            s[z1, y1, x1] - s[z0, y1, x1] - s[z1, y0, x1] - s[z1, y1, x0]
            + s[z0, y0, x1] + s[z0, y1, x0] + s[z1, y0, x0] - s[z0, y0, x0]
        )  # fmt: skip

    def _valid_classes(self, ks: tuple[int, int, int]) -> np.ndarray:
        """(Cz, Cy, Cx) bool: which first-cell triples with spans ``ks`` are valid."""
        spans = [a.spans[k] for a, k in zip(self.axes, ks, strict=True)]
        cells = [a.counts.shape[1] for a in self.axes]
        lo = tuple(slice(0, c) for c in cells)
        hi = tuple(slice(e, e + c) for e, c in zip(spans, cells, strict=True))
        ok = self._box_sums(lo, hi) == np.prod(spans)
        has = [a.counts[k] > 0 for a, k in zip(self.axes, ks, strict=True)]
        return ok & has[0][:, None, None] & has[1][None, :, None] & has[2][None, None, :]

    def is_valid(self, origins: np.ndarray) -> np.ndarray:
        """Whether each of the (N, 3) level-0 `origins` is a valid block position."""
        scale, block = np.array(self.scale), np.array(self.block)
        inside = (origins >= 0).all(axis=1) & (origins + block <= np.array(self.volume)).all(1)
        o = np.where(inside[:, None], origins, 0)
        lo, hi = o // scale, (o + block - 1) // scale + 1
        return inside & (self._box_sums(tuple(lo.T), tuple(hi.T)) == np.prod(hi - lo, axis=1))

    def weighted_sampler(self) -> Callable[[np.random.Generator, int], np.ndarray]:
        """A function ``draw(rng, m)`` of (m, 3) valid origins, exactly uniform."""
        count, start = [], []  # per class: (3,) positions per axis, first position per axis
        for ks, ok in self.classes.items():
            idx = np.nonzero(ok)
            count.append([a.counts[k][i] for a, k, i in zip(self.axes, ks, idx, strict=True)])
            start.append([a.starts[k][i] for a, k, i in zip(self.axes, ks, idx, strict=True)])
        count = np.concatenate(count, axis=1)  # (3, classes)
        start = np.concatenate(start, axis=1)
        weight = count.prod(axis=0)
        cum = np.cumsum(weight)

        def draw(rng: np.random.Generator, m: int) -> np.ndarray:
            # One integer below the number of valid positions picks one of them: the
            # class by cumulative weight, then the offset inside it, read in mixed
            # radix (z, y, x), picks the position.
            r = rng.integers(0, cum[-1], size=m, dtype=np.int64)
            j = np.searchsorted(cum, r, side="right")
            off = r - (cum[j] - weight[j])
            c = count[:, j]
            d = np.stack([off // (c[1] * c[2]), off // c[2] % c[1], off % c[2]])
            return (start[:, j] + d).T

        return draw

    def stats(self) -> str:
        return (
            f"tissue mask {self.mask.shape} at mask_scale={self.scale} is "
            f"{self.mask.mean():.2%} tissue ({int(self.mask.sum())} voxels)"
        )


def count_valid_positions(
    valid: np.ndarray,
    *,
    mask_scale: Sequence[int],
    volume_shape: Sequence[int],
    block_shape: Sequence[int],
) -> int:
    """Exact number of level-0 positions where a block lies wholly in tissue.

    Parameters are those of :func:`sample_block_origins`.
    """
    return _Problem(valid, mask_scale, volume_shape, block_shape).n_valid


def sample_block_origins(
    valid: np.ndarray,
    *,
    mask_scale: Sequence[int],
    volume_shape: Sequence[int],
    block_shape: Sequence[int],
    n: int,
    rng: np.random.Generator,
    allow_overlap: bool = False,
    max_attempts: int | None = None,
) -> np.ndarray:
    """Draw block origins uniformly at random among the positions wholly in tissue.

    Parameters
    ----------
    valid : (Zm, Ym, Xm) ndarray of bool
        Tissue mask at a coarse level; mask voxel ``i`` covers level-0 voxels
        ``[i * s, (i + 1) * s)`` along each axis (the last one possibly partial). Its
        shape is ``ceil(volume_shape / mask_scale)``, or the floor, in which case the
        uncovered level-0 voxels count as non-tissue.
    mask_scale : sequence of 3 int
        Level-0 voxels per mask voxel along (z, y, x).
    volume_shape : sequence of 3 int
        Shape of the level-0 volume, in voxels.
    block_shape : sequence of 3 int
        Shape of a block, in level-0 voxels.
    n : int
        Number of blocks to draw, at least 1.
    rng : numpy.random.Generator
        Source of randomness (see :func:`rng_for`); the output is a function of its
        state alone.
    allow_overlap : bool, optional
        If True the origins are independent draws (blocks may overlap, even repeat).
        If False (default) a drawn block that overlaps an accepted one is rejected.
    max_attempts : int, optional
        Most valid candidates to draw before giving up; default ``1000 * n + 10000``.

    Returns
    -------
    origins : (n, 3) ndarray of int64
        Level-0 (z, y, x) corners of the blocks, in the order drawn. Every block lies
        inside the volume and touches only mask voxels that are True.

    Raises
    ------
    NoTissueError
        If no position exists where a block lies wholly inside tissue.
    SamplingError
        If the block does not fit in the volume, or `n` non-overlapping blocks could
        not be fitted (the message says how many were).
    TypeError, ValueError
        For parameters of the wrong type or out of range.

    Notes
    -----
    1. A summed-area table of the mask (Crow 1984) gives the number of tissue voxels
       in any box of mask voxels in O(1).
    2. The valid positions are counted exactly by classes (see the module docstring).
    3. If at least 1/32 of the positions in the volume are valid, candidates are drawn
       uniformly over the volume and rejected unless valid (O(1) each); otherwise a
       class is drawn with probability proportional to its number of positions and a
       position uniformly inside it. Both are exactly uniform over valid positions.
    4. Without `allow_overlap`, candidates overlapping an accepted block are rejected:
       random sequential adsorption (Evans 1993). Each block is uniform over the valid
       positions that do not overlap the earlier ones; the set as a whole is not a
       uniform draw among all non-overlapping configurations, and it stalls well
       before the densest packing (the jamming limit): ask for blocks that cover no
       more than about a third of the tissue.

    Memory: the summed-area table takes 8 bytes per mask voxel, and the class counts
    a few times that while they run, so pass a coarse level (a few 10⁷ voxels at most).

    References
    ----------
    .. [1] F. C. Crow, "Summed-area tables for texture mapping", SIGGRAPH '84,
       Computer Graphics 18(3):207–212, 1984.
    .. [2] J. W. Evans, "Random and cooperative sequential adsorption", Reviews of
       Modern Physics 65(4):1281–1329, 1993.

    Examples
    --------
    >>> mask = np.zeros((4, 4, 4), dtype=bool)
    >>> mask[:, :2] = True
    >>> origins = sample_block_origins(mask, mask_scale=(8, 8, 8), volume_shape=(32, 32, 32),
    ...     block_shape=(8, 8, 8), n=3, rng=np.random.default_rng(0))
    >>> origins.shape, bool((origins[:, 1] <= 8).all())
    ((3, 3), True)
    """
    n, allow_overlap = _int("n", n, 1), bool(allow_overlap)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (see rng_for), got {rng!r}")
    if max_attempts is None:
        max_attempts = 1000 * n + 10_000
    max_attempts = _int("max_attempts", max_attempts, 1)
    p = _Problem(valid, mask_scale, volume_shape, block_shape)
    block = np.array(p.block, dtype=np.int64)
    if p.n_valid == 0:
        raise NoTissueError(
            f"no position exists where a block of {'×'.join(map(str, p.block))} voxels "
            f"lies wholly inside tissue: {p.stats()}; "
            "use smaller blocks, or check the tissue mask"
        )
    if not allow_overlap:
        # Disjoint blocks cannot hold more level-0 tissue voxels than the mask covers.
        sizes = [
            np.minimum(s, v - np.arange(m) * s)
            for s, v, m in zip(p.scale, p.volume, p.mask.shape, strict=True)
        ]
        tissue = int(np.einsum("zyx,z,y,x->", p.mask, *sizes, dtype=np.int64))
        if n * int(block.prod()) > tissue:
            raise SamplingError(
                f"{n} non-overlapping blocks of {p.block} voxels need {n * int(block.prod())} "
                f"voxels but the tissue holds {tissue}, so at most {tissue // int(block.prod())} "
                f"fit ({p.stats()}); ask for fewer or smaller blocks, or allow overlap"
            )

    if p.n_valid >= _REJECTION_MIN_FRACTION * p.n_positions:
        high = np.array(p.volume, dtype=np.int64) - block + 1

        def draw(rng: np.random.Generator, m: int) -> np.ndarray:
            candidates = rng.integers(0, high, size=(m, 3), dtype=np.int64)
            return candidates[p.is_valid(candidates)]
    else:
        draw = p.weighted_sampler()

    origins = np.empty((n, 3), dtype=np.int64)
    k = attempts = batches = 0
    # Each batch yields valid candidates with probability ≈ 1, so this bound is a
    # guarantee of termination, never the reason to stop.
    while k < n and attempts < max_attempts and batches < max_attempts:
        batches += 1
        candidates = draw(rng, _BATCH)
        if allow_overlap:  # independent draws: take them as they come
            take = candidates[: min(n - k, max_attempts - attempts)]
            origins[k : k + len(take)] = take
            k, attempts = k + len(take), attempts + len(take)
            continue
        for candidate in candidates:
            attempts += 1
            if not (np.abs(origins[:k] - candidate) < block).all(axis=1).any():
                origins[k] = candidate
                k += 1
            if k == n or attempts >= max_attempts:
                break
    if k < n:
        kind = "" if allow_overlap else "non-overlapping "
        raise SamplingError(
            f"fitted only {k} of {n} {kind}blocks of {p.block} voxels after {attempts} "
            f"attempts ({p.n_valid} valid positions; {p.stats()}); ask for fewer or "
            "smaller blocks, allow overlap, or raise max_attempts"
        )
    if not p.is_valid(origins).all():  # a broken invariant, not a user error
        raise RuntimeError("internal error: a sampled block leaves the tissue mask")
    return origins
