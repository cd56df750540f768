# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Small numeric helpers shared by the products, the world, the metric sources and the exports, in torch."""

from __future__ import annotations

import math
import sys

import numpy as np
import torch

# A normal distribution's standard deviation is 1.4826 times its median absolute deviation (MAD): robust scatter.
MAD_TO_SIGMA = 1.4826
# `percentile` on the CPU selects through a sample of SELECTION_SAMPLE values from this many values on: 1.8 times
# as fast as a plain selection at 8,192 values, 3 times at 45,000; at 4,096 the two take as long.
SAMPLED_SELECTION_MIN = 8_192
SELECTION_SAMPLE = 1_024
# Byte offsets of R, G, B and of the zero byte in a native-endian 32-bit word 0x00RRGGBB (PointCloud2's ``rgb``).
_LITTLE = sys.byteorder == "little"
RGB_BYTES, ZERO_BYTE = ((2, 1, 0), 3) if _LITTLE else ((1, 2, 3), 0)


# Predicted depth beyond this is no observation. VGGT normalises each scene to a mean depth of about 1, and its depth
# head's exp overflows to finite values near float32's largest (3.4e38), whose world points are Inf; below it, every
# point, distance and square the world computes stays finite, in metres too.
MAX_USABLE_DEPTH = 1e6


def usable_pixels(depth: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """Bool mask, same shape: depth in (0, MAX_USABLE_DEPTH) and finite positive confidence (NaN fails every
    comparison). Tensors or numpy arrays; CPU tensors go through numpy, whose comparisons are about five times
    faster."""
    if _on_cpu(depth, confidence):
        return torch.from_numpy(usable_pixels(depth.detach().numpy(), confidence.detach().numpy()))
    return (depth > 0) & (depth < MAX_USABLE_DEPTH) & (confidence > 0) & (confidence < math.inf)


def finite(values: torch.Tensor) -> torch.Tensor:
    """`torch.isfinite`, through numpy for a CPU tensor (several times faster there, strided or not)."""
    if _on_cpu(values):
        return torch.from_numpy(np.isfinite(values.detach().numpy()))
    return torch.isfinite(values)


def scaled_usable_depth(depth: torch.Tensor, confidence: torch.Tensor, scale: float) -> torch.Tensor:
    """``depth * scale`` where `usable_pixels`, NaN elsewhere (float32 tensors, same shape; numpy on the CPU)."""
    if _on_cpu(depth, confidence):
        array = depth.detach().numpy()
        usable = usable_pixels(array, confidence.detach().numpy())
        scaled = array * scale
        np.copyto(scaled, np.float32(math.nan), where=~usable)  # twice as fast as np.where's three-array form
        return torch.from_numpy(scaled)
    return torch.where(usable_pixels(depth, confidence), depth * scale, torch.tensor(math.nan, device=depth.device))


def _on_cpu(*values) -> bool:
    """All are float32 or float64 CPU tensors (numpy has no bfloat16)."""
    return all(
        isinstance(v, torch.Tensor) and v.device.type == "cpu" and v.dtype in (torch.float32, torch.float64)
        for v in values
    )


def pack_rgb(colors: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` uint8 RGB -> ``(...)`` float32 whose bits are 0x00RRGGBB (PointCloud2's ``rgb`` field)."""
    words = torch.empty((*colors.shape[:-1], 4), dtype=torch.uint8, device=colors.device)
    write_rgb(colors, words)
    return words.view(torch.float32)[..., 0]


def write_rgb(colors: torch.Tensor, words: torch.Tensor) -> None:
    """Write ``(..., 3)`` uint8 RGB into the bytes ``(..., 4)`` uint8 of float32 words as 0x00RRGGBB (`pack_rgb`),
    in place: byte copies, no integer arithmetic."""
    for channel, offset in enumerate(RGB_BYTES):
        words[..., offset] = colors[..., channel]
    words[..., ZERO_BYTE] = 0


def read_rgb(words: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` uint8 RGB out of the bytes ``(..., 4)`` uint8 of `pack_rgb` words (the inverse of `write_rgb`)."""
    colors = torch.empty((*words.shape[:-1], 3), dtype=torch.uint8, device=words.device)
    for channel, offset in enumerate(RGB_BYTES):
        colors[..., channel] = words[..., offset]
    return colors


def flat_nonzero(mask: torch.Tensor) -> torch.Tensor:
    """``(P,)`` int64 indices of the True entries of a 1-D bool tensor, increasing, on its device. On the CPU through
    numpy, whose selection is several times faster than torch.nonzero's."""
    if mask.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(mask.numpy()))
    return torch.nonzero(mask)[:, 0]


def percentile(values: torch.Tensor, q: float) -> float:
    """The q-th percentile (0..100) of a 1-D tensor of finite values with numpy's default (linear) interpolation,
    by selection."""
    count = values.numel()
    position = q / 100.0 * (count - 1)
    low = int(math.floor(position))
    lower, upper = _order_statistics(values, low, position > low)
    if upper is None:
        return float(lower)
    return float(lower + (upper - lower) * (position - low))


def _order_statistics(values: torch.Tensor, low: int, next_too: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The (low+1)-th smallest value and, when asked, the next one, as 0-d tensors of the values' dtype. One
    selection: numpy's on the CPU (twice as fast as torch.kthvalue there), torch's elsewhere."""
    return (_numpy_order_statistics if values.device.type == "cpu" else _torch_order_statistics)(values, low, next_too)


def _numpy_order_statistics(values: torch.Tensor, low: int, next_too: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    array = np.ascontiguousarray(values.detach().cpu().numpy())
    if array.size >= SAMPLED_SELECTION_MIN:
        bracketed = _bracketed_order_statistics(array, low, next_too)
        if bracketed is not None:
            return bracketed
    ordered = np.partition(array, low)  # everything after ``low`` is >= its value
    lower = torch.tensor(ordered[low])
    return lower, torch.tensor(ordered[low + 1 :].min()) if next_too else None


def _bracketed_order_statistics(
    array: np.ndarray, low: int, next_too: bool
) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """`_numpy_order_statistics` of a large ``(n,)`` array through a sample (Floyd and Rivest's selection), or None
    where the sample's bracket misses the ranks (then the caller selects among all values).

    The values between two sample order statistics that bracket the wanted rank are exactly the ranks from
    ``below`` (the count of smaller values) on, so the wanted values are order statistics of that small set: two
    comparisons over all values and a selection among a few percent of them, about twice as fast as selecting
    among all.
    """
    sample = np.sort(array[:: array.size // SELECTION_SAMPLE])
    # The wanted rank's place in the sample, widened by 4 standard deviations of a sample rank (at most sqrt(m) / 2).
    # A bracket reaching past the sample's ends is open there: the array's extremes need not be in the sample.
    centre = low / (array.size - 1) * (sample.size - 1)
    margin = 2.0 * math.sqrt(sample.size) + 1.0
    start, stop = math.floor(centre - margin), math.ceil(centre + margin)
    lower_bound = sample[start] if start > 0 else -np.inf
    upper_bound = sample[stop] if stop < sample.size - 1 else np.inf
    below = int(np.count_nonzero(array < lower_bound))
    inside = array[(array >= lower_bound) & (array <= upper_bound)]
    first, last = low - below, low - below + int(next_too)
    if first < 0 or last >= inside.size:
        return None
    ordered = np.partition(inside, (first, last))
    return torch.tensor(ordered[first]), torch.tensor(ordered[last]) if next_too else None


def _torch_order_statistics(values: torch.Tensor, low: int, next_too: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    lower = values.kthvalue(low + 1).values
    if not next_too:
        return lower, None
    if int((values <= lower).sum()) >= low + 2:  # the value repeats
        return lower, lower
    return lower, torch.where(values > lower, values, math.inf).min()
