"""Verify a report folder offline: signatures, files, ledger, and (given the data) volumes.

:func:`verify_report` needs nothing but the report folder (and, to recompute the
volumes' digests, the data). It checks, and names what fails:

1. the envelope: canonical form, every signature against the report's key
   registry (unknown, forged, moved and revoked signatures fail), the signers'
   entries (name, role, meaning);
2. the key registry's own self-signatures and revocations;
3. every file of the folder against its subject digest; a file not attested is an
   addition, an attested file absent a deletion;
4. the ledger copy: each event's hash, sequence, chain link and signature; its
   head must be the statement's, and no signature may predate it;
5. that the statement matches the ledger: every volume digest was recorded by the
   ledger's events, each sample's results are those its score event recorded;
6. with ``data_root``: each volume found there is re-hashed chunk by chunk and its
   root digest compared with the statement's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EmqcError, TamperError
from ..manifest import sha256_file, verify_volume
from ._attest import open_envelope
from ._canonical import parse_utc, sha256_hex
from ._export import ENVELOPE_FILE, LEDGER_COPY, REGISTRY_COPY
from ._keys import KeyRegistry
from ._ledger import Event, Ledger, verify_events
from ._study import LEDGER_FILE

__all__ = ["ReportVerification", "verify_report"]


@dataclass
class ReportVerification:
    """What :func:`verify_report` found; ``ok`` when ``problems`` is empty."""

    report: Path
    problems: list[str] = field(default_factory=list)
    signers: tuple[dict[str, Any], ...] = ()
    n_files: int = 0
    n_events: int = 0
    ledger_head: dict[str, Any] = field(default_factory=dict)
    volumes_checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """A short readable account of what was proven (or of every failure)."""
        if not self.ok:
            shown = "\n  ".join(self.problems[:50])
            more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
            return f"FAILED {self.report}: {len(self.problems)} problem(s)\n  {shown}{more}"
        lines = [f"OK {self.report}: the report is intact and signed"]
        for s in self.signers:
            lines.append(
                f"  signed   {s['name']} ({s['role']}, key {s['keyid'][:16]}): "
                f"{s['meaning']} at {s['time']}"
            )
        lines.append(f"  files    {self.n_files} attested files unaltered, none added or removed")
        head = self.ledger_head
        lines.append(
            f"  ledger   {self.n_events} events, chain and signatures intact; head "
            f"#{head.get('seq')} sha256:{str(head.get('hash'))[:16]}"
        )
        if self.volumes_checked:
            lines.append(
                f"  data     {len(self.volumes_checked)} volume(s) re-hashed, digests match: "
                + ", ".join(self.volumes_checked)
            )
        else:
            lines.append("  data     not checked (give --data ROOT to re-hash the volumes)")
        lines.append("  Compare the key ids above with those the signers gave you out of band.")
        return "\n".join(lines)

    def raise_for_problems(self) -> None:
        """Raise :class:`TamperError` with :meth:`summary` if anything failed."""
        if not self.ok:
            raise TamperError(self.summary())


def verify_report(
    report: Path | str,
    *,
    data_root: Path | str | None = None,
    current_keys: Path | str | None = None,
) -> ReportVerification:
    """Verify a report folder written by :func:`~emqc.custody.export_report`.

    Parameters
    ----------
    report : Path
        The report folder.
    data_root : Path, optional
        Folder under which the volumes are found by the names the statement gives
        them (the study folder, as a rule); their chunks are then re-hashed.
    current_keys : Path, optional
        The study's key registry as it is now (default: ``data_root/keys.json`` when
        there is one): a key revoked since the report was signed, from a time at or
        before its signature, fails too.

    Returns
    -------
    ReportVerification
        Never raises for a tampered report: every problem is listed instead.
    """
    root = Path(report)
    result = ReportVerification(root)
    problems = result.problems
    envelope_path = root / ENVELOPE_FILE
    if not envelope_path.is_file():
        problems.append(f"{envelope_path}: missing; this is not a signed emqc report folder")
        return result
    try:
        registry = KeyRegistry(root / REGISTRY_COPY)
    except EmqcError as exc:
        problems.append(str(exc.message))
        registry = KeyRegistry(root / ".no-registry")
    problems.extend(registry.problems)
    try:
        signed = open_envelope(envelope_path.read_bytes(), registry, where=str(envelope_path))
    except TamperError as exc:
        problems.append(exc.message)
        return result
    statement = signed.statement
    predicate = statement["predicate"]
    result.signers = signed.signers
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}

    if (
        current_keys is None
        and data_root is not None
        and (Path(data_root) / REGISTRY_COPY).is_file()
    ):
        current_keys = Path(data_root) / REGISTRY_COPY
    if current_keys is not None:
        _check_current_keys(Path(current_keys), signed.signers, problems)

    # 3. Files.
    attested = {
        n: d
        for n, d in subjects.items()
        if not n.startswith(("volume:", "ledger-head:", "judging-session:"))
    }
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    present.discard(ENVELOPE_FILE)
    for name in sorted(present - attested.keys()):
        problems.append(f"{root / name}: not attested by the signed statement (a file was added)")
    for name, digest in sorted(attested.items()):
        path = root / name
        if name not in present:
            problems.append(f"{path}: attested but missing (a file was removed)")
        elif sha256_file(path) != digest:
            problems.append(f"{path}: bytes differ from the attested digest (file altered)")
    result.n_files = len(attested)

    # 4. Ledger copy.
    events = _ledger_copy(root / LEDGER_COPY, problems)
    result.n_events = len(events)
    problems.extend(verify_events(events, registry, where=str(root / LEDGER_COPY)))
    head = predicate.get("ledger_head", {})
    result.ledger_head = head
    if events and (events[-1].seq, events[-1].hash) != (head.get("seq"), head.get("hash")):
        problems.append(
            f"{root / LEDGER_COPY}: ends at event {events[-1].seq}, not at the attested "
            f"head #{head.get('seq')} (events removed or added)"
        )
    if subjects.get(f"ledger-head:{head.get('seq')}") != head.get("hash"):
        problems.append(f"{envelope_path}: ledger head subject does not match the predicate")
    for s in signed.signers:
        if head.get("time") and parse_utc(s["time"]) < parse_utc(head["time"]):
            problems.append(
                f"{envelope_path}: {s['name']} signed at {s['time']}, before the last "
                f"ledger event it attests ({head['time']})"
            )

    # 5. Statement vs ledger.
    _match_ledger(predicate, subjects, events, problems, root)

    # 6. Data, and the study's live ledger when the data root is the study.
    if data_root is not None:
        _check_volumes(Path(data_root), subjects, problems, result)
        live = Path(data_root) / LEDGER_FILE
        if live.is_file():
            _compare_live_ledger(events, live, problems)
    return result


def _compare_live_ledger(copy: Sequence[Event], live_path: Path, problems: list[str]) -> None:
    """The report's ledger copy must be the start of the study's ledger; name differing fields."""
    try:
        live = {e.seq: e for e in Ledger(live_path).events()}
    except EmqcError as exc:
        problems.append(exc.message)
        return
    for ev in copy:
        other = live.get(ev.seq)
        if other is None:
            problems.append(
                f"{live_path}: event {ev.seq} of the report's ledger copy is missing here"
            )
            continue
        if (other.body, other.hash, other.signature) == (ev.body, ev.hash, ev.signature):
            continue
        try:
            a, b = ev.fields, other.fields
            fields = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        except (ValueError, TypeError):
            fields = ["(unreadable body)"]
        if sha256_hex(other.body) != other.hash:
            where = "the study's ledger holds altered bytes"
        elif sha256_hex(ev.body) != ev.hash:
            where = "the report's copy holds altered bytes"
        else:
            where = "each is self-consistent: one was rewritten, see its signature check"
        problems.append(
            f"{live_path}: event {ev.seq} differs from the report's copy in "
            f"{', '.join(fields) or 'hash or signature'} ({where})"
        )


def _ledger_copy(path: Path, problems: list[str]) -> list[Event]:
    if not path.is_file():
        problems.append(f"{path}: missing; the report holds no copy of the custody ledger")
        return []
    events = []
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        problems.append(f"{path}: not UTF-8 text (altered)")
        return []
    for i, line in enumerate(text.splitlines(), 1):
        try:
            events.append(Event.from_json_line(line))
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"{path}: line {i} is not a ledger event record ({exc}); altered")
    return events


def _match_ledger(
    predicate: dict, subjects: dict, events: Sequence[Event], problems: list[str], root: Path
) -> None:
    recorded: dict[int, dict[str, str]] = {}
    all_digests: set[str] = set()
    for ev in events:
        try:
            objs = {o["name"]: o["digest"]["sha256"] for o in ev.fields["objects"]}
        except (ValueError, KeyError, TypeError):
            continue
        recorded[ev.seq] = objs
        all_digests.update(objs.values())
    for name, digest in subjects.items():
        recorded_kind = name.startswith(("volume:", "judging-session:", "judging/"))
        if recorded_kind and digest not in all_digests:
            problems.append(
                f"statement subject {name}: digest {digest[:16]} appears in no ledger event"
            )
    for smp in predicate.get("samples", []):
        objs = recorded.get(int(smp.get("score_event", -1)))
        if objs is None:
            problems.append(
                f"sample {smp.get('sample')}: its score event {smp.get('score_event')} "
                "is not in the ledger copy"
            )
            continue
        if objs.get(f"volume:{smp['volume']}") != smp.get("volume_digest"):
            problems.append(
                f"sample {smp['sample']}: volume digest differs from score event "
                f"{smp['score_event']}"
            )
        score_digests = {
            n.rsplit("/", 1)[-1]: d for n, d in objs.items() if n.startswith("result:")
        }
        for fname, digest in score_digests.items():
            rel = f"{smp['results']}{fname}"
            if subjects.get(rel) != digest:
                problems.append(
                    f"{root / rel}: not the file score event {smp['score_event']} recorded"
                )


def _check_volumes(
    data_root: Path, subjects: dict, problems: list[str], result: ReportVerification
) -> None:
    for name, digest in sorted(subjects.items()):
        if not name.startswith("volume:"):
            continue
        rel = name.removeprefix("volume:")
        path = Path(rel) if Path(rel).is_absolute() else data_root / rel
        if not path.is_dir():
            problems.append(f"{path}: volume {rel} not found under --data {data_root}")
            continue
        try:
            report = verify_volume(path, mode="digests")
        except EmqcError as exc:
            problems.append(exc.message)
            continue
        problems.extend(f"{path}: {p}" for p in report.problems())
        if report.root_digest != digest:
            problems.append(
                f"{path}: root digest {report.root_digest[:16]} is not the attested "
                f"{digest[:16]} (the volume's manifest changed)"
            )
        if report.ok and report.root_digest == digest:
            result.volumes_checked.append(rel)


def _check_current_keys(path: Path, signers: Sequence[dict[str, Any]], problems: list[str]) -> None:
    """Revocations made since the report was written, from the registry as it is now."""
    try:
        now = KeyRegistry(path)
    except EmqcError as exc:
        problems.append(exc.message)
        return
    problems.extend(now.problems)
    for s in signers:
        rev = now.revocations.get(s["keyid"])
        if rev is not None and parse_utc(s["time"]) >= parse_utc(rev.revoked_from):
            problems.append(
                f"{path}: {s['name']}'s key {s['keyid'][:12]} was revoked from "
                f"{rev.revoked_from} ({rev.reason}); its signature of {s['time']} "
                "is not valid"
            )
