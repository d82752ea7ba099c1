"""Indistinct neuropil: membranes and fine texture fade, coarse intensity stays."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

from . import _render as r
from ._common import Damaged, check_inputs, stream, unchanged

_FAMILY = 4
_PATCHES, _NOISE = range(2)

#: Scale (Gaussian sigma, nm) separating coarse intensity, which is kept, from fine detail.
COARSE_NM = 50.0
#: Fraction of the fine detail lost at severity 1, near membranes and elsewhere.
FADE_MEMBRANE_MAX = 1.0
FADE_TEXTURE_MAX = 0.5
#: Correlation length of the patchiness of the fading (nm).
PATCH_NM = 300.0


def indistinct_neuropil(
    image: np.ndarray,
    *,
    labels: np.ndarray,
    voxel_size_nm: Any,
    severity: float,
    seed: int,
) -> Damaged:
    """Simulate indistinct neuropil: boundaries fade, fine contrast is lost.

    Where lipids were extracted or proteins degraded before fixation, osmium has little
    to bind: membranes stain faintly, the cytoplasm homogenises, and the neuropil looks
    like a grey felt in which processes cannot be told apart, though the coarse pattern
    of light and dark (cell bodies, mitochondria clusters) remains.

    The image is split into a coarse part (Gaussian, sigma :data:`COARSE_NM` nm) and the
    fine rest. The fine rest is attenuated by up to :data:`FADE_MEMBRANE_MAX` within
    15 nm of a cell boundary and :data:`FADE_TEXTURE_MAX` elsewhere (ramping between the
    two over 15-45 nm), both scaled by ``severity`` and by smooth random patches
    (correlation :data:`PATCH_NM` nm, between 0.6 and 1.4 of the mean) so the loss is
    uneven. Near membranes the coarse part is also pulled towards the cytoplasm around
    them (normalized convolution), by the same factor, so that the blurred membrane does
    not survive as a soft dark line; away from membranes it is kept. The imaging noise
    that the attenuation removed is put back with the same standard deviation: the
    tissue loses contrast, the microscope does not. Labels are unchanged: the cells are
    still there, only their boundaries cannot be seen.

    Parameters
    ----------
    image : (Z, Y, X) ndarray of uint8
        EM image, membranes dark (TEM-like polarity).
    labels : (Z, Y, X) ndarray of int
        Dense cell ids of ``image``.
    voxel_size_nm : float or (float, float, float)
        Voxel size (z, y, x) in nm.
    severity : float
        In [0, 1]. 0 returns the input unchanged; 0.5 halves the membrane contrast;
        1 removes it (and half of the fine texture): boundaries cannot be followed.
    seed : int
        The same seed gives the same output.

    Returns
    -------
    Damaged
        ``params`` holds ``fade_membrane``, ``fade_texture`` (mean attenuations) and
        ``coarse_nm``.

    Raises
    ------
    ValueError
        If ``severity`` is outside [0, 1], ``seed`` negative, a voxel size not positive,
        or ``image`` and ``labels`` differ in shape (the message names the parameter).
    TypeError
        If ``image`` is not uint8, ``labels`` not integer, or a parameter has the wrong
        type.

    Warns
    -----
    UserWarning
        If the image looks inverted (cell boundaries brighter than cytoplasm).

    References
    ----------
    .. [1] Garrood et al. (2025), Evaluating ultrastructural preservation quality in banked
       brain tissue, Free Neuropathology 6:13 (degraded cellular material).
    .. [2] J. R. Glausier, A. Konanur, D. A. Lewis (2019), Factors affecting
       ultrastructural quality in the prefrontal cortex of the postmortem human brain,
       J. Histochem. Cytochem. 67:185-202.

    Examples
    --------
    >>> from emqc.synth import synthetic_neuropil
    >>> from emqc.damage import indistinct_neuropil
    >>> vol = synthetic_neuropil((16, 48, 48), voxel_size_nm=10.0, seed=0)
    >>> out = indistinct_neuropil(vol.image, labels=vol.cell_ids, voxel_size_nm=10.0,
    ...                           severity=1.0, seed=1)
    >>> bool(out.image[vol.membrane].mean() > vol.image[vol.membrane].mean())
    True
    """
    inp = check_inputs(image, labels, voxel_size_nm, severity, seed)
    s, voxel, seed = inp.severity, inp.voxel_size_nm, inp.seed
    params = inp.base_params("indistinct_neuropil")
    if s == 0:
        return unchanged(inp, params)
    img = inp.image.astype(np.float32)
    shape = img.shape
    levels = r.measure_levels(inp.image, inp.labels, voxel)
    coarse = ndi.gaussian_filter(img, r.sigma_vox(COARSE_NM, voxel), mode="reflect")
    fine = img - coarse
    # 1. How near a membrane: 1 within 15 nm of a boundary, ramping to 0 at 45 nm.
    edge = r.boundaries(inp.labels)
    half = r.MEMBRANE_HALF_NM
    near = sum(r.grow(edge, k * half, voxel).astype(np.float32) for k in (1, 2, 3)) / 3
    # 2. Attenuation of the fine part: strongest at membranes, uneven in patches.
    patches = r.smooth_field(shape, voxel, PATCH_NM, stream(seed, _FAMILY, _PATCHES))
    patchy = s * (1.0 + 0.4 * np.tanh(patches))
    fade = np.clip(
        (FADE_TEXTURE_MAX + (FADE_MEMBRANE_MAX - FADE_TEXTURE_MAX) * near) * patchy, 0.0, 1.0
    )
    # 3. The membranes' share of the coarse part is pulled to the cytoplasm around them.
    cyto = r.local_mean(img, ~r.grow(edge, 3 * half, voxel), voxel, COARSE_NM)
    coarse += np.clip(near * patchy, 0.0, 1.0) * (cyto - coarse)
    out = coarse + (1.0 - fade) * fine
    # Give back the imaging noise the attenuation took away: sqrt(1 - (1 - a)^2) of it.
    lost = np.sqrt(np.clip(1.0 - (1.0 - fade) ** 2, 0.0, 1.0))
    out += lost * r.texture(shape, voxel, levels.noise, stream(seed, _FAMILY, _NOISE))
    boundary = near == 1
    params |= {
        "fade_membrane": float(fade[boundary].mean()) if boundary.any() else 0.0,
        "fade_texture": float(fade[~boundary].mean()) if (~boundary).any() else 0.0,
        "coarse_nm": COARSE_NM,
    }
    labels_out = inp.labels
    return Damaged(r.to_uint8(out), labels_out, labels_out == 0, None, params)
