"""Chunk journal: what a resumable ingest has written, so a killed one resumes chunk by chunk.

A resumable ingest (:func:`emqc.ingest.ingest` with ``resume=True``, which ``emqc batch``
uses) treats every stored chunk of every pyramid level as one unit of work. The
journal lives beside the output, in the hidden sibling ``.<name>.emqc-journal``
(a folder, or a prefix on an object store), and holds:

``plan.json``
    What the units read and how they are made: emqc's version, the source's
    description, the path, size and modification time of every source file, the
    voxel size, the pyramid layout and the explicit intensity range, if any. A
    journal is used only when its plan equals the new ingest's, so a changed
    source file or parameter starts the ingest over.
``rule.json``
    The intensity rule, once measured (a source that needs statistics is not
    measured twice).
``chunks/<level>/<i>.<j>.<k>``
    One record per finished chunk, written just after the chunk was stored: the
    SHA-256 of the chunk's voxels (C order, ``uint8``).

A unit is done only when its record exists **and** the stored chunk, read back
through a store that refuses missing chunks and decoded, hashes to the recorded
digest; a record without its chunk, a chunk without its record, and a chunk changed
after it was written are all redone. The journal is removed once every file is
written and hashed, just before the volume is published with its manifest (so a
complete volume never has one beside it), and whenever an ingest starts over.

Sources without local files (remote Zarr, in-memory arrays) cannot be pinned by
size and modification time; their ingests always start over.
"""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from . import storage

__all__ = [
    "ChunkJournal",
    "journal_location",
    "source_fingerprint",
    "chunk_digest",
    "verified_chunks",
    "discard_journal",
]

log = logging.getLogger("emqc")

Index = tuple[int, int, int]


def journal_location(dest: str | Path) -> str | Path:
    """The hidden sibling ``.<name>.emqc-journal`` that records an ingest into ``dest``."""
    return storage.join(storage.parent(dest), f".{storage.basename(dest)}.emqc-journal")


def discard_journal(dest: str | Path) -> None:
    """Remove the journal of ``dest``, if any (out of date, or beside a complete volume)."""
    _remove(journal_location(dest))


def _remove(location: str | Path) -> None:
    if storage.exists(location):
        storage.remove_tree(location)


def source_fingerprint(files: list[Path]) -> list[dict[str, Any]] | None:
    """Path, size and modification time (ns) of each source file; ``None`` when there are none."""
    if not files:
        return None
    out = []
    for p in files:
        st = Path(p).stat()
        out.append({"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return out


def chunk_digest(data: np.ndarray) -> str:
    """SHA-256 of a chunk's voxels in C order."""
    return hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()


def _key(index: Index) -> str:
    return ".".join(map(str, index))


def _index(key: str) -> Index:
    i, j, k = (int(v) for v in key.split("."))
    return i, j, k


class ChunkJournal:
    """The journal of one ingest destination (see the module docstring).

    Parameters
    ----------
    dest : str or Path
        The ingest's final destination (folder or object-store URL).
    plan : dict
        JSON-serializable description of the ingest's inputs and parameters.
    """

    def __init__(self, dest: str | Path, plan: dict[str, Any]) -> None:
        self.location = journal_location(dest)
        self._plan_bytes = (json.dumps(plan, sort_keys=True, indent=1) + "\n").encode("utf-8")

    def _at(self, *parts: str) -> str | Path:
        return storage.join(self.location, *parts)

    @staticmethod
    def _write(location: str | Path, data: bytes) -> None:
        if not storage.is_remote(location):
            Path(location).parent.mkdir(parents=True, exist_ok=True)
        storage.write_bytes(location, data)

    def matches(self) -> bool:
        """Whether a journal for exactly this plan is already there."""
        try:
            return storage.read_bytes(self._at("plan.json")) == self._plan_bytes
        except (FileNotFoundError, KeyError):
            return False

    def start(self) -> None:
        """Begin a fresh journal for this plan (anything recorded before is removed)."""
        self.remove()
        self._write(self._at("plan.json"), self._plan_bytes)

    def remove(self) -> None:
        """Delete the journal (just before the volume is published, or to start over)."""
        _remove(self.location)

    # -- the intensity rule -----------------------------------------------------------
    def read_rule(self) -> dict[str, Any] | None:
        """The recorded intensity rule; ``None`` when absent or unreadable (measured again)."""
        try:
            rule = json.loads(storage.read_bytes(self._at("rule.json")))
        except (FileNotFoundError, KeyError, ValueError):
            return None
        return rule if isinstance(rule, dict) else None

    def write_rule(self, rule: dict[str, Any]) -> None:
        self._write(self._at("rule.json"), json.dumps(rule, sort_keys=True).encode())

    # -- chunk records ----------------------------------------------------------------
    def record(self, level: int, index: Index, digest: str) -> None:
        """Record that chunk ``index`` of ``level`` is stored with voxel digest ``digest``."""
        self._write(self._at("chunks", str(level), _key(index)), digest.encode("ascii"))

    def recorded(self, level: int) -> dict[Index, str]:
        """Every chunk of ``level`` with a record, and the digest it recorded."""
        folder = self._at("chunks", str(level))
        if not storage.exists(folder):
            return {}
        rels = [r for r in storage.list_files(folder) if not r.endswith(".emqc-tmp")]
        out = {}
        for rel, data in storage.cat_files(folder, rels):
            try:
                out[_index(rel)] = data.decode("ascii")
            except (ValueError, UnicodeDecodeError):  # not a record: its chunk is redone
                log.warning("ignoring unreadable journal record %s", storage.join(folder, rel))
        return out


def verified_chunks(
    image: str | Path, level: int, chunk: tuple[int, int, int], records: dict[Index, str]
) -> list[Index]:
    """Task: the chunks of ``records`` whose stored voxels in ``image`` hash to their record.

    Reads through :class:`emqc.omezarr.StrictStore`, so a record whose chunk vanished
    fails instead of passing as the fill value; any chunk that cannot be read back
    (missing, truncated, undecodable) is simply not done.
    """
    from .omezarr import open_image

    _, arrays = open_image(image, strict=True)
    array = arrays[level]

    def check(item: tuple[Index, str]) -> Index | None:
        index, digest = item
        box = tuple(slice(i * c, i * c + c) for i, c in zip(index, chunk, strict=True))
        try:
            data = array[box]
        except Exception:  # missing, truncated or undecodable: not done, so redone
            return None
        return index if chunk_digest(data) == digest else None

    with ThreadPoolExecutor(max_workers=8) as pool:
        return [i for i in pool.map(check, records.items()) if i is not None]
