"""Ingest steps 2–4: intensities, level 0 and the pyramid, written chunk by chunk.

Without a journal each level is one ``dask.array.store``; with one (a resumable
ingest, :mod:`emqc._chunk_journal`) every chunk is its own task that stores the
chunk and then records its digest, and the chunks an earlier run recorded are
first re-read and verified, in tasks of up to 64 chunks, so only the others are
computed. Either way the same bytes are stored.
"""

from __future__ import annotations

import math
import uuid
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np

from ._chunk_journal import ChunkJournal, chunk_digest, verified_chunks
from ._compute import compute
from .intensity import (
    IntensityRule,
    apply_rule,
    block_stats,
    explicit_rule,
    merge_stats,
    needs_stats,
    rule_from_stats,
)
from .manifest import sha256_file
from .omezarr import ImageLayout, level_chunks
from .pyramid import downsample_mean
from .sources import VolumeSource

__all__ = ["write_levels"]


def write_levels(
    src: VolumeSource,
    staging: Path | str,
    arrays: list[Any],
    layout: ImageLayout,
    intensity_range: tuple[float, float] | None,
    progress: bool,
    journal: ChunkJournal | None,
) -> tuple[IntensityRule, list[dict[str, str | int]], tuple[int, int]]:
    """Steps 2–4 of the module docstring; returns the rule, the source file digests and
    the numbers of chunks written and reused."""
    target = level_chunks(layout.shape, layout.chunk)
    raw = da.from_array(
        src,
        chunks=src.read_chunks(target),
        asarray=True,
        lock=False,
        fancy=False,
        name=f"emqc-read-{uuid.uuid4().hex}",
    )
    rule = _intensity_rule(src, raw, intensity_range, progress, journal)
    if rule.kind == "identity" and src.dtype == np.uint8:
        u8 = raw
    else:
        u8 = raw.map_blocks(apply_rule, rule, dtype=np.uint8)
    u8 = u8.rechunk(target)

    files = src.files()
    digests = [dask.delayed(sha256_file)(p) for p in files]
    shape = "×".join(map(str, layout.shape))
    results, written, reused = _store_level(
        u8, staging, arrays, 0, journal, digests,
        label=f"Writing level 0 ({shape}) and hashing the source", progress=progress,
    )  # fmt: skip
    source_digests = [
        {"path": str(p), "sha256": h, "size": p.stat().st_size}
        for p, h in zip(files, results, strict=True)
    ]

    for i in range(1, len(layout.levels)):
        level = layout.levels[i]
        out_chunks = level_chunks(level.shape, layout.chunk)
        read = tuple(c * f for c, f in zip(out_chunks, level.factors, strict=True))
        above = da.from_zarr(arrays[i - 1], chunks=read)
        below = above.map_blocks(
            downsample_mean,
            level.factors,
            dtype=np.uint8,
            chunks=tuple(
                tuple(math.ceil(c / f) for c in cs)
                for cs, f in zip(above.chunks, level.factors, strict=True)
            ),
        )
        _, more_written, more_reused = _store_level(
            below, staging, arrays, i, journal, [],
            label=f"Writing level {i} ({'×'.join(map(str, level.shape))})", progress=progress,
        )  # fmt: skip
        written, reused = written + more_written, reused + more_reused
    return rule, source_digests, (written, reused)


def _intensity_rule(
    src: VolumeSource,
    raw: da.Array,
    intensity_range: tuple[float, float] | None,
    progress: bool,
    journal: ChunkJournal | None,
) -> IntensityRule:
    """Step 2: the stated rule (measured once; a resumed ingest reads it from its journal)."""
    if intensity_range is not None:
        return explicit_rule(src.dtype, *intensity_range)
    if not needs_stats(src.dtype):
        return rule_from_stats(src.dtype, None, where=src.spec)
    recorded = journal.read_rule() if journal is not None else None
    if recorded is not None:
        try:
            return IntensityRule.from_dict(recorded)
        except TypeError:  # not a rule this version writes: measure again
            pass
    parts = [dask.delayed(block_stats)(b) for b in raw.to_delayed().ravel()]
    (stats,) = compute(
        [dask.delayed(merge_stats)(parts)], label="Measuring intensities", progress=progress
    )
    rule = rule_from_stats(src.dtype, stats, where=src.spec)
    if journal is not None:
        journal.write_rule(rule.to_dict())
    return rule


def _store_level(
    data: da.Array,
    staging: Path | str,
    arrays: list[Any],
    level: int,
    journal: ChunkJournal | None,
    extra: list[Any],
    *,
    label: str,
    progress: bool,
) -> tuple[list[Any], int, int]:
    """Write every chunk of ``level`` (only those not verified done, with a journal) and
    compute ``extra`` in the same graph; returns ``extra``'s results and the numbers of
    chunks written and reused."""
    array = arrays[level]
    if journal is None:
        results = compute(
            [da.store(data, array, lock=False, compute=False), *extra],
            label=label,
            progress=progress,
        )
        return list(results[1:]), math.prod(data.numblocks), 0
    chunk = tuple(array.chunks)
    records = list(journal.recorded(level).items())
    # re-reading what a killed run wrote is heavy: tasks of up to 64 chunks each
    checks = [
        dask.delayed(verified_chunks)(staging, level, chunk, dict(records[i : i + 64]))
        for i in range(0, len(records), 64)
    ]
    done = set()
    if checks:
        for found in compute(checks, label=f"Verifying {len(records)} chunks of level {level} "
                             "an earlier run wrote", progress=progress):  # fmt: skip
            done.update(found)
    blocks = data.to_delayed()
    writes = [
        dask.delayed(_write_chunk)(blocks[index], array, index, chunk, level, journal)
        for index in np.ndindex(*data.numblocks)
        if index not in done
    ]
    results = compute([*writes, *extra], label=label, progress=progress)
    return list(results[len(writes) :]), len(writes), len(done)


def _write_chunk(block, array, index, chunk, level, journal) -> None:  # type: ignore[no-untyped-def]
    """Task: store one chunk, then record it in the journal (so a record implies a write)."""
    box = tuple(slice(i * c, i * c + n) for i, c, n in zip(index, chunk, block.shape, strict=True))
    array[box] = block
    journal.record(level, index, chunk_digest(block))
