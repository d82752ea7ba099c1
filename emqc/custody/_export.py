"""Export a signed report folder for a study: what was scored, the trail, the signatures.

:func:`export_report` refuses to report on a ledger that does not verify, or on score
outputs that changed since the ledger recorded them. It then writes, into a staging
folder that replaces ``out`` only when complete:

- ``report.html``, ``report.pdf`` and their figures (:mod:`emqc.reports`);
- ``results/<sample>/``: the scored outputs (``summary.json``, ``blocks.parquet``,
  ``blocks.csv``, ``blocks.json``), byte for byte as the ledger recorded them;
- ``judging/<session>/``: for every unblinded judging session in the ledger, its
  verdicts, agreement tables and plots (checked against the ``judge.unblind`` event),
  summarised in the report's judging section; the session's ``session.json`` digest is a
  subject of the statement;
- ``ledger.jsonl``: the custody ledger up to its head, every event's exact bytes;
- ``keys.json``: the key registry as it was;
- ``attestation.dsse.json``: the in-toto statement over all of the above (each file,
  each volume's root digest, the ledger head), signed by every signer
  (:mod:`emqc.custody._attest`).

Each signature is then recorded in the ledger as a ``report.sign`` event.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from .._atomic import publish_dir
from ..errors import CustodyError, TamperError
from ..manifest import sha256_file
from ._attest import MEANINGS, envelope_bytes, make_statement, sign_statement
from ._canonical import utc_now
from ._keys import Signer
from ._ledger import Event
from ._study import Study

__all__ = ["ENVELOPE_FILE", "LEDGER_COPY", "REGISTRY_COPY", "ExportedReport", "export_report"]

ENVELOPE_FILE = "attestation.dsse.json"
LEDGER_COPY = "ledger.jsonl"
REGISTRY_COPY = "keys.json"
RESULT_FILES = ("summary.json", "blocks.parquet", "blocks.csv", "blocks.json")


@dataclass(frozen=True)
class ScoredSample:
    """The latest ``score`` event of one volume and what it recorded."""

    sample: str
    volume: str  # name relative to the study
    volume_digest: str
    out: Path
    event: Event
    digests: dict[str, str]  # result file name -> sha256


@dataclass(frozen=True)
class ExportedReport:
    """A written report folder."""

    out: Path
    pdf: Path
    html: Path
    envelope: Path
    samples: tuple[str, ...]
    ledger_head: dict[str, Any]
    signers: tuple[dict[str, Any], ...]


def scored_samples(study: Study, events: Sequence[Event]) -> list[ScoredSample]:
    """The latest score of each volume in the ledger, checked against the files on disk.

    Raises
    ------
    CustodyError
        If the ledger has no score event.
    TamperError
        If a recorded output is missing or its bytes changed since it was recorded.
    """
    latest: dict[str, Event] = {}
    for ev in events:
        if ev.fields["action"] == "score":
            latest[ev.fields["params"]["volume"]] = ev
    if not latest:
        raise CustodyError(
            f"{study.ledger.path}: nothing was scored in this study yet; run "
            f"`emqc score VOLUME --study {study.root} --key KEY ...` first"
        )
    out = []
    for volume, ev in sorted(latest.items()):
        f = ev.fields
        refs = {o["name"]: o["digest"]["sha256"] for o in f["objects"]}
        folder = study.root / f["params"]["out"]
        digests = {}
        for name in RESULT_FILES:
            ref = f"result:{study.name_of(folder / name)}"
            path = folder / name
            if ref not in refs:
                continue
            if not path.is_file():
                raise TamperError(
                    f"{path}: recorded by ledger event {ev.seq} (score) but missing; "
                    "restore it, or score the volume again"
                )
            if sha256_file(path) != refs[ref]:
                raise TamperError(
                    f"{path} changed since ledger event {ev.seq} recorded it; "
                    "restore it, or score the volume again"
                )
            digests[name] = refs[ref]
        vol_digest = refs[f"volume:{volume}"]
        sample = Path(volume).name.split(".")[0]
        out.append(ScoredSample(sample, volume, vol_digest, folder, ev, digests))
    names = [s.sample for s in out]
    if len(set(names)) != len(names):
        raise CustodyError(
            f"two scored volumes share the sample name in {names}; give volumes distinct names"
        )
    return out


@dataclass(frozen=True)
class JudgedSession:
    """The latest ``judge.unblind`` event of one judging session and its checked files."""

    session_id: str
    files: dict[str, Path]  # name -> file on disk, bytes as the event recorded
    session_digest: str
    event: Event


def judged_sessions(study: Study, events: Sequence[Event]) -> list[JudgedSession]:
    """Unblinded judging sessions in the ledger, their result files checked against it.

    Raises
    ------
    TamperError
        If a recorded result file is missing or changed since unblinding.
    """
    latest: dict[str, Event] = {}
    for ev in events:
        if ev.fields["action"] == "judge.unblind":
            latest[ev.fields["params"]["session"]] = ev
    out = []
    for sid, ev in sorted(latest.items()):
        files, session_digest = {}, ""
        for o in ev.fields["objects"]:
            kind, _, name = o["name"].partition(":")
            if kind == "judging-session":
                session_digest = o["digest"]["sha256"]
            elif kind == "judging-unblind":
                path = study.root / name if not Path(name).is_absolute() else Path(name)
                if not path.is_file() or sha256_file(path) != o["digest"]["sha256"]:
                    raise TamperError(f"{path}: recorded by ledger event {ev.seq} (judge.unblind) "
                                      "but missing or changed; unblind the session again")  # fmt: skip
                files[path.name] = path
        out.append(JudgedSession(sid, files, session_digest, ev))
    return out


def _judging_text(judged: JudgedSession) -> str:
    """Plain-text summary of a session's agreement (for the report's judging section)."""
    import json

    doc = json.loads(judged.files["agreement.json"].read_text())
    lines = [f"Session {judged.session_id}: judges {', '.join(doc.get('judges', []))}; "
             f"{doc.get('n_codes')} blocks shown, {doc.get('n_repeats')} of them repeats "
             f"(unblinded at ledger event {judged.event.seq})."]  # fmt: skip
    for q, stats in doc.get("questions", {}).items():
        a = stats.get("krippendorff_alpha", {})
        v, ci = a.get("value"), a.get("ci95") or [None, None]
        shown = "n/a" if v is None else f"{v:.2f}"
        if v is not None and None not in ci:
            shown += f" (95 % CI {ci[0]:.2f} to {ci[1]:.2f})"
        lines.append(f"{q}: Krippendorff's alpha {shown}")
    lines.append(f"Tables and plots: judging/{judged.session_id}/ in this report folder.")
    return "\n".join(lines)


def export_report(
    study: Study,
    out: Path,
    signers: Sequence[tuple[Signer, str]],
    *,
    title: str = "Preservation report",
    reason: str = "",
) -> ExportedReport:
    """Write and sign the report folder ``out`` (see the module docstring).

    Parameters
    ----------
    study : Study
    out : Path
        Report folder to write (replaced if it exists).
    signers : sequence of (Signer, meaning)
        Who signs and what each signature means (``authored``, ``reviewed``,
        ``approved``); at least one.
    title : str
    reason : str
        Why the report is exported (recorded with each ``report.sign`` event).

    Raises
    ------
    CustodyError
        No signer, an unknown meaning, a signer not registered in the study, or
        nothing scored.
    TamperError
        The ledger does not verify, or a scored output changed since it was recorded.
    """
    from ..reports import SampleInput, render_report

    if not signers:
        raise CustodyError("a report needs at least one signer (--sign KEY --meaning authored)")
    registry = study.registry
    for s, meaning in signers:
        if meaning not in MEANINGS:
            raise CustodyError(f"meaning {meaning!r} is not one of {', '.join(MEANINGS)}")
        registry.refuse_revoked(s.keyid)
        if s.keyid not in registry.keys:
            raise CustodyError(f"{s.public.short} is not registered in study {study.root}")
    if registry.problems:
        raise TamperError(
            "the study's key registry does not verify:\n  " + "\n  ".join(registry.problems)
        )
    events = study.ledger.events()
    problems = study.ledger.verify(registry)
    if problems:
        raise TamperError(
            "the custody ledger does not verify; no report is written:\n  "
            + "\n  ".join(problems[:20])
        )
    samples = scored_samples(study, events)
    judged = judged_sessions(study, events)
    head = {"seq": events[-1].seq, "hash": events[-1].hash, "time": events[-1].fields["time"]}

    out = Path(out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.emqc-partial-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        now = utc_now()
        signer_entries = [
            {"name": s.name, "role": s.role, "keyid": s.keyid, "meaning": m, "time": now}
            for s, m in signers
        ]
        inputs = []
        for smp in samples:
            dest = staging / "results" / smp.sample
            dest.mkdir(parents=True)
            for name in smp.digests:
                shutil.copyfile(smp.out / name, dest / name)
            volume = study.root / smp.volume
            inputs.append(
                SampleInput(
                    sample_id=smp.sample,
                    score_dir=dest,
                    volume=volume if volume.is_dir() else None,
                    block_list=dest / "blocks.json" if (dest / "blocks.json").is_file() else None,
                )
            )
        for j in judged:
            dest = staging / "judging" / j.session_id
            dest.mkdir(parents=True)
            for name, path in j.files.items():
                shutil.copyfile(path, dest / name)
        sections = [(f"Blinded judging ({j.session_id})", _judging_text(j)) for j in judged]
        render_report(
            inputs,
            staging,
            title=title,
            study=study.root.name,
            created=now,
            signers=signer_entries,
            ledger_head=head,
            extra_sections=sections,
        )
        (staging / LEDGER_COPY).write_text("".join(e.to_json_line() + "\n" for e in events))
        (staging / REGISTRY_COPY).write_bytes((study.root / "keys.json").read_bytes())
        subjects = [
            {"name": p.relative_to(staging).as_posix(), "sha256": sha256_file(p)}
            for p in sorted(staging.rglob("*"))
            if p.is_file()
        ]
        subjects += [{"name": f"volume:{s.volume}", "sha256": s.volume_digest} for s in samples]
        subjects += [{"name": f"judging-session:{j.session_id}", "sha256": j.session_digest}
                     for j in judged if j.session_digest]  # fmt: skip
        subjects.append({"name": f"ledger-head:{head['seq']}", "sha256": head["hash"]})
        predicate = {
            "study": study.root.name,
            "title": title,
            "created": now,
            "software": {"emqc": __version__},
            "ledger_head": head,
            "samples": [
                {
                    "sample": s.sample,
                    "volume": s.volume,
                    "volume_digest": s.volume_digest,
                    "score_event": s.event.seq,
                    "results": f"results/{s.sample}/",
                }
                for s in samples
            ],
            "judging": [
                {
                    "session": j.session_id,
                    "unblind_event": j.event.seq,
                    "results": f"judging/{j.session_id}/",
                }
                for j in judged
            ],
            "signers": signer_entries,
        }
        envelope = sign_statement(make_statement(subjects, predicate), [s for s, _ in signers])
        (staging / ENVELOPE_FILE).write_bytes(envelope_bytes(envelope))
        publish_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    envelope_ref = study.file_ref(out / ENVELOPE_FILE, kind="report")
    for s, meaning in signers:
        study.record(
            s,
            "report.sign",
            reason=reason or f"report {meaning}",
            objects=[envelope_ref],
            params={"meaning": meaning, "report": study.name_of(out)},
        )
    return ExportedReport(
        out,
        out / "report.pdf",
        out / "report.html",
        out / ENVELOPE_FILE,
        tuple(s.sample for s in samples),
        head,
        tuple(signer_entries),
    )
