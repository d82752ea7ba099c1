"""Publishing a finished output folder so that nothing half-written ever looks complete."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

__all__ = ["publish_dir"]


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
