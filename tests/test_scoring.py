"""Block scores from maps, and per-sample summaries with bootstrap intervals and verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emqc.scoring import BlockScores, Thresholds, score_block, summarize, summarize_blocks
from emqc.synth import NeuropilParams, synthetic_neuropil


@pytest.fixture(scope="module")
def tissue():
    return synthetic_neuropil((48, 96, 96), voxel_size_nm=10.0, seed=4)


def perfect_maps(vol) -> dict[str, np.ndarray]:
    return {
        "boundary": vol.membrane.astype(np.float32),
        "extracellular": vol.extracellular.astype(np.float32),
        "synapse": (vol.synapses > 0).astype(np.float32),
    }


def test_block_scores_from_perfect_maps_are_in_range_and_good(tissue):
    s = score_block(tissue.image, voxel_size_nm=(10.0, 10.0, 10.0), maps=perfect_maps(tissue))
    assert s.membrane_integrity > 0.8 and s.edema < 0.1 and 0 <= s.imaging_quality <= 1
    assert not s.too_poor_to_judge
    # 0.44 um^3 at the default 1 synapse per um^3: too small to measure visibility.
    assert "synapse_traceability:visibility_unmeasured" in s.flags
    assert 0 <= s.synapse_traceability <= 1 or (
        math.isnan(s.synapse_traceability) and "synapse_traceability:no_synapses" in s.flags
    )
    # Dense synapses against a reference the block can measure: traced and good.
    dense = synthetic_neuropil(
        (64, 128, 128), voxel_size_nm=10.0, seed=1, params=NeuropilParams(synapse_density_per_um3=4)
    )  # 3 synapses of at least 1e5 nm^3 in 1.05 um^3
    s = score_block(dense.image, voxel_size_nm=(10.0, 10.0, 10.0), maps=perfect_maps(dense),
                    synapse_reference_per_um3=3.0)  # fmt: skip
    assert not any("visibility_unmeasured" in f for f in s.flags)
    assert s.details["synapse_traceability"]["visibility"] > 0.9
    assert 0.9 < s.synapse_traceability <= 1
    row = s.row()
    assert set(row) >= {
        "membrane_integrity",
        "edema",
        "synapse_traceability",
        "imaging_quality",
        "flags",
    }


def test_maps_on_a_coarser_grid_are_scored_at_their_own_voxel_size(tissue):
    from emqc.metrics import edema, imaging_quality, membrane_integrity

    coarse = {k: v[::2, ::2, ::2] for k, v in perfect_maps(tissue).items()}  # 20 nm voxels
    s = score_block(tissue.image, voxel_size_nm=(10.0, 10.0, 10.0), maps=coarse)
    mi = membrane_integrity(coarse["boundary"], voxel_size_nm=(20.0, 20.0, 20.0))
    assert s.membrane_integrity == mi.score
    assert s.edema == edema(coarse["extracellular"], voxel_size_nm=(20.0, 20.0, 20.0)).score
    # imaging quality stays on the raw block's own voxels
    assert s.imaging_quality == imaging_quality(tissue.image, voxel_size_nm=(10, 10, 10)).score


def test_maps_of_different_shapes_are_refused(tissue):
    maps = perfect_maps(tissue)
    maps["synapse"] = maps["synapse"][::2, ::2, ::2]
    with pytest.raises(ValueError, match="must share one shape"):
        score_block(tissue.image, voxel_size_nm=(10.0, 10.0, 10.0), maps=maps)


def test_edema_rises_with_extracellular_space():
    scores = []
    for fraction in (0.03, 0.15, 0.3):
        vol = synthetic_neuropil((40, 80, 80), voxel_size_nm=10.0, seed=2,
                                 params=NeuropilParams(extracellular_fraction=fraction))  # fmt: skip
        scores.append(
            score_block(vol.image, voxel_size_nm=(10, 10, 10), maps=perfect_maps(vol)).edema
        )
    assert scores[0] < scores[1] < scores[2]


def test_missing_maps_give_nan_and_a_flag_not_a_crash(tissue):
    s = score_block(
        tissue.image,
        voxel_size_nm=(10, 10, 10),
        maps={"boundary": perfect_maps(tissue)["boundary"]},
    )
    assert math.isnan(s.edema) and math.isnan(s.synapse_traceability)
    assert (
        "edema:no_extracellular_map" in s.flags and "synapse_traceability:no_synapse_map" in s.flags
    )
    assert not math.isnan(s.membrane_integrity)


def test_an_empty_block_is_flagged_not_scored():
    raw = np.full((16, 32, 32), 200, np.uint8)
    zeros = np.zeros(raw.shape, np.float32)
    s = score_block(
        raw,
        voxel_size_nm=(10, 10, 10),
        maps={"boundary": zeros, "extracellular": zeros, "synapse": zeros},
    )
    assert math.isnan(s.membrane_integrity) and s.too_poor_to_judge


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(3, 40), centre=st.floats(0.05, 0.95))
def test_interval_contains_the_mean_and_is_reproducible(seed, n, centre):
    values = np.clip(np.random.default_rng(seed).normal(centre, 0.1, n), 0, 1)
    a = summarize(values, threshold=0.5, higher_is_better=True, seed=seed)
    b = summarize(values, threshold=0.5, higher_is_better=True, seed=seed)
    assert a == b
    assert a.ci_low <= a.mean <= a.ci_high and 0 <= a.ci_low and a.ci_high <= 1
    assert a.n_blocks == n


def test_verdicts():
    kw = dict(threshold=0.5, higher_is_better=True)
    assert summarize([0.9, 0.92, 0.88, 0.91], **kw).verdict == "good"
    assert summarize([0.1, 0.12, 0.08, 0.11], **kw).verdict == "poor"
    assert summarize([0.2, 0.8, 0.3, 0.7, 0.5], **kw).verdict == "uncertain"
    assert summarize([0.9, 0.9], **kw).verdict == "not judged"  # fewer than 3 blocks
    assert summarize([0.05, 0.04, 0.06], threshold=0.25, higher_is_better=False).verdict == "good"


def test_nan_and_excluded_blocks_are_counted_not_averaged():
    s = summarize([0.9, float("nan"), 0.9, 0.0, 0.9], threshold=0.5, higher_is_better=True,
                  excluded=[False, False, False, True, False])  # fmt: skip
    assert s.n_blocks == 3 and s.n_excluded == 2 and s.mean == pytest.approx(0.9)


def test_summarize_blocks_uses_each_scores_direction():
    blocks = [BlockScores(0.9, 0.05, 0.8, 0.9, False) for _ in range(5)]
    out = summarize_blocks(blocks, thresholds=Thresholds())
    assert {k: v.verdict for k, v in out.items()} == {
        "membrane_integrity": "good", "edema": "good", "synapse_traceability": "good",
    }  # fmt: skip


def test_bad_input():
    with pytest.raises(ValueError, match="1-D"):
        summarize(np.zeros((2, 2)), threshold=0.5, higher_is_better=True)
    with pytest.raises(ValueError, match="confidence"):
        summarize([0.5], threshold=0.5, higher_is_better=True, confidence=1.5)


@pytest.mark.parametrize(("noise", "seed"), [(0.0, 0), (0.3, 1), (0.8, 2), (1.2, 3), (3.0, 4)])
def test_synapse_traceability_is_judged_only_above_the_snr_limit(noise, seed):
    from emqc.scoring import SYNAPSE_MIN_SNR

    dense = _dense()
    rng = np.random.default_rng(seed)
    img = dense.image.astype(np.float64)
    noisy = np.clip(img + rng.normal(0, noise * img.std(), img.shape), 0, 255).astype(np.uint8)
    # the same perfect maps: only the image's noise differs
    s = score_block(noisy, voxel_size_nm=(10.0, 10.0, 10.0), maps=perfect_maps(dense),
                    synapse_reference_per_um3=3.0)  # fmt: skip
    snr = s.details["imaging_quality"]["snr"]
    measured = s.details["synapse_traceability"]["score"]
    assert 0.9 < measured <= 1  # still computed, and kept in the details
    assert s.membrane_integrity > 0.8  # the other scores stay judged
    if noise == 0:
        assert snr > SYNAPSE_MIN_SNR
    if noise == 3.0:
        assert snr < SYNAPSE_MIN_SNR
    if snr < SYNAPSE_MIN_SNR:
        assert math.isnan(s.synapse_traceability)
        assert "synapse_traceability:too_noisy" in s.flags
    else:
        assert s.synapse_traceability == measured
        assert "synapse_traceability:too_noisy" not in s.flags


_DENSE = []


def _dense():
    if not _DENSE:
        _DENSE.append(synthetic_neuropil((64, 128, 128), voxel_size_nm=10.0, seed=1,
                                         params=NeuropilParams(synapse_density_per_um3=4)))  # fmt: skip
    return _DENSE[0]


@pytest.mark.parametrize("sigma_px", [0.0, 1.0, 2.5, 6.0])
def test_membrane_scores_are_judged_only_below_the_blur_limit(sigma_px):
    from scipy import ndimage

    from emqc.scoring import MEMBRANE_MAX_BLUR

    dense = _dense()
    img = ndimage.gaussian_filter(dense.image.astype(np.float32), (0, sigma_px, sigma_px))
    s = score_block(np.clip(img, 0, 255).astype(np.uint8), voxel_size_nm=(10.0, 10.0, 10.0),
                    maps=perfect_maps(dense), synapse_reference_per_um3=3.0)  # fmt: skip
    blur = s.details["imaging_quality"]["blur_effect"]
    if sigma_px == 0:
        assert blur < MEMBRANE_MAX_BLUR
    if sigma_px == 6.0:
        assert blur > MEMBRANE_MAX_BLUR
    for name in ("membrane_integrity", "edema"):
        measured = s.details[name]["score"]
        assert np.isfinite(measured)  # computed, and kept in the details
        if blur > MEMBRANE_MAX_BLUR:
            assert math.isnan(getattr(s, name)) and f"{name}:too_blurred" in s.flags
        else:
            assert getattr(s, name) == measured and f"{name}:too_blurred" not in s.flags
    assert s.synapse_traceability > 0.9  # blur does not gate synapse traceability
