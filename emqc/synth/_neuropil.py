"""Public face of :mod:`emqc.synth`: the volume record, its generator and re-renderer.

Everything here is *synthetic*: a seeded stand-in for tests and demos, never real tissue.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _geometry as geo
from . import _organelles as org
from ._params import NeuropilParams, check_number
from ._render import render_image

# Seed streams: one per step, so changing one parameter leaves the other steps as they were.
_NEURITES, _VESSEL, _SYNAPSES, _ECS, _MITO, _RENDER = range(6)
# What the renderer reads.
_MASKS = (
    "cell_ids",
    "membrane",
    "extracellular",
    "mitochondria",
    "vesicles",
    "synapses",
    "vessel",
    "vessel_lumen",
)


def _stream(seed: int, step: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(step,)))


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
    params: NeuropilParams

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
    out = tuple(check_number("voxel_size_nm", v) for v in size)
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


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed!r}")
    return int(seed)


def membrane_mask(
    cell_ids: np.ndarray, *, voxel_size_nm: Any, thickness_nm: float = 18.0
) -> np.ndarray:
    """Membranes of a label image: cell voxels within ``thickness_nm / 2`` of another label.

    The rule the *synthetic* neuropil draws its membranes with, for redrawing them after
    the cells were edited: a line of ``thickness_nm`` between two cells, half of it on a
    cell facing label 0 (extracellular space); at least one voxel on each side, even
    where voxels are coarser.

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
    thickness = check_number("thickness_nm", thickness_nm)
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
    if not isinstance(volume, SyntheticNeuropil):
        raise TypeError(f"volume must be a SyntheticNeuropil, got {type(volume).__name__}")
    masks = {name: np.asarray(getattr(volume, name)) for name in _MASKS}
    for name, mask in masks.items():
        if mask.shape != volume.cell_ids.shape:
            raise ValueError(
                f"volume.{name} has shape {mask.shape}, volume.cell_ids {volume.cell_ids.shape}"
            )
    seed = volume.seed if seed is None else _check_seed(seed)
    return render_image(
        **masks,
        voxel_size_nm=volume.voxel_size_nm,
        params=volume.params,
        rng=_stream(seed, _RENDER),
    )


def synthetic_neuropil(
    shape, *, voxel_size_nm: Any = 8.0, seed: int = 0, params: NeuropilParams | None = None
) -> SyntheticNeuropil:
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

    See Also
    --------
    NeuropilParams : the physical parameters, with the literature behind the defaults.
    render_neuropil : draw an edited geometry again.

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
        warnings.warn(
            f"voxel_size_nm={voxel} is coarser than membranes, vesicles and synapses "
            "(20-250 nm); the image will not resolve them",
            stacklevel=2,
        )
    fine = geo.Grid(shape, voxel)
    coarse = geo.coarse_grid(fine)
    cores = np.zeros(coarse.shape, np.uint32)
    vessel, lumen = np.zeros(shape, bool), np.zeros(shape, bool)
    if params.vessel:  # 1. the vessel first: neurites steer round it
        point, direction, r_lumen, r_outer = geo.vessel_axis(fine, params, _stream(seed, _VESSEL))
        cores[geo.line_distance(coarse, point, direction) <= r_outer] = geo.BLOCKED
        axis_distance = geo.line_distance(fine, point, direction)
        vessel, lumen = axis_distance <= r_outer, axis_distance <= r_lumen
    # 2. Neurites fill what the vessel and the expected boutons leave (at least half).
    free_nm3 = math.prod(coarse.spacing) * np.count_nonzero(cores == 0)
    expected_boutons = params.synapse_density_per_um3 * math.prod(fine.hi - fine.lo) / 1e9
    bouton_nm3 = 4 / 3 * math.pi * (sum(params.bouton_diameter_nm) / 4) ** 3
    fill = max(free_nm3 - expected_boutons * bouton_nm3, free_nm3 / 2)
    cells = geo.draw_neurites(cores, coarse, params, _stream(seed, _NEURITES), fill_nm3=fill)
    boutons = org.place_boutons(cores, coarse, fine, cells, params, _stream(seed, _SYNAPSES))
    cell_ids, distance, distance_grid = geo.partition(cores, coarse, fine)  # 3. partition
    wall_id = len(cells) + 1
    cell_ids[vessel] = wall_id
    cell_ids[lumen] = 0
    # 4. Synapses need the partition; extracellular space must keep their clefts closed.
    synapses, vesicles, closed, records = org.build_synapses(
        cell_ids, fine, boutons, cells, params, exclude=wall_id
    )
    extracellular = geo.extracellular_space(
        distance,
        distance_grid,
        fine,
        params.extracellular_fraction,
        _stream(seed, _ECS),
        tissue=~vessel,
        closed=closed | vessel,
    )
    cell_ids[extracellular] = 0
    # 5. Membranes, then what must keep clear of them.
    membrane = membrane_mask(
        cell_ids, voxel_size_nm=voxel, thickness_nm=params.membrane_thickness_nm
    )
    vesicles &= (cell_ids != 0) & ~membrane
    mito = org.mitochondria(
        cell_ids,
        fine,
        cells,
        params,
        _stream(seed, _MITO),
        avoid=vesicles | membrane | (synapses != 0),
    )
    arrays = dict(
        zip(
            _MASKS,
            (cell_ids, membrane, extracellular, mito, vesicles, synapses, vessel, lumen),
            strict=True,
        )
    )
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
