"""Scoring speed: ``emqc score`` vs a naive eager per-block torch loop, on the same blocks.

    ./run.sh bench scoring_speed [--blocks 32] [--block-um 2.56] [--workdir DIR] [--keep]

1. An 8 nm test volume from the **real** FIB-SEM cube: the medulla cube (10 nm) is
   resampled to 8 nm (312^3 voxels), mirrored to 640^3 voxels (5.12 um a side) and
   ingested (``emqc.ingest``, verified OME-Zarr).
2. ``emqc sample VOL --n 32 --seed 7 --block-um 2.56 --allow-overlap`` draws the
   blocks (320^3 voxels each; overlap is allowed because the mirrored volume holds
   only 8 disjoint blocks; every block is still read and scored on its own).
3. Each in a fresh process, timed from start to exit (imports, model loading and
   writing included), peak RSS of the process tree sampled every 20 ms:

   - **emqc**: ``emqc score VOL --block-list LIST --out DIR --no-progress``: blocks as
     Dask tasks on local threads, networks with batch norm folded, channels-last,
     bfloat16, each convolution fused with its ReLU (:mod:`emqc.models._fused`), the
     block as one tile at the network's 10 nm; freed memory kept for reuse
     (:mod:`emqc._memory`);
   - **naive**: the loop a user would write first (:data:`NAIVE`): for each block,
     read it, resample it to the network's working voxel size, run the same weights in
     plain fp32 eager mode under ``torch.no_grad`` on the whole block, sigmoid,
     resample back, and the same :func:`emqc.scoring.score_block` metrics.

4. Both write every block's scores; the largest difference between them is reported,
   so that a speed-up that changed the answers would show.

Prints a Markdown table and writes ``DIR/scoring_speed.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
from _process import measure
from scipy import ndimage

from emqc import datasets

VENV_BIN = Path(sys.executable).parent

NAIVE = r"""
import json, sys, time
import numpy as np, torch
from scipy import ndimage
from emqc.models import WEIGHTS_DIR, load_network
from emqc.sampling.volume import read_block_list
from emqc.scoring import SCORES, score_block
from emqc.volume import open_volume

vol = open_volume(sys.argv[1])
blocks = read_block_list(sys.argv[2])
net, _ = load_network(WEIGHTS_DIR / "fibsem3d.pt")
work = net.config.working_voxel_nm
rows = []
for b in blocks.blocks:
    raw = vol.read(b.origin_vox, b.shape_vox)
    zoom = [v / work for v in vol.voxel_size_nm]
    image = ndimage.zoom(raw.astype(np.float32) / 255, zoom, order=1, grid_mode=True, mode="nearest")
    pad = [(0, -n % net.size_multiple) for n in image.shape]
    x = torch.from_numpy(np.pad(image, pad, mode="reflect"))[None, None]
    with torch.no_grad():
        logits = net(x)[0].numpy()[(slice(None), *(slice(0, n) for n in image.shape))]
    probs = 1 / (1 + np.exp(-logits))
    maps = {h: ndimage.zoom(probs[i], [a / b for a, b in zip(raw.shape, probs[i].shape)], order=1,
                            grid_mode=True, mode="nearest").astype(np.float32)
            for i, h in enumerate(net.config.heads)}
    s = score_block(raw, voxel_size_nm=vol.voxel_size_nm, maps=maps)
    rows.append({"block_id": b.id, **{n: getattr(s, n) for n in SCORES}})
json.dump(rows, open(sys.argv[3], "w"))
"""


def make_volume(work: Path) -> Path:
    """Ingest the real cube at 8 nm, mirrored to 640^3 voxels."""
    from emqc.ingest import ingest
    from emqc.sources._array import ArraySource

    raw = datasets.load("medulla", labels=False).raw
    at8 = ndimage.zoom(raw.astype(np.float32), 10 / 8, order=1, grid_mode=True, mode="nearest")
    at8 = np.clip(np.rint(at8), 0, 255).astype(np.uint8)
    big = np.pad(at8, [(0, 640 - n) for n in at8.shape], mode="symmetric")
    dest = work / "medulla8nm.ome.zarr"
    if not dest.exists():
        source = ArraySource(big, voxel_size_nm=(8, 8, 8), name="medulla cube at 8 nm, mirrored")
        ingest(source, dest, progress=False)
    return dest


def _emqc(*args: str) -> list[str]:
    return [str(VENV_BIN / "emqc"), "-q", *args]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blocks", type=int, default=32)
    ap.add_argument("--block-um", type=float, default=2.56)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workdir", type=Path, default=Path("benchmarks/results/scoring_speed"))
    ap.add_argument("--keep", action="store_true", help="keep the test volume and outputs")
    args = ap.parse_args(argv)
    try:
        datasets.load("medulla", labels=False)
    except Exception as exc:
        print(f"scoring speed benchmark needs the real data: {exc}", file=sys.stderr)
        return 2
    work = args.workdir.absolute()
    work.mkdir(parents=True, exist_ok=True)
    vol = make_volume(work)
    blocks = work / "blocks.json"
    subprocess.run(_emqc("sample", str(vol), "--n", str(args.blocks), "--seed", str(args.seed),
                         "--block-um", str(args.block_um), "--allow-overlap", "--out", str(blocks)),
                   check=True)  # fmt: skip
    out = work / "scores"
    shutil.rmtree(out, ignore_errors=True)
    emqc = measure(
        _emqc("score", str(vol), "--block-list", str(blocks), "--out", str(out), "--no-progress")
    )
    naive_json = work / "naive.json"
    naive = measure([sys.executable, "-c", NAIVE, str(vol), str(blocks), str(naive_json)])

    import pyarrow.parquet as pq

    ours = {r["block_id"]: r for r in pq.read_table(out / "blocks.parquet").to_pylist()}
    theirs = {r["block_id"]: r for r in json.loads(naive_json.read_text())}
    diffs = {
        name: float(np.nanmax([abs(ours[b][name] - theirs[b][name]) for b in ours]))
        for name in ("membrane_integrity", "edema", "synapse_traceability")
    }
    block_vox = json.loads(blocks.read_text())["parameters"]["block_shape_vox"]
    speedup = naive["seconds"] / emqc["seconds"]
    print(
        f"\n{args.blocks} blocks of {block_vox} voxels at 8 nm ({args.block_um} um), {os.cpu_count()} cores\n"
    )
    print("| method | time (s) | s per block | peak RSS (GB) |\n|---|---|---|---|")
    for name, m in (("emqc score", emqc), ("naive eager loop", naive)):
        per_block, rss = m["seconds"] / args.blocks, m["peak_rss_bytes"] / 1e9
        print(f"| {name} | {m['seconds']:.1f} | {per_block:.2f} | {rss:.2f} |")
    print(f"\nspeed-up {speedup:.2f}x; largest |score difference| emqc vs naive: "
          + ", ".join(f"{k} {v:.3f}" for k, v in diffs.items()))  # fmt: skip
    doc = {
        "benchmark": "scoring_speed",
        "date": datetime.date.today().isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": psutil.virtual_memory().total / 1e9,
            "python": platform.python_version(),
            "platform": platform.platform(),
        },  # fmt: skip
        "blocks": args.blocks,
        "block_shape_vox": block_vox,
        "emqc": emqc,
        "naive": naive,
        "speedup": speedup,
        "max_score_difference": diffs,
    }
    (work / "scoring_speed.json").write_text(json.dumps(doc, indent=1) + "\n")
    if not args.keep:
        shutil.rmtree(vol, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
