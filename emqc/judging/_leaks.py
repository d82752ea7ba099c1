"""Checking that nothing a judge can see identifies a sample.

The judge-visible part of a session is every file under the session folder except
``sealed/``. :func:`judge_visible_leaks` looks for identifying strings in

- every file and folder name;
- the full bytes of every file other than exported blocks (JSON, verdict lines);
- the header of every exported ``.npy`` block, which must hold only ``descr``
  (``|u1``), ``fortran_order`` and ``shape``, the same shape for all blocks.

The voxels of a block are the image the judge is meant to see and are not scanned.
A string is found when it stands as a token: not preceded or followed by a letter or
digit (so the sample id ``S01`` is found in ``"S01"`` or ``S01_ctrl``, never inside a
random code or a hex digest).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

__all__ = ["judge_visible_files", "judge_visible_leaks"]

SEALED_DIR = "sealed"
_NPY_KEYS = {"descr", "fortran_order", "shape"}


def judge_visible_files(session_dir: Path | str) -> list[Path]:
    """Every file and link under ``session_dir`` outside ``sealed/``, sorted."""
    root = Path(session_dir)
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if rel.parts[0] == SEALED_DIR:
            continue
        if p.is_symlink() or p.is_file():
            out.append(p)
    return out


def _variants(needle: str) -> set[str]:
    """The needle as written raw and as it would appear inside a JSON string."""
    return {needle, json.dumps(needle)[1:-1], json.dumps(needle, ensure_ascii=False)[1:-1]}


def _pattern(needles: dict[str, str]) -> list[tuple[re.Pattern[bytes], str]]:
    out = []
    for needle, what in needles.items():
        for v in _variants(needle):
            body = re.escape(v.encode("utf-8"))
            out.append((re.compile(rb"(?<![A-Za-z0-9])" + body + rb"(?![A-Za-z0-9])"), what))
    return out


def _needles(
    sample_ids: Iterable[str],
    paths: Iterable[Path | str],
    origins: Iterable[tuple[int, int, int]],
    extra: Iterable[str],
) -> tuple[dict[str, str], dict[str, str]]:
    """(text needles, origin needles), each mapping the string to what it is."""
    text: dict[str, str] = {}
    for s in sample_ids:
        text[str(s)] = f"sample id {s!r}"
    for p in paths:
        p = Path(p)
        for form in {str(p), p.as_posix(), p.absolute().as_posix(), p.name}:
            text[form] = f"volume path {str(p)!r}"
    for e in extra:
        text[str(e)] = f"identifying string {e!r}"
    text.pop("", None)
    coords: dict[str, str] = {}
    for o in origins:
        z, y, x = (int(v) for v in o)
        for form in (f"{z}, {y}, {x}", f"{z},{y},{x}", f"{z}_{y}_{x}", f"{z}-{y}-{x}"):
            coords[form] = f"block origin {(z, y, x)}"
    return text, coords


def _npy_problems(path: Path, rel: str) -> tuple[list[str], bytes, tuple[int, ...] | None]:
    """Structural problems of an exported block's header, the header bytes, its shape."""
    data = path.read_bytes()[:65536]
    # .npy: 6-byte magic, 2 version bytes, header length (2 bytes in v1, 4 in v2/3), header.
    if not data.startswith(b"\x93NUMPY") or len(data) < 10:
        return [f"{rel}: not a .npy file"], data, None
    width = 2 if data[6] == 1 else 4
    length = int.from_bytes(data[8 : 8 + width], "little")
    header = data[8 + width : 8 + width + length]
    try:
        fields = ast.literal_eval(header.decode("latin-1"))
        dtype = np.dtype(fields["descr"])
        shape = tuple(int(v) for v in fields["shape"])
        fortran = bool(fields["fortran_order"])
    except (ValueError, SyntaxError, KeyError, TypeError) as exc:
        return [f"{rel}: unreadable .npy header ({exc!r})"], header, None
    problems = []
    if set(fields) != _NPY_KEYS:
        problems.append(f"{rel}: .npy header holds extra fields {sorted(set(fields) - _NPY_KEYS)}")
    if dtype != np.uint8 or fortran:
        problems.append(f"{rel}: block is {dtype} fortran_order={fortran}, expected C-order uint8")
    return problems, header, shape


def judge_visible_leaks(
    session_dir: Path | str,
    sample_ids: Iterable[str],
    paths: Iterable[Path | str],
    *,
    origins: Iterable[tuple[int, int, int]] = (),
    extra: Iterable[str] = (),
) -> list[str]:
    """Everything in the judge-visible part of a session that could unblind a judge.

    Parameters
    ----------
    session_dir : Path
        A session folder (or its staging folder).
    sample_ids : iterable of str
        Sample ids, as given to :func:`~emqc.judging.create_session`.
    paths : iterable of Path
        Volume paths; searched as given, absolute, POSIX and by folder name.
    origins : iterable of (3,) tuple of int, optional
        Block origins (z, y, x), searched as ``z, y, x``, ``z,y,x``, ``z_y_x`` and
        ``z-y-x`` in names and text (not in block headers, whose shape is checked).
    extra : iterable of str, optional
        Further identifying strings: conditions, protocols, animal ids.

    Returns
    -------
    list of str
        One line per problem naming the file and what was found; empty when clean.
    """
    root = Path(session_dir)
    text_needles, coord_needles = _needles(sample_ids, paths, origins, extra)
    text_pats = _pattern(text_needles)
    all_pats = text_pats + _pattern(coord_needles)
    problems: list[str] = []
    shapes: dict[tuple[int, ...], str] = {}
    for path in judge_visible_files(root):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            problems.append(f"{rel}: is a link (to {path.readlink()}); judge files must be plain")
            continue
        for pat, what in all_pats:
            if pat.search(rel.encode("utf-8")):
                problems.append(f"{rel}: the file name contains {what}")
        if path.suffix == ".npy":
            found, header, shape = _npy_problems(path, rel)
            problems += found
            if shape is not None:
                shapes.setdefault(shape, rel)
            data, pats = header, text_pats
        else:
            data, pats = path.read_bytes(), all_pats
        for what in sorted({what for pat, what in pats if pat.search(data)}):
            problems.append(f"{rel}: contains {what}")
    if len(shapes) > 1:
        problems.append(
            f"blocks have different shapes {sorted(shapes)} (e.g. {sorted(shapes.values())}); "
            "a block's shape can identify its sample"
        )
    return problems
