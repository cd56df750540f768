# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Per-block sensitivity (QVGGT section 3.2): the error of camera, depth and points when only that block is quantized.

Each block's four linear layers are quantized with the scheme's default parameter (plain round-to-nearest for
W4A16, unclipped activations for INT8 / FP8), every other block stays in floating point, and the outputs on the
calibration windows are compared with the floating-point reference. A block's score weights the three errors as
the task objective does (camera 1.0, depth 0.1, points 0.1); the highest scores are the fragile blocks the
mixed-precision plan protects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from vggt_ros.quantized_formats.layers import linear_layers, replaced
from vggt_ros.quantized_formats.plan import LINEAR_NAMES, block_stage

from .calibration import ReferencePass
from .evaluation import window_outputs
from .objective import ObjectiveWeights, errors_vs_reference
from .quantizers import DEFAULT_PARAMETER, quantized_layer


@dataclass(frozen=True)
class BlockSensitivity:
    """Errors in percent against the floating-point model with only ``block`` quantized; ``score`` ranks them."""

    block: str
    stage: str
    camera_rel: float
    depth_rel: float
    points_rel: float
    score: float

    def to_json(self) -> dict:
        return {
            "block": self.block,
            "stage": self.stage,
            "camera_rel": self.camera_rel,
            "depth_rel": self.depth_rel,
            "points_rel": self.points_rel,
            "score": self.score,
        }


def measure_sensitivity(
    model: nn.Module,
    blocks: Sequence[str],
    scheme: str,
    group_size: int | None,
    reference: ReferencePass,
    windows: Sequence[torch.Tensor],
    weights: ObjectiveWeights = ObjectiveWeights(),
    fp16_layers: Sequence[str] = (),
) -> list[BlockSensitivity]:
    """One `BlockSensitivity` per block, in the order given; ``fp16_layers`` stay unquantized. The model is left as
    it was."""
    results = []
    for block in blocks:
        names = [f"{block}.{linear}" for linear in LINEAR_NAMES if f"{block}.{linear}" not in fp16_layers]
        layers = {
            name: quantized_layer(
                scheme, name, linear, reference.statistics[name], DEFAULT_PARAMETER[scheme], group_size
            )
            for name, linear in linear_layers(model, names).items()
        }
        with replaced(model, layers):
            errors = errors_vs_reference(window_outputs(model, windows), reference.outputs)
        score = (
            weights.camera * errors["camera_rel"]
            + weights.depth * errors["depth_rel"]
            + weights.points * errors["points_rel"]
        )
        results.append(
            BlockSensitivity(
                block, block_stage(block), errors["camera_rel"], errors["depth_rel"], errors["points_rel"], score
            )
        )
    return results


def most_fragile(sensitivity: Sequence[BlockSensitivity], count: int) -> list[str]:
    """The ``count`` blocks with the highest scores (a non-finite score counts as the highest)."""
    if count < 0:
        raise ValueError(f"the number of protected blocks must be >= 0, got {count}")
    ranked = sorted(sensitivity, key=lambda s: math.inf if math.isnan(s.score) else s.score, reverse=True)
    return [s.block for s in ranked[:count]]
