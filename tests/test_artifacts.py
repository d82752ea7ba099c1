"""Imaging artifacts (emqc.damage.ARTIFACTS): they change the image as the microscope would,
and never the tissue (labels).

The contract shared with the damage simulators (identity at 0, determinism, errors,
anisotropic voxels) is tested in test_damage.py; here each artifact's own physics.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from emqc.damage import ARTIFACTS
from emqc.synth import synthetic_neuropil

LEVELS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@pytest.fixture(scope="module")
def real(medulla):
    crop = (slice(167, 215), slice(40, 104), slice(40, 104))
    return medulla.raw[crop], medulla.labels["neuron_ids"][crop], medulla.voxel_size_nm


@pytest.fixture(scope="module")
def synth():
    vol = synthetic_neuropil((24, 64, 64), voxel_size_nm=(20.0, 10.0, 10.0), seed=4)
    return vol.image, vol.cell_ids, vol.voxel_size_nm


@pytest.fixture(params=["real", "synth"])
def volume(request):
    return request.getfixturevalue(request.param)


def _sweep(volume, name, seed=0):
    image, labels, voxel = volume
    return [
        ARTIFACTS[name](image, labels=labels, voxel_size_nm=voxel, severity=s, seed=seed)
        for s in LEVELS
    ]


def _increasing(values, what):
    assert all(b > a for a, b in zip(values, values[1:], strict=False)), f"{what}: {values}"


@pytest.mark.parametrize("name", sorted(ARTIFACTS))
def test_artifacts_never_change_labels(volume, name):
    image, labels, voxel = volume
    for out in _sweep(volume, name):
        np.testing.assert_array_equal(out.labels, labels)
        np.testing.assert_array_equal(out.extracellular, labels == 0)
        assert out.membrane_broken is None
    bare = ARTIFACTS[name](image, voxel_size_nm=voxel, severity=0.5, seed=0)
    assert bare.labels is None and bare.extracellular is None
    assert bare.image.shape == image.shape


def test_noise_std_follows_severity(volume):
    image = volume[0].astype(float)
    outs = _sweep(volume, "noise")
    std = [float((o.image - image).std()) for o in outs]
    _increasing(std, "noise std")
    for out, measured in zip(outs[1:], std[1:], strict=True):
        assert measured == pytest.approx(out.params["noise_std"], rel=0.15)
        assert out.params["snr"] == pytest.approx(1 / out.params["severity"], rel=1e-6)
    # Poisson: brighter voxels get more noise than darker ones.
    diff = outs[-1].image - image
    bright, dark = image > np.percentile(image, 75), image < np.percentile(image, 25)
    assert diff[bright].std() > diff[dark].std()


def _column_power(image):
    """Power of the column means (mean over y) after removing their trend across x."""
    cols = image.astype(float).mean(axis=1)
    return float(((cols - ndi.uniform_filter1d(cols, 15, axis=1)) ** 2).mean())


def test_curtaining_stripes_run_along_y(volume):
    image = volume[0]
    outs = _sweep(volume, "curtaining")
    _increasing([_column_power(o.image) for o in outs], "column-wise stripe power")
    diff = outs[3].image.astype(float) - image
    # Constant down each column (up to rounding and clipping), varying across x.
    assert np.median(diff.std(axis=1)) < 0.6
    assert diff.mean(axis=1).std() > 0.5 * outs[3].params["amplitude"]
    # Row means (along x) hardly change: the stripes are vertical only.
    row_shift = outs[3].image.astype(float).mean(axis=2) - image.mean(axis=2)
    assert row_shift.std() < 0.3 * outs[3].params["amplitude"]


def test_contrast_inversion_flips_polarity(volume):
    image = volume[0].astype(float).ravel()
    for out in _sweep(volume, "contrast_inversion")[1:]:
        assert np.corrcoef(out.image.astype(float).ravel(), image)[0, 1] < -0.999
        np.testing.assert_array_equal(out.image, 255 - volume[0])


def test_resolution_coarsens(volume):
    image, _, voxel = volume
    outs = _sweep(volume, "resolution")
    detail = [float((np.diff(o.image.astype(float), axis=2) ** 2).mean()) for o in outs]
    _increasing([-d for d in detail], "fine detail (should fall)")
    assert outs[-1].params["effective_voxel_size_nm"] == [2 * v for v in voxel]
    for out in outs:  # box means and linear interpolation keep the mean grey level
        assert abs(float(out.image.mean()) - float(image.mean())) < 1.0


def test_resolution_16nm_removes_8nm_detail_keeps_ramps():
    x = np.arange(16)
    stripes = np.broadcast_to(np.where(x % 2, 200, 0), (4, 16, 16)).astype(np.uint8)
    out = ARTIFACTS["resolution"](stripes, voxel_size_nm=8.0, severity=1.0, seed=0)
    assert out.params["effective_voxel_size_nm"] == [16.0, 16.0, 16.0]
    # Each 16 nm voxel averages one dark and one bright 8 nm voxel: the stripes are gone.
    assert np.abs(out.image.astype(int) - 100).max() <= 1
    ramp = np.broadcast_to(20 + 10 * x, (4, 16, 16)).astype(np.uint8)
    out = ARTIFACTS["resolution"](ramp, voxel_size_nm=8.0, severity=1.0, seed=0)
    # A linear ramp survives binning and linear interpolation (away from the clamped edges).
    np.testing.assert_allclose(out.image[..., 1:-1], ramp[..., 1:-1], atol=1)


def test_charging_and_defocus(volume):
    image = volume[0]
    charged = _sweep(volume, "charging")
    _increasing([float(o.image.mean()) for o in charged], "mean intensity under charging")
    assert all((o.image >= image).all() for o in charged)  # charging only brightens
    blurred = _sweep(volume, "defocus")
    detail = [float((np.diff(o.image.astype(float), axis=2) ** 2).mean()) for o in blurred]
    _increasing([-d for d in detail], "in-plane detail under defocus (should fall)")
