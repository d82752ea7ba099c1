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
That fusion alone gives the unfused network's logits under the same dtype (identical
on a 288³ block here) in about three quarters of the time (5.1 s instead of 6.7 s on
that block at one thread); a test checks the whole of this module's network against
the plain one to float rounding. It pools by pairwise maxima
(:func:`max_pool_2`; the same values, without the argmax indices PyTorch's CPU pooling
writes). Each up block's first convolution reads the upsampled map and the skip
connection concatenated; the concatenation is never built: the transposed convolution
that upsamples and that convolution's share of its output are composed into one
transposed convolution of the coarser map (:func:`compose_upsampling`; the upsampled
map is never stored either), and the skip's share, the bias and the ReLU are added into
its output as oneDNN post-ops. On a 288³ block this took the top level from 1.15 to
0.75 s and the whole network from about 3.9 to 3.4 s at one thread; the logits are
not bit-equal (a different order of sums, rounded to bfloat16 at other points: mean
|Δp| 0.0004, at most 0.005 on that block). The one-channel input image is widened by
zero channels (:data:`INPUT_CHANNELS`), which oneDNN convolves faster. Inference on
CPU only: the converted weights are plain tensors, not registered parameters.

Where the op is missing or fails (a PyTorch build without oneDNN),
:func:`fused_or_plain` returns the plain network and nothing changes but speed.

References
----------
.. [1] oneDNN developer guide, "Primitive attributes: post-ops",
   https://oneapi-src.github.io/oneDNN/dev_guide_attributes_post_ops.html
.. [2] PyTorch, ``torch/_inductor/fx_passes/mkldnn_fusion.py`` (conv + unary fusion).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from ._unet import UNet

__all__ = ["INPUT_CHANNELS", "FusedUNet", "compose_upsampling", "fused_or_plain", "max_pool_2"]

#: Channels the one-channel input image is widened to (with zeros), by dimensionality.
#: oneDNN convolves a one-channel bfloat16 image without AMX: a 2D 1 -> 12 convolution
#: of a 1024² section took 44 ms at one thread (Xeon with AMX), 5.8 ms over 2 channels.
#: In 3D the gain is small: alone, the first convolution of a 288³ block took 1.07 s,
#: 0.54 s over 4 channels (plus 0.09 s to build them); in the whole network about 0.05 to
#: 0.1 of 3.4 s, within run-to-run noise.
INPUT_CHANNELS = {2: 2, 3: 4}


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
        # The first convolution reads the one-channel image widened by zero channels
        # (:data:`INPUT_CHANNELS`), with zero weights for them: the same sums.
        (w, bias), *rest = self._down[0]
        self.in_channels = INPUT_CHANNELS[dims] if w.shape[1] == 1 else w.shape[1]
        if self.in_channels != w.shape[1]:
            wide = w.new_zeros((w.shape[0], self.in_channels, *w.shape[2:]))
            wide[:, :1] = w
            self._down[0] = [(wide.contiguous(memory_format=layout), bias), *rest]
        self._bottom = _conv_weights(folded.bottom, dtype, layout)
        # Each up block's first convolution reads [upsampled, skip] concatenated. Its
        # share of the upsampled map is composed with the transposed convolution into
        # one (:func:`compose_upsampling`); the skip's share is added to that as a post-op.
        self._up_blocks = []
        for u, b in zip(folded.up, folded.up_blocks, strict=True):
            first = next(m for m in b if isinstance(m, nn.Conv2d | nn.Conv3d))
            kernel, bias, faces = compose_upsampling(u, first)
            (w, _), *rest = _conv_weights(b, dtype, layout)
            skip_weights = w[:, u.weight.shape[1] :].contiguous(memory_format=layout)
            faces = [(region, value.to(dtype)) for region, value in faces]
            self._up_blocks.append((kernel.to(dtype), bias.to(dtype), faces, skip_weights, rest))
        self._out = (
            folded.out.weight.detach().to(dtype).contiguous(memory_format=layout),
            folded.out.bias.detach().to(dtype),
        )
        self._layout = layout
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
        if x.shape[1] == 1 and self.in_channels > 1:
            wide = x.new_zeros((x.shape[0], *x.shape[2:], self.in_channels), dtype=self.dtype)
            wide[..., 0] = x[:, 0]
            x = wide.movedim(-1, 1)  # channels-last, as the convolutions read it
        x = x.to(self.dtype)
        skips = []
        for weights in self._down:
            x = self._conv_relu(x, weights)
            skips.append(x)
            x = max_pool_2(x)
        x = self._conv_relu(x, self._bottom)
        ones = [1] * self.dims
        for kernel, bias, faces, skip_weights, rest in self._up_blocks:
            # conv([up(x), skip]) = T(x) + conv(skip): the upsampling and its share of the
            # convolution as one transposed convolution T (with the bias the faces lack),
            # then the skip's share, the bias and the ReLU added into it by oneDNN.
            y = self._up_conv(x, kernel, None, stride=2, padding=1)
            y = y.contiguous(memory_format=self._layout)
            for region, value in faces:
                y[(slice(None), slice(None), *region)] += value
            y = torch.ops.mkldnn._convolution_pointwise_(
                y, skips.pop(), skip_weights, bias,
                ones, ones, ones, 1, "add", 1.0, "relu", [None], "",
            )  # fmt: skip
            x = self._conv_relu(y, rest)
        return self._conv(x, *self._out).float()


def compose_upsampling(
    up: nn.ConvTranspose2d | nn.ConvTranspose3d, conv: nn.Conv2d | nn.Conv3d
) -> tuple[torch.Tensor, torch.Tensor, list[tuple[tuple[slice, ...], torch.Tensor]]]:
    """``conv``'s share of ``up``'s output, as one transposed convolution of ``up``'s input.

    ``up`` doubles the grid (kernel 2, stride 2, weights ``W``, bias ``b``); ``conv``
    (kernel 3, padding 1, weights ``V``) reads its ``c`` output channels first. A voxel
    ``p`` of the convolution sees the upsampled voxels ``p - 1 .. p + 1``, which come
    from input voxels ``i`` with ``p - 2i`` in ``-1 .. 2``: so the two are one transposed
    convolution with kernel 4, stride 2 and padding 1, whose tap ``t = p - 2i + 1`` sums
    ``W[a] V[d]`` over the pairs with ``a - d + 2 = t`` (``a`` in 0..1, ``d`` in 0..2, per
    axis). Neither the upsampled map nor the convolution of it is then computed or
    stored: the top level of a 288³ block took 0.75 instead of 1.15 s.

    ``up``'s bias passes through ``conv`` as ``sum V b`` over the taps inside the map:
    the whole sum, returned as the bias, everywhere but at the faces, where ``conv``'s
    zero padding leaves some taps out. The faces' differences are returned by region.
    Computed in float64.

    Returns
    -------
    kernel : (C_in, C_out, 4, ...) tensor
    bias : (C_out,) tensor
    faces : list of (region, (C_out, 1, ...) tensor)
        For each region (a tuple of one slice per spatial axis: the first voxel, the
        last voxel, or those in between, not all in between), what to add there.
    """
    dims = up.weight.ndim - 2
    w = up.weight.detach().double()  # (C_in, c, 2, ...)
    c = w.shape[1]
    v = conv.weight.detach().double()[:, :c]  # (C_out, c, 3, ...)
    kernel = w.new_zeros((w.shape[0], v.shape[0], *(4,) * dims))
    for a in itertools.product((0, 1), repeat=dims):
        for d in itertools.product((0, 1, 2), repeat=dims):
            t = tuple(ai - di + 2 for ai, di in zip(a, d, strict=True))
            kernel[(slice(None), slice(None), *t)] += w[(..., *a)] @ v[(..., *d)].T
    # Bias through each tap, (C_out, 3, ...); the taps a face voxel keeps, per axis.
    up_bias = up.bias.detach().double() if up.bias is not None else v.new_zeros(c)
    through = torch.einsum("oc...,c->o...", v, up_bias)
    if conv.bias is not None:
        base = conv.bias.detach().double()
    else:
        base = torch.zeros(v.shape[0], dtype=torch.float64)
    kept = {"first": slice(1, 3), "inner": slice(0, 3), "last": slice(0, 2)}
    where = {"first": slice(0, 1), "inner": slice(1, -1), "last": slice(-1, None)}
    inner = through.sum(dim=tuple(range(1, dims + 1)))
    faces = []
    for place in itertools.product(kept, repeat=dims):
        if all(p == "inner" for p in place):
            continue
        part = through[(slice(None), *(kept[p] for p in place))].sum(dim=tuple(range(1, dims + 1)))
        faces.append((tuple(where[p] for p in place), (part - inner).reshape(-1, *(1,) * dims)))
    return kernel, base + inner, faces


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
