"""Block list record: canonical bytes, exact round trip, strict reading."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emqc.errors import SamplingError
from emqc.sampling import (
    BLOCKLIST_FORMAT,
    TISSUE_MASK_DEFAULTS,
    Block,
    BlockList,
    SamplingParameters,
    make_blocks,
    rng_for,
    sample_block_origins,
)

DIGEST = "0123456789abcdef" * 4


def parameters(**overrides) -> SamplingParameters:
    values = dict(
        block_shape_vox=(250, 250, 250), block_shape_um=(2.0, 2.0, 2.0),
        voxel_size_nm=(8.0, 8.0, 8.0), allow_overlap=False, mask_level=3, mask_scale=(8, 8, 8),
        tissue_mask=dict(TISSUE_MASK_DEFAULTS), mask_tissue_fraction=0.75,
        n_valid_positions=123_456_789,
    )  # fmt: skip
    values.update(overrides)
    return SamplingParameters(**values)


def blocklist(*, seed: int = 2**128 - 1, origins=((0, 0, 0), (250, 500, 750))) -> BlockList:
    blocks = make_blocks(np.array(origins), block_shape=(250, 250, 250), voxel_size_nm=(8, 8, 8))
    return BlockList(volume="samples/rat-17.ome.zarr", volume_digest=DIGEST, seed=seed,
                     seed_source="os-random", parameters=parameters(), blocks=blocks)  # fmt: skip


def test_round_trip_is_exact_and_bytes_are_canonical():
    record = blocklist()
    data = record.to_json_bytes()
    assert BlockList.from_json_bytes(data) == record
    assert BlockList.from_dict(record.to_dict()) == record
    assert blocklist().to_json_bytes() == data  # identical inputs, identical bytes
    assert data.endswith(b"}\n") and not data.endswith(b"\n\n")
    parsed = json.loads(data)
    assert parsed["seed"] == 2**128 - 1  # a JSON integer, not a float or a string
    assert parsed["format"] == BLOCKLIST_FORMAT
    assert data == (json.dumps(parsed, sort_keys=True, indent=2) + "\n").encode()
    assert b"time" not in data and b"date" not in data


def test_make_blocks_ids_and_micrometres():
    blocks = make_blocks(np.array([[1, 2, 3], [10, 20, 30]]), block_shape=(5, 6, 7),
                         voxel_size_nm=(50.0, 4.6, 4.6))  # fmt: skip
    assert [b.id for b in blocks] == ["B0001", "B0002"]
    assert blocks[1].origin_vox == (10, 20, 30) and blocks[1].shape_vox == (5, 6, 7)
    assert blocks[1].origin_um == (0.5, 0.092, 0.138)
    assert blocks[0].shape_um == (0.25, 0.0276, 0.0322)


def test_floats_do_not_depend_on_rounding_noise():
    a = Block(id="B0001", origin_vox=(0, 0, 0), shape_vox=(1, 1, 1), origin_um=(0.1 + 0.2, 0, -0.0),
              shape_um=(1, 1, 1))  # fmt: skip
    b = Block(id="B0001", origin_vox=(0, 0, 0), shape_vox=(1, 1, 1), origin_um=(0.3, 0.0, 0.0),
              shape_um=(1.0, 1.0, 1.0))  # fmt: skip
    assert a == b and a.to_dict() == b.to_dict()


def test_numpy_scalars_are_accepted_and_normalized():
    origins = sample_block_origins(np.ones((2, 2, 2), bool), mask_scale=(4, 4, 4),
                                   volume_shape=(8, 8, 8), block_shape=(2, 2, 2), n=3,
                                   rng=rng_for(7, DIGEST))  # fmt: skip
    record = BlockList(
        volume="v",
        volume_digest=DIGEST,
        seed=np.uint64(7),
        seed_source="user",
        parameters=parameters(mask_level=np.int64(2)),
        blocks=make_blocks(origins, block_shape=(2, 2, 2), voxel_size_nm=(8, 8, 8)),
    )
    assert type(record.seed) is int and type(record.parameters.mask_level) is int
    assert BlockList.from_json_bytes(record.to_json_bytes()) == record


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**128 - 1),
    origins=st.lists(st.tuples(*[st.integers(0, 10**7)] * 3), max_size=5),
    fraction=st.floats(0, 1),
    n_valid=st.one_of(st.none(), st.integers(0, 10**15)),
    source=st.sampled_from(["user", "os-random"]),
)
def test_round_trip_property(seed, origins, fraction, n_valid, source):
    blocks = make_blocks(np.array(origins, dtype=np.int64).reshape(-1, 3),
                         block_shape=(3, 4, 5), voxel_size_nm=(7.3, 4.6, 4.6))  # fmt: skip
    record = BlockList(volume="ü/vol", volume_digest=DIGEST, seed=seed, seed_source=source,
                       parameters=parameters(mask_tissue_fraction=fraction,
                                             n_valid_positions=n_valid),
                       blocks=blocks)  # fmt: skip
    data = record.to_json_bytes()
    data.decode("ascii")
    again = BlockList.from_json_bytes(data)
    assert again == record and again.to_json_bytes() == data


def _mutated(mutate) -> bytes:
    data = json.loads(blocklist().to_json_bytes())
    mutate(data)
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.update(format="emqc.blocklist/2"), "format"),
        (lambda d: d.pop("format"), "format"),
        (lambda d: d.pop("seed"), "missing field.*seed"),
        (lambda d: d.update(extra=1), "unknown field.*extra"),
        (lambda d: d.update(seed="12"), "seed"),
        (lambda d: d.update(seed=1.0), "seed"),
        (lambda d: d.update(seed=2**128), "seed"),
        (lambda d: d.update(seed=-1), "seed"),
        (lambda d: d.update(seed_source="dice"), "seed_source"),
        (lambda d: d.update(volume_digest="ABC"), "volume_digest"),
        (lambda d: d["parameters"].pop("mask_level"), "mask_level"),
        (lambda d: d["parameters"].update(allow_overlap=1), "allow_overlap"),
        (lambda d: d["parameters"].update(mask_tissue_fraction=1.5), "mask_tissue_fraction"),
        (lambda d: d["blocks"][0].update(origin_vox=[1, 2]), "origin_vox"),
        (lambda d: d["blocks"][0].update(shape_vox=[0, 1, 1]), "shape_vox"),
        (lambda d: d["blocks"][1].update(id="B0001"), "unique"),
        (lambda d: d["blocks"][1].update(id="block-2"), "id"),
        (lambda d: d.update(blocks={}), "blocks"),
    ],
)
def test_strict_reading(mutate, match):
    with pytest.raises(SamplingError, match=match):
        BlockList.from_json_bytes(_mutated(mutate))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\xff\xfe", "UTF-8"),
        (b"{", "JSON"),
        (b"[]", "expected an object"),
        (b'{"format": "emqc.blocklist/1", "format": "x"}', "repeated key"),
        (b'{"seed": NaN}', "NaN"),
    ],
)
def test_malformed_bytes(data, match):
    with pytest.raises(SamplingError, match=match):
        BlockList.from_json_bytes(data)


def test_non_finite_and_wrong_types_are_refused_at_construction():
    with pytest.raises(SamplingError, match="finite"):
        parameters(voxel_size_nm=(8.0, float("inf"), 8.0))
    with pytest.raises(TypeError):
        BlockList.from_json_bytes("{}")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="origins"):
        make_blocks(np.zeros((2, 3)), block_shape=(1, 1, 1), voxel_size_nm=(1, 1, 1))
