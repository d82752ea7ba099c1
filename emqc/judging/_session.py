"""Creating a blinded judging session folder, and opening one.

A session folder has a **judge-visible** part and a **sealed** part::

    out/
      session.json          non-identifying: id, judges, rubric, digests (judge-visible)
      blocks/<CODE>.npy     one (Z, Y, X) uint8 block per code (judge-visible)
      judges/<judge>.json   that judge's order of codes (judge-visible)
      verdicts/<judge>.jsonl  answers, written by JudgeSession (judge-visible)
      sealed/mapping.json   code -> sample, volume, block, origin, repeat (coordinator only)
      sealed/blocks/<sample>.blocks.json  the blocks judged, for `emqc score --block-list`

``sealed/`` belongs to the coordinator: it is written with mode 0700 and must be
removed (or withheld) before the folder is given to judges, and opened only after
every judge has locked their verdicts. ``session.json`` records the SHA-256 of the
sealed mapping, so unblinding can show that the mapping was not changed; the mapping
holds a random salt so that its digest cannot be matched against guesses.

Each block is shown mirrored in one of the :data:`~emqc.judging._plan.FLIPS`
orientations, drawn at random; a repeated block is shown in another orientation than
its first showing, so that the two files differ byte for byte and a judge cannot find
repeats by comparing files or digests. The sealed mapping records each orientation.

The seed makes a session reproducible; whoever knows it and holds the volumes can
rebuild the mapping, so it is recorded only in the sealed mapping. Leave it ``None``
for a real study (a 128-bit seed is drawn from the operating system).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import publish_dir
from ..custody._canonical import sha256_hex, utc_now
from ..errors import CustodyError, InputError
from ..sampling.volume import sample_volume, write_block_list
from ..volume import open_volume
from ._leaks import SEALED_DIR, judge_visible_files, judge_visible_leaks
from ._plan import FLIPS, apply_flip, draw_codes, judge_order, n_repeats, rng_for_purpose
from ._rubric import rubric_to_dict

__all__ = ["MAPPING_FORMAT", "SESSION_FORMAT", "Session", "create_session", "read_mapping"]

SESSION_FORMAT = "emqc.judging-session/1"
MAPPING_FORMAT = "emqc.judging-mapping/1"
SESSION_FILE = "session.json"
MAPPING_FILE = f"{SEALED_DIR}/mapping.json"
_JUDGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Session:
    """An opened session folder (judge-visible part).

    Attributes
    ----------
    root : Path
    session_id : str
    judges : tuple of str
    orders : dict of str to tuple of str
        Each judge's codes in the order shown.
    document : dict
        ``session.json`` as parsed.
    digest : str
        SHA-256 of the stored bytes of ``session.json``.
    """

    root: Path
    session_id: str
    judges: tuple[str, ...]
    orders: dict[str, tuple[str, ...]]
    document: dict[str, Any]
    digest: str

    @classmethod
    def open(cls, root: Path | str) -> Session:
        """Open a session folder; every judge-visible file written at creation is checked.

        Raises
        ------
        emqc.errors.InputError
            When ``session.json`` is missing or not a session.
        emqc.errors.CustodyError
            When a file listed in ``session.json`` is missing or altered.
        """
        root = Path(root)
        path = root / SESSION_FILE
        try:
            data = path.read_bytes()
            doc = json.loads(data)
        except FileNotFoundError:
            raise InputError(
                f"{path}: no session.json; create a session with emqc.judging.create_session"
            ) from None
        except ValueError as exc:
            raise InputError(f"{path}: not JSON ({exc}); restore it from a backup") from exc
        if not isinstance(doc, dict) or doc.get("format") != SESSION_FORMAT:
            raise InputError(f"{path}: not an emqc judging session (format {SESSION_FORMAT})")
        for rel, digest in doc["files"].items():
            f = root / rel
            if not f.is_file():
                raise CustodyError(f"{f}: listed in {path} but missing; restore the session copy")
            if sha256_hex(f.read_bytes()) != digest:
                raise CustodyError(
                    f"{f}: its SHA-256 differs from the one in {path}; the file was changed "
                    "after the session was created; restore the original session copy"
                )
        orders = {
            j: tuple(json.loads((root / "judges" / f"{j}.json").read_text())["codes"])
            for j in doc["judges"]
        }
        return cls(root, doc["session_id"], tuple(doc["judges"]), orders, doc, sha256_hex(data))

    def block_path(self, code: str) -> Path:
        """The exported block file of ``code``."""
        return self.root / "blocks" / f"{code}.npy"

    def load_block(self, code: str) -> np.ndarray:
        """The ``(Z, Y, X)`` uint8 voxels shown for ``code``."""
        return np.load(self.block_path(code), allow_pickle=False)


def read_mapping(root: Path | str) -> dict[str, Any]:
    """The sealed mapping, checked against the digest in ``session.json`` (unblinding).

    Raises
    ------
    emqc.errors.CustodyError
        When the mapping is missing or differs from the one sealed at creation.
    """
    root = Path(root)
    session = Session.open(root)
    path = root / MAPPING_FILE
    if not path.is_file():
        raise CustodyError(f"{path}: no sealed mapping; the coordinator holds it separately")
    data = path.read_bytes()
    if sha256_hex(data) != session.document["sealed_mapping_sha256"]:
        raise CustodyError(
            f"{path}: its SHA-256 differs from sealed_mapping_sha256 in {root / SESSION_FILE}; "
            "the mapping was changed after the session was created"
        )
    return json.loads(data)


def _check_args(samples: Mapping[str, Path], judges: Sequence[str], blocks_per_sample: int,
                out: Path) -> None:  # fmt: skip
    if not samples:
        raise InputError("samples: give at least one sample id -> volume path")
    for sid in samples:
        if not isinstance(sid, str) or not sid.strip():
            raise InputError(f"samples: sample id {sid!r} must be a non-empty string")
    if isinstance(judges, str) or not judges:
        raise InputError(f"judges: give a list of judge names, got {judges!r}")
    for j in judges:
        if not isinstance(j, str) or not _JUDGE.match(j):
            raise InputError(
                f"judges: name {j!r} is not allowed; use letters, digits, '.', '_' or '-'"
            )
    if len(set(judges)) != len(judges):
        raise InputError(f"judges: names must be distinct, got {list(judges)}")
    if isinstance(blocks_per_sample, bool) or not isinstance(blocks_per_sample, int):
        raise InputError(f"blocks_per_sample must be an int, got {blocks_per_sample!r}")
    if blocks_per_sample < 1:
        raise InputError(f"blocks_per_sample must be at least 1, got {blocks_per_sample}")
    if out.exists():
        raise InputError(
            f"{out}: already exists; a judging session is never overwritten (it may hold "
            "verdicts); choose another folder"
        )


def _write_json(path: Path, doc: Any) -> bytes:
    data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def create_session(
    samples: Mapping[str, Path | str],
    judges: Sequence[str],
    *,
    blocks_per_sample: int,
    out: Path | str,
    seed: int | None = None,
    repeat_share: float = 0.1,
    min_repeat_gap: int = 3,
    block_um: float | None = None,
    block_vox: tuple[int, int, int] | None = None,
) -> Session:
    """Sample blocks from every volume and write a blinded judging session folder.

    1. Check that every volume has the same voxel size (a different one would unblind).
    2. Draw ``blocks_per_sample`` blocks per volume with
       :func:`~emqc.sampling.volume.sample_volume` and the session seed.
    3. Choose ``ceil(repeat_share * n)`` blocks to show twice, each repeat under its
       own code and file.
    4. Give every shown block an opaque code and an orientation, drawn at random.
    5. Export each block as ``blocks/<CODE>.npy``, write each judge's order, the sealed
       mapping and ``session.json`` into a staging folder, check the judge-visible
       part with :func:`~emqc.judging.judge_visible_leaks`, then publish it atomically.

    Parameters
    ----------
    samples : mapping of str to Path
        Sample id -> ingested volume.
    judges : sequence of str
        Judge names (letters, digits, ``.``, ``_``, ``-``).
    blocks_per_sample : int
    out : Path
        The session folder to create; must not exist.
    seed : int, optional
        Session seed; drawn from the OS's secure source when None. Recorded only in
        the sealed mapping.
    repeat_share : float, optional
        Share of blocks shown a second time to measure each judge's consistency.
    min_repeat_gap : int, optional
        Least number of positions between a block's two showings in every order.
    block_um, block_vox : optional
        Block size, as for :func:`~emqc.sampling.volume.sample_volume`.

    Returns
    -------
    Session

    Raises
    ------
    emqc.errors.InputError
        For bad arguments, differing voxel sizes, or when ``out`` exists.
    emqc.errors.SamplingError
        When a volume cannot give the blocks.
    emqc.errors.CustodyError
        When the self-check finds identifying information in a judge-visible file.
    """
    out = Path(out)
    _check_args(samples, judges, blocks_per_sample, out)
    seed_source = "user" if seed is not None else "os-random"
    seed = secrets.randbits(128) if seed is None else int(seed)
    sample_ids = sorted(samples)  # independent of the mapping's order
    volumes = {sid: open_volume(samples[sid]) for sid in sample_ids}

    # 1. one voxel size for all samples
    sizes = {sid: tuple(v.voxel_size_nm) for sid, v in volumes.items()}
    if len(set(sizes.values())) > 1:
        listing = "; ".join(f"{sid} ({volumes[sid].path}): {sizes[sid]} nm" for sid in sample_ids)
        raise InputError(
            f"samples have different voxel sizes ({listing}); a judge could tell samples apart "
            "by it. Resample the volumes to one voxel size, or judge them in separate sessions"
        )

    # 2. blocks
    items: list[dict[str, Any]] = []
    sampled: dict[str, Any] = {}
    block_lists = {}
    for sid in sample_ids:
        vol = volumes[sid]
        bl = sample_volume(vol, n=blocks_per_sample, seed=seed, block_um=block_um,
                           block_vox=block_vox)  # fmt: skip
        sampled[sid] = {"volume": str(vol.path), "volume_digest": vol.root_digest,
                        "seed": bl.seed, "parameters": bl.parameters.to_dict()}  # fmt: skip
        block_lists[sid] = bl
        for b in bl.blocks:
            items.append({"sample": sid, "volume": str(vol.path), "block": b.id,
                          "origin_vox": list(b.origin_vox), "shape_vox": list(b.shape_vox)})  # fmt: skip

    # 3. repeats
    rng = rng_for_purpose(seed, "repeats")
    n_rep = n_repeats(len(items), repeat_share)
    repeated = sorted(int(i) for i in rng.choice(len(items), size=n_rep, replace=False))
    shown = [dict(it, repeat_of=None) for it in items]
    shown += [dict(items[i], repeat_of=i) for i in repeated]

    # 4. codes and orientations
    rng = rng_for_purpose(seed, "codes")
    codes = draw_codes(rng, len(shown))
    flips = [str(FLIPS[int(k)]) for k in rng.integers(0, len(FLIPS), size=len(shown))]
    for k, it in enumerate(shown):
        if it["repeat_of"] is not None:
            first = flips[it["repeat_of"]]
            others = [f for f in FLIPS if f != first]
            flips[k] = others[int(rng.integers(0, len(others)))]
            it["repeat_of"] = codes[it["repeat_of"]]
        it["flip"] = flips[k]
    mapping_codes = dict(zip(codes, shown, strict=True))
    pairs = [(it["repeat_of"], c) for c, it in mapping_codes.items() if it["repeat_of"]]
    orders = {
        j: judge_order(
            rng_for_purpose(seed, f"judge:{j}"), sorted(codes), pairs, min_gap=min_repeat_gap
        )  # fmt: skip
        for j in judges
    }

    # 5. write into staging, check, publish
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.emqc-staging-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        for code in sorted(codes):
            it = mapping_codes[code]
            vox = volumes[it["sample"]].read(tuple(it["origin_vox"]), tuple(it["shape_vox"]))
            block = apply_flip(np.asarray(vox, dtype=np.uint8), it["flip"])
            (staging / "blocks").mkdir(exist_ok=True)
            np.save(staging / "blocks" / f"{code}.npy", block, allow_pickle=False)
        for j in judges:
            _write_json(staging / "judges" / f"{j}.json", {"judge": j, "codes": orders[j]})
        session_id = secrets.token_hex(8)
        mapping = {
            "format": MAPPING_FORMAT,
            "salt": secrets.token_hex(16),
            "session_id": session_id,
            "seed": seed,
            "seed_source": seed_source,
            "judges": list(judges),
            "blocks_per_sample": blocks_per_sample,
            "repeat_share": repeat_share,
            "min_repeat_gap": min_repeat_gap,
            "block_um": block_um,
            "block_vox": list(block_vox) if block_vox is not None else None,
            "samples": sampled,
            "codes": mapping_codes,
        }
        sealed = staging / SEALED_DIR
        sealed.mkdir(mode=0o700)
        mapping_bytes = _write_json(staging / MAPPING_FILE, mapping)
        (sealed / "blocks").mkdir()
        for sid, bl in block_lists.items():  # to score the judged blocks: emqc score --block-list
            write_block_list(bl, sealed / "blocks" / f"{sid}.blocks.json")
        files = {p.relative_to(staging).as_posix(): sha256_hex(p.read_bytes())
                 for p in judge_visible_files(staging)}  # fmt: skip
        doc = {
            "format": SESSION_FORMAT,
            "session_id": session_id,
            "created": utc_now(),
            "judges": list(judges),
            "n_codes": len(codes),
            "voxel_size_nm": list(next(iter(sizes.values()))),
            "rubric": rubric_to_dict(),
            "files": files,
            "sealed_mapping_sha256": sha256_hex(mapping_bytes),
        }
        _write_json(staging / SESSION_FILE, doc)
        leaks = judge_visible_leaks(
            staging,
            sample_ids,
            [v.path for v in volumes.values()],
            origins=[tuple(it["origin_vox"]) for it in items],
            extra=[it["block"] for it in items] + [v.root_digest for v in volumes.values()],
        )
        if leaks:
            raise CustodyError(
                f"{out}: the judge-visible part would identify samples, so the session was "
                f"not written: {'; '.join(leaks)}. Choose longer, distinctive sample ids"
            )
        publish_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.chmod(out / SEALED_DIR, 0o700)
    return Session.open(out)
