"""Parameters of the *synthetic* neuropil, in nanometres (never voxels).

Synthetic data only: a seeded stand-in for tests and demos, never real tissue.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

_RANGES = (
    "axon_diameter_nm",
    "dendrite_diameter_nm",
    "mitochondria_diameter_nm",
    "mitochondria_length_nm",
    "bouton_diameter_nm",
)
_FRACTIONS = ("dendrite_fraction", "extracellular_fraction", "mitochondria_fraction")
_NON_NEGATIVE = ("synapse_density_per_um3", "psf_fwhm_nm", "noise_std")


def check_number(name: str, value: Any) -> float:
    """``value`` as a float; TypeError unless a real number, ValueError unless finite."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class NeuropilParams:
    """Physical parameters (nanometres, never voxels) of the *synthetic* neuropil.

    Defaults give well-fixed mammalian cortex as seen at 8-10 nm; the numbers are
    plausible stand-ins, not measurements. ``(lo, hi)`` pairs are drawn uniformly.

    Parameters
    ----------
    axon_diameter_nm, dendrite_diameter_nm : (float, float)
        Diameters of thin axons (150-300 nm) and dendrites (0.6-1.5 um).
    dendrite_fraction : float
        Share of the neurite volume that is dendrite, in [0, 1).
    persistence_length_nm : float
        Persistence length of the neurite skeletons (how straight they run).
    membrane_thickness_nm : float
        Width of the dark line between two cells (two membranes and a narrow cleft).
    extracellular_fraction : float
        Volume fraction of extracellular space outside the vessel, in [0, 1): a few
        percent after chemical fixation, 15-20 % after cryo-fixation [1]_; damage (edema)
        raises it. Met exactly unless the volume has too few cell boundaries (one cell).
    mitochondria_diameter_nm, mitochondria_length_nm : (float, float)
        Size of the mitochondria; they sit only in neurites wide enough to hold them.
    mitochondria_fraction : float
        Volume fraction of mitochondria, in [0, 1).
    synapse_density_per_um3 : float
        Synapses per cubic micrometre; cortex has about 0.7-1 [2]_, [3]_.
    bouton_diameter_nm : (float, float)
        Size of the presynaptic swellings of axons.
    vesicle_cloud_diameter_nm, vesicle_diameter_nm : float
        Size of the vesicle cloud behind each active zone and of a vesicle (~40 nm) [4]_.
    psd_thickness_nm, psd_length_nm : float
        Thickness (30-50 nm) and length (~250 nm) of the postsynaptic density [4]_.
    vessel : bool
        Whether a blood vessel runs through the volume.
    vessel_diameter_nm, vessel_wall_nm : float
        Lumen diameter (a capillary, ~5 um) and endothelial wall thickness; both are
        clipped so that the vessel takes at most 60 % of the volume's smallest extent.
    texture_nm : float
        Feature size of the smooth intracellular texture.
    psf_fwhm_nm : float
        Full width at half maximum of the Gaussian point-spread function (0: none).
    noise_std : float
        Standard deviation of the imaging noise in grey levels, after the blur.

    Raises
    ------
    ValueError
        If a size is not positive, a ``(lo, hi)`` pair has ``lo > hi``, a fraction is
        outside [0, 1), or a number is not finite; the message names the parameter.
    TypeError
        If a value is not a number (``vessel``: not a bool).

    References
    ----------
    .. [1] Korogod N, Petersen CCH, Knott GW (2015). Ultrastructural analysis of adult
       mouse neocortex comparing aldehyde perfusion with cryo fixation. eLife 4:e05793.
    .. [2] Schüz A, Palm G (1989). Density of neurons and synapses in the cerebral cortex
       of the mouse. J Comp Neurol 286:442-455.
    .. [3] DeFelipe J, Marco P, Busturia I, Merchán-Pérez A (1999). Estimation of the
       number of synapses in the cerebral cortex: methodological considerations.
       Cereb Cortex 9:722-732.
    .. [4] Harris KM, Weinberg RJ (2012). Ultrastructure of synapses in the mammalian
       brain. Cold Spring Harb Perspect Biol 4:a005587.

    Examples
    --------
    >>> from emqc.synth import NeuropilParams
    >>> cryo = NeuropilParams(extracellular_fraction=0.18)
    >>> NeuropilParams.from_dict(cryo.to_dict()) == cryo
    True
    >>> NeuropilParams(membrane_thickness_nm=-5)
    Traceback (most recent call last):
    ...
    ValueError: NeuropilParams.membrane_thickness_nm must be > 0, got -5
    """

    axon_diameter_nm: tuple[float, float] = (150.0, 300.0)
    dendrite_diameter_nm: tuple[float, float] = (600.0, 1500.0)
    dendrite_fraction: float = 0.35
    persistence_length_nm: float = 3000.0
    membrane_thickness_nm: float = 18.0
    extracellular_fraction: float = 0.05
    mitochondria_diameter_nm: tuple[float, float] = (200.0, 500.0)
    mitochondria_length_nm: tuple[float, float] = (500.0, 2000.0)
    mitochondria_fraction: float = 0.05
    synapse_density_per_um3: float = 0.8
    bouton_diameter_nm: tuple[float, float] = (500.0, 900.0)
    vesicle_cloud_diameter_nm: float = 300.0
    vesicle_diameter_nm: float = 40.0
    psd_thickness_nm: float = 40.0
    psd_length_nm: float = 250.0
    vessel: bool = False
    vessel_diameter_nm: float = 5000.0
    vessel_wall_nm: float = 300.0
    texture_nm: float = 30.0
    psf_fwhm_nm: float = 12.0
    noise_std: float = 6.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            name, value = f"NeuropilParams.{f.name}", getattr(self, f.name)
            if f.name == "vessel":
                if not isinstance(value, bool | np.bool_):
                    raise TypeError(f"{name} must be True or False, got {value!r}")
                object.__setattr__(self, f.name, bool(value))
            elif f.name in _RANGES:
                if isinstance(value, str | bytes) or np.ndim(value) != 1 or len(value) != 2:
                    raise TypeError(f"{name} must be a pair (lo, hi) of numbers, got {value!r}")
                lo, hi = (check_number(name, v) for v in value)
                if not 0 < lo <= hi:
                    raise ValueError(f"{name} must satisfy 0 < lo <= hi, got {value!r}")
                object.__setattr__(self, f.name, (lo, hi))
            else:
                number = check_number(name, value)
                if f.name in _FRACTIONS and not 0 <= number < 1:
                    raise ValueError(f"{name} must be in [0, 1), got {value!r}")
                if f.name in _NON_NEGATIVE and number < 0:
                    raise ValueError(f"{name} must be >= 0, got {value!r}")
                if f.name not in _FRACTIONS + _NON_NEGATIVE and number <= 0:
                    raise ValueError(f"{name} must be > 0, got {value!r}")
                object.__setattr__(self, f.name, number)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready ``{name: value}`` (pairs as lists)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NeuropilParams:
        """Inverse of :meth:`to_dict`; missing names take their defaults.

        Raises
        ------
        ValueError
            If ``data`` has a name that is not a parameter.
        """
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"NeuropilParams.from_dict: unknown parameter(s) {unknown}")
        return cls(**data)
