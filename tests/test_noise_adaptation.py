"""Blocks noisier than the networks' training range are smoothed into it first."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from emqc.metrics import noise_sigma
from emqc.models import Predictor, UNet, UNetConfig
from emqc.models._infer import noise_reduction, smoothing_for
from emqc.synth import synthetic_neuropil


def _predictor(limit):
    torch.manual_seed(0)
    net = UNet(UNetConfig(dims=3, heads=("boundary",), base_channels=4, depth=2,
                          working_voxel_nm=10.0)).eval()  # fmt: skip
    return Predictor(net, tile=32, halo=8, max_relative_noise=limit)


@pytest.fixture(scope="module")
def neuropil() -> np.ndarray:
    return synthetic_neuropil((24, 64, 64), voxel_size_nm=10.0, seed=3).image


@given(sigma=st.floats(2.0, 30.0), seed=st.integers(0, 2**16))
@settings(max_examples=20, deadline=None)
def test_noise_sigma_recovers_white_noise_on_a_smooth_image(sigma, seed):
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.normal(0, 40, (8, 64, 64)), 6) + 100
    noisy = smooth + rng.normal(0, sigma, smooth.shape)
    assert noise_sigma(noisy) == pytest.approx(sigma, rel=0.12)


def test_clean_blocks_are_left_alone(neuropil):
    p = _predictor(0.25)
    assert p.smoothing_sigma(neuropil) == 0.0
    same = _predictor(None).predict(neuropil, voxel_size_nm=(10.0, 10.0, 10.0))
    ours = p.predict(neuropil, voxel_size_nm=(10.0, 10.0, 10.0))
    np.testing.assert_array_equal(same["boundary"], ours["boundary"])


@pytest.mark.parametrize("noise", [0.5, 1.0, 2.0])
def test_noisy_blocks_are_smoothed_just_enough(neuropil, noise):
    rng = np.random.default_rng(1)
    img = neuropil.astype(np.float64)
    field = rng.normal(0, noise * img.std(), img.shape)
    noisy = np.clip(img + field, 0, 255).astype(np.uint8)
    p = _predictor(0.25)
    sigma = p.smoothing_sigma(noisy)
    relative = noise_sigma(noisy) / noisy.std()
    assert sigma > 0 and relative > 0.25
    # The noise itself falls by exactly the factor that takes it to the limit.
    kept = ndimage.gaussian_filter(field, sigma).std() / field.std()
    assert kept == pytest.approx(0.25 / relative, rel=0.05)
    assert kept == pytest.approx(noise_reduction(sigma, dims=3), rel=0.05)
    assert _predictor(None).smoothing_sigma(noisy) == 0.0


def test_more_noise_gets_wider_smoothing(neuropil):
    rng = np.random.default_rng(2)
    img = neuropil.astype(np.float64)
    sigmas = [
        _predictor(0.25).smoothing_sigma(
            np.clip(img + rng.normal(0, k * img.std(), img.shape), 0, 255).astype(np.uint8)
        )
        for k in (0.5, 1.0, 2.0)
    ]
    assert 0 < sigmas[0] < sigmas[1] < sigmas[2]


@given(factor=st.floats(0.01, 0.99), dims=st.sampled_from([2, 3]))
@settings(max_examples=30, deadline=None)
def test_smoothing_for_inverts_noise_reduction(factor, dims):
    sigma = smoothing_for(factor, dims=dims)
    assert noise_reduction(sigma, dims=dims) == pytest.approx(factor, rel=1e-3, abs=1e-4)
