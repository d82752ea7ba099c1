"""Signed reports end to end: export, offline verification, and tampering of every kind."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from emqc.cli import cli
from emqc.custody import Study, export_report, load_signer, new_key, verify_report
from emqc.custody._attest import envelope_bytes, sign_statement
from emqc.custody._export import ENVELOPE_FILE, LEDGER_COPY, REGISTRY_COPY
from emqc.errors import CustodyError, TamperError
from emqc.ingest import ingest
from emqc.sampling.volume import sample_volume, write_block_list
from emqc.scoring._run import score_volume
from emqc.sources._array import ArraySource
from emqc.synth import synthetic_neuropil
from emqc.testing import intensity_maps


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> dict:
    """A study with one ingested, sampled and scored volume (stand-in predictor), and a report."""
    base = tmp_path_factory.mktemp("report")
    study = Study.open(base / "study", create=True)
    alice = new_key("alice", "operator", registry=study.registry, key_path=base / "alice.key")
    rita = new_key("rita", "auditor", registry=study.registry, key_path=base / "rita.key")
    vol = synthetic_neuropil((48, 96, 96), voxel_size_nm=10.0, seed=4)
    dest = study.root / "volumes" / "S01.ome.zarr"
    ingest(ArraySource(vol.image, voxel_size_nm=(10, 10, 10), name="S01"), dest, progress=False)
    study.record(alice, "ingest", reason="test", objects=[study.volume_ref(dest)])
    blocks = sample_volume(dest, n=3, seed=7, block_vox=(24, 24, 24))
    block_list = study.root / "blocks" / "S01.blocks.json"
    block_list.parent.mkdir()
    write_block_list(blocks, block_list)
    study.record(
        alice, "sample", objects=[study.volume_ref(dest), study.file_ref(block_list, kind="blocks")]
    )
    out = study.root / "scores" / "S01"
    score_volume(dest, out=out, blocks=blocks, predict=intensity_maps, progress=False)
    study.score_event(alice, dest, out, block_list=block_list)
    report = export_report(study, base / "report", [(alice, "authored"), (rita, "approved")])
    return {"base": base, "study": study, "report": report.out, "alice": alice, "rita": rita}


def test_report_verifies_offline_and_records_its_signatures(scored):
    result = verify_report(scored["report"], data_root=scored["study"].root)
    assert result.ok, result.problems
    assert [s["meaning"] for s in result.signers] == ["authored", "approved"] or [
        s["meaning"] for s in result.signers
    ] == ["approved", "authored"]
    assert result.volumes_checked == ["volumes/S01.ome.zarr"]
    text = result.summary()
    assert "alice (operator" in text and "rita (auditor" in text and "re-hashed" in text
    files = {p.relative_to(scored["report"]).as_posix() for p in scored["report"].rglob("*")}
    assert {"report.pdf", "report.html", ENVELOPE_FILE, LEDGER_COPY, REGISTRY_COPY,
            "results/S01/summary.json", "results/S01/blocks.parquet"} <= files  # fmt: skip
    actions = [e.fields["action"] for e in scored["study"].ledger.events()]
    assert actions[:3] == ["ingest", "sample", "score"] and actions[-2:] == ["report.sign"] * 2


def test_report_cli_and_verify_cli(scored, tmp_path):
    base, study = scored["base"], scored["study"]
    runner = CliRunner()
    out = tmp_path / "r2"
    res = runner.invoke(cli, ["report", "--study", str(study.root), "--sign", str(base / "alice.key"),
                              "--meaning", "authored", "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "report.pdf" in res.output
    res = runner.invoke(cli, ["verify", str(out), "--data", str(study.root)])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("OK") and "1 volume(s) re-hashed" in res.output
    (out / "results" / "S01" / "blocks.csv").write_text("block_id\nB9999\n")
    res = runner.invoke(cli, ["verify", str(out)])
    assert res.exit_code == 1 and "blocks.csv: bytes differ from the attested digest" in res.output


def _flip(path: Path, rng: random.Random) -> str:
    data = bytearray(path.read_bytes())
    i = rng.randrange(len(data))
    data[i] ^= rng.randrange(1, 256)
    path.write_bytes(bytes(data))
    return f"byte {i} of {path.name}"


def _cut(path: Path, rng: random.Random) -> str:
    data = path.read_bytes()
    if rng.random() < 0.5:
        i = rng.randrange(len(data))
        path.write_bytes(data[:i] + data[i + 1 :])
        return f"deleted byte {i} of {path.name}"
    n = rng.randrange(len(data))
    path.write_bytes(data[:n])
    return f"truncated {path.name} to {n}"


def _reorder(path: Path, rng: random.Random) -> str:
    lines = path.read_bytes().splitlines(keepends=True)
    i, j = rng.sample(range(len(lines)), 2)
    lines[i], lines[j] = lines[j], lines[i]
    path.write_bytes(b"".join(lines))
    return f"swapped lines {i} and {j} of {path.name}"


def _targets(report: Path, volume: Path) -> dict[str, list[Path]]:
    chunks = [p for p in volume.rglob("*") if p.is_file() and "/c/" in p.as_posix()]
    return {
        "ledger": [report / LEDGER_COPY],
        "report": [p for p in report.rglob("*") if p.is_file()
                   and p.name not in (LEDGER_COPY, ENVELOPE_FILE, REGISTRY_COPY)],
        "envelope": [report / ENVELOPE_FILE],
        "registry": [report / REGISTRY_COPY],
        "chunks": chunks,
    }  # fmt: skip


@pytest.mark.slow
def test_every_tampering_is_detected_and_untouched_copies_pass(scored, tmp_path):
    rng = random.Random(20261202)
    report, study = scored["report"], scored["study"]
    volume = study.root / "volumes" / "S01.ome.zarr"
    kinds = ["ledger", "report", "envelope", "registry", "chunks"]
    missed, n_tamper = [], 0
    for trial in range(125):
        work = tmp_path / f"t{trial}"
        copy = Path(shutil.copytree(report, work / "report"))
        data = work / "data"
        shutil.copytree(volume, data / "volumes" / "S01.ome.zarr")
        kind = kinds[trial % len(kinds)]
        path = rng.choice(_targets(copy, data / "volumes" / "S01.ome.zarr")[kind])
        how = rng.random()
        if kind == "ledger" and how < 0.2:
            what = _reorder(path, rng)
        elif how < 0.15:
            what = _cut(path, rng)
        elif how < 0.2 and kind in ("report", "chunks"):
            path.unlink()
            what = f"deleted {path.name}"
        else:
            what = _flip(path, rng)
        n_tamper += 1
        if verify_report(copy, data_root=data).ok:
            missed.append(f"{kind}: {what}")
        shutil.rmtree(work)
    assert n_tamper >= 100 and missed == []
    false_alarms = []
    for trial in range(100):
        work = tmp_path / f"u{trial}"
        copy = Path(shutil.copytree(report, work / "report"))
        result = verify_report(copy, data_root=study.root)
        if not result.ok:
            false_alarms.append(result.problems)
        shutil.rmtree(work)
    assert false_alarms == []


def test_added_file_and_moved_signature_are_rejected(scored, tmp_path):
    copy = Path(shutil.copytree(scored["report"], tmp_path / "r"))
    (copy / "notes.txt").write_text("added later")
    assert any("not attested" in p for p in verify_report(copy).problems)
    # a signature taken from this report's envelope and put on another statement
    other = Path(shutil.copytree(scored["report"], tmp_path / "o"))
    doc = json.loads((other / ENVELOPE_FILE).read_text())
    statement = json.loads(__import__("base64").b64decode(doc["payload"]))
    statement["predicate"]["title"] = "A different report"
    forged = sign_statement(statement, [scored["rita"]])  # then swap in alice's old signature
    moved = json.loads(envelope_bytes(forged))
    moved["signatures"] = doc["signatures"]
    from emqc.custody._canonical import canonical_bytes

    (other / ENVELOPE_FILE).write_bytes(canonical_bytes(moved) + b"\n")
    problems = verify_report(other).problems
    assert any("does not match the signed bytes" in p for p in problems), problems


def test_unknown_signer_and_revoked_key_are_rejected(scored, tmp_path):
    base, study = scored["base"], scored["study"]
    # signed by a key the study's registry does not hold
    elsewhere = Study.open(tmp_path / "elsewhere", create=True)
    mallory = new_key(
        "mallory", "auditor", registry=elsewhere.registry, key_path=tmp_path / "m.key"
    )
    copy = Path(shutil.copytree(scored["report"], tmp_path / "r"))
    doc = json.loads((copy / ENVELOPE_FILE).read_text())
    statement = json.loads(__import__("base64").b64decode(doc["payload"]))
    statement["predicate"]["signers"] = [{"name": "mallory", "role": "auditor",
                                          "keyid": mallory.keyid, "meaning": "approved",
                                          "time": statement["predicate"]["created"]}]  # fmt: skip
    (copy / ENVELOPE_FILE).write_bytes(envelope_bytes(sign_statement(statement, [mallory])))
    problems = verify_report(copy).problems
    assert any("unknown key" in p for p in problems), problems
    # a key revoked, from before it signed, after the report was written
    later = Path(shutil.copytree(study.root, tmp_path / "study_now"))
    now = Study(later)
    rita = load_signer(base / "rita.key", now.registry)
    alice = load_signer(base / "alice.key", now.registry)
    now.registry.revoke(alice.keyid, rita, reason="key leaked", revoked_from="2026-01-01T00:00:00Z")
    problems = verify_report(scored["report"], data_root=later).problems
    assert any("alice" in p and "revoked" in p and "key leaked" in p for p in problems), problems
    with pytest.raises(CustodyError, match="may no longer sign"):
        export_report(now, tmp_path / "r3", [(alice, "authored")])


def test_report_refuses_changed_results_and_broken_ledger(scored, tmp_path):
    study = Study(Path(shutil.copytree(scored["study"].root, tmp_path / "s")))
    alice = load_signer(scored["base"] / "alice.key", study.registry)
    summary = study.root / "scores" / "S01" / "summary.json"
    original = summary.read_bytes()
    summary.write_bytes(original.replace(b'"seed": 7', b'"seed": 8'))
    with pytest.raises(TamperError, match="summary.json changed since ledger event"):
        export_report(study, tmp_path / "r", [(alice, "authored")])
    summary.write_bytes(original)
    import sqlite3

    conn = sqlite3.connect(study.root / "custody.sqlite")
    conn.execute("DELETE FROM events WHERE seq = 2")
    conn.commit()
    conn.close()
    with pytest.raises(TamperError, match="ledger does not verify"):
        export_report(study, tmp_path / "r", [(alice, "authored")])
    assert not (tmp_path / "r").exists()


@pytest.mark.filterwarnings("ignore:window_nm")  # a tiny volume: its tissue mask is level 0
def test_pipeline_commands_record_signed_events(tmp_path, monkeypatch):
    runner = CliRunner()
    study = tmp_path / "lab"
    key = tmp_path / "op.key"
    res = runner.invoke(cli, ["keys", "new", "op", "--study", str(study), "--out", str(key)])
    assert res.exit_code == 0, res.output
    src = tmp_path / "raw.tif"
    import tifffile

    tifffile.imwrite(src, synthetic_neuropil((32, 64, 64), voxel_size_nm=10.0, seed=2).image)
    vol = study / "volumes" / "A.ome.zarr"
    monkeypatch.setenv("EMQC_STUDY", str(study))
    monkeypatch.setenv("EMQC_KEY", str(key))
    steps = [
        ["ingest", str(src), str(vol), "--voxel-size", "10,10,10", "--no-progress",
         "--reason", "sample A arrived"],
        ["verify", str(vol)],
        ["sample", str(vol), "--n", "2", "--seed", "1", "--block-vox", "24",
         "--out", str(study / "A.blocks.json")],
        ["score", str(vol), "--block-list", str(study / "A.blocks.json"), "--out",
         str(study / "scores" / "A"), "--no-progress"],
    ]  # fmt: skip
    for args in steps:
        res = runner.invoke(cli, args)
        assert res.exit_code == 0, (args[0], res.output)
    events = Study.open(study).ledger.events()
    assert [e.fields["action"] for e in events] == [
        "key.register",
        "ingest",
        "verify",
        "sample",
        "score",
    ]
    ingest_event = events[1].fields
    assert ingest_event["actor"] == "op" and ingest_event["reason"] == "sample A arrived"
    manifest = json.loads((vol / "emqc-manifest.json").read_text())
    assert ingest_event["objects"][0]["digest"]["sha256"] == manifest["root_digest"]
    assert manifest["provenance"]["operator"] == "op"
    score_objects = {o["name"] for o in events[4].fields["objects"]}
    assert "result:scores/A/blocks.parquet" in score_objects
    res = runner.invoke(cli, ["custody", "verify"])
    assert res.exit_code == 0 and "5 events" in res.output


def test_verify_names_the_field_changed_in_the_study_ledger(scored, tmp_path):
    import sqlite3

    from emqc.custody import canonical_bytes, sha256_hex

    study = Path(shutil.copytree(scored["study"].root, tmp_path / "s"))
    conn = sqlite3.connect(study / "custody.sqlite")
    body = conn.execute("SELECT body FROM events WHERE seq = 1").fetchone()[0]
    fields = json.loads(body) | {"reason": "quietly rewritten"}
    new = canonical_bytes(fields)
    conn.execute("UPDATE events SET body = ?, hash = ? WHERE seq = 1", (new, sha256_hex(new)))
    conn.commit()
    conn.close()
    problems = verify_report(scored["report"], data_root=study).problems
    assert any("event 1 differs from the report's copy in reason" in p for p in problems), problems


@pytest.mark.filterwarnings("ignore:window_nm")
def test_report_gains_a_judging_section_with_the_session_as_subject(scored, tmp_path):
    from emqc.judging import JudgeSession, Verdict, create_session, unblind

    study = Study(Path(shutil.copytree(scored["study"].root, tmp_path / "s")))
    alice = load_signer(scored["base"] / "alice.key", study.registry)
    judges = {n: new_key(n, "judge", registry=study.registry, key_path=tmp_path / f"{n}.key")
              for n in ("jo", "kim")}  # fmt: skip
    volume = study.root / "volumes" / "S01.ome.zarr"
    session = create_session({"S01": volume}, list(judges), blocks_per_sample=4,
                             out=study.root / "judging", seed=3, block_vox=(16, 16, 16))  # fmt: skip
    for name, signer in judges.items():
        js = JudgeSession(session.root, name, study=study, signer=signer)
        for i, code in enumerate(js.order):
            js.record(code, Verdict(membrane_integrity=3 + i % 2, edema="none", traceable="yes",
                                    confidence=2))  # fmt: skip
        js.lock()
    unblind(session.root, study=study, signer=alice)
    report = export_report(study, tmp_path / "r", [(alice, "authored")])
    checked = verify_report(report.out, data_root=study.root)
    assert checked.ok, checked.problems
    html = (report.out / "report.html").read_text()
    assert "Blinded judging" in html and "Krippendorff" in html
    assert (report.out / "judging" / session.session_id / "agreement.csv").is_file()
    doc = json.loads((report.out / ENVELOPE_FILE).read_text())
    statement = json.loads(__import__("base64").b64decode(doc["payload"]))
    names = {s["name"] for s in statement["subject"]}
    assert f"judging-session:{session.session_id}" in names
    actions = [e.fields["action"] for e in study.ledger.events()]
    assert actions.count("judge.verdict") == sum(len(JudgeSession(session.root, n).order)
                                                 for n in judges)  # fmt: skip
    assert "judge.lock" in actions and "judge.unblind" in actions
