"""Public face of :mod:`emqc.synth`: parameters, the volume record and its generator.

Everything here is *synthetic*: a seeded stand-in for tests and demos, never real tissue.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _geometry as geo
from . import _organelles as org
from ._render import render_image

_RANGES = ("axon_diameter_nm", "dendrite_diameter_nm", "mitochondria_diameter_nm",
           "mitochondria_length_nm", "bouton_diameter_nm")  # fmt: skip
_FRACTIONS = ("dendrite_fraction", "extracellular_fraction", "mitochondria_fraction")
_NON_NEGATIVE = ("synapse_density_per_um3", "psf_fwhm_nm", "noise_std")
# Seed streams: one per step, so changing one parameter leaves the other steps as they were.
_NEURITES, _VESSEL, _SYNAPSES, _ECS, _MITO, _RENDER = range(6)


def _stream(seed: int, step: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(step,)))


def _number(name: str, value: Any) -> float:
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
        Volume fraction of extracellular space, in [0, 1): a few percent after chemical
        fixation, 15-20 % after cryo-fixation [1]_; damage (edema) raises it.
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
                lo, hi = (_number(name, v) for v in value)
                if not 0 < lo <= hi:
                    raise ValueError(f"{name} must satisfy 0 < lo <= hi, got {value!r}")
                object.__setattr__(self, f.name, (lo, hi))
            else:
                number = _number(name, value)
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


@dataclass(frozen=True)
class SynapseRecord:
    """One synthetic synapse: its label in ``synapses``, the two cells, its centre voxel."""

    label: int
    pre_id: int
    post_id: int
    center_voxel: tuple[int, int, int]


@dataclass(frozen=True, eq=False)
class SyntheticNeuropil:
    """A *synthetic* FIB-SEM-like volume and its ground truth (read-only arrays).

    Attributes
    ----------
    image : (Z, Y, X) ndarray of uint8
        Membranes dark, cytoplasm mid-grey, extracellular space and vessel lumen pale.
    cell_ids : (Z, Y, X) ndarray of uint32
        One id per neurite (and one for the vessel wall), 0 outside cells.
    membrane, extracellular, mitochondria, vesicles : (Z, Y, X) ndarray of bool
        Dark membrane voxels, extracellular space, mitochondria, vesicle clouds.
    synapses : (Z, Y, X) ndarray of uint16
        Label of each synapse on its postsynaptic density and cleft, 0 elsewhere.
    synapse_records : tuple of SynapseRecord
        ``synapse_records[i]`` describes label ``i + 1``.
    vessel, vessel_lumen : (Z, Y, X) ndarray of bool
        Blood vessel (lumen and wall) and its lumen; all False without a vessel.
    voxel_size_nm : (float, float, float)
    seed : int
    params : NeuropilParams
    """

    image: np.ndarray
    cell_ids: np.ndarray
    membrane: np.ndarray
    extracellular: np.ndarray
    mitochondria: np.ndarray
    vesicles: np.ndarray
    synapses: np.ndarray
    synapse_records: tuple[SynapseRecord, ...]
    vessel: np.ndarray
    vessel_lumen: np.ndarray
    voxel_size_nm: tuple[float, float, float]
    seed: int
    params: NeuropilParams = field(default_factory=NeuropilParams)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.image.shape  # type: ignore[return-value]


def _check_voxel_size(voxel_size_nm: Any) -> tuple[float, float, float]:
    size = np.ravel(np.asarray(voxel_size_nm, dtype=object))
    if size.size == 1:
        size = np.repeat(size, 3)
    if size.size != 3:
        raise ValueError(
            f"voxel_size_nm must be a number or 3 numbers (z, y, x), got {voxel_size_nm!r}"
        )
    out = tuple(_number("voxel_size_nm", v) for v in size)
    if min(out) <= 0:
        raise ValueError(f"voxel_size_nm must be > 0 along every axis, got {voxel_size_nm!r}")
    return out  # type: ignore[return-value]


def _check_shape(shape: Any) -> tuple[int, int, int]:
    if np.ndim(shape) != 1 or len(shape) != 3:
        raise ValueError(f"shape must have 3 dimensions (Z, Y, X), got {shape!r}")
    if any(isinstance(n, bool) or not isinstance(n, numbers.Integral) for n in shape):
        raise TypeError(f"shape must hold integers, got {shape!r}")
    if min(shape) < 1:
        raise ValueError(f"shape must be >= 1 along every axis, got {shape!r}")
    return tuple(int(n) for n in shape)  # type: ignore[return-value]


def membrane_mask(
    cell_ids: np.ndarray, *, voxel_size_nm: Any, thickness_nm: float = 18.0
) -> np.ndarray:
    """Membranes of a label image: cell voxels within ``thickness_nm / 2`` of another label.

    A line of ``thickness_nm`` between two cells, half of it on a cell facing label 0
    (extracellular space); at least one voxel on each side, even where voxels are coarser.

    Parameters
    ----------
    cell_ids : (Z, Y, X) ndarray of int
        Cell per voxel, 0 outside cells.
    voxel_size_nm : float or (float, float, float)
    thickness_nm : float

    Returns
    -------
    (Z, Y, X) ndarray of bool
    """
    cell_ids = np.asarray(cell_ids)
    if cell_ids.ndim != 3:
        raise ValueError(f"cell_ids must be a (Z, Y, X) array, got shape {cell_ids.shape}")
    thickness = _number("thickness_nm", thickness_nm)
    if thickness <= 0:
        raise ValueError(f"thickness_nm must be > 0, got {thickness_nm!r}")
    offsets = geo.membrane_offsets(_check_voxel_size(voxel_size_nm), thickness)
    return geo.mark_boundaries(cell_ids, offsets) & (cell_ids != 0)


def render_neuropil(volume: SyntheticNeuropil, *, seed: int | None = None) -> np.ndarray:
    """Render the masks of ``volume`` (possibly edited) as a *synthetic* FIB-SEM image.

    ``render_neuropil(volume)`` of an unedited volume equals ``volume.image``; after
    ``dataclasses.replace(volume, extracellular=..., cell_ids=..., membrane=...)`` it draws
    the edited geometry with the same texture and noise.

    Parameters
    ----------
    volume : SyntheticNeuropil
    seed : int, optional
        Seed of texture and noise; ``volume.seed`` if not given.

    Returns
    -------
    (Z, Y, X) ndarray of uint8
    """
    masks = {
        k: getattr(volume, k)
        for k in (
            "cell_ids",
            "membrane",
            "extracellular",
            "mitochondria",
            "vesicles",
            "synapses",
            "vessel",
            "vessel_lumen",
        )
    }
    seed = volume.seed if seed is None else _check_seed(seed)
    return render_image(**masks, voxel_size_nm=volume.voxel_size_nm, params=volume.params,
                        rng=_stream(seed, _RENDER))  # fmt: skip


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed!r}")
    return int(seed)


def synthetic_neuropil(shape, *, voxel_size_nm: Any = 8.0, seed: int = 0,
                       params: NeuropilParams | None = None) -> SyntheticNeuropil:  # fmt: skip
    """Generate a seeded *synthetic* FIB-SEM-like neuropil volume with its ground truth.

    Synthetic data, for tests and demos: never present it as real tissue. Neurites are
    persistent random walks, each voxel belongs to the nearest one; extracellular space,
    an optional vessel, synapses and mitochondria follow (see ``emqc.synth._geometry`` and
    ``emqc.synth._organelles``); ``emqc.synth._render`` turns the labels into contrast.
    The same arguments give byte-identical output.

    Parameters
    ----------
    shape : (int, int, int)
        Volume shape (Z, Y, X).
    voxel_size_nm : float or (float, float, float), optional
        Voxel size in nm; anisotropic sizes such as ``(50, 5, 5)`` work.
    seed : int, optional
        Seed (>= 0) of every random choice.
    params : NeuropilParams, optional
        Physical parameters; ``NeuropilParams()`` if not given.

    Returns
    -------
    SyntheticNeuropil
        Image, labels and masks, all ``(Z, Y, X)``, read-only.

    Raises
    ------
    ValueError
        If ``shape`` does not have 3 positive sizes or a voxel size is not positive.
    TypeError
        If ``seed`` or a size is not a number, or ``params`` not a NeuropilParams.

    Examples
    --------
    >>> from emqc.synth import NeuropilParams, synthetic_neuropil
    >>> vol = synthetic_neuropil((32, 64, 64), voxel_size_nm=10.0, seed=1)
    >>> vol.image.shape, vol.image.dtype.name, vol.cell_ids.dtype.name
    ((32, 64, 64), 'uint8', 'uint32')
    >>> bool(vol.image[vol.membrane].mean() < vol.image[vol.cell_ids > 0].mean())
    True
    >>> swollen = synthetic_neuropil((32, 64, 64), voxel_size_nm=10.0, seed=1,
    ...                              params=NeuropilParams(extracellular_fraction=0.2))
    >>> bool(swollen.extracellular.mean() > vol.extracellular.mean())
    True
    """
    shape, voxel, seed = _check_shape(shape), _check_voxel_size(voxel_size_nm), _check_seed(seed)
    params = NeuropilParams() if params is None else params
    if not isinstance(params, NeuropilParams):
        raise TypeError(f"params must be a NeuropilParams, got {type(params).__name__}")
    if min(voxel) > 50:
        warnings.warn(f"voxel_size_nm={voxel} is coarser than membranes, vesicles and synapses "
                      "(20-250 nm); the image will not resolve them", stacklevel=2)  # fmt: skip
    fine = geo.Grid(shape, voxel)
    coarse = geo.coarse_grid(fine)
    cores = np.zeros(coarse.shape, np.uint32)
    vessel, lumen = np.zeros(shape, bool), np.zeros(shape, bool)
    if params.vessel:  # 1. the vessel first: neurites steer round it
        point, direction, r_lumen, r_outer = geo.vessel_axis(fine, params, _stream(seed, _VESSEL))
        cores[geo.line_distance(coarse, point, direction) <= r_outer] = geo.BLOCKED
        axis_distance = geo.line_distance(fine, point, direction)
        vessel, lumen = axis_distance <= r_outer, axis_distance <= r_lumen
    # 2. Neurites fill what the vessel and the expected boutons leave.
    free = math.prod(coarse.spacing) * np.count_nonzero(cores == 0)
    boutons_nm3 = (
        params.synapse_density_per_um3
        * math.prod(fine.hi - fine.lo)
        / 1e9
        * 4
        / 3
        * math.pi
        * (sum(params.bouton_diameter_nm) / 4) ** 3
    )
    fill = max(free - boutons_nm3, free / 2)
    cells = geo.draw_neurites(cores, coarse, params, _stream(seed, _NEURITES), fill_nm3=fill)
    synapse_rng = _stream(seed, _SYNAPSES)
    boutons = org.place_boutons(cores, coarse, fine, cells, params, synapse_rng)
    cell_ids, distance, distance_grid = geo.partition(cores, coarse, fine)
    wall_id = len(cells) + 1
    cell_ids[vessel] = wall_id
    cell_ids[lumen] = 0
    # 3. Synapses need the partition; extracellular space must keep their clefts closed.
    synapses, vesicles, closed, records = org.build_synapses(
        cell_ids, fine, boutons, cells, params, exclude=wall_id
    )
    extracellular = geo.extracellular_space(distance, distance_grid, fine, params.extracellular_fraction,
                                            _stream(seed, _ECS), tissue=~vessel,
                                            closed=closed | vessel)  # fmt: skip
    cell_ids[extracellular] = 0
    membrane = membrane_mask(
        cell_ids, voxel_size_nm=voxel, thickness_nm=params.membrane_thickness_nm
    )
    vesicles &= (cell_ids != 0) & ~membrane
    mito = org.mitochondria(cell_ids, fine, cells, params, _stream(seed, _MITO),
                            avoid=vesicles | membrane)  # fmt: skip
    arrays = dict(cell_ids=cell_ids, membrane=membrane, extracellular=extracellular,
                  mitochondria=mito, vesicles=vesicles, synapses=synapses, vessel=vessel,
                  vessel_lumen=lumen)  # fmt: skip
    image = render_image(**arrays, voxel_size_nm=voxel, params=params, rng=_stream(seed, _RENDER))
    for a in (image, *arrays.values()):
        a.flags.writeable = False
    return SyntheticNeuropil(
        image=image,
        **arrays,
        synapse_records=tuple(SynapseRecord(*r) for r in records),
        voxel_size_nm=voxel,
        seed=seed,
        params=params,
    )
