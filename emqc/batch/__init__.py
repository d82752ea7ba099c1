"""Batch workflows over a study: ingest, verify, sample and score every sample, resumably.

Driven by a study manifest (:mod:`emqc.batch._manifest`), run on a Dask cluster
(:mod:`emqc.batch._run`), each unit of work skipped when its output is present and
verified (:mod:`emqc.batch._units`). ``emqc batch`` is the command line.
"""

from ._manifest import SampleEntry, StudyManifest, derive_seed, read_study_manifest
from ._run import BatchResult, SampleOutcome, run_batch
from ._units import output_digests

__all__ = [
    "SampleEntry",
    "StudyManifest",
    "derive_seed",
    "read_study_manifest",
    "BatchResult",
    "SampleOutcome",
    "run_batch",
    "output_digests",
]
