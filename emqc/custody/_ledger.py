"""The custody ledger: an append-only, hash-chained, signed log of everything done to a study.

Each event is one canonical JSON object (:func:`~emqc.custody._canonical.canonical_bytes`)
stored as its exact bytes, together with its SHA-256 and the actor's Ed25519
signature of those bytes. An event holds its sequence number and the hash of the
event before it (``prev``; 64 zeros for the first), so that changing, removing or
reordering any event breaks every later link, as in Certificate Transparency's logs
[1]_; the signature binds the event to a person (21 CFR Part 11 §11.70: a signature
cannot be moved to another record [2]_). Nothing is ever updated or deleted: an
amendment is a new event that names the one it amends, so no change hides what was
there before.

Fields of an event (``format`` ``"emqc.custody-event/1"``): ``seq``, ``prev``,
``time`` (UTC, microseconds), ``actor`` and ``role`` (as registered with the key),
``keyid``, ``action`` (e.g. ``ingest``, ``score``, ``judge.verdict``), ``reason``,
``objects`` (``[{"name": ..., "digest": {"sha256": ...}}]``), ``params`` and
``software`` (emqc and Python versions).

The store is an SQLite database [3]_ (one file per study). Appends run in an
``IMMEDIATE`` transaction, so several processes appending at once are serialised by
SQLite's lock: none is lost and the chain stays linear. (SQLite's locking needs a
file system with working POSIX locks; on NFS prefer one writer host.)

References
----------
.. [1] B. Laurie, A. Langley, E. Kasper (2013), Certificate Transparency, RFC 6962.
.. [2] US FDA, 21 CFR Part 11, Electronic records; electronic signatures, §11.10(e),
   §11.50, §11.70.
.. [3] SQLite, "Atomic commit in SQLite" and "File locking and concurrency in SQLite
   version 3", https://www.sqlite.org/atomiccommit.html.
"""

from __future__ import annotations

import csv
import io
import json
import platform
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CustodyError, TamperError
from ._canonical import canonical_bytes, sha256_hex, utc_now
from ._keys import KeyRegistry, Signer, is_self_revocation

__all__ = [
    "EVENT_FORMAT",
    "GENESIS",
    "Event",
    "Ledger",
    "export_events",
    "object_ref",
    "read_copy",
    "verify_events",
]

EVENT_FORMAT = "emqc.custody-event/1"
#: ``prev`` of the first event.
GENESIS = "0" * 64
_ACTION = re.compile(r"^[a-z][a-z_]*(\.[a-z][a-z_]*)*$")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    body BLOB NOT NULL,
    hash TEXT NOT NULL,
    signature TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class Event:
    """One stored event: its exact bytes, their hash and signature, and the parsed fields."""

    seq: int
    body: bytes
    hash: str
    signature: str

    @property
    def fields(self) -> dict[str, Any]:
        """The event's fields (parsed from :attr:`body`)."""
        return json.loads(self.body.decode("utf-8"))

    def to_json_line(self) -> str:
        """One line of a ledger copy: the exact body as a JSON string, hash and signature."""
        return json.dumps(
            {
                "seq": self.seq,
                "body": self.body.decode("utf-8"),
                "hash": self.hash,
                "signature": self.signature,
            },
            ensure_ascii=False,
            sort_keys=True,
        )

    @classmethod
    def from_json_line(cls, line: str) -> Event:
        """Inverse of :meth:`to_json_line`."""
        d = json.loads(line)
        return cls(
            int(d["seq"]), str(d["body"]).encode("utf-8"), str(d["hash"]), str(d["signature"])
        )


def object_ref(name: str, sha256: str) -> dict[str, Any]:
    """An entry of an event's ``objects``: a name and its SHA-256 digest."""
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError(f"object {name!r}: digest must be 64 lowercase hex digits, got {sha256!r}")
    return {"name": str(name), "digest": {"sha256": sha256}}


def _software() -> dict[str, str]:
    from .. import __version__

    return {"emqc": __version__, "python": platform.python_version()}


class Ledger:
    """The custody ledger of a study, in an SQLite file (created when first appended to).

    Parameters
    ----------
    path : Path
        The database file, e.g. ``STUDY/custody.sqlite``.
    timeout_s : float
        How long an append waits for another process's lock.
    """

    def __init__(self, path: Path | str, *, timeout_s: float = 120.0) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s

    def _connect(self, *, create: bool) -> sqlite3.Connection:
        if not create and not self.path.exists():
            raise CustodyError(f"{self.path}: no custody ledger here; check the --study folder")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        uri = self.path.absolute().as_uri() + ("" if create else "?mode=rw")
        conn = sqlite3.connect(uri, uri=True, timeout=self.timeout_s, isolation_level=None)
        try:
            conn.execute(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise TamperError(
                f"{self.path}: not a readable SQLite ledger ({exc}); the file was "
                "altered or truncated. Restore it from a backup."
            ) from None
        return conn

    def append(
        self,
        signer: Signer,
        action: str,
        *,
        reason: str = "",
        objects: Sequence[Mapping[str, Any]] = (),
        params: Mapping[str, Any] | None = None,
    ) -> Event:
        """Append one event signed by ``signer``; return it.

        Raises
        ------
        CustodyError
            If ``action`` is not a dotted lower-case name or a field cannot be stored.
        """
        if not _ACTION.match(action):
            raise CustodyError(f"action {action!r} must be a dotted lower-case name, e.g. 'score'")
        conn = self._connect(create=True)
        try:
            conn.execute("BEGIN IMMEDIATE")
            last = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
            fields = {
                "format": EVENT_FORMAT,
                "seq": seq,
                "prev": prev,
                "time": utc_now(),
                "actor": signer.name,
                "role": signer.role,
                "keyid": signer.keyid,
                "action": action,
                "reason": reason,
                "objects": [dict(o) for o in objects],
                "params": dict(params or {}),
                "software": _software(),
            }
            try:
                body = canonical_bytes(fields)
            except (TypeError, ValueError) as exc:
                raise CustodyError(f"event {action!r} cannot be recorded: {exc}") from None
            event = Event(seq, body, sha256_hex(body), signer.sign(body))
            conn.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?)",
                (event.seq, event.body, event.hash, event.signature),
            )
            conn.execute("COMMIT")
            return event
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()

    def events(self) -> list[Event]:
        """Every event, in sequence order (an empty list for a ledger not yet created)."""
        if not self.path.exists():
            return []
        conn = self._connect(create=False)
        try:
            rows = conn.execute(
                "SELECT seq, body, hash, signature FROM events ORDER BY seq"
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise TamperError(
                f"{self.path}: the ledger cannot be read ({exc}); it was altered"
            ) from None
        finally:
            conn.close()
        out = []
        for seq, body, digest, sig in rows:
            body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
            out.append(Event(int(seq), body, str(digest), str(sig)))
        return out

    def head(self) -> dict[str, Any]:
        """``{"seq": n, "hash": h}`` of the last event (seq 0 and :data:`GENESIS` if none)."""
        events = self.events()
        return (
            {"seq": events[-1].seq, "hash": events[-1].hash}
            if events
            else {"seq": 0, "hash": GENESIS}
        )

    def verify(self, registry: KeyRegistry) -> list[str]:
        """Problems with the chain and signatures (empty when the ledger is intact)."""
        return verify_events(self.events(), registry, where=str(self.path))


def verify_events(events: Iterable[Event], registry: KeyRegistry, *, where: str) -> list[str]:
    """Check a sequence of events: hashes, sequence, chain links, signatures, identities.

    Returns
    -------
    list of str
        One message per problem, naming the event (``seq``) and what is wrong; empty
        when every event is intact, in order, linked and validly signed.
    """
    problems: list[str] = []
    prev, expected = GENESIS, 1
    for ev in events:
        tag = f"{where}: event {ev.seq}"
        if ev.seq != expected:
            problems.append(f"{tag}: expected event {expected} here (events removed or reordered)")
        expected = ev.seq + 1
        if sha256_hex(ev.body) != ev.hash:
            problems.append(f"{tag}: stored bytes do not match their hash (event altered)")
        try:
            f = json.loads(ev.body.decode("utf-8"))
            if not isinstance(f, dict) or f.get("format") != EVENT_FORMAT:
                raise ValueError("not an emqc custody event")
            seq, link, keyid, time = int(f["seq"]), str(f["prev"]), str(f["keyid"]), str(f["time"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            problems.append(f"{tag}: body is not a readable event ({exc}); altered")
            prev = ev.hash
            continue
        if seq != ev.seq:
            problems.append(f"{tag}: body says event {seq} (moved from another position)")
        if link != prev:
            problems.append(
                f"{tag}: 'prev' does not match the previous event's hash (chain broken)"
            )
        try:
            own = is_self_revocation(f.get("action"), f.get("params"), keyid)
            key = registry.check_signature(keyid, ev.body, ev.signature, time, revoking_itself=own)
        except (TamperError, ValueError) as exc:
            problems.append(f"{tag}: {exc}")
        else:
            if (f.get("actor"), f.get("role")) != (key.name, key.role):
                problems.append(f"{tag}: actor/role do not match the registered key {key.short}")
        prev = ev.hash
    return problems


def export_events(events: Sequence[Event], fmt: str) -> str:
    """A complete human-readable copy of the ledger: ``"csv"`` or ``"json"``.

    Every field of every event is exported, with its hash and signature, so that the
    copy can be checked against the ledger and read without emqc.
    """
    if fmt == "json":
        rows = [{**e.fields, "hash": e.hash, "signature": e.signature} for e in events]
        return json.dumps(rows, indent=1, ensure_ascii=False) + "\n"
    if fmt != "csv":
        raise CustodyError(f"export format {fmt!r} is not csv or json")
    buf = io.StringIO()
    cols = [
        "seq",
        "time",
        "actor",
        "role",
        "action",
        "reason",
        "objects",
        "params",
        "software",
        "keyid",
        "prev",
        "hash",
        "signature",
    ]
    w = csv.writer(buf)
    w.writerow(cols)
    for e in events:
        f = e.fields
        objects = "; ".join(f"{o['name']}=sha256:{o['digest']['sha256']}" for o in f["objects"])
        w.writerow(
            [
                f["seq"],
                f["time"],
                f["actor"],
                f["role"],
                f["action"],
                f["reason"],
                objects,
                json.dumps(f["params"], sort_keys=True),
                json.dumps(f["software"], sort_keys=True),
                f["keyid"],
                f["prev"],
                e.hash,
                e.signature,
            ]
        )
    return buf.getvalue()


def read_copy(path: Path) -> Iterator[Event]:
    """Events of a ledger copy written with :meth:`Event.to_json_line` (one per line).

    Raises
    ------
    TamperError
        If a line is not a readable event record (the message names the line).
    """
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            yield Event.from_json_line(line)
        except (ValueError, KeyError, TypeError) as exc:
            raise TamperError(
                f"{path}: line {i} is not a ledger event record ({exc}); altered"
            ) from None
