"""Accuracy benchmark: boundary, segmentation and synapse accuracy on held-out real EM data.

    .venv/bin/python benchmarks/accuracy.py [--methods baseline,network]
        [--method NAME=module:function] [--datasets medulla,vnc,isbi] [--out DIR]

A *method* is a callable ``predict(raw, voxel_size_nm, dataset_name) -> dict`` that
returns (Z, Y, X) float maps in [0, 1] of the raw block's shape, under any of the keys
``"boundary"`` (membranes), ``"synapse"`` and ``"extracellular"``. Methods are named
in :data:`METHODS` (``"baseline"`` is :func:`emqc.baseline.predict`; register a new
one there with one line, or pass ``--method NAME=module:function``).

Protocol, the same for every method (see :mod:`emqc.datasets` for the split):

1. The method sees the train part and the held-out part of each volume separately.
2. Every threshold that turns its maps into masks, segments or objects is tuned on
   the **train part only** (best F1, or least VOI), then applied once to the
   held-out part. Nothing is tuned on held-out data. The average precision needs no
   threshold; "ISBI max F1" is the challenge's own definition (best threshold on the
   scored data) and is reported as such.
3. Metrics (:mod:`emqc.evaluation`):

   - medulla (FIB-SEM, 10 nm): boundary precision/recall/F1 within 20 nm and AP,
     against the voxels where the neuron id changes; VOI split/merge of
     :func:`emqc.segmentation.segment` on the boundary map against the neuron ids
     (label 0 ignored; seed/merge thresholds tuned on train z 80-159 for time);
   - vnc (ssTEM, 50×4.6² nm): synapse objects P/R/F1 (components of
     ``synapse > t`` of at least a tuned volume, the map first smoothed by a
     Gaussian of a tuned σ in nm, matched one-to-one to the true
     synapses by overlap or centroids within 150 nm), as 3D objects and as 2D
     profiles per section (each tuned on train); membrane pixel F1 and AP; and,
     for methods that predict it, extracellular pixel F1 and AP against the stack's
     glia/extracellular class (159);
   - isbi (ssTEM, 50×4² nm): membrane pixel F1 and AP.

Prints a Markdown table and writes ``DIR/accuracy.json`` (every figure, the tuned
thresholds, timings, machine).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from statsmodels.stats.proportion import proportion_confint

from emqc import datasets
from emqc._components import face_neighbours
from emqc._components import label as label_components
from emqc.evaluation import (
    boundaries_from_labels,
    boundary_pr_curve,
    boundary_prf,
    detect_objects,
    drop_small_objects,
    match_objects,
    smooth_probability,
    synapse_prf,
    voi,
)
from emqc.segmentation import agglomerate, segment, watershed_from_boundaries

REPO = Path(__file__).resolve().parents[1]

#: Registered methods: name -> "module:function" (imported only when selected).
METHODS: dict[str, str] = {
    "baseline": "emqc.baseline:predict",
    "network": "emqc.models._methods:predict",
}

MEDULLA_TOLERANCE_NM = 20.0  # two voxels: about one membrane's width
SEG_TUNE_Z = slice(80, 160)  # medulla train sub-block for the segmentation grid
SEG_THRESHOLDS = (0.2, 0.35, 0.5, 0.65)
MERGE_THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
SEG_MIN_SIZE_NM3 = 125_000.0  # (50 nm)³: fragments below this join a neighbour
SYN_THRESHOLDS = tuple(np.round(np.arange(0.02, 0.99, 0.04), 2).tolist())
SYN_MIN_SIZES_NM3 = (0.0, 1e5, 2e5, 3e5, 4e5, 6e5, 8e5, 1e6, 1.5e6, 2e6, 3e6)
# Gaussian smoothing (σ, nm) before thresholding, so that a synapse whose probability dips
# inside it stays one object; 0 = none (the protocol before 2026-12-05's fifth session).
SYN_SMOOTHING_NM = (0.0, 20.0, 40.0, 60.0)
SYN_MAX_DISTANCE_NM = 150.0
SYN_MAX_FRACTION = 0.05  # true synapses fill 0.6 % of the VNC stack
VNC_EXTRACELLULAR_CLASS = 159  # glia / extracellular space in /labels/classes

Predict = Callable[[np.ndarray, tuple[float, float, float], str], dict[str, np.ndarray]]


def load_method(spec: str) -> Predict:
    """Import ``module:function``."""
    module, _, func = spec.partition(":")
    if not module or not func:
        raise SystemExit(f"error: a method must be given as module:function, got {spec!r}")
    return getattr(importlib.import_module(module), func)


def run(method: Predict, name: str, dataset: str, raw: np.ndarray, vox) -> dict[str, np.ndarray]:
    """Call a method and check its maps."""
    maps = method(raw, vox, dataset)
    for key, m in maps.items():
        if key not in ("boundary", "synapse", "extracellular"):
            raise SystemExit(f"error: method {name!r} returned an unknown key {key!r}")
        if m.shape != raw.shape or m.dtype.kind != "f" or m.min() < 0 or m.max() > 1:
            raise SystemExit(
                f"error: method {name!r}, {dataset} {key!r}: expected float in [0, 1] of shape "
                f"{raw.shape}, got {m.dtype} {m.shape} in [{m.min()}, {m.max()}]"
            )
    return {k: m.astype(np.float32, copy=False) for k, m in maps.items()}


def parts(name: str):
    vol = datasets.load(name)
    train, held = datasets.split_z(name, "train"), datasets.split_z(name, "heldout")
    return vol, train, held


def boundary_scores(prob_tr, true_tr, prob_ho, true_ho, vox, tol) -> dict:
    """Threshold of best F1 on train; P/R/F1 at it and AP on held-out."""
    curve_tr = boundary_pr_curve(prob_tr, true_tr, voxel_size_nm=vox, tolerance_nm=tol)
    t = curve_tr.best_threshold
    held = boundary_prf(prob_ho > t, true_ho, voxel_size_nm=vox, tolerance_nm=tol)
    curve_ho = boundary_pr_curve(prob_ho, true_ho, voxel_size_nm=vox, tolerance_nm=tol)
    return {
        "tolerance_nm": tol,
        "threshold (train)": t,
        "train_f1": curve_tr.best_f1,
        "precision": held.precision,
        "recall": held.recall,
        "f1": held.f1,
        "ap": curve_ho.average_precision,
        "max_f1 (held-out threshold)": curve_ho.best_f1,
    }


def eval_medulla(method: Predict, name: str) -> dict:
    vol, tr, ho = parts("medulla")
    vox, ids = vol.voxel_size_nm, vol.labels["neuron_ids"]
    maps_tr = run(method, name, "medulla", vol.raw[tr], vox)
    maps_ho = run(method, name, "medulla", vol.raw[ho], vox)
    if "boundary" not in maps_tr:
        return {}
    b_tr, b_ho = maps_tr["boundary"], maps_ho["boundary"]
    out = {
        "boundary": boundary_scores(
            b_tr,
            boundaries_from_labels(ids[tr]),
            b_ho,
            boundaries_from_labels(ids[ho]),
            vox,
            MEDULLA_TOLERANCE_NM,
        )
    }
    # Segmentation: grid on the train sub-block, least VOI; then held-out once.
    grid = []
    for t in SEG_THRESHOLDS:
        sv = watershed_from_boundaries(
            b_tr[SEG_TUNE_Z], voxel_size_nm=vox, threshold=t, min_size_nm3=SEG_MIN_SIZE_NM3
        )
        for m in MERGE_THRESHOLDS:
            seg = agglomerate(sv, b_tr[SEG_TUNE_Z], threshold=m)
            grid.append((voi(seg, ids[tr][SEG_TUNE_Z]).total, t, m))
    best, t, m = min(grid)
    seg = segment(
        b_ho, voxel_size_nm=vox, threshold=t, merge_threshold=m, min_size_nm3=SEG_MIN_SIZE_NM3
    )
    score = voi(seg, ids[ho])
    out["segmentation"] = {
        "threshold (train)": t,
        "merge_threshold (train)": m,
        "train_voi": best,
        "segments": int(seg.max()),
        "true_objects": len(np.unique(ids[ho])),
        **{f"voi_{k}": v for k, v in score.to_dict().items()},
    }
    return out


def _wilson(successes: int, trials: int) -> list[float] | None:
    """95 % Wilson score interval of a proportion (Wilson 1927; Brown, Cai & DasGupta 2001)."""
    if trials == 0:
        return None
    lo, hi = proportion_confint(successes, trials, alpha=0.05, method="wilson")
    return [float(lo), float(hi)]


def synapse_scores(prob_tr, true_tr, prob_ho, true_ho, vox, *, planar=False) -> dict:
    """Smoothing, threshold and object size of best F1 on train; P/R/F1 with them on held-out."""
    kw = dict(voxel_size_nm=vox, max_distance_nm=SYN_MAX_DISTANCE_NM)
    true_objects = label_components(true_tr, structure=face_neighbours(planar))[0]
    grid = []
    for sigma in SYN_SMOOTHING_NM:
        smoothed = smooth_probability(prob_tr, sigma_nm=sigma, voxel_size_nm=vox, planar=planar)
        for t in SYN_THRESHOLDS:
            # A map above t on more than SYN_MAX_FRACTION of the volume detects nothing.
            if np.count_nonzero(smoothed > t) > SYN_MAX_FRACTION * smoothed.size:
                continue
            objects = detect_objects(smoothed, threshold=t, voxel_size_nm=vox, planar=planar)
            for s in SYN_MIN_SIZES_NM3:
                pred = drop_small_objects(objects, min_size_nm3=s, voxel_size_nm=vox)
                # ties: the least smoothing, then the highest threshold and size
                grid.append((match_objects(pred, true_objects, **kw).f1, -sigma, t, s))
    if not grid:
        return {}
    f1_tr, neg_sigma, t, s = max(grid)
    sigma = -neg_sigma
    held = synapse_prf(
        prob_ho, true_ho, threshold=t, min_size_nm3=s, planar=planar, smooth_nm=sigma, **kw
    )
    return {
        "smoothing_nm (train)": sigma,
        "threshold (train)": t,
        "min_size_nm3 (train)": s,
        "train_f1": f1_tr,
        "max_distance_nm": SYN_MAX_DISTANCE_NM,
        **held.to_dict(),
        # A handful of held-out synapses: how far precision and recall could be off.
        "precision_ci95": _wilson(held.tp, held.tp + held.fp),
        "recall_ci95": _wilson(held.tp, held.tp + held.fn),
        "true_objects": held.tp + held.fn,
    }


def eval_vnc(method: Predict, name: str) -> dict:
    vol, tr, ho = parts("vnc")
    vox = vol.voxel_size_nm
    maps_tr = run(method, name, "vnc", vol.raw[tr], vox)
    maps_ho = run(method, name, "vnc", vol.raw[ho], vox)
    out = {}
    if "synapse" in maps_tr:
        syn = vol.labels["synapses"] > 0
        out["synapse"] = synapse_scores(
            maps_tr["synapse"], syn[tr], maps_ho["synapse"], syn[ho], vox
        )
        out["synapse"]["per_section"] = synapse_scores(
            maps_tr["synapse"], syn[tr], maps_ho["synapse"], syn[ho], vox, planar=True
        )
    if "boundary" in maps_tr:
        mem = vol.labels["membranes"] > 0
        out["membrane"] = boundary_scores(
            maps_tr["boundary"], mem[tr], maps_ho["boundary"], mem[ho], vox, 0.0
        )
    if "extracellular" in maps_tr:
        ecs = vol.labels["classes"] == VNC_EXTRACELLULAR_CLASS
        out["extracellular"] = boundary_scores(
            maps_tr["extracellular"], ecs[tr], maps_ho["extracellular"], ecs[ho], vox, 0.0
        )
    return out


def eval_isbi(method: Predict, name: str) -> dict:
    vol, tr, ho = parts("isbi")
    vox = vol.voxel_size_nm
    maps_tr = run(method, name, "isbi", vol.raw[tr], vox)
    maps_ho = run(method, name, "isbi", vol.raw[ho], vox)
    if "boundary" not in maps_tr:
        return {}
    mem = vol.labels["membranes"] > 0
    return {
        "membrane": boundary_scores(
            maps_tr["boundary"], mem[tr], maps_ho["boundary"], mem[ho], vox, 0.0
        )
    }


EVALUATORS = {"medulla": eval_medulla, "vnc": eval_vnc, "isbi": eval_isbi}

ROWS = [  # (dataset, section, key, label)
    ("medulla", "boundary", "f1", "boundary F1 (20 nm tolerance)"),
    ("medulla", "boundary", "precision", "boundary precision"),
    ("medulla", "boundary", "recall", "boundary recall"),
    ("medulla", "boundary", "ap", "boundary AP (20 nm tolerance)"),
    ("medulla", "segmentation", "voi_split", "VOI split (bits, lower is better)"),
    ("medulla", "segmentation", "voi_merge", "VOI merge (bits, lower is better)"),
    ("medulla", "segmentation", "voi_total", "VOI total (bits, lower is better)"),
    ("vnc", "synapse", "f1", "synapse F1"),
    ("vnc", "synapse", "precision", "synapse precision"),
    ("vnc", "synapse", "recall", "synapse recall"),
    ("vnc", "synapse", "precision_ci95", "synapse precision, 95 % CI (Wilson)"),
    ("vnc", "synapse", "recall_ci95", "synapse recall, 95 % CI (Wilson)"),
    ("vnc", "synapse", "true_objects", "true synapses (3D objects)"),
    ("vnc", "synapse.per_section", "f1", "synapse F1 per section (2D profiles)"),
    ("vnc", "synapse.per_section", "true_objects", "true synapse profiles (2D)"),
    ("vnc", "membrane", "f1", "membrane pixel F1"),
    ("vnc", "membrane", "ap", "membrane pixel AP"),
    ("vnc", "extracellular", "f1", "extracellular (glia/ECS class) pixel F1"),
    ("vnc", "extracellular", "ap", "extracellular (glia/ECS class) pixel AP"),
    ("isbi", "membrane", "f1", "membrane pixel F1"),
    ("isbi", "membrane", "ap", "membrane pixel AP"),
    ("isbi", "membrane", "max_f1 (held-out threshold)", "ISBI max F1 (= 1 - pixel error)"),
]


def _cell(v) -> str:  # type: ignore[no-untyped-def]
    if v is None or v == {}:
        return "—"
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, list):
        return "[" + ", ".join(f"{x:.2f}" for x in v) + "]"
    return str(v)


def table(results: dict) -> str:
    methods = list(results)
    lines = [
        "| dataset | metric (held-out) | " + " | ".join(methods) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    for ds, section, key, label in ROWS:
        cells = []
        for m in methods:
            v = results[m].get(ds, {})
            for part in section.split("."):
                v = v.get(part, {})
            v = v.get(key)
            cells.append(_cell(v))
        if any(c != "—" for c in cells):
            lines.append(f"| {ds} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", default=",".join(METHODS), help="names from METHODS")
    parser.add_argument(
        "--method", action="append", default=[], metavar="NAME=module:function",
        help="add a method not in METHODS (repeatable)",
    )  # fmt: skip
    parser.add_argument("--datasets", default=",".join(EVALUATORS))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "accuracy")
    args = parser.parse_args(argv)

    registry = dict(METHODS)
    for item in args.method:
        key, _, spec = item.partition("=")
        registry[key] = spec
    names = [n for n in args.methods.split(",") if n] + [i.partition("=")[0] for i in args.method]
    names = list(dict.fromkeys(names))
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise SystemExit(f"error: unknown method(s) {unknown}; registered: {sorted(registry)}")
    sets = [d for d in args.datasets.split(",") if d]
    if bad := [d for d in sets if d not in EVALUATORS]:
        raise SystemExit(f"error: --datasets must be among {sorted(EVALUATORS)}, got {bad}")

    results: dict[str, dict] = {}
    timings: dict[str, dict] = {}
    for name in names:
        method = load_method(registry[name])
        results[name], timings[name] = {}, {}
        for ds in sets:
            t0 = time.perf_counter()
            results[name][ds] = EVALUATORS[ds](method, name)
            timings[name][ds] = round(time.perf_counter() - t0, 1)
            print(f"{name} / {ds}: {timings[name][ds]} s", file=sys.stderr, flush=True)

    md = table(results)
    print(md)
    print(
        "\nThresholds (boundary, segmentation, synapse objects) tuned on the train parts only; "
        "held-out parts scored once."
    )
    args.out.mkdir(parents=True, exist_ok=True)
    record = {
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["benchmarks/accuracy.py", *(argv or sys.argv[1:])]),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "protocol": "thresholds tuned on train parts only (emqc.datasets.split_z); held-out scored once",
        "methods": {n: registry[n] for n in names},
        "results": results,
        "seconds": timings,
        "table": md,
    }
    (args.out / "accuracy.json").write_text(json.dumps(record, indent=2, default=float))
    print(f"\nwritten {args.out / 'accuracy.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
