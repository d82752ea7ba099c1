"""Graph sizes: how many Dask tasks one sample's ingest makes, per stored chunk.

    ./run.sh bench batch_graph [--sizes 256,384,512] [--chunk 128] [--resume] [--workdir DIR]

Ingests synthetic uint16 volumes (uint16 needs the intensity statistics pass that
8-bit sources skip, so this is the larger graph) of each edge in ``--sizes`` with
chunk edge ``--chunk`` on local threads, and counts the tasks of every graph the
ingest computes (a ``dask.callbacks.Callback``). Scoring adds one task per block
(see ``emqc.batch._run``). Prints a Markdown table: volume, level-0 chunks, tasks,
tasks per level-0 chunk; PLANNING.md extrapolates from it.

``--resume`` ingests as ``emqc batch`` does (``resume=True``: one journaled task per
stored chunk), from an HDF5 file, since only a source with files can be resumed.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from pathlib import Path

import numpy as np
from dask.callbacks import Callback

from emqc.ingest import ingest
from emqc.sources import ArraySource


class CountTasks(Callback):
    """Adds up the tasks of every graph computed while active."""

    def __init__(self) -> None:
        super().__init__()
        self.tasks = 0
        self.graphs = 0

    def _start(self, dsk) -> None:  # type: ignore[no-untyped-def]
        self.tasks += len(dsk)
        self.graphs += 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="256,384,512")
    ap.add_argument("--chunk", type=int, default=128)
    ap.add_argument("--resume", action="store_true", help="journaled, as emqc batch ingests")
    ap.add_argument("--workdir", type=Path, default=Path("benchmarks/results/batch_graph"))
    args = ap.parse_args(argv)
    work = args.workdir.absolute()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rng = np.random.default_rng(0)
    print(
        f"| volume (voxels) | level-0 chunks ({args.chunk}³) | graphs | tasks | tasks per level-0 chunk |"
    )
    print("|---|---|---|---|---|")
    for edge in (int(s) for s in args.sizes.split(",")):
        image = rng.integers(0, 4096, (edge, edge, edge), dtype=np.uint16)
        source: object = ArraySource(image, voxel_size_nm=(10, 10, 10))
        if args.resume:
            import h5py

            with h5py.File(work / f"v{edge}.h5", "w") as f:
                f.create_dataset("raw", data=image, chunks=(64, 64, 64))
            source = f"{work / f'v{edge}.h5'}:/raw"
        counter = CountTasks()
        with counter:
            ingest(source, work / f"v{edge}.ome.zarr", voxel_size_nm=(10, 10, 10),
                   chunk=args.chunk, progress=False, resume=args.resume)  # fmt: skip
        chunks = math.ceil(edge / args.chunk) ** 3
        print(f"| {edge}³ | {chunks} | {counter.graphs} | {counter.tasks} | "
              f"{counter.tasks / chunks:.1f} |")  # fmt: skip
        shutil.rmtree(work / f"v{edge}.ome.zarr")
    return 0


if __name__ == "__main__":
    sys.exit(main())
