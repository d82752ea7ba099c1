"""Batch workflows over a study: ingest, verify, sample and score every sample, resumably.

Driven by a study manifest (:mod:`emqc.batch._manifest`); run by ``emqc batch``.
"""
