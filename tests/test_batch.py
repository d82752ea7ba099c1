"""emqc.batch.run_batch on a real (in-process) Dask cluster: bad entries, resuming, re-verifying.

The networks are replaced by emqc.testing.intensity_maps so that a study runs in
seconds; what is tested is the workflow (units, verification, failures), which does
not depend on what the scores mean. tests/test_batch_cli.py runs the real networks.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from distributed import Client, LocalCluster

from emqc.batch import output_digests, read_study_manifest, run_batch
from emqc.testing import intensity_maps
from emqc.testing import synthetic_h5 as write_h5

pytestmark = pytest.mark.filterwarnings("ignore:window_nm")


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as c,
        Client(c) as cl,
    ):
        yield cl


def make_study(folder: Path, samples: str, *, extra: str = "seed: 11\n") -> Path:
    manifest = folder / "study.yaml"
    manifest.write_text(
        f"output: out\nblock_vox: [32, 32, 32]\nblocks: 3\n{extra}samples:\n{samples}"
    )
    return manifest


@pytest.fixture
def good_study(tmp_path):
    write_h5(tmp_path / "a.h5", 0)
    write_h5(tmp_path / "b.h5", 1)
    return make_study(
        tmp_path,
        "  - {id: a, source: a.h5:/raw, voxel_size_nm: [10, 10, 10]}\n"
        "  - {id: b, source: b.h5:/raw, voxel_size_nm: [10, 10, 10], blocks: 2}\n",
    )


def run(manifest: Path, client):
    return run_batch(read_study_manifest(manifest), client=client, predict=intensity_maps)


def test_a_study_scores_every_sample_and_writes_its_tables(good_study, client):
    result = run(good_study, client)
    assert [s.status for s in result.samples] == ["done", "done"]
    out = good_study.parent / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert [r["sample"] for r in summary["samples"]] == ["a", "b"]
    assert summary["n_failed"] == 0 and summary["seed"] == 11
    for sid, n in (("a", 3), ("b", 2)):
        blocks = json.loads((out / f"samples/{sid}/blocks.json").read_text())
        assert len(blocks["blocks"]) == n and blocks["volume"] == f"samples/{sid}/volume.ome.zarr"
        assert len(list((out / f"samples/{sid}/scores").glob("*.json"))) == n
        doc = json.loads((out / f"samples/{sid}/summary.json").read_text())
        assert set(doc["scores"]) == {"membrane_integrity", "edema", "synapse_traceability"}
    assert (out / "summary.csv").read_text().count("\n") == 3
    assert len(list((out / "runs").glob("*.json"))) == 1


def test_a_rerun_redoes_nothing_and_changes_no_byte(good_study, client):
    run(good_study, client)
    before = output_digests(good_study.parent / "out")
    again = run(good_study, client)
    assert all(s.ran.get(k, 0) == 0 for s in again.samples for k in ("ingest", "sample", "score"))
    assert [s.reused for s in again.samples] == [
        {"ingest": 1, "sample": 1, "score": 3},
        {"ingest": 1, "sample": 1, "score": 2},
    ]
    assert output_digests(good_study.parent / "out") == before


def test_changed_scoring_settings_rescore_the_blocks_and_are_recorded(good_study, client):
    out = good_study.parent / "out"
    run(good_study, client)
    first = json.loads((out / "samples/a/summary.json").read_text())
    assert first["metric_settings"] == {"polarity": "auto", "synapse_reference_per_um3": 1.0}
    text = good_study.read_text().replace("samples:", "polarity: bright\nsamples:", 1)
    good_study.write_text(text)
    again = run(good_study, client)
    assert [s.ran.get("score", 0) for s in again.samples] == [3, 2]
    assert all("ingest" not in s.ran and "sample" not in s.ran for s in again.samples)
    doc = json.loads((out / "samples/a/summary.json").read_text())
    assert doc["metric_settings"]["polarity"] == "bright"
    unit = json.loads(sorted((out / "samples/a/scores").glob("*.json"))[0].read_text())
    assert unit["inputs"]["metric_settings"]["polarity"] == "bright"
    # inverted before the stand-in maps: every block says so
    assert "imaging_quality:inverted_contrast" in unit["scores"]["flags"]


def test_altered_outputs_are_redone_not_trusted(good_study, client):
    out = good_study.parent / "out"
    run(good_study, client)
    before = output_digests(out)
    unit = sorted((out / "samples/a/scores").glob("*.json"))[1]
    unit.write_text(
        unit.read_text().replace('"edema":', '"edema":0.5,"was":', 1)
    )  # same-looking file
    chunk = next(
        p for p in sorted((out / "samples/b/volume.ome.zarr").rglob("c/*/*/*")) if p.is_file()
    )
    chunk.write_bytes(b"\0" + chunk.read_bytes()[1:])
    (out / "samples/b/blocks.json").write_text("{}")
    again = run(good_study, client)
    a, b = again.samples
    assert (a.ran, a.reused) == ({"score": 1}, {"ingest": 1, "sample": 1, "score": 2})
    n_chunks = sum(1 for p in (out / "samples/b/volume.ome.zarr").rglob("c/*/*/*") if p.is_file())
    # a finished volume keeps no journal: a corrupt one is ingested again, every chunk of it
    assert b.ran == {"ingest": 1, "chunk": n_chunks, "sample": 1} and b.reused == {"score": 2}
    assert output_digests(out) == before


def test_bad_entries_fail_with_reasons_and_the_good_samples_finish(tmp_path, client):
    write_h5(tmp_path / "good.h5", 0)
    write_h5(tmp_path / "says8nm.h5", 1, resolution_nm=[8, 8, 8])
    truncated = write_h5(tmp_path / "truncated.h5", 2)
    truncated.write_bytes(truncated.read_bytes()[:3000])
    manifest = make_study(
        tmp_path,
        "  - {id: good, source: good.h5:/raw, voxel_size_nm: [10, 10, 10]}\n"
        "  - {id: missing, source: nowhere.h5:/raw, voxel_size_nm: [10, 10, 10]}\n"
        "  - {id: wrong-voxel, source: says8nm.h5:/raw, voxel_size_nm: [10, 10, 10]}\n"
        "  - {id: corrupt, source: truncated.h5:/raw, voxel_size_nm: [10, 10, 10]}\n"
        "  - {id: too-big, source: good.h5:/raw, voxel_size_nm: [10, 10, 10], blocks: 500}\n",
    )
    result = run(manifest, client)
    by_id = {s.id: s for s in result.samples}
    assert by_id["good"].status == "done"
    assert {s.id for s in result.failed} == {"missing", "wrong-voxel", "corrupt", "too-big"}
    assert "nowhere.h5 does not exist" in by_id["missing"].reason
    assert "records [8.0, 8.0, 8.0]" in by_id["wrong-voxel"].reason
    assert "truncated.h5" in by_id["corrupt"].reason
    assert by_id["too-big"].stage == "sample" and "500" in by_id["too-big"].reason
    for s in result.failed:
        assert "unexpected" not in s.reason, s.reason
    rows = json.loads((tmp_path / "out/summary.json").read_text())["samples"]
    assert [(r["sample"], r["status"]) for r in rows] == [
        ("good", "done"), ("missing", "failed"), ("wrong-voxel", "failed"), ("corrupt", "failed"),
        ("too-big", "failed"),
    ]  # fmt: skip
    assert not (
        tmp_path / "out/samples/missing"
    ).exists()  # nothing of a failed unit counts as done


def test_a_block_that_cannot_be_scored_fails_its_sample_and_a_rerun_scores_only_it(
    good_study, client
):
    failing = good_study.parent / "fail-once"
    failing.write_text("")

    def flaky(raw, voxel_size_nm):  # tasks are pickled: state lives in files
        try:
            failing.unlink()  # exactly one block (the first to get here) fails
        except FileNotFoundError:
            return intensity_maps(raw, voxel_size_nm)
        raise RuntimeError("worker lost its GPU")

    first = run_batch(read_study_manifest(good_study), client=client, predict=flaky)
    failed = [s for s in first.samples if s.status == "failed"]
    assert len(failed) == 1 and failed[0].stage == "score"
    assert "1 of" in failed[0].reason and "worker lost its GPU" in failed[0].reason
    second = run_batch(read_study_manifest(good_study), client=client, predict=flaky)
    assert [s.status for s in second.samples] == ["done", "done"]
    assert sum(s.ran.get("score", 0) for s in second.samples) == 1


def test_without_a_seed_one_is_drawn_recorded_and_reused(tmp_path, client):
    write_h5(tmp_path / "a.h5", 0)
    manifest = make_study(
        tmp_path, "  - {id: a, source: a.h5:/raw, voxel_size_nm: [10, 10, 10]}\n", extra=""
    )
    first = run(manifest, client)
    study = json.loads((tmp_path / "out/study.json").read_text())
    assert study["seed"] == first.seed and study["seed_source"] == "os-random"
    before = output_digests(tmp_path / "out")
    second = run(manifest, client)
    assert second.seed == first.seed and second.samples[0].ran == {}
    assert output_digests(tmp_path / "out") == before


def test_the_output_folder_can_be_moved(good_study, client):
    run(good_study, client)
    before = output_digests(good_study.parent / "out")
    shutil.move(good_study.parent / "out", good_study.parent / "elsewhere")
    text = good_study.read_text().replace("output: out", "output: elsewhere")
    good_study.write_text(text)
    again = run(good_study, client)
    assert all(s.ran == {} for s in again.samples)
    assert output_digests(good_study.parent / "elsewhere") == before


def test_changing_a_samples_block_count_resamples_only_that_sample(good_study, client):
    run(good_study, client)
    good_study.write_text(good_study.read_text().replace("blocks: 2}", "blocks: 4}"))
    again = run(good_study, client)
    a, b = again.samples
    assert a.ran == {} and b.ran == {"sample": 1, "score": 4} and b.n_blocks == 4
    assert np.isfinite(b.summary["scores"]["edema"]["mean"])


def test_the_run_log_says_what_was_done_and_how_long_each_stage_took(good_study, client):
    run(good_study, client)
    (log_file,) = (good_study.parent / "out/runs").glob("*.json")
    log = json.loads(log_file.read_text())
    a = log["samples"]["a"]
    assert a["status"] == "done" and a["reused"] == {}
    assert a["ran"] == {"ingest": 1, "chunk": a["ran"]["chunk"], "sample": 1, "score": 3}
    assert a["ran"]["chunk"] > 1
    assert set(a["seconds"]) == {"ingest", "sample", "score", "summarize"}
    assert all(0 <= start <= end for start, end in a["seconds"].values())
    assert log["workers"] == [2] and log["started_utc"] < log["finished_utc"]
