"""The blinded judging widget: one block at a time, the rubric, save, amend, lock.

Thin over :class:`emqc.judging.JudgeSession`: every answer is saved through it (durably,
before the next block shows), so a closed window or a crash loses nothing, and
reopening starts at the first block without a verdict. The viewer shows only what the
session's judge-visible part holds: the block's voxels under an opaque code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from magicgui import widgets

from emqc.errors import EmqcError

__all__ = ["JudgingWidget", "BLOCK_LAYER"]

#: The one image layer the widget shows (its name carries no sample information).
BLOCK_LAYER = "block"


class JudgingWidget(widgets.Container):
    """Judge the blocks of a session, blinded.

    Parameters
    ----------
    napari_viewer : napari.Viewer
    session : Path, optional
        A session folder (from ``emqc judge create``); otherwise chosen in the widget.
    judge : str, optional
        The judge's name in the session.
    study, signer : optional
        A :class:`emqc.custody.Study` and the judge's :class:`emqc.custody.Signer`:
        each verdict, amendment and lock is then also a signed custody event.
    """

    def __init__(self, napari_viewer, session=None, judge=None, *, study=None, signer=None):  # type: ignore[no-untyped-def]
        from emqc.judging import RUBRIC

        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.study, self.signer = study, signer
        self.js = None
        self.index = 0
        self._folder = widgets.FileEdit(mode="d", label="session")
        self._judge = widgets.LineEdit(label="judge")
        self._open = widgets.PushButton(text="Open session")
        self._progress = widgets.Label(label="progress", value="no session open")
        self._answers: dict[str, widgets.ValueWidget] = {}
        for q in RUBRIC:
            if q.kind == "text":
                w: widgets.ValueWidget = widgets.TextEdit(label=q.name.replace("_", " "))
            else:
                w = widgets.ComboBox(
                    label=q.name.replace("_", " "),
                    choices=[(str(c), c) for c in q.choices],
                    value=None,
                    nullable=True,
                )
            w.tooltip = q.prompt
            self._answers[q.name] = w
        self._reason = widgets.LineEdit(label="amend reason")
        self._prev = widgets.PushButton(text="◀ Previous (P)")
        self._save = widgets.PushButton(text="Save && next (N)")
        self._lock = widgets.PushButton(text="Lock my verdicts")
        self._status = widgets.Label(label="", value="")
        buttons = widgets.Container(
            widgets=[self._prev, self._save], layout="horizontal", labels=False
        )
        self.extend([self._folder, self._judge, self._open, self._progress,
                     *self._answers.values(), self._reason, buttons, self._lock, self._status])  # fmt: skip
        self._open.changed.connect(self._on_open)
        self._save.changed.connect(self.save_and_next)
        self._prev.changed.connect(self.previous)
        self._lock.changed.connect(self.lock)
        self.viewer.bind_key("n", lambda _v: self.save_and_next(), overwrite=True)
        self.viewer.bind_key("p", lambda _v: self.previous(), overwrite=True)
        if session is not None and judge is not None:
            self._folder.value, self._judge.value = Path(session), judge
            self.open(Path(session), judge)

    # -- session --------------------------------------------------------------------------
    def _on_open(self, *_: Any) -> None:
        self.open(Path(self._folder.value), str(self._judge.value).strip())

    def open(self, session: Path, judge: str) -> None:
        """Open ``judge``'s part of ``session`` at the first block without a verdict."""
        from emqc.judging import JudgeSession

        try:
            self.js = JudgeSession(session, judge, study=self.study, signer=self.signer)
        except EmqcError as exc:
            self._say(exc.message)
            return
        self.viewer.title = f"emqc blinded judging: {judge}"
        self.index = min(self.js.resume_index(), len(self.js.order) - 1)
        self.show(self.index)
        self._enable(not self.js.locked)

    def show(self, index: int) -> None:
        """Show block ``index`` of the judge's order, with its saved answers if any."""
        js = self.js
        code = js.order[index]
        data = js.session.load_block(code)
        scale = tuple(js.session.document.get("voxel_size_nm", (1.0, 1.0, 1.0)))
        if BLOCK_LAYER in self.viewer.layers:
            layer = self.viewer.layers[BLOCK_LAYER]
            layer.data = data
        else:
            layer = self.viewer.add_image(data, name=BLOCK_LAYER, scale=scale, colormap="gray",
                                          contrast_limits=(0, 255))  # fmt: skip
        layer.metadata = {"code": code}
        self.viewer.dims.set_point(0, scale[0] * (data.shape[0] // 2))
        saved = js.verdicts().get(code)
        for name, w in self._answers.items():
            w.value = getattr(saved, name) if saved is not None else (
                "" if isinstance(w, widgets.TextEdit) else None)  # fmt: skip
        self._reason.value = ""
        self.index = index
        self._update_progress()

    def _update_progress(self) -> None:
        js = self.js
        p = js.progress()
        state = " · locked" if js.locked else ""
        self._progress.value = (f"block {self.index + 1} of {len(js.order)} "
                                f"({js.order[self.index]}) · {p} judged{state}")  # fmt: skip

    # -- actions --------------------------------------------------------------------------
    def current_verdict(self):  # type: ignore[no-untyped-def]
        """The answers in the form as a :class:`emqc.judging.Verdict` (raises if incomplete)."""
        from emqc.judging import Verdict

        values = {n: w.value for n, w in self._answers.items()}
        missing = [n for n, v in values.items() if v is None]
        if missing:
            raise EmqcError(f"answer {', '.join(m.replace('_', ' ') for m in missing)} first")
        return Verdict(**values)

    def save_and_next(self, *_: Any) -> bool:
        """Save this block's answers (a first verdict, or an amendment with its reason), go on."""
        js = self.js
        if js is None or js.locked:
            self._say("open a session first" if js is None else "your verdicts are locked")
            return False
        code = js.order[self.index]
        try:
            verdict = self.current_verdict()
            saved = js.verdicts().get(code)
            if saved is None:
                js.record(code, verdict)
            elif saved != verdict:
                js.amend(code, verdict, str(self._reason.value))
        except EmqcError as exc:
            self._say(exc.message)
            return False
        self._say(f"saved {code}")
        if self.index + 1 < len(js.order):
            self.show(self.index + 1)
        else:
            self._update_progress()
        return True

    def previous(self, *_: Any) -> None:
        """Go back one block (its saved answers show; changing them needs a reason)."""
        if self.js is not None and self.index > 0:
            self.show(self.index - 1)

    def lock(self, *_: Any) -> bool:
        """Lock the judge's verdicts: nothing can be changed afterwards."""
        if self.js is None:
            return False
        try:
            self.js.lock()
        except EmqcError as exc:
            self._say(exc.message)
            return False
        self._enable(False)
        self._update_progress()
        self._say("locked: thank you")
        return True

    def _enable(self, on: bool) -> None:
        for w in (*self._answers.values(), self._reason, self._save, self._lock):
            w.enabled = on

    def _say(self, text: str) -> None:
        self._status.value = text
