"""The networks' building blocks: architecture, targets, augmentation, saving, tiled inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emqc.errors import InputError
from emqc.models import Predictor, UNet, UNetConfig
from emqc.models._augment import CropSampler
from emqc.models._fused import FusedUNet, compose_upsampling, fused_or_plain, max_pool_2
from emqc.models._infer import _sigmoid_in_place, _stitch, fold_batchnorm
from emqc.models._targets import boundary_from_ids
from emqc.models._train import WEIGHTS_DIR, load_network, save_network


def tiny(dims: int, heads=("boundary",), working=10.0) -> UNet:
    torch.manual_seed(0)
    return UNet(
        UNetConfig(dims=dims, heads=heads, base_channels=4, depth=2, working_voxel_nm=working)
    ).eval()


@pytest.mark.parametrize("dims", [2, 3])
def test_unet_output_has_one_channel_per_head_and_the_input_shape(dims):
    net = tiny(dims, heads=("a", "b", "c"))
    x = torch.rand(2, 1, *([16] * dims))
    assert net(x).shape == (2, 3, *([16] * dims))


def test_unet_rejects_bad_configs():
    with pytest.raises(ValueError, match="dims"):
        UNet(UNetConfig(dims=4, heads=("a",)))
    with pytest.raises(ValueError, match="heads"):
        UNet(UNetConfig(dims=3, heads=()))


def test_boundary_from_ids_marks_both_sides_and_scales_with_voxel_size():
    ids = np.zeros((4, 4, 8), np.uint32)
    ids[..., 4:] = 1
    b10 = boundary_from_ids(ids, voxel_size_nm=(10, 10, 10), width_nm=20)
    assert b10[..., 3].all() and b10[..., 4].all() and b10.sum() == 2 * 16
    b5 = boundary_from_ids(ids, voxel_size_nm=(5, 5, 5), width_nm=20)  # 20 nm = 4 voxels
    assert b5[..., 2:6].all() and b5.sum() == 4 * 16


def test_crop_sampler_keeps_image_and_targets_aligned():
    rng = np.random.default_rng(0)
    image = rng.random((40, 40, 40)).astype(np.float32)
    target = image > 0.5
    sampler = CropSampler(image, {"t": target}, crop=(16, 16, 16), rng=rng)
    sampler.aug = type(sampler.aug)(
        rescale_p=0.0, intensity_p=0.0, blur_p=0.0, noise_p=0.0, invert_p=0.0
    )
    for _ in range(5):
        img, tgt = sampler.sample()
        assert img.shape == tgt["t"].shape == (16, 16, 16)
        np.testing.assert_array_equal(img > 0.5, tgt["t"] > 0.5)


def test_save_and_load_round_trip(tmp_path):
    net = tiny(3)
    save_network(net, tmp_path / "n.pt", training={"note": "test"})
    loaded, info = load_network(tmp_path / "n.pt")
    assert info == {"note": "test"} and loaded.config == net.config
    x = torch.rand(1, 1, 16, 16, 16)
    torch.testing.assert_close(loaded(x), net(x), atol=2e-2, rtol=0)  # weights stored as float16


@pytest.mark.parametrize("dims", [2, 3])
def test_tiled_inference_equals_one_tile(dims):
    net = tiny(dims)
    rng = np.random.default_rng(1)
    image = rng.random((44,) * dims).astype(np.float32)

    def run(tiles):
        with torch.inference_mode():
            return net(torch.from_numpy(np.stack(tiles)[:, None])).numpy()

    whole = _stitch(image, 80, 16, 1, run, net.size_multiple)  # the whole block as one tile
    tiled = _stitch(image, 48, 16, 1, run, net.size_multiple, whole_max=0)  # 3 tiles per axis
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


@pytest.mark.parametrize("dims", [2, 3])
def test_folded_channels_last_network_matches_the_trained_one(dims):
    net = tiny(dims)
    for m in net.modules():  # non-trivial batch-norm statistics
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    predictor = Predictor(net, tile=32, halo=8)
    x = np.random.default_rng(4).random((2, *([32] * dims))).astype(np.float32)
    with torch.inference_mode():
        expected = net(torch.from_numpy(x[:, None])).numpy()
        np.testing.assert_allclose(predictor._run(list(x)), expected, atol=1e-4)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("bf16", [False, True])
def test_fused_network_gives_the_unfused_networks_logits(dims, bf16):
    net = tiny(dims, heads=("a", "b"))
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    layout = torch.channels_last_3d if dims == 3 else torch.channels_last
    folded = fold_batchnorm(net).to(memory_format=layout)
    fast = fused_or_plain(folded, bf16=bf16)
    if not bf16 or torch.ops.mkldnn._is_mkldnn_bf16_supported():
        # oneDNN runs the fused op here (bfloat16 needs AVX-512 or AVX-NE-CONVERT; a CPU
        # without them gets the plain network, which the equality below checks as well).
        assert isinstance(fast, FusedUNet)
    x = torch.from_numpy(np.random.default_rng(5).random((2, 1, *([24] * dims)), np.float32))
    x = x.contiguous(memory_format=layout)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        expected = folded(x).float()
    with torch.inference_mode():
        got = fast(x)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    # Same operations in the same dtype: equal up to the order of float additions.
    torch.testing.assert_close(got, expected, atol=2e-2 if bf16 else 1e-5, rtol=0)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    dims=st.sampled_from([2, 3]),
    sizes=st.lists(st.integers(1, 6), min_size=3, max_size=3),
    channels=st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(0, 2), st.integers(1, 3)),
    conv_bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_composed_upsampling_equals_the_convolution_of_the_upsampled_map(
    dims, sizes, channels, conv_bias, seed
):
    cin, c, c_skip, cout = channels
    torch.manual_seed(seed)
    up_cls, conv_cls = (
        (torch.nn.ConvTranspose3d, torch.nn.Conv3d)
        if dims == 3
        else (torch.nn.ConvTranspose2d, torch.nn.Conv2d)
    )
    up = up_cls(cin, c, 2, stride=2, bias=conv_bias).double()
    conv = conv_cls(c + c_skip, cout, 3, padding=1, bias=conv_bias).double()
    x = torch.randn(2, cin, *sizes[:dims], dtype=torch.float64)
    skip = torch.zeros(2, c_skip, *(2 * n for n in sizes[:dims]), dtype=torch.float64)
    with torch.no_grad():
        expected = conv(torch.cat([up(x), skip], dim=1))  # the skip's share is zero here
        kernel, bias, faces = compose_upsampling(up, conv)
        transposed = (
            torch.nn.functional.conv_transpose3d
            if dims == 3
            else torch.nn.functional.conv_transpose2d
        )
        got = transposed(x, kernel, bias, stride=2, padding=1)
        for region, value in faces:
            got[(slice(None), slice(None), *region)] += value
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    dims=st.sampled_from([2, 3]),
    sizes=st.lists(st.integers(2, 9), min_size=3, max_size=3),
    dtype=st.sampled_from([torch.float32, torch.bfloat16]),
    seed=st.integers(0, 2**16),
)
def test_pairwise_max_pool_equals_torchs_pooling(dims, sizes, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    shape = (2, 3, *sizes[:dims])
    layout = torch.channels_last_3d if dims == 3 else torch.channels_last
    x = torch.randn(shape, generator=g).to(dtype)
    x.view(-1)[:: max(1, x.numel() // 3)] = float("nan")  # NaN wins, as in the pooling
    x = x.contiguous(memory_format=layout)
    expected = (torch.nn.functional.max_pool3d if dims == 3 else torch.nn.functional.max_pool2d)(
        x, 2
    )
    got = max_pool_2(x)
    assert got.shape == expected.shape and got.dtype == dtype
    torch.testing.assert_close(got, expected, rtol=0, atol=0, equal_nan=True)
    assert got.is_contiguous(memory_format=layout)


def test_in_place_sigmoid_equals_the_expression_to_the_bit():
    x = np.random.default_rng(3).normal(0, 30, (3, 7, 8, 9)).astype(np.float32)
    x.flat[:6] = [np.inf, -np.inf, np.nan, 0.0, 88.8, -104.0]
    with np.errstate(over="ignore"):
        expected = 1.0 / (1.0 + np.exp(-x))
    got = _sigmoid_in_place(x.copy())
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    assert np.nanmin(got) >= 0 and np.nanmax(got) <= 1


def test_fused_network_falls_back_to_the_plain_one_where_the_op_fails(monkeypatch):
    folded = fold_batchnorm(tiny(3))

    def missing(*args, **kwargs):
        raise RuntimeError("no oneDNN in this build")

    monkeypatch.setattr(torch.ops.mkldnn, "_convolution_pointwise", missing)
    fast = fused_or_plain(folded, bf16=True)
    assert not isinstance(fast, FusedUNet)
    x = torch.rand(1, 1, 16, 16, 16)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = folded(x).float()
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), expected)


def test_predictor_resamples_and_refuses_far_voxel_sizes():
    predictor = Predictor(tiny(3, heads=("boundary", "extracellular")), tile=32, halo=8)
    raw = np.random.default_rng(2).integers(0, 255, (20, 24, 28), dtype=np.uint8)
    out = predictor.predict(raw, voxel_size_nm=(8.0, 8.0, 8.0))
    assert set(out) == {"boundary", "extracellular"}
    for p in out.values():
        assert p.shape == raw.shape and p.dtype == np.float32 and 0 <= p.min() and p.max() <= 1
    with pytest.raises(InputError, match="too far from the 10 nm.*accepted: 2.5 to 16 nm"):
        predictor.predict(raw, voxel_size_nm=(40.0, 40.0, 40.0))


def test_2d_predictor_runs_per_section():
    predictor = Predictor(tiny(2, heads=("membrane", "synapse"), working=9.0), tile=32, halo=8)
    raw = np.random.default_rng(3).integers(0, 255, (3, 30, 30), dtype=np.uint8)
    out = predictor.predict(raw, voxel_size_nm=(50.0, 9.0, 9.0))
    assert out["synapse"].shape == raw.shape


@pytest.mark.parametrize("path", sorted(WEIGHTS_DIR.glob("**/*.pt")), ids=lambda p: p.stem)
def test_committed_weights_load_safely_and_are_small(path):
    net, training = load_network(path)  # torch.load(weights_only=True)
    assert path.stat().st_size < 5_000_000
    assert set(training) >= {"datasets", "split", "iterations", "seed", "torch"}
    assert isinstance(training["torch"], str)
    x = torch.rand(1, 1, *([net.size_multiple * 2] * net.config.dims))
    with torch.inference_mode():
        assert net(x).shape[1] == len(net.config.heads)


def test_weights_are_committed():
    assert (WEIGHTS_DIR / "fibsem3d.pt").is_file()


def test_damaged_copies_teach_no_boundary_across_broken_membrane_and_their_true_ecs():
    from emqc.damage import edema, membrane_breakdown
    from emqc.models._fibsem_data import damaged_targets
    from emqc.synth import synthetic_neuropil

    vol = synthetic_neuropil((24, 64, 64), voxel_size_nm=12.0, seed=5)
    vox = (12.0, 12.0, 12.0)
    clean = boundary_from_ids(vol.cell_ids, voxel_size_nm=vox)
    broken = membrane_breakdown(
        vol.image, labels=vol.cell_ids, voxel_size_nm=vox, severity=0.6, seed=1
    )
    t = damaged_targets(broken, voxel_size_nm=vox)
    assert broken.membrane_broken.any() and not (t["boundary"] & broken.membrane_broken).any()
    assert 0.2 < t["boundary"].sum() / clean.sum() < 0.9  # gaps removed, the rest kept
    swollen = edema(vol.image, labels=vol.cell_ids, voxel_size_nm=vox, severity=0.8, seed=1)
    t = damaged_targets(swollen, voxel_size_nm=vox)
    np.testing.assert_array_equal(t["extracellular"], swollen.extracellular)
    assert t["extracellular"].mean() > 0.1 and not (t["boundary"] & t["extracellular"]).any()
    assert t["boundary"].sum() > 0.5 * clean.sum()  # the shrunken cells keep their membranes


def test_a_network_starts_from_a_pretrained_one_head_by_head(tmp_path, monkeypatch):
    from emqc.models import _train

    old = tiny(3, heads=("boundary",))
    monkeypatch.setattr(_train, "WEIGHTS_DIR", tmp_path)
    save_network(old, tmp_path / "pretrained" / "stage1.pt", training={})
    new = tiny(3, heads=("extracellular", "boundary"))
    torch.nn.init.zeros_(new.out.weight)
    _train.init_from_pretrained(new, "stage1")
    loaded, _ = load_network(tmp_path / "pretrained" / "stage1.pt")  # float16 as stored
    x = torch.rand(1, 1, 16, 16, 16)
    with torch.inference_mode():
        torch.testing.assert_close(new(x)[:, 1], loaded(x)[:, 0])  # boundary carried over
        assert not torch.equal(new(x)[:, 0], loaded(x)[:, 0])  # a new head starts fresh
