"""Validation benchmark: do the preservation scores follow simulated damage, and ignore artifacts?

    .venv/bin/python benchmarks/validation.py [--levels 6] [--seeds 0,1] [--out DIR]

The only labelled isotropic FIB-SEM volume (the medulla cube) is well-preserved, so
damage is simulated on its **held-out part** (z >= 167, never seen in training) with
the physically motivated models of :mod:`emqc.damage`, at known severities:

1. For every damage in :data:`emqc.damage.DAMAGES`, every severity on an even grid
   of ``--levels`` values from 0 to 1, and every seed in ``--seeds``: damage the
   held-out part (83 x 250 x 250 voxels at 10 nm), and score each of its four
   blocks (83 x 125 x 125 voxels, 0.83 x 1.25 x 1.25 um) as ``emqc score`` does
   (:func:`emqc.scoring.score_block`: the committed networks, metrics on their
   working grid); a condition's score is the mean over its blocks. Synapse
   traceability compares the synapses seen with those of well-preserved tissue of the
   same kind: the reference density is measured first, on the *training* part
   (:func:`reference_synapse_density`: the 10th percentile over 27 overlapping
   blocks of the same size), since the fly medulla is far denser in synapses than the
   mammalian cortex of ``emqc score``'s default.
2. Spearman's rho between severity and each score over all (severity, seed) points.
   Each score has the damage it must follow (:data:`EXPECTED`): the target is
   |rho| >= 0.9 with the expected sign. The other pairs are reported too.
3. For every imaging artifact in :data:`emqc.damage.ARTIFACTS` at severities
   0.25-1 (first seed only): the largest change of each preservation score from the undamaged part
   (same seed, same blocks). Target: < 0.1 wherever imaging quality does not flag
   the blocks as too poor to judge (flagged blocks are left out of a sample's
   summary by ``emqc score``); flagged conditions are listed separately, and so are
   blocks on which a score was not judged (synapse traceability below
   :data:`emqc.scoring.SYNAPSE_MIN_SNR`, membrane integrity and edema above
   :data:`emqc.scoring.MEMBRANE_MAX_BLUR`): a condition's score is the mean of the
   blocks that were judged.

Prints Markdown tables and writes ``DIR/validation.json`` (every score of every
condition, rho values, machine, timings).

Note the circularity that remains: the extracellular head of ``fibsem3d`` was trained
on simulated edema (and membrane breakdown, shrinkage) from the same simulators, on
the *training* part of the cube with other seeds. Indistinct neuropil and all imaging
artifacts were never used in training.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

from emqc import datasets
from emqc.damage import ARTIFACTS, DAMAGES
from emqc.scoring import SCORES, score_block

#: The damage each score must follow, and the sign of rho (severity vs score).
EXPECTED = {
    "membrane_integrity": ("membrane_breakdown", -1),
    "edema": ("edema", +1),
    "synapse_traceability": ("membrane_breakdown", -1),
}
#: Further damage-score pairs whose rho is reported next to the expected ones.
ALSO = {
    "membrane_integrity": ("indistinct_neuropil", -1),
    "synapse_traceability": ("indistinct_neuropil", -1),
}
ARTIFACT_SEVERITIES = (0.25, 0.5, 0.75, 1.0)
TARGET_RHO, TARGET_SHIFT = 0.9, 0.1


def _blocks(shape: tuple[int, int, int]) -> list[tuple[slice, slice, slice]]:
    """The part cut into 2 x 2 blocks in y and x (all of z)."""
    z, y, x = shape
    return [
        (
            slice(0, z),
            slice(j * (y // 2), (j + 1) * (y // 2)),
            slice(i * (x // 2), (i + 1) * (x // 2)),
        )
        for j in range(2)
        for i in range(2)
    ]


#: Block shape of the validation (the held-out part cut 2 x 2 in y and x).
BLOCK = (83, 125, 125)


def reference_synapse_density(raw: np.ndarray, voxel_size_nm) -> dict:  # type: ignore[no-untyped-def]
    """Synapses per µm³ the committed network sees in well-preserved tissue: the 10th
    percentile over blocks of :data:`BLOCK` at 3 x 3 x 3 overlapping positions of ``raw``
    (the medulla cube's training part), so that 9 of 10 well-preserved blocks see at
    least as many."""
    starts = [
        np.linspace(0, n - b, 3).round().astype(int) for n, b in zip(raw.shape, BLOCK, strict=True)
    ]
    densities = []
    for z in starts[0]:
        for y in starts[1]:
            for x in starts[2]:
                box = tuple(slice(o, o + b) for o, b in zip((z, y, x), BLOCK, strict=True))
                s = score_block(raw[box], voxel_size_nm=voxel_size_nm)
                densities.append(s.details["synapse_traceability"]["synapses_per_um3"])
    return {"per_um3": float(np.percentile(densities, 10)), "blocks": [float(d) for d in densities]}


def score_condition(image: np.ndarray, voxel_size_nm, reference: float) -> dict:  # type: ignore[no-untyped-def]
    """Mean of each score over the part's blocks, with per-block values and flags.

    Each block is scored as ``emqc score`` scores it: its own prediction, on the
    networks' working grid, with ``reference`` visible synapses per µm³.
    """
    rows = [
        score_block(image[box], voxel_size_nm=voxel_size_nm, synapse_reference_per_um3=reference)
        for box in _blocks(image.shape)
    ]
    out: dict = {}
    for name in (*SCORES, "imaging_quality"):
        values = [getattr(r, name) for r in rows]
        out[name] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
        out[f"{name}_blocks"] = [float(v) for v in values]
    out["too_poor_to_judge"] = int(sum(r.too_poor_to_judge for r in rows))
    out["flags"] = sorted({f for r in rows for f in r.flags})
    return out


def run(levels: int, seeds: list[int]) -> dict:  # type: ignore[no-untyped-def]
    vol = datasets.load("medulla")
    zs = datasets.split_z("medulla", "heldout")
    raw, ids = vol.raw[zs], vol.labels["neuron_ids"][zs]
    vox = vol.voxel_size_nm
    severities = [round(float(s), 3) for s in np.linspace(0, 1, levels)]
    conditions = []
    t0 = time.perf_counter()
    reference = reference_synapse_density(vol.raw[datasets.split_z("medulla", "train")], vox)
    ref = reference["per_um3"]
    print(f"reference synapse density (training part): {ref:.2f} per µm³", file=sys.stderr)
    clean = score_condition(raw, vox, ref)
    for name, simulate in DAMAGES.items():
        for seed in seeds:
            for sev in severities:
                if sev == 0:
                    res = clean
                else:
                    d = simulate(raw, labels=ids, voxel_size_nm=vox, severity=sev, seed=seed)
                    res = score_condition(d.image, vox, ref)
                conditions.append(
                    {"kind": "damage", "name": name, "severity": sev, "seed": seed, **res}
                )
                _progress(conditions[-1], t0)
    for name, simulate in ARTIFACTS.items():
        for seed in seeds[:1]:
            for sev in ARTIFACT_SEVERITIES:
                d = simulate(raw, labels=ids, voxel_size_nm=vox, severity=sev, seed=seed)
                res = score_condition(d.image, vox, ref)
                conditions.append(
                    {"kind": "artifact", "name": name, "severity": sev, "seed": seed, **res}
                )
                _progress(conditions[-1], t0)
    return {"clean": clean, "conditions": conditions, "synapse_reference": reference,
            "severities": severities, "seeds": seeds,
            "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip


def _progress(c: dict, t0: float) -> None:
    scores = " ".join(f"{n[:4]} {c[n]:.3f}" for n in (*SCORES, "imaging_quality"))
    poor = " TOO POOR" if c["too_poor_to_judge"] else ""
    print(f"[{time.perf_counter() - t0:6.0f} s] {c['name']:20s} sev {c['severity']:.2f} "
          f"seed {c['seed']}: {scores}{poor}", file=sys.stderr, flush=True)  # fmt: skip


def rho_table(result: dict) -> dict:  # type: ignore[no-untyped-def]
    """Spearman rho of severity vs every score, for every damage."""
    table: dict = {}
    for damage in DAMAGES:
        rows = [c for c in result["conditions"] if c["kind"] == "damage" and c["name"] == damage]
        sev = [c["severity"] for c in rows]
        for score in SCORES:
            vals = [c[score] for c in rows]
            ok = np.isfinite(vals)
            x, y = np.array(sev)[ok], np.array(vals)[ok]
            # Spearman's rho is undefined for a constant score (e.g. edema 0 throughout).
            defined = ok.sum() > 2 and np.ptp(y) > 0
            rho = stats.spearmanr(x, y).statistic if defined else np.nan
            table[f"{damage}/{score}"] = float(rho)
    return table


def artifact_shifts(result: dict) -> dict:  # type: ignore[no-untyped-def]
    """Largest |score - clean score| per artifact and score, judged blocks only and all."""
    clean = result["clean"]
    out: dict = {}
    for artifact in ARTIFACTS:
        rows = [
            c for c in result["conditions"] if c["kind"] == "artifact" and c["name"] == artifact
        ]
        judged = [c for c in rows if not c["too_poor_to_judge"]]
        for score in SCORES:
            out[f"{artifact}/{score}"] = {
                "judged": _largest_shift(judged, clean, score),
                "all": _largest_shift(rows, clean, score),
                "flagged_severities": sorted(
                    {c["severity"] for c in rows if c["too_poor_to_judge"]}
                ),
                # blocks on which this score was not judged (NaN with a flag), by severity
                "unjudged_blocks": {
                    str(c["severity"]): n
                    for c in rows
                    if (n := int(np.isnan(c[f"{score}_blocks"]).sum()))
                },
            }
    return out


def _largest_shift(conditions: list, clean: dict, score: str) -> float:  # type: ignore[type-arg]
    d = [abs(c[score] - clean[score]) for c in conditions if np.isfinite(c[score])]
    return float(max(d)) if d else float("nan")


def markdown(result: dict, rhos: dict, shifts: dict) -> str:  # type: ignore[no-untyped-def]
    lines = ["| score | damage | Spearman rho (target) | met |", "|---|---|---|---|"]
    for score, (damage, sign) in EXPECTED.items():
        rho = rhos[f"{damage}/{score}"]
        lines.append(f"| {score} | {damage} | {rho:+.3f} ({'<= -' if sign < 0 else '>= +'}{TARGET_RHO}) | "
                     f"{'yes' if sign * rho >= TARGET_RHO else 'no'} |")  # fmt: skip
    for score, (damage, _sign) in ALSO.items():
        lines.append(f"| {score} | {damage} (reported) | {rhos[f'{damage}/{score}']:+.3f} | — |")
    lines += ["", "All damage x score rho:", "", "| damage | " + " | ".join(SCORES) + " |",
              "|---|" + "---|" * len(SCORES)]  # fmt: skip
    for damage in DAMAGES:
        lines.append(
            f"| {damage} | " + " | ".join(f"{rhos[f'{damage}/{s}']:+.3f}" for s in SCORES) + " |"
        )
    lines += ["", "Score at each severity (mean over seeds and blocks):", "",
              "| damage | severity | " + " | ".join((*SCORES, "imaging_quality")) + " |",
              "|---|---|" + "---|" * (len(SCORES) + 1)]  # fmt: skip
    for damage in DAMAGES:
        for sev in result["severities"]:
            cs = [c for c in result["conditions"] if c["name"] == damage and c["severity"] == sev]
            vals = [np.nanmean([c[s] for c in cs]) for s in (*SCORES, "imaging_quality")]
            lines.append(f"| {damage} | {sev:.2f} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
    lines += ["", f"Largest shift of each score under imaging artifacts (target < {TARGET_SHIFT}; "
              "judged = blocks not flagged too poor to judge):", "",
              "| artifact | " + " | ".join(SCORES) + " | flagged too poor at severity |",
              "|---|" + "---|" * (len(SCORES) + 1)]  # fmt: skip
    for artifact in ARTIFACTS:
        cells = []
        for s in SCORES:
            v = shifts[f"{artifact}/{s}"]
            unjudged = ", ".join(f"{n} at {sev}" for sev, n in v["unjudged_blocks"].items())
            cells.append(
                f"{v['judged']:.3f}"
                + (f" (all {v['all']:.3f})" if v["all"] != v["judged"] else "")
                + (f" (blocks not judged: {unjudged})" if unjudged else "")
            )
        flagged = shifts[f"{artifact}/{SCORES[0]}"]["flagged_severities"]
        lines.append(
            f"| {artifact} | " + " | ".join(cells) + f" | {', '.join(map(str, flagged)) or '—'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--levels", type=int, default=6, help="severity levels from 0 to 1 (>= 5)")
    ap.add_argument("--seeds", default="0,1", help="damage seeds, comma-separated")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args(argv)
    if args.levels < 5:
        ap.error("--levels must be at least 5")
    try:
        datasets.load("medulla", labels=False)
    except Exception as exc:  # the data folder is absent: say so, not a traceback
        print(f"validation benchmark needs the real data: {exc}", file=sys.stderr)
        return 2
    result = run(args.levels, [int(s) for s in args.seeds.split(",")])
    rhos, shifts = rho_table(result), artifact_shifts(result)
    md = markdown(result, rhos, shifts)
    print(md)
    args.out.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "validation",
        "date": datetime.date.today().isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "rho": rhos,
        "artifact_shifts": shifts,
        **result,
    }
    path = args.out / "validation.json"
    path.write_text(json.dumps(doc, indent=1, default=float) + "\n")
    (args.out / "validation.md").write_text(md + "\n")
    print(f"\nwrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
