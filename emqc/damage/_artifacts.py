"""Imaging artifacts of the detector, the milling and the contrast convention.

A preservation score must ignore every one of these; they never change the labels.
Each takes the same arguments as the damage simulators, with ``labels`` optional
(passed through unchanged when given).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ._common import Damaged, artifact_result, prepare_artifact, stream, unchanged

_NOISE, _CURTAIN = 5, 6

#: Noise at severity 1 has this standard deviation relative to the image's own
#: standard deviation (signal-to-noise ratio 1); the Poisson share of its variance.
NOISE_STD_MAX = 1.0
POISSON_SHARE = 0.8
#: Curtain amplitude (fraction of the image standard deviation) at severity 1, the
#: stripe widths (nm) and how many nm of milling a curtain persists over.
CURTAIN_AMPLITUDE_MAX = 0.8
CURTAIN_WIDTH_NM = (20.0, 200.0)
CURTAIN_PERSIST_NM = 150.0


def _std(img: np.ndarray) -> float:
    return max(float(img.std()), 1.0)


def noise(
    image: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    voxel_size_nm: Any,
    severity: float,
    seed: int,
) -> Damaged:
    """Add Poisson-Gaussian detector noise (shorter dwell time, lower beam current).

    The SEM counts backscattered/secondary electrons: shot noise is Poisson, its
    variance proportional to the signal, plus Gaussian read-out noise. The added noise
    has standard deviation ``severity * NOISE_STD_MAX * std(image)`` at the mean grey
    level, :data:`POISSON_SHARE` of its variance Poisson (signal-dependent), the rest
    Gaussian; the signal-to-noise ratio is ``1 / (severity * NOISE_STD_MAX)``.
    ``voxel_size_nm`` is checked but not used: the noise is independent per voxel.

    Parameters
    ----------
    image : (Z, Y, X) ndarray of uint8
    labels : (Z, Y, X) ndarray of int, optional
        Passed through unchanged.
    voxel_size_nm : float or (float, float, float)
    severity : float
        In [0, 1]: 0 no noise, 0.5 SNR 2, 1 SNR 1 (noise as strong as the tissue contrast).
    seed : int

    Returns
    -------
    Damaged
        ``params`` holds ``noise_std`` (grey levels) and ``snr``.

    Raises
    ------
    ValueError
        If ``severity`` is outside [0, 1], ``seed`` negative, a voxel size not positive,
        or ``image`` and ``labels`` differ in shape (the message names the parameter).
    TypeError
        If ``image`` is not uint8, ``labels`` neither None nor integer, or a parameter
        has the wrong type.

    References
    ----------
    .. [1] A. Foi, M. Trimeche, V. Katkovnik, K. Egiazarian (2008), Practical
       Poissonian-Gaussian noise modeling and fitting for single-image raw-data, IEEE
       Trans. Image Process. 17:1737-1754.
    """
    inp, params = prepare_artifact("noise", image, labels, voxel_size_nm, severity, seed)
    if inp.severity == 0:
        return unchanged(inp, params)
    img = inp.image.astype(np.float64)
    rng = stream(inp.seed, _NOISE, 0)
    sigma = inp.severity * NOISE_STD_MAX * _std(img)
    mean = max(float(img.mean()), 1.0)
    gain = POISSON_SHARE * sigma**2 / mean  # grey levels per counted electron
    out = rng.poisson(img / gain) * gain
    out += rng.normal(0.0, np.sqrt(1 - POISSON_SHARE) * sigma, img.shape)
    params |= {"noise_std": sigma, "snr": _std(img) / sigma}
    return artifact_result(inp, out, params)


def curtaining(
    image: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    voxel_size_nm: Any,
    severity: float,
    seed: int,
) -> Damaged:
    """Add FIB curtaining: vertical stripes along the milling direction.

    The ion beam mills each new face from the top of the image (along y): harder or
    softer material, or surface topography, makes it mill unevenly, and the face gets
    grooves and ridges that run all the way down, imaged as streaks of varying
    brightness, constant along y, varying across x, and persisting over a few slices as
    the milling advances in z. The model adds, to every slice, a brightness profile
    across x: a sum of stripe widths between 20 and 200 nm, amplitude up to
    :data:`CURTAIN_AMPLITUDE_MAX` of the image's standard deviation, evolving smoothly
    over :data:`CURTAIN_PERSIST_NM` nm of z.

    Parameters
    ----------
    image : (Z, Y, X) ndarray of uint8
        Slices are planes of constant z; y is the milling direction.
    labels : (Z, Y, X) ndarray of int, optional
        Passed through unchanged.
    voxel_size_nm : float or (float, float, float)
    severity : float
        In [0, 1]: 0 none, 0.5 stripes at 40 % of the tissue contrast, 1 at 80 %.
    seed : int

    Returns
    -------
    Damaged
        ``params`` holds ``amplitude`` (RMS of the stripes, grey levels).

    Raises
    ------
    ValueError
        If ``severity`` is outside [0, 1], ``seed`` negative, a voxel size not positive,
        or ``image`` and ``labels`` differ in shape (the message names the parameter).
    TypeError
        If ``image`` is not uint8, ``labels`` neither None nor integer, or a parameter
        has the wrong type.

    References
    ----------
    .. [1] L. A. Giannuzzi, F. A. Stevie (2005), Introduction to Focused Ion Beams,
       Springer (curtaining from differential milling).
    .. [2] C. S. Xu et al. (2017), Enhanced FIB-SEM systems for large-volume 3D imaging,
       eLife 6:e25916.
    """
    inp, params = prepare_artifact("curtaining", image, labels, voxel_size_nm, severity, seed)
    if inp.severity == 0:
        return unchanged(inp, params)
    img = inp.image.astype(np.float32)
    nz, _, nx = img.shape
    vz, _, vx = inp.voxel_size_nm
    rng = stream(inp.seed, _CURTAIN, 0)
    profile = np.zeros((nz, nx), np.float32)
    for width in np.geomspace(*CURTAIN_WIDTH_NM, num=4):
        noise_zx = rng.standard_normal((nz, nx)).astype(np.float32)
        band = ndi.gaussian_filter(noise_zx, (CURTAIN_PERSIST_NM / vz, width / vx), mode="wrap")
        profile += band / max(float(band.std()), 1e-6)
    profile -= profile.mean(axis=1, keepdims=True)  # stripes, not slice-to-slice flicker
    profile /= max(float(profile.std()), 1e-6)
    amplitude = inp.severity * CURTAIN_AMPLITUDE_MAX * _std(img)
    out = img + amplitude * profile[:, None, :]
    params |= {"amplitude": float(amplitude)}
    return artifact_result(inp, out, params)


def contrast_inversion(
    image: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    voxel_size_nm: Any,
    severity: float,
    seed: int,
) -> Damaged:
    """Invert the contrast polarity (``255 - image``): bright membranes, dark background.

    Backscattered-electron imaging of heavy-metal-stained blocks (serial block-face SEM,
    many FIB-SEM setups) shows membranes *bright* unless the stack is inverted to the
    TEM-like convention. Polarity is all or nothing: any ``severity > 0`` inverts, 0
    returns the input. ``voxel_size_nm`` and ``seed`` are checked but not used.

    Parameters
    ----------
    image : (Z, Y, X) ndarray of uint8
    labels : (Z, Y, X) ndarray of int, optional
        Passed through unchanged.
    voxel_size_nm : float or (float, float, float)
    severity : float
        0 unchanged, anything above 0 inverted.
    seed : int

    Returns
    -------
    Damaged

    Raises
    ------
    ValueError
        If ``severity`` is outside [0, 1], ``seed`` negative, a voxel size not positive,
        or ``image`` and ``labels`` differ in shape (the message names the parameter).
    TypeError
        If ``image`` is not uint8, ``labels`` neither None nor integer, or a parameter
        has the wrong type.

    References
    ----------
    .. [1] W. Denk, H. Horstmann (2004), Serial block-face scanning electron microscopy to
       reconstruct three-dimensional tissue nanostructure, PLoS Biol. 2:e329.
    """
    inp, params = prepare_artifact(
        "contrast_inversion", image, labels, voxel_size_nm, severity, seed
    )
    if inp.severity == 0:
        return unchanged(inp, params)
    return artifact_result(inp, 255.0 - inp.image.astype(np.float32), params | {"inverted": True})
