# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Symmetric INT4 weights in groups, packed two per byte, and the W4A16 linear layer that runs them.

Format (QVGGT eq. 2-3, AWQ-style input scaling):

* A weight ``(N, K)`` is split into groups of ``g`` consecutive input channels per row. Each group's scale is
  ``max |w| / 7`` stored as float16, and ``q = clamp(round(w / scale), -8, 7)``; the dequantised weight is
  ``q * scale``. Zero groups get the smallest normal float16 scale rather than 0, so nothing divides by zero.
* Two values per byte, signed two's complement, the even channel in the low nibble: the layout of ONNX INT4 and of
  TensorRT's INT4 weights, so the same bytes could feed either.
* An optional per-input-channel ``input_scale`` s (float16, from the scale search): the layer quantizes ``W * s``
  and divides its input by s, which moves quantization error away from the channels whose activations are large.

`FakeInt4Linear` holds the dequantised float32 weight (fast to evaluate during calibration); `W4A16Linear` holds
only the packed bytes and the scales and dequantises on every call, one layer at a time, into the activation dtype.
Both are built from the same `Int4Weight` and compute ``F.linear(x / s, dequantised.to(x.dtype), bias)`` the same
way, so their outputs are bitwise equal; that is the guarantee the packed export relies on.

The unpack-then-matmul path runs on any device. Fused INT4 kernels (torch's tinygemm ``_weight_int4pack_mm``,
torchao) need CUDA and their own layouts; bench/quantization.py measures them against this path on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

INT4_MIN, INT4_MAX = -8, 7
SCALE_DTYPE = torch.float16
# Smallest normal float16: a group scale below it would lose precision (or be zero) once stored.
_MIN_SCALE = float(torch.finfo(torch.float16).tiny)


@dataclass(frozen=True)
class Int4Weight:
    """packed ``(N, K/2)`` uint8, scales ``(N, K/g)`` float16, ``g`` = group_size input channels per scale."""

    packed: torch.Tensor
    scales: torch.Tensor
    group_size: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.packed.shape[0], 2 * self.packed.shape[1]

    @property
    def nbytes(self) -> int:
        return self.packed.numel() * self.packed.element_size() + self.scales.numel() * self.scales.element_size()


def quantize_int4(weight: torch.Tensor, group_size: int) -> Int4Weight:
    """Quantize a ``(N, K)`` weight; ``K`` must be a multiple of the (even) ``group_size``."""
    if weight.ndim != 2 or group_size < 2 or group_size % 2 or weight.shape[1] % group_size:
        raise ValueError(
            f"weight {tuple(weight.shape)} cannot be split into groups of {group_size} input channels; "
            "the group size must be even and divide the number of input channels"
        )
    rows, columns = weight.shape
    groups = weight.detach().float().reshape(rows, columns // group_size, group_size)
    scales = (groups.abs().amax(dim=-1) / INT4_MAX).clamp(min=_MIN_SCALE).to(SCALE_DTYPE)
    # Round with the stored (float16) scale, so dequantisation uses exactly the scale the values were rounded with.
    q = torch.round(groups / scales.float()[..., None]).clamp(INT4_MIN, INT4_MAX).to(torch.int8).reshape(rows, columns)
    packed = (q[:, 0::2] & 0x0F) | (q[:, 1::2] << 4)
    return Int4Weight(packed.view(torch.uint8).contiguous(), scales.contiguous(), group_size)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """``(N, K/2)`` uint8 -> ``(N, K)`` int8 values in [-8, 7]."""
    signed = packed.view(torch.int8)
    low = (signed << 4) >> 4  # arithmetic shifts sign-extend the low nibble
    high = signed >> 4
    return torch.stack((low, high), dim=-1).reshape(packed.shape[0], -1)


def dequantize_int4(packed: torch.Tensor, scales: torch.Tensor, group_size: int) -> torch.Tensor:
    """The float32 ``(N, K)`` weight ``q * scale`` of packed values and their group scales."""
    return unpack_int4(packed).float() * scales.float().repeat_interleave(group_size, dim=1)


def _scaled_linear(
    x: torch.Tensor, weight: torch.Tensor, input_scale: torch.Tensor | None, bias: torch.Tensor | None
) -> torch.Tensor:
    if input_scale is not None:
        x = x / input_scale.to(x.dtype)
    return F.linear(x, weight.to(x.dtype), None if bias is None else bias.to(x.dtype))


def _quantized_weight(linear: nn.Linear, group_size: int, input_scale: torch.Tensor | None) -> Int4Weight:
    weight = linear.weight.detach().float()
    if input_scale is not None:
        weight = weight * input_scale.float()[None, :]
    return quantize_int4(weight, group_size)


class FakeInt4Linear(nn.Module):
    """A linear layer with INT4-rounded weights kept as float32: the fake-quantized reference of `W4A16Linear`."""

    def __init__(self, int4: Int4Weight, input_scale: torch.Tensor | None, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.int4 = int4
        self.register_buffer("weight", dequantize_int4(int4.packed, int4.scales, int4.group_size))
        self.register_buffer("input_scale", None if input_scale is None else input_scale.to(SCALE_DTYPE))
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)

    @classmethod
    def from_linear(
        cls, linear: nn.Linear, group_size: int, input_scale: torch.Tensor | None = None
    ) -> "FakeInt4Linear":
        """Quantize ``linear`` (optionally scaled per input channel by ``input_scale`` (K,))."""
        if input_scale is not None:
            input_scale = input_scale.to(SCALE_DTYPE)
        return cls(_quantized_weight(linear, group_size, input_scale), input_scale, linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _scaled_linear(x, self.weight, self.input_scale, self.bias)

    def packed(self) -> "W4A16Linear":
        """The same layer with packed storage."""
        return W4A16Linear.from_int4(self.int4, self.input_scale, self.bias)


class W4A16Linear(nn.Module):
    """A linear layer storing packed INT4 weights; dequantises them into the activation dtype on every call.

    Buffers: ``packed_weight`` (N, K/2) uint8, ``weight_scales`` (N, K/g) float16, ``input_scale`` (K,) float16 or
    absent; ``bias`` (N,) stays an ordinary parameter.
    """

    _STORAGE = ("packed_weight", "weight_scales", "input_scale")

    def __init__(
        self, in_features: int, out_features: int, group_size: int, bias: bool = True, input_scale: bool = False
    ) -> None:
        super().__init__()
        if in_features % group_size or group_size % 2:
            raise ValueError(f"{in_features} input channels cannot be split into groups of {group_size}")
        self.in_features, self.out_features, self.group_size = in_features, out_features, group_size
        self.register_buffer("packed_weight", torch.zeros(out_features, in_features // 2, dtype=torch.uint8))
        self.register_buffer("weight_scales", torch.ones(out_features, in_features // group_size, dtype=SCALE_DTYPE))
        self.register_buffer("input_scale", torch.ones(in_features, dtype=SCALE_DTYPE) if input_scale else None)
        self.bias = nn.Parameter(torch.zeros(out_features), requires_grad=False) if bias else None

    @classmethod
    def from_int4(cls, int4: Int4Weight, input_scale: torch.Tensor | None, bias: torch.Tensor | None) -> "W4A16Linear":
        out_features, in_features = int4.shape
        layer = cls(in_features, out_features, int4.group_size, bias is not None, input_scale is not None)
        layer.packed_weight.copy_(int4.packed)
        layer.weight_scales.copy_(int4.scales)
        if input_scale is not None:
            layer.input_scale.copy_(input_scale)
        if bias is not None:
            layer.bias.data.copy_(bias.detach())
        return layer

    @property
    def storage_bytes(self) -> int:
        """Bytes of the packed weight, its scales and the input scale (the bias is counted with the float weights)."""
        return sum(
            t.numel() * t.element_size()
            for t in (self.packed_weight, self.weight_scales, self.input_scale)
            if t is not None
        )

    def dequantized_weight(self) -> torch.Tensor:
        return dequantize_int4(self.packed_weight, self.weight_scales, self.group_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _scaled_linear(x, self.dequantized_weight(), self.input_scale, self.bias)

    def _apply(self, fn, recurse=True):
        # `model.to(dtype)` converts every floating buffer; the stored format must survive it (float16 scales
        # through bfloat16 would lose precision), so storage follows device moves only.
        kept = {name: getattr(self, name) for name in self._STORAGE if getattr(self, name) is not None}
        super()._apply(fn, recurse)
        for name, original in kept.items():
            setattr(self, name, original.to(device=getattr(self, name).device))
        return self

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, group_size={self.group_size}, "
            f"input_scale={self.input_scale is not None}"
        )
