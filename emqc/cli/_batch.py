"""``emqc batch``: run or resume a study manifest on a Dask cluster."""

from __future__ import annotations

from pathlib import Path

import click

from . import cli

_EXAMPLE = """
\b
Example manifest (study.yaml):
  output: results/pilot
  seed: 20261202
  block_um: 2.56
  blocks: 8
  samples:
    - {id: s01, source: scans/s01.h5:/raw, voxel_size_nm: [10, 10, 10]}
    - {id: s02, source: scans/s02/, voxel_size_nm: [8, 8, 8], blocks: 16}
"""


@cli.command(epilog=_EXAMPLE)
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option(
    "--scheduler", metavar="ADDRESS", help="Use a running Dask scheduler (tcp://host:8786)."
)
@click.option(
    "--cluster",
    type=click.Choice(["local", "slurm", "pbs", "sge", "lsf", "kubernetes"]),
    help="Start a cluster of this kind (default: local, or the kind in --cluster-config).",
)
@click.option(
    "--cluster-config",
    type=click.Path(path_type=Path),
    help="YAML cluster settings (see workflows/clusters/).",
)
@click.option(
    "--workers", type=click.IntRange(min=1), help="Local workers (default: one per core)."
)
@click.option(
    "--threads-per-worker", type=click.IntRange(min=1), help="Threads per local worker (default 1)."
)
@click.option(
    "--concurrent-samples",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Samples whose pipelines run at once (raise it on a large cluster: cores / blocks).",
)
@click.option("--no-progress", is_flag=True, help="Do not show progress bars.")
def batch(manifest, scheduler, cluster, cluster_config, workers, threads_per_worker,  # type: ignore[no-untyped-def]
          concurrent_samples, no_progress):  # fmt: skip
    """Ingest, verify, sample and score every sample of MANIFEST, resumably.

    Every unit of work (a sample's volume, its block list, each block's score) is
    skipped when its output is present and verified, so after a kill, rerunning the
    same command finishes the study and gives the same results as an uninterrupted
    run. Samples that fail are listed with their reason; the others complete. Exit
    status 1 when any sample failed.
    """
    from rich.console import Console

    from ..batch import read_study_manifest, run_batch
    from ..batch._cluster import batch_client, describe
    from ._batch_view import BatchProgress, result_table

    if scheduler and (cluster or cluster_config):
        raise click.UsageError("give --scheduler ADDRESS or --cluster/--cluster-config, not both")
    study = read_study_manifest(manifest)
    console = Console(stderr=True)
    with batch_client(
        scheduler=scheduler, cluster=cluster, config=cluster_config, workers=workers,
        threads_per_worker=threads_per_worker,
    ) as client:  # fmt: skip
        console.print(f"{study.name}: {len(study.samples)} samples -> {study.output}")
        console.print(describe(client))
        with BatchProgress(console, [s.id for s in study.samples], enabled=not no_progress) as bar:
            result = run_batch(
                study, client=client, progress=bar.update, concurrent_samples=concurrent_samples
            )
    out = Console(width=None if Console().is_terminal else 160)
    out.print(result_table(result))
    click.echo(f"wrote {result.output}/summary.csv and summary.json")
    for s in result.failed:
        click.echo(f"failed: {s.id} at {s.stage}: {s.reason}", err=True)
    if result.failed:
        raise SystemExit(1)
