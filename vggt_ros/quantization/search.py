# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Scale search against the task objective (QVGGT section 3.4).

AWQ searches a grid of scales per layer against the layer's own reconstruction error; QVGGT keeps the grid but
scores each candidate by the heads' outputs (`objective.task_loss`: camera 1.0, depth 0.1, points 0.1, cross-head
consistency 1.0). Here the grid is over `quantizers`' parameter (AWQ's alpha for W4A16, the activation clipping
range for INT8 / FP8), one choice per block for all its planned layers, and blocks are decided greedily in
execution order: while a block is searched, the blocks before it are already quantized with their choice and the
blocks after it are still in floating point, so each choice sees the error that reaches it.

Cost: (planned blocks) x (steps) passes of the model over the calibration windows. A search with one step
evaluates nothing and keeps the default parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from vggt_ros.quantized_formats.layers import linear_layers, replace_modules
from vggt_ros.quantized_formats.plan import QuantizationPlan, model_blocks

from .calibration import ReferencePass
from .evaluation import window_outputs
from .objective import ObjectiveWeights, task_loss
from .quantizers import parameter_grid, quantized_layer


@dataclass(frozen=True)
class SearchConfig:
    """steps: candidates per block, evenly spaced in [0, 1]; weights: the task objective's."""

    steps: int = 5
    weights: ObjectiveWeights = ObjectiveWeights()

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer (1: no search), got {self.steps!r}")


@dataclass(frozen=True)
class BlockChoice:
    """The parameter kept for a block and the task loss it gave (NaN when nothing was evaluated)."""

    block: str
    parameter: float
    loss: float

    def to_json(self) -> dict:
        return {"block": self.block, "parameter": self.parameter, "task_loss": self.loss}


def search_scales(
    model: nn.Module,
    plan: QuantizationPlan,
    reference: ReferencePass,
    windows: Sequence[torch.Tensor],
    config: SearchConfig = SearchConfig(),
) -> tuple[dict[str, nn.Module], list[BlockChoice]]:
    """The quantized layer chosen for every planned layer (name -> module), and each block's choice.

    The model is left with its original layers.
    """
    originals = linear_layers(model, plan.layer_names())
    grid = parameter_grid(plan.scheme, config.steps)
    chosen: dict[str, nn.Module] = {}
    choices = []

    def candidate(names: list[str], parameter: float) -> dict[str, nn.Module]:
        return {
            name: quantized_layer(
                plan.scheme, name, originals[name], reference.statistics[name], parameter, plan.group_size
            )
            for name in names
        }

    try:
        for block in (b for b in model_blocks(model) if b in plan.blocks):
            names = [f"{block}.{linear}" for linear in plan.blocks[block]]
            best = (math.nan, grid[0], candidate(names, grid[0])) if len(grid) == 1 else None
            for parameter in grid if best is None else ():
                layers = candidate(names, parameter)
                replace_modules(model, layers)
                loss = task_loss(window_outputs(model, windows), reference.outputs, config.weights).total
                loss = math.inf if math.isnan(loss) else loss  # a candidate whose outputs are NaN loses
                if best is None or loss < best[0]:
                    best = (loss, parameter, layers)
            loss, parameter, layers = best
            replace_modules(model, layers)
            chosen.update(layers)
            choices.append(BlockChoice(block, parameter, loss))
    finally:
        replace_modules(model, originals)
    return chosen, choices
