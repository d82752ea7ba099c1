"""The stated rule that turns any supported voxel type into uint8."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emqc.errors import UnsupportedDtypeError
from emqc.intensity import (
    apply_rule,
    block_stats,
    check_dtype,
    explicit_rule,
    merge_stats,
    rule_from_stats,
)


def rule_for(volume: np.ndarray, splits: int = 1):
    parts = [block_stats(p) for p in np.array_split(volume, splits, axis=0) if p.size]
    return rule_from_stats(volume.dtype, merge_stats(parts), where="test.tif")


def test_uint8_is_stored_unchanged():
    v = np.arange(256, dtype=np.uint8).reshape(4, 8, 8)
    rule = rule_from_stats(v.dtype, None, where="x")
    assert rule.kind == "identity"
    np.testing.assert_array_equal(apply_rule(v, rule), v)


def test_8bit_values_in_a_16bit_container_are_stored_unchanged():
    v = np.arange(0, 256, dtype=np.uint16).reshape(4, 8, 8)
    rule = rule_for(v, 2)
    assert rule.kind == "identity" and rule.source_dtype == "uint16"
    np.testing.assert_array_equal(apply_rule(v, rule), v.astype(np.uint8))
    assert rule_for(v + 1).kind == "linear"  # 256 does not fit


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    splits=st.integers(1, 5),
    dtype=st.sampled_from(["uint16", "int16"]),
)
def test_16bit_rule_is_blockwise_invariant_monotone_and_in_range(seed, splits, dtype):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    v = rng.integers(max(info.min, -5000), min(info.max, 60000), size=(6, 9, 7)).astype(dtype)
    rule = rule_for(v, splits)
    assert rule == rule_for(v, 1)  # chunking never changes the rule
    out = apply_rule(v, rule)
    assert out.dtype == np.uint8
    order = np.argsort(v.ravel(), kind="stable")
    assert (np.diff(out.ravel()[order].astype(int)) >= 0).all()  # monotone


def test_16bit_percentiles_ignore_rare_hot_pixels():
    rng = np.random.default_rng(0)
    v = rng.integers(1000, 5000, size=(20, 100, 100)).astype(np.uint16)
    v[0, 0, :3] = 65535  # hot pixels: 3 of 200,000 voxels
    rule = rule_for(v)
    assert 4900 <= rule.hi <= 5000 and 1000 <= rule.lo <= 1100
    out = apply_rule(v, rule)
    assert out.min() == 0 and out.max() == 255 and 100 < out.mean() < 155


def test_float_without_nan_uses_min_max():
    v = np.linspace(-1.0, 3.0, 1000, dtype=np.float32).reshape(10, 10, 10)
    rule = rule_for(v, 3)
    assert (rule.lo, rule.hi) == (-1.0, 3.0)
    out = apply_rule(v, rule)
    assert out[0, 0, 0] == 0 and out[-1, -1, -1] == 255


def test_float_with_nan_is_refused_naming_the_file():
    v = np.ones((3, 3, 3), np.float32)
    v[1, 1, 1] = np.nan
    with pytest.raises(UnsupportedDtypeError, match=r"test\.tif.*1 NaN"):
        rule_for(v)


@pytest.mark.parametrize(
    "dtype", [np.bool_, np.complex64, np.dtype([("r", "u1"), ("g", "u1"), ("b", "u1")])]
)
def test_bool_complex_and_rgb_records_are_refused(dtype):
    with pytest.raises(UnsupportedDtypeError, match="vol.mrc"):
        check_dtype(np.dtype(dtype), where="vol.mrc")


def test_explicit_range():
    rule = explicit_rule(np.uint16, 100, 200)
    np.testing.assert_array_equal(
        apply_rule(np.array([[[0, 100, 150, 200, 900]]], np.uint16), rule),
        [[[0, 0, 128, 255, 255]]],
    )
    with pytest.raises(ValueError, match="hi > lo"):
        explicit_rule(np.uint16, 5, 5)
