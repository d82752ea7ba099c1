"""emqc._distance: the fast distance transform agrees with scipy's."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage as ndi

from emqc._distance import distance_nm
from emqc.segmentation import watershed_from_boundaries

VOXELS = st.tuples(*[st.sampled_from([4.0, 8.0, 10.0, 50.0])] * 3)


@settings(max_examples=40, deadline=None)
@given(arrays(bool, st.tuples(*[st.integers(1, 9)] * 3)), VOXELS)
def test_equals_scipy_wherever_there_is_a_false_voxel(inside, voxel):
    if inside.all():
        inside.flat[0] = False
    expected = ndi.distance_transform_edt(inside, sampling=voxel)
    got = distance_nm(inside, voxel)
    assert got.dtype == np.float32 and got.shape == inside.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3)


def test_two_dimensional_and_strided_input():
    inside = np.random.default_rng(1).random((30, 40)) > 0.2
    np.testing.assert_allclose(
        distance_nm(inside[::2, 1:], (5.0, 9.0)),
        ndi.distance_transform_edt(inside[::2, 1:], sampling=(5.0, 9.0)),
        rtol=1e-5,
    )


def test_no_false_voxel_is_infinitely_far_and_none_inside_is_zero():
    assert np.isposinf(distance_nm(np.ones((2, 3, 4), bool), (1.0, 1.0, 1.0))).all()
    assert not distance_nm(np.zeros((2, 3, 4), bool), (1.0, 1.0, 1.0)).any()
    assert distance_nm(np.ones((0, 3, 4), bool), (1.0, 1.0, 1.0)).shape == (0, 3, 4)


def test_one_voxel_size_per_axis():
    with pytest.raises(ValueError, match="3 values for a 2-D array"):
        distance_nm(np.ones((3, 3), bool), (1.0, 1.0, 1.0))


@pytest.mark.parametrize("voxel", [(10.0, 10.0, 10.0), (50.0, 5.0, 5.0)])
def test_a_block_without_boundary_is_one_supervoxel_per_part(voxel):
    seg = watershed_from_boundaries(np.zeros((4, 20, 20), np.float32), voxel_size_nm=voxel)
    # Isotropic: one supervoxel; serial sections: one per section.
    assert int(seg.max()) == (1 if voxel[0] == voxel[1] else 4)
    assert seg.min() == 1
