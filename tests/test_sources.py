"""Every reader of :mod:`emqc.sources` on the real FIB-SEM cube exported to its format.

One conformance suite (:class:`TestConformance`) runs for each export: whole and
partial reads equal the cube, shape/dtype/voxel size, files, pickling, Dask.
"""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from emqc.errors import UnsupportedDtypeError
from emqc.sources import SUPPORTED_FORMATS, VolumeSource, fit_read_chunks, open_source


@pytest.mark.realdata
class TestConformance:
    """What every reader guarantees, checked on each export of the real cube."""

    @pytest.fixture
    def src(self, exported) -> VolumeSource:
        return open_source(exported[0].spec)

    def test_metadata(self, src, exported):
        exp, cube = exported
        assert src.format == exp.format
        assert src.format in SUPPORTED_FORMATS
        assert src.shape == cube.shape
        assert src.dtype == np.dtype(exp.dtype)
        assert src.voxel_size_nm == exp.voxel_size_nm
        assert len(src.native_chunks) == 3 and all(n >= 1 for n in src.native_chunks)
        json.dumps(src.describe())

    def test_whole_volume(self, src, exported):
        out = src[:, :, :]
        assert out.shape == exported[1].shape and out.dtype == src.dtype
        assert np.array_equal(out, exported[1])

    @pytest.mark.parametrize(
        "box",
        [
            (slice(3, 17), slice(100, 163), slice(5, 250)),
            (slice(249, 250), slice(0, 1), slice(249, 250)),
            (slice(0, 64), slice(64, 128), slice(130, 197)),
            (slice(-20, None), slice(None, 7), slice(None)),
        ],
        ids=["odd", "corner-voxel", "chunk-straddling", "negative"],
    )
    def test_sub_box(self, src, exported, box):
        out = src[box]
        assert out.dtype == src.dtype and out.flags.c_contiguous
        assert np.array_equal(out, exported[1][box])

    def test_empty_box(self, src):
        assert src.read(slice(5, 5), slice(0, 10), slice(0, 10)).shape == (0, 10, 10)

    def test_files(self, src, exported):
        exp = exported[0]
        files = src.files()
        assert files and all(p.is_file() for p in files)
        if exp.n_files is not None:
            assert len(files) == exp.n_files
        if exp.first_files:
            assert tuple(p.name for p in files[: len(exp.first_files)]) == exp.first_files

    def test_pickle_round_trip(self, src, exported):
        clone = pickle.loads(pickle.dumps(src))
        assert (clone.shape, clone.dtype, clone.voxel_size_nm) == (
            src.shape,
            src.dtype,
            src.voxel_size_nm,
        )
        assert np.array_equal(clone[10:20, 30:90, 0:250], exported[1][10:20, 30:90, 0:250])

    def test_dask(self, src, exported):
        chunks = src.read_chunks((64, 64, 64))
        arr = da.from_array(src, chunks=chunks)
        assert np.array_equal(arr.compute(scheduler="threads"), exported[1])


# -- dispatch details ---------------------------------------------------------------------


@pytest.mark.realdata
def test_relative_glob_and_path(medulla, tmp_path, write_tiff_stack):
    write_tiff_stack(medulla.raw[:12, :40, :50], tmp_path / "rel")
    for spec in ("rel/*.tif", "rel", Path("rel")):
        src = open_source(spec)
        assert src.shape == (12, 40, 50)
        assert np.array_equal(src[:, :, :], medulla.raw[:12, :40, :50])


@pytest.mark.realdata
def test_ome_zarr_level_folder_takes_parent_scale(medulla, tmp_path, export_volume):
    exp = export_volume("ome-zarr", medulla.raw[:40, :40, :40], tmp_path)
    level = open_source(Path(exp.spec) / "s1")  # half resolution: 20 nm
    assert level.format == "ome-zarr" and level.shape == (20, 20, 20)
    assert level.voxel_size_nm == (20.0, 20.0, 20.0)
    files = level.files()
    assert files and all("s0" not in p.parts for p in files)


@pytest.mark.realdata
def test_hdf5_single_3d_dataset_needs_no_name(medulla, tmp_path):
    import h5py

    with h5py.File(tmp_path / "one.h5", "w") as f:
        f["raw"] = medulla.raw[:8, :16, :16]
        f.attrs["element_size_um"] = (0.04, 0.004, 0.004)  # on the file, in µm
    src = open_source(tmp_path / "one.h5")
    assert src.describe()["dataset"] == "/raw"
    assert src.voxel_size_nm == (40.0, 4.0, 4.0)


def test_hdf5_malformed_voxel_attribute_warns(tmp_path):
    import h5py

    with h5py.File(tmp_path / "odd.h5", "w") as f:
        f["raw"] = np.zeros((2, 3, 4), np.uint8)
        f["raw"].attrs["resolution"] = (4.0, 4.0)
    with pytest.warns(UserWarning, match="odd.h5.*resolution"):
        assert open_source(f"{tmp_path / 'odd.h5'}:raw").voxel_size_nm is None


def test_uint16_big_endian_tiff_slices(tmp_path):
    import tifffile

    rng = np.random.default_rng(0)
    vol = rng.integers(0, 65535, (3, 20, 30), dtype=np.uint16)
    (tmp_path / "be").mkdir()
    for i, plane in enumerate(vol):
        tifffile.imwrite(tmp_path / "be" / f"s{i:03d}.tiff", plane, byteorder=">")
    src = open_source(tmp_path / "be")
    assert src.dtype == np.dtype("uint16") and src.dtype.isnative
    assert np.array_equal(src[:, 5:9, 3:20], vol[:, 5:9, 3:20])


# -- fit_read_chunks ----------------------------------------------------------------------


def test_fit_read_chunks_grows_to_whole_slices():
    # Compressed 250² slices: read whole slices, 64 at a time.
    assert fit_read_chunks((64, 64, 64), (1, 250, 250), (250, 250, 250), 1) == (64, 250, 250)


def test_fit_read_chunks_keeps_chunked_native_units():
    assert fit_read_chunks((64, 64, 64), (128, 128, 128), (500, 500, 500), 1) == (128, 128, 128)
    assert fit_read_chunks((64, 64, 64), (64, 64, 64), (500, 500, 500), 2) == (64, 64, 64)


def test_fit_read_chunks_clips_to_the_volume():
    assert fit_read_chunks((128, 128, 128), (1, 1, 40), (10, 20, 40), 1) == (10, 20, 40)


def test_fit_read_chunks_shrinks_y_first_under_budget():
    # 20k × 20k slices would give 25.6 GB boxes; y is cut to one target chunk first.
    read = fit_read_chunks(
        (64, 64, 64), (1, 20000, 20000), (1000, 20000, 20000), 1, budget_bytes=128 * 2**20
    )
    assert read == (64, 64, 20000)  # 82 MB: whole rows, 64 slices
    read = fit_read_chunks(
        (64, 64, 64), (1, 20000, 20000), (1000, 20000, 20000), 2, budget_bytes=128 * 2**20
    )
    assert read == (64, 64, 9984)  # uint16: x is cut next, in whole target chunks


@given(
    target=st.tuples(*[st.integers(1, 300)] * 3),
    native=st.tuples(*[st.integers(1, 600)] * 3),
    shape=st.tuples(*[st.integers(1, 700)] * 3),
    itemsize=st.sampled_from([1, 2, 4]),
    budget=st.integers(1, 2**24),
)
def test_fit_read_chunks_properties(target, native, shape, itemsize, budget):
    read = fit_read_chunks(target, native, shape, itemsize, budget_bytes=budget)
    for r, t, n in zip(read, target, shape, strict=True):
        t = min(t, n)
        assert t <= r <= n
        assert r % t == 0 or r == n  # a target chunk never straddles two read boxes
    floor = np.prod([min(t, n) for t, n in zip(target, shape, strict=True)]) * itemsize
    assert np.prod(read) * itemsize <= max(budget, floor)


@pytest.mark.realdata
def test_ome_zarr_v04_in_zarr_v2_with_channel_axis(medulla, tmp_path):
    import zarr

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Call to deprecated class Scaler", DeprecationWarning)
        from ome_zarr.format import FormatV04
        from ome_zarr.writer import write_image
    crop = medulla.raw[:20, :30, :40]

    def write(name: str, image: np.ndarray) -> Path:
        write_image(
            image, zarr.open_group(tmp_path / name, mode="w", zarr_format=2), axes="czyx",
            fmt=FormatV04(), scale={"c": 1.0, "z": 0.05, "y": 0.004, "x": 0.004},
            axes_units={"z": "micrometer", "y": "micrometer", "x": "micrometer"},
            scale_factors=[], storage_options={"chunks": (1, 8, 16, 16)},
        )  # fmt: skip
        return tmp_path / name

    src = open_source(write("one.zarr", crop[None]))
    assert (src.format, src.shape, src.voxel_size_nm) == (
        "ome-zarr",
        (20, 30, 40),
        (50.0, 4.0, 4.0),
    )
    assert src.native_chunks == (8, 16, 16)
    assert np.array_equal(src[2:19, 5:30, 1:33], crop[2:19, 5:30, 1:33])
    with pytest.raises(UnsupportedDtypeError, match=r"two.zarr/s0 is an array of shape \(2, 20"):
        open_source(write("two.zarr", np.stack([crop, crop])))
