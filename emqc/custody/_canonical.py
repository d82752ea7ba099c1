"""Canonical bytes of a record, so that a signature covers one exact byte string.

Records are JSON objects serialised with sorted keys, no insignificant whitespace and
UTF-8 text (the subset of RFC 8785 JSON canonicalisation that emqc's records need:
strings, integers, booleans, null, lists and objects; floats are written by Python's
shortest round-trip ``repr``). What is signed and hashed is always the stored bytes,
never a re-serialisation, so a verifier needs no canonicaliser to check a signature.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from typing import Any

__all__ = ["canonical_bytes", "sha256_hex", "utc_now", "parse_utc"]


def canonical_bytes(record: Any) -> bytes:
    """The canonical UTF-8 JSON bytes of ``record``.

    Raises
    ------
    ValueError
        If the record holds NaN or an infinity (JSON has no such numbers).
    """
    _check_finite(record)
    return json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _check_finite(value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"records cannot hold {value!r}; use null for a missing number")
    if isinstance(value, dict):
        for v in value.values():
            _check_finite(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_finite(v)


def sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data`` as 64 lowercase hex digits."""
    return hashlib.sha256(data).hexdigest()


def utc_now() -> str:
    """The current UTC time as ISO 8601 with microseconds and a ``Z``."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc(text: str) -> _dt.datetime:
    """Parse a UTC time written by :func:`utc_now` (or any ISO 8601 time with an offset).

    Raises
    ------
    ValueError
        If ``text`` is not an ISO 8601 time, or has no time zone.
    """
    t = _dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise ValueError(
            f"time {text!r} has no time zone; write it in UTC, e.g. 2026-12-02T10:00:00Z"
        )
    return t.astimezone(_dt.UTC)
