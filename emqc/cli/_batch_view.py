"""What ``emqc batch`` shows: a progress bar per sample and overall, and the final table."""

from __future__ import annotations

import threading
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..scoring import SCORES

__all__ = ["BatchProgress", "result_table"]


class BatchProgress:
    """Progress per sample (its stage and blocks scored) and overall (samples finished)."""

    def __init__(self, console: Any, sample_ids: list[str], *, enabled: bool = True) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[stage]}"), TimeElapsedColumn(),
            console=console, disable=not enabled,
        )  # fmt: skip
        self._lock = threading.Lock()
        self._overall = self._progress.add_task("all samples", total=len(sample_ids), stage="")
        self._tasks = {
            sid: self._progress.add_task(sid, total=None, stage="waiting") for sid in sample_ids
        }

    def __enter__(self) -> BatchProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, sample_id: str, stage: str, done: int, total: int) -> None:
        """The ``progress`` callback of :func:`emqc.batch.run_batch` (thread-safe)."""
        with self._lock:
            task = self._tasks[sample_id]
            fields: dict[str, Any] = {"stage": stage}
            if total:
                fields.update(completed=done, total=total)
            self._progress.update(task, **fields)
            if stage in ("done", "failed"):
                self._progress.advance(self._overall)


def result_table(result: Any) -> Table:
    """Per-sample status, scores (mean and 95 % CI) and verdicts."""
    table = Table(
        title=f"{result.manifest.name}: {len(result.samples)} samples, seed {result.seed}"
    )
    table.add_column("sample")
    table.add_column("status")
    table.add_column("blocks")
    for name in SCORES:
        table.add_column(name)
    for s in result.samples:
        if s.status != "done":
            table.add_row(s.id, f"[red]failed at {s.stage}[/red]", "", *[""] * len(SCORES))
            continue
        cells = []
        for name in SCORES:
            sc = s.summary["scores"][name]
            mean = "n/a" if sc["mean"] is None else f"{sc['mean']:.2f}"
            ci = "" if sc["ci_low"] is None else f" [{sc['ci_low']:.2f}, {sc['ci_high']:.2f}]"
            cells.append(f"{mean}{ci} {sc['verdict']}")
        reused = s.reused.get("score", 0)
        table.add_row(s.id, "done", f"{s.n_blocks}" + (f" ({reused} reused)" if reused else ""),
                      *cells)  # fmt: skip
    return table
