"""Study manifests for ``emqc batch``: what is accepted, and what each mistake says."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emqc.batch import derive_seed, read_study_manifest
from emqc.errors import BatchManifestError

GOOD = """
study: pilot
output: out
seed: 42
block_um: 2.0
blocks: 4
samples:
  - {id: s01, source: scans/s01.h5:/raw, voxel_size_nm: [10, 10, 10]}
  - {id: s-02, source: "slices/*.tif", voxel_size_nm: [30, 8, 8], blocks: 9, seed: 3}
  - {id: s03, source: "precomputed://s3://bucket/em", voxel_size_nm: [8, 8, 8]}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


def test_a_good_manifest_resolves_paths_against_its_folder(tmp_path):
    m = read_study_manifest(write(tmp_path, GOOD))
    assert m.name == "pilot" and m.seed == 42 and m.block_um == 2.0 and m.block_vox is None
    assert m.output == str((tmp_path / "out").resolve())
    s1, s2, s3 = m.samples
    assert s1.source == f"{tmp_path}/scans/s01.h5:/raw"
    assert (s1.blocks, s1.seed, s1.voxel_size_nm) == (4, None, (10.0, 10.0, 10.0))
    assert s2.source == f"{tmp_path}/slices/*.tif" and (s2.blocks, s2.seed) == (9, 3)
    assert s3.source == "precomputed://s3://bucket/em"  # URLs are left alone


def test_defaults_name_and_block_count(tmp_path):
    m = read_study_manifest(
        write(tmp_path, "output: o\nsamples: [{id: a, source: a.h5:/r, voxel_size_nm: [8, 8, 8]}]")
    )
    assert m.name == "study" and m.seed is None and m.samples[0].blocks == 8


ONE = "{id: a, source: a.h5:/r, voxel_size_nm: [8, 8, 8]}"


def test_scoring_settings_default_per_study_and_per_sample(tmp_path):
    text = (
        "output: o\npolarity: dark\nsynapse_reference_per_um3: 12\nsamples:\n"
        "  - {id: a, source: a.h5:/r, voxel_size_nm: [8, 8, 8]}\n"
        "  - {id: b, source: b.h5:/r, voxel_size_nm: [8, 8, 8], polarity: bright}\n"
        "  - {id: c, source: c.h5:/r, voxel_size_nm: [8, 8, 8], synapse_reference_per_um3: 2.5}\n"
    )
    a, b, c = read_study_manifest(write(tmp_path, text)).samples
    assert a.metric_settings == {"polarity": "dark", "synapse_reference_per_um3": 12.0}
    assert b.metric_settings == {"polarity": "bright", "synapse_reference_per_um3": 12.0}
    assert c.metric_settings == {"polarity": "dark", "synapse_reference_per_um3": 2.5}
    plain = read_study_manifest(write(tmp_path, f"output: o\nsamples: [{ONE}]")).samples[0]
    assert plain.metric_settings == {"polarity": "auto", "synapse_reference_per_um3": 1.0}


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (f"samples: [{ONE}]", ["output is missing"]),
        ("output: o", ["samples is missing"]),
        ("output: o\nsamples: []", ["samples must be a non-empty list"]),
        (f"output: o\nsampels: [{ONE}]", ["unknown key(s) sampels", "allowed:"]),
        ("output: o\nsamples: [{id: a, source: a.h5:/r}]", ["samples[0].voxel_size_nm is missing"]),
        (
            "output: o\nsamples: [{id: a, source: a.h5, voxel_size_nm: [8, 8]}]",
            ["samples[0].voxel_size_nm must be [z, y, x] in nm"],
        ),
        (
            "output: o\nsamples: [{id: a, source: a.h5, voxel_size_nm: [8, -1, 8]}]",
            ["samples[0].voxel_size_nm must hold sizes in nm between 0 and 10000"],
        ),
        (
            "output: o\nsamples: [{id: a, source: a.h5, voxel_size_nm: ['8', 8, 8]}]",
            ["samples[0].voxel_size_nm must be [z, y, x]"],
        ),
        (f"output: o\nsamples: [{ONE}, {ONE}]", ["samples[1].id 'a' is also samples[0].id"]),
        (
            "output: o\nsamples: [{id: ../x, source: a.h5, voxel_size_nm: [8, 8, 8]}]",
            ["samples[0].id '../x' must be letters, digits"],
        ),
        (
            f"output: o\nblocks: 0\nsamples: [{ONE}]",
            ["blocks must be a whole number of blocks >= 1"],
        ),
        (f"output: o\nseed: -1\nsamples: [{ONE}]", ["seed must be a whole number from 0"]),
        (
            f"output: o\nblock_um: 2\nblock_vox: [64, 64, 64]\nsamples: [{ONE}]",
            ["block_um and block_vox are both given"],
        ),
        (f"output: o\nblock_vox: [64, 4, 64]\nsamples: [{ONE}]", ["block_vox must be [z, y, x]"]),
        (
            "output: o\nsamples: [{id: a, source: a.h5, voxel_size_nm: [8, 8, 8]",
            ["is not valid YAML"],
        ),
        ("- just\n- a list", ["the top level must be a mapping"]),
        (
            f"output: o\npolarity: white\nsamples: [{ONE}]",
            ["polarity must be one of auto, dark, bright, got 'white'"],
        ),
        (
            "output: o\nsamples: [{id: a, source: a.h5, voxel_size_nm: [8, 8, 8], polarity: Dark}]",
            ["samples[0].polarity must be one of auto, dark, bright"],
        ),
        (
            f"output: o\nsynapse_reference_per_um3: 0\nsamples: [{ONE}]",
            ["synapse_reference_per_um3 must be a number > 0, got 0"],
        ),
        (
            "output: o\nsamples: [{id: a, source: a.h5, voxel_size_nm: [8, 8, 8], "
            "synapse_reference_per_um3: many}]",
            ["samples[0].synapse_reference_per_um3 must be a number > 0"],
        ),
    ],
)
def test_each_mistake_names_the_manifest_and_the_entry(tmp_path, text, needles):
    path = write(tmp_path, text)
    with pytest.raises(BatchManifestError) as info:
        read_study_manifest(path)
    assert str(path) in info.value.message
    for needle in needles:
        assert needle in info.value.message, info.value.message


def test_a_missing_manifest_is_named(tmp_path):
    with pytest.raises(BatchManifestError, match=r"study manifest .*nope\.yaml does not exist"):
        read_study_manifest(tmp_path / "nope.yaml")


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**63 - 1),
    ids=st.lists(
        st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True), min_size=2, max_size=6, unique=True
    ),
)
def test_derived_seeds_are_stable_distinct_and_independent_of_other_samples(seed, ids):
    seeds = [derive_seed(seed, i) for i in ids]
    assert seeds == [derive_seed(seed, i) for i in reversed(ids)][::-1]  # order does not matter
    assert len(set(seeds)) == len(ids)
    assert all(0 <= s < 2**63 for s in seeds)
    assert derive_seed(seed + 1, ids[0]) != seeds[0]


def test_environment_variables_are_expanded_and_an_unset_one_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("SCANS", "/data/scans")
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    ok = "output: o\nsamples: [{id: a, source: '${SCANS}/a.h5:/raw', voxel_size_nm: [8, 8, 8]}]"
    assert read_study_manifest(write(tmp_path, ok)).samples[0].source == "/data/scans/a.h5:/raw"
    bad = ok.replace("${SCANS}", "$NOT_SET_ANYWHERE")
    with pytest.raises(
        BatchManifestError,
        match=r"samples\[0\]\.source uses the environment variable NOT_SET_ANYWHERE",
    ):
        read_study_manifest(write(tmp_path, bad))


def test_the_example_study_in_workflows_is_valid(monkeypatch):
    monkeypatch.setenv("EMQC_DATA", "/data")
    example = Path(__file__).parents[1] / "workflows" / "study.example.yaml"
    m = read_study_manifest(example)
    assert [s.id for s in m.samples] == ["medulla-a", "medulla-b"]
    assert m.samples[0].source == "/data/medulla-fib-10nm/medulla_fib_10nm_250cube.h5:/raw"
