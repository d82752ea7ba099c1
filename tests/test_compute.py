"""emqc._compute: a failed graph raises only once no task of it is still running."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import dask
import pytest

from emqc._compute import compute


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two threads running at once")
def test_failure_is_raised_after_the_running_tasks_finish(tmp_path: Path):
    # A caller removes its partial output when compute raises (emqc.ingest does); a task
    # still writing at that moment would bring the output back behind its back.
    late = tmp_path / "late-write"
    started = threading.Event()

    def slow_writer():
        started.set()
        time.sleep(0.5)
        late.write_text("written")

    def failing():
        started.wait(5)
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        compute([dask.delayed(slow_writer)(), dask.delayed(failing)()], label="t", progress=False)
    assert late.exists()


def test_results_come_back_in_order():
    parts = [dask.delayed(lambda i=i: i * i)() for i in range(5)]
    assert compute(parts, label="squares", progress=False) == [0, 1, 4, 9, 16]
