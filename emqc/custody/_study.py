"""A study folder: its custody ledger and key registry, and the events pipeline steps write.

A study is one folder (``--study DIR`` or ``EMQC_STUDY``) holding
``custody.sqlite`` (the :class:`~emqc.custody.Ledger`) and ``keys.json`` (the
:class:`~emqc.custody.KeyRegistry`); its volumes, block lists and score folders
usually live below it, and events name them by their path relative to the study.
The helpers here build the events of each pipeline step with the digests of what
the step read and wrote: a volume by the root digest of its chunk manifest, any
other file by its SHA-256.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CustodyError
from ..manifest import read_manifest, sha256_file
from ._keys import KeyRegistry, Signer, is_self_revocation, load_signer
from ._ledger import Event, Ledger, object_ref

__all__ = ["LEDGER_FILE", "REGISTRY_FILE", "Study", "signer_from"]

LEDGER_FILE = "custody.sqlite"
REGISTRY_FILE = "keys.json"


@dataclass(frozen=True)
class Study:
    """A study folder (see the module docstring)."""

    root: Path

    @classmethod
    def open(cls, root: Path | str, *, create: bool = False) -> Study:
        """The study at ``root``; with ``create``, make the folder if needed.

        Raises
        ------
        CustodyError
            If ``root`` is not a folder (and ``create`` is false).
        """
        path = Path(root).absolute()
        if create:
            path.mkdir(parents=True, exist_ok=True)
        elif not path.is_dir():
            raise CustodyError(
                f"{path}: no study folder here; create keys in it with "
                f"`emqc keys new NAME --study {path}`"
            )
        return cls(path)

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.root / LEDGER_FILE)

    @property
    def registry(self) -> KeyRegistry:
        """The key registry as it is on disk now."""
        return KeyRegistry(self.root / REGISTRY_FILE)

    def name_of(self, path: Path | str) -> str:
        """``path`` relative to the study (POSIX), or absolute when outside it."""
        p = Path(path).absolute()
        try:
            return p.relative_to(self.root).as_posix()
        except ValueError:
            return p.as_posix()

    def file_ref(self, path: Path | str, *, kind: str = "file") -> dict[str, Any]:
        """Object reference ``kind:name`` with the file's SHA-256."""
        return object_ref(f"{kind}:{self.name_of(path)}", sha256_file(Path(path)))

    def volume_ref(self, path: Path | str) -> dict[str, Any]:
        """Object reference ``volume:name`` with the volume's manifest root digest."""
        return object_ref(f"volume:{self.name_of(path)}", read_manifest(Path(path)).root_digest)

    def record(
        self,
        signer: Signer,
        action: str,
        *,
        reason: str = "",
        objects: Sequence[Mapping[str, Any]] = (),
        params: Mapping[str, Any] | None = None,
    ) -> Event:
        """Append a signed event to the study's ledger."""
        registry = self.registry
        if not is_self_revocation(action, dict(params or {}), signer.keyid):
            registry.refuse_revoked(signer.keyid)
        if signer.keyid not in registry.keys:
            raise CustodyError(
                f"{signer.public.short} is not registered in this study "
                f"({self.root / REGISTRY_FILE})"
            )
        return self.ledger.append(signer, action, reason=reason, objects=objects, params=params)

    def score_event(
        self, signer: Signer, volume: Path, out: Path, *, block_list: Path | None, reason: str = ""
    ) -> Event:
        """Record a finished ``emqc score`` run: volume, block list and every output's digest."""
        import json

        summary = json.loads((out / "summary.json").read_text())
        objects = [self.volume_ref(volume)]
        if block_list is not None:
            objects.append(self.file_ref(block_list, kind="blocks"))
        for name in ("summary.json", "blocks.parquet", "blocks.csv", "blocks.json"):
            objects.append(self.file_ref(out / name, kind="result"))
        params = {
            "out": self.name_of(out),
            "volume": self.name_of(volume),
            "models": summary.get("models", {}),
            "seed": summary.get("seed"),
            "thresholds": summary.get("thresholds", {}),
        }
        return self.record(signer, "score", reason=reason, objects=objects, params=params)


def signer_from(study: Study, key: Path | str | None, *, passphrase: str | None = None) -> Signer:
    """The signer for a command: ``key`` or ``EMQC_KEY``; passphrase or ``EMQC_KEY_PASSPHRASE``.

    Raises
    ------
    CustodyError
        If no key is given for a study command.
    """
    path = key or os.environ.get("EMQC_KEY")
    if not path:
        raise CustodyError(
            f"the study {study.root} records who does what: give your key with "
            "--key FILE or EMQC_KEY (create one with `emqc keys new NAME`)"
        )
    pw = passphrase if passphrase is not None else os.environ.get("EMQC_KEY_PASSPHRASE")
    return load_signer(path, study.registry, pw)
