"""``emqc score --all-blocks``: the block grid, the score map, the CLI and atomic output."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import zarr
from click.testing import CliRunner

from emqc.cli import cli
from emqc.errors import NoTissueError
from emqc.ingest import ingest
from emqc.sampling import BlockList
from emqc.scoring import BlockScores
from emqc.scoring._grid import grid_index, grid_origins, grid_shape
from emqc.scoring._run import score_volume
from emqc.scoring._scoremap import MAP_CHANNELS, score_map_values
from emqc.sources._array import ArraySource
from emqc.synth import synthetic_neuropil
from emqc.testing import intensity_maps

VOXEL = (10.0, 10.0, 10.0)
BLOCK = (16, 32, 16)  # not a cube, so that a swapped axis shows


@pytest.fixture(scope="module")
def volume(tmp_path_factory) -> Path:
    """Neuropil on x < 64 and constant padding beyond: the tissue mask keeps x < 32."""
    image = synthetic_neuropil((48, 64, 96), voxel_size_nm=10.0, seed=9).image.copy()
    image[:, :, 64:] = 255
    dest = tmp_path_factory.mktemp("grid") / "synth.ome.zarr"
    ingest(ArraySource(image, voxel_size_nm=VOXEL, name="synthetic"), dest, progress=False)
    return dest


@pytest.fixture(scope="module")
def grid_run(volume, tmp_path_factory):
    out = tmp_path_factory.mktemp("grid-run") / "s"
    return score_volume(volume, out=out, all_blocks=True, block_vox=BLOCK,
                        predict=intensity_maps, progress=False)  # fmt: skip


# --- the grid (pure) -------------------------------------------------------------------------


def _cases():
    rng = np.random.default_rng(0)
    fixed = [((10, 8, 9), (4, 8, 4)), ((7, 13, 29), (3, 5, 7)), ((5, 5, 5), (5, 5, 5)),
             ((16, 17, 1), (16, 4, 1)), ((3, 4, 5), (4, 4, 4))]  # fmt: skip
    drawn = [(tuple(rng.integers(1, 40, 3)), tuple(rng.integers(1, 12, 3))) for _ in range(12)]
    return fixed + drawn


@pytest.mark.parametrize(("shape", "block"), _cases())
def test_grid_tiles_the_volume_without_overlap(shape, block):
    origins = grid_origins(shape, block_shape=block)
    counts = grid_shape(shape, block_shape=block)
    assert counts == tuple(s // b for s, b in zip(shape, block, strict=True))
    assert origins.shape == (math.prod(counts), 3) and origins.dtype == np.int64
    assert ((origins >= 0) & (origins + block <= np.array(shape))).all()  # inside the volume
    cover = np.zeros(shape, dtype=np.int64)
    for o in origins:
        cover[tuple(slice(a, a + b) for a, b in zip(o, block, strict=True))] += 1
    assert cover.max(initial=0) <= 1  # no overlap
    # what is left uncovered is exactly the far remainder of each axis (the edge policy)
    tiled = tuple(slice(0, c * b) for c, b in zip(counts, block, strict=True))
    assert (cover[tiled] == 1).all() and cover.sum() == cover[tiled].sum()
    index = grid_index(origins, block_shape=block)
    assert index.tolist() == np.indices(counts).reshape(3, -1).T.tolist()  # C order
    # an all-tissue mask excludes nothing, at any mask scale
    for scale in ((1, 1, 1), (2, 3, 4)):
        mask = np.ones([-(-s // k) for s, k in zip(shape, scale, strict=True)], dtype=bool)
        kept = grid_origins(shape, block_shape=block, valid=mask, mask_scale=scale)
        assert np.array_equal(kept, origins)


def test_grid_keeps_only_blocks_wholly_in_tissue():
    shape, block, scale = (24, 24, 24), (6, 6, 6), (4, 4, 4)
    mask = np.zeros((6, 6, 6), dtype=bool)
    mask[:, :, :3] = True  # tissue on x < 12
    mask[0, 0, 0] = False  # and a hole in one corner
    kept = {tuple(o) for o in grid_origins(shape, block_shape=block, valid=mask, mask_scale=scale)}
    for o in grid_origins(shape, block_shape=block).tolist():
        ends = zip(o, block, scale, strict=True)
        cells = tuple(slice(a // s, (a + b - 1) // s + 1) for a, b, s in ends)
        assert (tuple(o) in kept) == bool(mask[cells].all()), o
    assert (0, 0, 6) in kept and (0, 0, 0) not in kept and (0, 0, 12) not in kept


def test_grid_checks_its_input():
    with pytest.raises(TypeError, match="block_shape"):
        grid_origins((8, 8, 8), block_shape=(4.0, 4, 4))
    with pytest.raises(ValueError, match=r"volume_shape must be positive.*\(8, 0, 8\)"):
        grid_origins((8, 0, 8), block_shape=(4, 4, 4))
    with pytest.raises(ValueError, match="valid and mask_scale together"):
        grid_origins((8, 8, 8), block_shape=(4, 4, 4), valid=np.ones((2, 2, 2), dtype=bool))
    with pytest.raises(ValueError, match=r"\[0, 2, 0\] is not on the grid"):
        grid_index(np.array([[0, 2, 0]]), block_shape=(4, 4, 4))


def test_map_values_are_nan_where_not_scored_or_not_judged():
    nan = float("nan")
    judged = BlockScores(0.9, nan, 0.5, 0.8, too_poor_to_judge=False)  # edema not judged
    poor = BlockScores(0.2, 0.3, 0.4, 0.1, too_poor_to_judge=True)
    m = score_map_values((2, 1, 2), np.array([[0, 0, 1], [1, 0, 0]]), [judged, poor])
    assert m.shape == (len(MAP_CHANNELS), 2, 1, 2) and m.dtype == np.float32
    assert np.isnan(m[:, 0, 0, 0]).all() and np.isnan(m[:, 1, 0, 1]).all()  # not scored
    np.testing.assert_array_equal(m[:, 0, 0, 1], np.float32([0.9, nan, 0.5, 0.8]))
    # too poor to judge: no preservation score, but the imaging quality that says why
    np.testing.assert_array_equal(m[:, 1, 0, 0], np.float32([nan, nan, nan, 0.1]))
    with pytest.raises(ValueError, match="outside grid_shape"):
        score_map_values((1, 1, 1), np.array([[0, 0, 1]]), [judged])


# --- score_volume(all_blocks=True) -----------------------------------------------------------


def test_score_map_holds_the_table_at_the_grid_positions(grid_run, volume):
    out = grid_run.out
    rows = pq.read_table(out / "blocks.parquet").to_pylist()
    counts = grid_shape((48, 64, 96), block_shape=BLOCK)
    assert counts == (3, 2, 6)
    # tissue is x < 32: grid columns 0 and 1 only, every one of them scored
    assert len(rows) == 3 * 2 * 2 == len(grid_run.scores)
    values = zarr.open_array(out / "score_map.ome.zarr" / "0", mode="r")[...]
    assert values.shape == (4, *counts) and values.dtype == np.float32
    seen = np.zeros(counts, dtype=bool)
    for r in rows:
        pos = (r["z_vox"] // BLOCK[0], r["y_vox"] // BLOCK[1], r["x_vox"] // BLOCK[2])
        seen[pos] = True
        expect = [np.nan if r["too_poor_to_judge"] and c != "imaging_quality" else r[c]
                  for c in MAP_CHANNELS]  # fmt: skip
        np.testing.assert_array_equal(values[(slice(None), *pos)], np.float32(expect))
    assert np.isfinite(values[:, seen][0]).any()
    assert np.isnan(values[:, ~seen]).all() and seen.sum() == len(rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["selection"] == "grid" and summary["seed_source"] == "grid"
    assert summary["n_blocks"] == len(rows) and summary["block_shape_vox"] == list(BLOCK)
    blocks = BlockList.from_json_bytes((out / "blocks.json").read_bytes())
    assert blocks.parameters.block_shape_vox == BLOCK and not blocks.parameters.allow_overlap


def test_score_map_opens_as_ome_zarr_over_the_volume(grid_run, volume):
    path = grid_run.out / "score_map.ome.zarr"
    assert grid_run.score_map == path
    with warnings.catch_warnings():
        # ome-zarr 0.18 builds a deprecated Scaler as a default argument at import.
        warnings.filterwarnings("ignore", "Call to deprecated class Scaler", DeprecationWarning)
        from ome_zarr.io import parse_url
        from ome_zarr.reader import Reader
    node = next(iter(Reader(parse_url(str(path)))()))
    assert node.metadata["channel_names"] == list(MAP_CHANNELS)
    assert [a["name"] for a in node.metadata["axes"]] == ["c", "z", "y", "x"]
    scale, translation = node.metadata["coordinateTransformations"][0]
    block_nm = [b * v for b, v in zip(BLOCK, VOXEL, strict=True)]
    assert scale == {"type": "scale", "scale": [1.0, *block_nm]}
    # the centre of map voxel (i, j, k) is the centre of the block it stands for
    offset = np.array(translation["translation"][1:])
    for b in grid_run.blocks.blocks:
        centre = (np.array(b.origin_vox) + (np.array(BLOCK) - 1) / 2) * VOXEL
        index = np.array(b.origin_vox) // BLOCK
        np.testing.assert_allclose(index * block_nm + offset, centre)
    assert tuple(node.data[0].shape) == (4, 3, 2, 6)
    attrs = zarr.open_group(path, mode="r").attrs.asdict()["emqc"]
    manifest = json.loads((volume / "emqc-manifest.json").read_text())
    assert attrs["format"] == "emqc.score-map/1" and "score map" in attrs["description"]
    assert attrs["volume_digest"] == manifest["root_digest"]
    assert attrs["block_shape_vox"] == list(BLOCK) and attrs["grid_shape"] == [3, 2, 6]


def test_all_blocks_excludes_a_sample(volume, tmp_path):
    with pytest.raises(ValueError, match="without blocks, n or seed"):
        score_volume(volume, out=tmp_path / "s", all_blocks=True, n=3, predict=intensity_maps)
    with pytest.raises(ValueError, match="without blocks, n or seed"):
        score_volume(volume, out=tmp_path / "s", all_blocks=True, seed=1, predict=intensity_maps)


def test_no_grid_block_in_tissue_is_an_error(volume, tmp_path):
    # 48 voxels along x never fit in the 32 voxels of tissue
    with pytest.raises(NoTissueError, match="none of the 2 grid blocks"):
        score_volume(volume, out=tmp_path / "s", all_blocks=True, block_vox=(48, 64, 48),
                     predict=intensity_maps, progress=False)  # fmt: skip
    assert list(tmp_path.iterdir()) == []


# --- atomic output ---------------------------------------------------------------------------


def test_nothing_is_left_when_scoring_fails(volume, tmp_path):
    def broken(raw, voxel_size_nm):
        raise RuntimeError("network failed")

    with pytest.raises(RuntimeError, match="network failed"):
        score_volume(volume, out=tmp_path / "s", all_blocks=True, block_vox=(16, 32, 32),
                     predict=broken, progress=False)  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_a_failed_map_leaves_no_output_and_keeps_the_old_one(volume, tmp_path, monkeypatch):
    import emqc.scoring._run as run_module

    def half_written(path, values, **kwargs):
        Path(path).mkdir()
        (Path(path) / "zarr.json").write_text("{")
        raise OSError("disk full")

    monkeypatch.setattr(run_module, "write_score_map", half_written)
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "old.txt").write_text("previous run")
    with pytest.raises(OSError, match="disk full"):
        score_volume(volume, out=tmp_path / "s", all_blocks=True, block_vox=(16, 32, 32),
                     predict=intensity_maps, overwrite=True, progress=False)  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # no partial folder left
    assert [p.name for p in (tmp_path / "s").iterdir()] == ["old.txt"]


# --- command line ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--all-blocks", "--blocks", "3"], "--blocks N and --all-blocks cannot be combined"),
        (["--all-blocks", "--block-list", "b.json"], "--block-list FILE and --all-blocks cannot"),
        (["--all-blocks", "--seed", "1"], "--seed applies only with --blocks N"),
        (["--all-blocks", "--block-um", "1", "--block-vox", "8"], "--block-um or --block-vox"),
        ([], "exactly one of --blocks N, --block-list FILE or --all-blocks"),
    ],
)
def test_cli_all_blocks_excludes_other_block_sources(volume, tmp_path, extra, message):
    r = CliRunner().invoke(cli, ["score", str(volume), "--out", str(tmp_path / "s"), *extra])
    assert r.exit_code == 2 and message in " ".join(r.output.split()), r.output
    assert not (tmp_path / "s").exists()


def test_cli_all_blocks_writes_the_score_map(volume, tmp_path, monkeypatch):
    import emqc.models._methods

    # the stand-in predictor instead of the committed networks, to keep this fast
    monkeypatch.setattr(
        emqc.models._methods, "predict_working_grid", lambda raw, vox, **_: intensity_maps(raw, vox)
    )
    result = CliRunner().invoke(
        cli,
        [
            "score",
            str(volume),
            "--all-blocks",
            "--block-vox",
            "16,32,32",
            "--out",
            str(tmp_path / "s"),
            "--no-progress",
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())  # the table's title wraps
    assert "6 blocks, all grid blocks inside tissue" in text and "score_map.ome.zarr" in text
    assert zarr.open_array(tmp_path / "s" / "score_map.ome.zarr" / "0").shape == (4, 3, 2, 3)
    assert len(pq.read_table(tmp_path / "s" / "blocks.parquet")) == 3 * 2 * 1
