"""Blinded judging sessions: layout, blinding, durable verdicts, custody events."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from emqc.custody import Study, new_key
from emqc.errors import CustodyError, InputError
from emqc.ingest import ingest
from emqc.judging import (
    JudgeSession,
    Verdict,
    create_session,
    judge_visible_files,
    judge_visible_leaks,
    read_mapping,
)
from emqc.judging._plan import apply_flip
from emqc.sources._array import ArraySource
from emqc.synth import synthetic_neuropil
from emqc.testing import synthetic_volumes
from emqc.volume import open_volume

pytestmark = pytest.mark.filterwarnings("ignore:window_nm")

CONDITIONS = {"S01_perfused": "perfused", "S02_immersion": "immersion", "S03_delayed": "delayed"}
JUDGES = ["alice", "bob"]
GOOD = Verdict(membrane_integrity=4, edema="mild", traceable="yes", confidence=2)


@pytest.fixture(scope="module")
def volumes(tmp_path_factory) -> dict[str, Path]:
    return synthetic_volumes(tmp_path_factory.mktemp("vols"), CONDITIONS)


def _make(volumes, out: Path, seed: int = 5, **kw):
    kw.setdefault("blocks_per_sample", 4)
    return create_session(volumes, JUDGES, out=out, seed=seed, block_vox=(16, 16, 16), **kw)


@pytest.fixture(scope="module")
def session(volumes, tmp_path_factory):
    return _make(volumes, tmp_path_factory.mktemp("s") / "session", repeat_share=0.2)


def test_layout_and_blocks_match_the_sealed_origin(session, volumes):
    root = session.root
    mapping = read_mapping(root)
    codes = set(mapping["codes"])
    assert len(codes) == 12 + 3  # ceil(0.2 * 12) repeats
    assert {p.name for p in root.iterdir()} == {"session.json", "blocks", "judges", "sealed"}
    assert {p.stem for p in (root / "blocks").iterdir()} == codes
    assert oct((root / "sealed").stat().st_mode & 0o777) == "0o700"
    for judge in JUDGES:
        order = json.loads((root / "judges" / f"{judge}.json").read_text())["codes"]
        assert sorted(order) == sorted(codes) and tuple(order) == session.orders[judge]
    assert session.orders["alice"] != session.orders["bob"]
    for code, it in mapping["codes"].items():
        shown = session.load_block(code)
        assert shown.dtype == np.uint8 and shown.shape == (16, 16, 16)
        raw = open_volume(it["volume"]).read(tuple(it["origin_vox"]), tuple(it["shape_vox"]))
        np.testing.assert_array_equal(shown, apply_flip(raw, it["flip"]))
        if it["repeat_of"]:  # same voxels, another orientation, so another file
            first = mapping["codes"][it["repeat_of"]]
            assert (first["sample"], first["block"]) == (it["sample"], it["block"])
            assert first["flip"] != it["flip"]
    assert session.document["sealed_mapping_sha256"]
    assert set(session.document["files"]) == {
        p.relative_to(root).as_posix() for p in judge_visible_files(root)
    } - {"session.json"}


def test_same_seed_same_session(volumes, tmp_path, session):
    again = _make(volumes, tmp_path / "again", repeat_share=0.2)
    a, b = read_mapping(session.root), read_mapping(again.root)
    assert a["codes"] == b["codes"] and again.orders == session.orders
    assert a["salt"] != b["salt"] and a["seed"] == 5
    for code in a["codes"]:
        assert session.block_path(code).read_bytes() == again.block_path(code).read_bytes()
    other = _make(volumes, tmp_path / "other", seed=6, repeat_share=0.2)
    assert set(read_mapping(other.root)["codes"]).isdisjoint(a["codes"])


def test_nothing_judge_visible_identifies_a_sample(session, volumes):
    mapping = read_mapping(session.root)
    origins = [tuple(it["origin_vox"]) for it in mapping["codes"].values()]
    extra = list(CONDITIONS.values()) + [it["block"] for it in mapping["codes"].values()]
    assert judge_visible_leaks(session.root, CONDITIONS, volumes.values(),
                               origins=origins, extra=extra) == []  # fmt: skip
    # codes do not sort in sample order
    by_code = [mapping["codes"][c]["sample"] for c in sorted(mapping["codes"])]
    assert by_code != sorted(by_code)


def test_the_leak_check_finds_planted_leaks(session, tmp_path):
    import shutil

    copy = Path(shutil.copytree(session.root, tmp_path / "c"))
    (copy / "judges" / "notes.txt").write_text("block at 3, 17, 40 of S02_immersion")
    (copy / "blocks" / "perfused.npy").write_bytes((copy / "session.json").read_bytes())
    problems = judge_visible_leaks(copy, ["S02_immersion"], [], origins=[(3, 17, 40)],
                                   extra=["perfused"])  # fmt: skip
    text = "\n".join(problems)
    assert "sample id 'S02_immersion'" in text and "block origin (3, 17, 40)" in text
    assert "perfused.npy: the file name contains" in text and "not a .npy file" in text


def test_orders_are_not_correlated_with_sample_and_repeats_are_apart(volumes, tmp_path):
    rhos = []
    for seed in range(6):
        s = _make(volumes, tmp_path / f"s{seed}", seed=seed, blocks_per_sample=3,
                  repeat_share=0.25, min_repeat_gap=3)  # fmt: skip
        codes = read_mapping(s.root)["codes"]
        index = {sid: i for i, sid in enumerate(CONDITIONS)}
        for order in s.orders.values():
            where = {c: i for i, c in enumerate(order)}
            rhos.append(spearmanr(range(len(order)), [index[codes[c]["sample"]] for c in order])[0])
            repeats = [(c, it["repeat_of"]) for c, it in codes.items() if it["repeat_of"]]
            assert len(repeats) == 3
            assert all(abs(where[a] - where[b]) >= 3 for a, b in repeats)
    assert abs(np.mean(rhos)) < 0.2


def test_bad_input_is_refused(volumes, tmp_path, session):
    odd = tmp_path / "odd.ome.zarr"
    img = synthetic_neuropil((32, 64, 64), voxel_size_nm=10.0, seed=9).image
    ingest(ArraySource(img, voxel_size_nm=(20, 10, 10), name="odd"), odd, progress=False)
    with pytest.raises(InputError, match="different voxel sizes"):
        _make({**volumes, "odd_sample": odd}, tmp_path / "x")
    with pytest.raises(InputError, match="already exists"):
        _make(volumes, session.root)
    with pytest.raises(InputError, match="judges"):
        create_session(volumes, "alice", blocks_per_sample=2, out=tmp_path / "y")
    with pytest.raises(InputError, match="cannot place"):
        _make(volumes, tmp_path / "z", blocks_per_sample=1, repeat_share=1.0, min_repeat_gap=6)
    assert not (tmp_path / "z").exists() and not list(tmp_path.glob(".z.*"))


def test_verdict_validation():
    with pytest.raises(InputError, match="membrane_integrity: 6 is not an allowed answer"):
        Verdict(membrane_integrity=6, edema="none", traceable="yes", confidence=1)
    with pytest.raises(InputError, match="edema: 'huge'"):
        Verdict(membrane_integrity=3, edema="huge", traceable="yes", confidence=1)
    with pytest.raises(InputError, match="confidence: True"):
        Verdict(membrane_integrity=3, edema="none", traceable="no", confidence=True)
    with pytest.raises(InputError, match="notes: must be text"):
        Verdict(membrane_integrity=3, edema="none", traceable="unsure", confidence=1, notes=3)
    with pytest.raises(InputError, match="unknown answers"):
        Verdict.from_dict({**GOOD.to_dict(), "colour": "blue"})
    assert Verdict.from_dict(GOOD.to_dict()) == GOOD


@pytest.fixture
def fresh(volumes, tmp_path):
    return _make(volumes, tmp_path / "fresh", blocks_per_sample=2)


def test_record_resume_amend_lock(fresh):
    js = JudgeSession(fresh.root, "alice")
    order = js.order
    assert str(js.progress()) == f"0 of {len(order)}" and js.next_code() == order[0]
    js.record(order[0], GOOD)
    js.record(order[1], GOOD)
    with pytest.raises(InputError, match="already has a verdict"):
        js.record(order[0], GOOD)
    with pytest.raises(InputError, match="not one of alice's blocks"):
        js.record("AAAAAAAA", GOOD)
    # a new object (after a crash) reads the file back
    js = JudgeSession(fresh.root, "alice")
    assert js.resume_index() == 2 and js.next_code() == order[2]
    assert str(js.progress()) == f"2 of {len(order)}"
    worse = Verdict(membrane_integrity=2, edema="severe", traceable="no", confidence=3)
    with pytest.raises(InputError, match="needs a reason"):
        js.amend(order[0], worse, "  ")
    with pytest.raises(InputError, match="no verdict yet"):
        js.amend(order[5], worse, "second look")
    js.amend(order[0], worse, "second look")
    assert js.verdicts()[order[0]] == worse
    kinds = [(line.kind, line.code) for line in js.lines()]
    assert kinds == [("verdict", order[0]), ("verdict", order[1]), ("amend", order[0])]
    with pytest.raises(InputError, match="judged 2 of"):
        js.lock()
    for code in order[2:]:
        js.record(code, GOOD)
    assert js.next_code() is None
    js.lock()
    for act in (lambda: js.record(order[0], GOOD), lambda: js.amend(order[0], GOOD, "r"),
                js.lock):  # fmt: skip
        with pytest.raises(InputError, match="locked"):
            act()
    assert JudgeSession(fresh.root, "alice").locked
    assert JudgeSession(fresh.root, "bob").progress().done == 0
    with pytest.raises(InputError, match="not a judge"):
        JudgeSession(fresh.root, "mallory")


def _three(fresh) -> Path:
    js = JudgeSession(fresh.root, "alice")
    for code in js.order[:3]:
        js.record(code, GOOD)
    return js.path


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:-7], "incomplete"),
        (lambda b: b[: b.rindex(b"\n", 0, len(b) - 1) + 1], "truncated"),
        (lambda b: b.replace(b'"membrane_integrity":4', b'"membrane_integrity":5', 1), "chain"),
        (lambda b: b"\n".join(reversed(b.rstrip(b"\n").split(b"\n"))) + b"\n", "chain"),
    ],
    ids=["cut-mid-line", "last-line-removed", "edited", "reordered"],
)
def test_damaged_verdict_file_is_detected(fresh, damage, message):
    path = _three(fresh)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CustodyError, match=message) as info:
        JudgeSession(fresh.root, "alice")
    assert str(path) in info.value.message and "restore it from a backup" in info.value.message


def test_altered_block_file_is_detected(fresh):
    code = fresh.orders["alice"][0]
    np.save(fresh.block_path(code), np.zeros((16, 16, 16), np.uint8))
    with pytest.raises(CustodyError, match="SHA-256 differs"):
        JudgeSession(fresh.root, "alice")


def test_custody_events_are_signed_and_verify(fresh, tmp_path):
    study = Study.open(tmp_path / "study", create=True)
    key = new_key("alice", "judge", registry=study.registry, key_path=tmp_path / "alice.key")
    js = JudgeSession(fresh.root, "alice", study=study, signer=key)
    for code in js.order:
        js.record(code, GOOD)
    js.amend(js.order[0], GOOD, "re-checked, same answer")
    js.lock()
    events = [e.fields for e in study.ledger.events()]
    actions = [e["action"] for e in events]
    assert actions == ["judge.verdict"] * len(js.order) + ["judge.amend", "judge.lock"]
    assert events[0]["params"]["code"] == js.order[0]
    assert events[0]["params"]["answers"] == GOOD.to_dict()
    assert events[0]["objects"][0]["digest"]["sha256"] == fresh.digest
    assert events[-2]["reason"] == "re-checked, same answer"
    assert study.ledger.verify(study.registry) == []
