"""``emqc batch``: ingest, verify, sample and score every sample of a study on a Dask cluster.

Each sample runs its own pipeline (ingest → verify → sample → score → roll-up)
in a driver thread; the heavy work (chunk writes, block scores) runs as tasks on
the cluster the caller connected (:func:`emqc.batch.batch_client`). Every unit
is skipped when its output is present and verified (:mod:`emqc.batch._units`;
an ingest's chunks: :mod:`emqc._chunk_journal`),
so a run killed at any moment and rerun redoes only what was not finished, and
ends with the same bytes as an uninterrupted run. A sample that fails (a missing
file, a wrong voxel size, a corrupt volume, a block that cannot be scored) is
reported with its stage and reason; the others go on, and nothing of the failed
unit is counted as done.

Output layout (``OUTPUT`` is the manifest's ``output:``)::

    OUTPUT/study.json                       study name and seed (drawn once, then reused)
    OUTPUT/summary.json, summary.csv        one row per sample: status, scores, verdicts
    OUTPUT/samples/ID/volume.ome.zarr       the ingested volume (with its manifest)
    OUTPUT/samples/ID/.volume.ome.zarr.emqc-partial, .emqc-journal
                                            an unfinished ingest and its chunk journal
    OUTPUT/samples/ID/blocks.json           the sampled block list (seed on record)
    OUTPUT/samples/ID/scores/BLOCK.json     one sealed score unit per block
    OUTPUT/samples/ID/blocks.parquet|csv    the per-block table
    OUTPUT/samples/ID/summary.json          the per-sample summary with bootstrap CIs
    OUTPUT/runs/TIME-ID.json                when each run happened and what it did
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..custody._canonical import canonical_bytes, utc_now
from ..errors import EmqcError, InputError
from ..scoring import BlockScores, Thresholds
from ._files import OutputFolder
from ._manifest import SampleEntry, StudyManifest, derive_seed
from ._report import write_sample_tables, write_study_summary
from ._units import (
    block_list_is_done,
    block_unit_inputs,
    blocks_rel,
    model_digests,
    read_score_unit,
    score_rel,
    volume_is_done,
    volume_rel,
    write_score_unit,
)

__all__ = ["SampleOutcome", "BatchResult", "run_batch", "Progress"]

#: ``progress(sample_id, stage, done, total)``, called from driver threads.
Progress = Callable[[str, str, int, int], None]
STAGES = ("ingest", "sample", "score", "summarize")


@dataclass
class SampleOutcome:
    """How one sample's pipeline ended.

    ``reused`` and ``ran`` count units per kind (``ingest``, ``chunk``, ``sample``,
    ``score``) found verified and skipped, and done in this run; ``chunk`` counts the
    stored chunks of an ingest, which a killed ingest's rerun keeps when verified.
    """

    id: str
    status: Literal["done", "failed"] = "failed"
    stage: str = "ingest"
    reason: str = ""
    volume_digest: str | None = None
    seed: int | None = None
    n_blocks: int = 0
    summary: dict[str, Any] | None = None
    reused: dict[str, int] = field(default_factory=dict)
    ran: dict[str, int] = field(default_factory=dict)
    #: stage -> (start, end) in seconds since the run started (for the run log only)
    timings: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchResult:
    """Outcome of :func:`run_batch`."""

    manifest: StudyManifest
    output: str
    seed: int
    samples: tuple[SampleOutcome, ...]

    @property
    def failed(self) -> tuple[SampleOutcome, ...]:
        return tuple(s for s in self.samples if s.status == "failed")


def run_batch(
    manifest: StudyManifest,
    *,
    client: Any,
    predict: Callable[..., Any] | None = None,
    thresholds: Thresholds | None = None,
    progress: Progress | None = None,
    concurrent_samples: int = 4,
) -> BatchResult:
    """Run (or resume) a study.

    Parameters
    ----------
    manifest : StudyManifest
        From :func:`emqc.batch.read_study_manifest`.
    client : distributed.Client
        Where the work runs (see :func:`emqc.batch.batch_client`).
    predict : callable, optional
        Stand-in for the committed networks (tests); must be picklable.
    thresholds : Thresholds, optional
        Verdict thresholds (default :class:`~emqc.scoring.Thresholds`).
    progress : callable, optional
        Called as ``progress(sample_id, stage, done, total)``.
    concurrent_samples : int, optional
        Samples whose pipelines run at once (their tasks share the cluster).

    Returns
    -------
    BatchResult
        Every sample's outcome; failures carry their stage and reason.
    """
    folder = OutputFolder(manifest.output)
    started = utc_now()
    folder.remove_temporaries("")
    seed = _study_seed(folder, manifest)
    models = (
        model_digests() if predict is None else {"stand-in": getattr(predict, "__qualname__", "")}
    )
    ctx = _Context(folder, manifest, seed, client, predict, models, thresholds or Thresholds(),
                   progress or (lambda *a: None))  # fmt: skip
    with client.as_current(), ThreadPoolExecutor(max(1, concurrent_samples)) as pool:
        outcomes = tuple(pool.map(ctx.run_sample, manifest.samples))
    result = BatchResult(manifest, folder.root, seed, outcomes)
    write_study_summary(folder, result)
    _log_run(folder, result, started, client)
    return result


@dataclass
class _Context:
    folder: OutputFolder
    manifest: StudyManifest
    seed: int
    client: Any
    predict: Callable[..., Any] | None
    models: dict[str, Any]
    thresholds: Thresholds
    progress: Progress
    t0: float = field(default_factory=time.monotonic)
    blocks: dict[str, Any] = field(default_factory=dict)  # sample id -> BlockList
    volumes: dict[str, Any] = field(default_factory=dict)  # sample id -> Volume

    def run_sample(self, entry: SampleEntry) -> SampleOutcome:
        out = SampleOutcome(entry.id, seed=self._sample_seed(entry))
        try:
            for stage in STAGES:
                out.stage = stage
                self.progress(entry.id, stage, 0, 0)
                start = time.monotonic() - self.t0
                getattr(self, f"_{stage}")(entry, out)
                out.timings[stage] = (round(start, 3), round(time.monotonic() - self.t0, 3))
            out.status = "done"
            self.progress(entry.id, "done", 1, 1)
        except EmqcError as exc:
            out.reason = exc.message
        except Exception as exc:  # one sample's bug must not stop the others
            out.reason = f"{type(exc).__name__}: {exc} (unexpected; please report it)"
        if out.status == "failed":
            self.progress(entry.id, "failed", 0, 0)
        return out

    def _sample_seed(self, entry: SampleEntry) -> int:
        return entry.seed if entry.seed is not None else derive_seed(self.seed, entry.id)

    def _volume_location(self, entry: SampleEntry) -> Any:
        url = self.folder.url(volume_rel(entry.id))
        return Path(url) if self.folder.is_local else url

    def _remove_leftovers(self, sample_id: str) -> None:
        """What a killed run can leave: temporary files and a volume moved aside to be replaced."""
        base = f"samples/{sample_id}"
        self.folder.remove_temporaries(base)
        for name in self.folder.list(base):
            if name.startswith(".volume.ome.zarr.emqc-old-"):
                self.folder.remove(f"{base}/{name}")

    # -- stages ---------------------------------------------------------------------------
    def _ingest(self, entry: SampleEntry, out: SampleOutcome) -> None:
        from .._chunk_journal import discard_journal
        from ..ingest import ingest
        from ..manifest import read_manifest

        if self.predict is None:  # a voxel size the networks cannot judge fails before any work
            from ..models._methods import check_voxel_size

            check_voxel_size(entry.voxel_size_nm, where=f"sample {entry.id}")
        self._remove_leftovers(entry.id)
        location = self._volume_location(entry)
        # re-hashing a stored volume reads all of it: a task on the cluster, not the driver
        done, _why = self.client.submit(
            volume_is_done, location, source=entry.source, voxel_size_nm=entry.voxel_size_nm,
            pure=False,
        ).result()  # fmt: skip
        if done:
            out.reused["ingest"] = 1
            discard_journal(location)  # only a stale one can stand beside a complete volume
        else:
            src = _open_checked(entry)
            result = ingest(
                src, location, voxel_size_nm=entry.voxel_size_nm, overwrite=True,
                progress=False, resume=True,
            )  # fmt: skip
            out.ran["ingest"] = 1
            _count(out.ran, "chunk", result.chunks_written)
            _count(out.reused, "chunk", result.chunks_reused)
        out.volume_digest = read_manifest(location).root_digest

    def _sample(self, entry: SampleEntry, out: SampleOutcome) -> None:
        from ..sampling.volume import block_shape_vox, sample_volume
        from ..volume import open_volume

        vol = open_volume(self._volume_location(entry))
        shape = block_shape_vox(
            vol, block_um=self.manifest.block_um, block_vox=self.manifest.block_vox
        )
        rel = blocks_rel(entry.id)
        plan = dict(volume_digest=vol.root_digest, seed=out.seed, n=entry.blocks, shape=shape)
        blocks = block_list_is_done(self.folder.read_bytes(rel), **plan)  # type: ignore[arg-type]
        if blocks is not None:
            out.reused["sample"] = 1
        else:
            blocks = sample_volume(vol, n=entry.blocks, seed=out.seed, block_vox=shape)
            # recorded relative to OUTPUT, so a study folder can be moved or copied whole
            blocks = dataclasses.replace(blocks, volume=volume_rel(entry.id))
            self.folder.write_bytes(rel, blocks.to_json_bytes())
            out.ran["sample"] = 1
        out.n_blocks = len(blocks.blocks)
        self.blocks[entry.id], self.volumes[entry.id] = blocks, vol  # one thread per sample id

    def _score(self, entry: SampleEntry, out: SampleOutcome) -> None:
        from distributed import as_completed

        blocks, vol = self.blocks[entry.id], self.volumes[entry.id]
        self.folder.remove_temporaries(f"samples/{entry.id}/scores")
        todo = []
        for b in blocks.blocks:
            inputs = block_unit_inputs(blocks, b, self.models, entry.metric_settings)
            if read_score_unit(self.folder, score_rel(entry.id, b.id), inputs) is None:
                todo.append((b, inputs))
        total = len(blocks.blocks)
        _count(out.reused, "score", total - len(todo))
        self.progress(entry.id, "score", total - len(todo), total)
        futures = [
            self.client.submit(
                _score_unit,
                self.folder.root,
                score_rel(entry.id, b.id),
                inputs,
                vol,
                b.origin_vox,
                b.shape_vox,
                self.predict,
                pure=False,
            )  # fmt: skip
            for b, inputs in todo
        ]
        done = total - len(todo)
        errors: list[str] = []
        for fut in as_completed(futures):
            if fut.status == "error":
                errors.append(str(fut.exception()))
            else:
                done += 1
            self.progress(entry.id, "score", done, total)
        _count(out.ran, "score", len(todo) - len(errors))
        if errors:
            raise InputError(
                f"{len(errors)} of {total} blocks could not be scored (first: {errors[0]}); "
                "the others are kept and a rerun scores only the missing ones."
            )

    def _summarize(self, entry: SampleEntry, out: SampleOutcome) -> None:
        blocks = self.blocks[entry.id]
        scores: list[BlockScores] = []
        for b in blocks.blocks:
            s = read_score_unit(
                self.folder,
                score_rel(entry.id, b.id),
                block_unit_inputs(blocks, b, self.models, entry.metric_settings),
            )
            if s is None:
                raise InputError(
                    f"the score of block {b.id} of sample {entry.id} changed or vanished while "
                    f"the batch ran ({self.folder.url(score_rel(entry.id, b.id))}); rerun."
                )
            scores.append(s)
        out.summary = write_sample_tables(
            self.folder, entry.id, blocks, scores, self.thresholds, self.models,
            entry.metric_settings,
        )  # fmt: skip


def _count(counts: dict[str, int], kind: str, n: int) -> None:
    if n:
        counts[kind] = n


def _score_unit(root, rel, inputs, vol, origin, shape, predict) -> bool:  # type: ignore[no-untyped-def]
    """Worker task: score one block with its declared settings and store it as a sealed unit."""
    import torch

    from ..scoring import score_block

    if predict is None:
        torch.set_num_threads(1)  # one block per worker thread (see scoring._run)
    raw = vol.read(tuple(origin), tuple(shape))
    scores = score_block(
        raw, voxel_size_nm=vol.voxel_size_nm, predict=predict, **inputs["metric_settings"]
    )
    write_score_unit(OutputFolder(root), rel, inputs, scores)
    return True


def _open_checked(entry: SampleEntry) -> Any:
    """Open a sample's source; refuse a manifest voxel size its own metadata contradicts."""
    import numpy as np

    from ..sources import open_source

    src = open_source(entry.source)
    meta = src.voxel_size_nm
    if meta is not None and not np.allclose(meta, entry.voxel_size_nm, rtol=1e-3):
        raise InputError(
            f"sample {entry.id}: the manifest gives voxel_size_nm {list(entry.voxel_size_nm)} "
            f"but {entry.source} records {list(meta)} nm. Correct the manifest; if the file's "
            "metadata is what is wrong, ingest it once with `emqc ingest --voxel-size` and give "
            "the ingested .ome.zarr as the source."
        )
    return src


def _study_seed(folder: OutputFolder, manifest: StudyManifest) -> int:
    """The manifest's seed, else the one recorded by an earlier run, else a fresh one (recorded)."""
    import json

    recorded = folder.read_bytes("study.json")
    previous = json.loads(recorded) if recorded else {}
    if manifest.seed is not None:
        seed, source = manifest.seed, "manifest"
    elif "seed" in previous:
        seed, source = int(previous["seed"]), previous.get("seed_source", "os-random")
    else:
        seed, source = secrets.randbits(63), "os-random"
    doc = {"format": "emqc.batch.study/1", "study": manifest.name, "seed": seed,
           "seed_source": source}  # fmt: skip
    data = canonical_bytes(doc) + b"\n"
    if recorded != data:
        folder.write_bytes("study.json", data)
    return seed


def _worker_threads(client: Any) -> list[int]:
    """Threads of each worker of the cluster at the end of the run."""
    try:
        return sorted(w["nthreads"] for w in client.scheduler_info()["workers"].values())
    except Exception:  # a lost scheduler must not lose the run log
        return []


def _log_run(folder: OutputFolder, result: BatchResult, started: str, client: Any) -> None:
    from .. import __version__

    doc = {
        "format": "emqc.batch.run/1",
        "started_utc": started,
        "finished_utc": utc_now(),
        "emqc_version": __version__,
        "scheduler": getattr(client, "scheduler", None) and client.scheduler.address,
        "workers": _worker_threads(client),
        "samples": {
            s.id: {
                "status": s.status,
                "stage": s.stage,
                "reason": s.reason,
                "reused": s.reused,
                "ran": s.ran,
                "seconds": {stage: list(span) for stage, span in s.timings.items()},
            }  # fmt: skip
            for s in result.samples
        },
    }
    name = started.replace(":", "").replace("-", "")
    folder.write_bytes(f"runs/{name}-{secrets.token_hex(4)}.json", canonical_bytes(doc) + b"\n")
