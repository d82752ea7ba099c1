"""Tissue mask: real FIB-SEM and ssTEM tissue in, synthetic resin and padding out."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from emqc.sampling import TISSUE_MASK_DEFAULTS, tissue_mask


def block_mean(image: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    """Downsample by block averaging, as a pyramid level is made (trailing partial blocks cut)."""
    crop = tuple((n // f) * f for n, f in zip(image.shape, factors, strict=True))
    x = image[tuple(slice(0, c) for c in crop)].astype(np.float32)
    (fz, fy, fx), (cz, cy, cx) = factors, crop
    x = x.reshape(cz // fz, fz, cy // fy, fy, cx // fx, fx).mean(axis=(1, 3, 5))
    return np.rint(x).astype(np.uint8)


def resin(shape: tuple[int, ...], *, level: float, sigma: float, seed: int) -> np.ndarray:
    """Embedding resin at 10 nm: a uniform level plus Gaussian noise."""
    noise = np.random.default_rng(seed).normal(level, sigma, shape).astype(np.float32)
    return np.clip(np.rint(noise), 0, 255).astype(np.uint8)


def synthetic_tissue(shape: tuple[int, ...], *, seed: int) -> np.ndarray:
    """Texture with a correlation length of a couple of voxels, over grey levels 40–200."""
    x = ndi.gaussian_filter(np.random.default_rng(seed).normal(size=shape), 1.0)
    x = (x - x.min()) / (x.max() - x.min())
    return np.rint(40 + 160 * x).astype(np.uint8)


# --- real data --------------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.parametrize("factor", [4, 8])
def test_real_fibsem_cube_is_tissue(medulla, factor):
    image = block_mean(medulla.raw, (factor,) * 3)
    voxel = tuple(v * factor for v in medulla.voxel_size_nm)
    assert tissue_mask(image, voxel_size_nm=voxel).mean() >= 0.98


@pytest.mark.realdata
def test_real_sstem_stack_is_tissue(vnc):
    image = block_mean(vnc.raw, (1, 8, 8))
    z, y, x = vnc.voxel_size_nm
    assert tissue_mask(image, voxel_size_nm=(z, 8 * y, 8 * x)).mean() >= 0.98


@pytest.mark.realdata
@pytest.mark.parametrize("factor", [4, 8])
@pytest.mark.parametrize(("level", "sigma"), [(190, 6), (190, 20), (130, 30), (70, 20)])
def test_real_tissue_beside_resin_and_padding(medulla, factor, level, sigma):
    # x: 240 voxels of tissue, 160 of resin, 48 of 0-padding, 48 of 255-padding (10 nm).
    tissue = medulla.raw[:240, :240, :240]
    volume = np.concatenate(
        [
            tissue,
            resin((240, 240, 160), level=level, sigma=sigma, seed=factor),
            np.zeros((240, 240, 48), np.uint8),
            np.full((240, 240, 48), 255, np.uint8),
        ],
        axis=2,
    )
    mask = tissue_mask(block_mean(volume, (factor,) * 3), voxel_size_nm=(10.0 * factor,) * 3)
    t = 240 // factor
    # At most half a window (and the voxel straddling the boundary) is lost at the boundary.
    half = round(TISSUE_MASK_DEFAULTS["window_nm"] / (10 * factor) / 2)
    assert mask[:, :, : t - half - 1].all()
    assert not mask[:, :, t:].any()  # resin and both paddings: none is tissue


@pytest.mark.realdata
def test_real_tissue_framed_by_padding_keeps_padding_out(medulla):
    # A thin strip of resin between tissue and padding cannot hide behind the padding.
    volume = np.zeros((240, 320, 320), np.uint8)
    volume[:, 40:280, 40:280] = resin((240, 240, 240), level=190, sigma=20, seed=1)
    volume[:, 72:248, 72:248] = medulla.raw[:240, :176, :176]
    truth = np.zeros(volume.shape, bool)
    truth[:, 72:248, 72:248] = True
    mask = tissue_mask(block_mean(volume, (4, 4, 4)), voxel_size_nm=(40.0,) * 3)
    covered = block_mean(truth.astype(np.uint8), (4, 4, 4)) > 0
    assert not (mask & ~covered).any()
    assert mask[:, 30:50, 30:50].all()


# --- synthetic properties ------------------------------------------------------------


def test_docstring_example():
    rng = np.random.default_rng(0)
    image = np.full((16, 32, 32), 255, dtype=np.uint8)
    image[:, :, :16] = rng.integers(40, 200, (16, 32, 16))
    mask = tissue_mask(image, voxel_size_nm=(80, 80, 80))
    assert mask[:, :, :12].all() and not mask[:, :, 16:].any()


@settings(max_examples=15, deadline=None)
@given(
    fill=st.sampled_from([0, 255, 17]),
    width=st.integers(1, 12),
    side=st.integers(0, 2),
    seed=st.integers(0, 2**32 - 1),
)
def test_padding_is_never_tissue(fill, width, side, seed):
    image = synthetic_tissue((24, 24, 24), seed=seed)
    index = [slice(None)] * 3
    index[side] = slice(0, width)
    image[tuple(index)] = fill
    mask = tissue_mask(image, voxel_size_nm=(80, 80, 80))
    assert not mask[tuple(index)].any()
    index[side] = slice(width + 5, None)  # tissue half a window away from the padding
    assert mask[tuple(index)].mean() > 0.95


def test_invariant_to_gain_offset_and_polarity():
    image = synthetic_tissue((20, 40, 40), seed=3)
    image[:, :, 25:] = resin((20, 40, 15), level=180, sigma=1.5, seed=4)
    image[:, 30:] = 0
    mask = tissue_mask(image, voxel_size_nm=(80, 80, 80))
    assert 0.2 < mask.mean() < 0.6
    scaled = image.astype(np.float64) * 3.5 + 100
    np.testing.assert_array_equal(tissue_mask(scaled, voxel_size_nm=(80, 80, 80)), mask)
    inverted = 255 - image  # bright-membrane contrast (some SBEM) is still tissue
    np.testing.assert_array_equal(tissue_mask(inverted, voxel_size_nm=(80, 80, 80)), mask)


def test_defaults_are_the_signature_defaults():
    import inspect

    signature = inspect.signature(tissue_mask).parameters
    assert {k: signature[k].default for k in TISSUE_MASK_DEFAULTS} == dict(TISSUE_MASK_DEFAULTS)


def test_small_components_and_holes_follow_physical_sizes():
    image = np.full((30, 30, 30), 128, np.uint8)  # all padding ...
    image[2:28, 2:28, 2:28] = resin((26, 26, 26), level=128, sigma=1.0, seed=0)
    image[10:13, 10:13, 10:13] = synthetic_tissue((3, 3, 3), seed=1)  # ... a speck of texture
    with pytest.warns(UserWarning, match="intensity range"):
        mask = tissue_mask(image, voxel_size_nm=(100, 100, 100), window_nm=300)
    assert not mask.any()  # 0.027 µm³ < min_component_um3


def test_all_padding_warns_and_is_empty():
    with pytest.warns(UserWarning, match="constant"):
        mask = tissue_mask(np.zeros((8, 8, 8), np.uint8), voxel_size_nm=(80, 80, 80))
    assert mask.dtype == bool and mask.shape == (8, 8, 8) and not mask.any()


def test_too_coarse_level_warns():
    image = synthetic_tissue((8, 8, 8), seed=0)
    with pytest.warns(UserWarning, match="fewer than 3 voxels"):
        tissue_mask(image, voxel_size_nm=(1000, 1000, 1000))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"voxel_size_nm": (80, 80)}, "voxel_size_nm"),
        ({"voxel_size_nm": (80, 0, 80)}, "voxel_size_nm"),
        ({"voxel_size_nm": (80, 80, 80), "window_nm": -5}, "window_nm.*-5"),
        ({"voxel_size_nm": (80, 80, 80), "min_contrast": 1.5}, "min_contrast.*1.5"),
        ({"voxel_size_nm": (80, 80, 80), "min_contrast": 0}, "min_contrast"),
        ({"voxel_size_nm": (80, 80, 80), "min_component_um3": float("nan")}, "min_component"),
        ({"voxel_size_nm": (80, 80, 80), "max_hole_um3": -1}, "max_hole_um3"),
    ],
)
def test_bad_parameters_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tissue_mask(np.zeros((4, 4, 4), np.uint8), **kwargs)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((4, 4), np.uint8),
        np.zeros((4, 4, 4), bool),
        np.zeros((2, 2, 2), complex),
        [[[0]]],
    ],  # fmt: skip
)
def test_bad_images_raise_type_error(image):
    with pytest.raises(TypeError, match="image"):
        tissue_mask(image, voxel_size_nm=(80, 80, 80))


def test_non_finite_image_raises():
    image = np.zeros((4, 4, 4))
    image[1, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        tissue_mask(image, voxel_size_nm=(80, 80, 80))


def test_a_volume_smaller_than_the_speck_size_keeps_its_tissue():
    from emqc.pyramid import downsample_mean
    from emqc.synth import synthetic_neuropil

    # 0.44 µm³ of tissue at 20 nm: smaller than min_component_um3 (1 µm³) as a whole.
    image = downsample_mean(
        synthetic_neuropil((48, 96, 96), voxel_size_nm=10.0, seed=1).image, (2, 2, 2)
    )
    assert tissue_mask(image, voxel_size_nm=(20.0, 20.0, 20.0)).mean() > 0.95
