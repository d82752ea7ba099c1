"""The pure core of a judging session: opaque codes, orientations and per-judge orders.

No I/O here: every function takes a seed (or a generator) and plain values and
returns plain values, so the same seed gives the same session on every machine.

1. :func:`rng_for_purpose` derives an independent generator for each purpose
   (codes, repeats, one per judge) from the session seed, so that adding a judge
   does not change the other judges' orders.
2. :func:`draw_codes` draws unique opaque codes; they are assigned to blocks in a
   random order, so sorting codes says nothing about samples.
3. :func:`judge_order` shuffles all codes for one judge such that a block and its
   repeat are at least ``min_gap`` positions apart.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np

from ..errors import InputError

__all__ = [
    "CODE_ALPHABET",
    "FLIPS",
    "apply_flip",
    "draw_codes",
    "judge_order",
    "n_repeats",
    "rng_for_purpose",
]

#: RFC 4648 base32 letters: no 0, 1, 8 or 9, so a code never looks like a block id or a number.
CODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
CODE_LENGTH = 8
#: Orientations a block is shown in: which of the (y, x) axes are mirrored.
FLIPS = ("none", "y", "x", "yx")
_MAX_TRIES = 10_000


def rng_for_purpose(seed: int, purpose: str) -> np.random.Generator:
    """A generator for one ``purpose`` (such as ``"codes"`` or ``"judge:alice"``) of a seed."""
    digest = hashlib.sha256(f"emqc.judging/{int(seed)}/{purpose}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest, "big"))


def draw_codes(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct random codes of 8 base32 letters (40 bits each)."""
    codes: list[str] = []
    seen: set[str] = set()
    while len(codes) < n:
        code = "".join(CODE_ALPHABET[i] for i in rng.integers(0, 32, size=CODE_LENGTH))
        if code not in seen:
            seen.add(code)
            codes.append(code)
    return codes


def n_repeats(n_blocks: int, repeat_share: float) -> int:
    """Number of blocks shown twice: ``ceil(repeat_share * n_blocks)``."""
    if not 0.0 <= repeat_share <= 1.0:
        raise InputError(f"repeat_share must be in [0, 1], got {repeat_share!r}")
    return math.ceil(repeat_share * n_blocks - 1e-9)


def apply_flip(block: np.ndarray, flip: str) -> np.ndarray:
    """``(Z, Y, X)`` block mirrored as :data:`FLIPS` names it (a copy)."""
    if flip not in FLIPS:
        raise ValueError(f"flip must be one of {FLIPS}, got {flip!r}")
    axes = tuple(i for i, a in ((1, "y"), (2, "x")) if a in flip.replace("none", ""))
    return np.ascontiguousarray(np.flip(block, axis=axes) if axes else block)


def judge_order(
    rng: np.random.Generator,
    codes: Sequence[str],
    pairs: Sequence[tuple[str, str]],
    *,
    min_gap: int,
) -> list[str]:
    """A random order of ``codes`` in which the two codes of every pair are ``min_gap`` apart.

    Parameters
    ----------
    rng : numpy.random.Generator
    codes : sequence of str
        Every code the judge sees (originals and repeats).
    pairs : sequence of (str, str)
        (original, repeat) codes showing the same voxels.
    min_gap : int
        Smallest allowed distance in positions between the two codes of a pair.

    Raises
    ------
    emqc.errors.InputError
        When no such order is found (too few blocks for the gap).
    """
    codes = list(codes)
    for _ in range(_MAX_TRIES):
        order = [codes[i] for i in rng.permutation(len(codes))]
        where = {c: i for i, c in enumerate(order)}
        if all(abs(where[a] - where[b]) >= min_gap for a, b in pairs):
            return order
    raise InputError(
        f"cannot place {len(pairs)} repeated blocks at least {min_gap} positions from their "
        f"first showing among {len(codes)} blocks; use more blocks, a smaller repeat_share "
        "or a smaller min_repeat_gap"
    )
