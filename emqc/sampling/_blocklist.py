"""The record of a block sampling: which blocks, from which volume, drawn how.

A block list is written once by ``emqc sample`` and read by every later stage, and
an auditor re-derives it from the volume, the seed and the parameters. Its JSON is
canonical (sorted keys, floats rounded to 6 decimals, ASCII, one trailing newline,
no timestamp), so identical inputs give identical bytes, whose digest can be signed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import numpy as np

from emqc import __version__
from emqc.errors import SamplingError

__all__ = ["BLOCKLIST_FORMAT", "Block", "BlockList", "SamplingParameters", "make_blocks"]

BLOCKLIST_FORMAT = "emqc.blocklist/1"
#: Where a list's seed came from; "grid" lists (``emqc score --all-blocks``) are not random.
SEED_SOURCES = ("user", "os-random", "grid")
# Floats are stored rounded to 1e-6 (a picometre for µm), so that the bytes do not
# depend on how a value was computed (0.1 + 0.2 versus 0.3).
_DECIMALS = 6
_BLOCK_ID = re.compile(r"B[0-9]{4,}")
_DIGEST = re.compile(r"[0-9a-f]{64}")


def _fail(where: str, message: str) -> SamplingError:
    return SamplingError(f"invalid block list: {where}: {message}")


def _int(where: str, value: Any, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise _fail(where, f"expected an integer, got {value!r}")
    if value < minimum:
        raise _fail(where, f"expected an integer >= {minimum}, got {value}")
    return int(value)


def _float(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise _fail(where, f"expected a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise _fail(where, f"expected a finite number, got {value!r}")
    return round(number, _DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0


def _str(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(where, f"expected a string, got {value!r}")
    return value


def _triple(where: str, value: Any, item) -> tuple:
    if isinstance(value, str) or not isinstance(value, Sequence | np.ndarray) or len(value) != 3:
        raise _fail(where, f"expected 3 values (z, y, x), got {value!r}")
    return tuple(item(f"{where}[{i}]", v) for i, v in enumerate(value))


def _keys(where: str, data: Any, cls) -> None:
    """Exactly the fields of dataclass `cls`, no more, no fewer."""
    if not isinstance(data, Mapping):
        raise _fail(where, f"expected an object, got {type(data).__name__}")
    names = {f.name for f in fields(cls)}
    if missing := sorted(names - data.keys()):
        raise _fail(where, f"missing field(s) {', '.join(missing)}")
    if unknown := sorted(set(data.keys()) - names):
        raise _fail(where, f"unknown field(s) {', '.join(map(str, unknown))}")


@dataclass(frozen=True)
class Block:
    """One sampled block, in level-0 voxels and in micrometres (z, y, x)."""

    id: str
    origin_vox: tuple[int, int, int]
    shape_vox: tuple[int, int, int]
    origin_um: tuple[float, float, float]
    shape_um: tuple[float, float, float]

    def __post_init__(self) -> None:
        where = f"block {self.id!r}"
        if not isinstance(self.id, str) or not _BLOCK_ID.fullmatch(self.id):
            raise _fail(where, "id must be 'B' and at least 4 digits, such as 'B0001'")
        set_ = object.__setattr__  # frozen: normalize once, at construction
        set_(self, "origin_vox", _triple(f"{where}.origin_vox", self.origin_vox, _int))
        shape = _triple(f"{where}.shape_vox", self.shape_vox, lambda w, v: _int(w, v, minimum=1))
        set_(self, "shape_vox", shape)
        set_(self, "origin_um", _triple(f"{where}.origin_um", self.origin_um, _float))
        set_(self, "shape_um", _triple(f"{where}.shape_um", self.shape_um, _float))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the block."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in fields(self)}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Block:
        """Block from :meth:`to_dict`'s output; raises SamplingError if malformed."""
        _keys("block", data, cls)
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class SamplingParameters:
    """Everything besides the seed and the volume that decided which blocks were drawn.

    ``tissue_mask`` holds the keyword arguments given to
    :func:`~emqc.sampling.tissue_mask`; ``n_valid_positions`` is None when not counted.
    """

    block_shape_vox: tuple[int, int, int]
    block_shape_um: tuple[float, float, float]
    voxel_size_nm: tuple[float, float, float]
    allow_overlap: bool
    mask_level: int
    mask_scale: tuple[int, int, int]
    tissue_mask: Mapping[str, float]
    mask_tissue_fraction: float
    n_valid_positions: int | None = None

    def __post_init__(self) -> None:
        w, set_ = "parameters", object.__setattr__
        positive = lambda w, v: _int(w, v, minimum=1)  # noqa: E731
        shape = _triple(f"{w}.block_shape_vox", self.block_shape_vox, positive)
        set_(self, "block_shape_vox", shape)
        set_(self, "block_shape_um", _triple(f"{w}.block_shape_um", self.block_shape_um, _float))
        set_(self, "voxel_size_nm", _triple(f"{w}.voxel_size_nm", self.voxel_size_nm, _float))
        if not isinstance(self.allow_overlap, bool | np.bool_):
            raise _fail(f"{w}.allow_overlap", f"expected true or false, got {self.allow_overlap!r}")
        set_(self, "allow_overlap", bool(self.allow_overlap))
        set_(self, "mask_level", _int(f"{w}.mask_level", self.mask_level))
        set_(self, "mask_scale", _triple(f"{w}.mask_scale", self.mask_scale, positive))
        if not isinstance(self.tissue_mask, Mapping):
            raise _fail(f"{w}.tissue_mask", f"expected an object, got {self.tissue_mask!r}")
        params = {_str(f"{w}.tissue_mask", k): _float(f"{w}.tissue_mask.{k}", v)
                  for k, v in sorted(self.tissue_mask.items())}  # fmt: skip
        set_(self, "tissue_mask", params)
        fraction = _float(f"{w}.mask_tissue_fraction", self.mask_tissue_fraction)
        if not 0 <= fraction <= 1:
            raise _fail(f"{w}.mask_tissue_fraction", f"expected a value in [0, 1], got {fraction}")
        set_(self, "mask_tissue_fraction", fraction)
        if self.n_valid_positions is not None:
            set_(self, "n_valid_positions", _int(f"{w}.n_valid_positions", self.n_valid_positions))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the parameters."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: list(v) if isinstance(v, tuple) else dict(v) if isinstance(v, Mapping) else v
                for k, v in out.items()}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SamplingParameters:
        """Parameters from :meth:`to_dict`'s output; raises SamplingError if malformed."""
        _keys("parameters", data, cls)
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class BlockList:
    """The blocks drawn from one volume, with what it takes to draw them again.

    ``seed`` is the integer given to :func:`~emqc.sampling.rng_for` (up to 128 bits,
    stored as a JSON integer); ``seed_source`` says whether the user chose it or it
    was drawn from the operating system's secure random source.
    """

    volume: str
    volume_digest: str
    seed: int
    seed_source: Literal["user", "os-random", "grid"]
    parameters: SamplingParameters
    blocks: tuple[Block, ...]
    emqc_version: str = __version__
    format: str = field(default=BLOCKLIST_FORMAT)

    def __post_init__(self) -> None:
        if self.format != BLOCKLIST_FORMAT:
            raise _fail("format", f"expected {BLOCKLIST_FORMAT!r}, got {self.format!r}")
        _str("volume", self.volume)
        if not isinstance(self.volume_digest, str) or not _DIGEST.fullmatch(self.volume_digest):
            raise _fail("volume_digest", f"expected 64 lowercase hex digits (SHA-256), "
                        f"got {self.volume_digest!r}")  # fmt: skip
        seed = _int("seed", self.seed)
        if seed >= 2**128:
            raise _fail("seed", f"expected fewer than 128 bits, got {seed}")
        object.__setattr__(self, "seed", seed)
        if self.seed_source not in SEED_SOURCES:
            raise _fail("seed_source", f"expected one of {SEED_SOURCES}, got {self.seed_source!r}")
        if not isinstance(self.parameters, SamplingParameters):
            raise _fail("parameters", f"expected SamplingParameters, got {self.parameters!r}")
        _str("emqc_version", self.emqc_version)
        blocks = tuple(self.blocks)
        if not all(isinstance(b, Block) for b in blocks):
            raise _fail("blocks", "expected Block records")
        ids = [b.id for b in blocks]
        if len(set(ids)) != len(ids):
            raise _fail("blocks", "block ids are not unique")
        object.__setattr__(self, "blocks", blocks)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the block list."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["parameters"] = self.parameters.to_dict()
        out["blocks"] = [b.to_dict() for b in self.blocks]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BlockList:
        """Block list from :meth:`to_dict`'s output; raises SamplingError if malformed."""
        if isinstance(data, Mapping) and data.get("format") != BLOCKLIST_FORMAT:
            raise _fail("format", f"expected {BLOCKLIST_FORMAT!r}, got {data.get('format')!r}: "
                        "not an emqc block list, or one from a newer emqc")  # fmt: skip
        _keys("block list", data, cls)
        if not isinstance(data["blocks"], list):
            raise _fail("blocks", f"expected a list, got {type(data['blocks']).__name__}")
        values = {f.name: data[f.name] for f in fields(cls)}
        values["parameters"] = SamplingParameters.from_dict(data["parameters"])
        values["blocks"] = tuple(Block.from_dict(b) for b in data["blocks"])
        return cls(**values)

    def to_json_bytes(self) -> bytes:
        """Canonical JSON: the same block list always gives the same bytes."""
        text = json.dumps(self.to_dict(), sort_keys=True, indent=2, ensure_ascii=True,
                          allow_nan=False)  # fmt: skip
        return (text + "\n").encode("ascii")

    @classmethod
    def from_json_bytes(cls, data: bytes) -> BlockList:
        """Parse and validate bytes written by :meth:`to_json_bytes`.

        Raises
        ------
        SamplingError
            If the bytes are not UTF-8 JSON, repeat a key, hold NaN, or do not
            describe a block list of this format (the message names the field).
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")

        def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            keys = [k for k, _ in pairs]
            if len(set(keys)) != len(keys):
                raise _fail("JSON", f"repeated key in object with keys {keys}")
            return dict(pairs)

        def no_constant(name: str) -> None:
            raise _fail("JSON", f"{name} is not a number a block list may hold")

        try:
            parsed = json.loads(bytes(data).decode("utf-8"), object_pairs_hook=no_duplicates,
                                parse_constant=no_constant)  # fmt: skip
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _fail("JSON", f"not UTF-8 JSON ({exc})") from exc
        return cls.from_dict(parsed)


def make_blocks(
    origins: np.ndarray,
    *,
    block_shape: Sequence[int],
    voxel_size_nm: Sequence[float],
) -> tuple[Block, ...]:
    """Blocks ``B0001``, ``B0002``… for (N, 3) level-0 `origins`, in their order.

    Parameters
    ----------
    origins : (N, 3) ndarray of int
        Block corners, as returned by :func:`~emqc.sampling.sample_block_origins`.
    block_shape : sequence of 3 int
        Block shape in level-0 voxels.
    voxel_size_nm : sequence of 3 float
        Level-0 voxel size in nm, (z, y, x).
    """
    origins = np.asarray(origins)
    if origins.ndim != 2 or origins.shape[1] != 3 or origins.dtype.kind not in "iu":
        raise TypeError(f"origins must be an (N, 3) integer array, got {origins.dtype} "
                        f"{origins.shape}")  # fmt: skip
    nm = np.asarray(voxel_size_nm, dtype=float)
    shape = tuple(int(b) for b in block_shape)
    shape_um = tuple(float(v) for v in np.asarray(shape) * nm / 1000)
    return tuple(
        Block(
            id=f"B{i + 1:04d}",
            origin_vox=tuple(int(v) for v in o),
            shape_vox=shape,
            origin_um=tuple(float(v) for v in o * nm / 1000),
            shape_um=shape_um,
        )
        for i, o in enumerate(origins)
    )
