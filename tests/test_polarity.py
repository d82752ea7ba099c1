"""Contrast polarity: bright-membrane blocks are detected and inverted, or declared."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from emqc.cli import cli
from emqc.ingest import ingest
from emqc.models._methods import predict_working_grid
from emqc.polarity import POLARITY_MARGIN, inverted, membrane_confidence, probe_box
from emqc.scoring import SCORES, score_block
from emqc.scoring._run import score_volume
from emqc.sources._array import ArraySource
from emqc.synth import synthetic_neuropil
from emqc.testing import intensity_maps

VOX = (10.0, 10.0, 10.0)


@given(p=st.floats(0, 1), shape=st.tuples(*[st.integers(1, 6)] * 3))
@settings(max_examples=30, deadline=None)
def test_membrane_confidence_is_symmetric_and_in_range(p, shape):
    a = np.full(shape, p, np.float32)
    c = membrane_confidence(a)
    assert 0 <= c <= 1
    assert c == pytest.approx(membrane_confidence(1 - a), abs=1e-6)
    assert c == pytest.approx(abs(2 * p - 1), abs=1e-6)


@given(shape=st.tuples(*[st.integers(1, 300)] * 3), dims=st.sampled_from([2, 3]))
@settings(max_examples=50, deadline=None)
def test_probe_box_is_central_and_bounded(shape, dims):
    box = probe_box(shape, dims=dims, edge=128)
    for axis, (b, n) in enumerate(zip(box, shape, strict=True)):
        e = b.stop - b.start
        assert 0 <= b.start and b.stop <= n
        assert e == min(n, 4 if dims == 2 and axis == 0 else 128)
        assert abs(b.start - (n - b.stop)) <= 1  # centred


def test_inverted_is_255_minus_and_refuses_other_types():
    raw = np.array([[[0, 10, 255]]], np.uint8)
    np.testing.assert_array_equal(inverted(raw), [[[255, 245, 0]]])
    with pytest.raises(TypeError, match="uint8"):
        inverted(raw.astype(np.uint16))


@pytest.fixture(scope="module")
def real_block(medulla):
    """A 64³ block of the real cube's training part (well-preserved, dark membranes)."""
    return np.ascontiguousarray(medulla.raw[40:104, 60:124, 60:124])


def test_the_real_cube_is_read_as_recorded(real_block):
    maps = predict_working_grid(real_block, VOX, detect_polarity=True)
    assert not maps.polarity.inverted and not maps.polarity.uncertain
    assert maps.polarity.margin > POLARITY_MARGIN


def test_an_inverted_block_is_detected_and_scored_as_the_original(real_block):
    plain = predict_working_grid(real_block, VOX, detect_polarity=True)
    flipped = predict_working_grid(inverted(real_block), VOX, detect_polarity=True)
    assert flipped.polarity.inverted and flipped.polarity.source == "detected"
    assert flipped.polarity.margin == pytest.approx(-plain.polarity.margin, abs=1e-3)
    for head in plain:
        np.testing.assert_allclose(flipped[head], plain[head], atol=1e-3)
    a, b = (
        score_block(real_block, voxel_size_nm=VOX),
        score_block(inverted(real_block), voxel_size_nm=VOX),
    )
    for name in SCORES:
        assert getattr(b, name) == pytest.approx(getattr(a, name), abs=1e-3, nan_ok=True)
    assert "imaging_quality:inverted_contrast" in b.flags
    assert "imaging_quality:inverted_contrast" not in a.flags
    assert b.details["polarity"]["inverted"] and not a.details["polarity"]["inverted"]


def test_dark_polarity_skips_the_detection(real_block):
    # declared as recorded: the inverted block is then seen inverted, and scored lower
    s = score_block(inverted(real_block), voxel_size_nm=VOX, polarity="dark")
    auto = score_block(inverted(real_block), voxel_size_nm=VOX)
    assert "polarity" not in s.details
    assert s.membrane_integrity < auto.membrane_integrity


def test_declared_bright_polarity_inverts_before_any_map(tmp_path):
    tissue = synthetic_neuropil((16, 48, 48), voxel_size_nm=10.0, seed=2).image
    want = score_block(tissue, voxel_size_nm=VOX, predict=intensity_maps, polarity="dark")
    got = score_block(
        inverted(tissue), voxel_size_nm=VOX, predict=intensity_maps, polarity="bright"
    )
    for name in (*SCORES, "imaging_quality"):
        w, g = getattr(want, name), getattr(got, name)
        assert (math.isnan(w) and math.isnan(g)) or g == pytest.approx(w, abs=1e-9)
    assert got.details["polarity"] == {"inverted": True, "source": "declared",
                                       "margin": pytest.approx(math.nan, nan_ok=True),
                                       "uncertain": False}  # fmt: skip
    assert "imaging_quality:inverted_contrast" in got.flags


@pytest.mark.parametrize("bad", ["Dark", "inverted", ""])
def test_unknown_polarity_is_refused(bad, tmp_path):
    tissue = synthetic_neuropil((8, 16, 16), voxel_size_nm=10.0, seed=1).image
    with pytest.raises(ValueError, match="polarity must be one of auto, dark, bright"):
        score_block(tissue, voxel_size_nm=VOX, predict=intensity_maps, polarity=bad)


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    img = synthetic_neuropil((64, 128, 128), voxel_size_nm=10.0, seed=4).image
    dest = tmp_path_factory.mktemp("polarity") / "v.ome.zarr"
    ingest(ArraySource(img, voxel_size_nm=VOX, name="synthetic"), dest, progress=False)
    return dest


def test_score_volume_refuses_a_bad_polarity_first_and_records_a_good_one(volume, tmp_path):
    with pytest.raises(ValueError, match="polarity"):
        score_volume(volume, out=tmp_path / "bad", n=2, seed=1, block_vox=(16, 16, 16),
                     predict=intensity_maps, progress=False, polarity="white")  # fmt: skip
    assert not (tmp_path / "bad").exists()
    run = score_volume(volume, out=tmp_path / "s", n=2, seed=1, block_vox=(16, 16, 16),
                       predict=intensity_maps, progress=False, polarity="bright")  # fmt: skip
    doc = json.loads((run.out / "summary.json").read_text())
    assert doc["metric_settings"]["polarity"] == "bright"
    assert all("imaging_quality:inverted_contrast" in s.flags for s in run.scores)


def test_cli_lists_the_polarity_choices_and_refuses_others(volume, tmp_path):
    r = CliRunner().invoke(cli, ["score", str(volume), "--blocks", "1", "--polarity", "grey",
                                 "--out", str(tmp_path / "s")])  # fmt: skip
    assert r.exit_code == 2 and "auto" in r.output and "bright" in r.output
    assert not (tmp_path / "s").exists()


def test_a_probe_smaller_than_the_block_decides_for_the_whole_block(medulla):
    from emqc.models import Predictor
    from emqc.models._infer import FIBSEM_MAX_RELATIVE_NOISE

    block = np.ascontiguousarray(medulla.raw[20:116, 40:136, 40:136])  # 96³
    p = Predictor.load("fibsem3d", tile=128, halo=16, bf16=True,
                       max_relative_noise=FIBSEM_MAX_RELATIVE_NOISE)  # fmt: skip
    p.probe_edge = 64  # the probe's centre 32³ (its faces trimmed by the halo) decides
    plain = p.predict(block, voxel_size_nm=VOX, detect_polarity=True)
    flipped = p.predict(inverted(block), voxel_size_nm=VOX, detect_polarity=True)
    assert not plain.polarity.inverted and plain.polarity.margin > POLARITY_MARGIN
    assert flipped.polarity.inverted and flipped.polarity.margin < -POLARITY_MARGIN
    for head in plain:  # the whole block was predicted again, inverted back
        np.testing.assert_allclose(flipped[head], plain[head], atol=1e-3)
