"""Batch scaling: ``emqc batch`` scoring the same study with 1 and with 2 local Dask workers.

    ./run.sh bench batch_scaling [--samples 3] [--blocks 6] [--block-um 1.28] [--workdir DIR] [--keep]

1. A study manifest of ``--samples`` samples, each the **real** FIB-SEM cube
   (``$EMQC_DATA/medulla-fib-10nm``, 10 nm, 250^3 voxels) mirrored to a cube of
   3 blocks a side, at least 500^3 voxels (768^3 for 2.56 µm blocks; an HDF5 file
   in the work folder), under its own id, so each draws its own ``--blocks``
   non-overlapping blocks (seeds derived from study seed 7).
2. One run of ``emqc batch`` ingests, verifies and samples every sample and scores it
   (a warm-up; not timed).
3. For each worker count (1, then 2; one thread each, so one block per worker at a
   time, torch at one thread per block): the score units are deleted and
   ``emqc batch MANIFEST --workers N --threads-per-worker 1`` rerun in a fresh process.
   Ingest and sampling are then verified and skipped, so what differs is the scoring.
   Timed: the whole command (start to exit: imports, cluster start, model loading),
   and the scoring span from the run log (``runs/*.json``: first score stage start to
   last score stage end). Also the CPU seconds of the driver process (scheduler,
   client, sample pipelines) and of the worker processes (the largest child
   processes), so that a speed-up short of 2x can be told apart: orchestration
   overhead shows as driver CPU, contention between the two workers as more worker
   CPU per block.
4. Both runs' outputs must have equal digests (:func:`emqc.batch.output_digests`): the
   same study scored on a different cluster gives the same bytes.

Prints a Markdown table and writes ``DIR/batch_scaling.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from _process import measure

from emqc import datasets
from emqc.batch import output_digests

VENV_BIN = Path(sys.executable).parent


def source_edge(block_um: float) -> int:
    """Edge (10 nm voxels) of the mirrored cube: 3 blocks, so that 6 random ones fit apart."""
    return max(500, math.ceil(3 * block_um * 1000 / 10))


def write_source(work: Path, edge: int) -> Path:
    """The real cube mirrored to ``edge``^3 voxels (so that the blocks fit without overlap)."""
    import h5py
    import numpy as np

    raw = datasets.load("medulla", labels=False).raw
    big = np.pad(raw, [(0, edge - n) for n in raw.shape], mode="symmetric")
    path = work / f"medulla_mirrored_{edge}.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=big, chunks=(125, 125, 125))
    return path


def write_manifest(work: Path, samples: int, blocks: int, block_um: float) -> Path:
    source = write_source(work, source_edge(block_um))
    lines = [f"study: scaling\noutput: {work / 'out'}\nseed: 7\nblock_um: {block_um}\n"
             f"blocks: {blocks}\nsamples:"]  # fmt: skip
    for i in range(samples):
        lines.append(
            f"  - {{id: medulla-{i}, source: '{source}:/raw', voxel_size_nm: [10, 10, 10]}}"
        )
    path = work / "study.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def batch(manifest: Path, workers: int) -> list[str]:
    return [str(VENV_BIN / "emqc"), "-q", "batch", str(manifest), "--no-progress",
            "--workers", str(workers), "--threads-per-worker", "1"]  # fmt: skip


def scoring_span(out: Path) -> float:
    """Seconds from the first sample's score stage start to the last one's end (latest run)."""
    log = json.loads(
        max((out / "runs").glob("*.json"), key=lambda p: p.stat().st_mtime).read_text()
    )
    spans = [s["seconds"]["score"] for s in log["samples"].values()]
    return max(end for _, end in spans) - min(start for start, _ in spans)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--block-um", type=float, default=1.28)
    ap.add_argument("--workdir", type=Path, default=Path("benchmarks/results/batch_scaling"))
    ap.add_argument("--keep", action="store_true", help="keep the study outputs")
    args = ap.parse_args(argv)
    try:
        datasets.load("medulla", labels=False)
    except Exception as exc:
        print(f"batch scaling benchmark needs the real data: {exc}", file=sys.stderr)
        return 2
    work = args.workdir.absolute()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    manifest = write_manifest(work, args.samples, args.blocks, args.block_um)
    out = work / "out"
    subprocess.run(batch(manifest, 2), check=True, stdout=subprocess.DEVNULL)  # warm-up
    rows, digests = [], []
    for workers in (1, 2):
        for scores in out.glob("samples/*/scores"):
            shutil.rmtree(scores)
        m = measure(batch(manifest, workers))
        rows.append({"workers": workers, "command_seconds": m["seconds"],
                     "scoring_seconds": scoring_span(out),
                     "peak_rss_bytes": m["peak_rss_bytes"],
                     "driver_cpu_seconds": m["cpu_seconds"],
                     "worker_cpu_seconds": m["child_cpu_seconds"][:workers]})  # fmt: skip
        digests.append(output_digests(out))
    n_blocks = args.samples * args.blocks
    speedup = rows[0]["scoring_seconds"] / rows[1]["scoring_seconds"]
    total_speedup = rows[0]["command_seconds"] / rows[1]["command_seconds"]
    print(f"\n{args.samples} samples x {args.blocks} blocks of {args.block_um} um "
          f"(real medulla cube mirrored to {source_edge(args.block_um)}^3, 10 nm), "
          f"{os.cpu_count()} cores\n")  # fmt: skip
    print("| workers | scoring (s) | s per block | whole command (s) | peak RSS (GB) "
          "| worker CPU s per block | driver CPU (s) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} | {r['scoring_seconds']:.1f} | {r['scoring_seconds'] / n_blocks:.1f} "
              f"| {r['command_seconds']:.1f} | {r['peak_rss_bytes'] / 1e9:.2f} "
              f"| {sum(r['worker_cpu_seconds']) / n_blocks:.2f} "
              f"| {r['driver_cpu_seconds']:.1f} |")  # fmt: skip
    same = digests[0] == digests[1]
    print(f"\nscoring speed-up 2 vs 1 workers: {speedup:.2f}x (target >= 1.8x); whole command "
          f"{total_speedup:.2f}x; outputs identical: {same}")  # fmt: skip
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},  # fmt: skip
        "samples": args.samples, "blocks_per_sample": args.blocks, "block_um": args.block_um,
        "runs": rows, "scoring_speedup": speedup, "command_speedup": total_speedup,
        "outputs_identical": same,
    }  # fmt: skip
    (work / "batch_scaling.json").write_text(json.dumps(result, indent=1) + "\n")
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
