"""Acceptance: the real FIB-SEM cube, exported to every input format, ingests to the same volume.

For each export (see ``exported`` in conftest.py): identical voxels at level 0,
10 nm scale metadata, readable by ``ome_zarr.reader``, pyramid levels equal to an
independent reference downsampling, and, because ingest is deterministic, the same
root digest whatever the input format.
"""

from __future__ import annotations

import numpy as np
import pytest
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader
from skimage.transform import downscale_local_mean

from emqc.ingest import ingest
from emqc.manifest import read_manifest
from emqc.volume import open_volume

pytestmark = pytest.mark.realdata
ROOT_DIGESTS: dict[str, str] = {}


def reference_level(image: np.ndarray) -> np.ndarray:
    """2x mean with edge replication at odd sizes, rounded half up (scikit-image's local mean)."""
    pad = [(0, n % 2) for n in image.shape]
    padded = np.pad(image, pad, mode="edge")
    return np.floor(downscale_local_mean(padded, (2, 2, 2)) + 0.5).astype(np.uint8)


@pytest.fixture(scope="module")
def ingested(exported, tmp_path_factory):
    export, cube = exported
    dest = tmp_path_factory.mktemp("ingested") / "cube.ome.zarr"
    voxel = None if export.voxel_size_nm else (10.0, 10.0, 10.0)
    result = ingest(export.spec, dest, voxel_size_nm=voxel, progress=False)
    return export, cube, result


def test_level0_is_identical_and_scale_is_10nm(ingested):
    export, cube, result = ingested
    vol = open_volume(result.path, verify="digests")
    np.testing.assert_array_equal(vol.arrays[0][...], cube)
    assert vol.voxel_size_nm == (10.0, 10.0, 10.0)
    prov = read_manifest(result.path).provenance
    assert prov["voxel_size_origin"] == (
        f"{export.format} metadata" if export.voxel_size_nm else "given"
    )
    assert prov["source"]["format"] == export.format


def test_pyramid_levels_equal_reference_downsampling(ingested):
    _, cube, result = ingested
    vol = open_volume(result.path)
    expected = cube
    assert vol.n_levels == 3
    for level in range(1, vol.n_levels):
        expected = reference_level(expected)
        np.testing.assert_array_equal(vol.arrays[level][...], expected)
        assert vol.layout.levels[level].voxel_size_nm == (10.0 * 2**level,) * 3


def test_readable_by_ome_zarr_reader(ingested):
    _, cube, result = ingested
    node = list(Reader(parse_url(str(result.path)))())[0]
    assert [tuple(d.shape) for d in node.data] == [(250, 250, 250), (125, 125, 125), (63, 63, 63)]
    scales = [t[0]["scale"] for t in node.metadata["coordinateTransformations"]]
    assert scales == [[10.0] * 3, [20.0] * 3, [40.0] * 3]
    assert [a["unit"] for a in node.metadata["axes"]] == ["nanometer"] * 3
    np.testing.assert_array_equal(np.asarray(node.data[0][100:110, :, 5]), cube[100:110, :, 5])


def test_every_format_gives_the_same_root_digest(ingested):
    export, _, result = ingested
    ROOT_DIGESTS[export.format + export.spec[-12:]] = result.root_digest
    assert len(set(ROOT_DIGESTS.values())) == 1, ROOT_DIGESTS
