"""Bad inputs to :func:`emqc.sources.open_source`: the right error class, naming the file.

Small seeded synthetic volumes, so these run without the real data.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

from emqc.errors import (
    CorruptSourceError,
    EmqcError,
    InputError,
    ShapeMismatchError,
    SourceNotFoundError,
    UnsupportedDtypeError,
    UnsupportedSourceError,
)
from emqc.sources import open_source


@pytest.fixture
def vol() -> np.ndarray:
    return np.random.default_rng(42).integers(0, 256, (6, 48, 64), dtype=np.uint8)


def _slices(folder: Path, vol: np.ndarray, **kwargs: object) -> list[Path]:
    folder.mkdir(exist_ok=True)
    paths = []
    for i, plane in enumerate(vol):
        paths.append(folder / f"slice_{i:04d}.tif")
        tifffile.imwrite(paths[-1], plane, **kwargs)
    return paths


def _truncate(path: Path, keep: int) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(keep)


def _one_paragraph(err: EmqcError) -> str:
    msg = str(err)
    assert "\n" not in msg and msg == err.message
    return msg


# -- slice stacks -------------------------------------------------------------------------


def test_truncated_tiff_slice_fails_at_open(vol, tmp_path):
    paths = _slices(tmp_path / "s", vol)
    _truncate(paths[3], os.path.getsize(paths[3]) - 500)
    with pytest.raises(CorruptSourceError, match="slice_0003.tif is truncated") as info:
        open_source(tmp_path / "s")
    assert "rerun" in _one_paragraph(info.value)


def test_tiff_slice_truncated_after_open_fails_at_read(vol, tmp_path):
    paths = _slices(tmp_path / "s", vol)
    src = open_source(tmp_path / "s")
    _truncate(paths[2], os.path.getsize(paths[2]) - 500)
    assert np.array_equal(src[0:2, :, :], vol[0:2])
    with pytest.raises(CorruptSourceError, match="slice_0002.tif is truncated"):
        src[0:4, 40:48, :]


def test_corrupt_tiff_header(vol, tmp_path):
    paths = _slices(tmp_path / "s", vol)
    paths[1].write_bytes(b"\0" * 4000)
    with pytest.raises(CorruptSourceError, match="slice_0001.tif") as info:
        open_source(tmp_path / "s")
    assert isinstance(info.value.__cause__, ValueError)  # tifffile's error is kept


@pytest.mark.parametrize(
    "box", [(slice(0, 6), slice(0, 48), slice(0, 64)), (slice(4, 5), slice(9, 20), slice(0, 64))]
)
def test_corrupt_compressed_tiff_bytes_fail_at_read(vol, tmp_path, box):
    paths = _slices(tmp_path / "s", vol, compression="zlib", rowsperstrip=8)
    with tifffile.TiffFile(paths[4]) as tif:
        offsets, counts = tif.pages.first.dataoffsets, tif.pages.first.databytecounts
    data = bytearray(paths[4].read_bytes())
    for i in range(1, len(offsets)):  # scramble every strip but the first
        data[offsets[i] : offsets[i] + counts[i]] = bytes(
            b ^ 0x5A for b in data[offsets[i] : offsets[i] + counts[i]]
        )
    paths[4].write_bytes(bytes(data))
    src = open_source(tmp_path / "s")  # the header is intact
    with pytest.raises(CorruptSourceError, match="slice_0004.tif is truncated or corrupt") as info:
        src[box]
    assert info.value.__cause__ is not None


def test_slices_of_different_shapes(vol, tmp_path):
    _slices(tmp_path / "s", vol)
    tifffile.imwrite(tmp_path / "s" / "slice_0010.tif", np.zeros((48, 60), np.uint8))
    with pytest.raises(ShapeMismatchError, match="slice_0010.tif") as info:
        open_source(tmp_path / "s")
    msg = _one_paragraph(info.value)
    assert "48 × 60 uint8" in msg and "48 × 64 uint8" in msg and "slice_0000.tif" in msg


def test_slices_of_different_dtypes(vol, tmp_path):
    _slices(tmp_path / "s", vol)
    tifffile.imwrite(tmp_path / "s" / "slice_0002.tif", vol[2].astype(np.uint16))
    with pytest.raises(ShapeMismatchError, match="slice_0002.tif is 48 × 64 uint16"):
        open_source(tmp_path / "s")


def test_rgb_tiff_slices(tmp_path):
    (tmp_path / "s").mkdir()
    for i in range(3):
        tifffile.imwrite(
            tmp_path / "s" / f"{i}.tif", np.zeros((16, 16, 3), np.uint8), photometric="rgb"
        )
    with pytest.raises(UnsupportedDtypeError, match=r"0\.tif holds a colour.*greyscale") as info:
        open_source(tmp_path / "s")
    assert isinstance(info.value, TypeError)


def test_rgb_png_slices(tmp_path):
    from PIL import Image

    (tmp_path / "p").mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "p" / f"{i}.png")
    with pytest.raises(UnsupportedDtypeError, match=r"0\.png is a RGB PNG.*greyscale"):
        open_source(tmp_path / "p")


def test_truncated_png_slice(vol, tmp_path):
    from PIL import Image

    (tmp_path / "p").mkdir()
    for i, plane in enumerate(vol):
        Image.fromarray(plane).save(tmp_path / "p" / f"z{i}.png")
    path = tmp_path / "p" / "z3.png"
    _truncate(path, os.path.getsize(path) // 2)
    with pytest.raises(CorruptSourceError, match="z3.png is truncated"):
        open_source(tmp_path / "p")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no slices here")
    with pytest.raises(SourceNotFoundError, match=r"empty holds no \.tif, \.tiff or \.png") as info:
        open_source(tmp_path / "empty")
    assert isinstance(info.value, FileNotFoundError)


def test_glob_with_no_match(tmp_path):
    with pytest.raises(SourceNotFoundError, match=r"No file matches the pattern .*nowhere/\*\.tif"):
        open_source(str(tmp_path / "nowhere" / "*.tif"))


def test_glob_matching_other_files(vol, tmp_path):
    _slices(tmp_path / "s", vol)
    (tmp_path / "s" / "slice_notes.txt").write_text("x")
    with pytest.raises(UnsupportedSourceError, match="slice_notes.txt"):
        open_source(str(tmp_path / "s" / "slice_*"))


def test_folder_mixing_tiff_and_png(vol, tmp_path):
    from PIL import Image

    _slices(tmp_path / "s", vol)
    Image.fromarray(vol[0]).save(tmp_path / "s" / "extra.png")
    with pytest.raises(UnsupportedSourceError, match=r"mixes TIFF and PNG"):
        open_source(tmp_path / "s")


# -- single files -------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(SourceNotFoundError, match="gone.tif does not exist"):
        open_source(tmp_path / "gone.tif")
    with pytest.raises(FileNotFoundError, match="gone.h5 does not exist"):
        open_source(f"{tmp_path / 'gone.h5'}:/raw")


def test_unsupported_extension(tmp_path):
    (tmp_path / "vol.nii").write_bytes(b"\0" * 100)
    with pytest.raises(UnsupportedSourceError, match=r"vol.nii is not in a format") as info:
        open_source(tmp_path / "vol.nii")
    msg = _one_paragraph(info.value)
    assert "precomputed://" in msg and ".mrc" in msg and ":/raw" in msg


def test_url_without_precomputed_prefix():
    with pytest.raises(UnsupportedSourceError, match=r"precomputed://gs://bucket/em"):
        open_source("gs://bucket/em")


def test_single_2d_tiff(vol, tmp_path):
    tifffile.imwrite(tmp_path / "one.tif", vol[0])
    with pytest.raises(
        UnsupportedSourceError, match=r"one.tif holds one 2D image.*folder or a glob"
    ):
        open_source(tmp_path / "one.tif")


def test_truncated_multipage_tiff(vol, tmp_path):
    for kwargs in ({}, {"compression": "zlib"}):
        path = tmp_path / f"vol{len(kwargs)}.tif"
        tifffile.imwrite(path, vol, **kwargs)
        _truncate(path, os.path.getsize(path) - 300)
        with pytest.raises(CorruptSourceError, match=f"{path.name} is truncated"):
            open_source(path)


def test_multichannel_multipage_tiff(tmp_path):
    tifffile.imwrite(tmp_path / "rgbvol.tif", np.zeros((4, 16, 16, 3), np.uint8), photometric="rgb")
    with pytest.raises(UnsupportedDtypeError, match="rgbvol.tif holds a colour"):
        open_source(tmp_path / "rgbvol.tif")


def test_hdf5_missing_dataset_lists_3d_datasets(vol, tmp_path):
    import h5py

    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["volumes/raw"] = vol
        f["volumes/labels"] = vol.astype(np.uint16)
        f["thumb"] = vol[0]
    with pytest.raises(SourceNotFoundError, match="v.h5 has no dataset /raw") as info:
        open_source(f"{tmp_path / 'v.h5'}:/raw")
    msg = _one_paragraph(info.value)
    assert "/volumes/raw (6, 48, 64)" in msg and "/volumes/labels" in msg and "/thumb" not in msg
    with pytest.raises(InputError, match="several 3D datasets"):
        open_source(tmp_path / "v.h5")
    with pytest.raises(UnsupportedSourceError, match=r"v.h5:/thumb is 2D"):
        open_source(f"{tmp_path / 'v.h5'}:thumb")


def test_hdf5_4d_dataset(tmp_path):
    import h5py

    with h5py.File(tmp_path / "c.h5", "w") as f:
        f["raw"] = np.zeros((2, 3, 4, 5), np.uint8)
    with pytest.raises(UnsupportedSourceError, match=r"c.h5:/raw is 4D"):
        open_source(f"{tmp_path / 'c.h5'}:/raw")


def test_not_an_hdf5_file(tmp_path):
    (tmp_path / "bad.h5").write_bytes(b"hello" * 100)
    with pytest.raises(CorruptSourceError, match="bad.h5 is not a readable HDF5 file"):
        open_source(f"{tmp_path / 'bad.h5'}:/raw")


def test_mrc_truncated_and_2d(vol, tmp_path):
    import mrcfile

    with mrcfile.new(tmp_path / "v.mrc") as mrc:
        mrc.set_data(vol.astype(np.int16))
    _truncate(tmp_path / "v.mrc", os.path.getsize(tmp_path / "v.mrc") - 100)
    with pytest.raises(CorruptSourceError, match="v.mrc is truncated"):
        open_source(tmp_path / "v.mrc")
    with mrcfile.new(tmp_path / "flat.mrc") as mrc:
        mrc.set_data(vol[0].astype(np.int16))
    with pytest.raises(UnsupportedSourceError, match="flat.mrc holds one 2D image"):
        open_source(tmp_path / "flat.mrc")
    (tmp_path / "junk.rec").write_bytes(b"\1" * 2000)
    with pytest.raises(CorruptSourceError, match="junk.rec is not a readable MRC file"):
        open_source(tmp_path / "junk.rec")


def test_zarr_group_that_is_not_ome_lists_arrays(vol, tmp_path):
    import zarr

    group = zarr.open_group(tmp_path / "g.zarr", mode="w")
    group.create_array("raw", shape=vol.shape, dtype=vol.dtype)
    group.create_group("seg").create_array("cells", shape=vol.shape, dtype="uint32")
    with pytest.raises(UnsupportedSourceError, match=r"g.zarr is a Zarr group") as info:
        open_source(tmp_path / "g.zarr")
    assert "raw (6, 48, 64)" in str(info.value) and "seg/cells" in str(info.value)


def test_zarr_multichannel(tmp_path):
    import zarr

    zarr.create_array(tmp_path / "c.zarr", shape=(3, 4, 5, 6), dtype="uint8")
    with pytest.raises(UnsupportedSourceError, match=r"c.zarr is an array of shape \(3, 4, 5, 6\)"):
        open_source(tmp_path / "c.zarr")


def test_n5_group_lists_datasets(vol, tmp_path):
    import tensorstore as ts

    (tmp_path / "c.n5").mkdir()
    (tmp_path / "c.n5" / "attributes.json").write_text(json.dumps({"n5": "2.0.0"}))
    spec = {
        "driver": "n5",
        "kvstore": {"driver": "file", "path": str(tmp_path / "c.n5" / "raw")},
        "metadata": {
            "dimensions": [64, 48, 6],
            "blockSize": [32, 32, 6],
            "dataType": "uint8",
            "compression": {"type": "raw"},
        },
    }
    ts.open(spec, create=True).result()
    with pytest.raises(UnsupportedSourceError, match=r"c.n5 is an N5 group.*Datasets inside: raw"):
        open_source(tmp_path / "c.n5")
    assert open_source(tmp_path / "c.n5" / "raw").shape == (6, 48, 64)


def test_precomputed_missing_layer_and_missing_chunk(vol, tmp_path):
    from cloudvolume import CloudVolume

    with pytest.raises(SourceNotFoundError, match="nolayer"):
        open_source(f"precomputed://file://{tmp_path / 'nolayer'}")
    url = f"file://{tmp_path / 'layer'}"
    info = CloudVolume.create_new_info(
        num_channels=1,
        layer_type="image",
        data_type="uint8",
        encoding="raw",
        resolution=[4, 4, 40],
        voxel_offset=[0, 0, 0],
        chunk_size=[32, 32, 3],
        volume_size=[64, 48, 6],
    )
    cv = CloudVolume(url, info=info, progress=False, parallel=False)
    cv.commit_info()
    cv[:, :, :] = vol.T[..., None]
    src = open_source(f"precomputed://{url}")
    assert src.voxel_size_nm == (40.0, 4.0, 4.0)
    chunk = next(p for p in src.files() if p.name.startswith("0-32_0-32_0-3"))
    chunk.unlink()
    assert np.array_equal(src[3:6, :, :], vol[3:6])  # other chunks still read
    with pytest.raises(CorruptSourceError, match=r"chunk .*0-32_0-32_0-3.* is missing"):
        src[0:3, 0:10, 0:10]


def test_corrupt_zarr_chunk_and_metadata(tmp_path):
    import zarr

    arr = zarr.create_array(tmp_path / "c.zarr", shape=(8, 8, 8), chunks=(4, 4, 4), dtype="u1")
    arr[...] = 7
    src = open_source(tmp_path / "c.zarr")
    chunk = tmp_path / "c.zarr" / "c" / "0" / "0" / "0"
    _truncate(chunk, os.path.getsize(chunk) // 2)
    assert (src[4:8, :, :] == 7).all()
    with pytest.raises(CorruptSourceError, match=r"c.zarr could not be read") as info:
        src[0:4, 0:4, 0:4]
    assert isinstance(info.value.__cause__, RuntimeError)
    (tmp_path / "c.zarr" / "zarr.json").write_text("{not json")
    with pytest.raises(CorruptSourceError, match=r"c.zarr could not be opened as Zarr"):
        open_source(tmp_path / "c.zarr")


def test_corrupt_n5_block(tmp_path):
    import tensorstore as ts

    spec = {
        "driver": "n5",
        "kvstore": {"driver": "file", "path": str(tmp_path / "v.n5")},
        "metadata": {"dimensions": [8, 8, 8], "blockSize": [4, 4, 4], "dataType": "uint8",
                     "compression": {"type": "gzip"}},
    }  # fmt: skip
    ts.open(spec, create=True).result()[...] = np.full((8, 8, 8), 7, np.uint8)
    src = open_source(tmp_path / "v.n5")
    block = tmp_path / "v.n5" / "0" / "0" / "0"
    _truncate(block, os.path.getsize(block) - 5)
    with pytest.raises(CorruptSourceError, match=r"v.n5 could not be read"):
        src[0:4, 0:4, 0:4]
