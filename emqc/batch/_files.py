"""The batch's output folder: small files written whole or not at all, local or on object storage.

Every file the batch writes besides volumes goes through :class:`OutputFolder`:
on a local disk, a temporary file in the same folder, flushed and fsynced, then
renamed over the target (POSIX ``rename`` is atomic); on object storage (S3,
GCS), one PUT, which stores the whole object or nothing. A reader therefore
never sees half a file, whenever the writer is killed.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

__all__ = ["OutputFolder", "TEMP_MARK"]

#: Part of every temporary file's name (left behind only by a killed writer).
TEMP_MARK = ".emqc-tmp-"


class OutputFolder:
    """A folder (local path or fsspec URL) and atomic reads and writes relative to it.

    Parameters
    ----------
    root : str
        Local path or URL (``s3://bucket/prefix``).
    """

    def __init__(self, root: str) -> None:
        import fsspec

        self.root = root.rstrip("/")
        self.is_local = "://" not in root or root.startswith("file://")
        self.fs, self._base = fsspec.core.url_to_fs(self.root)

    def url(self, rel: str) -> str:
        """Full path or URL of ``rel``."""
        return f"{self.root}/{rel}" if rel else self.root

    def _path(self, rel: str) -> str:
        return f"{self._base}/{rel}" if rel else self._base

    def read_bytes(self, rel: str) -> bytes | None:
        """The file's bytes, or None when it does not exist."""
        try:
            return self.fs.cat_file(self._path(rel))
        except FileNotFoundError:
            return None

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write ``data`` to ``rel`` whole or not at all (see the module docstring)."""
        if not self.is_local:
            self.fs.pipe_file(self._path(rel), data)
            return
        target = Path(self._path(rel))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}{TEMP_MARK}{uuid.uuid4().hex[:8]}")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def exists(self, rel: str) -> bool:
        return bool(self.fs.exists(self._path(rel)))

    def remove(self, rel: str) -> None:
        """Remove a file or folder if present."""
        path = self._path(rel)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def list(self, rel: str) -> list[str]:
        """Names directly inside folder ``rel`` (empty when it does not exist)."""
        try:
            entries = self.fs.ls(self._path(rel), detail=False)
        except FileNotFoundError:
            return []
        return sorted(str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries)

    def remove_temporaries(self, rel: str) -> int:
        """Delete temporary files a killed writer left in folder ``rel``; return how many."""
        stale = [name for name in self.list(rel) if TEMP_MARK in name]
        for name in stale:
            self.remove(f"{rel}/{name}")
        return len(stale)
