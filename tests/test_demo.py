"""``emqc demo``, the main job, run as a user runs it (a real local Dask cluster)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image

from emqc.custody import Study, verify_report
from emqc.demo import DEMO_SAMPLES, DemoSample
from emqc.judging import JudgeSession, Session, judge_visible_leaks, read_mapping
from emqc.manifest import verify_volume
from emqc.sampling.volume import read_block_list


def _mean(summary: dict, name: str) -> float:
    value = summary["scores"][name]["mean"]
    return math.nan if value is None else float(value)


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "emqc", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "SYNTHETIC" in proc.stderr and str(out) in proc.stdout
    assert "Preservation scores of the SYNTHETIC samples" in proc.stdout
    record = json.loads((out / "raw" / "samples.json").read_text())
    assert record["synthetic"] is True
    conditions = {s["id"]: s["condition"] for s in record["samples"]}
    assert conditions["S01"] == "well-preserved"
    assert conditions["S02"].startswith("damaged: ")
    damage = {d["name"] for s in record["samples"] for d in s["damage"]}
    assert damage == {"edema", "membrane_breakdown"}
    summaries = {}
    for sample in ("S01", "S02"):
        volume = out / "volumes" / f"{sample}.ome.zarr"
        assert verify_volume(volume).ok
        blocks = read_block_list(out / "blocks" / f"{sample}.blocks.json")
        assert len(blocks.blocks) == 4 and blocks.seed == 20261123
        png = np.asarray(Image.open(out / "blocks" / f"{sample}.blocks.png").convert("L"))
        assert png.std() > 20  # four block images, not a blank canvas
        scores = out / "scores" / sample
        for name in ("summary.json", "blocks.csv", "blocks.parquet"):
            assert (scores / name).is_file(), name
        summary = json.loads((scores / "summary.json").read_text())
        assert summary["volume_digest"] == blocks.volume_digest
        assert summary["n_blocks"] == 4 and summary["models"]
        assert str(scores / "summary.json") in proc.stdout.replace("\n", "")
        summaries[sample] = summary

    # The demo ends with a signed report, verified offline, and says where its PDF is.
    report = out / "report"
    assert f"Report PDF: {report / 'report.pdf'}" in proc.stdout.replace("\n", "")
    assert "OK " in proc.stdout and "2 volume(s) re-hashed" in proc.stdout
    checked = verify_report(report, data_root=out)
    assert checked.ok, checked.problems
    assert {s["meaning"] for s in checked.signers} == {"authored", "approved"}
    pdf = pdfium.PdfDocument(report / "report.pdf")
    headings = [pdf[i].get_textpage().get_text_range() for i in range(len(pdf))]
    assert len(pdf) >= 5
    for words in (
        "Per-sample summary",
        "Score distributions",
        "Sampled blocks",
        "Signature manifest",
    ):
        assert any(words in h for h in headings), (words, [h[:60] for h in headings])
    plots = headings.index(next(h for h in headings if "Score distributions" in h))
    page = np.asarray(pdf[plots].render(scale=1).to_pil().convert("L"), dtype=float)
    assert page[page.shape[0] // 5 : -page.shape[0] // 8].std() > 20  # plots, not a blank page
    actions = [e.fields["action"] for e in Study.open(out).ledger.events()]
    assert actions.count("score") == 2 and actions[-2:] == ["report.sign", "report.sign"]

    # A blinded judging session for two demo judges, not judged, with how to open it.
    judging = out / "judging"
    session = Session.open(judging)
    assert session.judges == ("judge-a", "judge-b")
    for judge in session.judges:
        order = json.loads((judging / "judges" / f"{judge}.json").read_text())["codes"]
        assert len(order) == len(session.orders[judge]) == 9  # 2 x 3 blocks, 3 repeated
        assert JudgeSession(judging, judge).progress().done == 0
        assert (out / "keys" / f"{judge}.key").is_file()
        line = (
            f"emqc judge open {judging} --judge {judge} --study {out} "
            f"--key {out / 'keys' / f'{judge}.key'}"
        )
        assert line in proc.stdout, proc.stdout
    mapping = read_mapping(judging)
    assert sum(1 for it in mapping["codes"].values() if it["repeat_of"]) >= 1
    assert {it["sample"] for it in mapping["codes"].values()} == {"S01", "S02"}
    for sample in ("S01", "S02"):
        judged = read_block_list(judging / "sealed" / "blocks" / f"{sample}.blocks.json")
        assert len(judged.blocks) == 3
    assert not judge_visible_leaks(judging, ["S01", "S02"], [])
    assert f"{judging / 'sealed'} is the coordinator's" in proc.stdout
    assert actions.count("judge.session") == 1 and actions.count("key.register") == 4

    # The damaged sample scores worse on what its damage targets, with confidence
    # intervals apart. A score is compared only where the committed networks give it
    # for both samples (edema needs an extracellular map); membrane integrity always.
    good, bad = summaries["S01"]["scores"], summaries["S02"]["scores"]
    for sample, summary in summaries.items():
        assert not math.isnan(_mean(summary, "membrane_integrity")), sample
    apart = {
        "membrane_integrity": bad["membrane_integrity"]["ci_high"]
        < good["membrane_integrity"]["ci_low"]
    }
    if not any(math.isnan(_mean(s, "edema")) for s in summaries.values()):
        apart["edema"] = bad["edema"]["ci_low"] > good["edema"]["ci_high"]
    assert all(apart.values()), {
        name: {"apart": ok, "S01 (well-preserved)": good[name], "S02 (damaged)": bad[name]}
        for name, ok in apart.items()
    }


def test_demo_samples_are_one_neuropil_well_preserved_and_damaged():
    well, damaged = DEMO_SAMPLES
    assert (well.seed, well.vessel) == (damaged.seed, damaged.vessel)
    assert well.condition == "well-preserved" and not well.damage
    assert damaged.condition == "damaged: edema 0.7 + membrane breakdown 0.7"
    assert {well.format, damaged.format} == {"tiff-stack", "hdf5"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"format": "zip"}, "format must be"),
        ({"damage": (("swelling", 0.5),)}, "damage 'swelling' is not one of"),
        ({"damage": (("edema", 1.5),)}, r"severity of edema must be in \[0, 1\]"),
    ],
)
def test_demo_sample_checks_its_fields(kwargs, match):
    fields = {"id": "S09", "seed": 1, "vessel": False, "format": "hdf5"} | kwargs
    with pytest.raises(ValueError, match=match):
        DemoSample(**fields)
