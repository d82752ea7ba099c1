"""emqc.baseline: the Hessian ridge boundary map, dark-blob synapses, and the baseline segmentation."""

from __future__ import annotations

import numpy as np
import pytest

from emqc import datasets
from emqc.baseline import (
    baseline_segmentation,
    dark_blob_synapses,
    normalize_intensity,
    predict,
    ridge_boundary,
)
from emqc.evaluation import average_precision, boundaries_from_labels, voi
from emqc.synth import NeuropilParams, synthetic_neuropil

ISO = (10.0, 10.0, 10.0)


@pytest.fixture(scope="module")
def tissue():
    return synthetic_neuropil((24, 64, 64), voxel_size_nm=ISO, seed=7)


@pytest.fixture(scope="module")
def sections():
    params = NeuropilParams(synapse_density_per_um3=8.0)
    return synthetic_neuropil((12, 256, 256), voxel_size_nm=(40.0, 6.0, 6.0), seed=2, params=params)


def _ap(prob, vol, tol):
    return average_precision(prob, vol.membrane, voxel_size_nm=vol.voxel_size_nm, tolerance_nm=tol)


@pytest.mark.parametrize("which", ["tissue", "sections"])
def test_ridge_map_finds_membranes(which, request):
    vol = request.getfixturevalue(which)
    b = ridge_boundary(vol.image, voxel_size_nm=vol.voxel_size_nm)
    assert b.dtype == np.float32 and b.shape == vol.image.shape
    assert 0 <= b.min() and b.max() <= 1
    rng = np.random.default_rng(0)
    chance = _ap(rng.random(b.shape, dtype=np.float32), vol, 10.0)
    assert _ap(b, vol, 10.0) > max(0.7, chance + 0.4)


def test_ridge_map_falls_with_noise(tissue):
    rng = np.random.default_rng(1)
    aps = []
    for noise in (0, 20, 40, 80):
        img = np.clip(tissue.image + rng.normal(0, noise, tissue.image.shape), 0, 255)
        aps.append(_ap(ridge_boundary(img.astype(np.uint8), voxel_size_nm=ISO), tissue, 10.0))
    assert aps == sorted(aps, reverse=True) and aps[0] - aps[-1] > 0.1


def test_ridge_map_ignores_gain_offset_and_polarity(tissue):
    img = tissue.image.astype(np.float32)
    b = ridge_boundary(img, voxel_size_nm=ISO)
    np.testing.assert_allclose(ridge_boundary(3 * img + 40, voxel_size_nm=ISO), b, atol=1e-4)
    inverted = ridge_boundary(255 - img, voxel_size_nm=ISO, black_ridges=False)
    np.testing.assert_allclose(inverted, b, atol=1e-4)
    assert not np.allclose(ridge_boundary(255 - img, voxel_size_nm=ISO), b, atol=0.1)


def test_planar_ridge_map_treats_sections_independently(sections):
    vox = sections.voxel_size_nm
    whole = ridge_boundary(sections.image, voxel_size_nm=vox)
    one = ridge_boundary(sections.image[5:6], voxel_size_nm=vox)
    # Same section, different intensity range of the block: equal up to the normalisation.
    assert np.corrcoef(whole[5].ravel(), one[0].ravel())[0, 1] > 0.99


def test_synapse_score_prefers_synapses_over_membranes(sections):
    s = dark_blob_synapses(sections.image, voxel_size_nm=sections.voxel_size_nm)
    assert s.dtype == np.float32 and 0 <= s.min() and s.max() <= 1
    syn = sections.synapses > 0
    assert syn.any()
    assert s[syn].mean() > s[sections.membrane & ~syn].mean() + 0.1


def test_thin_dark_lines_are_not_synapses():
    img = np.full((1, 64, 64), 200, np.uint8)
    img[:, :, 10:12] = 30  # 10 nm membrane
    img[:, 30:50, 30:44] = 30  # 70 nm thick density
    s = dark_blob_synapses(img, voxel_size_nm=(50.0, 5.0, 5.0))
    assert s[0, 40, 37] > 0.5 > s[0, 40, 11]
    thick = dark_blob_synapses(img, voxel_size_nm=(50.0, 5.0, 5.0), min_thickness_nm=100)
    assert thick[0, 40, 37] < 0.5


def test_predict_and_baseline_segmentation(tissue):
    maps = predict(tissue.image, tissue.voxel_size_nm, "synthetic")
    assert set(maps) == {"boundary", "synapse"}
    seg = baseline_segmentation(tissue.image, voxel_size_nm=ISO)
    assert seg.dtype == np.uint32 and seg.min() >= 1
    assert voi(seg, tissue.cell_ids).total < 1.5


def test_bad_input_names_the_parameter(tissue):
    img = tissue.image
    with pytest.raises(ValueError, match="raw"):
        ridge_boundary(img[0], voxel_size_nm=ISO)
    with pytest.raises(TypeError, match="scales_nm"):
        ridge_boundary(img, voxel_size_nm=ISO, scales_nm=20.0)
    with pytest.raises(ValueError, match="scales_nm"):
        ridge_boundary(img, voxel_size_nm=ISO, scales_nm=(0,))
    with pytest.raises(TypeError, match="black_ridges"):
        ridge_boundary(img, voxel_size_nm=ISO, black_ridges="yes")
    with pytest.raises(ValueError, match="voxel_size_nm"):
        dark_blob_synapses(img, voxel_size_nm=(10.0, -1.0, 10.0))
    with pytest.raises(ValueError, match="min_thickness_nm"):
        dark_blob_synapses(img, voxel_size_nm=ISO, min_thickness_nm=-5)
    with pytest.raises(TypeError, match="raw"):
        normalize_intensity(img.astype(bool))


@pytest.mark.realdata
def test_baseline_on_real_crops(medulla, vnc, isbi):
    """Held-out crops: the baseline is far above chance (figures in BENCHMARKS.md)."""
    ho = datasets.split_z("medulla", "heldout")
    raw = medulla.raw[ho][:32, :128, :128]
    ids = medulla.labels["neuron_ids"][ho][:32, :128, :128]
    kw = dict(voxel_size_nm=medulla.voxel_size_nm, tolerance_nm=20)
    true = boundaries_from_labels(ids)
    ap = average_precision(ridge_boundary(raw, voxel_size_nm=medulla.voxel_size_nm), true, **kw)
    # Darkness alone also finds mitochondria and glia: the ridge filter must beat it.
    assert ap > 0.8 and ap > average_precision(1 - normalize_intensity(raw), true, **kw) + 0.2
    raw = isbi.raw[24:27, :256, :256]
    mem = isbi.labels["membranes"][24:27, :256, :256] > 0
    b = ridge_boundary(raw, voxel_size_nm=isbi.voxel_size_nm)
    assert average_precision(b, mem, voxel_size_nm=isbi.voxel_size_nm, tolerance_nm=0) > 0.6
    raw = vnc.raw[15:18, :512, :512]
    syn = vnc.labels["synapses"][15:18, :512, :512] > 0
    s = dark_blob_synapses(raw, voxel_size_nm=vnc.voxel_size_nm)
    assert s[syn].mean() > np.percentile(s, 90)
