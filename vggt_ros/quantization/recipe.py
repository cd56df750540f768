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

from vggt_ros.quantized_formats.compensated_head import CompensatedCameraHead
from vggt_ros.quantized_formats.layers import replaced
from vggt_ros.quantized_formats.plan import (
    DEFAULT_GROUP_SIZE,
    LINEAR_NAMES,
    PlanError,
    QuantizationPlan,
    default_plan,
    group_size_for,
    scheme_blocks,
    scheme_conflict,
    ungroupable_layers,
)
from vggt_ros.quantized_formats.schemes import W4A16, check_scheme

from .calibration import ReferencePass, reference_pass
from .compensation import DEFAULT_COMPONENTS, CompensationError, compensation_token
from .evaluation import window_outputs
from .objective import task_loss
from .search import BlockChoice, SearchConfig, search_scales
from .sensitivity import BlockSensitivity, measure_sensitivity, most_fragile

log = logging.getLogger(__name__)
COMPENSATION_MODES = ("auto", "on", "off")  # auto: kept only when it lowers the task loss on the calibration set


@dataclass(frozen=True)
class RecipeConfig:
    """protected_blocks: how many of the most sensitive blocks keep FP16 weights (QVGGT protects 4);
    plan: a (hand-edited) plan to use instead of the one derived from the sensitivity table;
    strict: refuse (rather than keep in FP16, the default) W4A16 layers whose input channels do not split into
    groups of ``group_size``."""

    scheme: str
    protected_blocks: int = 4
    group_size: int = DEFAULT_GROUP_SIZE
    search: SearchConfig = field(default_factory=SearchConfig)
    compensation: str = "auto"
    compensation_components: int = DEFAULT_COMPONENTS
    plan: QuantizationPlan | None = None
    strict: bool = False

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
            raise PlanError(scheme_conflict(self.plan.scheme, self.scheme))


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


def _fp16_layers(model: nn.Module, layers: Sequence[str], config: RecipeConfig) -> tuple[str, ...]:
    """The W4A16 layers of ``layers`` that cannot be packed in groups of ``config.group_size`` and so keep FP16
    weights; with ``config.strict``, PlanError naming the first instead."""
    if config.scheme != W4A16:
        return ()
    ungroupable = ungroupable_layers(model, layers, config.group_size)
    if config.strict:
        for name in ungroupable:
            group_size_for(model.get_submodule(name).in_features, config.group_size, name)
    elif ungroupable:
        log.warning(
            "%d layers keep FP16 weights: their input channels are not a multiple of the group size %d (listed as "
            "fp16_layers in plan.json and report.json; --strict refuses them, --group-size changes the groups)",
            len(ungroupable),
            config.group_size,
        )
    return ungroupable


def run_recipe(model: nn.Module, windows: Sequence[torch.Tensor], config: RecipeConfig) -> RecipeResult:
    """Quantize ``model`` (floating point, on its device) on the calibration ``windows`` ``(S, 3, H, W)``."""
    candidates = scheme_blocks(model, config.scheme)
    layers = [f"{block}.{linear}" for block in candidates for linear in LINEAR_NAMES]
    planned = config.plan
    if planned is not None:  # a bad hand-edited plan fails before any work
        planned = planned.keeping_fp16(_fp16_layers(model, planned.layer_names(), config))
        planned.check_against(model)
        fp16 = planned.fp16_layers
    else:
        fp16 = _fp16_layers(model, layers, config)  # before any work: --strict refuses them at once
        if len(fp16) == len(layers):
            raise PlanError(
                f"no layer of this model splits into groups of {config.group_size} input channels, so W4A16 would "
                f"quantize nothing; choose a --group-size that divides the layers' widths"
            )
    group_size = config.group_size if config.scheme == W4A16 else None
    reference = reference_pass(model, windows, layers)
    log.info("sensitivity of %d blocks on %d windows", len(candidates), len(windows))
    sensitivity = measure_sensitivity(
        model, candidates, config.scheme, group_size, reference, windows, config.search.weights, fp16
    )
    plan = planned or default_plan(
        config.scheme, candidates, most_fragile(sensitivity, config.protected_blocks), group_size
    ).keeping_fp16(fp16)
    log.info("scale search over %d blocks, %d steps each", len(plan.blocks), config.search.steps)
    layers, choices = search_scales(model, plan, reference, windows, config.search)
    token, compensation = _compensation(model, layers, reference, windows, config)
    return RecipeResult(plan, reference, sensitivity, choices, layers, token, compensation)
