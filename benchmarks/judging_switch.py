"""Judging benchmark: how long napari takes to go to the next 256³ block in the judging widget.

    ./run.sh bench judging_switch    # [--blocks 3] [--workdir DIR] [--keep]

(napari needs a display: without ``$DISPLAY``, ``./run.sh bench judging_switch`` runs it
under Xvfb, where OpenGL is Mesa's software renderer.)

1. The real medulla FIB-SEM cube (250³ at 10 nm) is mirrored to 256 x 768 x 768 voxels
   and ingested twice, as two samples.
2. A judging session is made with ``--blocks`` blocks of 256³ voxels per sample (2.56 µm
   at 10 nm), two judges.
3. A shown napari viewer (1200 x 800) with the judging widget opens judge 1's part; for
   every block, the answers are set and **Save & next** is timed from the call until
   the next block's layer is in place and the canvas has redrawn (Qt events processed):
   the verdict is written (fsync), the next block loaded from disk, the layer updated;
   once in napari's 2D view (judge 1) and once in its 3D volume view (judge 2).

Target (issue 5): median <= 200 ms. Prints a Markdown table and writes
``DIR/judging_switch.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def make_volumes(work: Path) -> dict[str, Path]:
    from emqc import datasets
    from emqc.ingest import ingest
    from emqc.sources._array import ArraySource

    raw = datasets.load("medulla").raw  # (250, 250, 250) at 10 nm
    big = np.pad(raw, ((0, 6), (0, 518), (0, 518)), mode="symmetric")
    out = {}
    for sid in ("S01", "S02"):
        out[sid] = work / f"{sid}.ome.zarr"
        ingest(ArraySource(big, voxel_size_nm=(10, 10, 10), name=sid), out[sid], progress=False)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=3, help="blocks per sample")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="emqc-judging-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        import napari
        from emqc_napari._widget import JudgingWidget
        from qtpy.QtWidgets import QApplication

        from emqc.judging import create_session

        vols = make_volumes(work)
        session = work / "session"
        shutil.rmtree(session, ignore_errors=True)
        create_session(vols, ["j1", "j2"], blocks_per_sample=args.blocks, out=session, seed=1,
                       repeat_share=0.0, block_vox=(256, 256, 256))  # fmt: skip
        app = QApplication.instance() or QApplication([])
        result = {"machine": {"python": platform.python_version(), "platform": platform.platform(),
                              "napari": napari.__version__}}  # fmt: skip
        print("| view | block | switches | median (ms) | max (ms) | target |")
        print("|---|---|---|---|---|---|")
        for judge, ndisplay in (("j1", 2), ("j2", 3)):
            viewer = napari.Viewer(show=True)
            viewer.window.resize(1200, 800)
            viewer.dims.ndisplay = ndisplay
            widget = JudgingWidget(viewer, session, judge)
            viewer.window.add_dock_widget(widget, name="Blinded judging")
            app.processEvents()
            times = []
            for _ in range(len(widget.js.order) - 1):
                for name, value in (("membrane_integrity", 3), ("edema", "mild"),
                                    ("traceable", "yes"), ("confidence", 2)):  # fmt: skip
                    widget._answers[name].value = value
                t0 = time.perf_counter()
                assert widget.save_and_next()
                app.processEvents()
                times.append(time.perf_counter() - t0)
            shape = widget.js.session.load_block(widget.js.order[0]).shape
            viewer.close()
            view = f"{ndisplay}D"
            result[view] = {"block_shape": list(shape), "switches": len(times),
                            "median_ms": round(1000 * statistics.median(times), 1),
                            "max_ms": round(1000 * max(times), 1),
                            "all_ms": [round(1000 * t, 1) for t in times]}  # fmt: skip
            r = result[view]
            print(f"| {view} | {'x'.join(map(str, shape))} | {len(times)} | {r['median_ms']} | "
                  f"{r['max_ms']} | <= 200 ms median |")  # fmt: skip
        (work / "judging_switch.json").write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {work / 'judging_switch.json'}")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
