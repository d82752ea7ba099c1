"""The napari plugin in a real napari (under Xvfb): manifest, reader, a whole judging session."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    pytest.skip("napari needs a display: run under xvfb-run (./run.sh test does)",
                allow_module_level=True)  # fmt: skip

from emqc.ingest import ingest
from emqc.judging import JudgeSession, create_session, read_mapping
from emqc.sources._array import ArraySource
from emqc.synth import synthetic_neuropil

pytestmark = pytest.mark.filterwarnings("ignore:window_nm")
SAMPLES = ("S01_perfused", "S02_delayed")


@pytest.fixture(autouse=True)
def _free_qt_objects_on_the_main_thread():
    """Collect each test's closed viewers here, on the GUI thread, before other tests run.

    Left to the cyclic garbage collector, a closed viewer's vispy canvas can be freed from
    whichever thread next triggers a collection (a Dask worker, say); its OpenGL context
    is then destroyed off the GUI thread and stays "current" on it as a dangling pointer,
    and Qt crashes on it when the QApplication is torn down at exit (napari/napari#1029).
    Teardown runs after ``make_napari_viewer`` has closed the test's viewers.
    """
    yield
    gc.collect()


@pytest.fixture(scope="module")
def volumes(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("napari")
    out = {}
    for i, sid in enumerate(SAMPLES):
        img = synthetic_neuropil((48, 96, 96), voxel_size_nm=10.0, seed=10 + i).image
        out[sid] = base / f"{sid}.ome.zarr"
        ingest(ArraySource(img, voxel_size_nm=(10, 10, 10), name=sid), out[sid], progress=False)
    return out


@pytest.fixture
def session(volumes, tmp_path) -> Path:
    create_session(volumes, ["alice", "bob"], blocks_per_sample=3, out=tmp_path / "session",
                   seed=11, repeat_share=0.2, block_vox=(32, 32, 32))  # fmt: skip
    return tmp_path / "session"


def _answer(widget, code, mapping) -> None:
    """Answers that depend on the (sealed) sample, as a judge's would."""
    good = mapping["codes"][code]["sample"] == SAMPLES[0]
    a = widget._answers
    a["membrane_integrity"].value = 4 if good else 2
    a["edema"].value = "none" if good else "moderate"
    a["traceable"].value = "yes" if good else "unsure"
    a["confidence"].value = 2


def test_manifest_is_valid_and_discovered():
    res = subprocess.run([sys.executable, "-m", "npe2", "validate", "emqc"], capture_output=True,
                         text=True)  # fmt: skip
    assert res.returncode == 0 and "valid" in (res.stdout + res.stderr)
    import npe2

    pm = npe2.PluginManager.instance()
    pm.discover()
    assert "emqc" in {m.name for m in pm.iter_manifests()}


def test_reader_opens_a_volume_in_nm(make_napari_viewer, volumes):
    from emqc_napari._reader import get_reader

    path = volumes[SAMPLES[0]]
    assert get_reader(str(path.parent)) is None
    layers = get_reader(str(path))(str(path))
    data, meta, kind = layers[0]
    assert kind == "image" and meta["scale"] == (10.0, 10.0, 10.0)
    assert tuple(data[0].shape) == (48, 96, 96)
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="emqc")
    assert viewer.layers[0].data[0].shape == (48, 96, 96)


def test_whole_session_through_the_widget(make_napari_viewer, qtbot, session, tmp_path):
    from emqc_napari._widget import BLOCK_LAYER, JudgingWidget
    from qtpy.QtCore import Qt

    mapping = read_mapping(session)
    viewer = make_napari_viewer(show=True)
    widget = JudgingWidget(viewer, session, "alice")
    viewer.window.add_dock_widget(widget, name="Blinded judging")
    n = len(widget.js.order)
    assert widget._progress.value.startswith(f"block 1 of {n}")
    for _ in range(n):
        code = widget.js.order[widget.index]
        _answer(widget, code, mapping)
        qtbot.mouseClick(widget._save.native, Qt.MouseButton.LeftButton)
        assert code in JudgeSession(session, "alice").verdicts()  # saved at once, on disk
    # an amendment: back one block, change an answer; refused without a reason
    widget.previous()
    code = widget.js.order[widget.index]
    widget._answers["confidence"].value = 3
    assert not widget.save_and_next() and "reason" in widget._status.value
    widget._reason.value = "looked again at the membranes"
    assert widget.save_and_next()
    lines = JudgeSession(session, "alice").lines()
    assert [ln.kind for ln in lines].count("amend") == 1 and len(lines) == n + 1
    assert widget.lock() and JudgeSession(session, "alice").locked
    assert not widget.save_and_next() and "locked" in widget._status.value

    # Screenshot: the block and the widget are on screen.
    viewer.window.resize(1200, 800)
    viewer.reset_view()
    qtbot.wait(200)
    canvas = viewer.screenshot(canvas_only=True, flash=False)
    grey = canvas[..., :3].mean(axis=-1)
    assert grey.std() > 15 and 30 < grey.mean() < 220, (grey.mean(), grey.std())
    window = viewer.screenshot(canvas_only=False, flash=False)
    assert window.shape[1] > canvas.shape[1]  # the dock widget is beside the canvas
    from PIL import Image

    Image.fromarray(window).save(tmp_path / "judging.png")

    # Nothing a judge can see names a sample, a path, a condition or a position.
    seen = [viewer.title, *(layer.name for layer in viewer.layers), widget._progress.value,
            str(viewer.layers[BLOCK_LAYER].metadata)]  # fmt: skip
    for text in seen:
        for secret in (*SAMPLES, "perfused", "delayed", "ome.zarr"):
            assert secret not in text, (secret, text)
    assert [layer.name for layer in viewer.layers] == [BLOCK_LAYER]


def test_closing_mid_session_loses_nothing_and_resumes(make_napari_viewer, session):
    from emqc_napari._widget import JudgingWidget

    mapping = read_mapping(session)
    viewer = make_napari_viewer()
    widget = JudgingWidget(viewer, session, "bob")
    done = []
    for _ in range(2):
        done.append(widget.js.order[widget.index])
        _answer(widget, done[-1], mapping)
        assert widget.save_and_next()
    viewer.close()
    again = JudgingWidget(make_napari_viewer(), session, "bob")
    assert again.index == 2 and set(JudgeSession(session, "bob").verdicts()) == set(done)
    block = again.viewer.layers["block"].data
    assert isinstance(block, np.ndarray) and block.shape == (32, 32, 32)


_JUDGE_THEN_HANG = """
import sys, time
import napari
from emqc.judging import read_mapping
from emqc_napari._widget import JudgingWidget
session = sys.argv[1]
viewer = napari.Viewer(show=False)
widget = JudgingWidget(viewer, session, "bob")
for _ in range(3):
    widget._answers["membrane_integrity"].value = 3
    widget._answers["edema"].value = "mild"
    widget._answers["traceable"].value = "unsure"
    widget._answers["confidence"].value = 1
    assert widget.save_and_next()
print("saved", flush=True)
time.sleep(600)
"""


def test_killing_napari_mid_session_loses_no_saved_verdict(make_napari_viewer, session, tmp_path):
    import signal

    from emqc_napari._widget import JudgingWidget

    script = tmp_path / "judge.py"
    script.write_text(_JUDGE_THEN_HANG)
    with subprocess.Popen([sys.executable, str(script), str(session)], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True) as proc:  # fmt: skip
        try:
            line = proc.stdout.readline()
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
    assert line.strip() == "saved" and proc.returncode == -signal.SIGKILL
    js = JudgeSession(session, "bob")
    assert len(js.verdicts()) == 3 and js.resume_index() == 3
    again = JudgingWidget(make_napari_viewer(), session, "bob")
    assert again.index == 3


def test_reader_opens_a_score_map_as_heat_maps(make_napari_viewer, volumes, tmp_path):
    from emqc_napari._reader import get_reader

    from emqc.scoring._run import score_volume
    from emqc.testing import intensity_maps

    run = score_volume(volumes[SAMPLES[0]], out=tmp_path / "scores", all_blocks=True,
                       block_vox=(16, 32, 32), predict=intensity_maps, progress=False)  # fmt: skip
    path = str(run.score_map)
    layers = get_reader(path)(path)
    names = [meta["name"] for _, meta, _ in layers]
    assert names == ["score: membrane_integrity", "score: edema", "score: synapse_traceability",
                     "score: imaging_quality"]  # fmt: skip
    data, meta, _ = layers[0]
    assert data.shape == (3, 3, 3) and meta["scale"] == (160.0, 320.0, 320.0)
    viewer = make_napari_viewer()
    viewer.open(path, plugin="emqc")
    assert len(viewer.layers) == 4
