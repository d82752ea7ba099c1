"""The cluster layer of ``emqc batch``: local and remote clusters, config files, job scripts.

The HPC examples are checked by building their dask-jobqueue clusters (which submits
nothing until scaled) and reading the job scripts, the Kubernetes example by building its
DaskCluster resource (no Kubernetes is reachable here). A real SLURM cluster runs a batch
in ``test_batch_slurm.py``.
"""

from __future__ import annotations

import os
import platform
import socket
import time
from pathlib import Path

import dask
import pytest
import yaml
from distributed import LocalCluster
from distributed.core import Status

from emqc._memory import SCORING_MEMORY_ENV
from emqc.batch._cluster import (
    SCHEDULER_PLACEHOLDER,
    ClusterConfig,
    ClusterPlan,
    batch_client,
    describe,
    job_script,
    kubernetes_spec,
    plan_cluster,
    read_cluster_config,
)
from emqc.errors import ClusterConfigError

EXAMPLES = Path(__file__).resolve().parents[1] / "workflows" / "clusters"


def _inc(x: int) -> int:
    return x + 1


def _write(tmp_path: Path, text: str, name: str = "cluster.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- a real local cluster, and an existing scheduler ---------------------------------------


def test_local_cluster_runs_on_two_workers_and_is_closed():
    with batch_client(workers=2) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        assert client.submit(_inc, 1).result() == 2
        assert dask.delayed(sum)([dask.delayed(_inc)(i) for i in range(10)]).compute() == 55
        line = describe(client)
        assert "LocalCluster" in line and "2 workers, 2 threads" in line
        assert client.dashboard_link in line
        if platform.libc_ver()[0] == "glibc" and not os.environ.get("EMQC_SYSTEM_MALLOC"):
            environs = client.run(lambda: {k: os.environ.get(k) for k in SCORING_MEMORY_ENV})
            assert list(environs.values()) == [SCORING_MEMORY_ENV] * 2
        cluster = client.cluster
    assert client.status == "closed"
    assert cluster.status == Status.closed


def test_cluster_and_client_are_closed_on_error():
    with pytest.raises(KeyError, match="boom"), batch_client(workers=1) as client:
        cluster = client.cluster
        raise KeyError("boom")
    assert client.status == "closed"
    assert cluster.status == Status.closed


def test_scheduler_mode_connects_and_leaves_the_cluster_running():
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as cluster:
        with batch_client(scheduler=cluster.scheduler_address, timeout=10) as client:
            assert client.submit(_inc, 41).result() == 42
            assert describe(client).startswith(f"Dask scheduler at {cluster.scheduler_address}")
        assert client.status == "closed"
        assert cluster.status == Status.running


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_fails_quickly_naming_the_address():
    address = f"tcp://127.0.0.1:{_closed_port()}"
    t0 = time.perf_counter()
    with pytest.raises(ClusterConfigError, match="cannot reach the Dask scheduler") as info:
        with batch_client(scheduler=address, timeout=1):
            pass  # pragma: no cover
    assert time.perf_counter() - t0 < 5
    assert address in info.value.message and "--scheduler" in info.value.message


def test_malformed_scheduler_address_is_a_config_error():
    with pytest.raises(ClusterConfigError, match="no-port-here"):
        with batch_client(scheduler="no-port-here", timeout=1):
            pass  # pragma: no cover


def test_scheduler_excludes_cluster_options():
    with pytest.raises(ClusterConfigError, match="--cluster, --workers"):
        with batch_client(scheduler="tcp://127.0.0.1:8786", cluster="slurm", workers=3):
            pass  # pragma: no cover


# --- the example configs --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["local", "slurm", "pbs", "kubernetes"])
def test_every_example_config_parses(name):
    config = read_cluster_config(EXAMPLES / f"{name}.yaml")
    assert config.kind == name
    assert name in config.sections
    assert ClusterConfig.from_dict(config.to_dict(), source="again") == ClusterConfig(
        **{**config.__dict__, "source": "again"}
    )
    assert plan_cluster(config).kind == name


def test_no_other_example_configs_untested():
    assert sorted(p.stem for p in EXAMPLES.glob("*.yaml")) == [
        "kubernetes",
        "local",
        "pbs",
        "slurm",
    ]


def test_local_example_runs(tmp_path):
    config = read_cluster_config(EXAMPLES / "local.yaml")
    plan = plan_cluster(config, workers=1)
    assert plan.kwargs["memory_limit"] == "4GB" and plan.kwargs["n_workers"] == 1
    with batch_client(config=EXAMPLES / "local.yaml", workers=1) as client:
        (info,) = client.scheduler_info()["workers"].values()
        assert info["memory_limit"] == 4 * 10**9


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "slurm",
            ["#SBATCH -p normal", "#SBATCH -A lab123", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=45G",
             "#SBATCH -t 04:00:00", "#SBATCH --constraint=cpu", "--nworkers 4", "--nthreads 2"],
        ),
        (
            "pbs",
            ["#PBS -q workq", "#PBS -A lab123", "#PBS -l select=1:ncpus=16:mem=96GB",
             "#PBS -l walltime=06:00:00", "#PBS -j oe", "--nworkers 8", "--nthreads 2"],
        ),
    ],
)  # fmt: skip
def test_hpc_example_builds_its_dask_jobqueue_cluster(name, expected):
    plan = plan_cluster(read_cluster_config(EXAMPLES / f"{name}.yaml"))
    assert plan.scale == {"jobs": 10 if name == "slurm" else 4}
    rendered = job_script(plan)
    for line in expected:
        assert line in rendered, (line, rendered)
    assert "source $HOME/emqc/.venv/bin/activate" in rendered
    # The cluster itself (scheduler started, nothing submitted: scale is not called).
    cls = {"slurm": "SLURMCluster", "pbs": "PBSCluster"}[name]
    dask_jobqueue = pytest.importorskip("dask_jobqueue")
    with getattr(dask_jobqueue, cls)(**plan.kwargs) as cluster:
        script = cluster.job_script()
        assert script == rendered.replace(SCHEDULER_PLACEHOLDER, cluster.scheduler_address)
        assert cluster.dashboard_link  # on a free port (":0"), not a fixed 8787


def test_hpc_cluster_needs_the_submit_command(monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(ClusterConfigError, match="'sbatch' is not on PATH"):
        with batch_client(cluster="slurm", config=EXAMPLES / "slurm.yaml"):
            pass  # pragma: no cover


def test_kubernetes_example_builds_a_valid_spec():
    pytest.importorskip("dask_kubernetes")
    from dask_kubernetes.operator import make_cluster_spec

    plan = plan_cluster(read_cluster_config(EXAMPLES / "kubernetes.yaml"))
    spec = kubernetes_spec(plan)
    assert spec["apiVersion"] == "kubernetes.dask.org/v1" and spec["kind"] == "DaskCluster"
    assert spec["metadata"]["name"].startswith("emqc-")
    # What make_cluster_spec builds from the same settings, plus the volumes.
    reference = make_cluster_spec(
        spec["metadata"]["name"],
        image="ghcr.io/your-lab/emqc:0.1.0",
        n_workers=8,
        resources=plan.kwargs["resources"],
        env=plan.kwargs["env"],
        scheduler_service_type="ClusterIP",
    )
    worker, scheduler = spec["spec"]["worker"], spec["spec"]["scheduler"]
    assert worker["replicas"] == 8
    for part in (worker, scheduler):
        (container,) = part["spec"]["containers"]
        assert container["image"] == "ghcr.io/your-lab/emqc:0.1.0"
        assert container["resources"]["limits"] == {"cpu": "2", "memory": "12Gi"}
        assert {"name": "EMQC_DATA", "value": "/data"} in container["env"]
        assert container["volumeMounts"] == [{"name": "em-data", "mountPath": "/data"}]
        assert part["spec"]["volumes"][0]["persistentVolumeClaim"] == {"claimName": "emqc-data"}
        del container["volumeMounts"], part["spec"]["volumes"]
    assert spec == reference
    assert "&id" not in yaml.safe_dump(spec)  # no YAML anchors: each pod has its own copy


def test_kubernetes_options_shape_the_spec():
    pytest.importorskip("dask_kubernetes")
    plan = plan_cluster(
        read_cluster_config(EXAMPLES / "kubernetes.yaml"), workers=3, threads_per_worker=2
    )
    spec = kubernetes_spec(plan)
    assert spec["spec"]["worker"]["replicas"] == 3
    args = spec["spec"]["worker"]["spec"]["containers"][0]["args"]
    assert args[:3] == ["dask-worker", "--nthreads", "2"]


# --- planning: precedence of options, file and Dask's config --------------------------------


def test_default_plan_is_a_local_cluster_sized_from_the_cpu_count():
    plan = plan_cluster()
    assert plan.kind == "local" and plan.class_name == "distributed.LocalCluster"
    assert plan.kwargs["n_workers"] == max(1, dask.system.CPU_COUNT)
    assert plan.kwargs["threads_per_worker"] == 1 and plan.kwargs["processes"] is True
    assert plan.kwargs["dashboard_address"] == ":0"


def test_options_override_the_file(tmp_path):
    path = _write(
        tmp_path,
        "cluster: slurm\nslurm: {cores: 8, memory: 16GB, processes: 8}\n"
        "adapt: {minimum_jobs: 1, maximum_jobs: 5}\n",
    )
    plan = plan_cluster(read_cluster_config(path), workers=12, threads_per_worker=4)
    assert plan.scale == {"n": 12} and plan.adapt is None
    assert plan.kwargs["processes"] == 2
    with pytest.raises(ClusterConfigError, match="does not divide the 8 cores"):
        plan_cluster(read_cluster_config(path), threads_per_worker=3)


def test_file_settings_override_dask_jobqueue_config(tmp_path):
    path = _write(tmp_path, "cluster: slurm\nslurm: {queue: fromfile, cores: 4, memory: 8GB}\n")
    with dask.config.set(
        {"jobqueue.slurm.queue": "fromdask", "jobqueue.slurm.account": "dask-account"}
    ):
        script = job_script(plan_cluster(read_cluster_config(path)))
    assert "#SBATCH -p fromfile" in script and "fromdask" not in script
    assert "#SBATCH -A dask-account" in script  # what the file leaves out, Dask supplies


def test_hyphenated_keys_as_in_dask_yaml(tmp_path):
    path = _write(
        tmp_path, "cluster: pbs\npbs:\n  cores: 2\n  memory: 4GB\n  job-extra-directives: ['-V']\n"
    )
    assert "#PBS -V" in job_script(plan_cluster(read_cluster_config(path)))


def test_cluster_option_must_match_the_file():
    with pytest.raises(ClusterConfigError, match="configures a slurm cluster.*--cluster pbs"):
        plan_cluster(read_cluster_config(EXAMPLES / "slurm.yaml"), cluster="pbs")


def test_missing_cores_and_memory_is_named():
    with pytest.raises(ClusterConfigError, match="cores and memory"):
        job_script(plan_cluster(cluster="lsf"))


def test_kubernetes_without_dask_kubernetes_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "dask_kubernetes", None)  # import fails
    with pytest.raises(ClusterConfigError, match=r"pip install 'emqc\[kubernetes\]'"):
        kubernetes_spec(plan_cluster(cluster="kubernetes"))


def test_plan_to_dict_is_plain_data():
    plan = plan_cluster(read_cluster_config(EXAMPLES / "slurm.yaml"))
    record = plan.to_dict()
    assert record["class"] == "dask_jobqueue.SLURMCluster" and record["scale"] == {"jobs": 10}
    assert ClusterPlan(**{k: v for k, v in record.items() if k != "class"}) == plan


# --- bad configuration files ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("cluster: slrum\n", r"unknown cluster kind 'slrum' \(did you mean 'slurm'\?\)"),
        ("cluster: local\nworkers: 4\n", "unknown top-level key 'workers'"),
        ("cluster: slurm\nslurm: {cores: 8, memory: 8GB, queeu: x}\n", r"'slurm.queeu'.*'queue'"),
        ("cluster: slurm\nslurm: {cores: eight, memory: 8GB}\n", "slurm.cores must be a whole"),
        ("cluster: slurm\nslurm: {cores: 8, memory: lots}\n", "'lots', which is not a size"),
        ("cluster: slurm\nslurm: {cores: 8, memory: 8GB, walltime: 4:00:00}\n", "quoted string"),
        ("cluster: pbs\npbs: {cores: 8, memory: 8GB, job_extra: ['-V']}\n", "job_extra_directives"),
        ("cluster: slurm\nslurm: {dashboard_address: ':1'}\n", "scheduler_options"),
        ("cluster: local\nlocal: {processes: 4}\n", "local.processes must be true or false"),
        ("cluster: local\nscale: {jobs: 2}\n", "local cluster has no batch jobs"),
        ("cluster: slurm\nscale: {jobs: 0}\n", "scale.jobs must be at least 1"),
        ("cluster: slurm\nscale: {jobs: 2}\nadapt: {maximum: 3}\n", "keep one"),
        ("cluster: slurm\nadapt: {minimum: 5, maximum: 2}\n", "at least its minimum"),
        ("cluster: slurm\nadapt: {minimum: 1, maximum_jobs: 2}\n", "mixes workers and jobs"),
        ("slurm: {cores: 8}\n", "no 'cluster:' key"),
        ("cluster: kubernetes\nkubernetes: {env: {OMP_NUM_THREADS: 1}}\n", "quote it"),
        ("cluster: kubernetes\nkubernetes: {volume_mounts: [{name: d, mountPath: /d}]}\n",
         "not among kubernetes.volumes"),
        ("cluster: kubernetes\nkubernetes: {resources: {cpu: 2}}\n", "'requests' and 'limits'"),
        ("- slurm\n", "must be a mapping"),
        ("", "is empty"),
        ("cluster: local\ncluster: slurm\n", "given twice"),
        ("cluster: slurm\nslurm:\n  cores: 8\n\tmemory: 8GB\n", r"not valid YAML at line \d"),
        ("cluster: [local\n", "not valid YAML"),
    ],
)  # fmt: skip
def test_bad_config_names_the_file_and_the_key(tmp_path, text, match):
    path = _write(tmp_path, text, name="lab-cluster.yaml")
    with pytest.raises(ClusterConfigError, match=match) as info:
        read_cluster_config(path)
    assert str(path) in info.value.message


def test_missing_config_file(tmp_path):
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(ClusterConfigError, match="not found") as info:
        with batch_client(config=missing):
            pass  # pragma: no cover
    assert str(missing) in info.value.message


def test_settings_dask_jobqueue_rejects_are_a_config_error():
    # Settings emqc does not check itself (here: a plan built without a file) still come
    # back as ClusterConfigError naming the source, not as dask-jobqueue's TypeError.
    plan = ClusterPlan("slurm", {"cores": "eight", "memory": "8GB"}, source="site.yaml")
    with pytest.raises(ClusterConfigError, match="site.yaml: dask-jobqueue rejects"):
        job_script(plan)


def test_impossible_job_shapes(tmp_path):
    path = _write(tmp_path, "cluster: slurm\nslurm: {cores: 2, processes: 4, memory: 8GB}\n")
    with pytest.raises(ClusterConfigError, match="exceeds the 2 cores"):
        plan_cluster(read_cluster_config(path))
    path = _write(tmp_path, "cluster: slurm\nslurm: {cores: 2, memory: 8GB, config_name: nope}\n")
    with pytest.raises(ClusterConfigError, match="names no section"):
        plan_cluster(read_cluster_config(path))


def test_bad_options():
    with pytest.raises(ClusterConfigError, match="unknown cluster kind 'yarn'"):
        plan_cluster(cluster="yarn")
    with pytest.raises(ClusterConfigError, match="workers must be at least 1"):
        plan_cluster(workers=0)
    with pytest.raises(TypeError, match="threads_per_worker must be an int"):
        plan_cluster(threads_per_worker="2")  # type: ignore[arg-type]


# --- the start-up paths of HPC and Kubernetes, with stand-ins for sbatch and the operator ----

FAKE_SBATCH = """#!/bin/bash
# Stand-in for sbatch: run the job script in the background, as its own process group.
script="${@: -1}"
cp "$script" "$FAKE_SLURM_DIR/job-$$.sh"
setsid bash "$FAKE_SLURM_DIR/job-$$.sh" > "$FAKE_SLURM_DIR/job-$$.log" 2>&1 < /dev/null &
echo "Submitted batch job $!"
"""
FAKE_SCANCEL = """#!/bin/bash
for id in "$@"; do kill -TERM -- "-$id" 2>/dev/null || kill -TERM "$id" 2>/dev/null; done
true
"""


@pytest.mark.slow
def test_slurm_path_end_to_end_with_a_stand_in_sbatch(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("scancel", FAKE_SCANCEL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_SLURM_DIR", str(tmp_path))
    path = _write(
        tmp_path,
        "cluster: slurm\nslurm: {cores: 1, processes: 1, memory: 1GB, death_timeout: 15,"
        " queue: fake}\nscale: {jobs: 1}\n",
    )
    with batch_client(config=path) as client:
        client.wait_for_workers(1, timeout=30)
        # A builtin: the worker runs from another folder and cannot import this module.
        assert client.submit(sum, [1, 1]).result(timeout=30) == 2
        assert describe(client).startswith("SLURMCluster at ")
        cluster = client.cluster
    assert cluster.status == Status.closed
    (submitted,) = tmp_path.glob("job-*.sh")
    assert "#SBATCH -p fake" in submitted.read_text()


def test_kubernetes_path_deploys_the_built_spec(monkeypatch):
    pytest.importorskip("dask_kubernetes")
    import dask_kubernetes.operator

    class StandInKubeCluster(LocalCluster):
        """Records what KubeCluster would get; runs a one-thread in-process cluster."""

        seen: dict = {}

        def __init__(self, **kwargs):
            StandInKubeCluster.seen = kwargs
            super().__init__(n_workers=1, processes=False, dashboard_address=":0")

    monkeypatch.setattr(dask_kubernetes.operator, "KubeCluster", StandInKubeCluster)
    with batch_client(config=EXAMPLES / "kubernetes.yaml", workers=2) as client:
        assert client.submit(_inc, 1).result() == 2
        cluster = client.cluster
    assert cluster.status == Status.closed
    seen = StandInKubeCluster.seen
    spec = seen.pop("custom_cluster_spec")
    assert spec["kind"] == "DaskCluster" and spec["spec"]["worker"]["replicas"] == 2
    assert seen == {"namespace": "emqc", "resource_timeout": 300, "quiet": True}


def test_kubernetes_start_failure_is_a_config_error(monkeypatch):
    pytest.importorskip("dask_kubernetes")
    import dask_kubernetes.operator

    def unreachable(**kwargs):
        raise RuntimeError("no kubeconfig")

    monkeypatch.setattr(dask_kubernetes.operator, "KubeCluster", unreachable)
    with pytest.raises(ClusterConfigError, match="no kubeconfig.*kubectl get pods"):
        with batch_client(cluster="kubernetes"):
            pass  # pragma: no cover
