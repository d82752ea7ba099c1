"""``emqc score``."""

from __future__ import annotations

from pathlib import Path

import click

from . import cli
from ._options import Triple


@cli.command()
@click.argument("volume", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option(
    "--blocks", "n", type=click.IntRange(min=1), help="Number of blocks to sample and score."
)
@click.option(
    "--block-list",
    type=click.Path(path_type=Path),
    help="Score the blocks of this list (from emqc sample).",
)
@click.option(
    "--seed", type=click.IntRange(min=0), help="Sampling seed (default: drawn and recorded)."
)
@click.option(
    "--block-um",
    type=click.FloatRange(min=0, min_open=True),
    help="Block edge in µm (default 2.56).",
)
@click.option("--block-vox", type=Triple(integer=True), help="Block edge in voxels instead.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("--no-progress", is_flag=True, help="Do not show progress bars.")
def score(volume, out, n, block_list, seed, block_um, block_vox, overwrite, no_progress):  # type: ignore[no-untyped-def]
    """Score preservation of VOLUME on random blocks; write blocks.parquet/.csv and summary.json."""
    from rich.console import Console
    from rich.table import Table

    from ..sampling.volume import read_block_list
    from ..scoring import SCORES
    from ..scoring._run import score_volume

    if (n is None) == (block_list is None):
        raise click.UsageError("give exactly one of --blocks N or --block-list FILE")
    if block_list is not None and (seed is not None or block_um or block_vox):
        raise click.UsageError("--seed/--block-um/--block-vox apply only with --blocks N")
    blocks = read_block_list(block_list) if block_list is not None else None
    run = score_volume(
        volume, out=out, blocks=blocks, n=n, seed=seed, block_um=block_um, block_vox=block_vox,
        overwrite=overwrite, progress=not no_progress,
    )  # fmt: skip
    table = Table(title=f"{volume}: {len(run.scores)} blocks, seed {run.blocks.seed}")
    for col in ("score", "mean", "median", "95% CI", "blocks", "threshold", "verdict"):
        table.add_column(col)
    for name in SCORES:
        s = run.summary[name]
        table.add_row(
            name, f"{s.mean:.3f}", f"{s.median:.3f}", f"[{s.ci_low:.3f}, {s.ci_high:.3f}]",
            f"{s.n_blocks}" + (f" (+{s.n_excluded} not judged)" if s.n_excluded else ""),
            f"{s.threshold:g}", s.verdict,
        )  # fmt: skip
    Console(width=None if Console().is_terminal else 110).print(table)
    click.echo(f"wrote {run.out}/blocks.parquet, blocks.csv, summary.json")
