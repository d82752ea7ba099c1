"""The allocator settings of scoring processes (emqc._memory)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from emqc._memory import SCORING_MEMORY_ENV, scoring_worker_config, worker_environ

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")

PROBE = (
    "import json, os; from emqc._memory import restart_with_scoring_allocator as r; r(); "
    f"print(json.dumps({{k: os.environ.get(k) for k in {[*SCORING_MEMORY_ENV, 'EMQC_PROBE']!r}}}))"
)


def _environ_without_settings() -> dict[str, str]:
    skip = {*SCORING_MEMORY_ENV, "EMQC_SYSTEM_MALLOC"}
    return {k: v for k, v in os.environ.items() if k not in skip}


def _probe(**env: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE], env={**_environ_without_settings(), **env},
                          capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    return json.loads(done.stdout)


@glibc
def test_the_process_restarts_once_with_the_settings_and_keeps_its_environment():
    seen = _probe(EMQC_PROBE="kept")
    assert seen == {**SCORING_MEMORY_ENV, "EMQC_PROBE": "kept"}


@glibc
def test_a_users_own_value_wins_and_the_restart_can_be_turned_off():
    assert _probe(MALLOC_ARENA_MAX="4")["MALLOC_ARENA_MAX"] == "4"
    off = _probe(EMQC_SYSTEM_MALLOC="1")
    assert all(off[k] is None for k in SCORING_MEMORY_ENV)


@glibc
def test_the_emqc_command_still_runs_after_restarting_itself():
    # The console script restarts itself before any command runs; --version is the cheapest.
    emqc = os.path.join(os.path.dirname(sys.executable), "emqc")
    for command in ([emqc, "--version"], [sys.executable, "-m", "emqc", "--version"]):
        done = subprocess.run(command, env=_environ_without_settings(), capture_output=True,
                              text=True, check=True, timeout=60)  # fmt: skip
        assert "emqc" in done.stdout


def test_worker_environ_adds_the_settings_to_dasks_and_keeps_the_rest(monkeypatch):
    monkeypatch.delenv("EMQC_SYSTEM_MALLOC", raising=False)
    for key in SCORING_MEMORY_ENV:
        monkeypatch.delenv(key, raising=False)
    base = {"MALLOC_TRIM_THRESHOLD_": 65536, "OMP_NUM_THREADS": 1}
    merged = worker_environ(base)
    assert merged["OMP_NUM_THREADS"] == 1 and base["MALLOC_TRIM_THRESHOLD_"] == 65536
    if platform.libc_ver()[0] == "glibc":
        assert {k: merged[k] for k in SCORING_MEMORY_ENV} == SCORING_MEMORY_ENV
        monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # the user's own value is passed on
        assert worker_environ(base)["MALLOC_ARENA_MAX"] == "4"
    monkeypatch.setenv("EMQC_SYSTEM_MALLOC", "1")
    assert worker_environ(base) == base
    assert scoring_worker_config()["distributed.nanny.pre-spawn-environ"]["OMP_NUM_THREADS"] == 1
