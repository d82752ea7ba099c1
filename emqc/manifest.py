"""Content digests of a stored volume, and their verification.

Every file of an ingested volume (each chunk of each level and each ``zarr.json``)
is listed in ``emqc-manifest.json`` with its size and SHA-256. The **root digest**
is the SHA-256 of the manifest's file list written in ``sha256sum`` format, one line
``"<hex digest>  <relative path>\\n"`` per file, sorted by path, UTF-8. An auditor
can recompute it without emqc::

    cd DEST && find . -type f ! -name emqc-manifest.json | sed 's|^\\./||' | LC_ALL=C sort \\
      | xargs sha256sum | sha256sum

Because the digested files hold only data and deterministic metadata (provenance
with its timestamp lives in the manifest, outside the digest), ingesting the same
source with the same parameters gives the same root digest.

The manifest is written last and atomically (temporary file, then rename; on an
object store one PUT), so its presence marks a complete volume.

Every function takes a local folder or an object-store URL (``s3://bucket/vol.ome.zarr``,
see :mod:`emqc.storage`); on a store the objects are listed and fetched, and the
digests are the same as those of the same files on disk.

References
----------
.. [1] NIST FIPS 180-4, Secure Hash Standard (SHA-256).
.. [2] B. Laurie, A. Langley, E. Kasper, "Certificate Transparency", RFC 6962
   (content digests of every logged object).
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import storage
from ._atomic import PARTIAL_MARKER
from .errors import IncompleteVolumeError, IntegrityError

__all__ = [
    "MANIFEST_NAME",
    "FileDigest",
    "Manifest",
    "VerificationReport",
    "sha256_file",
    "digest_tree",
    "root_digest",
    "write_manifest",
    "read_manifest",
    "verify_volume",
    "implied_chunk_files",
]

MANIFEST_NAME = "emqc-manifest.json"
MANIFEST_FORMAT = "emqc.manifest/1"
_READ_SIZE = 4 * 1024 * 1024


@dataclass(frozen=True)
class FileDigest:
    """Size and SHA-256 of one stored file, by path relative to the volume root."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """What a volume must contain, and where it came from."""

    files: tuple[FileDigest, ...]
    root_digest: str
    provenance: dict[str, Any] = field(default_factory=dict)
    format: str = MANIFEST_FORMAT

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "algorithm": "sha256",
            "root_digest": self.root_digest,
            "root_digest_rule": "sha256 of sorted 'sha256sum' lines of all files below",
            "provenance": self.provenance,
            "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in self.files],
        }


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 4 MiB pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_READ_SIZE):
            h.update(chunk)
    return h.hexdigest()


def _listing(root: Path | str) -> dict[str, int]:
    """Stored files of a volume (relative path -> size), without manifest and temporaries."""
    return {
        rel: size
        for rel, size in storage.list_files(root).items()
        if rel not in (MANIFEST_NAME, PARTIAL_MARKER) and not rel.endswith(".emqc-tmp")
    }


def _list_files(root: Path | str) -> list[str]:
    return sorted(_listing(root))


def digest_tree(root: Path | str, *, workers: int | None = None) -> list[FileDigest]:
    """SHA-256 of every file below ``root`` (folder or URL) except the manifest, sorted by path."""
    return _digest_paths(root, _list_files(root), workers=workers)


def root_digest(files: list[FileDigest] | tuple[FileDigest, ...]) -> str:
    """Root digest of a file list (see the module docstring)."""
    lines = "".join(f"{f.sha256}  {f.path}\n" for f in sorted(files, key=lambda f: f.path))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def write_manifest(
    root: Path | str, files: list[FileDigest], provenance: dict[str, Any]
) -> Manifest:
    """Write ``root/emqc-manifest.json`` atomically and return it (see :func:`storage.write_bytes`)."""
    manifest = Manifest(tuple(files), root_digest(files), provenance)
    data = (json.dumps(manifest.to_dict(), indent=1, sort_keys=True) + "\n").encode("utf-8")
    storage.write_bytes(storage.join(root, MANIFEST_NAME), data)
    return manifest


def read_manifest(root: Path | str) -> Manifest:
    """Read and check the manifest of the volume at ``root`` (folder or URL).

    Raises
    ------
    IncompleteVolumeError
        When ``root`` has no manifest (an interrupted or foreign write).
    IntegrityError
        When the manifest is not valid JSON of the expected form, or its root
        digest does not match its own file list.
    """
    path = storage.join(root, MANIFEST_NAME)
    try:
        raw = storage.read_bytes(path)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raw = None
    if raw is None and not storage.exists(root):
        raise IncompleteVolumeError(f"{root} does not exist. Give the folder `emqc ingest` wrote.")
    if raw is None:
        raise IncompleteVolumeError(
            f"{root} has no {MANIFEST_NAME}: it is not a complete emqc volume (an ingest that was "
            "interrupted, or a folder emqc did not write). Rerun `emqc ingest` for it; emqc never "
            "scores or shows a volume without its manifest."
        )
    try:
        d = json.loads(raw)
        if d.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"format is {d.get('format')!r}, expected {MANIFEST_FORMAT!r}")
        files = tuple(
            FileDigest(str(f["path"]), str(f["sha256"]), int(f["size"])) for f in d["files"]
        )
        manifest = Manifest(files, str(d["root_digest"]), dict(d["provenance"]), d["format"])
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(
            f"{path} is damaged or was edited ({exc}); its volume cannot be verified. Restore it "
            "from a copy or re-ingest the volume."
        ) from exc
    recomputed = root_digest(files)
    if recomputed != manifest.root_digest:
        raise IntegrityError(
            f"{path} was altered: its file list hashes to {recomputed}, not to the root digest it "
            f"records ({manifest.root_digest}). Restore it from a copy or re-ingest the volume."
        )
    return manifest


@dataclass(frozen=True)
class VerificationReport:
    """Outcome of :func:`verify_volume`."""

    root: Path | str
    manifest: Manifest
    mode: Literal["digests", "presence"]
    n_files: int
    missing: tuple[str, ...]
    altered: tuple[str, ...]
    unexpected: tuple[str, ...]

    @property
    def root_digest(self) -> str:
        return self.manifest.root_digest

    @property
    def ok(self) -> bool:
        return not (self.missing or self.altered or self.unexpected)

    def problems(self) -> list[str]:
        """One line per problem, naming the file and, for chunks, level and grid index."""
        return (
            [f"missing: {describe_path(p)}" for p in self.missing]
            + [f"altered: {describe_path(p)}" for p in self.altered]
            + [f"unexpected file: {p}" for p in self.unexpected]
        )

    def raise_for_problems(self) -> None:
        """Raise :class:`IntegrityError` listing every problem, if there is any."""
        if self.ok:
            return
        lines = self.problems()
        shown = "\n  ".join(lines[:50]) + (
            f"\n  ... and {len(lines) - 50} more" if len(lines) > 50 else ""
        )
        raise IntegrityError(
            f"{self.root} failed verification: {len(self.missing)} missing, {len(self.altered)} "
            f"altered, {len(self.unexpected)} unexpected of {self.n_files} files. Do not use this "
            f"volume as it is; re-ingest it from its source or restore it from a copy.\n  {shown}"
        )


def describe_path(rel: str) -> str:
    """``"0/c/1/0/2"`` → ``"level 0 chunk (1, 0, 2) [0/c/1/0/2]"``; other paths unchanged."""
    parts = rel.split("/")
    if len(parts) >= 3 and parts[1] == "c" and all(p.isdigit() for p in parts[2:]):
        return f"level {parts[0]} chunk ({', '.join(parts[2:])}) [{rel}]"
    return rel


def verify_volume(
    root: Path | str, *, mode: Literal["digests", "presence"] = "digests"
) -> VerificationReport:
    """Check a stored volume against its manifest.

    Parameters
    ----------
    root : path or str
        Folder written by ``emqc ingest``, or its URL on an object store
        (``s3://bucket/vol.ome.zarr``).
    mode : {"digests", "presence"}
        ``digests`` re-hashes every file; ``presence`` only checks that every
        file exists with its recorded size (fast; catches missing and truncated
        chunks, not same-size alterations).

    Returns
    -------
    VerificationReport
        Lists missing, altered and unexpected files; ``report.ok`` tells the verdict.

    Raises
    ------
    IncompleteVolumeError, IntegrityError
        When the manifest itself is absent or damaged (see :func:`read_manifest`).
    """
    if mode not in ("digests", "presence"):
        raise ValueError(f"mode must be 'digests' or 'presence', got {mode!r}")
    root = storage.as_location(root)
    manifest = read_manifest(root)
    sizes = _listing(root)
    on_disk = set(sizes)
    expected = {f.path: f for f in manifest.files}
    # Chunks the arrays' own metadata implies must be listed too: a chunk deleted together
    # with its manifest line (and a recomputed root digest) is still missing.
    try:
        implied = implied_chunk_files(root)
    except (IncompleteVolumeError, OSError, ValueError, KeyError):
        implied = set()  # damaged metadata is reported as an altered file
    missing = sorted({p for p in expected if p not in on_disk} | (implied - expected.keys()))
    unexpected = sorted(p for p in on_disk if p not in expected)
    present = [expected[p] for p in sorted(expected) if p in on_disk]
    if mode == "digests":
        actual = {d.path: d for d in _digest_paths(root, [f.path for f in present])}
        altered = [f.path for f in present if actual[f.path].sha256 != f.sha256]
    else:
        altered = [f.path for f in present if sizes[f.path] != f.size]
    return VerificationReport(
        root, manifest, mode, len(expected), tuple(missing), tuple(altered), tuple(unexpected)
    )


def implied_chunk_files(root: Path | str) -> set[str]:
    """Chunk files (relative paths) that every level's ``zarr.json`` implies must exist."""
    from .omezarr import chunk_keys, open_image

    _, arrays = open_image(root, strict=False)
    return {f"{arr.path}/{key}" for arr in arrays for key in chunk_keys(arr)}


def _digest_paths(
    root: Path | str, rels: list[str], *, workers: int | None = None
) -> list[FileDigest]:
    """Digests of the given files: local ones hashed in a thread pool (hashlib releases the
    GIL), objects fetched concurrently in batches."""
    if storage.is_remote(root):
        return [
            FileDigest(rel, hashlib.sha256(data).hexdigest(), len(data))
            for rel, data in storage.cat_files(root, rels)
        ]
    base = Path(root)

    def one(rel: str) -> FileDigest:
        full = base / rel
        return FileDigest(rel, sha256_file(full), full.stat().st_size)

    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 2) * 2)) as pool:
        return list(pool.map(one, rels))
