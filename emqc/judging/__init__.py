"""Blinded judging sessions: experts rate sampled blocks without knowing their sample.

- :mod:`~emqc.judging._rubric`: the questions asked (:data:`RUBRIC`) and :class:`Verdict`.
- :mod:`~emqc.judging._plan`: the pure core: opaque codes, orientations, per-judge orders.
- :mod:`~emqc.judging._session`: :func:`create_session` writes a session folder; its
  ``sealed/`` part is the coordinator's alone (see that module's docstring).
- :mod:`~emqc.judging._store`: :class:`JudgeSession` saves each verdict durably in a
  hash-chained file, with amendments, locking and optional signed custody events.
- :mod:`~emqc.judging._leaks`: :func:`judge_visible_leaks` checks what judges can see.
- :mod:`~emqc.judging._agreement`: agreement statistics (alpha, kappas, ICC, ...).
- :mod:`~emqc.judging._unblind`: :func:`unblind` joins locked verdicts with samples.
"""

from ._agreement import (
    ICCResult,
    bootstrap_alpha_ci,
    cohen_kappa,
    fleiss_kappa,
    icc,
    icc_band,
    judge_model_agreement,
    krippendorff_alpha,
    self_consistency,
)
from ._leaks import judge_visible_files, judge_visible_leaks
from ._rubric import RUBRIC, Question, Verdict, rubric_to_dict
from ._session import Session, create_session, read_mapping
from ._store import JudgeSession, Progress, VerdictLine
from ._unblind import MODEL_PAIRINGS, UnblindResult, unblind

__all__ = [
    "MODEL_PAIRINGS",
    "RUBRIC",
    "ICCResult",
    "UnblindResult",
    "bootstrap_alpha_ci",
    "cohen_kappa",
    "fleiss_kappa",
    "icc",
    "icc_band",
    "judge_model_agreement",
    "krippendorff_alpha",
    "self_consistency",
    "unblind",
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
