"""Agreement statistics and unblinding of a judging session."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emqc.custody import Study, new_key
from emqc.errors import InputError
from emqc.judging import (
    JudgeSession,
    Verdict,
    bootstrap_alpha_ci,
    cohen_kappa,
    create_session,
    fleiss_kappa,
    icc,
    icc_band,
    judge_model_agreement,
    krippendorff_alpha,
    read_mapping,
    self_consistency,
    unblind,
)
from emqc.testing import synthetic_volumes

pytestmark = pytest.mark.filterwarnings("ignore:window_nm")

# --- statistics on hand-made matrices ------------------------------------------------------


def test_perfect_agreement():
    m = np.array([[0, 1, 2, 3, 4, 2, 1], [0, 1, 2, 3, 4, 2, 1], [0, 1, 2, 3, 4, 2, 1]], float)
    for level in ("ordinal", "nominal", "interval"):
        assert krippendorff_alpha(m, level) == pytest.approx(1.0)
    assert fleiss_kappa(m, 5) == pytest.approx(1.0)
    assert cohen_kappa(m[0], m[1]) == pytest.approx(1.0)
    assert cohen_kappa(m[0], m[2], "quadratic", labels=range(5)) == pytest.approx(1.0)
    r = icc(m)
    assert r.icc2 == pytest.approx(1.0) and r.band == "excellent" and r.n_judges == 3
    sc = self_consistency(m[0], m[1])
    assert sc == {"n": 7, "exact": 1.0, "weighted_kappa": pytest.approx(1.0), "mean_abs_diff": 0.0}


def test_random_ratings_give_alpha_near_zero():
    rng = np.random.default_rng(1)
    m = rng.integers(0, 5, size=(3, 300)).astype(float)
    assert abs(krippendorff_alpha(m, "nominal")) < 0.05
    assert abs(krippendorff_alpha(m, "ordinal")) < 0.1
    lo, hi = bootstrap_alpha_ci(m, "nominal", n_boot=200, seed=0)
    assert lo < 0 < hi and hi - lo < 0.2
    assert abs(fleiss_kappa(m, 5)) < 0.05
    assert abs(cohen_kappa(m[0], m[1])) < 0.1
    assert icc(m).band == "poor"


def test_missing_values_and_undefined_cases():
    m = np.array([[0, 1, 2, np.nan, 1], [0, 1, 2, 2, np.nan], [np.nan, 1, 2, 2, 1]])
    # every pairable unit agrees: alpha 1 even with a missing answer per unit
    assert krippendorff_alpha(m, "ordinal", value_domain=range(3)) == pytest.approx(1.0)
    # only units answered by all count for Fleiss; units 1 and 2 agree
    assert fleiss_kappa(m, 3) == pytest.approx(1.0)
    assert cohen_kappa(m[0], m[1]) == pytest.approx(1.0)  # three complete pairs
    assert icc(m).n_units == 2 and np.isnan(icc(m).icc2)  # fewer than three complete units
    # one value only: every statistic is undefined, not an error
    same = np.ones((2, 5))
    assert np.isnan(krippendorff_alpha(same, "nominal"))
    assert np.isnan(fleiss_kappa(same, 3)) and np.isnan(cohen_kappa(same[0], same[1]))
    assert np.isnan(bootstrap_alpha_ci(same, "nominal", n_boot=10)[0])
    assert np.isnan(judge_model_agreement([1, 1, 1], [0.1, 0.2, 0.3])["rho"])
    sc = self_consistency([1, 2, np.nan], [1, 3, 2])
    assert sc["n"] == 2 and sc["exact"] == 0.5 and sc["mean_abs_diff"] == 0.5
    with pytest.raises(InputError, match="level"):
        krippendorff_alpha(m, "ratio-ish")  # type: ignore[arg-type]


def test_icc_bands_and_spearman():
    assert [icc_band(v) for v in (0.3, 0.6, 0.8, 0.95, float("nan"))] == [
        "poor", "moderate", "good", "excellent", "undefined"]  # fmt: skip
    res = judge_model_agreement([1, 2, 3, 4, np.nan], [0.1, 0.3, 0.2, 0.9, 0.5])
    assert res["n"] == 4 and res["rho"] == pytest.approx(0.8)


# --- a simulated panel ---------------------------------------------------------------------


def test_simulated_panel_orders_judges_by_noise():
    rng = np.random.default_rng(2024)
    truth = rng.integers(1, 6, size=60).astype(float)
    noise = {"A": 0.3, "B": 0.3, "C": 1.5}
    ratings = {j: np.clip(np.rint(truth + rng.normal(0, sd, truth.size)), 1, 5) - 1
               for j, sd in noise.items()}  # fmt: skip
    labels = range(5)
    ab = cohen_kappa(ratings["A"], ratings["B"], "linear", labels=labels)
    ac = cohen_kappa(ratings["A"], ratings["C"], "linear", labels=labels)
    bc = cohen_kappa(ratings["B"], ratings["C"], "linear", labels=labels)
    assert ab > ac and ab > bc and ab > 0.8
    two = np.stack([ratings["A"], ratings["B"]])
    three = np.stack([ratings["A"], ratings["B"], ratings["C"]])
    a2 = krippendorff_alpha(two, "ordinal", value_domain=labels)
    a3 = krippendorff_alpha(three, "ordinal", value_domain=labels)
    assert a2 > a3
    lo, hi = bootstrap_alpha_ci(two, "ordinal", n_boot=300, seed=1, value_domain=labels)
    assert lo <= a2 <= hi
    assert icc(two).icc2 > icc(three).icc2
    # C disagrees more with the truth, and ranks the truth less well
    assert judge_model_agreement(ratings["A"], truth)["rho"] > judge_model_agreement(
        ratings["C"], truth)["rho"]  # fmt: skip


# --- end to end ----------------------------------------------------------------------------

SAMPLES = ("S01_perfused", "S02_immersion")
JUDGES = ("alice", "bob")
GOOD = {"membrane_integrity": 5, "edema": "none", "traceable": "yes"}
POOR = {"membrane_integrity": 2, "edema": "moderate", "traceable": "no"}


@pytest.fixture(scope="module")
def volumes(tmp_path_factory) -> dict[str, Path]:
    return synthetic_volumes(tmp_path_factory.mktemp("vols"), SAMPLES, shape=(32, 48, 48))


def _verdict(judge: str, sample: str, k: int) -> Verdict:
    base = dict(GOOD if sample == SAMPLES[0] else POOR)
    if judge == "bob" and k % 3 == 0:  # bob is one step off now and then
        base["membrane_integrity"] = max(1, base["membrane_integrity"] - 1)
    return Verdict(confidence=2 + (k % 2), **base)


def test_unblind_end_to_end(volumes, tmp_path):
    session = create_session(volumes, list(JUDGES), blocks_per_sample=4, out=tmp_path / "s",
                             seed=3, block_vox=(16, 16, 16), repeat_share=0.25)  # fmt: skip
    mapping = read_mapping(session.root)["codes"]
    for judge in JUDGES:
        js = JudgeSession(session.root, judge)
        for k, code in enumerate(js.order):
            js.record(code, _verdict(judge, mapping[code]["sample"], k))
    JudgeSession(session.root, "alice").lock()
    with pytest.raises(InputError, match="bob") as err:
        unblind(session.root, n_boot=50)
    assert "alice" not in str(err.value)
    assert not (session.root / "unblinded").exists()
    JudgeSession(session.root, "bob").lock()

    # model scores: one blocks.parquet per sample, higher for the good sample
    scores = {}
    for i, sid in enumerate(SAMPLES):
        blocks = sorted({it["block"] for it in mapping.values() if it["sample"] == sid})
        folder = tmp_path / f"score_{sid}"
        folder.mkdir()
        base = 0.8 if i == 0 else 0.2
        pd.DataFrame({"block_id": blocks,
                      "membrane_integrity": base + 0.01 * np.arange(len(blocks)),
                      "edema": 1 - base + 0.01 * np.arange(len(blocks)),
                      "synapse_traceability": base - 0.01 * np.arange(len(blocks))},
                     ).to_parquet(folder / "blocks.parquet")  # fmt: skip
        scores[sid] = folder

    study = Study.open(tmp_path / "study", create=True)
    key = new_key("coord", "operator", registry=study.registry, key_path=tmp_path / "c.key")
    res = unblind(session.root, scores=scores, study=study, signer=key, n_boot=100)
    out = session.root / "unblinded"
    assert res.out == out
    names = {"verdicts.csv", "agreement.json", "agreement.csv", "agreement.png",
             "verdicts_by_sample.png"}  # fmt: skip
    assert {p.name for p in out.iterdir()} == names

    table = pd.read_csv(out / "verdicts.csv", keep_default_na=False)
    assert len(table) == len(JUDGES) * len(mapping)
    assert not table.duplicated(["judge", "code"]).any()
    for row in table.itertuples():
        assert row.sample == mapping[row.code]["sample"]
        assert row.block_id == mapping[row.code]["block"]
        assert row.repeat_of == (mapping[row.code]["repeat_of"] or "")
    assert (table["repeat_of"] != "").sum() == len(JUDGES) * 2  # ceil(0.25 * 8) repeats

    doc = json.loads((out / "agreement.json").read_text())
    assert {"format", "session_id", "judges", "questions", "self_consistency",
            "judge_model", "n_repeats"} <= set(doc)  # fmt: skip
    assert set(doc["questions"]) == {"membrane_integrity", "edema", "traceable", "confidence"}
    mi = doc["questions"]["membrane_integrity"]
    assert {"krippendorff_alpha", "fleiss_kappa", "cohen_kappa", "icc"} <= set(mi)
    assert mi["krippendorff_alpha"]["n_units"] == 8  # first showings only
    assert mi["krippendorff_alpha"]["value"] > 0.7
    assert doc["questions"]["edema"]["krippendorff_alpha"]["value"] == pytest.approx(1.0)
    assert doc["questions"]["traceable"]["fleiss_kappa"]["value"] == pytest.approx(1.0)
    assert "icc" not in doc["questions"]["traceable"]
    assert mi["icc"]["band"] in {"moderate", "good", "excellent"}
    sc = doc["self_consistency"]["alice"]["edema"]
    assert (sc["n"], sc["exact"], sc["mean_abs_diff"]) == (2, 1.0, 0.0)
    assert sc["weighted_kappa"] in (None, pytest.approx(1.0))  # undefined if one value only
    jm = doc["judge_model"]
    assert jm["membrane_integrity"]["judges"]["alice"]["rho"] > 0.7
    assert jm["edema"]["judges"]["alice"]["rho"] > 0.7  # more edema, higher edema score
    assert jm["traceable"]["judges"]["bob"]["n"] == 8

    stats = pd.read_csv(out / "agreement.csv")
    assert {"question", "statistic", "judges", "value", "ci_low", "ci_high"} <= set(stats)
    assert not stats.duplicated(["question", "statistic", "judges"]).any()
    assert {"krippendorff_alpha", "fleiss_kappa", "cohen_kappa", "icc2", "icc2k", "self_exact",
            "spearman_model"} <= set(stats["statistic"])  # fmt: skip

    from matplotlib.image import imread

    for png in ("agreement.png", "verdicts_by_sample.png"):
        img = imread(out / png)
        assert img.shape[0] > 100 and np.ptp(img[..., :3]) > 0.5  # not blank

    event = study.ledger.events()[-1].fields
    assert event["action"] == "judge.unblind"
    assert event["params"] == {"session": session.session_id, "judges": list(JUDGES)}
    assert len(event["objects"]) == 1 + len(names)
    assert study.ledger.verify(study.registry) == []

    # deterministic: a second unblinding writes the same bytes (and replaces the folder)
    again = unblind(session.root, scores=scores, out=tmp_path / "again", n_boot=100)
    assert again.files == res.files
