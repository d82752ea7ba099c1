"""``emqc score`` end to end: tables, summary, refusals, atomic output."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from emqc.cli import cli
from emqc.errors import IncompleteVolumeError, InputError, OutputExistsError, SamplingError
from emqc.ingest import ingest
from emqc.sampling.volume import sample_volume, write_block_list
from emqc.scoring import score_block
from emqc.scoring._run import score_volume
from emqc.sources._array import ArraySource
from emqc.synth import synthetic_neuropil
from emqc.testing import intensity_maps


@pytest.fixture(scope="module")
def volume(tmp_path_factory) -> Path:
    vol = synthetic_neuropil((64, 128, 128), voxel_size_nm=10.0, seed=9)
    dest = tmp_path_factory.mktemp("score") / "synth.ome.zarr"
    ingest(
        ArraySource(vol.image, voxel_size_nm=(10, 10, 10), name="synthetic"), dest, progress=False
    )
    return dest


def test_score_writes_tables_and_summary(volume, tmp_path):
    run = score_volume(volume, out=tmp_path / "s", n=4, seed=3, block_vox=(32, 32, 32),
                       predict=intensity_maps, progress=False)  # fmt: skip
    table = pq.read_table(tmp_path / "s" / "blocks.parquet").to_pylist()
    assert [r["block_id"] for r in table] == ["B0001", "B0002", "B0003", "B0004"]
    assert {"z_vox", "z_um", "membrane_integrity", "edema", "synapse_traceability", "imaging_quality",
            "flags"} <= set(table[0])  # fmt: skip
    assert (tmp_path / "s" / "blocks.csv").read_text().startswith('"block_id"')
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    manifest = json.loads((volume / "emqc-manifest.json").read_text())
    assert summary["volume_digest"] == manifest["root_digest"] and summary["seed"] == 3
    for name in ("membrane_integrity", "edema", "synapse_traceability"):
        s = summary["scores"][name]
        assert set(s) >= {"mean", "median", "ci_low", "ci_high", "verdict", "threshold"}
    assert "fibsem3d" in summary["models"] and len(summary["models"]["fibsem3d"]["sha256"]) == 64
    assert (
        run.summary["membrane_integrity"].n_blocks + run.summary["membrane_integrity"].n_excluded
        == 4
    )
    # same seed, same volume: same blocks and the same scores
    again = score_volume(volume, out=tmp_path / "t", n=4, seed=3, block_vox=(32, 32, 32),
                         predict=intensity_maps, progress=False)  # fmt: skip
    assert again.scores == run.scores


def test_block_list_from_another_volume_is_refused(volume, tmp_path):
    other = synthetic_neuropil((48, 96, 96), voxel_size_nm=10.0, seed=1)
    other_path = tmp_path / "other.ome.zarr"
    ingest(ArraySource(other.image, voxel_size_nm=(10, 10, 10)), other_path, progress=False)
    blocks = sample_volume(other_path, n=2, seed=1, block_vox=(16, 16, 16))
    with pytest.raises(SamplingError, match="drawn from a volume with root digest"):
        score_volume(
            volume, out=tmp_path / "s", blocks=blocks, predict=intensity_maps, progress=False
        )
    assert not (tmp_path / "s").exists()


def test_incomplete_volume_is_refused(volume, tmp_path):
    broken = Path(shutil.copytree(volume, tmp_path / "broken.ome.zarr"))
    (broken / "emqc-manifest.json").unlink()
    with pytest.raises(IncompleteVolumeError):
        score_volume(
            broken, out=tmp_path / "s", n=2, seed=1, predict=intensity_maps, progress=False
        )


def test_existing_output_needs_overwrite(volume, tmp_path):
    (tmp_path / "s").mkdir()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        score_volume(volume, out=tmp_path / "s", n=2, seed=1, block_vox=(16, 16, 16),
                     predict=intensity_maps, progress=False)  # fmt: skip


@pytest.mark.parametrize("bad", [0.0, -2.0, float("nan")])
def test_bad_synapse_reference_is_refused_before_any_block(volume, tmp_path, bad):
    with pytest.raises(ValueError, match="synapse_reference_per_um3"):
        score_volume(volume, out=tmp_path / "s", n=2, seed=1, block_vox=(16, 16, 16),
                     predict=intensity_maps, progress=False,
                     synapse_reference_per_um3=bad)  # fmt: skip
    assert not (tmp_path / "s").exists()


def test_synapse_reference_is_recorded_in_the_summary(volume, tmp_path):
    run = score_volume(volume, out=tmp_path / "s", n=2, seed=1, block_vox=(16, 16, 16),
                       predict=intensity_maps, progress=False,
                       synapse_reference_per_um3=12.5)  # fmt: skip
    doc = json.loads((run.out / "summary.json").read_text())
    assert doc["metric_settings"] == {"synapse_reference_per_um3": 12.5, "polarity": "auto"}


def test_cli_scores_a_block_list_with_the_committed_network(volume, tmp_path):
    blocks = sample_volume(volume, n=2, seed=5, block_vox=(32, 32, 32))
    write_block_list(blocks, tmp_path / "b.json")
    result = CliRunner().invoke(
        cli,
        [
            "score",
            str(volume),
            "--block-list",
            str(tmp_path / "b.json"),
            "--out",
            str(tmp_path / "s"),
            "--no-progress",
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    assert "membrane_integrity" in result.stdout and (tmp_path / "s" / "summary.json").is_file()
    rows = pq.read_table(tmp_path / "s" / "blocks.parquet").to_pylist()
    assert 0 <= rows[0]["membrane_integrity"] <= 1
    assert 0 <= rows[0]["edema"] <= 1 and "no_extracellular_map" not in rows[0]["flags"]
    assert "inverted contrast" not in result.stdout


def test_cli_says_how_many_blocks_it_read_inverted(volume, tmp_path):
    result = CliRunner().invoke(
        cli,
        ["score", str(volume), "--blocks", "2", "--seed", "5", "--block-vox", "32,32,32",
         "--polarity", "bright", "--out", str(tmp_path / "s"), "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2 of 2 block(s) read with inverted contrast (bright membranes)" in result.stdout
    doc = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert doc["metric_settings"]["polarity"] == "bright"


def test_cli_needs_exactly_one_block_source(volume, tmp_path):
    r = CliRunner().invoke(cli, ["score", str(volume), "--out", str(tmp_path / "s")])
    assert r.exit_code == 2 and "exactly one of --blocks" in r.output


def test_blocks_outside_the_volume_are_refused(volume, tmp_path):
    blocks = sample_volume(volume, n=2, seed=1, block_vox=(16, 16, 16))
    moved = dataclasses.replace(blocks.blocks[0], origin_vox=(60, 0, 0))  # z 60-76 of 64
    bad = dataclasses.replace(blocks, blocks=(moved, *blocks.blocks[1:]))
    with pytest.raises(SamplingError, match=r"B0001 .*lies outside .* of shape \(64, 128, 128\)"):
        score_volume(volume, out=tmp_path / "s", blocks=bad, predict=intensity_maps, progress=False)
    assert not (tmp_path / "s").exists()


def test_voxel_size_far_from_the_networks_is_refused_before_any_block(tmp_path):
    coarse = synthetic_neuropil((32, 64, 64), voxel_size_nm=40.0, seed=2)
    path = tmp_path / "coarse.ome.zarr"
    ingest(ArraySource(coarse.image, voxel_size_nm=(40, 40, 40)), path, progress=False)
    with pytest.raises(InputError, match=r"voxel size \(40.0, 40.0, 40.0\) nm is too far from"):
        score_volume(path, out=tmp_path / "s", n=1, seed=1, block_vox=(16, 16, 16), progress=False)
    assert not (tmp_path / "s").exists()


def test_dask_scores_equal_eager_scores_of_the_same_voxels(tmp_path):
    """Blocks read from 128^3 chunks on Dask score exactly like the in-memory array."""
    vol = synthetic_neuropil((144, 144, 144), voxel_size_nm=10.0, seed=4)
    path = tmp_path / "v.ome.zarr"
    ingest(ArraySource(vol.image, voxel_size_nm=(10, 10, 10)), path, progress=False)
    blocks = sample_volume(path, n=5, seed=2, block_vox=(40, 40, 40), allow_overlap=True)
    straddling = [b for b in blocks.blocks if any(o < 128 < o + 40 for o in b.origin_vox)]
    assert straddling, "no block crosses a chunk boundary; pick another seed"
    run = score_volume(
        path, out=tmp_path / "s", blocks=blocks, predict=intensity_maps, progress=False
    )
    for b, got in zip(blocks.blocks, run.scores, strict=True):
        box = tuple(slice(o, o + s) for o, s in zip(b.origin_vox, b.shape_vox, strict=True))
        want = score_block(vol.image[box], voxel_size_nm=(10, 10, 10), predict=intensity_maps)
        assert got.row() == want.row()
