"""Imaging quality of a block: noise, focus, curtaining, charging. Never a preservation score."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import InputError
from ._common import MetricResult, check_volume, check_voxel_size

__all__ = ["ImagingQuality", "imaging_quality", "noise_sigma", "THRESHOLDS"]

#: Flag thresholds (see :func:`imaging_quality`): ``(flag, poor)`` per measure.
THRESHOLDS = {
    "snr": (2.0, 0.5),  # below: noisy / too poor
    "blur_effect": (0.6, 0.8),  # above: blurred / too poor
    "stripe_ratio": (1.5, 5.0),  # above: curtaining / too poor
    "charging": (0.45, 0.75),  # above: charging / too poor
    "saturated_fraction": (0.05, 0.25),  # above: saturated / too poor
}
#: Slices (evenly spaced in z) that the per-slice measures look at.
_MAX_SLICES = 16
#: Physical size (nm) of Crété-Roffet's re-blurring filter: 11 pixels at 8 nm.
_REBLUR_NM = 88.0


@dataclass(frozen=True, kw_only=True)
class ImagingQuality(MetricResult):
    """Result of :func:`imaging_quality` (acquisition quality, not preservation).

    Attributes
    ----------
    score : float
        Geometric mean of the four qualities ``snr**2 / (1 + snr**2)``,
        ``1 - blur_effect``, ``1 / stripe_ratio`` and ``1 - charging``: 1 for a clean,
        sharp, even image. NaN if not valid (constant image).
    noise_sigma : float
        Noise standard deviation (grey levels), robust wavelet estimate.
    snr : float
        Signal / noise standard deviation, ``sqrt(max(var - sigma**2, 0)) / sigma``
        (capped at 1000).
    blur_effect : float
        Crété-Roffet blur measure, 0 sharp to 1 blurred (median over slices).
    stripe_ratio : float
        Power of the axis-constant pattern over that of neighbouring frequencies (1:
        none); ``stripe_axis`` says which image axis the stripes run along.
    stripe_axis : str
        ``"y"`` (column-constant: stripes run along y) or ``"x"``.
    charging : float
        Share of the block's variance explained by a smooth (quadratic) trend.
    saturated_fraction : float
        Share of voxels at the lowest or highest value the dtype holds.
    noisy, blurred, curtaining, charged, saturated : bool
        Each measure past its flag threshold in :data:`THRESHOLDS`.
    too_poor_to_judge : bool
        Any measure past its "poor" threshold in :data:`THRESHOLDS`, or a constant
        image: the preservation scores of this block should not be trusted.
    """

    name: ClassVar[str] = "imaging_quality"

    noise_sigma: float = math.nan
    snr: float = math.nan
    blur_effect: float = math.nan
    stripe_ratio: float = math.nan
    stripe_axis: str = "y"
    charging: float = math.nan
    saturated_fraction: float = math.nan
    noisy: bool = False
    blurred: bool = False
    curtaining: bool = False
    charged: bool = False
    saturated: bool = False
    too_poor_to_judge: bool = False


def imaging_quality(raw: Any, *, voxel_size_nm: Any) -> ImagingQuality:
    """Measure how well a block was imaged: noise, focus, curtaining stripes, charging.

    Imaging artifacts are not preservation damage: this result is reported beside the
    preservation scores and never mixed into them; it flags blocks too poor to judge.
    Each measure is taken on up to 16 z slices evenly spaced through the block (FIB-SEM
    images slice by slice), or on the whole block where it is cheap:

    1. **Noise**: ``sigma = median(|d - median(d)|) / 0.6745`` over the finest diagonal
       Haar wavelet coefficients ``d`` of each slice (Donoho's MAD estimator [1]_, the
       one ``skimage.restoration.estimate_sigma`` uses, without PyWavelets).
       ``snr = sqrt(max(var(raw) - sigma**2, 0)) / sigma``.
    2. **Focus**: the blur effect of Crété-Roffet et al. [2]_
       (``skimage.measure.blur_effect``) per slice with an 88 nm re-blurring filter;
       noise makes an image look sharper, so compare it between blocks of similar SNR.
    3. **Curtaining**: FIB milling leaves stripes that are constant along one image
       axis [3]_. In the power spectrum ``P(ky, kx)`` of each Hann-windowed slice, such
       a pattern lies on the line ``ky = 0`` (stripes along y). ``stripe_ratio`` is the
       median over ``kx`` (periods from 2 pixels to a quarter of the slice) of the power
       in ``|ky| <= 1`` over that in ``3 <= |ky| <= 6``, averaged spectra over the
       slices; the larger of the two orientations is kept. 1: no stripes.
    4. **Charging**: charge build-up brightens broad areas smoothly [4]_, at the scale
       of micrometres, so within a block it is a smooth trend. ``charging`` is the
       share of the block's variance explained by a quadratic polynomial in (z, y, x)
       (least squares on means of about 8^3 cells): neuropil varies at the scale of its
       processes and leaves little to such a trend. Saturated voxels are counted apart.

    A flag is set when a measure passes its first threshold in :data:`THRESHOLDS`;
    ``too_poor_to_judge`` when one passes its second (SNR < 0.5: noise twice the
    signal; blur effect > 0.8; stripes 5 times the background; charging > 0.75; a
    quarter of the voxels saturated) or the image is constant. The thresholds were set
    on 96^3 crops of the real medulla FIB-SEM cube at 10 nm, where none fires (SNR 6-8,
    blur effect 0.40-0.47, stripe ratio at most 1.26, charging at most 0.26), degraded
    step by step with noise, blur, stripes and brightness trends
    (``tests/test_imaging_quality.py``).

    Parameters
    ----------
    raw : (Z, Y, X) ndarray
        EM image of the block, any real dtype (uint8 as emqc stores it).
    voxel_size_nm : float or (float, float, float)
        Voxel size (z, y, x) in nm.

    Returns
    -------
    ImagingQuality
        ``score`` 1 for a clean image, toward 0 as it degrades; NaN with
        ``valid=False`` and ``too_poor_to_judge`` for a constant block.

    Raises
    ------
    ValueError
        If ``raw`` is not 3-D, is smaller than 8 x 8 in y, x, or holds NaN.
    TypeError
        If ``raw`` is not numeric.

    References
    ----------
    .. [1] Donoho DL, Johnstone IM (1994). Ideal spatial adaptation by wavelet
       shrinkage. Biometrika 81:425-455.
    .. [2] Crété-Roffet F, Dolmière T, Ladret P, Nicolas M (2007). The blur effect:
       perception and estimation with a new no-reference perceptual blur metric. Proc
       SPIE 6492:64920I.
    .. [3] Münch B, Trtik P, Marone F, Stampanoni M (2009). Stripe and ring artifact
       removal with combined wavelet-Fourier filtering. Opt Express 17:8567-8591.
    .. [4] Xu CS et al. (2017). Enhanced FIB-SEM systems for large-volume 3D imaging.
       eLife 6:e25916.

    Examples
    --------
    >>> import numpy as np
    >>> from emqc.metrics import imaging_quality
    >>> rng = np.random.default_rng(0)
    >>> img = rng.normal(128, 30, (8, 64, 64)).clip(0, 255).astype(np.uint8)
    >>> q = imaging_quality(img, voxel_size_nm=8)
    >>> round(q.noise_sigma, -1), q.noisy, q.too_poor_to_judge  # pure noise: no signal
    (30.0, True, True)
    """
    image = check_volume("raw", raw)
    voxel = check_voxel_size(voxel_size_nm)
    if image.dtype == bool:
        raise TypeError("raw must be a greyscale image, got a boolean array")
    if min(image.shape[1:]) < 8:
        raise InputError(f"raw must be at least 8 x 8 in (y, x), got shape {image.shape}")
    data = image.astype(np.float64)
    if image.dtype.kind == "f" and not np.isfinite(data).all():  # integers always are
        raise InputError("raw holds NaN or infinite values")
    slices = data[_slice_picks(image.shape[0])]

    saturated = _saturated_fraction(image)
    total_var = float(data.var())
    if total_var == 0:
        return ImagingQuality(
            score=math.nan,
            valid=False,
            flags=("constant",),
            noise_sigma=0.0,
            saturated_fraction=saturated,
            saturated=saturated > THRESHOLDS["saturated_fraction"][0],
            too_poor_to_judge=True,
        )

    sigma = _noise_sigma(slices, integer=np.issubdtype(image.dtype, np.integer))
    signal = math.sqrt(max(total_var - sigma**2, 0.0))
    snr = min(1000.0, signal / sigma) if sigma > 0 else 1000.0
    blur = _blur(slices, voxel)
    stripes, axis = _stripe_ratio(slices)
    charging = _charging(data, total_var)

    values = {
        "snr": snr,
        "blur_effect": blur,
        "stripe_ratio": stripes,
        "charging": charging,
        "saturated_fraction": saturated,
    }
    past = {k: _past(k, v, 0) for k, v in values.items()}
    poor = any(_past(k, v, 1) for k, v in values.items())
    qualities = (snr**2 / (1 + snr**2), 1 - blur, 1 / stripes, 1 - charging)
    score = math.prod(max(q, 0.0) for q in qualities) ** (1 / len(qualities))
    return ImagingQuality(
        score=float(np.clip(score, 0, 1)),
        flags=tuple(name for name, hit in past.items() if hit),
        noise_sigma=sigma,
        snr=snr,
        blur_effect=blur,
        stripe_ratio=stripes,
        stripe_axis=axis,
        charging=charging,
        saturated_fraction=saturated,
        noisy=past["snr"],
        blurred=past["blur_effect"],
        curtaining=past["stripe_ratio"],
        charged=past["charging"],
        saturated=past["saturated_fraction"],
        too_poor_to_judge=poor,
    )


def noise_sigma(image: np.ndarray) -> float:
    """Noise standard deviation of a (Z, Y, X) image (step 1 of :func:`imaging_quality`).

    Donoho's MAD estimator on the finest diagonal Haar coefficients of up to 16
    z slices evenly spaced through the block, in the image's own units.

    Examples
    --------
    >>> import numpy as np
    >>> from emqc.metrics import noise_sigma
    >>> img = np.random.default_rng(0).normal(100.0, 5.0, (4, 64, 64))
    >>> round(noise_sigma(img))
    5
    """
    data = np.asarray(image)
    if data.ndim != 3 or min(data.shape[1:]) < 2:
        raise ValueError(
            f"image must be a (Z, Y, X) array of at least 2 x 2 in (y, x), got {data.shape}"
        )
    return _noise_sigma(
        data[_slice_picks(data.shape[0])].astype(np.float64),
        integer=np.issubdtype(data.dtype, np.integer),
    )


def _slice_picks(n_z: int) -> np.ndarray:
    """Up to :data:`_MAX_SLICES` z indices evenly spaced through ``n_z`` slices."""
    return np.unique(np.linspace(0, n_z - 1, min(_MAX_SLICES, n_z))).astype(int)


def _past(name: str, value: float, level: int) -> bool:
    limit = THRESHOLDS[name][level]
    return value < limit if name == "snr" else value > limit


def _saturated_fraction(image: np.ndarray) -> float:
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        return float(np.mean((image == info.min) | (image == info.max)))
    return 0.0


def _noise_sigma(slices: np.ndarray, *, integer: bool) -> float:
    """Median over slices of the MAD of the finest diagonal Haar coefficients."""
    h, w = (slices.shape[1] // 2) * 2, (slices.shape[2] // 2) * 2
    s = slices[:, :h, :w]
    # Orthonormal 2-D Haar: HH = (a - b - c + d) / 2 keeps the noise variance.
    d = (s[:, 0::2, 0::2] - s[:, 0::2, 1::2] - s[:, 1::2, 0::2] + s[:, 1::2, 1::2]) / 2
    if integer:
        # Integer images put d on a 0.5 grid, where a median jumps from step to step; a
        # fixed-seed dither of one step spreads the ties (it adds variance 0.02).
        d = d + np.random.default_rng(0).uniform(-0.25, 0.25, d.shape)
    flat = d.reshape(len(d), -1)
    mad = np.median(np.abs(flat - np.median(flat, axis=1, keepdims=True)), axis=1)
    return float(np.median(mad) / 0.6745)


def _blur(slices: np.ndarray, voxel: tuple[float, ...]) -> float:
    from skimage.measure import blur_effect

    h_size = max(3, round(_REBLUR_NM / min(voxel[1:])))
    values = [blur_effect(s, h_size=h_size) for s in slices if s.std() > 0]
    return float(np.median(values)) if values else 1.0


def _stripe_ratio(slices: np.ndarray) -> tuple[float, str]:
    """Power in the axis-constant band over the neighbouring band, for both orientations."""
    ny, nx = slices.shape[1:]
    window = np.outer(np.hanning(ny), np.hanning(nx))
    centred = slices - slices.mean(axis=(1, 2), keepdims=True)
    power = np.mean(np.abs(np.fft.fft2(centred * window)) ** 2, axis=0)
    best, axis = 1.0, "y"
    for name, p in (("y", power), ("x", power.T)):
        n_line, n_along = p.shape  # rows: frequency across the stripes' constant axis
        if n_line < 14 or n_along < 8:
            continue
        band = np.abs(np.fft.fftfreq(n_line) * n_line)
        k = np.abs(np.fft.fftfreq(n_along) * n_along)
        columns = (k >= 4) & (k <= n_along // 2)  # periods: a quarter slice to 2 pixels
        line = p[band <= 1][:, columns].mean(axis=0)
        neighbours = p[(band >= 3) & (band <= 6)][:, columns].mean(axis=0)
        ratio = float(np.median(line / np.maximum(neighbours, 1e-12)))
        if ratio > best:
            best, axis = ratio, name
    return best, axis


def _charging(data: np.ndarray, total_var: float) -> float:
    """Share of the block's variance (``total_var``) explained by a quadratic trend in (z, y, x)."""
    # Fit on means of about 8^3 cells (the trend is smooth; the fit stays cheap).
    factors = [max(1, n // 8) for n in data.shape]
    shape = [n // f for n, f in zip(data.shape, factors, strict=True)]
    trimmed = data[tuple(slice(0, n * f) for n, f in zip(shape, factors, strict=True))]
    pooled = trimmed.reshape([x for n, f in zip(shape, factors, strict=True) for x in (n, f)])
    pooled = pooled.mean(axis=(1, 3, 5))
    axes = [np.linspace(-1, 1, n) if n > 1 else np.zeros(1) for n in shape]
    z, y, x = (a.ravel() for a in np.meshgrid(*axes, indexing="ij"))
    terms = np.stack([np.ones_like(z), z, y, x, z * z, y * y, x * x, z * y, z * x, y * x], 1)
    coef, *_ = np.linalg.lstsq(terms, pooled.ravel(), rcond=None)
    trend = terms @ coef
    return float(min(1.0, trend.var() / total_var))
