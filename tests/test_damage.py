"""Damage simulators (emqc.damage): contract of every simulator, and each damage's physics.

Properties are checked on a crop of the real medulla FIB-SEM cube (held-out part; skipped
without the data) and on seeded synthetic neuropil (always): severity 0 is the identity,
the same seed gives the same bytes, and the physical quantity each damage changes moves
monotonically over six severity levels.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage as ndi

from emqc import damage
from emqc.damage import ARTIFACTS, DAMAGES, _render
from emqc.synth import synthetic_neuropil

LEVELS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
ALL = {**DAMAGES, **ARTIFACTS}
#: Simulators whose output does not depend on the seed.
UNSEEDED = {"contrast_inversion", "resolution", "defocus"}
ISO = (10.0, 10.0, 10.0)


class Volume:
    """An image, its cell ids and voxel size, with helpers for the measurements."""

    def __init__(self, image, labels, voxel):
        self.image = np.ascontiguousarray(image)
        self.labels = np.ascontiguousarray(labels).astype(np.uint32)
        self.voxel = tuple(float(v) for v in voxel)
        self.edge = _render.boundaries(self.labels)
        self.far = ~_render.grow(self.edge, 40.0, self.voxel)

    def run(self, name, severity, seed=0, labels=None, **kwargs):
        return ALL[name](
            self.image,
            labels=self.labels if labels is None else labels,
            voxel_size_nm=self.voxel,
            severity=severity,
            seed=seed,
            **kwargs,
        )


@pytest.fixture(scope="module")
def real(medulla):
    """64³ crop of the held-out part of the real medulla cube (10 nm)."""
    crop = (slice(167, 231), slice(40, 104), slice(40, 104))
    return Volume(medulla.raw[crop], medulla.labels["neuron_ids"][crop], medulla.voxel_size_nm)


@pytest.fixture(scope="module")
def synth():
    """Synthetic neuropil with 5 % extracellular space, isotropic 16 nm."""
    vol = synthetic_neuropil((32, 80, 80), voxel_size_nm=16.0, seed=2)
    return Volume(vol.image, vol.cell_ids, vol.voxel_size_nm)


@pytest.fixture(scope="module")
def aniso():
    """Synthetic serial-section-like volume: 40 nm slices, 12 nm pixels."""
    vol = synthetic_neuropil((16, 96, 96), voxel_size_nm=(40.0, 12.0, 12.0), seed=5)
    return Volume(vol.image, vol.cell_ids, vol.voxel_size_nm)


@pytest.fixture(params=["real", "synth"])
def volume(request):
    return request.getfixturevalue(request.param)


def _sweep(vol, name, measure, **kwargs):
    return [measure(vol.run(name, s, **kwargs)) for s in LEVELS]


def _assert_increasing(values, what):
    assert all(b > a for a, b in zip(values, values[1:], strict=False)), f"{what}: {values}"


def _assert_decreasing(values, what):
    _assert_increasing([-v for v in values], f"{what} (should fall)")


# --- the contract every simulator keeps ------------------------------------------------------


def test_registries_and_exports():
    assert set(DAMAGES) == {"edema", "membrane_breakdown", "shrinkage", "indistinct_neuropil"}
    assert {"noise", "curtaining", "contrast_inversion", "resolution"} <= set(ARTIFACTS)
    assert not set(DAMAGES) & set(ARTIFACTS)
    for name, fn in ALL.items():
        assert name in damage.__all__ and getattr(damage, name) is fn


@pytest.mark.parametrize("name", sorted(ALL))
def test_severity_zero_is_identity(synth, name):
    out = synth.run(name, 0.0)
    assert out.image.tobytes() == synth.image.tobytes()
    assert out.image is not synth.image
    np.testing.assert_array_equal(out.labels, synth.labels)
    np.testing.assert_array_equal(out.extracellular, synth.labels == 0)


@pytest.mark.parametrize("name", sorted(ALL))
def test_output_types_determinism_and_purity(synth, name):
    before = synth.image.copy()
    a = synth.run(name, 0.6, seed=11)
    b = synth.run(name, 0.6, seed=11)
    np.testing.assert_array_equal(synth.image, before)  # the input is not edited in place
    assert a.image.dtype == np.uint8 and a.image.shape == synth.image.shape
    assert a.labels.dtype == np.uint32 and a.labels.shape == synth.image.shape
    assert a.extracellular.dtype == bool and a.extracellular.shape == synth.image.shape
    assert not (a.extracellular & (a.labels != 0)).any()
    assert a.image.tobytes() == b.image.tobytes()
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.image, synth.image)
    assert a.params["name"] == name and a.params["severity"] == 0.6
    json.dumps(a.params)  # plain, serializable values
    if name not in UNSEEDED:
        c = synth.run(name, 0.6, seed=12)
        assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize("name", sorted(ALL))
def test_anisotropic_voxels(aniso, name):
    out = aniso.run(name, 0.7, seed=3)
    assert out.image.shape == aniso.image.shape and out.image.dtype == np.uint8
    assert out.params["voxel_size_nm"] == [40.0, 12.0, 12.0]
    assert not np.array_equal(out.image, aniso.image)


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        ({"severity": 1.5}, ValueError, ["severity", "1.5"]),
        ({"severity": -0.1}, ValueError, ["severity", "-0.1"]),
        ({"severity": float("nan")}, ValueError, ["severity", "nan"]),
        ({"severity": "0.5"}, TypeError, ["severity", "'0.5'"]),
        ({"seed": -1}, ValueError, ["seed", "-1"]),
        ({"seed": 1.5}, TypeError, ["seed", "1.5"]),
        ({"voxel_size_nm": (10, -1, 10)}, ValueError, ["voxel_size_nm", "-1"]),
        ({"voxel_size_nm": (10, 10)}, ValueError, ["voxel_size_nm", "(10, 10)"]),
        ({"image": "float32"}, TypeError, ["image", "float32"]),
        ({"image": "2d"}, ValueError, ["image", "(4, 4)"]),
        ({"labels": "shape"}, ValueError, ["labels", "(4, 4, 3)"]),
        ({"labels": "float"}, TypeError, ["labels", "float64"]),
        ({"labels": "negative"}, ValueError, ["labels", "-1"]),
    ],
)
def test_bad_parameters_are_named(name, change, error, words):
    image = np.full((4, 4, 4), 100, np.uint8)
    labels = np.arange(64, dtype=np.int64).reshape(4, 4, 4)
    kwargs = {"labels": labels, "voxel_size_nm": 10.0, "severity": 0.5, "seed": 0}
    kwargs |= {k: v for k, v in change.items() if k not in ("image", "labels")}
    swap_image = {"float32": image.astype(np.float32), "2d": image[0]}
    swap_labels = {"shape": labels[..., :3], "float": labels * 1.0, "negative": labels - 1}
    image = swap_image.get(change.get("image"), image)
    kwargs["labels"] = swap_labels.get(change.get("labels"), labels)
    with pytest.raises(error) as info:
        ALL[name](image, **kwargs)
    message = str(info.value)
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("name", sorted(DAMAGES))
def test_damage_requires_labels(name):
    with pytest.raises(TypeError, match="labels"):
        DAMAGES[name](
            np.zeros((4, 4, 4), np.uint8), labels=None, voxel_size_nm=10, severity=0.5, seed=0
        )


# --- edema ------------------------------------------------------------------------------------


def test_edema_extracellular_space_grows_with_severity(volume):
    outs = [volume.run("edema", s) for s in LEVELS]
    ecs = [float(o.extracellular.mean()) for o in outs]
    _assert_increasing(ecs, "extracellular fraction")
    tissue = [o.params.get("ecs_fraction", ecs[0]) for o in outs]
    assert tissue[-1] == pytest.approx(damage._edema.ECS_FRACTION_MAX, abs=0.01)
    # Korogod 2015: cryo-fixed tissue ~15-20 %; severity 0.4 already exceeds chemical fixation.
    assert 0.15 < tissue[2] < 0.35
    cyto = np.median(volume.image[volume.far & (volume.labels != 0)])
    for o in outs[1:]:
        new = o.extracellular & (volume.labels != 0)
        assert o.image[new].mean() > cyto + 15  # electron-lucent: pale
        assert (o.labels[o.extracellular] == 0).all()


def test_edema_vessel_swelling_and_option(real):
    out = real.run("edema", 0.8, seed=4)
    assert out.params["n_swollen"] >= 1 and out.params["halo_nm"] > 0
    wall = out.labels == real.labels.max() + 1
    assert wall.any()  # the capillary wall is a new cell
    plain = real.run("edema", 0.8, seed=4, perivascular=False)
    assert plain.labels.max() <= real.labels.max() and plain.params["halo_nm"] == 0
    assert not ((plain.labels == 0) & ~plain.extracellular).any()
    with pytest.raises(TypeError, match="perivascular"):
        real.run("edema", 0.5, perivascular="yes")


# --- membrane breakdown ----------------------------------------------------------------------


def test_membrane_breakdown_intact_boundary_falls(volume):
    outs = [volume.run("membrane_breakdown", s) for s in LEVELS]
    intact = [1 - o.membrane_broken.sum() / volume.edge.sum() for o in outs]
    _assert_decreasing(intact, "fraction of intact boundary")
    np.testing.assert_allclose(intact, [1 - s for s in LEVELS], atol=1e-3)
    for o in outs:
        assert not (o.membrane_broken & ~volume.edge).any()
    # Where membranes broke the dark line is gone: the boundary gets lighter.
    _assert_increasing([float(o.image[volume.edge].mean()) for o in outs], "boundary intensity")
    debris = [o.params.get("n_vesicles", 0) + o.params.get("n_blebs", 0) for o in outs]
    assert debris == sorted(debris) and debris[-1] > 0
    assert ((outs[-1].labels == 0) & ~outs[-1].extracellular).any()  # debris: no cell, no ECS


# --- shrinkage --------------------------------------------------------------------------------


def test_shrinkage_compresses_and_darkens(volume):
    # Mark a central cube of tissue with its own ids and follow its volume.
    n = volume.labels.shape
    box = np.zeros(n, bool)
    box[tuple(slice(k // 4, 3 * k // 4) for k in n)] = True
    marked = volume.labels + box.astype(np.uint32) * np.uint32(1 << 20)
    outs = [volume.run("shrinkage", s, labels=marked) for s in LEVELS]
    cube = [float((o.labels >= 1 << 20).sum() / box.sum()) for o in outs]
    _assert_decreasing(cube, "volume of a marked tissue cube")
    assert cube[-1] < 0.7  # about half the volume at severity 1 (plus the swirl)
    _assert_decreasing([float(o.image.mean()) for o in outs], "mean intensity")
    for o in outs:  # nearest-neighbour warping never invents an id
        assert np.isin(np.unique(o.labels), np.unique(marked)).all()


def test_shrinkage_warps_labels_with_the_image(real):
    out = real.run("shrinkage", 1.0, seed=2)
    edge = _render.boundaries(out.labels)
    far = ~_render.grow(edge, 40.0, real.voxel)
    # Membranes still lie on the warped label boundaries.
    assert np.median(out.image[edge]) < np.median(out.image[far]) - 15


def test_shrinkage_closes_extracellular_space(synth):
    ecs = _sweep(synth, "shrinkage", lambda o: float(o.extracellular.mean()))
    _assert_decreasing(ecs, "extracellular fraction")


# --- indistinct neuropil ---------------------------------------------------------------------


def _contrast(vol, image):
    return float(np.median(image[vol.far]) - np.median(image[vol.edge]))


def test_indistinct_neuropil_fades_membranes_keeps_coarse(volume):
    outs = [volume.run("indistinct_neuropil", s) for s in LEVELS]
    contrast = [_contrast(volume, o.image) for o in outs]
    _assert_decreasing(contrast, "membrane-cytoplasm contrast")
    assert contrast[-1] < 0.35 * contrast[0]
    sigma = _render.sigma_vox(150.0, volume.voxel)
    coarse_in = ndi.gaussian_filter(volume.image.astype(float), sigma)
    coarse_out = ndi.gaussian_filter(outs[-1].image.astype(float), sigma)
    assert np.abs(coarse_out - coarse_in).mean() < 0.25 * contrast[0]
    for o in outs:
        np.testing.assert_array_equal(o.labels, volume.labels)


def test_indistinct_neuropil_keeps_imaging_noise(real):
    def noise(image):
        d2 = np.diff(image.astype(float), n=2, axis=2)
        return 1.4826 * np.median(np.abs(d2 - np.median(d2)))

    assert noise(real.run("indistinct_neuropil", 1.0).image) > 0.7 * noise(real.image)


# --- suspicious but legal input ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DAMAGES))
def test_inverted_polarity_warns(synth, name):
    with pytest.warns(UserWarning, match="inverted"):
        DAMAGES[name](
            255 - synth.image, labels=synth.labels, voxel_size_nm=synth.voxel, severity=0.5, seed=0
        )


def test_edema_needs_a_free_id_for_the_vessel_wall():
    image = np.full((4, 8, 8), 120, np.uint8)
    labels = np.full(image.shape, np.iinfo(np.uint32).max, np.uint32)
    labels[:, :4] = 1
    kwargs = {"labels": labels, "voxel_size_nm": 10.0, "severity": 0.5, "seed": 0}
    with pytest.raises(ValueError, match="perivascular=False"):
        damage.edema(image, **kwargs)
    assert damage.edema(image, perivascular=False, **kwargs).labels.max() == labels.max()
