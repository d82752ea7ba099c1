"""A judge's verdicts: saved at once, durably, in a hash-chained line file.

``verdicts/<judge>.jsonl`` holds one JSON object per line, appended and fsync'ed
before :meth:`JudgeSession.record` returns::

    {"seq": 0, "prev": "<sha256 of session.json>", "kind": "verdict",
     "code": "QX4M7TZA", "answers": {...}, "reason": "", "time": "...Z", "judge": "alice"}

``prev`` is the SHA-256 of the stored bytes of the previous line (of ``session.json``
for the first), so an edited or removed line breaks the chain. ``<judge>.head.json``
holds the number of lines and the digest of the last one, replaced atomically after
each append, so that lines cut from the end are detected too; a file one line ahead
of its head (a crash between the two writes) is accepted; the next append rewrites the head.
Kinds are ``verdict`` (first answer for a code), ``amend`` (a new answer, with a
reason; the earlier one stays) and ``lock`` (no further changes).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..custody._canonical import canonical_bytes, sha256_hex, utc_now
from ..custody._keys import Signer
from ..custody._ledger import object_ref
from ..custody._study import Study
from ..errors import CustodyError, InputError
from ._rubric import Verdict
from ._session import SESSION_FILE, Session

__all__ = ["JudgeSession", "Progress", "VerdictLine"]

_KINDS = ("verdict", "amend", "lock")
_LINE_KEYS = {"seq", "prev", "kind", "code", "answers", "reason", "time", "judge"}


@dataclass(frozen=True)
class Progress:
    """How far a judge is: ``str(progress)`` reads ``"12 of 40"``."""

    done: int
    total: int

    def __str__(self) -> str:
        return f"{self.done} of {self.total}"


@dataclass(frozen=True)
class VerdictLine:
    """One stored line: its fields and the SHA-256 of its stored bytes."""

    fields: dict[str, Any]
    sha256: str

    @property
    def kind(self) -> str:
        return self.fields["kind"]

    @property
    def code(self) -> str | None:
        return self.fields["code"]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class JudgeSession:
    """One judge's view of a session: the next block, progress, and saving verdicts.

    Parameters
    ----------
    session_dir : Path
        A folder written by :func:`~emqc.judging.create_session`.
    judge : str
        One of the session's judges.
    study : Study, optional
    signer : Signer, optional
        With both, every record, amendment and lock is also a signed custody event
        (``judge.verdict``, ``judge.amend``, ``judge.lock``) naming ``session.json`` by
        its digest; its params hold the code, the answers and the line's digest.

    Raises
    ------
    emqc.errors.InputError
        When the judge is not one of the session's judges.
    emqc.errors.CustodyError
        When the verdict file fails its checks (see the module docstring).
    """

    def __init__(
        self,
        session_dir: Path | str,
        judge: str,
        *,
        study: Study | None = None,
        signer: Signer | None = None,
    ) -> None:
        if (study is None) != (signer is None):
            raise InputError("give both study and signer to record custody events, or neither")
        self.session = Session.open(session_dir)
        if judge not in self.session.judges:
            raise InputError(
                f"{self.session.root}: {judge!r} is not a judge of this session; its judges are "
                f"{', '.join(self.session.judges)}"
            )
        self.judge = judge
        self.study = study
        self.signer = signer
        self.order: tuple[str, ...] = self.session.orders[judge]
        self.path = self.session.root / "verdicts" / f"{judge}.jsonl"
        self.head_path = self.path.with_name(f"{judge}.head.json")
        self._lines: list[VerdictLine] = self._load()

    # --- reading -------------------------------------------------------------------------

    def _fail(self, line: int | None, problem: str) -> CustodyError:
        where = f"{self.path}" + (f" line {line}" if line is not None else "")
        return CustodyError(
            f"{where}: {problem}. The verdict file was cut or edited after it was written; "
            "do not edit it by hand: restore it from a backup, or ask the coordinator to "
            "compare it with the custody ledger"
        )

    def _load(self) -> list[VerdictLine]:
        data = self.path.read_bytes() if self.path.exists() else b""
        if data and not data.endswith(b"\n"):
            raise self._fail(data.count(b"\n") + 1, "the last line is incomplete (truncated)")
        lines: list[VerdictLine] = []
        prev = self.session.digest
        for i, raw in enumerate(data.splitlines(), start=1):
            try:
                fields = json.loads(raw)
            except ValueError:
                raise self._fail(i, "not a JSON line") from None
            if not isinstance(fields, dict) or set(fields) != _LINE_KEYS:
                raise self._fail(i, "not a verdict line (unexpected fields)")
            if fields["seq"] != i - 1 or fields["prev"] != prev:
                raise self._fail(i, "the hash chain is broken (a line was changed or removed)")
            if fields["kind"] not in _KINDS or fields["judge"] != self.judge:
                raise self._fail(i, f"unexpected kind {fields['kind']!r} or judge")
            if fields["kind"] != "lock":
                try:
                    Verdict.from_dict(fields["answers"])
                except InputError as exc:
                    raise self._fail(i, f"invalid answers ({exc.message})") from None
            prev = sha256_hex(raw)
            lines.append(VerdictLine(fields, prev))
        self._check_head(lines)
        return lines

    def _check_head(self, lines: list[VerdictLine]) -> None:
        if not self.head_path.exists():
            if lines:
                raise self._fail(None, f"its head file {self.head_path.name} is missing")
            return
        try:
            head = json.loads(self.head_path.read_bytes())
            n, last = int(head["lines"]), str(head["last"])
        except (ValueError, KeyError, TypeError):
            raise self._fail(None, f"its head file {self.head_path.name} is unreadable") from None
        if n > len(lines):
            raise self._fail(None, f"it has {len(lines)} lines but {n} were written (truncated)")
        if n and lines[n - 1].sha256 != last:
            raise self._fail(n, "the line differs from the one recorded in the head file")
        if len(lines) > n + 1:
            raise self._fail(None, f"it has {len(lines)} lines but only {n} were recorded")

    @property
    def locked(self) -> bool:
        return any(line.kind == "lock" for line in self._lines)

    def lines(self) -> tuple[VerdictLine, ...]:
        """Every stored line, amendments included, in order."""
        return tuple(self._lines)

    def verdicts(self) -> dict[str, Verdict]:
        """The latest verdict for each code that has one."""
        out: dict[str, Verdict] = {}
        for line in self._lines:
            if line.kind != "lock":
                out[line.fields["code"]] = Verdict.from_dict(line.fields["answers"])
        return out

    def resume_index(self) -> int:
        """Position in the order of the first code without a verdict (``len`` when done)."""
        done = self.verdicts()
        return next((i for i, c in enumerate(self.order) if c not in done), len(self.order))

    def next_code(self) -> str | None:
        """The first code in this judge's order without a verdict; None when all are done."""
        i = self.resume_index()
        return self.order[i] if i < len(self.order) else None

    def progress(self) -> Progress:
        """Codes with a verdict out of all codes, e.g. ``str(...) == "12 of 40"``."""
        return Progress(len(self.verdicts()), len(self.order))

    # --- writing -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked_file(self) -> Iterator[int]:
        self.path.parent.mkdir(exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)

    def _append(self, kind: str, code: str | None, answers: dict[str, Any], reason: str) -> None:
        with self._locked_file() as fd:
            self._lines = self._load()  # another process may have written since
            self._refuse_if_locked()
            self._check(kind, code)
            fields = {
                "seq": len(self._lines),
                "prev": self._lines[-1].sha256 if self._lines else self.session.digest,
                "kind": kind,
                "code": code,
                "answers": answers,
                "reason": reason,
                "time": utc_now(),
                "judge": self.judge,
            }
            raw = canonical_bytes(fields)
            os.write(fd, raw + b"\n")
            os.fsync(fd)
            line = VerdictLine(fields, sha256_hex(raw))
            self._write_head(len(self._lines) + 1, line.sha256)
            self._lines.append(line)
        if self.study is not None and self.signer is not None:
            params = {"session": self.session.session_id, "judge": self.judge, "code": code,
                      "answers": answers, "line": fields["seq"], "line_sha256": line.sha256}  # fmt: skip
            objects = [
                self.study.file_ref(self.session.root / SESSION_FILE, kind="judging-session"),
                object_ref(f"verdict-line:{self.judge}:{fields['seq']}", line.sha256),
            ]
            self.study.record(self.signer, f"judge.{kind}", reason=reason, objects=objects,
                              params=params)  # fmt: skip

    def _write_head(self, n: int, last: str) -> None:
        tmp = self.head_path.with_name(self.head_path.name + ".tmp")
        with tmp.open("wb") as f:
            f.write(canonical_bytes({"lines": n, "last": last}) + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.head_path)
        _fsync_dir(self.head_path.parent)

    def _refuse_if_locked(self) -> None:
        if self.locked:
            raise InputError(
                f"{self.path}: {self.judge}'s verdicts are locked; nothing can be recorded, "
                "amended or locked again"
            )

    def _check(self, kind: str, code: str | None) -> None:
        if kind == "lock":
            return
        if code not in self.order:
            raise InputError(f"code {code!r} is not one of {self.judge}'s blocks in this session")
        has = code in self.verdicts()
        if kind == "verdict" and has:
            raise InputError(
                f"{code}: already has a verdict from {self.judge}; use amend(code, verdict, "
                "reason) to change it"
            )
        if kind == "amend" and not has:
            raise InputError(f"{code}: has no verdict yet to amend; use record(code, verdict)")

    def record(self, code: str, verdict: Verdict) -> None:
        """Save the first verdict for ``code``, durably, before returning.

        Raises
        ------
        emqc.errors.InputError
            If the code is not this judge's, already has a verdict, or the session is locked.
        """
        if not isinstance(verdict, Verdict):
            raise InputError(f"verdict must be a Verdict, got {type(verdict).__name__}")
        self._append("verdict", code, verdict.to_dict(), "")

    def amend(self, code: str, verdict: Verdict, reason: str) -> None:
        """Replace the verdict for ``code``; the earlier one is kept in the file.

        Raises
        ------
        emqc.errors.InputError
            Without a reason, for a code without a verdict, or when locked.
        """
        if not isinstance(reason, str) or not reason.strip():
            raise InputError(f"{code}: an amendment needs a reason (why the verdict changes)")
        if not isinstance(verdict, Verdict):
            raise InputError(f"verdict must be a Verdict, got {type(verdict).__name__}")
        self._append("amend", code, verdict.to_dict(), reason.strip())

    def lock(self, *, allow_incomplete: bool = False) -> None:
        """Lock this judge's verdicts: record and amend are refused from now on.

        Raises
        ------
        emqc.errors.InputError
            When codes still lack a verdict (unless ``allow_incomplete``) or already locked.
        """
        progress = self.progress()
        if progress.done < progress.total and not allow_incomplete:
            raise InputError(
                f"{self.judge} has judged {progress} blocks; judge the rest first, or lock "
                "with allow_incomplete=True"
            )
        self._append("lock", None, {}, "")
