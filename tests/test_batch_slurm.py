"""``emqc batch --cluster slurm`` on a real SLURM cluster: slurmctld and slurmd on loopback.

The fixture starts a one-node SLURM cluster (Debian's slurmctld and slurmd, which
``./run.sh test`` installs) from its own ``slurm.conf`` in a temporary folder, on free
ports, so it touches nothing of the machine's own SLURM set-up. Jobs are real: ``sbatch``
queues them, slurmctld schedules them and slurmd starts them as job steps; dask-jobqueue's
workers run inside them and connect back to the scheduler in the ``emqc batch`` process.

Authentication is ``auth/none`` (everything runs as root on one machine); a site's
cluster uses munge, which changes nothing that emqc or dask-jobqueue do.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emqc.batch import output_digests
from emqc.testing import synthetic_h5

pytestmark = pytest.mark.slow

DAEMONS = ("slurmctld", "slurmd")
COMMANDS = ("sbatch", "squeue", "scancel", "sinfo")

SLURM_CONF = """\
ClusterName=emqctest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=emqc Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _memory_mb() -> int:
    with open("/proc/meminfo") as f:
        total_kb = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
    return total_kb // 1024 // 2  # half of it: slurmd drains a node that has less than this


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:] if path.exists() else f"({path} missing)"


def _squeue(env: dict[str, str]) -> list[str]:
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i %T"], env=env, capture_output=True, text=True, timeout=30
    )
    return out.stdout.split("\n")[:-1]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """The environment (``SLURM_CONF`` set) of a running one-node SLURM cluster."""
    missing = [c for c in (*DAEMONS, *COMMANDS) if shutil.which(c) is None]
    if missing:
        pytest.skip(
            f"SLURM is not installed here (no {', '.join(missing)}); `./run.sh test` installs "
            "Debian's slurmctld and slurmd"
        )
    if os.geteuid() != 0:
        pytest.skip("slurmd runs jobs as their users, so this test cluster needs root")
    root = tmp_path_factory.mktemp("slurm")
    for folder in ("state", "spool"):
        (root / folder).mkdir()
    host = socket.gethostname().split(".")[0]
    conf = root / "slurm.conf"
    conf.write_text(
        SLURM_CONF.format(
            host=host,
            root=root,
            ctld_port=_free_port(),
            slurmd_port=_free_port(),
            cpus=os.cpu_count(),
            memory_mb=_memory_mb(),
        )
    )
    env = {**os.environ, "SLURM_CONF": str(conf)}
    daemons = [
        subprocess.Popen(
            [shutil.which("slurmctld"), "-D", "-c", "-f", str(conf)],  # type: ignore[list-item]
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [shutil.which("slurmd"), "-D", "-f", str(conf), "-N", host],  # type: ignore[list-item]
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ),
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        state = ""
        while time.monotonic() < deadline:
            sinfo = subprocess.run(
                ["sinfo", "-h", "-N", "-o", "%T"], env=env, capture_output=True, text=True
            )
            state = sinfo.stdout.strip()
            if state == "idle":
                break
            time.sleep(0.5)
        else:
            pytest.fail(
                f"the test SLURM node never became idle (last state {state!r}).\n"
                f"slurmctld.log:\n{_tail(root / 'slurmctld.log')}\n"
                f"slurmd.log:\n{_tail(root / 'slurmd.log')}"
            )
        yield env
    finally:
        subprocess.run(["scancel", "--user", "root"], env=env, capture_output=True, timeout=30)
        for proc in daemons:
            proc.terminate()
        for proc in daemons:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _emqc_batch(
    manifest: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "emqc", "batch", str(manifest), "--no-progress", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def test_emqc_batch_scores_a_study_on_slurm_jobs_as_it_does_locally(slurm, tmp_path):
    synthetic_h5(tmp_path / "s0.h5", 0, shape=(48, 128, 128))
    manifest = tmp_path / "study.yaml"
    manifest.write_text(
        "study: slurm-test\noutput: out\nseed: 3\nblock_vox: [32, 48, 48]\nblocks: 3\n"
        "samples:\n  - {id: s0, source: s0.h5:/raw, voxel_size_nm: [10, 10, 10]}\n"
    )
    local = _emqc_batch(manifest, slurm, "--workers", "1")
    assert local.returncode == 0, local.stderr[-3000:]
    expected = output_digests(tmp_path / "out")
    shutil.rmtree(tmp_path / "out")

    logs = tmp_path / "job-logs"
    config = tmp_path / "slurm.yaml"
    config.write_text(
        "cluster: slurm\n"
        "slurm: {queue: emqc, cores: 1, processes: 1, memory: 3GB, walltime: '00:20:00',"
        f" death_timeout: 60, log_directory: {logs}}}\n"
        "scale: {jobs: 1}\n"
    )
    run = _emqc_batch(manifest, slurm, "--cluster", "slurm", "--cluster-config", str(config))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "SLURMCluster at tcp://" in run.stderr
    # The worker ran in a job that sbatch submitted: SLURM wrote its log, named by job id.
    (worker_log,) = logs.glob("dask-worker-*.err")
    assert "Registered to:" in worker_log.read_text()
    assert output_digests(tmp_path / "out") == expected
    # Closing the cluster cancelled the job.
    deadline = time.monotonic() + 30
    while _squeue(slurm) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _squeue(slurm) == []
