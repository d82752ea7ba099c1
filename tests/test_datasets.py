"""The fixed train/held-out split and loading of the real volumes."""

from __future__ import annotations

import pytest

from emqc import datasets
from emqc.errors import SourceNotFoundError


@pytest.mark.parametrize("name", sorted(datasets.DATASETS))
def test_split_is_disjoint_with_a_gap_and_holds_out_every_volume(name):
    train, held = datasets.split_z(name, "train"), datasets.split_z(name, "heldout")
    assert train.start == 0 and train.stop > 0 and held.stop is None
    assert held.start - train.stop == datasets.SPLIT_GAP[name] > 0


def test_medulla_holds_out_its_last_third(medulla):
    held = range(medulla.raw.shape[0])[datasets.split_z("medulla", "heldout")]
    assert len(held) == 83 and held[-1] == 249
    assert medulla.labels["neuron_ids"].shape == medulla.raw.shape


def test_vnc_has_synapse_and_membrane_labels(vnc):
    assert {"membranes", "synapses", "mitochondria", "classes"} <= set(vnc.labels)
    assert vnc.voxel_size_nm == (50.0, 4.6, 4.6)


def test_missing_data_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("EMQC_DATA", str(tmp_path))
    with pytest.raises(SourceNotFoundError, match="EMQC_DATA"):
        datasets.load("medulla")


def test_bad_names_and_parts():
    with pytest.raises(ValueError, match="name must be one of"):
        datasets.load("cortex")
    with pytest.raises(ValueError, match="part must be"):
        datasets.split_z("medulla", "test")  # type: ignore[arg-type]
