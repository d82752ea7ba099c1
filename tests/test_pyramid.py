"""Pyramid planning and 2x block-mean downsampling."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emqc.pyramid import downsample_mean, level_translation, plan_levels


def reference_mean(block: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    """Independent reference: mean over the voxels that exist in each box, round half up."""
    out_shape = tuple(-(-n // f) for n, f in zip(block.shape, factors, strict=True))
    out = np.empty(out_shape, dtype=np.uint8)
    for idx in np.ndindex(*out_shape):
        box = block[tuple(slice(i * f, (i + 1) * f) for i, f in zip(idx, factors, strict=True))]
        out[idx] = int(np.floor(box.astype(np.float64).mean() + 0.5))
    return out


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(*[st.integers(1, 9)] * 3),
    factors=st.sampled_from([(2, 2, 2), (1, 2, 2), (2, 1, 1)]),
    seed=st.integers(0, 2**32 - 1),
)
def test_downsample_mean_matches_reference_including_odd_edges(shape, factors, seed):
    block = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    np.testing.assert_array_equal(downsample_mean(block, factors), reference_mean(block, factors))


def test_downsample_keeps_constant_and_rounds_half_up():
    assert (downsample_mean(np.full((4, 4, 4), 7, np.uint8), (2, 2, 2)) == 7).all()
    block = np.zeros((2, 2, 2), np.uint8)
    block[0, 0, :] = 1  # mean 2/8 = 0.25 -> 0
    assert downsample_mean(block, (2, 2, 2))[0, 0, 0] == 0
    block[:] = [[[0, 1], [0, 1]], [[0, 1], [0, 1]]]  # mean 0.5 -> 1 (half up)
    assert downsample_mean(block, (2, 2, 2))[0, 0, 0] == 1


def test_plan_isotropic_halves_every_axis_until_min_size():
    levels = plan_levels((250, 250, 250), (10.0, 10.0, 10.0), min_size=64)
    assert [lv.shape for lv in levels] == [(250, 250, 250), (125, 125, 125), (63, 63, 63)]
    assert [lv.voxel_size_nm for lv in levels][-1] == (40.0, 40.0, 40.0)
    assert all(lv.factors == (2, 2, 2) for lv in levels[1:])


def test_plan_anisotropic_keeps_z_until_xy_catches_up():
    levels = plan_levels((20, 1024, 1024), (50.0, 4.6, 4.6), min_size=64)
    factors = [lv.factors for lv in levels[1:]]
    # y,x halve from 4.6 to 36.8 nm; z (50 nm) joins once it is within 1.5x of the finest axis
    assert factors[:3] == [(1, 2, 2)] * 3
    assert factors[3] == (2, 2, 2)
    assert max(levels[-1].shape) <= 64


def test_plan_never_halves_a_singleton_axis():
    levels = plan_levels((1, 300, 300), (10.0, 10.0, 10.0))
    assert all(lv.shape[0] == 1 for lv in levels)


def test_translation_centres_coarse_voxels():
    assert level_translation((20.0, 20.0, 20.0), (10.0, 10.0, 10.0)) == [5.0, 5.0, 5.0]


def test_plan_rejects_bad_min_size():
    with pytest.raises(ValueError, match="min_size"):
        plan_levels((10, 10, 10), (1.0, 1.0, 1.0), min_size=0)
