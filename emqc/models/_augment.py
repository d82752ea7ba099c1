"""Training crops with augmentation: what real EM varies in, so the networks see it.

Every crop is drawn from the training part of a dataset at the network's working
resolution, then (each with its probability):

1. geometry: random flips and axis permutations (in-plane only for 2D), and a
   voxel-size rescale by a factor in [0.75, 1.33] (sampling a larger or smaller
   region and resizing it: linear for the image, nearest for the targets), so that
   8–16 nm inputs look familiar;
2. intensity: contrast × [0.6, 1.4], brightness ± 0.15, gamma [0.7, 1.4];
   contrast inversion (p = 0.2; some SBEM data shows bright membranes);
3. imaging: Gaussian blur (σ up to 1.2 voxels) and Gaussian noise (σ up to 0.08).

Images are float32 in [0, 1] (uint8 / 255).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["CropSampler", "Augmentation", "to_unit"]


def to_unit(raw: np.ndarray) -> np.ndarray:
    """uint8 voxels → float32 in [0, 1]: the networks' input convention."""
    return raw.astype(np.float32) / 255.0


@dataclass(frozen=True)
class Augmentation:
    """Probabilities and ranges of each augmentation (see the module docstring)."""

    flip: bool = True
    rescale_p: float = 0.5
    rescale_range: tuple[float, float] = (0.75, 1.33)
    intensity_p: float = 0.8
    invert_p: float = 0.2
    blur_p: float = 0.3
    noise_p: float = 0.5


class CropSampler:
    """Random augmented crops of one volume and its per-head targets.

    Parameters
    ----------
    image : (Z, Y, X) ndarray of float32
        The training part at working resolution, in [0, 1].
    targets : dict of str to (Z, Y, X) bool ndarray
    crop : tuple of int
        Crop shape: 3 ints for a 3D network, 2 for a 2D network (one z-section).
    rng : numpy Generator
    augmentation : Augmentation
    """

    def __init__(self, image, targets, *, crop, rng, augmentation=Augmentation()):  # type: ignore[no-untyped-def]
        self.image, self.targets, self.crop = image, targets, tuple(crop)
        self.rng, self.aug = rng, augmentation
        self.dims = len(self.crop)

    def sample(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """One crop: (image (*crop) float32, {head: (*crop) float32 in {0, 1}})."""
        rng, aug = self.rng, self.aug
        scale = rng.uniform(*aug.rescale_range) if rng.random() < aug.rescale_p else 1.0
        want = tuple(max(2, round(c * scale)) for c in self.crop)
        shape = self.image.shape if self.dims == 3 else self.image.shape[1:]
        want = tuple(min(w, s) for w, s in zip(want, shape, strict=True))
        origin = [int(rng.integers(0, s - w + 1)) for s, w in zip(shape, want, strict=True)]
        box = tuple(slice(o, o + w) for o, w in zip(origin, want, strict=True))
        if self.dims == 2:
            box = (int(rng.integers(0, self.image.shape[0])), *box)
        img = self.image[box]
        tgt = {k: v[box] for k, v in self.targets.items()}
        if img.shape != self.crop:
            zoom = [c / s for c, s in zip(self.crop, img.shape, strict=True)]
            img = ndimage.zoom(img, zoom, order=1, grid_mode=True, mode="grid-mirror")
            tgt = {
                k: ndimage.zoom(v, zoom, order=0, grid_mode=True, mode="grid-mirror")
                for k, v in tgt.items()
            }
        img, tgt = self._geometry(img, tgt)
        img = self._intensity(img)
        return np.ascontiguousarray(img, dtype=np.float32), {
            k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tgt.items()
        }

    def _geometry(self, img, tgt):  # type: ignore[no-untyped-def]
        if not self.aug.flip:
            return img, tgt
        rng = self.rng
        axes = list(range(img.ndim))
        if img.shape.count(img.shape[0]) == img.ndim:  # cube/square: any axis order
            order = list(rng.permutation(axes))
            img, tgt = img.transpose(order), {k: v.transpose(order) for k, v in tgt.items()}
        for ax in axes:
            if rng.random() < 0.5:
                img, tgt = np.flip(img, ax), {k: np.flip(v, ax) for k, v in tgt.items()}
        return img, tgt

    def _intensity(self, img: np.ndarray) -> np.ndarray:
        rng, aug = self.rng, self.aug
        img = img.astype(np.float32, copy=True)
        if rng.random() < aug.intensity_p:
            mean = float(img.mean())
            img = (img - mean) * rng.uniform(0.6, 1.4) + mean + rng.uniform(-0.15, 0.15)
            img = np.clip(img, 0.0, 1.0) ** rng.uniform(0.7, 1.4)
        if rng.random() < aug.invert_p:
            img = 1.0 - img
        if rng.random() < aug.blur_p:
            img = ndimage.gaussian_filter(img, rng.uniform(0.3, 1.2))
        if rng.random() < aug.noise_p:
            img = img + rng.normal(0.0, rng.uniform(0.01, 0.08), img.shape).astype(np.float32)
        return np.clip(img, 0.0, 1.0)
