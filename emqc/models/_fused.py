"""Inference form of the U-Net: each convolution and the ReLU after it in one oneDNN call.

On CPU a convolution is compute-bound but the ReLU after it is not: it reads and
writes the whole feature map once more (about 760 MB per 16-channel map for a
288³ block in bfloat16), at memory speed. oneDNN, the library PyTorch runs CPU
convolutions with, can apply the ReLU as a *post-op* while each output tile is still
in cache [1]_; PyTorch exposes that as ``torch.ops.mkldnn._convolution_pointwise``,
the op its own compiler (TorchInductor) emits for a convolution followed by a ReLU
on CPU [2]_. :class:`FusedUNet` runs a trained :class:`~emqc.models._unet.UNet`
(batch norms already folded into the convolutions) that way, with its weights
converted once to the compute dtype instead of on every call as autocast does.
The logits equal the unfused network's under the same dtype (identical on a 288³
block here; a test checks them to float rounding); on that block at one thread it takes
about three quarters of the time (5.1 s instead of 6.7 s). It pools by pairwise maxima
(:func:`max_pool_2`; the same values, without the argmax indices PyTorch's CPU pooling
writes). Each up block's first convolution reads the upsampled map and the skip
connection as two convolutions of their own instead of one over their concatenation: the
skip's share is computed first and the upsampled map's is added to it with the bias
and the ReLU as oneDNN post-ops, in its memory (the same sum in a different order, with
the skip's share rounded to the compute dtype once; at the top level of a 288³ block this
saves building a 1.1 GB concatenation and 0.9 GB of peak memory). Inference on CPU only:
the converted weights are plain tensors, not registered parameters.

Where the op is missing or fails (a PyTorch build without oneDNN),
:func:`fused_or_plain` returns the plain network and nothing changes but speed.

References
----------
.. [1] oneDNN developer guide, "Primitive attributes: post-ops",
   https://oneapi-src.github.io/oneDNN/dev_guide_attributes_post_ops.html
.. [2] PyTorch, ``torch/_inductor/fx_passes/mkldnn_fusion.py`` (conv + unary fusion).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._unet import UNet

__all__ = ["FusedUNet", "fused_or_plain", "max_pool_2"]


def _conv_weights(seq: nn.Sequential, dtype: torch.dtype, layout: torch.memory_format) -> list:
    """(weight, bias) of each convolution in a folded ``_block`` (conv, identity, ReLU, ...)."""
    convs = [m for m in seq if isinstance(m, nn.Conv2d | nn.Conv3d)]
    relus = [m for m in seq if isinstance(m, nn.ReLU)]
    if len(convs) != len(relus) or any(
        not isinstance(m, nn.Conv2d | nn.Conv3d | nn.ReLU | nn.Identity) for m in seq
    ):
        raise ValueError("expected a block of convolutions each followed by a ReLU (norms folded)")
    return [
        (
            c.weight.detach().to(dtype).contiguous(memory_format=layout),
            None if c.bias is None else c.bias.detach().to(dtype),
        )
        for c in convs
    ]


class FusedUNet(nn.Module):
    """A folded :class:`UNet` run with fused convolution + ReLU, in ``dtype``.

    Parameters
    ----------
    folded : UNet
        Eval-mode network whose batch norms are folded into the convolutions
        (:func:`emqc.models._infer.fold_batchnorm`).
    dtype : torch.dtype
        Compute dtype (``torch.bfloat16`` or ``torch.float32``); the output is float32.
    """

    def __init__(self, folded: UNet, dtype: torch.dtype) -> None:
        super().__init__()
        dims = folded.config.dims
        self.dims, self.dtype = dims, dtype
        layout = torch.channels_last_3d if dims == 3 else torch.channels_last
        self._down = [_conv_weights(b, dtype, layout) for b in folded.down]
        self._bottom = _conv_weights(folded.bottom, dtype, layout)
        self._up = [(u.weight.detach().to(dtype), u.bias.detach().to(dtype)) for u in folded.up]
        # The first convolution of each up block reads [upsampled, skip] concatenated: split
        # its weights by input channel, so that the concatenation is never built.
        self._up_blocks = []
        for u, b in zip(folded.up, folded.up_blocks, strict=True):
            (w, bias), *rest = _conv_weights(b, dtype, layout)
            c = u.weight.shape[1]  # channels out of the transposed convolution
            halves = (
                w[:, :c].contiguous(memory_format=layout),
                w[:, c:].contiguous(memory_format=layout),
            )
            self._up_blocks.append((halves, bias, rest))
        self._out = (
            folded.out.weight.detach().to(dtype).contiguous(memory_format=layout),
            folded.out.bias.detach().to(dtype),
        )
        self._up_conv = F.conv_transpose3d if dims == 3 else F.conv_transpose2d
        self._conv = F.conv3d if dims == 3 else F.conv2d

    def _conv_relu(self, x: torch.Tensor, weights: list) -> torch.Tensor:
        ones = [1] * self.dims
        for w, b in weights:
            x = torch.ops.mkldnn._convolution_pointwise(
                x, w, b, ones, ones, ones, 1, "relu", [None], ""
            )
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype)
        skips = []
        for weights in self._down:
            x = self._conv_relu(x, weights)
            skips.append(x)
            x = max_pool_2(x)
        x = self._conv_relu(x, self._bottom)
        ones = [1] * self.dims
        for up, ((w_up, w_skip), bias, rest) in zip(self._up, self._up_blocks, strict=True):
            # conv([up, skip]) = conv(up, w_up) + conv(skip, w_skip): the skip's share
            # first (the skip is freed as it leaves the list), then the upsampled map's,
            # added with the bias and the ReLU as oneDNN post-ops into the same memory.
            y = torch.ops.mkldnn._convolution_pointwise(
                skips.pop(), w_skip, None, ones, ones, ones, 1, "none", [None], ""
            )
            y = torch.ops.mkldnn._convolution_pointwise_(
                y, self._up_conv(x, *up, stride=2), w_up, bias,
                ones, ones, ones, 1, "add", 1.0, "relu", [None], "",
            )  # fmt: skip
            x = self._conv_relu(y, rest)
        return self._conv(x, *self._out).float()


def max_pool_2(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool3d(x, 2)`` (or ``max_pool2d``) as pairwise maxima, one axis at a time.

    The same values (a maximum is exact in any order), channels-last in and out. On
    CPU, PyTorch's pooling also computes the argmax indices (an int64 per output
    value) and runs about 2.7 times slower than these three strided maxima (0.53 s
    against 0.20 s for a 12-channel 288³ map in bfloat16, one thread). Odd sizes
    drop their last plane, as the pooling does.
    """
    for axis in range(2, x.ndim):
        even = (x.shape[axis] // 2) * 2
        x = torch.maximum(
            x.narrow(axis, 0, even)[(slice(None),) * axis + (slice(0, None, 2),)],
            x.narrow(axis, 0, even)[(slice(None),) * axis + (slice(1, None, 2),)],
        )
    return x


def fused_or_plain(folded: UNet, *, bf16: bool) -> nn.Module:
    """:class:`FusedUNet` if this PyTorch build runs it, else ``folded`` under autocast.

    Either returns float32 logits for a float32 input in channels-last layout.
    """
    dtype = torch.bfloat16 if bf16 else torch.float32
    layout = torch.channels_last_3d if folded.config.dims == 3 else torch.channels_last
    try:
        fused = FusedUNet(folded, dtype)
        probe = torch.zeros((1, 1) + (folded.size_multiple,) * folded.config.dims)
        with torch.inference_mode():
            fused(probe.contiguous(memory_format=layout))
        return fused
    except (RuntimeError, AttributeError, NotImplementedError):
        return _Autocast(folded, bf16)


class _Autocast(nn.Module):
    def __init__(self, net: nn.Module, bf16: bool) -> None:
        super().__init__()
        self.net, self.bf16 = net, bf16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            return self.net(x).float()
