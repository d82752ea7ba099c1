"""Ingest benchmark: emqc vs the baseline a user would write by hand, in the same run.

    ./run.sh bench ingest [--sizes-gb 1,4.3] [--workdir DIR]

For each size, a stack of uncompressed 2048 × 2048 uint8 TIFF slices is built
from the real FIB-SEM cube (``$EMQC_DATA/medulla-fib-10nm``, mirrored to fill
each slice, so compression sees real EM texture). Then, each in a fresh process:

- **emqc**: ``emqc ingest STACK DEST --voxel-size 10,10,10`` (streaming Dask graph,
  level 0 + pyramid + SHA-256 of every source file and every stored chunk);
- **baseline**: ``tifffile.imread(files)`` into memory, then
  ``ome_zarr.writer.write_image(data, group, axes="zyx", storage_options={"chunks": (128,)*3})``
  with ome-zarr's defaults (as its documentation shows).

Reported per run: wall time, throughput (input MB/s) and peak RSS of the whole
process tree (sampled every 20 ms with psutil). The page cache is dropped before
each run when the benchmark may (root); otherwise both read from cache alike.
Results print as a Markdown table and are saved as JSON under ``--workdir``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import tifffile
from _process import measure

from emqc import datasets

SLICE = 2048

BASELINE = r"""
import resource, sys
# Cap the address space so that running out of memory is a clean MemoryError, not the OOM killer.
limit = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import glob, tifffile, zarr
from ome_zarr.writer import write_image
files = sorted(glob.glob(sys.argv[1] + "/*.tif"))
data = tifffile.imread(files)
root = zarr.open_group(sys.argv[2], mode="w")
write_image(data, root, axes="zyx", storage_options={"chunks": (128, 128, 128)})
"""


def make_stack(folder: Path, n_slices: int) -> int:
    """Write ``n_slices`` slices of real EM texture; return total bytes."""
    cube = datasets.load("medulla", labels=False).raw
    # Mirror the cube in every axis so the stack is seamless real texture, not repeats with edges.
    mirrored = np.concatenate([cube, cube[::-1]], axis=0)
    mirrored = np.concatenate([mirrored, mirrored[:, ::-1]], axis=1)
    mirrored = np.concatenate([mirrored, mirrored[:, :, ::-1]], axis=2)
    reps = -(-SLICE // mirrored.shape[1])
    folder.mkdir(parents=True, exist_ok=True)
    for z in range(n_slices):
        plane = np.tile(mirrored[z % mirrored.shape[0]], (reps, reps))[:SLICE, :SLICE]
        tifffile.imwrite(folder / f"slice_{z:05d}.tif", np.ascontiguousarray(plane))
    return n_slices * SLICE * SLICE


def drop_caches() -> bool:
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def _describe(row: dict) -> str:
    if row["failed"]:
        return f"failed ({row['failed']}) after {row['seconds']:.1f} s, peak RSS {row['peak_rss_gb']:.2f} GB"
    return (f"{row['seconds']:.1f} s, {row['throughput_mb_s']:.0f} MB/s, "
            f"peak RSS {row['peak_rss_gb']:.2f} GB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes-gb", default="1,4.3", help="input sizes in GB (default 1,4.3; 4.3 GB = 4.0 GiB)"
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/emqc-bench-ingest"))
    parser.add_argument("--keep", action="store_true", help="keep generated stacks and outputs")
    args = parser.parse_args()

    python = sys.executable
    emqc = [python, "-m", "emqc", "ingest"]
    rows = []
    for gb in (float(s) for s in args.sizes_gb.split(",")):
        n_slices = int(round(gb * 1e9 / (SLICE * SLICE)))
        stack = args.workdir / f"stack_{gb:g}GB"
        if not stack.exists() or len(glob.glob(f"{stack}/*.tif")) != n_slices:
            shutil.rmtree(stack, ignore_errors=True)
            print(
                f"writing {n_slices} slices of {SLICE}x{SLICE} "
                f"({n_slices * SLICE * SLICE / 1e9:.2f} GB) to {stack}"
            )
            make_stack(stack, n_slices)
        nbytes = n_slices * SLICE * SLICE
        for name, cmd in [
            (
                "emqc ingest",
                [
                    *emqc,
                    str(stack),
                    str(args.workdir / "emqc.ome.zarr"),
                    "--voxel-size",
                    "10,10,10",
                    "--no-progress",
                    "--overwrite",
                ],
            ),
            (
                "baseline (tifffile + ome-zarr write_image)",
                [
                    python,
                    "-c",
                    BASELINE,
                    str(stack),
                    str(args.workdir / "baseline.ome.zarr"),
                    str(int(psutil.virtual_memory().total * 0.8)),
                ],
            ),
        ]:
            shutil.rmtree(args.workdir / "baseline.ome.zarr", ignore_errors=True)
            cold = drop_caches()
            print(
                f"running {name} on {nbytes / 1e9:.2f} GB (page cache dropped: {cold}) ...",
                flush=True,
            )
            m = measure(cmd)
            rows.append(
                {
                    "input_gb": nbytes / 1e9,
                    "tool": name,
                    "seconds": m["seconds"],
                    "throughput_mb_s": None if "failed" in m else nbytes / 1e6 / m["seconds"],
                    "peak_rss_gb": m["peak_rss_bytes"] / 1e9,
                    "failed": m.get("failed"),
                    "cache_dropped": cold,
                }
            )
            print("  " + _describe(rows[-1]))

    print("\n| input | tool | time (s) | throughput (MB/s) | peak RSS (GB) |")
    print("|---|---|---|---|---|")
    for r in rows:
        speed = f"{r['throughput_mb_s']:.0f}" if r["throughput_mb_s"] else f"failed: {r['failed']}"
        print(f"| {r['input_gb']:.2f} GB | {r['tool']} | {r['seconds']:.1f} | {speed} "
              f"| {r['peak_rss_gb']:.2f} |")  # fmt: skip
    for gb in sorted({r["input_gb"] for r in rows}):
        e = next(r for r in rows if r["input_gb"] == gb and r["tool"] == "emqc ingest")
        b = next(r for r in rows if r["input_gb"] == gb and r["tool"] != "emqc ingest")
        if b["throughput_mb_s"]:
            ratio = e["throughput_mb_s"] / b["throughput_mb_s"]
            print(f"{gb:.2f} GB: emqc throughput {ratio:.2f}x the baseline's")
        else:
            print(f"{gb:.2f} GB: the baseline failed ({b['failed']}); emqc finished")
    meta = {
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "memory_gb": psutil.virtual_memory().total / 1e9,
        "when_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = args.workdir / "results.json"
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"\nresults: {out}")
    if not args.keep:
        for p in args.workdir.glob("*.ome.zarr"):
            shutil.rmtree(p, ignore_errors=True)


if __name__ == "__main__":
    main()
