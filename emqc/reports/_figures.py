"""The report's matplotlib side: the score plot, block montages, and the PDF.

Figures are drawn on :class:`matplotlib.figure.Figure` objects, never through
``pyplot``: no global figure manager, no interactive backend, and the backend in
use elsewhere in the process (napari's Qt, say) is left alone. PNGs are written
by the Agg renderer, the PDF by matplotlib's PDF backend (:class:`PdfPages`),
both under matplotlib's default style with fixed fonts (DejaVu, shipped with
matplotlib) and without timestamps or software versions in the metadata, so the
same inputs give the same bytes.

Every string from the inputs is drawn with ``parse_math=False``: a ``$`` in a
sample id is a dollar sign, not mathtext.
"""

from __future__ import annotations

import contextlib
import math
import textwrap
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..scoring._block import SCORES
from ..scoring._summary import Thresholds

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ._render import Montage, ReportContent, SampleScores

__all__ = ["save_scores_png", "save_montage_png", "write_pdf", "draw_scores", "draw_montage"]

#: Colour of a mean and its CI by verdict.
VERDICT_COLORS = {"good": "#1a7f37", "poor": "#b42318", "uncertain": "#c28a00",
                  "not judged": "#808080"}  # fmt: skip
_POINT_COLOR = "#3a6ea5"
_SANS, _MONO = "DejaVu Sans", "DejaVu Sans Mono"
_MONO_EM = 1233 / 2048  # advance width of DejaVu Sans Mono, in em
_SANS_EM = 0.56  # a generous mean advance width of DejaVu Sans text, in em
_PNG_META = {"Software": None}
_A4 = (8.27, 11.69)  # inches
_MARGIN = 0.6  # inches, left, right and top
_BOTTOM = 0.85  # inches kept free at the foot of a page (the footer lies in it)
Box = tuple[float, float, float, float]  # left, bottom, right, top, as fractions of the figure


@contextlib.contextmanager
def _style() -> Iterator[None]:
    """Matplotlib's default style with fixed fonts, whatever the user's matplotlibrc says."""
    import matplotlib
    import matplotlib.style

    rc = {"font.family": "sans-serif", "font.sans-serif": [_SANS], "font.monospace": [_MONO],
          "pdf.fonttype": 3, "svg.hashsalt": "emqc", "text.usetex": False}  # fmt: skip
    with matplotlib.style.context("default"), matplotlib.rc_context(rc), warnings.catch_warnings():
        # A character DejaVu lacks is drawn as a box; the HTML keeps the exact text.
        warnings.filterwarnings(
            "ignore", message=r"Glyph \d+ .*missing from font", category=UserWarning
        )
        yield


def _figure(size: tuple[float, float]) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=size)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


# --- the figures -----------------------------------------------------------------------------


def draw_scores(fig: Figure, samples: Sequence[SampleScores], box: Box, *, stacked: bool) -> None:
    """Draw one panel per score: each sample's block scores and its mean with 95 % CI.

    Parameters
    ----------
    fig : Figure
    samples : sequence of SampleScores
    box : (left, bottom, right, top)
        Where the legend (at the top) and the panels go, in figure fractions.
    stacked : bool
        Panels one above the other (a portrait page) instead of side by side.
    """
    from matplotlib.lines import Line2D

    left, bottom, right, top = box
    n = len(samples)
    rotate = n > 4 or max(len(s.sample_id) for s in samples) > 10
    height = fig.get_figheight()
    legend = 0.75 / height  # two rows of legend and the panel titles above the panels
    labels = (1.0 if rotate else 0.35) / height  # tick labels below the lowest panel
    shape = (len(SCORES), 1) if stacked else (1, len(SCORES))
    gs = fig.add_gridspec(*shape, left=left, bottom=bottom + labels, right=right,
                          top=top - legend, hspace=0.75 if rotate else 0.45,
                          wspace=0.25)  # fmt: skip
    for k, name in enumerate(SCORES):
        ax = fig.add_subplot(gs[k])
        for i, s in enumerate(samples):
            v = s.values[name]
            jitter = np.random.default_rng(i).uniform(-0.13, 0.13, size=v.size)
            x = i - 0.12 + jitter
            kept, left_out = np.isfinite(v) & ~s.left_out, np.isfinite(v) & s.left_out
            ax.scatter(x[kept], v[kept], s=16, color=_POINT_COLOR, alpha=0.75, linewidths=0,
                       clip_on=False, zorder=3)  # fmt: skip
            ax.scatter(x[left_out], v[left_out], s=16, facecolors="none", edgecolors="0.5",
                       linewidths=0.8, clip_on=False, zorder=3)  # fmt: skip
            e = s.summary["scores"][name]
            if e["threshold"] is not None:
                ax.hlines(e["threshold"], i - 0.42, i + 0.42, colors="0.35", linestyles="--",
                          linewidths=0.9, zorder=1)  # fmt: skip
            color = VERDICT_COLORS.get(str(e["verdict"]), "black")
            if e["mean"] is None:
                ax.text(i + 0.24, 0.5, "not judged", rotation=90, ha="center", va="center",
                        fontsize=7, color=color)  # fmt: skip
                continue
            mean = float(e["mean"])
            lo = mean if e["ci_low"] is None else float(e["ci_low"])
            hi = mean if e["ci_high"] is None else float(e["ci_high"])
            ax.errorbar([i + 0.24], [mean], yerr=[[max(mean - lo, 0.0)], [max(hi - mean, 0.0)]],
                        fmt="s", color=color, markersize=5, capsize=4, elinewidth=1.4,
                        clip_on=False, zorder=4)  # fmt: skip
        better = "higher" if Thresholds.higher_is_better[name] else "lower"
        ax.set_title(f"{name.replace('_', ' ').capitalize()} ({better} is better)", fontsize=9)
        ax.set_ylim(0, 1)
        ax.set_xlim(-0.6, n - 0.4)
        ax.set_xticks(range(n), [_clip(s.sample_id, 18) for s in samples], parse_math=False,
                      fontsize=7, rotation=(60 if n > 12 else 30) if rotate else 0,
                      ha="right" if rotate else "center")  # fmt: skip
        ax.tick_params(axis="y", labelsize=7)
        ax.set_ylabel("score", fontsize=8)
        ax.grid(axis="y", color="0.9", linewidth=0.6, zorder=0)
        ax.set_axisbelow(True)
    handles = [
        Line2D([], [], ls="", marker="o", color=_POINT_COLOR, alpha=0.75, label="block"),
        Line2D([], [], ls="", marker="o", mfc="none", mec="0.5", label="block too poor to judge"),
        *(Line2D([], [], ls="-", marker="s", color=c, label=f"mean, 95 % CI: {v}")
          for v, c in VERDICT_COLORS.items()),
        Line2D([], [], ls="--", color="0.35", label="threshold"),
    ]  # fmt: skip
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=((left + right) / 2, top),
               ncol=4, fontsize=7, frameon=False, borderaxespad=0.3)  # fmt: skip


def draw_montage(fig: Figure, montage: Montage, box: Box, *, ncols: int = 6) -> None:
    """Draw the middle xy slice of each block of a montage, greyscale, titled with its id."""
    left, bottom, right, top = box
    n = len(montage.slices)
    if n == 0:
        fig.text((left + right) / 2, (bottom + top) / 2, "no blocks", ha="center", fontsize=9)
        return
    ncols = min(n, ncols)
    nrows = math.ceil(n / ncols)
    gs = fig.add_gridspec(nrows, ncols, left=left, bottom=bottom, right=right, top=top,
                          wspace=0.08, hspace=0.3)  # fmt: skip
    for k, (block_id, image) in enumerate(montage.slices):
        ax = fig.add_subplot(gs[k // ncols, k % ncols])
        ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(block_id, fontsize=8, parse_math=False)
        ax.set_axis_off()


def _montage_shape(montage: Montage, ncols: int = 6) -> tuple[int, int]:
    n = max(len(montage.slices), 1)
    return math.ceil(n / min(n, ncols)), min(n, ncols)


def save_scores_png(samples: Sequence[SampleScores], path: Path) -> None:
    """Write the score plot (three panels side by side) as a PNG."""
    width = max(8.0, 3 * (0.75 * len(samples) + 1.6))
    with _style():
        fig = _figure((width, 4.2))
        draw_scores(fig, samples, (0.06, 0.02, 0.99, 0.98), stacked=False)
        fig.savefig(path, format="png", dpi=110, metadata=_PNG_META)


def save_montage_png(montage: Montage, path: Path) -> None:
    """Write a sample's block montage as a PNG."""
    nrows, ncols = _montage_shape(montage)
    height = 2.1 * nrows + 0.6
    with _style():
        fig = _figure((1.9 * ncols + 0.2, height))
        fig.text(0.5, 1 - 0.12 / height, f"{montage.sample_id}: middle xy slice of each block",
                 ha="center", va="top", fontsize=9, parse_math=False)  # fmt: skip
        draw_montage(fig, montage, (0.02, 0.02, 0.98, 1 - 0.55 / height))
        fig.savefig(path, format="png", dpi=100, metadata=_PNG_META)


# --- the PDF: text flowed onto A4 pages ------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    """One line of text on a page (already wrapped)."""

    text: str
    size: float = 9.0
    bold: bool = False
    mono: bool = False
    space_before: float = 0.0  # points
    rule: str | None = None  # colour of a thin rule under the line

    @property
    def height(self) -> float:
        return self.space_before + 1.3 * self.size


@dataclass(frozen=True)
class _Group:
    """Lines kept on one page; ``header`` is drawn first when the group opens a page."""

    lines: tuple[_Line, ...]
    header: tuple[_Line, ...] = ()


@dataclass(frozen=True)
class _FigurePage:
    """A page of its own: a heading, a note, and a drawing below them."""

    heading: str
    note: str
    draw: Callable[[Figure, Box], None]


class _Break:
    """Start a new page."""


_Item = _Group | _FigurePage | _Break
_WIDTH_PT = (_A4[0] - 2 * _MARGIN) * 72


def _wrap(text: str, *, size: float, mono: bool = False, indent: float = 0) -> list[str]:
    """``text`` broken into lines that fit the page width at ``size`` points."""
    em = _MONO_EM if mono else _SANS_EM
    chars = max(10, int((_WIDTH_PT - indent) / (em * size)))
    out = []
    for para in text.splitlines() or [""]:
        out += textwrap.wrap(para, chars, break_long_words=True, break_on_hyphens=False) or [""]
    return out


def _para(text: str, *, size: float = 9.0, space_before: float = 0.0, bold: bool = False) -> _Group:
    lines = _wrap(text, size=size)
    return _Group(tuple(_Line(t, size, bold, space_before=space_before if i == 0 else 0.0)
                        for i, t in enumerate(lines)))  # fmt: skip


def _heading(text: str, size: float = 12.5) -> _Group:
    return _para(text, size=size, space_before=size * 0.9, bold=True)


def _table(
    header: Sequence[str],
    rows: Sequence[Sequence[Sequence[str]]],
    *,
    caps: Sequence[int],
    size: float,
    min_size: float,
    lead: str | None = None,
) -> list[_Group]:
    """A table in monospace columns: one group per row, the header repeated on each page.

    Each cell is a list of lines; a line longer than its column wraps within it. The
    font shrinks (down to ``min_size``) to fit the columns' widths, then the widest
    columns narrow. ``lead`` (a sub-heading) is kept on the page with the first row, and
    repeated, marked continued, above the header on later pages.
    """
    gap = 2
    widths = [min(cap, max([len(h) for h in header[j].split()] + [len(t) for r in rows for t in r[j]]
                           + [1]))
              for j, cap in enumerate(caps)]  # fmt: skip
    need = sum(widths) + gap * (len(widths) - 1)
    size = max(min_size, min(size, _WIDTH_PT / (_MONO_EM * need)))
    chars = int(_WIDTH_PT / (_MONO_EM * size))
    while sum(widths) + gap * (len(widths) - 1) > chars and max(widths) > 4:
        widths[widths.index(max(widths))] -= 1

    def lines(cells: Sequence[Sequence[str]], *, bold: bool, rule: str) -> tuple[_Line, ...]:
        wrapped = [[w for t in cell for w in (textwrap.wrap(t, widths[j], break_long_words=True,
                                                            break_on_hyphens=False) or [""])]
                   for j, cell in enumerate(cells)]  # fmt: skip
        height = max(len(c) for c in wrapped)
        out = []
        for i in range(height):
            text = (" " * gap).join((c[i] if i < len(c) else "").ljust(w)
                                    for c, w in zip(wrapped, widths, strict=True))  # fmt: skip
            out.append(_Line(text.rstrip(), size, bold, mono=True,
                             space_before=1.5 if i == 0 else 0.0,
                             rule=rule if i == height - 1 else None))  # fmt: skip
        return tuple(out)

    head = lines([[h] for h in header], bold=True, rule="0.2")
    first = lines(rows[0], bold=False, rule="0.8") if rows else ()
    top = _heading(lead, size=10).lines if lead else ()
    again = (*(_heading(f"{lead} (continued)", size=10).lines if lead else ()), *head)
    groups = [_Group((*top, *head, *first))]
    groups += [_Group(lines(r, bold=False, rule="0.8"), header=again) for r in rows[1:]]
    return groups


def _items(content: ReportContent) -> list[_Item]:
    """What the PDF shows, in order, as flowing text groups and figure pages."""
    from ._render import SCORE_LABELS

    items: list[_Item] = [_para(content.title, size=18, bold=True)]
    for key, value in content.meta:
        items.append(_para(f"{key}: {value}", size=9))
    items.append(_heading("Per-sample summary"))
    items.append(_para("Mean, median and bootstrap 95 % CI of each score over the sample's "
                       "blocks; blocks too poor to judge, and scores that could not be judged, "
                       "are left out and counted. Digests are shortened; see Provenance.",
                       size=8))  # fmt: skip
    rows = [[[g.sample_id], *([r[j] for r in g.scores] for j in range(len(g.scores[0]))),
             [g.seed], list(g.models)] for g in content.summary]  # fmt: skip
    label_width = max(len(v) for v in SCORE_LABELS.values())
    items += _table(content.summary_columns, rows, size=7.5, min_size=6.0,
                    caps=(16, label_width, 6, 6, 11, 6, 10, 9, 12, 20))  # fmt: skip
    items += [_Break(), _heading("Provenance")]
    for sample_id, facts in content.provenance:
        rows = [[[k], [v]] for k, v in facts]
        items += _table(("Field", "Value"), rows, size=7.5, min_size=7.0, caps=(26, 200),
                        lead=sample_id)  # fmt: skip
    items.append(_FigurePage(
        "Score distributions",
        "Each point is one block; open grey points are blocks too poor to judge (left out of "
        "the summary). Squares and bars: the mean and its bootstrap 95 % CI, coloured by "
        "verdict. Dashed lines: the verdict thresholds.",
        lambda fig, box: draw_scores(fig, content.samples, box, stacked=True),
    ))  # fmt: skip
    for montage, note in zip(content.montages, content.montage_notes, strict=True):
        if montage is not None:
            items.append(_FigurePage(f"Sampled blocks: {montage.sample_id}", note,
                                     lambda fig, box, m=montage: draw_montage(fig, m, box)))  # fmt: skip
    items.append(_Break())
    for heading, text in content.extra_sections:
        items.append(_heading(heading))
        for para in (p for p in text.strip().split("\n\n") if p.strip()):
            items.append(_para(para.strip("\n"), size=9, space_before=4))
    items.append(_heading("Signature manifest"))
    if content.signatures:
        items.append(_para("Each signature: the signer's printed name, the date and time it "
                           "was executed, and its meaning (21 CFR Part 11 §11.50).", size=8))  # fmt: skip
        rows = [[[c] for c in r] for r in content.signatures]
        items += _table(content.signature_columns, rows, size=8, min_size=7.0,
                        caps=(28, 20, 23, 8, 40))  # fmt: skip
    else:
        items.append(_para("No signatures are recorded in this report.", size=9))
    for key, value in content.ledger:
        items.append(_para(f"{key}: {value}", size=9, space_before=6))
    return items


def _paginate(items: Sequence[_Item]) -> list[list[tuple[_Line, float]] | _FigurePage]:
    """Flow the groups onto pages: each text page a list of (line, y from the top in points)."""
    top, bottom = _MARGIN * 72, (_A4[1] - _BOTTOM) * 72
    pages: list[list[tuple[_Line, float]] | _FigurePage] = []
    page: list[tuple[_Line, float]] = []
    y = top

    def flush() -> None:
        nonlocal page, y
        if page:
            pages.append(page)
        page, y = [], top

    for item in items:
        if isinstance(item, _Break):
            flush()
        elif isinstance(item, _FigurePage):
            flush()
            pages.append(item)
        else:
            lines = item.lines
            if page and y + sum(line.height for line in lines) > bottom:
                flush()
            if not page:
                lines = (*item.header, *lines)
            for line in lines:
                if page and y + line.height > bottom:  # a group taller than a page
                    flush()
                if not page and line.space_before:  # no space above the first line
                    line = _Line(line.text, line.size, line.bold, line.mono, 0.0, line.rule)
                y += line.height
                page.append((line, y))
    flush()
    return pages


def _draw_line(fig: Figure, line: _Line, y: float) -> None:
    """Draw ``line`` with its baseline ``y`` points below the top of the page."""
    from matplotlib.lines import Line2D

    w, h = (v * 72 for v in _A4)
    base = 1 - (y - 0.3 * line.size) / h
    fig.text(_MARGIN * 72 / w, base, line.text, fontsize=line.size, va="baseline",
             family="monospace" if line.mono else "sans-serif",
             weight="bold" if line.bold else "normal", parse_math=False)  # fmt: skip
    if line.rule:
        ry = 1 - (y - 0.05 * line.size) / h
        fig.add_artist(Line2D([_MARGIN * 72 / w, 1 - _MARGIN * 72 / w], [ry, ry], lw=0.4,
                              color=line.rule, transform=fig.transFigure))  # fmt: skip


def write_pdf(content: ReportContent, path: Path) -> None:
    """Write the report as a multi-page A4 PDF with reproducible bytes."""
    from matplotlib.backends.backend_pdf import PdfPages

    w, h = _A4
    with _style():
        pages = _paginate(_items(content))
        meta = {"Title": content.title, "Subject": content.study, "Author": None,
                "Creator": f"emqc {content.version}", "Producer": None, "CreationDate": None,
                "ModDate": None}  # fmt: skip
        with PdfPages(path, metadata=meta) as pdf:
            for number, page in enumerate(pages, 1):
                fig = _figure(_A4)
                if isinstance(page, _FigurePage):
                    y = _MARGIN * 72
                    for line in (_heading(page.heading).lines
                                 + _para(page.note, size=8, space_before=3).lines):  # fmt: skip
                        y += line.height
                        _draw_line(fig, line, y)
                    box = (
                        _MARGIN / w,
                        _BOTTOM / h + 0.03,
                        1 - _MARGIN / w,
                        1 - (y + 42) / (h * 72),
                    )
                    page.draw(fig, box)
                else:
                    for line, y in page:
                        _draw_line(fig, line, y)
                foot = f"{_clip(content.title, 60)} · {_clip(content.study, 40)} · emqc {content.version}"
                fig.text(_MARGIN / w, 0.45 / h, foot, fontsize=7, color="0.35", parse_math=False)
                fig.text(1 - _MARGIN / w, 0.45 / h, f"page {number} of {len(pages)}", fontsize=7,
                         color="0.35", ha="right")  # fmt: skip
                pdf.savefig(fig)
