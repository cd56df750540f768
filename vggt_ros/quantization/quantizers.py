# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""One quantized linear layer per scheme, from the float layer, its calibration statistics and one search parameter.

The search parameter is a number in [0, 1] whose meaning depends on the scheme:

* W4A16: AWQ's exponent alpha. The layer quantizes ``W * s`` and divides its input by ``s``, with
  ``s = m ** alpha`` normalised to a geometric mean of 1 and ``m`` the mean |x| of each input channel over image
  tokens. alpha = 0 is plain round-to-nearest; larger alpha protects the weights of channels whose activations are
  large.
* INT8 / FP8: where the activation range sits between the image tokens' largest |x| (0: the camera and register
  tokens' outliers are clipped) and the largest |x| over every token (1: nothing is clipped).

`DEFAULT_PARAMETER` is what the sensitivity analysis uses and what a search with one step keeps.
"""

from __future__ import annotations

import torch
from torch import nn

from vggt_ros.quantized_formats.int4 import FakeInt4Linear
from vggt_ros.quantized_formats.plan import group_size_for
from vggt_ros.quantized_formats.schemes import FP8, INT8, W4A16, check_scheme

from .calibration import LayerStatistics
from .qdq import QDQLinear

DEFAULT_PARAMETER = {W4A16: 0.0, INT8: 1.0, FP8: 1.0}
_MIN_CHANNEL_MEAN = 1e-6  # a channel that is always zero would otherwise get a zero scale


def parameter_grid(scheme: str, steps: int) -> tuple[float, ...]:
    """``steps`` evenly spaced parameters in [0, 1]; one step: the scheme's default."""
    check_scheme(scheme)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"search steps must be a positive integer, got {steps!r}")
    if steps == 1:
        return (DEFAULT_PARAMETER[scheme],)
    return tuple(float(v) for v in torch.linspace(0.0, 1.0, steps))


def awq_input_scale(channel_mean_abs: torch.Tensor, alpha: float) -> torch.Tensor | None:
    """Per-input-channel scale ``(K,)`` for exponent ``alpha``; None for alpha = 0 (no scaling)."""
    if alpha == 0:
        return None
    scale = channel_mean_abs.float().clamp(min=_MIN_CHANNEL_MEAN) ** alpha
    return scale / torch.sqrt(scale.max() * scale.min())


def quantized_layer(
    scheme: str, name: str, linear: nn.Linear, statistics: LayerStatistics, parameter: float, group_size: int | None
) -> nn.Module:
    """The quantized replacement of ``linear`` (called ``name``) for one search parameter."""
    if scheme == W4A16:
        group = group_size_for(linear.in_features, group_size, name)
        input_scale = awq_input_scale(statistics.channel_mean_abs.to(linear.weight.device), parameter)
        return FakeInt4Linear.from_linear(linear, group, input_scale)
    amax = statistics.image_amax + parameter * (statistics.all_amax - statistics.image_amax)
    return QDQLinear(linear, scheme, amax).to(linear.weight.device)
