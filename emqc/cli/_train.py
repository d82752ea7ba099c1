"""``emqc train``."""

from __future__ import annotations

from pathlib import Path

import click

from . import cli


@cli.command()
@click.argument("name", type=click.Choice(["fibsem3d_boundary", "fibsem3d", "sections2d"]))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Weights file (default: emqc/models/weights/NAME.pt; pretrained/ for stage 1).",
)
@click.option(
    "--iterations",
    type=click.IntRange(min=1),
    help="Training iterations (default: the network's spec).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Random seed of crops and initial weights.",
)
@click.option("--threads", type=click.IntRange(min=1), help="Torch threads (default: all cores).")
def train(name, out, iterations, seed, threads):  # type: ignore[no-untyped-def]
    """Train network NAME on the training parts of the real data in $EMQC_DATA.

    fibsem3d_boundary: 3D U-Net (boundary) at 10 nm on the medulla FIB-SEM cube, z 0-159
    (stage 1; weights in weights/pretrained/).
    fibsem3d: from fibsem3d_boundary, adds the extracellular and synapse heads and
    trains on the cube clean and with simulated damage (stage 2).
    sections2d: 2D U-Net (membrane, synapse, extracellular) on VNC z 0-13 and ISBI z 0-21.
    See emqc/models/MODEL_CARD.md.
    """
    from ..models import train as run_train

    path = run_train(name, out=out, iterations=iterations, seed=seed, threads=threads)
    click.echo(f"trained {name} -> {path}")
