"""``emqc demo``."""

from __future__ import annotations

import time
from pathlib import Path

import click

from . import cli


@cli.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("emqc-demo"),
    show_default=True,
    help="Folder for the demo's inputs and outputs.",
)
@click.option(
    "--blocks",
    "n_blocks",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Blocks to sample and score per volume (a verdict needs at least 3).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Worker processes of the local Dask cluster.",
)
def demo(out, n_blocks, workers):  # type: ignore[no-untyped-def]
    """Run the main job end to end on synthetic data, on a local Dask cluster.

    Ingests, verifies, samples and scores a well-preserved and a damaged SYNTHETIC
    sample, prints their scores side by side, and ends with a signed report of the
    study (OUT/report/) verified offline; every step is in OUT's custody ledger.
    """
    from rich.console import Console
    from rich.table import Table

    from ..demo import DEMO_JUDGES, run_demo
    from ..scoring import SCORES

    t0 = time.perf_counter()
    click.echo("emqc demo: SYNTHETIC volumes (emqc.synth), not real tissue", err=True)
    run = run_demo(out, n_blocks=n_blocks, n_workers=workers)
    results = run.samples
    seconds = time.perf_counter() - t0
    console = Console(width=None if Console().is_terminal else 110)

    table = Table(title=f"emqc demo: {len(results)} synthetic samples ({seconds:.0f} s)")
    for col in (
        "sample",
        "delivered as",
        "shape (z,y,x)",
        "levels",
        "verified files",
        "root digest",
        "blocks",
    ):
        table.add_column(col)
    for r in results:
        table.add_row(
            r.sample.id,
            r.sample.format,
            " x ".join(map(str, r.ingest.shape)),
            str(r.ingest.n_levels),
            f"{r.verified_files} OK",
            r.ingest.root_digest[:16] + "…",
            str(r.n_blocks),
        )
    console.print(table)

    scores = Table(
        title="Preservation scores of the SYNTHETIC samples (mean over blocks)",
        caption="; ".join(f"{r.sample.id}: {r.sample.condition}" for r in results),
    )
    for col in ("sample", "condition", "score", "mean", "95% CI", "blocks", "verdict"):
        scores.add_column(col)
    for r in results:
        for i, name in enumerate(SCORES):
            s = r.scores.summary[name]
            judged = s.n_blocks > 0
            scores.add_row(
                r.sample.id if i == 0 else "",
                ("damaged" if r.sample.damage else "well-preserved") if i == 0 else "",
                name,
                f"{s.mean:.3f}" if judged else "—",
                f"[{s.ci_low:.3f}, {s.ci_high:.3f}]" if judged else "—",
                f"{s.n_blocks}/{s.n_blocks + s.n_excluded}",
                s.verdict,
                end_section=i == len(SCORES) - 1,
            )
    console.print(scores)
    if any(r.scores.summary[name].n_blocks == 0 for r in results for name in SCORES):
        console.print(
            "—: judged on no block (the committed networks give no map for that score\n"
            "   at this voxel size; the flags column of blocks.csv says why)",
            highlight=False,
        )
    console.print(
        "Scores (summary.json; blocks.csv and blocks.parquet beside it):\n"
        + "\n".join(f"  {r.sample.id}  {r.scores.out / 'summary.json'}" for r in results),
        highlight=False,
    )
    out = Path(out).absolute()
    console.print(
        f"Outputs in {out}:\n"
        f"  raw/      synthetic inputs as delivered (TIFF slices, HDF5) and samples.json\n"
        f"            (what each sample is, and the simulated damage applied)\n"
        f"  volumes/  ingested OME-Zarr volumes with emqc-manifest.json (check: emqc verify VOLUME)\n"
        f"  blocks/   sampled block lists (seed, volume digest) and a PNG montage per sample\n"
        f"  scores/   per sample: blocks.parquet, blocks.csv (one row per block), summary.json\n"
        f"  custody.sqlite, keys.json, keys/  the study's signed ledger and its DEMO keys\n"
        f"            (emqc custody log --study {out})\n"
        f"  report/   the signed report (attestation.dsse.json, ledger and key copies)\n"
        f"  judging/  a blinded judging session for judge-a and judge-b (not yet judged)",
        highlight=False,
    )
    console.print(run.verification.summary(), highlight=False)
    console.print(
        f"Report PDF: {run.report.pdf}\n"
        f"Verify it again, offline: emqc verify {run.report.out} --data {out}",
        highlight=False,
    )
    if run.judging is not None:
        judging = run.judging
        opens = "\n".join(
            f"  emqc judge open {judging} --judge {name} --study {out} "
            f"--key {out / 'keys' / f'{name}.key'}"
            for name in DEMO_JUDGES
        )
        console.print(
            f"Blinded judging session: {judging}\n"
            f"Each judge opens their blocks in napari (one command per judge):\n{opens}\n"
            f"{judging / 'sealed'} is the coordinator's (which block is which sample): remove\n"
            f"it before giving the session to judges; once both have locked: "
            f"emqc judge unblind {judging}",
            highlight=False,
            soft_wrap=True,
        )
