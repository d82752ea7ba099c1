"""The judging rubric as data, and the validated :class:`Verdict` a judge gives one block.

Every question has a kind: *ordinal* (ordered choices, such as a 1–5 scale), *nominal*
(unordered choices) or *text* (free notes). The kind tells the agreement statistics
which measure applies (Krippendorff's alpha with the ordinal or nominal metric).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from ..errors import InputError

__all__ = ["RUBRIC", "RUBRIC_VERSION", "Question", "Verdict", "rubric_to_dict"]

RUBRIC_VERSION = "emqc.rubric/1"


@dataclass(frozen=True)
class Question:
    """One rubric question.

    Attributes
    ----------
    name : str
        Field name in :class:`Verdict` and in stored answers.
    kind : {"ordinal", "nominal", "text"}
    choices : tuple
        Allowed answers, in order for ordinal questions; empty for text.
    prompt : str
        What the judge is asked.
    """

    name: str
    kind: Literal["ordinal", "nominal", "text"]
    choices: tuple[Any, ...]
    prompt: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "choices": list(self.choices),
                "prompt": self.prompt}  # fmt: skip


#: The questions asked of every block, in the order a judge sees them.
RUBRIC: tuple[Question, ...] = (
    Question("membrane_integrity", "ordinal", (1, 2, 3, 4, 5),
             "Membrane integrity: 1 (membranes broken or absent) to 5 (continuous, sharp)"),
    Question("edema", "ordinal", ("none", "mild", "moderate", "severe"),
             "Edema (swollen processes, widened extracellular space)"),
    Question("traceable", "nominal", ("yes", "no", "unsure"),
             "Could neurites in this block be traced reliably?"),
    Question("confidence", "ordinal", (1, 2, 3),
             "Your confidence in these answers: 1 (low) to 3 (high)"),
    Question("notes", "text", (), "Notes (optional)"),
)  # fmt: skip

_BY_NAME = {q.name: q for q in RUBRIC}


def rubric_to_dict() -> dict[str, Any]:
    """The rubric as a JSON-ready document (stored in ``session.json``)."""
    return {"version": RUBRIC_VERSION, "questions": [q.to_dict() for q in RUBRIC]}


def _check(question: Question, value: Any) -> None:
    if question.kind == "text":
        if not isinstance(value, str):
            raise InputError(
                f"verdict {question.name}: must be text, got {type(value).__name__} {value!r}"
            )
        return
    # bool is an int in Python; True must not pass for a score of 1.
    ok = value in question.choices and type(value) is type(question.choices[0])
    if not ok:
        allowed = ", ".join(repr(c) for c in question.choices)
        raise InputError(
            f"verdict {question.name}: {value!r} is not an allowed answer; choose one of {allowed}"
        )


@dataclass(frozen=True)
class Verdict:
    """A judge's answers for one block; every answer is checked against :data:`RUBRIC`.

    Parameters
    ----------
    membrane_integrity : {1, 2, 3, 4, 5}
    edema : {"none", "mild", "moderate", "severe"}
    traceable : {"yes", "no", "unsure"}
    confidence : {1, 2, 3}
    notes : str, optional

    Raises
    ------
    emqc.errors.InputError
        When an answer is not one of the question's choices.

    Examples
    --------
    >>> Verdict(membrane_integrity=4, edema="mild", traceable="yes", confidence=2).edema
    'mild'
    """

    membrane_integrity: int
    edema: str
    traceable: str
    confidence: int
    notes: str = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            _check(_BY_NAME[f.name], getattr(self, f.name))

    def to_dict(self) -> dict[str, Any]:
        """The answers as a JSON-ready dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        """A verdict from :meth:`to_dict`'s output; unknown or missing answers are refused."""
        names = [f.name for f in fields(cls)]
        if not isinstance(data, Mapping):
            raise InputError(f"verdict: expected an object of answers, got {type(data).__name__}")
        extra = sorted(set(data) - set(names))
        missing = [n for n in names if n not in data and n != "notes"]
        if extra or missing:
            raise InputError(
                f"verdict: unknown answers {extra} / missing answers {missing}; "
                f"the rubric asks {', '.join(names)}"
            )
        return cls(**{n: data[n] for n in names if n in data})
