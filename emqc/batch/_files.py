"""The batch's output folder: small files written whole or not at all, local or on object storage.

Every file the batch writes besides volumes goes through :class:`OutputFolder`, a
thin layer over :mod:`emqc.storage`: on a local disk a temporary file beside the
target, fsynced, then renamed over it; on object storage (S3, GCS) one PUT, which
stores the whole object or nothing. A reader never sees half a file, whenever the
writer is killed.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import storage

__all__ = ["OutputFolder"]

#: How :func:`emqc.storage.write_bytes` names its temporary files (left only by a killed writer).
_TEMP_SUFFIX = ".emqc-tmp"


class OutputFolder:
    """A folder (local path or URL such as ``s3://bucket/prefix``) and atomic I/O inside it."""

    def __init__(self, root: str | Path) -> None:
        self.root = str(storage.as_location(root)).rstrip("/")
        self.is_local = not storage.is_remote(self.root)

    def url(self, rel: str) -> str:
        """Full path or URL of ``rel`` (POSIX-style, relative to the root)."""
        return str(storage.join(self.root, rel)) if rel else self.root

    def read_bytes(self, rel: str) -> bytes | None:
        """The file's bytes, or None when it does not exist."""
        try:
            return storage.read_bytes(self.url(rel))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write ``data`` to ``rel`` whole or not at all."""
        if self.is_local:
            Path(self.url(rel)).parent.mkdir(parents=True, exist_ok=True)
        storage.write_bytes(self.url(rel), data)

    def exists(self, rel: str) -> bool:
        return storage.exists(self.url(rel))

    def remove(self, rel: str) -> None:
        """Remove a file or a folder with everything in it, if present."""
        location = self.url(rel)
        if self.is_local and not Path(location).is_dir():
            storage.remove_file(location)
        else:
            storage.remove_tree(location)

    def list(self, rel: str) -> list[str]:
        """Names directly inside folder ``rel`` (empty when it does not exist)."""
        if self.is_local:
            try:
                return sorted(os.listdir(self.url(rel)))
            except (FileNotFoundError, NotADirectoryError):
                return []
        return sorted({name.split("/", 1)[0] for name in storage.list_files(self.url(rel))})

    def remove_temporaries(self, rel: str) -> int:
        """Delete temporary files a killed writer left in folder ``rel``; return how many."""
        stale = [name for name in self.list(rel) if name.endswith(_TEMP_SUFFIX)]
        for name in stale:
            self.remove(f"{rel}/{name}" if rel else name)
        return len(stale)
