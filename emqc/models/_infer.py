"""Tiled inference of a trained network on one block, in bounded memory.

1. Check the block's voxel size against the network's working resolution and
   resample the block to it (linear interpolation). Finer voxels are averaged
   down by up to 4× (nothing the network needs is lost); coarser voxels are
   interpolated up by at most 1.6× (e.g. 16 nm data for a 10 nm network);
   anything farther is refused rather than silently mis-scored.
   Before that, an image noisier than the networks were trained on is brought
   into their range (``fibsem3d``: :data:`FIBSEM_MAX_RELATIVE_NOISE`): if the
   noise (:func:`emqc.metrics.noise_sigma`) exceeds ``max_relative_noise`` times
   the block's standard deviation, the block is
   smoothed with the narrowest Gaussian that lowers white noise to that level
   (:func:`noise_reduction`: the noise standard deviation falls by the root of
   the kernel's summed squared weights, about ``(2 sqrt(pi) s)^(-d/2)`` for a
   Gaussian of ``s`` voxels in ``d`` dimensions). Averaging neighbouring voxels is
   what a longer dwell time does at the microscope; the networks were trained with
   blur up to 1.2 voxels, so the smoothed block stays in their distribution [1]_.
2. Cut the block into tiles whose origins lie on the U-Net's pooling grid and
   that overlap by a halo wider than the network's receptive-field radius, so
   that stitching the tiles' centres gives the same output as running the whole
   block at once (checked by a test).
   A block that fits in :data:`WHOLE_BLOCK_VOXELS` (with its halo) is one tile.
3. Run the tiles in batches under ``torch.inference_mode`` with an explicit
   thread count (Dask's LocalCluster sets ``OMP_NUM_THREADS=1`` in its parent),
   with batch normalization folded into the convolutions and channels-last memory
   layout (about 3x faster on CPU; same maps to float rounding), and each
   convolution fused with its ReLU (:mod:`emqc.models._fused`; a quarter less time,
   the same maps).
4. Stitch, apply the sigmoid, and resample back to the block's own grid.

A 2D network runs section by section along z (and is smoothed in-plane only).

References
----------
.. [1] D. L. Donoho, I. M. Johnstone (1994), Ideal spatial adaptation by wavelet
   shrinkage, Biometrika 81:425-455 (the noise estimate); the Gaussian's variance
   reduction is that of any linear filter, the sum of its squared weights.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from .._resample import resample_linear, zoomed_shape
from ..errors import InputError
from ..metrics._imaging import noise_sigma
from ..polarity import (
    POLARITY_MARGIN,
    PROBE_EDGE,
    Polarity,
    Prediction,
    membrane_confidence,
    probe_box,
)
from ._augment import to_unit
from ._fused import fused_or_plain
from ._train import WEIGHTS_DIR, load_network
from ._unet import UNet

__all__ = [
    "FIBSEM_MAX_RELATIVE_NOISE",
    "Predictor",
    "VOXEL_RATIO_RANGE",
    "WHOLE_BLOCK_VOXELS",
    "fold_batchnorm",
]

#: Accepted range of (block voxel size) / (network working voxel size), per axis.
VOXEL_RATIO_RANGE = (0.25, 1.6)
#: Largest padded block (voxels) run as one tile instead of overlapping tiles: a
#: 2.56 um block at 8 nm is 256^3 voxels at 10 nm, 288^3 with its halo. Memory: about
#: 150 bytes per voxel for the 12-channel 3D U-Net in bfloat16 (3.6 GB at 288^3).
WHOLE_BLOCK_VOXELS = 288**3
#: Noise (standard deviation, on the block's own grid) above which ``fibsem3d`` smooths
#: a block first, relative to the block's standard deviation. The clean medulla cube
#: has 0.12-0.14. Chosen on the cube's *training* part (z < 83) with simulated noise
#: of severity 0.75 and 1 (SNR 1.3 and 1): membrane integrity moved by at most 0.088
#: at 0.3, 0.054 at 0.25 and 0.031 at 0.2 (sigma from the wide-kernel approximation),
#: 0.046 at 0.25 with the exact kernel used now; 0.25 smooths less, with a margin.
#: Not used for ``sections2d``: at its 9 nm, ssTEM sections already measure 0.28-0.48,
#: fine structure that the Haar estimator counts as noise.
FIBSEM_MAX_RELATIVE_NOISE = 0.25


def fold_batchnorm(net: UNet) -> UNet:
    """A copy of ``net`` (eval mode) with every batch norm folded into the convolution before it."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = copy.deepcopy(net).eval()
    for seq in [m for m in folded.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, norm = seq[i], seq[i + 1]
            if isinstance(conv, nn.Conv2d | nn.Conv3d) and isinstance(
                norm, nn.modules.batchnorm._BatchNorm
            ):
                seq[i], seq[i + 1] = fuse_conv_bn_eval(conv, norm), nn.Identity()
    return folded


def noise_reduction(sigma: float, *, dims: int) -> float:
    """Factor by which a Gaussian of ``sigma`` voxels (scipy's kernel) scales white noise's std.

    The square root of the sum of the squared kernel weights, to the power ``dims``
    (the kernel is separable); ``(2 sqrt(pi) sigma)^(-dims/2)`` for wide kernels.
    """
    if sigma <= 0:
        return 1.0
    radius = int(4.0 * sigma + 0.5)  # scipy.ndimage.gaussian_filter's default truncation
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    w /= w.sum()
    return float(np.sqrt(np.sum(w**2)) ** dims)


def smoothing_for(factor: float, *, dims: int) -> float:
    """The Gaussian sigma (voxels) whose :func:`noise_reduction` is ``factor`` (bisection)."""
    if factor >= 1:
        return 0.0
    lo, hi = 0.0, 1.0
    while noise_reduction(hi, dims=dims) > factor:
        hi *= 2
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if noise_reduction(mid, dims=dims) > factor else (lo, mid)
    return hi


class Predictor:
    """A trained network ready to predict probability maps for blocks.

    Parameters
    ----------
    net : UNet
        A network in eval mode.
    tile : int
        Tile edge at working resolution (a multiple of the network's size multiple).
    halo : int
        Overlap on each side of a tile, in voxels at working resolution.
    threads : int, optional
        Torch threads (default: all cores).
    bf16 : bool, optional
        Compute in bfloat16 (faster on CPUs with AVX512-BF16 or AMX; check accuracy).
    max_relative_noise : float or None, optional
        Smooth blocks noisier than this (see the module docstring); None (default)
        never smooths.
    """

    #: Largest polarity probe, voxels per axis at working resolution (see :mod:`emqc.polarity`).
    probe_edge: int = PROBE_EDGE

    def __init__(
        self,
        net: UNet,
        *,
        tile: int = 128,
        halo: int = 16,
        threads: int | None = None,
        bf16: bool = False,
        max_relative_noise: float | None = None,
    ) -> None:
        m = net.size_multiple
        if tile % m or halo % m or tile <= 2 * halo:
            raise ValueError(
                f"tile ({tile}) and halo ({halo}) must be multiples of {m} with tile > 2*halo"
            )
        self.net, self.tile, self.halo, self.threads, self.bf16 = (
            net.eval(),
            tile,
            halo,
            threads,
            bf16,
        )
        self.max_relative_noise = max_relative_noise
        self._layout = torch.channels_last_3d if net.config.dims == 3 else torch.channels_last
        self._fast = fused_or_plain(fold_batchnorm(net).to(memory_format=self._layout), bf16=bf16)

    @classmethod
    def load(cls, name_or_path: str | Path, **kwargs) -> Predictor:  # type: ignore[no-untyped-def]
        """Load committed weights by network name (``"fibsem3d"``) or from a path."""
        path = Path(name_or_path)
        if not path.suffix:
            path = WEIGHTS_DIR / f"{name_or_path}.pt"
        net, _ = load_network(path)
        return cls(net, **kwargs)

    @property
    def heads(self) -> tuple[str, ...]:
        return self.net.config.heads

    def predict(
        self,
        raw: np.ndarray,
        *,
        voxel_size_nm: tuple[float, float, float],
        native_grid: bool = True,
        detect_polarity: bool = False,
    ) -> Prediction:
        """Probability map per head for one block.

        Parameters
        ----------
        raw : (Z, Y, X) ndarray of uint8
        voxel_size_nm : (3,) tuple of float
        native_grid : bool, optional
            Resample the maps back to ``raw``'s grid (default). False returns them on
            the network's working grid (the same block, ``round(raw.shape * zoom)``
            voxels), which is what the metrics need and saves the resampling.
        detect_polarity : bool, optional
            Judge the block's contrast polarity first and invert a bright-membrane block
            (:mod:`emqc.polarity`; costs one more pass over a probe of at most
            :data:`~emqc.polarity.PROBE_EDGE` voxels per axis, none for blocks
            that small). False (default) uses the block as recorded.

        Returns
        -------
        Prediction
            dict of str to (Z, Y, X) ndarray of float32 in [0, 1], with ``.polarity``
            (:class:`~emqc.polarity.Polarity`) set when it was detected.

        Raises
        ------
        emqc.errors.InputError
            When the voxel size is outside :data:`VOXEL_RATIO_RANGE` times the
            network's working resolution on any axis it sees.
        """
        if raw.ndim != 3:
            raise ValueError(f"raw must be a (Z, Y, X) block, got shape {raw.shape}")
        zoom = self._zoom(voxel_size_nm)
        image = to_unit(raw)
        sigma = self.smoothing_sigma(raw)
        if sigma > 0:
            dims = self.net.config.dims
            image = ndimage.gaussian_filter(image, (sigma,) * 3 if dims == 3 else (0, sigma, sigma))
        threads = self.threads or torch.get_num_threads()
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        polarity = None
        try:
            if any(abs(f - 1) > 0.02 for f in zoom):
                image = resample_linear(image, zoomed_shape(image.shape, zoom))
            with torch.inference_mode():
                logits = self._logits(image)
                if detect_polarity:
                    logits, polarity = self._settle_polarity(image, logits)
        finally:
            torch.set_num_threads(previous)
        probs = _sigmoid_in_place(logits)
        out = Prediction()
        out.polarity = polarity
        for i, head in enumerate(self.heads):
            p = probs[i]
            if native_grid and p.shape != raw.shape:
                p = np.clip(resample_linear(p, raw.shape), 0.0, 1.0)
            out[head] = p.astype(np.float32, copy=False)
        return out

    def polarity_margin(self, image: np.ndarray, logits: np.ndarray) -> tuple[float, np.ndarray]:
        """Membrane confidence of ``image`` as recorded minus inverted, on the central probe.

        ``image`` is the block at working resolution in [0, 1] and ``logits`` the
        network's output for it. Returns the margin and the inverted probe's logits
        (those of the whole inverted image when the probe is the whole image).
        """
        dims = self.net.config.dims
        box = probe_box(image.shape, dims=dims, edge=self.probe_edge)
        probe = 1.0 - image[box]
        inside = all(
            b.stop - b.start < n and (b.stop - b.start) % self.net.size_multiple == 0
            for b, n in zip(box, image.shape, strict=True)
        )
        if dims == 3 and inside and probe.size <= WHOLE_BLOCK_VOXELS:
            # Strictly inside the block: the probe's faces border real tissue, trimmed
            # below, so it runs as it is, without a mirrored halo of made-up context
            # (for the 128³ probe of a 256³ block: 128³ voxels through the network
            # instead of 160³, half the time).
            inverted = self._run([probe])[0]
        else:
            inverted = self._logits(probe)
        # Away from the probe's own faces (where it lacks the context the block has),
        # unless the probe is the whole block on that axis.
        inner = tuple(
            slice(0, b.stop - b.start)
            if b.stop - b.start == n or (dims == 2 and a == 0)
            else slice(self.halo, b.stop - b.start - self.halo)
            for a, (b, n) in enumerate(zip(box, image.shape, strict=True))
        )
        head = self.heads.index("boundary" if "boundary" in self.heads else "membrane")

        def confidence(lg: np.ndarray) -> float:
            return membrane_confidence(1.0 / (1.0 + np.exp(-lg[head][inner])))

        as_recorded = logits[(slice(None), *box)]
        return confidence(as_recorded) - confidence(inverted), inverted

    def _settle_polarity(
        self, image: np.ndarray, logits: np.ndarray
    ) -> tuple[np.ndarray, Polarity]:
        margin, inverted = self.polarity_margin(image, logits)
        polarity = Polarity(
            inverted=margin < -POLARITY_MARGIN,
            source="detected",
            margin=round(margin, 6),
            uncertain=abs(margin) < POLARITY_MARGIN,
        )
        if polarity.inverted:
            logits = inverted if inverted.shape[1:] == image.shape else self._logits(1.0 - image)
        return logits, polarity

    def _logits(self, image: np.ndarray) -> np.ndarray:
        return self._tiled(image) if self.net.config.dims == 3 else self._sections(image)

    def smoothing_sigma(self, raw: np.ndarray) -> float:
        """Gaussian sigma (voxels) that brings ``raw``'s noise to ``max_relative_noise``; 0: none."""
        if self.max_relative_noise is None:
            return 0.0
        std = float(np.std(raw))
        if std == 0:
            return 0.0
        relative = noise_sigma(raw) / std
        if relative <= self.max_relative_noise:
            return 0.0
        return smoothing_for(self.max_relative_noise / relative, dims=self.net.config.dims)

    def check_voxel_size(self, voxel_size_nm: tuple[float, float, float]) -> None:
        """Raise :class:`~emqc.errors.InputError` if this network cannot take the voxel size."""
        self._zoom(voxel_size_nm)

    def _zoom(self, voxel_size_nm: tuple[float, float, float]) -> tuple[float, float, float]:
        work = self.net.config.working_voxel_nm
        dims = self.net.config.dims
        axes = (0, 1, 2) if dims == 3 else (1, 2)
        for a in axes:
            ratio = voxel_size_nm[a] / work
            lo, hi = VOXEL_RATIO_RANGE
            if not lo <= ratio <= hi:
                raise InputError(
                    f"voxel size {tuple(voxel_size_nm)} nm is too far from the {work:g} nm this network "
                    f"works at (accepted: {lo * work:g} to {hi * work:g} nm); scores would not be valid. "
                    "Score a pyramid level closer to it, or resample the volume first."
                )
        return tuple(voxel_size_nm[a] / work if a in axes else 1.0 for a in range(3))  # type: ignore[return-value]

    def _run(self, tiles: list[np.ndarray]) -> np.ndarray:
        x = torch.from_numpy(np.stack(tiles)[:, None]).contiguous(memory_format=self._layout)
        return self._fast(x).contiguous().numpy()

    def _tiled(self, image: np.ndarray) -> np.ndarray:
        """Overlapping tiles on the pooling grid; returns logits (heads, *image.shape)."""
        return _stitch(
            image, self.tile, self.halo, len(self.heads), self._run, self.net.size_multiple
        )

    def _sections(self, image: np.ndarray) -> np.ndarray:
        out = np.empty((len(self.heads), *image.shape), dtype=np.float32)
        for z in range(image.shape[0]):
            out[:, z] = _stitch(
                image[z], self.tile, self.halo, len(self.heads), self._run, self.net.size_multiple
            )
        return out


def _sigmoid_in_place(logits: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-logits))`` computed in ``logits``' own memory (float32, in [0, 1]).

    The same operations in the same order as the expression, so the same values to the
    bit, without its three temporaries of the maps' size.
    """
    np.negative(logits, out=logits)
    with np.errstate(over="ignore"):  # exp overflows to inf where the sigmoid is 0
        np.exp(logits, out=logits)
    logits += 1.0
    np.reciprocal(logits, out=logits)
    return logits


def _stitch(
    image, tile, halo, n_out, run, multiple, batch: int = 4, whole_max: int = WHOLE_BLOCK_VOXELS
):  # type: ignore[no-untyped-def]
    """Run ``run`` on overlapping tiles of ``image`` and keep each tile's centre.

    An image that fits ``whole_max`` voxels (3D; its 2/3 power in 2D) with its halo
    runs as one tile.
    """
    padded_whole = [math.ceil((n + 2 * halo) / multiple) * multiple for n in image.shape]
    if math.prod(padded_whole) <= whole_max ** (image.ndim / 3):
        # The whole block (plus halo, on the pooling grid) as one tile: no recomputed overlap.
        pad = [(halo, s - n - halo) for s, n in zip(padded_whole, image.shape, strict=True)]
        padded = np.pad(image, pad, mode="reflect" if min(image.shape) > halo else "edge")
        res = run([padded])[0]
        return np.ascontiguousarray(
            res[(slice(None), *(slice(halo, halo + n) for n in image.shape))]
        )
    core = tile - 2 * halo
    # Pad to whole cores plus the halo, and to the pooling grid.
    padded_shape = [max(tile, math.ceil(n / core) * core + 2 * halo) for n in image.shape]
    padded_shape = [math.ceil(s / multiple) * multiple for s in padded_shape]
    pad = [(halo, s - n - halo) for s, n in zip(padded_shape, image.shape, strict=True)]
    padded = np.pad(image, pad, mode="reflect" if min(image.shape) > halo else "edge")
    out = np.empty((n_out, *image.shape), dtype=np.float32)
    starts = [range(0, max(1, n), core) for n in image.shape]
    jobs = list(np.ndindex(*[len(s) for s in starts]))
    for i in range(0, len(jobs), batch):
        chunk = jobs[i : i + batch]
        origins = [tuple(starts[a][j[a]] for a in range(image.ndim)) for j in chunk]
        tiles = [padded[tuple(slice(o, o + tile) for o in org)] for org in origins]
        logits = run(tiles)
        for org, res in zip(origins, logits, strict=True):
            dst = tuple(slice(o, min(o + core, n)) for o, n in zip(org, image.shape, strict=True))
            src = tuple(slice(halo, halo + (d.stop - d.start)) for d in dst)
            out[(slice(None), *dst)] = res[(slice(None), *src)]
    return out
