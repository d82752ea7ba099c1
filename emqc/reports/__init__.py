"""Study reports: the scores of a set of samples as a human-readable HTML page and PDF.

:func:`render_report` reads the outputs of ``emqc score`` for each sample
(``summary.json``, ``blocks.parquet``) and writes, into one folder:

- ``report.html``: title, study, creation time and emqc version; the per-sample
  summary table (mean, median, 95 % CI, verdict, blocks scored and left out, seed,
  model digests); each sample's provenance (full digests); the score plot; a
  montage of sampled blocks per sample whose volume is given; further sections
  given by the caller; and the signature manifest (21 CFR Part 11 §11.50) with the
  custody ledger head. Figures are PNGs beside it, linked by relative path.
- ``report.pdf``: the same, on A4 pages.
- ``fig_scores.png`` and ``fig_montage_<nn>_<sample>.png``.

The report is a function of its inputs alone (the creation time is given, not
read from the clock): the same inputs give byte-identical files.
"""

from ._render import (
    SCORE_LABELS,
    SIGNATURE_MEANINGS,
    SUMMARY_FORMAT,
    Montage,
    RenderedReport,
    ReportContent,
    SampleInput,
    SampleScores,
    read_scores,
    render_report,
)

__all__ = [
    "SCORE_LABELS",
    "SIGNATURE_MEANINGS",
    "SUMMARY_FORMAT",
    "Montage",
    "RenderedReport",
    "ReportContent",
    "SampleInput",
    "SampleScores",
    "read_scores",
    "render_report",
]
