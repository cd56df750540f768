# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The QVGGT recipe on a model and calibration windows, in memory: statistics, sensitivity, plan, search, token.

Order matters: the plan needs the sensitivity table, the search needs the plan and the image-token statistics, and
whether the compensation token helps can only be judged on the searched model. The model is handed back with its
original layers; `RecipeResult.layers` holds the chosen quantized ones for the exports to use. While the recipe
runs, the original layers and their quantized candidates (float32 weights, fast to evaluate) are both in memory:
about twice the FP32 model, some 10 GB for VGGT-1B.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from .calibration import ReferencePass, reference_pass
from .compensation import DEFAULT_COMPONENTS, CompensatedCameraHead, CompensationError, compensation_token
from .evaluation import window_outputs
from .layers import replaced
from .objective import task_loss
from .plan import DEFAULT_GROUP_SIZE, LINEAR_NAMES, PlanError, QuantizationPlan, default_plan, scheme_blocks
from .schemes import W4A16, check_scheme
from .search import BlockChoice, SearchConfig, search_scales
from .sensitivity import BlockSensitivity, measure_sensitivity, most_fragile

log = logging.getLogger(__name__)
COMPENSATION_MODES = ("auto", "on", "off")  # auto: kept only when it lowers the task loss on the calibration set


@dataclass(frozen=True)
class RecipeConfig:
    """protected_blocks: how many of the most sensitive blocks keep FP16 weights (QVGGT protects 4);
    plan: a (hand-edited) plan to use instead of the one derived from the sensitivity table."""

    scheme: str
    protected_blocks: int = 4
    group_size: int = DEFAULT_GROUP_SIZE
    search: SearchConfig = field(default_factory=SearchConfig)
    compensation: str = "auto"
    compensation_components: int = DEFAULT_COMPONENTS
    plan: QuantizationPlan | None = None

    def __post_init__(self) -> None:
        check_scheme(self.scheme)
        if (
            isinstance(self.protected_blocks, bool)
            or not isinstance(self.protected_blocks, int)
            or self.protected_blocks < 0
        ):
            raise ValueError(f"protected_blocks must be an integer >= 0, got {self.protected_blocks!r}")
        if self.compensation not in COMPENSATION_MODES:
            raise ValueError(f"compensation must be one of {COMPENSATION_MODES}, got {self.compensation!r}")
        if self.compensation_components < 1:
            raise ValueError(f"compensation_components must be >= 1, got {self.compensation_components}")
        if self.plan is not None and self.plan.scheme != self.scheme:
            raise PlanError(
                f"the plan is for {self.plan.scheme} but the scheme asked for is {self.scheme}; quantize "
                f"with --scheme {self.plan.scheme}, or set the plan's scheme (and group_size) to match"
            )


@dataclass
class RecipeResult:
    plan: QuantizationPlan
    reference: ReferencePass
    sensitivity: list[BlockSensitivity]
    choices: list[BlockChoice]
    layers: dict[str, nn.Module]
    compensation_token: torch.Tensor | None
    compensation: dict[str, Any]


def _compensation(
    model: nn.Module,
    layers: dict[str, nn.Module],
    reference: ReferencePass,
    windows: Sequence[torch.Tensor],
    config: RecipeConfig,
) -> tuple[torch.Tensor | None, dict]:
    """The token to keep (or None) and how that was decided, with the task losses measured either way."""
    if config.compensation == "off":
        return None, {"mode": "off", "kept": False}
    try:
        token = compensation_token(reference.camera_tokens, reference.patch_token_norm, config.compensation_components)
    except CompensationError as err:
        if config.compensation == "on":
            raise
        return None, {"mode": "auto", "kept": False, "reason": str(err)}
    weights = config.search.weights
    with replaced(model, layers):
        without = task_loss(window_outputs(model, windows), reference.outputs, weights).total
        head = model.camera_head
        model.camera_head = CompensatedCameraHead(head, token.to(next(head.parameters()).device))
        try:
            with_token = task_loss(window_outputs(model, windows), reference.outputs, weights).total
        finally:
            model.camera_head = head
    kept = config.compensation == "on" or with_token < without
    return (token if kept else None), {
        "mode": config.compensation,
        "kept": kept,
        "task_loss_with": with_token,
        "task_loss_without": without,
    }


def run_recipe(model: nn.Module, windows: Sequence[torch.Tensor], config: RecipeConfig) -> RecipeResult:
    """Quantize ``model`` (floating point, on its device) on the calibration ``windows`` ``(S, 3, H, W)``."""
    if config.plan is not None:
        config.plan.check_against(model)  # a bad hand-edited plan fails before any work
    candidates = scheme_blocks(model, config.scheme)
    group_size = config.group_size if config.scheme == W4A16 else None
    reference = reference_pass(model, windows, [f"{block}.{linear}" for block in candidates for linear in LINEAR_NAMES])
    log.info("sensitivity of %d blocks on %d windows", len(candidates), len(windows))
    sensitivity = measure_sensitivity(
        model, candidates, config.scheme, group_size, reference, windows, config.search.weights
    )
    plan = config.plan or default_plan(
        config.scheme, candidates, most_fragile(sensitivity, config.protected_blocks), group_size
    )
    log.info("scale search over %d blocks, %d steps each", len(plan.blocks), config.search.steps)
    layers, choices = search_scales(model, plan, reference, windows, config.search)
    token, compensation = _compensation(model, layers, reference, windows, config)
    return RecipeResult(plan, reference, sensitivity, choices, layers, token, compensation)
