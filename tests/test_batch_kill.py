"""Kill test: ``emqc.batch`` killed with SIGKILL at 20 random moments, then rerun, ends with
outputs whose digests equal those of an uninterrupted run.

Each trial starts a batch in a fresh process (forked from a server that imported
emqc once; its own in-process Dask cluster, so SIGKILL ends the driver and every
task at once), kills it at a moment drawn
uniformly over the time an uninterrupted run takes (ingest, sampling, scoring and
the tables all get hit), reruns the same study to the end and compares every
output's digest (:func:`emqc.batch.output_digests`) with the uninterrupted run's.
"""

from __future__ import annotations

import multiprocessing
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from distributed import Client, LocalCluster

from emqc.batch import output_digests, read_study_manifest, run_batch
from emqc.testing import intensity_maps
from emqc.testing import synthetic_h5 as write_h5

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:window_nm")]


def make_study(folder: Path, samples: str) -> Path:
    manifest = folder / "study.yaml"
    manifest.write_text(
        f"output: out\nblock_vox: [32, 32, 32]\nblocks: 3\nseed: 11\nsamples:\n{samples}"
    )
    return manifest


def run_study(manifest: str, ready) -> None:  # type: ignore[no-untyped-def]
    """The batch as a separate process would run it (child of the fork server)."""
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as c,
        Client(c) as client,
    ):
        ready.set()
        run_batch(read_study_manifest(manifest), client=client, predict=intensity_maps)


class Runs:
    """Batch processes forked from a server that imported emqc once (each starts in ~0.1 s)."""

    def __init__(self) -> None:
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(["emqc.batch", "emqc.testing", "distributed", __name__])

    def start(self, manifest: Path):  # type: ignore[no-untyped-def]
        ready = self.ctx.Event()
        proc = self.ctx.Process(target=run_study, args=(str(manifest), ready))
        proc.start()
        assert ready.wait(60), "the batch process did not start"
        return proc


def test_killed_at_20_random_moments_and_rerun_gives_the_uninterrupted_results(tmp_path):
    for i, shape in enumerate([(64, 192, 192), (48, 160, 160)]):
        write_h5(tmp_path / f"s{i}.h5", i, shape=shape)
    manifest = make_study(
        tmp_path,
        "  - {id: s0, source: s0.h5:/raw, voxel_size_nm: [10, 10, 10], blocks: 5}\n"
        "  - {id: s1, source: s1.h5:/raw, voxel_size_nm: [10, 10, 10]}\n",
    )
    out = tmp_path / "out"

    runs = Runs()
    proc = runs.start(manifest)
    t0 = time.monotonic()
    proc.join(120)
    work_seconds = time.monotonic() - t0
    assert proc.exitcode == 0
    reference = output_digests(out)
    assert sum(name.endswith(".json") and "/scores/" in name for name in reference) == 8

    rng = np.random.default_rng(20261202)
    killed_mid_run = resumed_ingests = 0
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as c,
        Client(c) as client,
    ):
        for delay in rng.uniform(0, work_seconds, size=20):
            shutil.rmtree(out)
            proc = runs.start(manifest)
            time.sleep(delay)
            killed_mid_run += proc.is_alive()
            proc.kill()  # SIGKILL
            proc.join(30)
            assert proc.exitcode in (-signal.SIGKILL, 0)
            result = run_batch(read_study_manifest(manifest), client=client, predict=intensity_maps)
            assert not result.failed, [s.reason for s in result.failed]
            resumed_ingests += any(s.reused.get("chunk") for s in result.samples)
            assert output_digests(out) == reference, f"after a kill {delay:.2f} s into the run"
    print(f"uninterrupted run {work_seconds:.2f} s; {killed_mid_run} of 20 kills mid-run; "
          f"{resumed_ingests} reruns kept chunks of a killed ingest")  # fmt: skip
    assert killed_mid_run >= 15  # the kills really landed while the batch was working
