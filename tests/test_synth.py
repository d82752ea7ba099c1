"""Tests of the *synthetic* neuropil generator, by its properties, on small seeded volumes."""

from __future__ import annotations

import dataclasses
import doctest
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import emqc.synth
from emqc.synth import (
    NeuropilParams,
    SynapseRecord,
    SyntheticNeuropil,
    _neuropil,
    _params,
    membrane_mask,
    render_neuropil,
    synthetic_neuropil,
)

SMALL = (24, 48, 48)
MASKS = ("membrane", "extracellular", "mitochondria", "vesicles", "vessel", "vessel_lumen")


@pytest.fixture(scope="module")
def vol() -> SyntheticNeuropil:
    """A 0.64 x 1.28 x 1.28 um volume at 8 nm with the default parameters."""
    return synthetic_neuropil((80, 160, 160), voxel_size_nm=8.0, seed=0)


def _cytoplasm(v: SyntheticNeuropil) -> np.ndarray:
    return (
        (v.cell_ids > 0)
        & ~v.membrane
        & ~v.mitochondria
        & ~v.vesicles
        & (v.synapses == 0)
        & ~v.vessel
    )


def _check_consistent(v: SyntheticNeuropil, shape) -> None:
    assert v.image.shape == v.cell_ids.shape == v.synapses.shape == tuple(shape)
    assert v.image.dtype == np.uint8 and v.cell_ids.dtype == np.uint32
    assert v.synapses.dtype == np.uint16
    for name in MASKS:
        mask = getattr(v, name)
        assert mask.dtype == bool and mask.shape == tuple(shape), name
    # Compartments nest as the docstring says.
    assert not np.any(v.extracellular & (v.cell_ids != 0))
    assert not np.any(v.membrane & (v.cell_ids == 0))
    assert not np.any(v.mitochondria & ((v.cell_ids == 0) | v.membrane | v.vesicles))
    assert not np.any(v.vesicles & (v.cell_ids == 0))
    assert not np.any(v.vessel_lumen & ~v.vessel)
    assert not np.any(v.vessel_lumen & (v.cell_ids != 0))
    assert not np.any(v.extracellular & v.vessel)
    # Each synapse label is where its record says, between its two cells.
    assert [r.label for r in v.synapse_records] == list(range(1, len(v.synapse_records) + 1))
    assert set(np.unique(v.synapses)) <= {0, *(r.label for r in v.synapse_records)}
    for r in v.synapse_records:
        assert r.pre_id != r.post_id
        assert set(np.unique(v.cell_ids[v.synapses == r.label])) <= {r.pre_id, r.post_id}
        assert all(0 <= c < n for c, n in zip(r.center_voxel, shape, strict=True))


def test_shapes_dtypes_and_read_only(vol):
    _check_consistent(vol, (80, 160, 160))
    assert vol.shape == (80, 160, 160)
    assert vol.voxel_size_nm == (8.0, 8.0, 8.0) and vol.seed == 0
    assert vol.params == NeuropilParams()
    with pytest.raises(ValueError, match="read-only"):
        vol.image[0, 0, 0] = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        vol.seed = 1  # type: ignore[misc]


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    shape=st.tuples(*[st.integers(1, 24)] * 3),
    voxel=st.tuples(*[st.sampled_from([4.0, 8.0, 10.0, 16.0, 30.0, 50.0])] * 3),
    seed=st.integers(0, 2**32),
    vessel=st.booleans(),
)
def test_any_small_volume_is_consistent(shape, voxel, seed, vessel):
    params = NeuropilParams(vessel=vessel, synapse_density_per_um3=5.0)
    _check_consistent(
        synthetic_neuropil(shape, voxel_size_nm=voxel, seed=seed, params=params), shape
    )


def test_same_seed_same_bytes_other_seed_differs():
    a = synthetic_neuropil(SMALL, voxel_size_nm=10.0, seed=7)
    b = synthetic_neuropil(SMALL, voxel_size_nm=10.0, seed=7)
    for name in ("image", "cell_ids", "synapses", *MASKS):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    assert a.synapse_records == b.synapse_records
    c = synthetic_neuropil(SMALL, voxel_size_nm=10.0, seed=8)
    assert a.image.tobytes() != c.image.tobytes()
    assert a.cell_ids.tobytes() != c.cell_ids.tobytes()


@pytest.mark.parametrize("voxel", [(50.0, 5.0, 5.0), (8.0, 12.0, 4.0), (30.0, 8.0, 8.0)])
def test_anisotropic_voxels(voxel):
    shape = tuple(round(800 / v) for v in voxel)  # 0.8 um along every axis
    v = synthetic_neuropil(shape, voxel_size_nm=voxel, seed=1)
    _check_consistent(v, shape)
    assert v.voxel_size_nm == voxel
    assert len(np.unique(v.cell_ids)) > 3
    assert v.extracellular.mean() == pytest.approx(0.05, abs=0.005)


def test_scalar_voxel_size_is_isotropic():
    a = synthetic_neuropil(SMALL, voxel_size_nm=10, seed=2)
    b = synthetic_neuropil(SMALL, voxel_size_nm=(10.0, 10.0, 10.0), seed=2)
    assert a.voxel_size_nm == (10.0, 10.0, 10.0)
    assert a.image.tobytes() == b.image.tobytes()


def test_extracellular_fraction_tracks_parameter():
    fractions = [0.0, 0.02, 0.05, 0.1, 0.2, 0.35]
    vols = [
        synthetic_neuropil(
            (32, 96, 96),
            voxel_size_nm=10.0,
            seed=3,
            params=NeuropilParams(extracellular_fraction=f),
        )
        for f in fractions
    ]
    measured = [v.extracellular.mean() for v in vols]
    assert measured == pytest.approx(fractions, abs=0.01)
    assert all(a < b for a, b in zip(measured, measured[1:], strict=False))
    # Same seed, larger fraction: the same tissue with the same spaces and more.
    for small, large in zip(vols, vols[1:], strict=False):
        assert not np.any(small.extracellular & ~large.extracellular)
        kept = ~large.extracellular
        assert np.array_equal(small.cell_ids[kept], large.cell_ids[kept])


def test_contrast_membranes_dark_extracellular_pale(vol):
    image = vol.image.astype(float)
    cytoplasm = image[_cytoplasm(vol)].mean()
    assert image[vol.membrane].mean() < cytoplasm - 30
    assert image[vol.extracellular].mean() > cytoplasm + 20
    assert image[vol.mitochondria].mean() < cytoplasm - 30
    assert image[vol.synapses > 0].mean() < image[vol.membrane].mean()


def test_histogram_roughly_like_real_fib_sem(vol):
    # The 10 nm medulla FIB-SEM cube: median ~129, 1st/99th percentiles ~70/~195.
    p1, p50, p99 = np.percentile(vol.image, [1, 50, 99])
    assert 50 < p1 < 95 and 115 < p50 < 160 and 180 < p99 < 230


@pytest.mark.parametrize("density", [0.0, 0.8, 3.0])
def test_synapse_count_matches_density(density):
    shape, voxel = (48, 48, 48), 32.0  # 1.54 um cube, 3.6 um^3
    params = NeuropilParams(synapse_density_per_um3=density)
    counts = [
        len(synthetic_neuropil(shape, voxel_size_nm=voxel, seed=s, params=params).synapse_records)
        for s in range(3)
    ]
    expected = 3 * density * (48 * 32 / 1000) ** 3
    assert 0.7 * expected <= sum(counts) <= 1.2 * expected + 1


def test_synapses_have_vesicles_and_dark_psd(vol):
    assert vol.synapse_records, "the fixture volume should hold a synapse"
    for r in vol.synapse_records:
        assert isinstance(r, SynapseRecord)
        psd = vol.synapses == r.label
        assert np.any(psd & (vol.cell_ids == r.post_id))
    assert vol.vesicles.any()


def test_vessel_only_when_asked():
    plain = synthetic_neuropil(SMALL, voxel_size_nm=16.0, seed=4)
    assert not plain.vessel.any() and not plain.vessel_lumen.any()
    v = synthetic_neuropil(SMALL, voxel_size_nm=16.0, seed=4, params=NeuropilParams(vessel=True))
    assert v.vessel_lumen.any() and np.any(v.vessel & ~v.vessel_lumen)
    assert v.image[v.vessel_lumen].mean() > v.image[_cytoplasm(v)].mean() + 30
    assert v.vessel.mean() < 0.5  # the radius was clipped to fit


def test_render_neuropil_reproduces_and_follows_edits(vol):
    assert render_neuropil(vol).tobytes() == vol.image.tobytes()
    # Edema, crudely: the cytoplasm of a slab turns into extracellular space.
    slab = np.zeros(vol.shape, bool)
    slab[:, :, :40] = True
    swollen_ecs = vol.extracellular | (_cytoplasm(vol) & slab)
    ids = np.where(swollen_ecs, 0, vol.cell_ids).astype(np.uint32)
    edited = dataclasses.replace(
        vol,
        extracellular=swollen_ecs,
        cell_ids=ids,
        membrane=membrane_mask(ids, voxel_size_nm=vol.voxel_size_nm),
    )
    image = render_neuropil(edited)
    assert image.mean() > vol.image.mean() + 5
    # Texture and noise do not depend on the masks: away from the edit nothing changes.
    assert np.array_equal(image[:, :, 48:], vol.image[:, :, 48:])
    assert render_neuropil(vol, seed=1).tobytes() != vol.image.tobytes()


def test_membrane_mask_thickness():
    ids = np.ones((3, 20, 20), np.uint32)
    ids[:, :, 10:] = 2
    mem = membrane_mask(ids, voxel_size_nm=8.0, thickness_nm=18.0)
    assert np.array_equal(np.flatnonzero(mem[1, 5]), [9, 10])  # one voxel each side
    thick = membrane_mask(ids, voxel_size_nm=4.0, thickness_nm=40.0)
    assert np.count_nonzero(thick[1, 5]) > 4
    ids[:, :, :5] = 0  # a cell facing extracellular space: only the cell side is membrane
    assert not membrane_mask(ids, voxel_size_nm=8.0)[ids == 0].any()


def test_params_round_trip_through_json():
    p = NeuropilParams(axon_diameter_nm=[120, 250], vessel=True, noise_std=0)
    assert p.axon_diameter_nm == (120.0, 250.0)
    again = NeuropilParams.from_dict(json.loads(json.dumps(p.to_dict())))
    assert again == p
    assert NeuropilParams.from_dict({}) == NeuropilParams()
    with pytest.raises(ValueError, match="unknown parameter.*'wobble'"):
        NeuropilParams.from_dict({"wobble": 1})


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"axon_diameter_nm": (-150.0, 300.0)}, r"axon_diameter_nm.*-150"),
        ({"dendrite_diameter_nm": (900.0, 600.0)}, r"dendrite_diameter_nm.*900"),
        ({"membrane_thickness_nm": -18.0}, r"membrane_thickness_nm.*-18"),
        ({"psd_length_nm": 0.0}, r"psd_length_nm.*0\.0"),
        ({"extracellular_fraction": 1.5}, r"extracellular_fraction.*1\.5"),
        ({"synapse_density_per_um3": -0.1}, r"synapse_density_per_um3.*-0\.1"),
        ({"noise_std": float("nan")}, r"noise_std.*nan"),
    ],
)
def test_bad_params_raise_value_error(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        NeuropilParams(**kwargs)


@pytest.mark.parametrize(
    ("args", "kwargs", "pattern"),
    [
        (((64, 64),), {}, r"shape.*\(64, 64\)"),
        (((4, 64, 64, 64),), {}, r"shape.*\(4, 64, 64, 64\)"),
        (((0, 8, 8),), {}, r"shape.*\(0, 8, 8\)"),
        ((SMALL,), {"voxel_size_nm": 0}, r"voxel_size_nm.*0"),
        ((SMALL,), {"voxel_size_nm": (8.0, -1.0, 8.0)}, r"voxel_size_nm.*-1\.0"),
        ((SMALL,), {"voxel_size_nm": (8.0, 8.0)}, r"voxel_size_nm.*\(8\.0, 8\.0\)"),
        ((SMALL,), {"seed": -1}, r"seed.*-1"),
    ],
)
def test_bad_arguments_raise_value_error(args, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        synthetic_neuropil(*args, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"seed": 1.5}, "seed"),
        ({"params": {"vessel": True}}, "params"),
        ({"voxel_size_nm": "8"}, "voxel_size_nm"),
    ],
)
def test_bad_types_raise_type_error(kwargs, pattern):
    with pytest.raises(TypeError, match=pattern):
        synthetic_neuropil(SMALL, **kwargs)
    with pytest.raises(TypeError, match="vessel"):
        NeuropilParams(vessel="yes")  # type: ignore[arg-type]


def test_coarse_voxels_warn():
    with pytest.warns(UserWarning, match="coarser than membranes"):
        synthetic_neuropil((8, 8, 8), voxel_size_nm=80.0, seed=0)


@pytest.mark.parametrize("module", [emqc.synth, _neuropil, _params])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
