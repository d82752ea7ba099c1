"""The result record, input checks and seed streams shared by every simulator."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Damaged",
    "Inputs",
    "artifact_result",
    "check_inputs",
    "prepare_artifact",
    "stream",
    "unchanged",
]

_UINT32_MAX = np.iinfo(np.uint32).max


@dataclass(frozen=True, eq=False)
class Damaged:
    """A volume after one simulated damage or imaging artifact.

    Attributes
    ----------
    image : (Z, Y, X) ndarray of uint8
        The edited image (membranes dark, extracellular space pale, like the input).
    labels : (Z, Y, X) ndarray of uint32 or None
        Cell id of every voxel after the edit; 0 is in no cell: extracellular space,
        voids, a vessel lumen or membrane debris. ``None`` only when an imaging artifact
        was called without labels.
    extracellular : (Z, Y, X) ndarray of bool or None
        True extracellular space or void after the edit (edema fluid, perivascular
        halos). A vessel lumen and membrane debris have label 0 but are *not*
        extracellular. ``None`` only when an artifact was called without labels.
    membrane_broken : (Z, Y, X) ndarray of bool or None
        Cell-boundary voxels of the *input* labels whose membrane was removed
        (:func:`~emqc.damage.membrane_breakdown` only; ``None`` elsewhere).
    params : dict
        What was done, as plain JSON-serializable values: the simulator's name,
        severity, seed, voxel size and the physical quantities the severity chose.
    """

    image: np.ndarray
    labels: np.ndarray | None
    extracellular: np.ndarray | None
    membrane_broken: np.ndarray | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Inputs:
    """Checked inputs: ``image`` uint8, ``labels`` uint32 (or None), the rest plain numbers."""

    image: np.ndarray
    labels: np.ndarray | None
    voxel_size_nm: tuple[float, float, float]
    severity: float
    seed: int

    def base_params(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "severity": self.severity,
            "seed": self.seed,
            "voxel_size_nm": list(self.voxel_size_nm),
        }


def _check_image(image: Any) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array of uint8, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(
            f"image must have dtype uint8, got dtype {image.dtype}; "
            "convert with emqc.intensity first"
        )
    if image.ndim != 3:
        raise ValueError(f"image must be a (Z, Y, X) array, got shape {image.shape}")
    if min(image.shape) < 1:
        raise ValueError(f"image must not be empty, got shape {image.shape}")
    return image


def _check_labels(labels: Any, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(labels, np.ndarray):
        raise TypeError(f"labels must be a numpy array of cell ids, got {type(labels).__name__}")
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must have an integer dtype, got dtype {labels.dtype}")
    if labels.shape != shape:
        raise ValueError(
            f"labels must have the shape of image {shape}, got labels.shape={labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() > _UINT32_MAX):
        raise ValueError(
            f"labels must lie in [0, {_UINT32_MAX}], got range [{labels.min()}, {labels.max()}]"
        )
    return labels.astype(np.uint32, copy=True)


def _check_voxel_size(voxel_size_nm: Any) -> tuple[float, float, float]:
    values = np.ravel(np.asarray(voxel_size_nm, dtype=object))
    if values.size == 1:
        values = np.repeat(values, 3)
    if values.size != 3:
        raise ValueError(
            f"voxel_size_nm must be a number or 3 numbers (z, y, x), got {voxel_size_nm!r}"
        )
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"voxel_size_nm must hold numbers, got {voxel_size_nm!r}")
    out = tuple(float(v) for v in values)
    if not all(math.isfinite(v) and v > 0 for v in out):
        raise ValueError(
            f"voxel_size_nm must be finite and > 0 on every axis, got {voxel_size_nm!r}"
        )
    return out  # type: ignore[return-value]


def _check_severity(severity: Any) -> float:
    if isinstance(severity, bool) or not isinstance(severity, numbers.Real):
        raise TypeError(f"severity must be a number in [0, 1], got {severity!r}")
    value = float(severity)
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"severity must lie in [0, 1], got severity={severity!r}")
    return value


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer >= 0, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got seed={seed!r}")
    return int(seed)


def check_inputs(
    image: Any,
    labels: Any,
    voxel_size_nm: Any,
    severity: Any,
    seed: Any,
    *,
    labels_required: bool = True,
) -> Inputs:
    """Validate the uniform arguments of every simulator (ValueError / TypeError)."""
    image = _check_image(image)
    if labels is None:
        if labels_required:
            raise TypeError("labels must be a (Z, Y, X) integer array of cell ids, got None")
        checked = None
    else:
        checked = _check_labels(labels, image.shape)
    return Inputs(
        image=image,
        labels=checked,
        voxel_size_nm=_check_voxel_size(voxel_size_nm),
        severity=_check_severity(severity),
        seed=_check_seed(seed),
    )


def unchanged(inputs: Inputs, params: dict[str, Any], *, broken: bool = False) -> Damaged:
    """The result of severity 0: a copy of the input, byte for byte."""
    labels = inputs.labels
    return Damaged(
        image=inputs.image.copy(),
        labels=None if labels is None else labels.copy(),
        extracellular=None if labels is None else labels == 0,
        membrane_broken=np.zeros(inputs.image.shape, bool) if broken else None,
        params=params,
    )


def prepare_artifact(
    name: str, image: Any, labels: Any, voxel_size_nm: Any, severity: Any, seed: Any
) -> tuple[Inputs, dict[str, Any]]:
    """Checked inputs of an imaging artifact (``labels`` optional) and its base params."""
    inp = check_inputs(image, labels, voxel_size_nm, severity, seed, labels_required=False)
    return inp, inp.base_params(name)


def artifact_result(inp: Inputs, image: np.ndarray, params: dict[str, Any]) -> Damaged:
    """An artifact's result: the new image (rounded, clipped to uint8), labels untouched."""
    lab = inp.labels
    out = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return Damaged(out, lab, None if lab is None else lab == 0, None, params)


def stream(seed: int, family: int, step: int) -> np.random.Generator:
    """An independent random stream per simulator family and step of its algorithm.

    Changing what one step draws leaves the others as they were, and two simulators
    called with the same seed do not draw the same numbers.
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(family, step)))
