"""Imaging quality detects noise, blur, curtaining and charging, monotonically, and flags extremes.

Degradations are added to a small seeded *synthetic* image and to a crop of the real
medulla cube (skipped without the data); each measure must move one way as the
artifact grows, and stay quiet for the artifacts it does not measure.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from emqc.metrics import THRESHOLDS, imaging_quality
from emqc.synth import synthetic_neuropil

VOXEL = 10.0


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A synthetic 0.32 x 1.28 x 1.28 um FIB-SEM-like block at 10 nm (noise std 6)."""
    return synthetic_neuropil((32, 128, 128), voxel_size_nm=VOXEL, seed=0).image


def to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def add_noise(img, std, seed=0):
    return to_uint8(img + np.random.default_rng(seed).normal(0, std, img.shape))


def add_blur(img, sigma_px):
    return to_uint8(ndi.gaussian_filter(img.astype(float), (0, sigma_px, sigma_px)))


def add_stripes(img, amplitude, seed=0):
    """FIB curtaining: a random profile across x, constant along y and z."""
    profile = ndi.gaussian_filter1d(np.random.default_rng(seed).normal(size=img.shape[2]), 1.5)
    return to_uint8(img + amplitude * profile[None, None, :] / profile.std())


def add_gradient(img, amplitude):
    """Charging: a brightness ramp of ``amplitude`` grey levels across the block."""
    return to_uint8(img + amplitude * np.linspace(-0.5, 0.5, img.shape[2]))


def increasing(values) -> bool:
    return all(b > a for a, b in zip(values, values[1:], strict=False))


def measure(images, key):
    results = [imaging_quality(i, voxel_size_nm=VOXEL) for i in images]
    return results, [getattr(r, key) for r in results]


def test_clean_block_is_not_flagged(image):
    q = imaging_quality(image, voxel_size_nm=VOXEL)
    assert q.valid and not q.flags and not q.too_poor_to_judge
    assert q.score > 0.8 and q.snr > 3 and 0 <= q.blur_effect < 0.5
    assert 4 < q.noise_sigma < 8  # the generator's noise std is 6 grey levels


def test_noise_lowers_snr_monotonically_and_is_flagged(image):
    results, snr = measure([add_noise(image, s) for s in (0, 5, 10, 20, 40, 80)], "snr")
    assert increasing(snr[::-1])
    assert increasing([r.noise_sigma for r in results])
    assert not results[0].noisy and results[-2].noisy and results[-1].too_poor_to_judge


def test_blur_raises_blur_effect_monotonically_and_is_flagged(image):
    results, blur = measure([add_blur(image, s) for s in (0, 0.5, 1, 2, 3, 5)], "blur_effect")
    assert increasing(blur)
    assert not results[0].blurred and results[-2].blurred and results[-1].too_poor_to_judge
    assert not any(r.curtaining or r.charged for r in results)


@pytest.mark.parametrize("axis", ["y", "x"])
def test_curtaining_raises_stripe_ratio_monotonically_and_is_flagged(image, axis):
    def stripes(img, amplitude):
        if axis == "y":  # column-constant: the stripes run along y
            return add_stripes(img, amplitude)
        return add_stripes(img.transpose(0, 2, 1), amplitude).transpose(0, 2, 1)

    amplitudes = (0, 10, 20, 30, 40, 80)  # grey levels (std); the image's std is about 30
    results, ratio = measure([stripes(image, a) for a in amplitudes], "stripe_ratio")
    assert increasing(ratio)
    assert not results[0].curtaining and results[-3].curtaining and results[-1].too_poor_to_judge
    assert all(r.stripe_axis == axis for r in results[2:])


def test_charging_raises_the_trend_share_monotonically_and_is_flagged(image):
    amplitudes = (0, 20, 40, 80, 160, 320)
    results, charging = measure([add_gradient(image, a) for a in amplitudes], "charging")
    assert increasing(charging)
    assert not results[0].charged and results[-2].charged and results[-1].too_poor_to_judge
    assert not any(r.curtaining for r in results)


def test_saturation_is_flagged(image):
    q = imaging_quality(to_uint8(image.astype(float) * 3 - 200), voxel_size_nm=VOXEL)
    assert q.saturated and q.saturated_fraction > THRESHOLDS["saturated_fraction"][0]


def test_constant_block_is_too_poor_and_not_valid():
    q = imaging_quality(np.full((8, 32, 32), 17, np.uint8), voxel_size_nm=VOXEL)
    assert not q.valid and math.isnan(q.score) and q.too_poor_to_judge and "constant" in q.flags


def test_any_real_dtype_is_read(image):
    as_float = imaging_quality(image.astype(np.float32), voxel_size_nm=VOXEL)
    as_uint16 = imaging_quality(image.astype(np.uint16) * 256, voxel_size_nm=VOXEL)
    assert as_float.valid and as_uint16.valid
    assert as_uint16.snr == pytest.approx(as_float.snr, rel=0.1)


@pytest.mark.parametrize(
    "raw, error",
    [
        (np.zeros((32, 32), np.uint8), ValueError),
        (np.zeros((4, 4, 64), np.uint8), ValueError),
        (np.zeros((4, 32, 32), bool), TypeError),
        (np.zeros((4, 32, 32), complex), TypeError),
    ],
)
def test_bad_images_raise(raw, error):
    with pytest.raises(error):
        imaging_quality(raw, voxel_size_nm=VOXEL)


@pytest.mark.realdata
def test_real_cube_is_clean_and_its_degradations_are_caught(medulla):
    raw = medulla.raw[80:176, 50:146, 100:196]
    voxel = medulla.voxel_size_nm
    clean = imaging_quality(raw, voxel_size_nm=voxel)
    assert not clean.flags and not clean.too_poor_to_judge, clean
    assert imaging_quality(add_noise(raw, 80), voxel_size_nm=voxel).too_poor_to_judge
    assert imaging_quality(add_blur(raw, 3), voxel_size_nm=voxel).blurred
    assert imaging_quality(add_stripes(raw, 10), voxel_size_nm=voxel).curtaining
    assert imaging_quality(add_gradient(raw, 160), voxel_size_nm=voxel).charged
