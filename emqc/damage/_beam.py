"""Imaging artifacts of the electron beam: charging and defocus.

A preservation score must ignore these; they never change the labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy.signal import lfilter

from . import _render as r
from ._common import Damaged, artifact_result, prepare_artifact, stream, unchanged

_CHARGE = 7

#: Charging: brightest patch (grey levels) at severity 1, patch size and scan tail (nm).
CHARGE_MAX = 70.0
CHARGE_PATCH_NM = 500.0
CHARGE_TAIL_NM = 150.0
#: Defocus: in-plane Gaussian blur (sigma, nm) at severity 1.
DEFOCUS_NM_MAX = 25.0


def charging(
    image: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    voxel_size_nm: Any,
    severity: float,
    seed: int,
) -> Damaged:
    """Add charging: smooth bright patches with a tail along the scan direction.

    Poorly conductive resin (little stain, no coating) accumulates charge under the
    beam, which deflects and boosts the detected signal: broad, smooth bright patches
    (size :data:`CHARGE_PATCH_NM` nm) that smear out along the fast scan axis x
    (exponential tail of :data:`CHARGE_TAIL_NM` nm) and drift from slice to slice.

    Parameters
    ----------
    image : (Z, Y, X) ndarray of uint8
    labels : (Z, Y, X) ndarray of int, optional
        Passed through unchanged.
    voxel_size_nm : float or (float, float, float)
    severity : float
        In [0, 1]: 0 none; the brightest patch adds ``severity * CHARGE_MAX`` grey levels.
    seed : int

    Returns
    -------
    Damaged
        ``params`` holds ``peak`` (grey levels) and ``area_fraction`` (patch > 10 % of peak).

    Raises
    ------
    ValueError
        If ``severity`` is outside [0, 1], ``seed`` negative, a voxel size not positive,
        or ``image`` and ``labels`` differ in shape (the message names the parameter).
    TypeError
        If ``image`` is not uint8, ``labels`` neither None nor integer, or a parameter
        has the wrong type.
    """
    inp, params = prepare_artifact("charging", image, labels, voxel_size_nm, severity, seed)
    if inp.severity == 0:
        return unchanged(inp, params)
    img = inp.image.astype(np.float32)
    rng = stream(inp.seed, _CHARGE, 0)
    field = r.smooth_field(img.shape, inp.voxel_size_nm, CHARGE_PATCH_NM, rng)
    patches = np.clip(field - 0.5, 0.0, None) ** 0.7  # the top third of a smooth field: blobs
    decay = np.exp(-inp.voxel_size_nm[2] / CHARGE_TAIL_NM)
    patches = lfilter([1.0 - decay], [1.0, -decay], patches, axis=2).astype(np.float32)
    peak = float(patches.max())
    shape = patches / peak if peak > 0 else patches
    out = img + inp.severity * CHARGE_MAX * shape
    params |= {
        "peak": inp.severity * CHARGE_MAX,
        "area_fraction": float((shape > 0.1).mean()),
    }
    return artifact_result(inp, out, params)


def defocus(
    image: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    voxel_size_nm: Any,
    severity: float,
    seed: int,
) -> Damaged:
    """Blur each slice in-plane, as an out-of-focus electron beam does.

    A defocused probe widens the spot that scans each slice, blurring y and x but not
    z (each slice is its own exposure): an in-plane Gaussian of sigma
    ``severity * DEFOCUS_NM_MAX`` nm. ``seed`` is checked but not used.

    Parameters
    ----------
    image : (Z, Y, X) ndarray of uint8
    labels : (Z, Y, X) ndarray of int, optional
        Passed through unchanged.
    voxel_size_nm : float or (float, float, float)
    severity : float
        In [0, 1]: 0 sharp, 1 a 25 nm sigma (membranes smeared to about 60 nm).
    seed : int

    Returns
    -------
    Damaged
        ``params`` holds ``sigma_nm``.

    Raises
    ------
    ValueError
        If ``severity`` is outside [0, 1], ``seed`` negative, a voxel size not positive,
        or ``image`` and ``labels`` differ in shape (the message names the parameter).
    TypeError
        If ``image`` is not uint8, ``labels`` neither None nor integer, or a parameter
        has the wrong type.
    """
    inp, params = prepare_artifact("defocus", image, labels, voxel_size_nm, severity, seed)
    if inp.severity == 0:
        return unchanged(inp, params)
    sigma = inp.severity * DEFOCUS_NM_MAX
    _, vy, vx = inp.voxel_size_nm
    out = ndi.gaussian_filter(inp.image.astype(np.float32), (0.0, sigma / vy, sigma / vx))
    return artifact_result(inp, out, params | {"sigma_nm": sigma})
