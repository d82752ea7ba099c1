"""Keys, the custody ledger and its chain, concurrency, and forged or moved signatures."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import stat

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from emqc.cli import cli
from emqc.custody import Ledger, Study, canonical_bytes, load_signer, new_key
from emqc.custody._ledger import GENESIS, export_events
from emqc.errors import CustodyError, KeyFileError, TamperError


@pytest.fixture
def study(tmp_path) -> Study:
    return Study.open(tmp_path / "study", create=True)


def _key(study: Study, name: str, role: str = "operator", passphrase: str | None = None):
    return new_key(name, role, registry=study.registry, key_path=study.root.parent / f"{name}.key",
                   passphrase=passphrase)  # fmt: skip


# -- keys ------------------------------------------------------------------------------


def test_new_key_is_private_registered_and_loads(study):
    alice = _key(study, "alice")
    path = study.root.parent / "alice.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    reg = study.registry
    assert reg.problems == [] and reg.keys[alice.keyid].name == "alice"
    again = load_signer(path, reg)
    assert again.keyid == alice.keyid and again.role == "operator"
    with pytest.raises(KeyFileError, match="already exists"):
        new_key("bob", "judge", registry=reg, key_path=path)
    with pytest.raises(CustodyError, match="already registered"):
        new_key("alice", "judge", registry=reg, key_path=study.root.parent / "other.key")


def test_encrypted_key_needs_its_passphrase(study):
    _key(study, "carol", passphrase="correct horse")
    path = study.root.parent / "carol.key"
    assert b"ENCRYPTED" in path.read_bytes()
    with pytest.raises(KeyFileError, match="encrypted; give its passphrase"):
        load_signer(path, study.registry)
    with pytest.raises(KeyFileError, match="passphrase is wrong"):
        load_signer(path, study.registry, "wrong")
    assert load_signer(path, study.registry, "correct horse").name == "carol"


def test_key_readable_by_others_is_refused(study):
    _key(study, "dave")
    path = study.root.parent / "dave.key"
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_signer(path, study.registry)


def test_registry_entry_altered_is_detected(study):
    _key(study, "erin")
    doc = json.loads(study.registry.path.read_text())
    doc["keys"][0]["record"]["role"] = "auditor"  # promote oneself
    study.registry.path.write_text(json.dumps(doc))
    assert any("self-signature does not verify" in p for p in study.registry.problems)


def test_revocation_invalidates_later_signatures_only(study):
    frank = _key(study, "frank")
    auditor = _key(study, "gina", role="auditor")
    judge = _key(study, "hal", role="judge")
    data = b"a record"
    sig = frank.sign(data)
    with pytest.raises(CustodyError, match="may not revoke another person's key"):
        study.registry.revoke(frank.keyid, judge, reason="dislike")
    study.registry.revoke(frank.keyid, auditor, reason="laptop lost",
                          revoked_from="2026-06-01T00:00:00Z")  # fmt: skip
    reg = study.registry
    assert reg.problems == []
    reg.check_signature(frank.keyid, data, sig, "2026-05-31T23:59:59Z")  # before: valid
    with pytest.raises(TamperError, match="revoked from 2026-06-01.*laptop lost"):
        reg.check_signature(frank.keyid, data, sig, "2026-06-01T00:00:00Z")
    with pytest.raises(CustodyError, match="revoked"):
        study.record(load_signer(study.root.parent / "frank.key", reg), "ingest")


# -- ledger ----------------------------------------------------------------------------


def _filled(study: Study, n: int = 6) -> tuple[Ledger, object]:
    alice = _key(study, "alice")
    bob = _key(study, "bob", role="judge")
    for i in range(n):
        study.record(alice if i % 2 == 0 else bob, "judge.verdict" if i % 2 else "ingest",
                     reason=f"step {i}", params={"i": i})  # fmt: skip
    return study.ledger, alice


def test_ledger_chain_verifies_and_exports(study):
    ledger, _ = _filled(study)
    events = ledger.events()
    assert [e.seq for e in events] == list(range(1, 7))
    assert events[0].fields["prev"] == GENESIS
    assert all(b.fields["prev"] == a.hash for a, b in zip(events, events[1:], strict=False))
    assert ledger.verify(study.registry) == []
    csv_text = export_events(events, "csv")
    assert csv_text.count("\n") == 7 and "judge.verdict" in csv_text and "step 5" in csv_text
    rows = json.loads(export_events(events, "json"))
    assert [r["actor"] for r in rows[:2]] == ["alice", "bob"] and rows[3]["hash"] == events[3].hash


def _sql(ledger: Ledger, statement: str, *args) -> None:
    conn = sqlite3.connect(ledger.path)
    conn.execute(statement, args)
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        ("body", "do not match their hash"),
        ("hash", "chain broken"),
        ("delete", "expected event 3 here"),
        ("swap", "moved from another position"),
        ("move_signature", "does not match the signed bytes"),
        ("truncate", None),
    ],
)
def test_ledger_tampering_is_detected(study, tamper, message):
    ledger, _ = _filled(study)
    events = ledger.events()
    if tamper == "body":  # change one byte of event 3, keep its stored hash
        body = bytearray(events[2].body)
        body[body.index(b"step 2")] ^= 0x01
        _sql(ledger, "UPDATE events SET body = ? WHERE seq = 3", bytes(body))
    elif tamper == "hash":  # rewrite event 3 and its hash consistently: the link to it breaks
        fields = events[2].fields | {"reason": "rewritten"}
        body = canonical_bytes(fields)
        from emqc.custody import sha256_hex

        _sql(ledger, "UPDATE events SET body = ?, hash = ? WHERE seq = 3", body, sha256_hex(body))
    elif tamper == "delete":
        _sql(ledger, "DELETE FROM events WHERE seq = 3")
    elif tamper == "swap":
        _sql(ledger, "UPDATE events SET seq = -1 WHERE seq = 3")
        _sql(ledger, "UPDATE events SET seq = 3 WHERE seq = 4")
        _sql(ledger, "UPDATE events SET seq = 4 WHERE seq = -1")
    elif tamper == "move_signature":  # alice's signature of event 1 moved onto event 3
        _sql(ledger, "UPDATE events SET signature = ? WHERE seq = 3", events[0].signature)
    else:  # drop the last events: only an attested head (a report) can show this
        _sql(ledger, "DELETE FROM events WHERE seq > 4")
    problems = ledger.verify(study.registry)
    if message is None:
        assert problems == [] and ledger.head()["seq"] == 4
    else:
        assert any(message in p for p in problems), problems


def test_forged_signature_and_unknown_key_are_rejected(study, tmp_path):
    ledger, alice = _filled(study, 2)
    stranger_study = Study.open(tmp_path / "elsewhere", create=True)
    stranger = new_key("alice", "operator", registry=stranger_study.registry,
                       key_path=tmp_path / "stranger.key")  # fmt: skip
    stranger_study.ledger.append(stranger, "ingest")
    # an event signed by a key this study never registered
    foreign = stranger_study.ledger.events()[0]
    fields = foreign.fields | {"seq": 3, "prev": ledger.events()[-1].hash}
    body = canonical_bytes(fields)
    from emqc.custody import sha256_hex

    _sql(
        ledger,
        "INSERT INTO events VALUES (3, ?, ?, ?)",
        body,
        sha256_hex(body),
        stranger.sign(body),
    )
    assert any("unknown key" in p for p in ledger.verify(study.registry))
    # a forged signature in alice's name (random bytes of the right length)
    _sql(ledger, "UPDATE events SET signature = ? WHERE seq = 2", "ab" * 64)
    problems = ledger.verify(study.registry)
    assert any("event 2" in p and "does not match the signed bytes" in p for p in problems)


@given(st.lists(st.tuples(st.text(max_size=20), st.integers(-(2**40), 2**40)), max_size=5))
@settings(max_examples=25, deadline=None)
def test_canonical_bytes_are_stable(pairs):
    record = {"reason": [p[0] for p in pairs], "values": {p[0]: p[1] for p in pairs}}
    once = canonical_bytes(record)
    assert canonical_bytes(json.loads(once)) == once


def _append_many(args: tuple[str, str, str, int]) -> int:
    study_root, key_path, worker, n = args
    study = Study.open(study_root)
    signer = load_signer(key_path, study.registry)
    for i in range(n):
        study.record(signer, "judge.verdict", reason=f"{worker}-{i}", params={"i": i})
    return n


def test_four_processes_appending_lose_nothing(study):
    names = [f"judge{i}" for i in range(4)]
    for name in names:
        _key(study, name, role="judge")
    jobs = [(str(study.root), str(study.root.parent / f"{n}.key"), n, 250) for n in names]
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        assert sum(pool.map(_append_many, jobs)) == 1000
    events = study.ledger.events()
    assert len(events) == 1000 and [e.seq for e in events] == list(range(1, 1001))
    assert study.ledger.verify(study.registry) == []
    reasons = {e.fields["reason"] for e in events}
    assert reasons == {f"{n}-{i}" for n in names for i in range(250)}


# -- command line ----------------------------------------------------------------------


def test_cli_keys_and_custody_log(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    runner = CliRunner()
    study = tmp_path / "s"
    res = runner.invoke(cli, ["keys", "new", "ivy", "--role", "auditor", "--study", str(study)])
    assert res.exit_code == 0, res.output
    key = tmp_path / "config" / "emqc" / "keys" / "ivy.key"
    assert key.is_file() and "key id" in res.output
    res = runner.invoke(cli, ["keys", "list", "--study", str(study)])
    assert "ivy" in res.output and "auditor" in res.output and "active" in res.output
    res = runner.invoke(cli, ["keys", "revoke", "ivy", "--study", str(study), "--reason", "left lab",
                              "--key", str(key)])  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["custody", "log", "--study", str(study)])
    assert "key.register" in res.output and "key.revoke" in res.output and "left lab" in res.output
    res = runner.invoke(cli, ["custody", "verify", "--study", str(study)])
    assert res.exit_code == 0 and "2 events" in res.output
    out = tmp_path / "trail.csv"
    res = runner.invoke(cli, ["custody", "export", "--study", str(study), "--format", "csv",
                              "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0 and out.read_text().startswith("seq,time,actor")
    # a key is revoked once
    res = runner.invoke(cli, ["keys", "revoke", "ivy", "--study", str(study), "--reason", "again",
                              "--key", str(key)])  # fmt: skip
    assert res.exit_code != 0 and "already revoked" in res.output


def test_study_command_without_key_fails_before_work(tmp_path, monkeypatch):
    monkeypatch.delenv("EMQC_KEY", raising=False)
    (tmp_path / "s").mkdir()
    res = CliRunner().invoke(
        cli, ["verify", str(tmp_path / "nothing"), "--study", str(tmp_path / "s")]
    )
    assert res.exit_code == 2 and "--key FILE or EMQC_KEY" in res.output
    assert not os.path.exists(tmp_path / "s" / "custody.sqlite")


def test_study_folders_with_uri_characters_work(tmp_path):
    study = Study.open(tmp_path / "lab #1? 50% done", create=True)
    alice = _key(study, "alice")
    study.record(alice, "ingest", reason="odd folder name")
    assert [e.fields["reason"] for e in study.ledger.events()] == ["odd folder name"]
    assert (study.root / "custody.sqlite").is_file()
