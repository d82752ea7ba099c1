"""A study report from ``emqc score`` outputs: one HTML page and one PDF that say the same.

:func:`render_report` reads each sample's ``summary.json`` and ``blocks.parquet``
(:func:`read_scores`), checks them, builds what the report says once (the summary
table, each sample's provenance, the signature manifest) and writes it twice: as
``report.html`` with its PNG figures beside it, and as ``report.pdf``
(:mod:`emqc.reports._figures`). Everything shown comes from the inputs, so the
same inputs give the same bytes: no clock, no host name, no network.

Every file is written under a temporary name in the output folder and renamed
into place once all of them are complete, the PDF last, so an interrupted render
never leaves a ``report.pdf`` that looks finished.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import os
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import InputError
from ..scoring._block import SCORES
from ..scoring._summary import Thresholds

__all__ = [
    "SUMMARY_FORMAT",
    "SCORE_LABELS",
    "SIGNATURE_MEANINGS",
    "SampleInput",
    "SampleScores",
    "Montage",
    "RenderedReport",
    "ReportContent",
    "read_scores",
    "render_report",
]

#: The ``format`` of the ``summary.json`` this module reads.
SUMMARY_FORMAT = "emqc.score-summary/1"
#: How each score is named in the report.
SCORE_LABELS = {
    "membrane_integrity": "Membrane integrity",
    "edema": "Edema",
    "synapse_traceability": "Synapse traceability",
}
#: What a signature may mean (21 CFR Part 11 §11.50(a)(3): authorship, review, approval).
SIGNATURE_MEANINGS = ("authored", "reviewed", "approved")
#: Blocks shown at most in one sample's montage (evenly spaced in list order beyond that).
MONTAGE_MAX_BLOCKS = 24

_SUMMARY_KEYS = ("scores", "seed", "n_blocks", "models", "volume_digest", "block_shape_vox")
_SCORE_KEYS = ("mean", "median", "ci_low", "ci_high", "n_blocks", "n_excluded", "threshold",
               "verdict")  # fmt: skip
_BLOCK_COLUMNS = ("block_id", "z_vox", "y_vox", "x_vox", *SCORES, "too_poor_to_judge")
_SIGNER_KEYS = ("name", "role", "keyid", "meaning", "time")


@dataclass(frozen=True)
class SampleInput:
    """One sample of the report: where its scores are, and optionally its volume.

    Attributes
    ----------
    sample_id : str
        The name the report gives the sample (a real name or an opaque code).
    score_dir : Path
        Output folder of ``emqc score``: ``summary.json`` and ``blocks.parquet``.
    volume : Path, optional
        The OME-Zarr volume that was scored, for the montage (None: no montage).
    block_list : Path, optional
        The block list that was scored (``emqc sample``); None: block positions from
        ``blocks.parquet`` and the block shape from ``summary.json``.
    """

    sample_id: str
    score_dir: Path
    volume: Path | None = None
    block_list: Path | None = None


@dataclass(frozen=True, eq=False)
class SampleScores:
    """One sample's scoring outputs, read and checked by :func:`read_scores`.

    Attributes
    ----------
    sample_id : str
    score_dir : Path
    summary : dict
        ``summary.json`` as written (JSON null where a value could not be judged).
    block_ids : tuple of str
        One per row of ``blocks.parquet``, in order.
    origins_vox : (N, 3) ndarray of int64
        Block corners (z, y, x) in level-0 voxels.
    values : dict of str to (N,) ndarray of float
        Each score per block, NaN where not judged.
    left_out : (N,) ndarray of bool
        Blocks too poor to judge (left out of the summary).
    summary_sha256, blocks_sha256 : str
        SHA-256 of ``summary.json`` and ``blocks.parquet``, to tie the report to them.
    """

    sample_id: str
    score_dir: Path
    summary: dict[str, Any]
    block_ids: tuple[str, ...]
    origins_vox: np.ndarray
    values: dict[str, np.ndarray]
    left_out: np.ndarray
    summary_sha256: str
    blocks_sha256: str

    @property
    def block_shape_vox(self) -> tuple[int, int, int]:
        """Block shape (z, y, x) in voxels, from ``summary.json``."""
        z, y, x = (int(v) for v in self.summary["block_shape_vox"])
        return z, y, x


@dataclass(frozen=True, eq=False)
class Montage:
    """Middle xy slice of some of a sample's blocks.

    ``slices`` pairs each block id with its (Y, X) uint8 slice; ``n_blocks`` is how
    many blocks the sample has (more than shown when the montage was capped).
    """

    sample_id: str
    slices: tuple[tuple[str, np.ndarray], ...]
    n_blocks: int


@dataclass(frozen=True)
class RenderedReport:
    """What :func:`render_report` wrote.

    ``figures`` lists every PNG the HTML links to, in the order it shows them.
    """

    html: Path
    pdf: Path
    figures: tuple[Path, ...]


@dataclass(frozen=True)
class _SummaryGroup:
    """One sample's rows of the summary table, as text."""

    sample_id: str
    scores: tuple[tuple[str, ...], ...]  # per score: the _SCORE_COLUMNS cells
    seed: str
    models: tuple[str, ...]


_SCORE_COLUMNS = ("Score", "Mean", "Median", "95 % CI", "Good if", "Verdict", "Scored / left out")
_SUMMARY_COLUMNS = ("Sample", *_SCORE_COLUMNS, "Seed", "Models (SHA-256)")
_SIGNATURE_COLUMNS = ("Printed name", "Role", "Date and time (UTC)", "Meaning", "Key id")


@dataclass(frozen=True)
class ReportContent:
    """Everything the report says, as text, shared by the HTML and the PDF.

    Built by :func:`render_report`; the PDF writer (:func:`emqc.reports._figures.write_pdf`)
    and :func:`_html` lay it out.
    """

    title: str
    study: str
    created: str
    version: str
    ledger: tuple[tuple[str, str], ...]
    samples: tuple[SampleScores, ...]
    summary_columns: tuple[str, ...]
    summary: tuple[_SummaryGroup, ...]
    provenance: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
    montages: tuple[Montage | None, ...]
    montage_notes: tuple[str, ...]
    signature_columns: tuple[str, ...]
    signatures: tuple[tuple[str, ...], ...]
    extra_sections: tuple[tuple[str, str], ...]

    @property
    def meta(self) -> tuple[tuple[str, str], ...]:
        """The report's header fields."""
        return (("Study", self.study), ("Created", self.created),
                ("emqc version", self.version), *self.ledger)  # fmt: skip


def render_report(
    samples: Sequence[SampleInput],
    out_dir: str | Path,
    *,
    title: str,
    study: str,
    created: str,
    signers: Sequence[Mapping[str, str]] = (),
    ledger_head: Mapping[str, Any] | None = None,
    extra_sections: Sequence[tuple[str, str]] = (),
    montage_max_blocks: int = MONTAGE_MAX_BLOCKS,
) -> RenderedReport:
    """Write ``report.html``, its PNG figures and ``report.pdf`` for scored samples.

    Parameters
    ----------
    samples : sequence of SampleInput
        The samples, in report order (sample ids must be unique).
    out_dir : path
        Output folder (created if needed); earlier reports there are replaced.
    title : str
        Report title.
    study : str
        Study name.
    created : str
        When the report was made, ISO 8601 (given, not read from the clock, so the
        same inputs give the same bytes).
    signers : sequence of mapping
        The signature manifest (21 CFR Part 11 §11.50): each with ``name`` (printed
        name), ``role``, ``keyid``, ``meaning`` (one of :data:`SIGNATURE_MEANINGS`) and
        ``time`` (UTC, ISO 8601).
    ledger_head : mapping, optional
        ``{"seq": int, "hash": str}`` of the custody ledger the report belongs to.
    extra_sections : sequence of (str, str)
        Further sections: heading and plain text (paragraphs split by blank lines).
    montage_max_blocks : int
        Blocks shown at most per sample montage.

    Returns
    -------
    RenderedReport

    Raises
    ------
    emqc.errors.InputError
        A score folder lacks or has an unreadable ``summary.json`` or ``blocks.parquet``,
        a volume or block list is not the one scored, or a signer, the ledger head or
        another argument is malformed; the message names the file or field.
    """
    from ._figures import save_montage_png, save_scores_png, write_pdf

    samples = tuple(samples)
    content = _content(
        samples, title=title, study=study, created=created, signers=signers,
        ledger_head=ledger_head, extra_sections=extra_sections,
        montage_max_blocks=montage_max_blocks,
    )  # fmt: skip
    out = Path(out_dir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    figures = {"fig_scores.png": lambda p: save_scores_png(content.samples, p)}
    montage_files: list[str | None] = []
    for i, montage in enumerate(content.montages):
        if montage is None:
            montage_files.append(None)
            continue
        name = f"fig_montage_{i + 1:02d}_{_slug(montage.sample_id)}.png"
        figures[name] = lambda p, m=montage: save_montage_png(m, p)
        montage_files.append(name)
    writers: dict[str, Callable[[Path], None]] = dict(figures)
    page = _html(content, montage_files)
    writers["report.html"] = lambda p: p.write_text(page, encoding="utf-8")
    writers["report.pdf"] = lambda p: write_pdf(content, p)
    _publish(out, writers)
    return RenderedReport(out / "report.html", out / "report.pdf",
                          tuple(out / name for name in figures))  # fmt: skip


# --- reading the inputs ----------------------------------------------------------------------


def read_scores(sample_id: str, score_dir: str | Path) -> SampleScores:
    """Read and check one sample's ``summary.json`` and ``blocks.parquet``.

    Raises
    ------
    emqc.errors.InputError
        A file is missing, unreadable, of another format, or the two disagree.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(score_dir)
    path = folder / "summary.json"
    fix = "Give the output folder of `emqc score` (or score the sample again into it)."
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(f"{path} does not exist: {folder} is not a score folder. {fix}") from exc
    except OSError as exc:
        raise InputError(f"{path} cannot be read ({exc}). {fix}") from exc
    try:
        summary = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not UTF-8 JSON ({exc}); it is damaged. {fix}") from exc
    if not isinstance(summary, dict) or summary.get("format") != SUMMARY_FORMAT:
        got = summary.get("format") if isinstance(summary, dict) else type(summary).__name__
        raise InputError(
            f"{path} has format {got!r}, not {SUMMARY_FORMAT!r}: it was not written by "
            "`emqc score`, or by a newer emqc. Render it with the emqc that wrote it, or "
            "score the sample again."
        )
    _check_summary(path, summary, fix)

    table_path = folder / "blocks.parquet"
    try:
        table = pq.read_table(table_path)
    except FileNotFoundError as exc:
        raise InputError(f"{table_path} does not exist beside {path.name}. {fix}") from exc
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{table_path} is not a readable Parquet table ({exc}). {fix}") from exc
    if missing := [c for c in _BLOCK_COLUMNS if c not in table.column_names]:
        raise InputError(f"{table_path} lacks the column(s) {', '.join(missing)}. {fix}")
    if table.num_rows != summary["n_blocks"]:
        raise InputError(
            f"{table_path} has {table.num_rows} blocks but {path.name} says n_blocks="
            f"{summary['n_blocks']}: the two files come from different runs. {fix}"
        )
    cols = {c: table.column(c).to_pylist() for c in _BLOCK_COLUMNS}
    return SampleScores(
        sample_id=sample_id,
        score_dir=folder,
        summary=summary,
        block_ids=tuple(str(b) for b in cols["block_id"]),
        origins_vox=np.array(
            [cols["z_vox"], cols["y_vox"], cols["x_vox"]], dtype=np.int64
        ).T.reshape(-1, 3),  # fmt: skip
        values={
            s: np.array([math.nan if v is None else float(v) for v in cols[s]], dtype=float)
            for s in SCORES
        },  # fmt: skip
        left_out=np.array([bool(v) for v in cols["too_poor_to_judge"]], dtype=bool),
        summary_sha256=hashlib.sha256(raw).hexdigest(),
        blocks_sha256=_sha256_file(table_path),
    )


def _check_summary(path: Path, summary: dict[str, Any], fix: str) -> None:
    if missing := [k for k in _SUMMARY_KEYS if k not in summary]:
        raise InputError(f"{path} lacks the field(s) {', '.join(missing)}. {fix}")
    scores = summary["scores"]
    for name in SCORES:
        entry = scores.get(name) if isinstance(scores, dict) else None
        if not isinstance(entry, dict) or any(k not in entry for k in _SCORE_KEYS):
            raise InputError(
                f"{path}: scores.{name} is missing or lacks one of {', '.join(_SCORE_KEYS)}. {fix}"
            )
    n = summary["n_blocks"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InputError(f"{path}: n_blocks must be a count, got {n!r}. {fix}")
    shape = summary["block_shape_vox"]
    if not (isinstance(shape, list) and len(shape) == 3
            and all(isinstance(v, int) and v > 0 for v in shape)):  # fmt: skip
        raise InputError(
            f"{path}: block_shape_vox must be 3 positive integers, got {shape!r}. {fix}"
        )
    if not isinstance(summary["models"], dict):
        raise InputError(f"{path}: models must be an object, got {summary['models']!r}. {fix}")


def _montage(sample: SampleInput, scores: SampleScores, max_blocks: int) -> Montage | None:
    """The sample's montage, read from its volume; None without a volume."""
    from ..sampling.volume import read_block_list
    from ..volume import open_volume

    if sample.volume is None:
        return None
    summary = scores.score_dir / "summary.json"
    if sample.block_list is not None:
        blocks = read_block_list(sample.block_list)
        recorded = scores.summary.get("block_list_sha256")
        if recorded is not None and hashlib.sha256(blocks.to_json_bytes()).hexdigest() != recorded:
            raise InputError(
                f"block list {sample.block_list} is not the one scored in {summary} (its SHA-256 "
                f"differs from block_list_sha256 {str(recorded)[:16]}…). Give the block list "
                f"{scores.score_dir / 'blocks.json'} that `emqc score` wrote, or none."
            )
        boxes = [(b.id, b.origin_vox, b.shape_vox) for b in blocks.blocks]
    else:
        shape = scores.block_shape_vox
        boxes = [(b, tuple(int(v) for v in o), shape)
                 for b, o in zip(scores.block_ids, scores.origins_vox, strict=True)]  # fmt: skip
    vol = open_volume(sample.volume)
    if vol.root_digest != scores.summary["volume_digest"]:
        raise InputError(
            f"volume {sample.volume} (root digest {vol.root_digest[:16]}…) is not the volume "
            f"scored in {summary} ({str(scores.summary['volume_digest'])[:16]}…, recorded as "
            f"{scores.summary.get('volume', '?')}). Give the volume that was scored, or none."
        )
    if len(boxes) > max_blocks:
        keep = np.unique(np.linspace(0, len(boxes) - 1, max_blocks).round().astype(int))
        shown = [boxes[i] for i in keep]
    else:
        shown = boxes
    slices = []
    for block_id, (z, y, x), (sz, sy, sx) in shown:
        slices.append((block_id, vol.read((z + sz // 2, y, x), (1, sy, sx))[0]))
    return Montage(sample.sample_id, tuple(slices), len(boxes))


# --- what the report says --------------------------------------------------------------------


def _content(
    samples: tuple[SampleInput, ...],
    *,
    title: str,
    study: str,
    created: str,
    signers: Sequence[Mapping[str, str]],
    ledger_head: Mapping[str, Any] | None,
    extra_sections: Sequence[tuple[str, str]],
    montage_max_blocks: int,
) -> ReportContent:
    for name, value in (("title", title), ("study", study), ("created", created)):
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"the report's {name} must be a non-empty string, got {value!r}")
    _iso_time("the report's created time", created)
    if not samples:
        raise InputError("no samples given: a report needs at least one scored sample")
    if not all(isinstance(s, SampleInput) for s in samples):
        raise TypeError("samples must be SampleInput records")
    ids = [s.sample_id for s in samples]
    if dupes := sorted({i for i in ids if ids.count(i) > 1}):
        raise InputError(f"sample ids must be unique; repeated: {', '.join(map(repr, dupes))}")
    if isinstance(montage_max_blocks, bool) or not isinstance(montage_max_blocks, int):
        raise TypeError(f"montage_max_blocks must be an integer, got {montage_max_blocks!r}")
    if montage_max_blocks < 1:
        raise ValueError(f"montage_max_blocks must be at least 1, got {montage_max_blocks}")
    extras = tuple((str(h), str(t)) for h, t in extra_sections)
    scores = tuple(read_scores(s.sample_id, s.score_dir) for s in samples)
    montages = tuple(
        _montage(s, sc, montage_max_blocks) for s, sc in zip(samples, scores, strict=True)
    )
    notes = tuple(_montage_note(s, m) for s, m in zip(samples, montages, strict=True))
    return ReportContent(
        title=title,
        study=study,
        created=created,
        version=__version__,
        ledger=_ledger(ledger_head),
        samples=scores,
        summary_columns=_SUMMARY_COLUMNS,
        summary=tuple(_summary_group(s) for s in scores),
        provenance=tuple((s.sample_id, _provenance(s)) for s in scores),
        montages=montages,
        montage_notes=notes,
        signature_columns=_SIGNATURE_COLUMNS,
        signatures=tuple(_signer_row(i, s) for i, s in enumerate(signers, 1)),
        extra_sections=extras,
    )


def _montage_note(sample: SampleInput, montage: Montage | None) -> str:
    if montage is None:
        return "No montage: no volume was given for this sample."
    shown = len(montage.slices)
    which = (f"all {montage.n_blocks} blocks" if shown == montage.n_blocks
             else f"{shown} of {montage.n_blocks} blocks, evenly spaced in list order")  # fmt: skip
    where = "the block list" if sample.block_list is not None else "blocks.parquet"
    return f"Middle xy slice of {which} (positions from {where})."


def _fmt(value: Any, digits: int = 3) -> str:
    """A score as text: 3 decimals, ``n/a`` where not judged (JSON null or NaN)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.{digits}f}"


def _short(digest: Any, n: int = 8) -> str:
    text = str(digest)
    return text if len(text) <= n else text[:n] + "…"


def _summary_group(s: SampleScores) -> _SummaryGroup:
    rows = []
    for name in SCORES:
        e = s.summary["scores"][name]
        sign = "≥" if Thresholds.higher_is_better[name] else "≤"
        ci = "n/a" if e["ci_low"] is None else f"{_fmt(e['ci_low'])}–{_fmt(e['ci_high'])}"
        rows.append((SCORE_LABELS[name], _fmt(e["mean"]), _fmt(e["median"]), ci,
                     f"{sign} {_fmt(e['threshold'], 2)}", str(e["verdict"]),
                     f"{e['n_blocks']} / {e['n_excluded']}"))  # fmt: skip
    seed = str(s.summary["seed"])
    models = tuple(f"{name} {_short(m.get('sha256') if isinstance(m, dict) else m)}"
                   for name, m in sorted(s.summary["models"].items()))  # fmt: skip
    return _SummaryGroup(s.sample_id, tuple(rows), seed if len(seed) <= 12 else _short(seed, 12),
                         models or ("none recorded",))  # fmt: skip


def _provenance(s: SampleScores) -> tuple[tuple[str, str], ...]:
    d = s.summary
    thresholds = d.get("thresholds") or {}
    items = [
        ("Volume", str(d.get("volume", "not recorded"))),
        ("Volume root digest", str(d["volume_digest"])),
        ("Block selection", str(d.get("selection", "not recorded"))),
        ("Blocks", f"{d['n_blocks']} of {' × '.join(map(str, d['block_shape_vox']))} voxels; "
                   f"{d.get('n_too_poor_to_judge', 'n/a')} too poor to judge"),
        ("Seed", f"{d['seed']} ({d.get('seed_source', 'source not recorded')})"),
        ("Block list SHA-256", str(d.get("block_list_sha256", "not recorded"))),
        ("Thresholds", ", ".join(f"{k} {v}" for k, v in thresholds.items()) or "not recorded"),
        ("Scored", f"{d.get('created_utc', 'time not recorded')} with emqc "
                   f"{d.get('emqc_version', '?')}"),
    ]  # fmt: skip
    for name, m in sorted(d["models"].items()):
        digest, file = (m.get("sha256"), m.get("file")) if isinstance(m, dict) else (m, None)
        items.append((f"Model {name}" + (f" ({file})" if file else ""), f"SHA-256 {digest}"))
    items += [("summary.json SHA-256", s.summary_sha256),
              ("blocks.parquet SHA-256", s.blocks_sha256)]  # fmt: skip
    return tuple(items)


def _iso_time(what: str, value: Any) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{what} must be an ISO 8601 time such as 2026-12-01T10:00:00Z, got {value!r}"
        ) from exc


def _signer_row(i: int, signer: Mapping[str, str]) -> tuple[str, ...]:
    where = f"signer {i}"
    if not isinstance(signer, Mapping):
        raise InputError(
            f"{where} must be a mapping with {', '.join(_SIGNER_KEYS)}, got {signer!r}"
        )
    if missing := [k for k in _SIGNER_KEYS if not isinstance(signer.get(k), str) or not signer[k]]:
        raise InputError(f"{where} lacks (or has a non-text or empty) {', '.join(missing)}; "
                         f"each signer needs {', '.join(_SIGNER_KEYS)}")  # fmt: skip
    where = f"signer {i} ({signer['name']})"
    if signer["meaning"] not in SIGNATURE_MEANINGS:
        raise InputError(f"{where}: meaning must be one of {', '.join(SIGNATURE_MEANINGS)}, "
                         f"got {signer['meaning']!r}")  # fmt: skip
    when = _iso_time(f"{where}: time", signer["time"])
    if when.utcoffset() is None or when.utcoffset().total_seconds() != 0:  # type: ignore[union-attr]
        raise InputError(f"{where}: time must be in UTC (ending in Z or +00:00), "
                         f"got {signer['time']!r}")  # fmt: skip
    stamp = when.strftime("%Y-%m-%d %H:%M:%S") + (
        f".{when.microsecond:06d}" if when.microsecond else ""
    )
    return (signer["name"], signer["role"], f"{stamp} UTC", signer["meaning"], signer["keyid"])


def _ledger(head: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...]:
    if head is None:
        return ()
    seq, digest = (head.get("seq"), head.get("hash")) if isinstance(head, Mapping) else (None, None)
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0 or not isinstance(digest, str):
        raise InputError(f"ledger_head must be {{'seq': int >= 0, 'hash': str}}, got {head!r}")
    return (("Custody ledger head", f"seq {seq}, hash {digest}"),)


# --- HTML ------------------------------------------------------------------------------------

_CSS = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 78em; color: #111; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; margin-top: 1.6em;
  border-bottom: 1px solid #999; } h3 { font-size: 1.05em; margin-bottom: 0.2em; }
table { border-collapse: collapse; font-size: 0.88em; margin: 0.5em 0; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
th { background: #eee; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.mono, td.mono, dd { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 0.1em 1em; }
dl.meta dt { font-weight: bold; } dl.meta dd { margin: 0; word-break: break-all; }
.verdict-good { color: #1a7f37; } .verdict-poor { color: #b42318; font-weight: bold; }
.verdict-uncertain { color: #9a6700; } .verdict-not-judged { color: #666; }
figure { margin: 0.8em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.88em; color: #444; }
""".strip()


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _dl(items: Sequence[tuple[str, str]]) -> str:
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items)
    return f'<dl class="meta">{rows}</dl>'


def _summary_html(content: ReportContent) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in content.summary_columns)
    body = []
    for g in content.summary:
        n = len(g.scores)
        for i, row in enumerate(g.scores):
            cells = []
            if i == 0:
                cells.append(f'<th rowspan="{n}" scope="rowgroup">{_e(g.sample_id)}</th>')
            verdict = "verdict-" + re.sub(r"\W+", "-", row[5])
            cells += [f"<td>{_e(row[0])}</td>", *(f'<td class="num">{_e(c)}</td>' for c in row[1:5]),
                      f'<td class="{_e(verdict)}">{_e(row[5])}</td>',
                      f'<td class="num">{_e(row[6])}</td>']  # fmt: skip
            if i == 0:
                cells.append(f'<td rowspan="{n}" class="mono">{_e(g.seed)}</td>')
                models = "<br>".join(_e(m) for m in g.models)
                cells.append(f'<td rowspan="{n}" class="mono">{models}</td>')
            body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _html(content: ReportContent, montage_files: Sequence[str | None]) -> str:
    """The report as one HTML page linking the PNG figures by relative path."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8">',
        f'<meta name="generator" content="emqc {_e(content.version)}">',
        f"<title>{_e(content.title)}</title>",
        f"<style>\n{_CSS}\n</style></head>",
        "<body>",
        f"<header><h1>{_e(content.title)}</h1>{_dl(content.meta)}</header>",
        '<section id="summary"><h2>Per-sample summary</h2>',
        "<p>Mean, median and bootstrap 95 % confidence interval of each score over the "
        "sample's blocks; blocks too poor to judge, and scores that could not be judged, are "
        "left out and counted. Digests are shortened here; see Provenance for the full "
        "values.</p>",
        _summary_html(content),
        "</section>",
        '<section id="provenance"><h2>Provenance</h2>',
    ]
    for sample_id, items in content.provenance:
        parts.append(f"<h3>{_e(sample_id)}</h3>{_dl(items)}")
    parts += [
        "</section>",
        '<section id="distributions"><h2>Score distributions</h2>',
        '<figure><img src="fig_scores.png" alt="Block scores per sample with mean and 95 % '
        'CI for each score">',
        "<figcaption>Each point is one block; open grey points are blocks too poor to judge "
        "(left out of the summary). Bars: the mean with its bootstrap 95 % CI, coloured by "
        "verdict. Dashed line: the verdict threshold.</figcaption></figure>",
        "</section>",
        '<section id="montages"><h2>Sampled blocks</h2>',
    ]
    for g, name, note in zip(content.summary, montage_files, content.montage_notes, strict=True):
        parts.append(f"<h3>{_e(g.sample_id)}</h3>")
        if name is None:
            parts.append(f"<p>{_e(note)}</p>")
        else:
            parts.append(f'<figure><img src="{_e(name)}" alt="Block montage of {_e(g.sample_id)}">'
                         f"<figcaption>{_e(note)}</figcaption></figure>")  # fmt: skip
    parts.append("</section>")
    for heading, text in content.extra_sections:
        paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
        body = "".join(
            f"<p>{'<br>'.join(_e(line) for line in p.splitlines())}</p>" for p in paragraphs
        )
        parts.append(f"<section><h2>{_e(heading)}</h2>{body}</section>")
    parts.append('<section id="signatures"><h2>Signature manifest</h2>')
    if content.signatures:
        head = "".join(f"<th>{_e(c)}</th>" for c in content.signature_columns)
        mono = ' class="mono"'  # the key id
        rows = "".join(
            "<tr>" + "".join(f"<td{mono if j == 4 else ''}>{_e(c)}</td>"
                             for j, c in enumerate(r)) + "</tr>"
            for r in content.signatures
        )  # fmt: skip
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    else:
        parts.append("<p>No signatures are recorded in this report.</p>")
    if content.ledger:
        parts.append(_dl(content.ledger))
    parts += ["</section>", "</body>", "</html>", ""]
    return "\n".join(parts)


# --- files -----------------------------------------------------------------------------------


def _slug(text: str) -> str:
    """A file-name-safe form of a sample id (ASCII letters, digits, ``-`` and ``_``)."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:40]
    return slug or "sample"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _publish(out: Path, writers: Mapping[str, Callable[[Path], None]]) -> None:
    """Write every file under a temporary name, then rename all into place (in order)."""
    tag = uuid.uuid4().hex[:8]
    temps = {name: out / f".{name}.emqc-tmp-{tag}" for name in writers}
    try:
        for name, write in writers.items():
            write(temps[name])
        for name, tmp in temps.items():  # the PDF comes last: it appears only when all is done
            os.replace(tmp, out / name)
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
