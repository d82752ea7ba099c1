"""napari plugin of emqc: open emqc volumes and score maps, judge blocks blinded.

Thin by design: the reader calls :func:`emqc.open_volume`, the judging widget calls
:class:`emqc.judging.JudgeSession`; no scoring or custody logic lives here.
"""

__all__: list[str] = []
