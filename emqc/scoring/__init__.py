"""Scoring blocks and samples: block scores from probability maps, per-sample summaries.

:func:`score_block` turns one block's maps into the three preservation scores
(and imaging quality beside them); :func:`summarize_blocks` gives each sample's
mean, median, bootstrap 95 % CI and verdict. The ``emqc score`` command and its
Dask workflow build on these.
"""

from ._block import MEMBRANE_MAX_BLUR, SCORES, SYNAPSE_MIN_SNR, BlockScores, score_block
from ._summary import ScoreSummary, Thresholds, summarize, summarize_blocks

__all__ = [
    "MEMBRANE_MAX_BLUR",
    "SCORES",
    "SYNAPSE_MIN_SNR",
    "BlockScores",
    "ScoreSummary",
    "Thresholds",
    "score_block",
    "summarize",
    "summarize_blocks",
]
