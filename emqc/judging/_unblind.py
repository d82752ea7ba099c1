"""Unblinding a judging session: join verdicts with samples, measure agreement, report.

:func:`unblind` runs only once every judge has locked their verdicts. It opens the
sealed mapping (checked against its digest in ``session.json``), joins each judge's
latest verdict per code with the sample and block it showed, and writes into
``out`` (by default ``<session>/unblinded/``)::

    verdicts.csv             one row per (judge, code): sample, block, repeat, answers
    agreement.json           every statistic, per question, judge and judge pair
    agreement.csv            the same, one row per (question, statistic, judges)
    agreement.png            Krippendorff's alpha per question with its bootstrap 95% CI
    verdicts_by_sample.png   how often each answer was given, per sample

Between-judge statistics use each block's first showing only; the repeated showings
serve each judge's self-consistency. The folder is written into a staging folder and
published atomically, so a half-written report never looks complete.
"""

from __future__ import annotations

import json
import math
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._atomic import publish_dir
from ..custody._canonical import sha256_hex
from ..custody._ledger import object_ref
from ..errors import InputError
from . import _agreement as ag
from ._rubric import RUBRIC, Question
from ._session import SESSION_FILE, Session, read_mapping
from ._store import JudgeSession

__all__ = ["AGREEMENT_FORMAT", "MODEL_PAIRINGS", "UnblindResult", "unblind"]

AGREEMENT_FORMAT = "emqc.judging-agreement/1"
#: rubric question -> model score column in ``blocks.parquet``.
MODEL_PAIRINGS: dict[str, str] = {
    "membrane_integrity": "membrane_integrity",
    "edema": "edema",
    "traceable": "synapse_traceability",
}
#: numeric value of each answer when compared with a model score.
_NUMERIC: dict[str, dict[Any, float]] = {
    "membrane_integrity": {v: float(v) for v in (1, 2, 3, 4, 5)},
    "edema": {"none": 0.0, "mild": 1.0, "moderate": 2.0, "severe": 3.0},
    "traceable": {"yes": 1.0, "unsure": 0.5, "no": 0.0},
}
_FILES = ("verdicts.csv", "agreement.json", "agreement.csv", "agreement.png",
          "verdicts_by_sample.png")  # fmt: skip


@dataclass(frozen=True)
class UnblindResult:
    """What :func:`unblind` wrote.

    Attributes
    ----------
    out : Path
        The published folder.
    verdicts : pandas.DataFrame
        The joined table (``verdicts.csv``).
    agreement : dict
        ``agreement.json`` as written (NaN as None).
    table : pandas.DataFrame
        ``agreement.csv``: one row per question, statistic and judge(s).
    files : dict of str to str
        File name -> SHA-256 of every written file.
    event : Any
        The custody event recorded, or None.
    """

    out: Path
    verdicts: pd.DataFrame
    agreement: dict[str, Any]
    table: pd.DataFrame
    files: dict[str, str] = field(default_factory=dict)
    event: Any = None


def _rated() -> list[Question]:
    return [q for q in RUBRIC if q.kind in ("ordinal", "nominal")]


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _clean(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return _num(float(value))
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _join(session: Session, mapping: Mapping[str, Any]) -> pd.DataFrame:
    codes = mapping["codes"]
    rows = []
    for judge in session.judges:
        verdicts = JudgeSession(session.root, judge).verdicts()
        for code in sorted(session.orders[judge]):
            it = codes[code]
            answers = verdicts[code].to_dict() if code in verdicts else {}
            rows.append({"judge": judge, "code": code, "sample": it["sample"],
                         "block_id": it["block"], "repeat_of": it["repeat_of"] or "",
                         "flip": it["flip"],
                         **{q.name: answers.get(q.name) for q in RUBRIC}})  # fmt: skip
    return pd.DataFrame(rows)


def _unit_matrix(first: pd.DataFrame, judges: tuple[str, ...], q: Question) -> np.ndarray:
    units = sorted(set(zip(first["sample"], first["block_id"], strict=True)))
    col = {u: k for k, u in enumerate(units)}
    m = np.full((len(judges), len(units)), np.nan)
    codes = ag.encode(list(first[q.name]), q.choices)
    for j, s, b, v in zip(first["judge"], first["sample"], first["block_id"], codes, strict=True):
        m[judges.index(j), col[(s, b)]] = v
    return m


def _read_scores(scores: Mapping[str, Path | str]) -> pd.DataFrame:
    frames = []
    for sid, folder in sorted(scores.items()):
        path = Path(folder) / "blocks.parquet"
        if not path.is_file():
            raise InputError(
                f"{path}: no blocks.parquet for sample {sid!r}; give the output folder of "
                "`emqc score` for that sample"
            )
        df = pd.read_parquet(path)
        missing = {"block_id", *MODEL_PAIRINGS.values()} - set(df.columns)
        if missing:
            raise InputError(f"{path}: lacks columns {sorted(missing)}; rerun `emqc score`")
        df = df[["block_id", *MODEL_PAIRINGS.values()]].copy()
        df.columns = ["block_id", *(f"model_{c}" for c in MODEL_PAIRINGS.values())]
        df.insert(0, "sample", sid)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _stats(
    table: pd.DataFrame,
    judges: tuple[str, ...],
    scores: Mapping[str, Path | str] | None,
    n_boot: int,
    seed: int,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    first = table[(table["repeat_of"] == "")]
    rows: list[dict[str, Any]] = []

    def row(q: str, stat: str, who: str, value: float, lo: float = math.nan,
            hi: float = math.nan, n: int | None = None, note: str = "") -> None:  # fmt: skip
        rows.append({"question": q, "statistic": stat, "judges": who, "value": value,
                     "ci_low": lo, "ci_high": hi, "n": n, "note": note})  # fmt: skip

    questions: dict[str, Any] = {}
    everyone = "+".join(judges)
    for q in _rated():
        m = _unit_matrix(first, judges, q)
        domain = list(range(len(q.choices)))
        level = q.kind
        alpha = ag.krippendorff_alpha(m, level, value_domain=domain)
        lo, hi = ag.bootstrap_alpha_ci(m, level, n_boot=n_boot, seed=seed, value_domain=domain)
        n_pair = int(np.sum(np.sum(~np.isnan(m), axis=0) >= 2))
        n_all = int(np.sum(~np.isnan(m).any(axis=0)))
        fk = ag.fleiss_kappa(m, len(q.choices))
        weights = "linear" if q.kind == "ordinal" else None
        doc: dict[str, Any] = {
            "kind": q.kind,
            "n_units": int(m.shape[1]),
            "krippendorff_alpha": {
                "value": alpha,
                "ci95": [lo, hi],
                "level": level,
                "n_units": n_pair,
                "n_boot": n_boot,
                "seed": seed,
            },  # fmt: skip
            "fleiss_kappa": {"value": fk, "n_units": n_all},
            "cohen_kappa": {},
        }
        row(q.name, "krippendorff_alpha", everyone, alpha, lo, hi, n_pair, level)
        row(q.name, "fleiss_kappa", everyone, fk, n=n_all)
        for a, b in combinations(range(len(judges)), 2):
            who = f"{judges[a]}+{judges[b]}"
            both = int(np.sum(~(np.isnan(m[a]) | np.isnan(m[b]))))
            k = ag.cohen_kappa(m[a], m[b], weights, labels=domain)
            doc["cohen_kappa"][who] = {"value": k, "weights": weights, "n_units": both}
            row(q.name, "cohen_kappa", who, k, n=both, note=f"weights={weights}")
        if q.kind == "ordinal":
            r = ag.icc(m)
            doc["icc"] = r.to_dict()
            row(q.name, "icc2", everyone, r.icc2, *r.icc2_ci, r.n_units, r.band)
            row(q.name, "icc2k", everyone, r.icc2k, *r.icc2k_ci, r.n_units, r.band_k)
        questions[q.name] = doc

    # self-consistency on repeated blocks
    consistency: dict[str, Any] = {}
    repeats = table[table["repeat_of"] != ""]
    for judge in judges:
        mine = table[table["judge"] == judge].set_index("code")
        rep = repeats[repeats["judge"] == judge]
        consistency[judge] = {}
        for q in _rated():
            f = ag.encode([mine.loc[c, q.name] for c in rep["repeat_of"]], q.choices)
            r = ag.encode(list(rep[q.name]), q.choices)
            sc = ag.self_consistency(f, r, ordinal=q.kind == "ordinal",
                                     labels=list(range(len(q.choices))))  # fmt: skip
            consistency[judge][q.name] = sc
            row(q.name, "self_exact", judge, sc["exact"], n=sc["n"])
            if q.kind == "ordinal":
                row(q.name, "self_weighted_kappa", judge, sc["weighted_kappa"], n=sc["n"],
                    note="weights=linear")  # fmt: skip
                row(q.name, "self_mean_abs_diff", judge, sc["mean_abs_diff"], n=sc["n"])

    # judge vs model
    model: dict[str, Any] = {}
    if scores:
        joined = first.merge(_read_scores(scores), on=["sample", "block_id"], how="left")
        for qname, score in MODEL_PAIRINGS.items():
            col = f"model_{score}"
            model[qname] = {"score": score, "judges": {}}
            values = joined[qname].map(lambda v, qn=qname: _NUMERIC[qn].get(v, math.nan))
            judged = joined.assign(_v=values.astype(float))
            for judge in judges:
                sub = judged[judged["judge"] == judge]
                res = ag.judge_model_agreement(sub["_v"], sub[col].astype(float))
                model[qname]["judges"][judge] = res
                row(qname, "spearman_model", judge, res["rho"], n=res["n"], note=score)
            mean = judged.groupby(["sample", "block_id"])[["_v", col]].mean()
            res = ag.judge_model_agreement(mean["_v"], mean[col].astype(float))
            model[qname]["mean_of_judges"] = res
            row(qname, "spearman_model", "mean:" + everyone, res["rho"], n=res["n"], note=score)

    doc = {"questions": questions, "self_consistency": consistency, "judge_model": model}
    return doc, rows


def _plot_alpha(path: Path, questions: Mapping[str, Any]) -> None:
    from matplotlib.figure import Figure

    names = list(questions)
    vals = [questions[n]["krippendorff_alpha"]["value"] for n in names]
    cis = [questions[n]["krippendorff_alpha"]["ci95"] for n in names]
    fig = Figure(figsize=(6, 3.5), dpi=100)
    ax = fig.add_subplot()
    x = np.arange(len(names))
    v = np.array([np.nan if a is None else a for a in vals], dtype=float)
    lo = np.array([np.nan if c[0] is None else c[0] for c in cis], dtype=float)
    hi = np.array([np.nan if c[1] is None else c[1] for c in cis], dtype=float)
    err = np.vstack([np.nan_to_num(v - lo), np.nan_to_num(hi - v)]).clip(min=0)
    ax.bar(x, np.nan_to_num(v), color="#4c72b0", yerr=err, capsize=4)
    ax.axhline(0, color="black", lw=0.8)
    ax.axhline(0.8, color="grey", lw=0.8, ls="--")
    ax.set_xticks(x, names, rotation=15)
    ax.set_ylabel("Krippendorff's alpha (95% CI)")
    ax.set_ylim(min(-0.2, float(np.nanmin(lo, initial=0))) - 0.05, 1.05)
    ax.set_title("Agreement between judges (first showings)")
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})


def _plot_by_sample(path: Path, table: pd.DataFrame) -> None:
    from matplotlib.figure import Figure

    qs = _rated()
    samples = sorted(table["sample"].unique())
    fig = Figure(figsize=(4 * len(qs), 3.5), dpi=100)
    axes = fig.subplots(1, len(qs), squeeze=False)[0]
    first = table[table["repeat_of"] == ""]
    for ax, q in zip(axes, qs, strict=True):
        width = 0.8 / max(len(q.choices), 1)
        for k, choice in enumerate(q.choices):
            counts = [int((first[first["sample"] == s][q.name] == choice).sum()) for s in samples]
            ax.bar(np.arange(len(samples)) + (k - (len(q.choices) - 1) / 2) * width, counts,
                   width=width, label=str(choice))  # fmt: skip
        ax.set_xticks(np.arange(len(samples)), samples, rotation=20, fontsize=7)
        ax.set_title(q.name)
        ax.set_ylabel("answers")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})


def unblind(
    session_dir: Path | str,
    *,
    scores: Mapping[str, Path | str] | None = None,
    out: Path | str | None = None,
    study: Any = None,
    signer: Any = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> UnblindResult:
    """Unblind a locked session: join verdicts with samples and report agreement.

    Parameters
    ----------
    session_dir : Path
        A session folder (with its ``sealed/`` mapping) from
        :func:`~emqc.judging.create_session`.
    scores : mapping of str to Path, optional
        Sample id -> ``emqc score`` output folder (with ``blocks.parquet``); adds
        Spearman's rho between each judge's answers and the model score per block
        (:data:`MODEL_PAIRINGS`).
    out : Path, optional
        Output folder; ``<session_dir>/unblinded`` by default. Replaced atomically.
    study, signer : optional
        With both, a signed custody event ``judge.unblind`` is appended naming
        ``session.json`` and every written file by digest.
    n_boot, seed : int, optional
        Bootstrap resamples and seed of alpha's confidence interval.

    Returns
    -------
    UnblindResult

    Raises
    ------
    emqc.errors.InputError
        When a judge has not locked, for a scores folder without ``blocks.parquet``, or
        when only one of study and signer is given.
    emqc.errors.CustodyError
        When the session or its sealed mapping fails its digest checks.
    """
    if (study is None) != (signer is None):
        raise InputError("give both study and signer to record the unblinding, or neither")
    session = Session.open(session_dir)
    unlocked = [j for j in session.judges if not JudgeSession(session.root, j).locked]
    if unlocked:
        raise InputError(
            f"{session.root}: not every judge has locked their verdicts ({', '.join(unlocked)} "
            "not yet); unblinding would let answers change after the samples are known. "
            "Ask them to finish and lock first"
        )
    mapping = read_mapping(session.root)
    table = _join(session, mapping)
    doc, rows = _stats(table, session.judges, scores, n_boot, seed)
    agreement = _clean({
        "format": AGREEMENT_FORMAT,
        "session_id": session.session_id,
        "session_sha256": session.digest,
        "judges": list(session.judges),
        "samples": sorted(table["sample"].unique()),
        "n_codes": int(len(mapping["codes"])),
        "n_repeats": int(sum(1 for it in mapping["codes"].values() if it["repeat_of"])),
        "icc_bands": {"poor": "<0.5", "moderate": "0.5-0.75", "good": "0.75-0.9",
                      "excellent": ">0.9", "reference": "Koo & Li 2016"},
        **doc,
    })  # fmt: skip
    stats = pd.DataFrame(rows, columns=["question", "statistic", "judges", "value", "ci_low",
                                        "ci_high", "n", "note"])  # fmt: skip

    dest = Path(out) if out is not None else session.root / "unblinded"
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.with_name(f".{dest.name}.emqc-staging-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        table.to_csv(staging / "verdicts.csv", index=False, lineterminator="\n")
        (staging / "agreement.json").write_text(
            json.dumps(agreement, indent=2, sort_keys=True, allow_nan=False) + "\n"
        )
        stats.to_csv(staging / "agreement.csv", index=False, lineterminator="\n")
        _plot_alpha(staging / "agreement.png", agreement["questions"])
        _plot_by_sample(staging / "verdicts_by_sample.png", table)
        files = {name: sha256_hex((staging / name).read_bytes()) for name in _FILES}
        publish_dir(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    event = None
    if study is not None and signer is not None:
        objects = [study.file_ref(session.root / SESSION_FILE, kind="judging-session")]
        objects += [object_ref(f"judging-unblind:{study.name_of(dest / n)}", files[n])
                    for n in _FILES]  # fmt: skip
        event = study.record(signer, "judge.unblind", objects=objects,
                             params={"session": session.session_id,
                                     "judges": list(session.judges)})  # fmt: skip
    return UnblindResult(dest, table, agreement, stats, files, event)
