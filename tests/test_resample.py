"""resample_linear against the scipy call it replaces."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from emqc._resample import resample_linear, zoomed_shape

shapes = st.tuples(*[st.integers(1, 12)] * 3)
zooms = st.tuples(*[st.sampled_from([0.25, 0.5, 0.8, 1.0, 1.25, 1.6])] * 3)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(shape=shapes, zoom=zooms, seed=st.integers(0, 2**16))
def test_float_resampling_equals_scipy_zoom_order_1(shape, zoom, seed):
    image = np.random.default_rng(seed).random(shape, dtype=np.float32)
    expected = ndimage.zoom(image, zoom, order=1, grid_mode=True, mode="nearest")
    if min(expected.shape) < 1:
        return
    assert zoomed_shape(shape, zoom) == expected.shape
    got = resample_linear(image, expected.shape)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=2e-5, rtol=0)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16])
def test_integer_images_are_rounded_as_scipy_rounds_them(dtype):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(3)
    image = rng.integers(info.min, info.max, size=(20, 24, 28), endpoint=True).astype(dtype)
    for zoom in [(0.8, 0.8, 0.8), (1.0, 0.5, 0.5), (1.6, 1.25, 0.8)]:
        expected = ndimage.zoom(image, zoom, order=1, grid_mode=True, mode="nearest")
        got = resample_linear(image, expected.shape)
        assert got.dtype == dtype
        diff = np.abs(got.astype(np.int64) - expected.astype(np.int64))
        # float32 against scipy's float64: a value near a tie may round the other way,
        # by one step; rarely for 8-bit grey values, more often for 16-bit ones.
        assert diff.max() <= 1 and (diff > 0).mean() < (1e-3 if dtype == np.uint8 else 0.02)


def test_in_plane_resampling_keeps_each_section_apart():
    image = np.zeros((3, 8, 8), np.float32)
    image[1] = 1.0
    got = resample_linear(image, (3, 4, 4))
    np.testing.assert_array_equal(got[1], 1.0)
    np.testing.assert_array_equal(got[[0, 2]], 0.0)


def test_same_shape_is_a_copy_and_bad_inputs_are_refused():
    image = np.ones((2, 3, 4), np.float32)
    out = resample_linear(image, image.shape)
    assert out is not image and np.array_equal(out, image)
    with pytest.raises(ValueError, match="3-D"):
        resample_linear(image[0], (2, 3))
    with pytest.raises(ValueError, match="empty"):
        resample_linear(image, (0, 3, 4))
    with pytest.raises(TypeError, match="float or integer"):
        resample_linear(image > 0, (4, 6, 8))
