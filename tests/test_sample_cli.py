"""``emqc sample`` and ``emqc verify`` end to end on the real cube beside a large empty region."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from emqc.cli import cli
from emqc.ingest import ingest
from emqc.sampling.volume import read_block_list
from emqc.sources._array import ArraySource

pytestmark = pytest.mark.realdata
TISSUE_X = 250  # x >= 250 is resin and padding


@pytest.fixture(scope="module")
def half_empty(medulla, tmp_path_factory) -> Path:
    """The real cube (x < 250) beside resin (pale, noisy; x 250..400) and zero padding (x >= 400)."""
    rng = np.random.default_rng(0)
    resin = np.clip(rng.normal(200, 6, size=(250, 250, 150)), 0, 255).astype(np.uint8)
    padding = np.zeros((250, 250, 100), np.uint8)
    image = np.concatenate([medulla.raw, resin, padding], axis=2)
    dest = tmp_path_factory.mktemp("sample") / "half.ome.zarr"
    ingest(ArraySource(image, voxel_size_nm=(10, 10, 10)), dest, progress=False)
    return dest


def sample(*args: str):
    return CliRunner().invoke(cli, ["sample", *args], catch_exceptions=False)


def test_blocks_lie_in_tissue_and_same_seed_gives_same_bytes(half_empty, tmp_path):
    out1, out2 = tmp_path / "a.json", tmp_path / "b.json"
    for out in (out1, out2):
        r = sample(
            str(half_empty), "--n", "6", "--seed", "11", "--block-vox", "48", "--out", str(out)
        )
        assert r.exit_code == 0, r.output
    assert out1.read_bytes() == out2.read_bytes()
    blocks = read_block_list(out1)
    assert blocks.seed == 11 and blocks.seed_source == "user" and len(blocks.blocks) == 6
    for b in blocks.blocks:
        assert b.origin_vox[2] + b.shape_vox[2] <= TISSUE_X, f"{b.id} reaches into resin/padding"
    # tissue is about 250/500 of the volume
    assert 0.4 < blocks.parameters.mask_tissue_fraction < 0.55


def test_many_seeds_never_leave_tissue(half_empty):
    from emqc.sampling.volume import sample_volume
    from emqc.volume import open_volume

    vol = open_volume(half_empty)
    for seed in range(25):
        blocks = sample_volume(
            vol, n=4, seed=seed, block_vox=(32, 32, 32), allow_overlap=seed % 2 == 1
        )
        assert all(b.origin_vox[2] + 32 <= TISSUE_X for b in blocks.blocks)


def test_without_seed_one_is_drawn_recorded_and_reproducible(half_empty, tmp_path):
    first = tmp_path / "drawn.json"
    assert (
        sample(str(half_empty), "--n", "3", "--block-um", "0.4", "--out", str(first)).exit_code == 0
    )
    drawn = read_block_list(first)
    assert drawn.seed_source == "os-random" and drawn.seed.bit_length() > 64
    again = tmp_path / "again.json"
    r = sample(
        str(half_empty),
        "--n",
        "3",
        "--block-um",
        "0.4",
        "--seed",
        str(drawn.seed),
        "--out",
        str(again),
    )
    assert r.exit_code == 0
    assert read_block_list(again).blocks == drawn.blocks


def test_block_list_records_digest_and_parameters(half_empty, tmp_path):
    out = tmp_path / "p.json"
    sample(str(half_empty), "--n", "2", "--seed", "5", "--block-um", "0.32", "--out", str(out))
    d = json.loads(out.read_text())
    manifest = json.loads((half_empty / "emqc-manifest.json").read_text())
    assert d["volume_digest"] == manifest["root_digest"]
    assert d["parameters"]["block_shape_vox"] == [32, 32, 32]
    assert d["parameters"]["voxel_size_nm"] == [10.0, 10.0, 10.0]


def test_block_too_large_is_a_clear_error(half_empty, tmp_path):
    r = sample(
        str(half_empty), "--n", "1", "--seed", "1", "--out", str(tmp_path / "x.json")
    )  # 2.56 µm > 2.5 µm
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and "does not fit" in r.stderr
    assert not (tmp_path / "x.json").exists()


def test_sampling_refuses_a_damaged_volume(half_empty, tmp_path):
    damaged = Path(shutil.copytree(half_empty, tmp_path / "damaged.ome.zarr"))
    (damaged / "0" / "c" / "0" / "0" / "0").unlink()
    r = sample(
        str(damaged),
        "--n",
        "1",
        "--seed",
        "1",
        "--block-vox",
        "16",
        "--out",
        str(tmp_path / "x.json"),
    )
    assert r.exit_code == 1 and "level 0 chunk (0, 0, 0)" in r.stderr


def test_verify_cli_exit_codes(half_empty, tmp_path):
    ok = CliRunner().invoke(cli, ["verify", str(half_empty)])
    assert ok.exit_code == 0 and "OK" in ok.output
    damaged = Path(shutil.copytree(half_empty, tmp_path / "d.ome.zarr"))
    chunk = damaged / "0" / "c" / "1" / "1" / "2"
    data = bytearray(chunk.read_bytes())
    data[7] ^= 0xFF
    chunk.write_bytes(bytes(data))
    bad = CliRunner().invoke(cli, ["verify", str(damaged)])
    assert bad.exit_code == 1
    assert (
        "altered: level 0 chunk (1, 1, 2) [0/c/1/1/2]" in bad.stderr
        and "Traceback" not in bad.output
    )
