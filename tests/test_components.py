"""emqc._components: the fast connected-component labelling gives scipy's labels."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage as ndi

from emqc._components import _connectivity, label

_IN_PLANE = ndi.generate_binary_structure(3, 1)
_IN_PLANE[0] = _IN_PLANE[2] = False
STRUCTURES_3D = {
    "default": None,
    "faces": ndi.generate_binary_structure(3, 1),
    "all 26": np.ones((3, 3, 3), bool),
    "in-plane": _IN_PLANE,
    "18 (scipy)": ndi.generate_binary_structure(3, 2),
}
STRUCTURES_2D = {
    "default": None,
    "all 8": np.ones((3, 3), bool),
    "diagonal only (scipy)": np.eye(3, dtype=bool),
}


def _dense(shape_strategy):
    return st.floats(0.1, 0.9).flatmap(
        lambda p: st.tuples(shape_strategy, st.integers(0, 2**16)).map(
            lambda a: np.random.default_rng(a[1]).random(a[0]) < p
        )
    )


CASES = [(3, name, s) for name, s in STRUCTURES_3D.items()] + [
    (2, name, s) for name, s in STRUCTURES_2D.items()
]


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(CASES).flatmap(
        lambda case: st.tuples(st.just(case), _dense(st.tuples(*[st.integers(0, 12)] * case[0])))
    )
)
def test_labels_equal_scipys(case_and_mask):
    (_, _, structure), mask = case_and_mask
    expected, n_expected = ndi.label(mask, structure=structure)
    got, n = label(mask, structure=structure)
    assert got.dtype == np.int32 and n == n_expected
    np.testing.assert_array_equal(got, expected)


@given(arrays(np.int16, (3, 4, 5), elements=st.integers(-3, 3)))
def test_nonzero_values_are_foreground_whatever_their_value(values):
    # cc3d would label each value apart; scipy (and this) takes every nonzero voxel.
    expected, n_expected = ndi.label(values)
    got, n = label(values)
    assert n == n_expected
    np.testing.assert_array_equal(got, expected)


def test_the_structures_emqc_uses_go_to_cc3d_and_others_to_scipy():
    assert _connectivity(3, None) == 6
    assert _connectivity(3, np.ones((3, 3, 3), bool)) == 26
    assert _connectivity(3, _IN_PLANE) == "sections"
    assert _connectivity(2, None) == 4
    assert _connectivity(3, ndi.generate_binary_structure(3, 2)) is None
    assert _connectivity(1, None) is None


def test_cases_cc3d_alone_gets_wrong():
    # cc3d 4.1.1 puts a background pixel into a component of this bool image
    # (8-connectivity), numbers some components out of scipy's order, and mislabels
    # an image with an axis of one voxel.
    image = np.array([[0, 0, 0, 1, 0], [0, 0, 0, 1, 0], [0, 0, 1, 0, 1], [1, 0, 0, 0, 1]], bool)
    ordering = np.array([[0, 0, 1], [1, 0, 1]], bool)
    thin = np.array([[0, 0, 0, 1]], bool)
    for mask in (image, ordering, thin):
        expected = ndi.label(mask, structure=np.ones((3, 3), bool))
        got = label(mask, structure=np.ones((3, 3), bool))
        np.testing.assert_array_equal(got[0], expected[0])
        assert got[1] == expected[1]
