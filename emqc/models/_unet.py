"""A small U-Net, 2D or 3D, with one output channel per named head.

The architecture is the standard U-Net [1]_ (3D: [2]_): per level two 3×3(×3)
convolutions with batch normalization and ReLU, max-pooling down, transposed
convolution up, skip connections by concatenation. Padding is "same", so the
output has the input's shape whenever each spatial size is divisible by
``2 ** depth`` (:func:`UNet.size_multiple`). It stays small (8–16 base channels,
three levels) so that it trains on a 2-core CPU and its weights stay in the
hundreds of kilobytes.

References
----------
.. [1] O. Ronneberger, P. Fischer, T. Brox (2015), "U-Net: Convolutional Networks
   for Biomedical Image Segmentation", MICCAI, LNCS 9351:234-241.
.. [2] Ö. Çiçek et al. (2016), "3D U-Net: Learning Dense Volumetric Segmentation
   from Sparse Annotation", MICCAI, LNCS 9901:424-432.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["UNetConfig", "UNet"]


@dataclass(frozen=True)
class UNetConfig:
    """Everything needed to rebuild a network (stored next to its weights).

    Attributes
    ----------
    dims : {2, 3}
        Spatial dimensions.
    heads : tuple of str
        One sigmoid output per head, e.g. ``("boundary", "extracellular")``.
    base_channels : int
        Channels of the first level; doubled per level.
    depth : int
        Number of down-sampling steps.
    working_voxel_nm : float
        In-plane voxel size the network was trained at; inputs are resampled to it.
    """

    dims: int
    heads: tuple[str, ...]
    base_channels: int = 16
    depth: int = 3
    working_voxel_nm: float = 10.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["heads"] = list(self.heads)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UNetConfig:
        return cls(**{**d, "heads": tuple(d["heads"])})


def _block(dims: int, cin: int, cout: int) -> nn.Sequential:
    conv = nn.Conv3d if dims == 3 else nn.Conv2d
    norm = nn.BatchNorm3d if dims == 3 else nn.BatchNorm2d
    return nn.Sequential(
        conv(cin, cout, 3, padding=1, bias=False),
        norm(cout),
        nn.ReLU(inplace=True),
        conv(cout, cout, 3, padding=1, bias=False),
        norm(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net returning one logit map per head, shape (N, len(heads), *spatial).

    Parameters
    ----------
    config : UNetConfig
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        if config.dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {config.dims}")
        if not config.heads:
            raise ValueError("heads must name at least one output")
        self.config = config
        d, c = config.dims, config.base_channels
        pool = nn.MaxPool3d if d == 3 else nn.MaxPool2d
        up = nn.ConvTranspose3d if d == 3 else nn.ConvTranspose2d
        conv = nn.Conv3d if d == 3 else nn.Conv2d
        widths = [c * 2**i for i in range(config.depth + 1)]
        self.down = nn.ModuleList(
            [_block(d, 1 if i == 0 else widths[i - 1], widths[i]) for i in range(config.depth)]
        )
        self.pool = pool(2)
        self.bottom = _block(d, widths[-2], widths[-1])
        self.up = nn.ModuleList(
            [up(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(config.depth))]
        )
        self.up_blocks = nn.ModuleList(
            [_block(d, 2 * widths[i], widths[i]) for i in reversed(range(config.depth))]
        )
        self.out = conv(widths[0], len(config.heads), 1)

    @property
    def size_multiple(self) -> int:
        """Each spatial input size must be a multiple of this."""
        return 2**self.config.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for upconv, block, skip in zip(self.up, self.up_blocks, reversed(skips), strict=True):
            x = block(torch.cat([upconv(x), skip], dim=1))
        return self.out(x)
