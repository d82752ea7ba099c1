"""Preservation metrics by their properties, on small seeded *synthetic* volumes and the real cube.

Ground-truth masks of :mod:`emqc.synth` serve as "perfect" probability maps; damage is
applied by editing them, at five or more nested levels, and every score must stay in
[0, 1], move one way with the damage, and ignore what it must ignore.
"""

from __future__ import annotations

import dataclasses
import doctest
import importlib
import inspect
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

import emqc.metrics
from emqc.metrics import (
    Edema,
    ImagingQuality,
    MembraneIntegrity,
    MetricResult,
    SynapseTraceability,
    edema,
    imaging_quality,
    membrane_integrity,
    synapse_traceability,
)
from emqc.synth import NeuropilParams, SyntheticNeuropil, membrane_mask, synthetic_neuropil

VOXEL = 10.0
SHAPE = (64, 128, 128)  # 0.64 x 1.28 x 1.28 um


@pytest.fixture(scope="module")
def vol() -> SyntheticNeuropil:
    """Well-fixed synthetic neuropil (5 % extracellular space) with dense synapses."""
    params = NeuropilParams(synapse_density_per_um3=4.0)
    return synthetic_neuropil(SHAPE, voxel_size_nm=VOXEL, seed=1, params=params)


@pytest.fixture(scope="module")
def membranes(vol) -> np.ndarray:
    """The membranes of a 0.64 x 0.96 x 0.96 um part of ``vol`` (damage series run on it)."""
    return np.array(vol.membrane[:, :96, :96])


def as_prob(mask: np.ndarray) -> np.ndarray:
    return np.asarray(mask, np.float32)


def assert_score(result: MetricResult) -> None:
    """The contract every result keeps: a score in [0, 1], or NaN and a flag when not valid."""
    assert isinstance(result.score, float)
    if result.valid:
        assert 0.0 <= result.score <= 1.0, result
    else:
        assert math.isnan(result.score) and result.flags, result


def non_increasing(values, tol=1e-9) -> bool:
    return all(b <= a + tol for a, b in zip(values, values[1:], strict=False))


def nested_gaps(mask: np.ndarray, levels, radius_nm: float, seed: int = 0):
    """``mask`` with 0, n1, n2, ... holes (balls of ``radius_nm``), each level a superset."""
    rng = np.random.default_rng(seed)
    points = np.argwhere(mask)
    order = rng.permutation(len(points))
    volume_um3 = mask.size * VOXEL**3 / 1e9
    for per_um3 in levels:
        n = round(per_um3 * volume_um3)
        seeds = np.zeros(mask.shape, bool)
        seeds[tuple(points[order[:n]].T)] = True
        holes = ndi.distance_transform_edt(~seeds, sampling=VOXEL) <= radius_nm if n else seeds
        yield mask & ~holes


# --- one contract for every metric (zarr's StoreTests pattern) --------------------------


class MetricContract:
    """Checks every metric must pass; subclasses say how to call theirs on a volume."""

    result_type: type[MetricResult]
    n_maps = 1  # probability maps the metric takes

    def compute(self, v: SyntheticNeuropil, **kwargs) -> MetricResult:
        raise NotImplementedError

    def call(self, maps: list[np.ndarray], **kwargs) -> MetricResult:
        """Call the metric on ``n_maps`` arrays of one block."""
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def result(cls, vol) -> MetricResult:
        return cls().compute(vol)

    def test_result_is_a_frozen_record_in_range(self, result):
        assert type(result) is self.result_type
        assert_score(result)
        assert result.valid
        with pytest.raises(dataclasses.FrozenInstanceError):
            result.score = 0.5  # type: ignore[misc]

    def test_to_dict_round_trips_and_is_json(self, result):
        data = result.to_dict()
        assert data["score"] == result.score
        json.dumps(data)  # plain Python values only
        again = self.result_type.from_dict(json.loads(json.dumps(data)))
        assert json.dumps(again.to_dict()) == json.dumps(data)
        with pytest.raises(ValueError, match="unknown field"):
            self.result_type.from_dict({**data, "bogus": 1})

    def test_deterministic_and_leaves_inputs_alone(self, vol, result):
        # The synthetic arrays are read-only: a write into an input would raise.
        assert json.dumps(self.compute(vol).to_dict()) == json.dumps(result.to_dict())

    def _maps(self, shape=(8, 16, 16), value=0.0) -> list[np.ndarray]:
        return [np.full(shape, value, np.float32) for _ in range(self.n_maps)]

    @pytest.mark.parametrize(
        "bad, message",
        [(np.nan, "NaN"), (1.5, r"\[0, 1\]"), (-0.2, r"\[0, 1\]"), (np.inf, "NaN or infinite")],
    )
    def test_bad_probabilities_raise_value_error(self, bad, message):
        maps = self._maps()
        maps[0][2, 3, 4] = bad
        with pytest.raises(ValueError, match=message):
            self.call(maps, voxel_size_nm=VOXEL)

    def test_wrong_dimensions_raise(self):
        maps = [m[0] for m in self._maps()]
        with pytest.raises(ValueError, match=r"\(Z, Y, X\)"):
            self.call(maps, voxel_size_nm=VOXEL)

    def test_non_numeric_raises_type_error(self):
        maps = self._maps()
        maps[0] = maps[0].astype(str)
        with pytest.raises(TypeError, match="numeric"):
            self.call(maps, voxel_size_nm=VOXEL)

    def test_integer_maps_beyond_one_are_refused(self):
        maps = self._maps()
        maps[0] = np.full(maps[0].shape, 255, np.uint8)
        with pytest.raises(ValueError, match="255"):
            self.call(maps, voxel_size_nm=VOXEL)

    @pytest.mark.parametrize("voxel", [0, -8, (8, 8), float("nan")])
    def test_bad_voxel_size_raises(self, voxel):
        with pytest.raises(ValueError, match="voxel_size_nm"):
            self.call(self._maps(), voxel_size_nm=voxel)

    def test_voxel_size_is_required(self):
        with pytest.raises(TypeError):
            self.call(self._maps())

    @pytest.mark.parametrize("value", [0.0, 1.0])
    def test_uniform_block_gives_a_score_or_a_flag(self, value):
        assert_score(self.call(self._maps(value=value), voxel_size_nm=VOXEL))


class TestMembraneContract(MetricContract):
    result_type = MembraneIntegrity

    def compute(self, v, **kwargs):
        return membrane_integrity(as_prob(v.membrane), voxel_size_nm=v.voxel_size_nm, **kwargs)

    def call(self, maps, **kwargs):
        return membrane_integrity(maps[0], **kwargs)

    @pytest.mark.parametrize(
        "param, value", [("threshold", 0), ("gap_tolerance_nm", -1), ("min_sheet_nm", 0)]
    )
    def test_bad_parameters(self, vol, param, value):
        with pytest.raises(ValueError, match=param):
            self.compute(vol, **{param: value})


class TestEdemaContract(MetricContract):
    result_type = Edema

    def compute(self, v, **kwargs):
        return edema(as_prob(v.extracellular), voxel_size_nm=v.voxel_size_nm, raw=v.image, **kwargs)

    def call(self, maps, **kwargs):
        return edema(maps[0], **kwargs)

    def test_raw_of_another_shape_is_refused(self, vol):
        with pytest.raises(ValueError, match="same shape"):
            self.compute(dataclasses.replace(vol, image=vol.image[1:]))

    def test_saturation_must_exceed_baseline(self, vol):
        with pytest.raises(ValueError, match="saturation_fraction"):
            self.compute(vol, baseline_fraction=0.3, saturation_fraction=0.2)


class TestSynapseContract(MetricContract):
    result_type = SynapseTraceability
    n_maps = 2

    def compute(self, v, **kwargs):
        kwargs.setdefault("segmentation", v.cell_ids)
        return synapse_traceability(
            as_prob(v.synapses > 0), as_prob(v.membrane), voxel_size_nm=v.voxel_size_nm, **kwargs
        )

    def call(self, maps, **kwargs):
        kwargs.setdefault("segmentation", np.ones(maps[0].shape, np.uint32))
        return synapse_traceability(maps[0], maps[1], **kwargs)

    def test_shape_mismatch_names_the_map(self):
        syn, bnd = self._maps()
        with pytest.raises(ValueError, match="boundary has shape"):
            synapse_traceability(syn, bnd[1:], voxel_size_nm=VOXEL, segmentation=None)

    def test_bad_segmentation(self):
        syn, bnd = self._maps()
        with pytest.raises(ValueError, match=">= 0"):
            self.call([syn, bnd], voxel_size_nm=VOXEL, segmentation=-np.ones(syn.shape, int))
        with pytest.raises(TypeError, match="integer"):
            self.call([syn, bnd], voxel_size_nm=VOXEL, segmentation=np.ones(syn.shape) * 0.5)
        with pytest.raises(ValueError, match="segmentation has shape"):
            self.call([syn, bnd], voxel_size_nm=VOXEL, segmentation=np.ones((2, 2, 2), int))

    def test_empty_segmentation_is_flagged(self):
        syn, bnd = self._maps()
        result = self.call([syn, bnd], voxel_size_nm=VOXEL, segmentation=np.zeros(syn.shape, int))
        assert not result.valid and "no_segments" in result.flags


class TestImagingContract(MetricContract):
    """Imaging quality takes the raw image, not a probability map; the rest of the contract holds."""

    result_type = ImagingQuality

    def compute(self, v, **kwargs):
        return imaging_quality(v.image, voxel_size_nm=v.voxel_size_nm, **kwargs)

    def call(self, maps, **kwargs):
        return imaging_quality(maps[0], **kwargs)

    @pytest.mark.parametrize("bad, message", [(np.nan, "NaN"), (np.inf, "NaN or infinite")])
    def test_bad_probabilities_raise_value_error(self, bad, message):
        super().test_bad_probabilities_raise_value_error(bad, message)

    def test_integer_maps_beyond_one_are_refused(self):
        """Raw images are not probabilities: 8-bit values are read (a flat one is flagged)."""
        q = imaging_quality(np.full((8, 16, 16), 255, np.uint8), voxel_size_nm=VOXEL)
        assert q.too_poor_to_judge and q.saturated


# --- range over seeds, shapes and arbitrary maps -------------------------------------------


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    shape=st.tuples(st.integers(12, 32), st.integers(16, 48), st.integers(16, 48)),
    voxel=st.sampled_from([8.0, 10.0, 16.0, (25.0, 8.0, 8.0)]),
    ecs=st.floats(0.0, 0.4),
)
def test_every_score_in_range_on_synthetic_volumes(seed, shape, voxel, ecs):
    params = NeuropilParams(extracellular_fraction=ecs, synapse_density_per_um3=3.0)
    v = synthetic_neuropil(shape, voxel_size_nm=voxel, seed=seed, params=params)
    for result in (
        membrane_integrity(as_prob(v.membrane), voxel_size_nm=voxel),
        edema(as_prob(v.extracellular), voxel_size_nm=voxel, raw=v.image),
        synapse_traceability(
            as_prob(v.synapses > 0),
            as_prob(v.membrane),
            voxel_size_nm=voxel,
            segmentation=v.cell_ids,
        ),
        imaging_quality(v.image, voxel_size_nm=voxel),
    ):
        assert_score(result)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.tuples(st.integers(1, 10), st.integers(1, 10), st.integers(1, 10)),
    kind=st.sampled_from(["zeros", "ones", "uniform", "binary", "sparse"]),
)
def test_arbitrary_maps_never_crash(seed, shape, kind):
    """Whatever a network outputs (tiny, empty, saturated, random), a score or a flag comes back."""
    rng = np.random.default_rng(seed)
    maps = {
        "zeros": lambda: np.zeros(shape, np.float32),
        "ones": lambda: np.ones(shape, np.float32),
        "uniform": lambda: rng.random(shape, np.float32),
        "binary": lambda: (rng.random(shape) > 0.5).astype(np.float32),
        "sparse": lambda: (rng.random(shape) > 0.95).astype(np.float32),
    }[kind]
    a, b = maps(), maps()
    assert_score(membrane_integrity(a, voxel_size_nm=VOXEL))
    assert_score(edema(a, voxel_size_nm=VOXEL))
    assert_score(synapse_traceability(a, b, voxel_size_nm=VOXEL, segmentation=None))


# --- membrane integrity -------------------------------------------------------------------


def test_membrane_integrity_of_intact_membranes_is_high(vol):
    result = membrane_integrity(as_prob(vol.membrane), voxel_size_nm=VOXEL)
    assert result.score > 0.95 and result.closure > 0.95 and result.continuity > 0.95
    assert result.crispness == 1.0 and result.n_compartments > 10


def test_membrane_integrity_falls_as_gaps_grow(membranes):
    levels = [0, 5, 20, 50, 100, 200]
    results = [
        membrane_integrity(as_prob(m), voxel_size_nm=VOXEL)
        for m in nested_gaps(membranes, levels, radius_nm=40.0)
    ]
    scores, closure = [r.score for r in results], [r.closure for r in results]
    assert non_increasing(scores) and non_increasing(closure)
    assert scores[0] > 0.95 and scores[-1] < 0.7 and closure[-1] < 0.35


def test_membrane_integrity_falls_as_membranes_fragment(membranes):
    """Vesiculation: membranes cut into ever smaller tiles by a lattice of cuts."""
    results = []
    for period_nm in (np.inf, 640, 320, 160, 80, 40):
        mask = membranes.copy()
        if np.isfinite(period_nm):
            step = round(period_nm / VOXEL)
            for axis in range(3):
                index = [slice(None)] * 3
                index[axis] = slice(0, None, step)
                mask[tuple(index)] = False
        results.append(membrane_integrity(as_prob(mask), voxel_size_nm=VOXEL))
    continuity = [r.continuity for r in results]
    # Coarse cuts leave the pieces longer than min_sheet_nm: equal up to rounding.
    assert non_increasing(continuity, tol=1e-3) and continuity[-1] < 0.5
    assert non_increasing([r.score for r in results], tol=1e-3)


def test_membrane_integrity_falls_as_membranes_fade(membranes):
    """Indistinct neuropil: membrane probability fades toward the background."""
    results = [
        membrane_integrity(as_prob(membranes) * f, voxel_size_nm=VOXEL)
        for f in (1.0, 0.85, 0.7, 0.55, 0.3)
    ]
    scores = [r.score for r in results]
    assert all(b < a for a, b in zip(scores, scores[1:], strict=False))
    assert results[-1].valid and results[-1].score == 0.0 and "faded" in results[-1].flags


def test_membrane_integrity_without_any_boundary_is_not_judged():
    result = membrane_integrity(np.zeros((16, 32, 32), np.float32), voxel_size_nm=VOXEL)
    assert not result.valid and result.flags == ("no_boundary",)


def test_membrane_integrity_tolerates_a_soft_map(vol):
    """A network's blurred but confident membranes still count as crisp and closed."""
    soft = ndi.gaussian_filter(
        as_prob(membrane_mask(vol.cell_ids, voxel_size_nm=VOXEL, thickness_nm=40)), 1.0
    )
    result = membrane_integrity(soft, voxel_size_nm=VOXEL)
    assert result.score > 0.85, result


# --- edema --------------------------------------------------------------------------------


def test_edema_rises_with_extracellular_fraction():
    fractions = [0.02, 0.05, 0.1, 0.2, 0.3, 0.45]
    results = []
    for f in fractions:
        v = synthetic_neuropil(
            (48, 96, 96),
            voxel_size_nm=VOXEL,
            seed=2,
            params=NeuropilParams(extracellular_fraction=f),
        )
        results.append(edema(as_prob(v.extracellular), voxel_size_nm=VOXEL, raw=v.image))
    scores = [r.score for r in results]
    assert scores[0] == scores[1] == 0.0  # well-fixed: at or below the baseline
    assert all(b > a for a, b in zip(scores[1:], scores[2:], strict=False))
    assert scores[-1] == 1.0
    assert all(r.void_contrast > 0 for r in results)  # the void is pale, as it should be
    np.testing.assert_allclose([r.void_fraction for r in results], fractions, atol=0.01)


def test_edema_counts_perivascular_halos_and_leaves_out_the_lumen():
    params = NeuropilParams(vessel=True, vessel_diameter_nm=700, vessel_wall_nm=100)
    v = synthetic_neuropil((64, 64, 64), voxel_size_nm=20, seed=1, params=params)
    outside_wall = ndi.distance_transform_edt(~v.vessel, sampling=20)
    results = []
    for width_nm in (0, 60, 120, 180, 240):
        halo = (outside_wall > 0) & (outside_wall <= width_nm)
        void = as_prob(v.extracellular | v.vessel_lumen | halo)
        results.append(edema(void, voxel_size_nm=20, lumen_min_radius_nm=250))
    assert all("lumen_excluded" in r.flags for r in results)
    np.testing.assert_allclose(
        [r.lumen_fraction for r in results], v.vessel_lumen.mean(), atol=0.02
    )
    assert results[0].score == 0.0  # the lumen alone is no edema
    scores = [r.score for r in results]
    halos = [r.perivascular_void_fraction for r in results]
    assert all(b > a for a, b in zip(halos, halos[1:], strict=False))
    assert non_increasing(scores[::-1]) and scores[-1] > 0.9


def test_edema_ignores_the_image(vol):
    """raw is only checked for pale void: noise or inverted contrast do not move the score."""
    p = as_prob(vol.extracellular)
    clean = edema(p, voxel_size_nm=VOXEL, raw=vol.image)
    rng = np.random.default_rng(0)
    noisy = np.clip(vol.image + rng.normal(0, 40, vol.shape), 0, 255).astype(np.uint8)
    inverted = 255 - vol.image
    for raw in (noisy, inverted, None):
        other = edema(p, voxel_size_nm=VOXEL, raw=raw)
        assert other.score == clean.score and other.void_fraction == clean.void_fraction
    assert "void_darker" in edema(p, voxel_size_nm=VOXEL, raw=inverted).flags


def test_preservation_metrics_never_read_the_image():
    """Imaging artifacts can reach the preservation scores only through the network's maps."""
    for metric in (membrane_integrity, synapse_traceability):
        assert "raw" not in inspect.signature(metric).parameters


def test_edema_of_an_all_lumen_block_is_not_judged():
    result = edema(np.ones((40, 40, 40), np.float32), voxel_size_nm=(50, 50, 50))
    assert not result.valid and "no_tissue" in result.flags


def test_edema_without_lumen_search_counts_all_void():
    result = edema(np.ones((20, 20, 20), np.float32), voxel_size_nm=VOXEL, lumen_min_radius_nm=None)
    assert result.valid and result.score == 1.0 and result.lumen_fraction == 0.0


# --- synapse traceability -----------------------------------------------------------------


def _synapse_args(v: SyntheticNeuropil):
    return as_prob(v.synapses > 0), as_prob(v.membrane)


def test_synapses_of_intact_neuropil_are_traced(vol):
    result = synapse_traceability(
        *_synapse_args(vol), voxel_size_nm=VOXEL, segmentation=vol.cell_ids
    )
    assert result.n_synapses >= 2
    assert result.traced_fraction == 1.0 and result.score > 0.95
    assert "trace_shortened" in result.flags and result.trace_nm == pytest.approx(480.0)


def test_traceability_falls_as_neurites_are_cut(vol):
    results = []
    z, y, x = np.indices(vol.shape)
    for period_nm in (np.inf, 800, 400, 200, 100, 50):
        slab = (
            (z * VOXEL // period_nm) * 10_000
            + (y * VOXEL // period_nm) * 100
            + x * VOXEL // period_nm
        )
        cut = np.where(vol.cell_ids > 0, vol.cell_ids * 1_000_000 + slab, 0).astype(np.int64)
        results.append(
            synapse_traceability(*_synapse_args(vol), voxel_size_nm=VOXEL, segmentation=cut)
        )
    scores = [r.score for r in results]
    continuity = [r.neurite_continuity for r in results]
    assert non_increasing(scores) and non_increasing(continuity)
    assert scores[0] > 0.95 and scores[-1] == 0.0 and continuity[-1] < 0.5


def test_traceability_falls_as_partner_segments_are_removed(vol):
    partners = sorted({p for r in vol.synapse_records for p in (r.pre_id, r.post_id)})
    assert len(partners) >= 4
    seg = np.array(vol.cell_ids)
    results = []
    for k in range(len(partners) + 1):
        results.append(
            synapse_traceability(*_synapse_args(vol), voxel_size_nm=VOXEL, segmentation=seg)
        )
        if k < len(partners):
            seg[seg == partners[k]] = 0  # the partner's segment is lost
    scores = [r.score for r in results]
    assert non_increasing(scores) and scores[0] > 0.95 and scores[-1] == 0.0
    assert results[-1].n_traced == 0


def test_traceability_sees_merged_partners(vol):
    seg = np.array(vol.cell_ids)
    for record in vol.synapse_records:
        seg[seg == record.pre_id] = record.post_id  # a gap merged each pair
    result = synapse_traceability(*_synapse_args(vol), voxel_size_nm=VOXEL, segmentation=seg)
    assert result.n_merged == result.n_synapses and result.score == 0.0


def test_traceability_without_synapses_is_zero_and_flagged(vol):
    volume_um3 = np.prod(np.multiply(vol.shape, VOXEL)) / 1e9
    args = (np.zeros(vol.shape, np.float32), as_prob(vol.membrane))
    result = synapse_traceability(*args, voxel_size_nm=VOXEL, segmentation=vol.cell_ids,
                                  reference_synapses_per_um3=5 / volume_um3)  # fmt: skip
    assert "no_synapses" in result.flags and math.isnan(result.traced_fraction)
    assert result.valid and result.score == 0.0 and result.visibility == 0.0
    assert result.neurite_continuity > 0.9  # still reported: the neurites are fine
    # Where well-preserved tissue would show fewer than 3 synapses, none is no evidence.
    small = synapse_traceability(*args, voxel_size_nm=VOXEL, segmentation=vol.cell_ids,
                                 reference_synapses_per_um3=2 / volume_um3)  # fmt: skip
    assert not small.valid and math.isnan(small.score) and math.isnan(small.visibility)
    assert {"no_synapses", "visibility_unmeasured"} <= set(small.flags)


def test_small_blocks_score_without_visibility(vol):
    syn, boundary = _synapse_args(vol)
    volume_um3 = np.prod(np.multiply(vol.shape, VOXEL)) / 1e9
    r = synapse_traceability(syn, boundary, voxel_size_nm=VOXEL, segmentation=vol.cell_ids,
                             reference_synapses_per_um3=2.9 / volume_um3)  # fmt: skip
    assert "visibility_unmeasured" in r.flags and math.isnan(r.visibility) and r.valid
    assert r.score == pytest.approx(math.sqrt(r.neurite_continuity * r.traced_fraction))


def test_traceability_falls_as_synapses_fade_from_view(vol):
    """Synapses lost one by one (densities dissolved) lower the score once fewer are seen
    than the reference density; neurites and partners stay intact throughout."""
    syn, boundary = _synapse_args(vol)
    blobs, n = ndi.label(syn >= 0.5, structure=np.ones((3, 3, 3)))
    big = np.flatnonzero(np.bincount(blobs.ravel())[1:] * VOXEL**3 >= 1e5) + 1
    blobs, n = ndi.label(np.isin(blobs, big), structure=np.ones((3, 3, 3)))  # synapses only
    syn = np.where(blobs > 0, syn, 0).astype(np.float32)
    full = synapse_traceability(syn, boundary, voxel_size_nm=VOXEL, segmentation=vol.cell_ids)
    assert full.n_synapses == n >= 3
    reference = full.synapses_per_um3  # every synapse of the block is needed for full visibility
    scores, seen = [], []
    for k in range(n + 1):
        kept = np.where((blobs > k), syn, 0).astype(np.float32)
        r = synapse_traceability(
            kept, boundary, voxel_size_nm=VOXEL, segmentation=vol.cell_ids,
            reference_synapses_per_um3=reference,
        )  # fmt: skip
        assert r.n_synapses == n - k
        scores.append(r.score)
        seen.append(r.visibility)
        if k < n:
            assert r.traced_fraction == 1.0  # the synapses still seen are all traced
    assert seen[0] == 1.0 and seen == sorted(seen, reverse=True) and seen[-1] == 0.0
    assert non_increasing(scores) and scores[0] > 0.95 and scores[-1] == 0.0
    assert scores[n // 2] == pytest.approx(math.sqrt(scores[0] ** 2 * seen[n // 2]))


def test_partner_credit_is_graded_by_how_far_it_can_be_followed():
    """A long presynaptic neurite and a thin postsynaptic one cut shorter and shorter:
    the synapse's credit is the short partner's span over the trace length (300 nm)."""
    fractions = []
    for length in (40, 24, 12, 6):  # voxels of 10 nm: 400, 240, 120, 60 nm
        seg = np.zeros((40, 40, 160), np.uint32)
        seg[:, :20, :] = 1
        seg[18:22, 20:24, 80 - length // 2 : 80 + length // 2] = 2
        syn = np.zeros(seg.shape, np.float32)
        syn[18:22, 18:22, 76:84] = 1  # 128 voxels: 1.28e5 nm^3
        r = synapse_traceability(syn, np.zeros_like(syn), voxel_size_nm=VOXEL,
                                 segmentation=seg, min_trace_nm=300)  # fmt: skip
        assert r.n_synapses == 1 and r.n_merged == 0
        fractions.append(r.traced_fraction)
    assert fractions == pytest.approx([1.0, 0.8, 0.4, 0.2], abs=0.02)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan])
def test_reference_density_must_be_positive(bad):
    syn = np.zeros((8, 8, 8), np.float32)
    with pytest.raises(ValueError, match="reference_synapses_per_um3"):
        synapse_traceability(syn, syn, voxel_size_nm=VOXEL, segmentation=np.ones(syn.shape, int),
                             reference_synapses_per_um3=bad)  # fmt: skip


def test_traceability_segments_the_boundary_when_no_segmentation_is_given():
    params = NeuropilParams(synapse_density_per_um3=6)
    v = synthetic_neuropil((40, 96, 96), voxel_size_nm=VOXEL, seed=3, params=params)
    from emqc.segmentation import segment

    syn, boundary = _synapse_args(v)
    native = {"voxel_size_nm": VOXEL, "min_trace_nm": 300, "segmentation_voxel_nm": 0}
    result = synapse_traceability(syn, boundary, **native)
    assert result.valid and result.n_segments > 5 and result.neurite_continuity > 0.8
    assert result.n_synapses > 0 and result.traced_fraction > 0.5
    explicit = synapse_traceability(
        syn, boundary, **native, segmentation=segment(boundary, voxel_size_nm=(VOXEL,) * 3)
    )
    assert json.dumps(result.to_dict()) == json.dumps(explicit.to_dict())


@pytest.mark.parametrize("shape", [(40, 96, 96), (37, 95, 81)])
def test_traceability_segmented_on_a_coarser_grid_agrees_with_the_native_grid(shape):
    # The default segments a max-pooled 20 nm map (8x fewer voxels to flood at 10 nm):
    # on neuropil whose neurites are several of those voxels wide the answer barely moves,
    # whether or not the block divides into whole 2x2x2 cells.
    params = NeuropilParams(synapse_density_per_um3=6)
    v = synthetic_neuropil(shape, voxel_size_nm=VOXEL, seed=3, params=params)
    syn, boundary = _synapse_args(v)
    native = synapse_traceability(
        syn, boundary, voxel_size_nm=VOXEL, min_trace_nm=300, segmentation_voxel_nm=0
    )
    coarse = synapse_traceability(syn, boundary, voxel_size_nm=VOXEL, min_trace_nm=300)
    assert coarse.valid and coarse.n_synapses == native.n_synapses
    assert abs(coarse.n_segments - native.n_segments) <= max(3, native.n_segments // 5)
    for name in ("score", "neurite_continuity", "traced_fraction"):
        assert getattr(coarse, name) == pytest.approx(getattr(native, name), abs=0.1), name


def test_traceability_grid_coarser_than_the_voxel_only():
    # Serial sections (50 x 9 x 9 nm): pooled 2x in-plane only, never across sections;
    # a grid finer than the voxels segments the voxels themselves.
    from emqc.metrics._synapses import _segment_on_grid

    v = synthetic_neuropil((6, 120, 120), voxel_size_nm=(50.0, 9.0, 9.0), seed=4)
    boundary = as_prob(v.membrane)
    coarse, cells = _segment_on_grid(boundary, (50.0, 9.0, 9.0), 20.0)
    assert coarse.shape == (6, 60, 60)
    seg = coarse[np.ix_(*cells)]
    assert seg.shape == boundary.shape and seg.min() >= 1
    assert (seg[:, ::2, ::2] == seg[:, 1::2, 1::2]).all()  # whole 2x2 cells in-plane
    from emqc.segmentation import segment

    fine, cells = _segment_on_grid(boundary, (50.0, 9.0, 9.0), 5.0)
    assert np.array_equal(fine[np.ix_(*cells)], segment(boundary, voxel_size_nm=(50.0, 9.0, 9.0)))


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    shape=st.tuples(*[st.integers(1, 9)] * 3),
    factors=st.tuples(*[st.integers(1, 3)] * 3),
    voxel=st.tuples(*[st.sampled_from([4.0, 9.0, 10.0, 50.0])] * 3),
    seed=st.integers(0, 2**16),
)
def test_segment_spans_of_coarse_cells_equal_those_of_the_repeated_labels(
    shape, factors, voxel, seed
):
    from emqc.metrics._common import segment_spans

    # Voxels per axis need not fill the last cell (partial cells at the far faces).
    rng = np.random.default_rng(seed)
    fine_shape = [
        max(1, n * f - int(rng.integers(0, f))) for n, f in zip(shape, factors, strict=True)
    ]
    cells = [np.arange(n) // f for n, f in zip(fine_shape, factors, strict=True)]
    coarse = rng.integers(0, 4, size=[c[-1] + 1 for c in cells])
    expected = segment_spans(coarse[np.ix_(*cells)], voxel)
    got = segment_spans(coarse, voxel, cells=cells)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-9)
    np.testing.assert_allclose(got[2], expected[2], rtol=1e-6, atol=1e-6)


def test_small_synapse_blobs_are_noise():
    syn = np.zeros((20, 20, 20), np.float32)
    syn[5, 5, 5] = syn[10:12, 10:12, 10:12] = 1  # 1 and 8 voxels: 1e3 and 8e3 nm^3
    seg = np.ones(syn.shape, np.uint32)
    result = synapse_traceability(syn, np.zeros_like(syn), voxel_size_nm=VOXEL, segmentation=seg)
    assert result.n_synapses == 0


# --- invariance to voxel size ---------------------------------------------------------------


@pytest.mark.parametrize(
    "voxel, shape",
    [(8.0, (64, 120, 120)), (16.0, (32, 60, 60)), ((20.0, 8.0, 8.0), (26, 120, 120))],
)
def test_scores_keep_with_the_voxel_size(voxel, shape):
    """The same physical neuropil (0.5 x 0.96 x 0.96 um) sampled at other voxel sizes."""
    params = NeuropilParams(extracellular_fraction=0.15, synapse_density_per_um3=4.0)
    ref = synthetic_neuropil((52, 96, 96), voxel_size_nm=10.0, seed=7, params=params)
    v = synthetic_neuropil(shape, voxel_size_nm=voxel, seed=7, params=params)
    for metric in (
        lambda u: membrane_integrity(as_prob(u.membrane), voxel_size_nm=u.voxel_size_nm),
        lambda u: edema(as_prob(u.extracellular), voxel_size_nm=u.voxel_size_nm),
        lambda u: synapse_traceability(
            *_synapse_args(u), voxel_size_nm=u.voxel_size_nm, segmentation=u.cell_ids
        ),
    ):
        assert metric(v).score == pytest.approx(metric(ref).score, abs=0.05)


@pytest.mark.parametrize("module", ["_membrane", "_edema", "_synapses", "_imaging"])
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(f"emqc.metrics.{module}"))
    assert result.attempted > 0 and result.failed == 0


def test_public_api_is_re_exported():
    for name in emqc.metrics.__all__:
        assert getattr(emqc.metrics, name) is not None


# --- the real FIB-SEM cube ---------------------------------------------------------------------


def _id_boundaries(ids: np.ndarray) -> np.ndarray:
    """Voxels whose 6-neighbour has another id: a perfect boundary map, two voxels thick."""
    out = np.zeros(ids.shape, bool)
    for axis in range(3):
        differs = np.diff(ids, axis=axis) != 0
        lo, hi = [slice(None)] * 3, [slice(None)] * 3
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        out[tuple(lo)] |= differs
        out[tuple(hi)] |= differs
    return out


@pytest.mark.realdata
@pytest.mark.slow
def test_real_cube_scores_as_well_preserved(medulla):
    box = (slice(80, 176), slice(50, 146), slice(100, 196))  # 96^3 at 10 nm
    ids, raw = medulla.labels["neuron_ids"][box], medulla.raw[box]
    voxel = medulla.voxel_size_nm
    boundary = as_prob(_id_boundaries(ids))
    membranes = membrane_integrity(boundary, voxel_size_nm=voxel)
    assert membranes.score > 0.8, membranes
    swelling = edema(as_prob(ids == 0), voxel_size_nm=voxel, raw=raw)
    assert swelling.score < 0.1, swelling
    traced = synapse_traceability(
        np.zeros(ids.shape, np.float32), boundary, voxel_size_nm=voxel, segmentation=ids
    )
    assert traced.neurite_continuity > 0.7, traced
    image = imaging_quality(raw, voxel_size_nm=voxel)
    assert not image.too_poor_to_judge and not image.flags, image
    # Gaps punched into the real membranes lower the score step by step.
    scores = [
        membrane_integrity(as_prob(m), voxel_size_nm=voxel).score
        for m in nested_gaps(_id_boundaries(ids), [0, 5, 20, 50, 100], radius_nm=40.0)
    ]
    assert non_increasing(scores) and scores[-1] < scores[0] - 0.2


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    radius=st.sampled_from([0.0, 9.0, 10.0, 20.0, 25.0, 60.0]),
    voxel=st.tuples(*[st.sampled_from([4.0, 8.0, 10.0, 50.0])] * 3),
    seed=st.integers(0, 2**16),
)
def test_within_is_the_distance_transform_at_most_the_radius(radius, voxel, seed):
    from scipy import ndimage as ndi

    from emqc.metrics._common import within

    mask = np.random.default_rng(seed).random((9, 11, 10)) > 0.97
    expected = ndi.distance_transform_edt(~mask, sampling=voxel) <= radius
    if not mask.any():
        expected[:] = False
    np.testing.assert_array_equal(within(mask, radius, voxel), expected)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    radius=st.floats(1.0, 70.0),
    voxel=st.tuples(*[st.sampled_from([4.0, 8.0, 10.0, 30.0, 50.0])] * 3),
    shape=st.tuples(*[st.integers(1, 12)] * 3),
    density=st.sampled_from([0.01, 0.1, 0.6]),
    dims=st.sampled_from([2, 3]),
    seed=st.integers(0, 2**16),
)
def test_dilation_by_a_ball_equals_scipys(radius, voxel, shape, density, dims, seed):
    from scipy import ndimage as ndi

    from emqc.metrics._common import _ball, dilate_by_ball

    ball = _ball(radius, voxel[:dims])
    mask = np.random.default_rng(seed).random(shape[:dims]) < density
    np.testing.assert_array_equal(
        dilate_by_ball(mask, ball), ndi.binary_dilation(mask, structure=ball)
    )


def test_dilation_by_a_footprint_that_is_not_a_ball_is_scipys():
    from scipy import ndimage as ndi

    from emqc.metrics._common import dilate_by_ball

    ring = np.ones((3, 3, 3), bool)
    ring[1, 1, 1] = False  # row (1, 1) is two runs
    mask = np.random.default_rng(0).random((8, 9, 10)) < 0.05
    np.testing.assert_array_equal(
        dilate_by_ball(mask, ring), ndi.binary_dilation(mask, structure=ring)
    )


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    shape=st.tuples(*[st.integers(1, 9)] * 3),
    factors=st.tuples(*[st.integers(1, 4)] * 3),
    dims=st.sampled_from([2, 3]),
    negative=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_max_pool_equals_scikit_images_block_reduce(shape, factors, dims, negative, seed):
    from skimage.measure import block_reduce

    from emqc.metrics._common import max_pool

    array = np.random.default_rng(seed).random(shape[:dims], dtype=np.float32)
    if negative:  # a partial block at a far face counts the padding's 0
        array -= 0.5
    expected = block_reduce(array, factors[:dims], np.max)
    pooled = max_pool(array, factors[:dims])
    assert pooled.dtype == expected.dtype
    np.testing.assert_array_equal(pooled, expected)


def test_max_pool_refuses_factors_that_do_not_fit():
    from emqc.metrics._common import max_pool

    with pytest.raises(ValueError, match="one factor >= 1 per axis"):
        max_pool(np.zeros((4, 4)), (2,))
    with pytest.raises(ValueError, match="one factor >= 1 per axis"):
        max_pool(np.zeros((4, 4)), (2, 0))
