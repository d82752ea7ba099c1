"""``emqc judge create`` and ``emqc judge status`` on tiny synthetic volumes."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from emqc.cli import cli
from emqc.custody import Study
from emqc.judging import JudgeSession, Verdict
from emqc.testing import synthetic_volumes

pytestmark = pytest.mark.filterwarnings("ignore:window_nm")


def test_judge_create_records_custody_and_status_shows_progress(tmp_path):
    runner = CliRunner()
    study = tmp_path / "lab"
    key = tmp_path / "coord.key"
    assert (
        runner.invoke(
            cli, ["keys", "new", "coord", "--study", str(study), "--out", str(key)]
        ).exit_code
        == 0
    )
    vols = synthetic_volumes(study, ("S01", "S02"))
    args = [a for sid, dest in vols.items() for a in ("--sample", f"{sid}={dest}")]
    out = tmp_path / "session"
    res = runner.invoke(cli, ["judge", "create", *args, "--judges", "alice,bob",
                              "--blocks-per-sample", "3", "--block-vox", "16", "--seed", "4",
                              "--out", str(out), "--study", str(study), "--key", str(key)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "alice (" in res.output and "do not give it to judges" in res.output
    assert "S01" not in (out / "judges" / "alice.json").read_text()
    events = Study.open(study).ledger.events()
    assert events[-1].fields["action"] == "judge.session"
    js = JudgeSession(out, "alice")
    js.record(
        js.next_code(), Verdict(membrane_integrity=3, edema="none", traceable="yes", confidence=2)
    )
    res = runner.invoke(cli, ["judge", "status", str(out)])
    assert res.exit_code == 0
    assert f"1 of {len(js.order)}" in res.output and "open" in res.output
    res = runner.invoke(cli, ["judge", "create", "--sample", "nonsense", "--judges", "a",
                              "--blocks-per-sample", "1", "--out", str(tmp_path / "x")])  # fmt: skip
    assert res.exit_code == 2 and "ID=VOLUME" in res.output


def test_judge_unblind_refuses_until_all_locked(tmp_path):
    from emqc.judging import read_mapping

    runner = CliRunner()
    vols = synthetic_volumes(tmp_path, ("S01", "S02"))
    args = [a for sid, dest in vols.items() for a in ("--sample", f"{sid}={dest}")]
    out = tmp_path / "session"
    res = runner.invoke(cli, ["judge", "create", *args, "--judges", "alice,bob",
                              "--blocks-per-sample", "3", "--block-vox", "16", "--seed", "9",
                              "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    mapping = read_mapping(out)["codes"]
    for name in ("alice", "bob"):
        js = JudgeSession(out, name)
        for code in js.order:
            good = mapping[code]["sample"] == "S01"
            js.record(code, Verdict(membrane_integrity=4 if good else 2,
                                    edema="none" if good else "moderate",
                                    traceable="yes" if good else "no", confidence=2))  # fmt: skip
        if name == "alice":
            js.lock()
            res = runner.invoke(cli, ["judge", "unblind", str(out)])
            assert res.exit_code == 2 and "bob" in res.output
    JudgeSession(out, "bob").lock()
    res = runner.invoke(cli, ["judge", "unblind", str(out)])
    assert res.exit_code == 0, res.output
    assert "membrane_integrity" in res.output and "Krippendorff's alpha 1.00" in res.output
    assert (out / "unblinded" / "agreement.json").is_file()
