"""Blinded judging sessions: experts rate sampled blocks without knowing their sample.

- :mod:`~emqc.judging._rubric`: the questions asked (:data:`RUBRIC`) and :class:`Verdict`.
- :mod:`~emqc.judging._plan`: the pure core: opaque codes, orientations, per-judge orders.
- :mod:`~emqc.judging._session`: :func:`create_session` writes a session folder; its
  ``sealed/`` part is the coordinator's alone (see that module's docstring).
- :mod:`~emqc.judging._store`: :class:`JudgeSession` saves each verdict durably in a
  hash-chained file, with amendments, locking and optional signed custody events.
- :mod:`~emqc.judging._leaks`: :func:`judge_visible_leaks` checks what judges can see.
"""

from ._leaks import judge_visible_files, judge_visible_leaks
from ._rubric import RUBRIC, Question, Verdict, rubric_to_dict
from ._session import Session, create_session, read_mapping
from ._store import JudgeSession, Progress, VerdictLine

__all__ = [
    "RUBRIC",
    "JudgeSession",
    "Progress",
    "Question",
    "Session",
    "Verdict",
    "VerdictLine",
    "create_session",
    "judge_visible_files",
    "judge_visible_leaks",
    "read_mapping",
    "rubric_to_dict",
]
