"""Publishing a finished output so that nothing half-written ever looks complete.

Local folders are written into a hidden staging folder and renamed into place
(:func:`publish_dir`). Object stores (S3, GCS) have no rename, so an emqc volume
there follows a different protocol, whose completion marker is the manifest
(:data:`emqc.manifest.MANIFEST_NAME`, written last in one atomic PUT):

1. :func:`prepare_output` checks the bucket (a missing bucket, denied access or an
   unreachable endpoint fail here, before any work) and picks where to write:
   straight into ``DEST`` when nothing is there, or into the sibling staging
   prefix ``.<name>.emqc-partial/`` when ``--overwrite`` replaces an existing
   volume (so the old one stays whole while the new one is computed). It first
   writes the marker object :data:`PARTIAL_MARKER` there.
2. The caller writes and hashes every object there.
3. :func:`publish_output` makes it final. Written in place: manifest, then the
   marker is deleted. Staged: the old volume's manifest is deleted first (from
   then on it no longer looks complete), its objects are removed, the marker is
   put at ``DEST``, the staged objects are copied server-side, their sizes are
   checked, the manifest is written, and the marker and the staging prefix are
   deleted.
4. :func:`discard_output` removes everything written when anything fails.

A killed ingest leaves objects without a manifest, which every reader refuses
(:class:`~emqc.errors.IncompleteVolumeError`); the marker lets the next ingest
recognise them as its own leftovers, remove them and start over, while any other
objects at ``DEST`` are never touched.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import storage
from .errors import IntegrityError, OutputExistsError

__all__ = [
    "publish_dir",
    "PARTIAL_MARKER",
    "staging_location",
    "prepare_output",
    "publish_output",
    "discard_output",
]

log = logging.getLogger("emqc")

#: Object written first into an output on an object store and deleted last.
PARTIAL_MARKER = ".emqc-partial"


def publish_dir(staging: Path, dest: Path) -> None:
    """Rename the finished ``staging`` folder to ``dest``; an old ``dest`` is replaced last.

    The old folder is moved aside first and deleted only once the new one is in
    place; if the final rename fails, the old folder is put back before the error
    propagates.
    """
    if dest.exists():
        old = dest.with_name(f".{dest.name}.emqc-old-{uuid.uuid4().hex[:8]}")
        os.replace(dest, old)
        try:
            os.replace(staging, dest)
        except OSError:
            os.replace(old, dest)  # put the old folder back before reporting the failure
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, dest)


def staging_location(dest: str | Path) -> str | Path:
    """The hidden sibling ``.<name>.emqc-partial`` an output into ``dest`` is staged in."""
    return storage.join(storage.parent(dest), f".{storage.basename(dest)}.emqc-partial")


def prepare_output(
    dest: str | Path, *, overwrite: bool, marker: str, resume: bool = False
) -> str | Path:
    """Check ``dest`` and return where the output is to be written (steps 1 of the module doc).

    Parameters
    ----------
    dest : str or Path
        Final location (local folder or object-store URL).
    overwrite : bool
        Whether an existing complete output (one with a ``marker`` file) may be replaced.
    marker : str
        File whose presence marks a complete output (the manifest).
    resume : bool, optional
        Keep what an earlier, unfinished run into ``dest`` left (its staging folder,
        or its objects written in place) and return where it is, so that the caller
        can reuse what it verifies there (see :mod:`emqc._chunk_journal`). By
        default such leftovers are removed.

    Returns
    -------
    str or Path
        The staging folder (local, or remote when replacing) or ``dest`` itself.

    Raises
    ------
    emqc.errors.OutputExistsError
        ``dest`` holds a complete output and ``overwrite`` is false, or holds
        anything emqc did not write.
    emqc.errors.StorageError
        The object store cannot be used (see :func:`emqc.storage.probe`).
    """
    remote = storage.is_remote(dest)
    storage.probe(dest, "write")
    staging = staging_location(dest)
    kept_staging = resume and storage.exists(staging)
    if storage.exists(staging) and not kept_staging:
        log.warning(
            "found %s from an earlier ingest that did not finish (killed or failed); removing it "
            "and starting over",
            staging,
        )
        storage.remove_tree(staging)
    present = storage.list_files(dest) if remote else {}
    if remote and PARTIAL_MARKER in present and marker not in present:
        if resume:  # nothing complete is there, so nothing is replaced
            log.warning("resuming the unfinished ingest written in place into %s", dest)
            if kept_staging:  # a copy from staging was under way: resume at DEST instead
                storage.remove_tree(staging)
            return dest
        log.warning(
            "found the objects of an earlier ingest into %s that did not finish; removing them "
            "and starting over",
            dest,
        )
        storage.remove_tree(dest)
        present = {}
    complete = marker in present if remote else (Path(dest) / marker).is_file()
    empty = not present if remote else not Path(dest).exists() or _empty_dir(Path(dest))
    if complete and not overwrite:
        raise OutputExistsError(
            f"{dest} already exists (an emqc volume). Choose another destination, or pass "
            "--overwrite to replace it (the old volume is kept until the new one is complete)."
        )
    if not complete and not empty:
        what = "holds objects" if remote else "already exists and"
        raise OutputExistsError(
            f"{dest} {what} is not an emqc volume, so emqc will not replace it even with "
            "--overwrite. Choose another destination or remove it yourself."
        )
    if kept_staging:
        log.warning("resuming the unfinished ingest into %s kept in %s", dest, staging)
        return staging
    if not remote:
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        return staging
    target = staging if complete else dest
    _write_marker(target)
    return target


def publish_output(
    target: str | Path,
    dest: str | Path,
    expected: dict[str, int],
    finish: Callable[[str | Path], Any],
    *,
    marker: str,
) -> Any:
    """Make the output written at ``target`` final at ``dest`` (step 3 of the module doc).

    Parameters
    ----------
    target : str or Path
        What :func:`prepare_output` returned, now holding every file.
    dest : str or Path
        Final location.
    expected : dict of str to int
        Relative path -> size of every file written (checked after a copy).
    finish : callable
        ``finish(location)`` writes the completion marker into ``location`` and
        returns what :func:`publish_output` returns.
    marker : str
        Name of the file ``finish`` writes (the manifest).

    Returns
    -------
    object
        What ``finish`` returned.
    """
    if not storage.is_remote(dest):
        result = finish(target)
        publish_dir(Path(target), Path(dest))
        return result
    staged = str(target) != str(dest)
    if staged:
        storage.remove_file(storage.join(dest, marker))  # the old volume stops looking complete
        storage.remove_tree(dest)
        _write_marker(dest)
        storage.copy_files(str(target), str(dest), sorted(expected))
        copied = storage.list_files(dest)
        wrong = sorted(r for r, size in expected.items() if copied.get(r) != size)
        if wrong:
            raise IntegrityError(
                f"copying {target} to {dest} left {len(wrong)} object(s) missing or of the wrong "
                f"size (first: {wrong[0]}). The partial output was removed; rerun the ingest."
            )
    result = finish(dest)
    storage.remove_file(storage.join(dest, PARTIAL_MARKER))
    if staged:
        storage.remove_tree(target)
    return result


def discard_output(target: str | Path, dest: str | Path) -> None:
    """Remove a failed output (step 4): the staging location, and ``dest`` if it is unfinished."""
    with _quiet():
        storage.remove_tree(target)
    if storage.is_remote(dest) and str(target) != str(dest):
        with _quiet():
            present = storage.list_files(dest)
            if PARTIAL_MARKER in present:  # a publish was under way: the old volume is gone
                storage.remove_tree(dest)


def _write_marker(location: str | Path) -> None:
    note = {"emqc": "an ingest is writing here; without emqc-manifest.json this is incomplete"}
    storage.write_bytes(storage.join(location, PARTIAL_MARKER), json.dumps(note).encode())


def _empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


class _quiet:
    """Context manager that logs and swallows errors of best-effort cleanup."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:  # type: ignore[no-untyped-def]
        if exc is not None and isinstance(exc, Exception):
            log.warning("could not remove a partial output: %s", exc)
            return True
        return False
