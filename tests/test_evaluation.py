"""emqc.evaluation: boundary P/R/F1 and AP, VOI, synapse detection, by their properties."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage as ndi

from emqc.evaluation import (
    average_precision,
    boundaries_from_labels,
    boundary_pr_curve,
    boundary_prf,
    detect_objects,
    drop_small_objects,
    match_objects,
    smooth_probability,
    synapse_prf,
    voi,
)
from emqc.synth import NeuropilParams, synthetic_neuropil

ISO = (10.0, 10.0, 10.0)
ANISO = (40.0, 8.0, 8.0)


@pytest.fixture(scope="module")
def neuropil():
    return synthetic_neuropil((24, 64, 64), voxel_size_nm=ISO, seed=3)


@pytest.fixture(scope="module")
def synaptic():
    params = NeuropilParams(synapse_density_per_um3=8.0)
    return synthetic_neuropil((12, 256, 256), voxel_size_nm=(40.0, 6.0, 6.0), seed=2, params=params)


# --- boundaries -----------------------------------------------------------------------------


def test_boundaries_from_labels_marks_both_sides_and_planar_ignores_z():
    ids = np.ones((2, 4, 6), np.uint32)
    ids[:, :, 3:] = 2
    ids[1] += 10  # every id changes between the two sections
    b = boundaries_from_labels(ids)
    assert b.all()  # the z change marks everything
    flat = boundaries_from_labels(ids, planar=True)
    assert flat[:, :, 2:4].all() and not flat[:, :, [0, 1, 4, 5]].any()


@settings(max_examples=25, deadline=None)
@given(arrays(np.uint8, (3, 6, 7), elements=st.integers(0, 4)), st.sampled_from([0.0, 10.0, 25.0]))
def test_perfect_prediction_scores_one(ids, tol):
    true = boundaries_from_labels(ids)
    s = boundary_prf(true, true, voxel_size_nm=ISO, tolerance_nm=tol)
    assert s.precision == s.recall == s.f1 == 1.0
    if true.any():
        ap = average_precision(true.astype(np.float32), true, voxel_size_nm=ISO, tolerance_nm=tol)
        assert ap == pytest.approx(1.0)


@pytest.mark.parametrize("vox", [ISO, ANISO])
def test_tolerance_is_in_nanometres(vox):
    true = np.zeros((5, 12, 12), bool)
    true[:, :, 5] = True
    pred = np.roll(true, 2, axis=2)  # two voxels off in x
    shift = 2 * vox[2]
    for tol, expected in [(0.0, 0.0), (shift - 1, 0.0), (shift, 1.0), (3 * shift, 1.0)]:
        assert boundary_prf(pred, true, voxel_size_nm=vox, tolerance_nm=tol).f1 == expected
    # One section off in z: matched only when the tolerance reaches the section spacing.
    ztrue, zpred = np.zeros_like(true), np.zeros_like(true)
    ztrue[2, :, 5] = zpred[3, :, 5] = True
    assert boundary_prf(zpred, ztrue, voxel_size_nm=vox, tolerance_nm=vox[0] - 1).f1 == 0.0
    assert boundary_prf(zpred, ztrue, voxel_size_nm=vox, tolerance_nm=vox[0]).f1 == 1.0


def test_empty_prediction_and_empty_truth():
    true = np.zeros((2, 8, 8), bool)
    true[:, 4] = True
    none = np.zeros_like(true)
    s = boundary_prf(none, true, voxel_size_nm=ISO, tolerance_nm=10)
    assert (s.precision, s.recall, s.f1) == (1.0, 0.0, 0.0)
    s = boundary_prf(true, none, voxel_size_nm=ISO, tolerance_nm=10)
    assert (s.precision, s.recall, s.f1) == (0.0, 1.0, 0.0)
    assert boundary_prf(none, none, voxel_size_nm=ISO, tolerance_nm=0).f1 == 1.0


def test_pr_curve_equals_thresholded_scores(neuropil):
    rng = np.random.default_rng(0)
    true = neuropil.membrane
    prob = np.clip(true + rng.normal(0, 0.4, true.shape), 0, 1).astype(np.float32)
    mask = np.zeros(true.shape, bool)
    mask[:, 8:56, 8:56] = True
    thresholds = np.array([0.1, 0.35, 0.5, 0.8])
    for tol, m in [(0.0, None), (15.0, None), (20.0, mask)]:
        curve = boundary_pr_curve(
            prob, true, voxel_size_nm=ISO, tolerance_nm=tol, thresholds=thresholds, mask=m
        )
        for i, t in enumerate(thresholds):
            s = boundary_prf(prob > t, true, voxel_size_nm=ISO, tolerance_nm=tol, mask=m)
            assert curve.precision[i] == pytest.approx(s.precision)
            assert curve.recall[i] == pytest.approx(s.recall)
            assert curve.f1[i] == pytest.approx(s.f1)
    assert 0 <= curve.average_precision <= 1 and curve.best_f1 == curve.f1.max()
    assert json.loads(json.dumps(curve.to_dict()))["best_threshold"] == curve.best_threshold


def test_ap_and_f1_fall_as_the_prediction_degrades(neuropil):
    """Blur and noise: scores decrease monotonically with the damage."""
    true = neuropil.membrane
    rng = np.random.default_rng(1)
    aps, f1s = [], []
    for sigma, noise in [(0, 0.0), (1.0, 0.1), (2.0, 0.2), (3.0, 0.35)]:
        prob = ndi.gaussian_filter(true.astype(np.float32), sigma) if sigma else true * 1.0
        prob = prob / max(prob.max(), 1e-6) + rng.normal(0, noise, true.shape)
        prob = np.clip(prob, 0, 1).astype(np.float32)
        curve = boundary_pr_curve(prob, true, voxel_size_nm=ISO, tolerance_nm=10.0)
        aps.append(curve.average_precision)
        f1s.append(curve.best_f1)
    assert aps == sorted(aps, reverse=True) and aps[0] == pytest.approx(1.0)
    assert f1s == sorted(f1s, reverse=True) and f1s[-1] < 0.9


def test_boundary_bad_input_names_the_parameter():
    true = np.zeros((2, 4, 4), bool)
    with pytest.raises(TypeError, match="pred"):
        boundary_prf(true.astype(np.uint8), true, voxel_size_nm=ISO, tolerance_nm=1)
    with pytest.raises(ValueError, match="tolerance_nm"):
        boundary_prf(true, true, voxel_size_nm=ISO, tolerance_nm=-1)
    with pytest.raises(ValueError, match="voxel_size_nm"):
        boundary_prf(true, true, voxel_size_nm=(1, 1), tolerance_nm=1)
    with pytest.raises(TypeError, match="voxel_size_nm"):
        boundary_prf(true, true, voxel_size_nm="10", tolerance_nm=1)
    with pytest.raises(ValueError, match="pred"):
        boundary_prf(true[:1], true, voxel_size_nm=ISO, tolerance_nm=1)
    with pytest.raises(ValueError, match="prob"):
        boundary_pr_curve(np.full(true.shape, 2.0), true, voxel_size_nm=ISO, tolerance_nm=1)
    with pytest.raises(ValueError, match="thresholds"):
        boundary_pr_curve(true * 1.0, true, voxel_size_nm=ISO, tolerance_nm=1, thresholds=0)


# --- VOI --------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(arrays(np.uint16, (4, 5, 6), elements=st.integers(0, 6)), st.randoms(use_true_random=False))
def test_voi_is_zero_for_renamed_ids_and_splits_and_merges_go_their_own_way(ids, rnd):
    perm = np.arange(7, dtype=np.uint32)
    rnd.shuffle(perm)
    if not (ids > 0).any():
        ids[0, 0, 0] = 1
    assert voi(perm[ids] + 100, ids).total == pytest.approx(0, abs=1e-9)
    split = voi(np.arange(ids.size, dtype=np.uint32).reshape(ids.shape), ids)
    assert split.merge == pytest.approx(0, abs=1e-9) and split.split >= 0
    merged = voi(np.ones_like(ids), ids)
    assert merged.split == pytest.approx(0, abs=1e-9) and merged.merge >= 0


def test_voi_grows_with_the_number_of_errors(neuropil):
    truth = neuropil.cell_ids
    rng = np.random.default_rng(4)
    cut = truth.astype(np.uint32).copy()
    splits, merges = [], []
    for _ in range(3):  # cut more cells in half
        cells = rng.choice(np.unique(cut[cut > 0]), 3, replace=False)
        for c in cells:
            cut[(cut == c) & (np.arange(64)[None, None, :] < 32)] = cut.max() + 1
        splits.append(voi(cut, truth).split)
    joined = truth.astype(np.uint32).copy()
    for _ in range(3):  # join pairs of cells
        a, b = rng.choice(np.unique(joined[joined > 0]), 2, replace=False)
        joined[joined == b] = a
        merges.append(voi(joined, truth).merge)
    assert splits == sorted(splits) and splits[0] > 0
    assert merges == sorted(merges) and merges[0] > 0


def test_voi_ignores_truth_zero():
    truth = np.array([[[0, 0, 1, 1, 2, 2]]], np.uint8)
    seg = np.array([[[7, 8, 1, 1, 2, 2]]], np.uint8)
    assert voi(seg, truth).total == 0.0
    assert voi(seg, truth, ignore_truth=()).split > 0


def test_voi_bad_input():
    a = np.zeros((2, 2), np.int32)
    with pytest.raises(TypeError, match="segmentation"):
        voi(a.astype(float), a)
    with pytest.raises(ValueError, match="shape"):
        voi(a, a[:1])
    with pytest.raises(ValueError, match="ignore_truth"):
        voi(a, a)
    with pytest.raises(TypeError, match="ignore_truth"):
        voi(a + 1, a + 1, ignore_truth=0)


# --- synapses ---------------------------------------------------------------------------------


def test_synapse_perfect_detection_and_degradation(synaptic):
    vox, true = synaptic.voxel_size_nm, synaptic.synapses
    assert true.max() >= 3
    perfect = match_objects(true, true, voxel_size_nm=vox)
    assert (perfect.precision, perfect.recall, perfect.f1) == (1.0, 1.0, 1.0)
    assert perfect.tp == len(np.unique(true)) - 1
    # Drop synapses one by one: recall falls, precision stays 1.
    recalls = []
    for k in range(1, 4):
        kept = np.where(np.isin(true, np.unique(true)[1 : 1 + k]), 0, true)
        s = match_objects(kept, true, voxel_size_nm=vox)
        assert s.precision == 1.0
        recalls.append(s.recall)
    assert recalls == sorted(recalls, reverse=True)


def test_synapse_matching_rule():
    true = np.zeros((1, 20, 60), np.uint8)
    true[0, 5:8, 5:8] = 1
    pred = np.zeros_like(true)
    pred[0, 5:8, 12:15] = 4  # no overlap, centroids 7 voxels = 70 nm apart
    vox = (10.0, 10.0, 10.0)
    assert match_objects(pred, true, voxel_size_nm=vox, max_distance_nm=69).tp == 0
    s = match_objects(pred, true, voxel_size_nm=vox, max_distance_nm=70)
    assert s.tp == 1 and s.pairs == ((4, 1),)
    # One-to-one: a second prediction on the same synapse is a false positive.
    pred[0, 6, 6] = 5
    s = match_objects(pred, true, voxel_size_nm=vox, max_distance_nm=70)
    assert (s.tp, s.fp, s.fn) == (1, 1, 0) and s.pairs == ((5, 1),)  # the nearer one


def test_detect_objects_threshold_size_and_planar():
    prob = np.zeros((3, 10, 10), np.float32)
    prob[:, 2:5, 2:5] = 0.9  # one column through all sections
    prob[1, 8, 8] = 0.6
    vox = (50.0, 5.0, 5.0)
    assert detect_objects(prob, threshold=0.5, voxel_size_nm=vox).max() == 2
    assert detect_objects(prob, threshold=0.7, voxel_size_nm=vox).max() == 1
    assert detect_objects(prob, threshold=0.5, voxel_size_nm=vox, min_size_nm3=1251).max() == 1
    assert detect_objects(prob, threshold=0.5, voxel_size_nm=vox, planar=True).max() == 4
    s = synapse_prf(prob, prob > 0.5, threshold=0.5, voxel_size_nm=vox, planar=True)
    assert s.tp == 4 and s.f1 == 1.0


def test_smoothing_joins_the_fragments_of_one_synapse_and_keeps_two_apart():
    """A synapse whose probability dips below the threshold in its middle (a narrow cleft)
    is two objects as the map stands and one after smoothing; two synapses 250 nm apart
    stay two."""
    vox = (50.0, 5.0, 5.0)
    prob = np.zeros((1, 40, 160), np.float32)
    prob[0, 15:25, 10:40] = 0.9  # 50 nm thick
    prob[0, 15:25, 40:43] = 0.3  # the dip: 15 nm
    prob[0, 15:25, 43:70] = 0.9
    prob[0, 15:25, 120:150] = 0.9  # another synapse, 250 nm from the first
    kw = dict(threshold=0.5, voxel_size_nm=vox, planar=True)
    assert detect_objects(prob, **kw).max() == 3
    for sigma in (10, 20):
        assert detect_objects(prob, **kw, smooth_nm=sigma).max() == 2


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), sigma=st.sampled_from([20.0, 60.0, 120.0]))
def test_smooth_probability_stays_a_probability_and_planar_keeps_sections_apart(seed, sigma):
    rng = np.random.default_rng(seed)
    prob = rng.random((3, 16, 16), dtype=np.float32)
    prob[rng.random(prob.shape) < 0.3] = 1.0  # certain voxels, as a saturated sigmoid gives
    out = smooth_probability(prob, sigma_nm=sigma, voxel_size_nm=ANISO, planar=True)
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    changed = prob.copy()
    changed[0] = 1 - changed[0]
    again = smooth_probability(changed, sigma_nm=sigma, voxel_size_nm=ANISO, planar=True)
    np.testing.assert_array_equal(again[1:], out[1:])  # another section never leaks in
    mixed = smooth_probability(changed, sigma_nm=sigma, voxel_size_nm=ANISO)
    assert not np.array_equal(mixed[1], out[1])  # in 3D it does
    np.testing.assert_array_equal(smooth_probability(prob, sigma_nm=0, voxel_size_nm=ANISO), prob)
    detect_objects(out, threshold=0.5, voxel_size_nm=ANISO)  # a valid map again


def test_drop_small_objects_keeps_the_size_given_and_renumbers():
    lab = np.zeros((1, 4, 10), np.int32)
    lab[0, 0, :2] = 7  # 2 voxels
    lab[0, 2, :3] = 3  # 3 voxels
    lab[0, 3, 5:9] = 9  # 4 voxels
    out = drop_small_objects(lab, min_size_nm3=3000, voxel_size_nm=ISO)
    assert out.dtype == np.uint32
    assert sorted(np.unique(out).tolist()) == [0, 1, 2]
    assert (out > 0).sum() == 7 and out[0, 0, :2].max() == 0
    np.testing.assert_array_equal(drop_small_objects(lab, min_size_nm3=0, voxel_size_nm=ISO), lab)
    with pytest.raises(TypeError, match="labels"):
        drop_small_objects(lab.astype(np.float32), min_size_nm3=1, voxel_size_nm=ISO)
    with pytest.raises(ValueError, match="min_size_nm3"):
        drop_small_objects(lab, min_size_nm3=-1, voxel_size_nm=ISO)


def test_synapse_bad_input():
    p = np.zeros((2, 4, 4), np.float32)
    with pytest.raises(ValueError, match="threshold"):
        detect_objects(p, threshold=1.0, voxel_size_nm=ISO)
    with pytest.raises(TypeError, match="threshold"):
        detect_objects(p, threshold="0.5", voxel_size_nm=ISO)
    with pytest.raises(ValueError, match="min_size_nm3"):
        detect_objects(p, threshold=0.5, voxel_size_nm=ISO, min_size_nm3=-1)
    with pytest.raises(ValueError, match="sigma_nm"):
        detect_objects(p, threshold=0.5, voxel_size_nm=ISO, smooth_nm=-1)
    with pytest.raises(TypeError, match="true"):
        match_objects(p.astype(np.uint8), p, voxel_size_nm=ISO)
    with pytest.raises(ValueError, match="max_distance_nm"):
        match_objects(p.astype(np.uint8), p.astype(np.uint8), voxel_size_nm=ISO, max_distance_nm=-1)


# --- real data (crops) ------------------------------------------------------------------------


@pytest.mark.realdata
def test_real_labels_score_perfectly_against_themselves(medulla, vnc, isbi):
    ids = medulla.labels["neuron_ids"][:32, :96, :96]
    true = boundaries_from_labels(ids)
    assert 0.05 < true.mean() < 0.6
    assert boundary_prf(true, true, voxel_size_nm=medulla.voxel_size_nm, tolerance_nm=20).f1 == 1
    assert voi(ids, ids).total == 0.0
    mem = isbi.labels["membranes"][24:26, :128, :128] > 0
    prob = mem.astype(np.float32)
    assert average_precision(prob, mem, voxel_size_nm=isbi.voxel_size_nm, tolerance_nm=0) == 1
    syn = vnc.labels["synapses"][15:20, :512, :512] > 0
    s = synapse_prf(syn.astype(np.float32), syn, threshold=0.5, voxel_size_nm=vnc.voxel_size_nm)
    assert s.tp >= 1 and s.f1 == 1.0


@pytest.mark.realdata
@pytest.mark.slow
def test_accuracy_benchmark_runs_on_isbi(isbi, tmp_path, capsys):
    """The benchmark command end to end on its fastest dataset, with the baseline."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "accuracy.py"
    spec = importlib.util.spec_from_file_location("accuracy", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--methods", "baseline", "--datasets", "isbi", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "| isbi | membrane pixel F1 |" in out and "train parts only" in out
    record = json.loads((tmp_path / "accuracy.json").read_text())
    f1 = record["results"]["baseline"]["isbi"]["membrane"]["f1"]
    assert 0.5 < f1 < 0.9
    with pytest.raises(SystemExit, match="unknown method"):
        bench.main(["--methods", "nope", "--datasets", "isbi", "--out", str(tmp_path)])
