"""``emqc score``."""

from __future__ import annotations

from pathlib import Path

import click

from ..metrics import REFERENCE_SYNAPSES_PER_UM3
from . import cli
from ._options import Triple, open_custody, study_options


@cli.command()
@click.argument("volume", type=click.Path(path_type=str))  # a local path or an s3:// URL
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
    "--all-blocks",
    is_flag=True,
    help="Score every block of the regular grid inside tissue and write score_map.ome.zarr.",
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
@click.option(
    "--synapse-reference",
    type=click.FloatRange(min=0, min_open=True),
    default=REFERENCE_SYNAPSES_PER_UM3,
    show_default=True,
    help="Visible synapses per µm³ in well-preserved tissue of this kind (mammalian cortex "
    "by default; measure it on a well-preserved reference of the region and species).",
)
@click.option(
    "--polarity",
    type=click.Choice(["auto", "dark", "bright"]),
    default="auto",
    show_default=True,
    help="Contrast polarity: detected per block by the network (auto), or declared: dark "
    "membranes (TEM-like, as most FIB-SEM) or bright membranes (backscatter SBEM; inverted "
    "before scoring).",
)
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("--no-progress", is_flag=True, help="Do not show progress bars.")
@study_options
def score(  # type: ignore[no-untyped-def]
    volume,
    out,
    n,
    block_list,
    all_blocks,
    seed,
    block_um,
    block_vox,
    synapse_reference,
    polarity,
    overwrite,
    no_progress,
    study,
    key,
    reason,
):
    """Score preservation of VOLUME on blocks; write blocks.parquet/.csv and summary.json.

    The blocks are N random ones inside tissue (--blocks N), those of a list from
    emqc sample (--block-list FILE), or every block of the regular grid that lies
    wholly inside tissue (--all-blocks), which also writes score_map.ome.zarr: one
    value per grid block and score, NaN where not scored, to view as a heat map
    over the volume in napari or neuroglancer.
    """
    from rich.console import Console
    from rich.table import Table

    from ..sampling.volume import read_block_list
    from ..scoring import SCORES
    from ..scoring._run import score_volume

    sources = {
        "--blocks N": n is not None,
        "--block-list FILE": block_list is not None,
        "--all-blocks": all_blocks,
    }
    given = [name for name, on in sources.items() if on]
    if len(given) != 1:
        also = f" ({' and '.join(given)} cannot be combined)" if given else ""
        raise click.UsageError(
            f"give exactly one of --blocks N, --block-list FILE or --all-blocks{also}"
        )
    if seed is not None and n is None:
        raise click.UsageError(
            "--seed applies only with --blocks N (a block list fixes its blocks; the "
            "--all-blocks grid is not random)"
        )
    if block_list is not None and (block_um or block_vox):
        raise click.UsageError(
            "--block-um/--block-vox apply only with --blocks N or --all-blocks (a block list "
            "fixes its blocks)"
        )
    if block_um and block_vox:
        raise click.UsageError("give --block-um or --block-vox, not both")
    blocks = read_block_list(block_list) if block_list is not None else None
    custody = open_custody(study, key, volume)
    run = score_volume(
        volume, out=out, blocks=blocks, n=n, seed=seed, block_um=block_um, block_vox=block_vox,
        all_blocks=all_blocks, synapse_reference_per_um3=synapse_reference, polarity=polarity,
        overwrite=overwrite, progress=not no_progress,
    )  # fmt: skip
    how = "all grid blocks inside tissue" if all_blocks else f"seed {run.blocks.seed}"
    table = Table(title=f"{volume}: {len(run.scores)} blocks, {how}")
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
    for line in _flag_notes(run.scores):
        click.echo(line)
    wrote = "blocks.parquet, blocks.csv, summary.json"
    click.echo(f"wrote {run.out}/{wrote}" + (f", {run.score_map.name}" if run.score_map else ""))
    if custody is not None:
        st, signer = custody
        ev = st.score_event(
            signer, Path(volume), Path(run.out), block_list=block_list, reason=reason
        )
        click.echo(f"custody: event {ev.seq} in {st.ledger.path}")


def _flag_notes(scores) -> list[str]:  # type: ignore[no-untyped-def]
    """One line per noted flag that any block raised: how many blocks, and what it means.

    Noted are what was done to the blocks, or why a score was left unjudged (every
    flag is in blocks.csv).
    """
    from ..scoring import SYNAPSE_MIN_SNR

    noted = {
        "imaging_quality:inverted_contrast": "read with inverted contrast (bright membranes)",
        "imaging_quality:polarity_uncertain": "polarity uncertain (membranes too faint), "
        "read as recorded",
        "synapse_traceability:too_noisy": "too noisy to judge synapse traceability "
        f"(SNR < {SYNAPSE_MIN_SNR:g})",
        "membrane_integrity:too_blurred": "too blurred to judge membrane integrity and edema",
    }
    lines = []
    for flag, meaning in noted.items():
        n = sum(flag in s.flags for s in scores)
        if n:
            lines.append(f"{n} of {len(scores)} block(s) {meaning}")
    return lines
