"""One block's scores: probability maps → the three preservation scores + imaging quality.

The preservation scores (:mod:`emqc.metrics`) read only the networks' probability
maps, on the grid the maps come on: the networks' working grid by default (10 nm
for FIB-SEM), whose voxel size follows from the block's physical extent and the
maps' shape; imaging quality reads the raw block at its own voxels and is reported beside them, never mixed
in. A score whose map is missing (a network without that head) or that cannot be
judged on this block is NaN with a flag, so a table keeps every row and a summary
counts what it could not score instead of hiding it. Imaging quality only ever
decides *whether* a score is judged, never its value: synapse traceability is not
judged on a block noisier than :data:`SYNAPSE_MIN_SNR`, where noise, not damage,
hides synapses [1]_, nor membrane integrity and edema on a block more blurred than
:data:`MEMBRANE_MAX_BLUR`, where blur, not damage, smears membranes.

References
----------
.. [1] A. Rose (1948), The sensitivity performance of the human eye on an absolute
   scale, J. Opt. Soc. Am. 38:196-208 (an object is seen when its contrast-to-noise
   ratio, summed over its area, exceeds about 5).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._resample import resample_linear
from ..metrics import (
    REFERENCE_SYNAPSES_PER_UM3,
    edema,
    imaging_quality,
    membrane_integrity,
    synapse_traceability,
)
from ..polarity import POLARITIES, Polarity, Prediction, inverted

__all__ = ["MEMBRANE_MAX_BLUR", "SCORES", "SYNAPSE_MIN_SNR", "BlockScores", "score_block"]

#: The preservation scores, in table order.
SCORES = ("membrane_integrity", "edema", "synapse_traceability")
#: Least signal-to-noise ratio (imaging quality's ``snr``, per voxel of the block) at which
#: synapse traceability is judged. Synapses are recognised by their vesicle clouds (40 nm
#: vesicles, a few voxels each) and dense membranes; at a voxel SNR near 1 those sink to
#: Rose's detection limit (Rose 1948) and the network sees fewer of them, which would read as lost
#: synapses. Chosen on the medulla cube's *training* part (8 blocks, simulated noise, seed 2):
#: synapse traceability moved by 0.067 at a mean block SNR of 1.20 and by 0.110 at 1.07.
#: Below it the score is NaN with the flag ``synapse_traceability:too_noisy`` (its
#: sub-measures stay in ``details``); membrane integrity and edema are still judged.
SYNAPSE_MIN_SNR = 1.2
#: Largest blur (imaging quality's ``blur_effect``, Crete-Roffet) at which membrane integrity
#: and edema are judged. Membranes are about 8 nm thick and the gaps between cells some
#: 20 nm: once the image is smeared over several times that, a membrane gap or a widened
#: extracellular space cannot be told from blur, and the maps drift (defocused blocks read
#: as edematous). Chosen on the medulla cube's *training* part (8 blocks, seed 2): every
#: block under every simulated damage and under the other artifacts, 20 nm voxels
#: included, measured at most 0.607; in-plane defocus of 17.5 nm sigma gave 0.625-0.687
#: (edema's worst block moved by 0.064) and of 20 nm 0.660-0.717 (worst block 0.193).
#: Above it both scores are NaN with the flag ``too_blurred``.
MEMBRANE_MAX_BLUR = 0.65

Predict = Callable[[np.ndarray, tuple[float, float, float]], Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class BlockScores:
    """Scores of one block.

    Attributes
    ----------
    membrane_integrity, edema, synapse_traceability : float
        In [0, 1], or NaN when not judged (see ``flags``). Edema is 0 for well-fixed tissue.
    imaging_quality : float
        In [0, 1]; acquisition, not preservation.
    too_poor_to_judge : bool
        The image is too poor for the preservation scores to mean anything.
    flags : tuple of str
        ``"<score>:<flag>"`` for every flag any metric raised.
    details : dict
        Every metric's sub-measures (``to_dict()``), by metric name.
    """

    membrane_integrity: float
    edema: float
    synapse_traceability: float
    imaging_quality: float
    too_poor_to_judge: bool
    flags: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """Flat record for a table (flags joined by ``;``)."""
        return {
            **{name: getattr(self, name) for name in SCORES},
            "imaging_quality": self.imaging_quality,
            "too_poor_to_judge": self.too_poor_to_judge,
            "flags": ";".join(self.flags),
        }


def score_block(
    raw: np.ndarray,
    *,
    voxel_size_nm: tuple[float, float, float],
    maps: Mapping[str, np.ndarray] | None = None,
    predict: Predict | None = None,
    synapse_reference_per_um3: float = REFERENCE_SYNAPSES_PER_UM3,
    polarity: str = "auto",
) -> BlockScores:
    """Score one block.

    Parameters
    ----------
    raw : (Z, Y, X) ndarray of uint8
        The block's voxels.
    voxel_size_nm : (3,) tuple of float
    maps : mapping of str to (Z', Y', X') float32 ndarray, optional
        Probability maps ``"boundary"``, ``"extracellular"``, ``"synapse"``, all of one
        shape, covering the block: on its grid, or on another (the metrics then use
        voxels of ``raw.shape * voxel_size_nm / map shape``); computed with
        ``predict`` when not given.
    predict : callable, optional
        ``predict(raw, voxel_size_nm) -> maps`` (default: the committed networks on
        their working grid, :func:`emqc.models._methods.predict_working_grid`).
    synapse_reference_per_um3 : float, optional
        Visible synapses per µm³ in well-preserved tissue of this kind (see
        :func:`emqc.metrics.synapse_traceability`).
    polarity : {"auto", "dark", "bright"}, optional
        Contrast polarity of ``raw``. ``"dark"``: membranes darker than cytoplasm
        (TEM-like), used as recorded; ``"bright"``: inverted (``255 - raw``) before
        anything reads it; ``"auto"`` (default): the default networks judge it per
        block and invert a bright-membrane block (:mod:`emqc.polarity`;
        flags ``imaging_quality:inverted_contrast`` or ``imaging_quality:polarity_uncertain``).
        A custom ``predict`` or given ``maps`` see the block as recorded under ``"auto"``.

    Returns
    -------
    BlockScores
    """
    if raw.ndim != 3:
        raise ValueError(f"raw must be a (Z, Y, X) block, got shape {raw.shape}")
    if polarity not in POLARITIES:
        raise ValueError(f"polarity must be one of {', '.join(POLARITIES)}, got {polarity!r}")
    settled = None
    if polarity == "bright":
        raw, settled = inverted(raw), Polarity(inverted=True, source="declared")
    if maps is None:
        if predict is None:
            from ..models._methods import predict_working_grid

            maps = predict_working_grid(raw, voxel_size_nm, detect_polarity=polarity == "auto")
            if isinstance(maps, Prediction) and maps.polarity is not None:
                settled = maps.polarity
                if settled.inverted:
                    raw = inverted(raw)
        else:
            maps = predict(raw, voxel_size_nm)
    raw_vox = tuple(float(v) for v in voxel_size_nm)
    vox, raw_on_maps = _map_grid(raw, raw_vox, maps)
    flags: list[str] = []
    details: dict[str, Any] = {}
    values: dict[str, float] = {}

    def record(name: str, result: Any) -> None:
        values[name] = float(result.score)
        details[name] = result.to_dict()
        flags.extend(f"{name}:{f}" for f in result.flags)

    boundary = maps.get("boundary")
    if boundary is None:
        values["membrane_integrity"] = math.nan
        flags.append("membrane_integrity:no_boundary_map")
    else:
        record("membrane_integrity", membrane_integrity(boundary, voxel_size_nm=vox))
    if "extracellular" in maps:
        record("edema", edema(maps["extracellular"], voxel_size_nm=vox, raw=raw_on_maps))
    else:
        values["edema"] = math.nan
        flags.append("edema:no_extracellular_map")
    if "synapse" in maps and boundary is not None:
        record(
            "synapse_traceability",
            synapse_traceability(
                maps["synapse"],
                boundary,
                voxel_size_nm=vox,
                reference_synapses_per_um3=synapse_reference_per_um3,
            ),
        )
    else:
        values["synapse_traceability"] = math.nan
        flags.append("synapse_traceability:no_synapse_map")
    quality = imaging_quality(raw, voxel_size_nm=raw_vox)
    details["imaging_quality"] = quality.to_dict()
    flags.extend(f"imaging_quality:{f}" for f in quality.flags)
    # Validity gates: imaging quality decides whether a score is judged, never its value.
    gates = (
        ("synapse_traceability", quality.snr < SYNAPSE_MIN_SNR, "too_noisy"),
        ("membrane_integrity", quality.blur_effect > MEMBRANE_MAX_BLUR, "too_blurred"),
        ("edema", quality.blur_effect > MEMBRANE_MAX_BLUR, "too_blurred"),
    )
    for name, failed, flag in gates:
        if failed and not math.isnan(values[name]):
            values[name] = math.nan
            flags.append(f"{name}:{flag}")
    if settled is not None:
        details["polarity"] = settled.to_dict()
        if settled.inverted:
            flags.append("imaging_quality:inverted_contrast")
        if settled.uncertain:
            flags.append("imaging_quality:polarity_uncertain")
    return BlockScores(
        membrane_integrity=values["membrane_integrity"],
        edema=values["edema"],
        synapse_traceability=values["synapse_traceability"],
        imaging_quality=float(quality.score),
        too_poor_to_judge=bool(quality.too_poor_to_judge),
        flags=tuple(flags),
        details=details,
    )


def _map_grid(
    raw: np.ndarray, voxel_size_nm: tuple[float, float, float], maps: Mapping[str, np.ndarray]
) -> tuple[tuple[float, float, float], np.ndarray]:
    """Voxel size of the maps' grid, and ``raw`` on that grid (for edema's pale-void check)."""
    shapes = {np.shape(m) for m in maps.values()}
    if len(shapes) > 1:
        raise ValueError(f"the maps must share one shape, got {sorted(shapes)}")
    shape = shapes.pop() if shapes else raw.shape
    if len(shape) != 3:
        raise ValueError(f"maps must be (Z, Y, X) volumes, got shape {shape}")
    if shape == raw.shape:
        return voxel_size_nm, raw
    vox = tuple(n * v / m for n, v, m in zip(raw.shape, voxel_size_nm, shape, strict=True))
    return vox, resample_linear(raw, shape)
