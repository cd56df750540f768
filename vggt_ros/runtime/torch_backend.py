# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Eager PyTorch execution of the stage modules (CPU or CUDA; fp32, fp16 or bf16)."""

from __future__ import annotations

import torch

from ..model.stages import StageRunner, build_stages, torch_stage_runner

# The reference runs the heads outside autocast: exp / expm1 in the DPT activations amplify half-precision
# error, and the camera head is cheap. Only the encoder and the aggregator run in reduced precision.
_REDUCED_PRECISION_STAGES = ("dinov2", "aggregator")


def torch_stage_runner_factory(model: torch.nn.Module, device: torch.device, dtype: torch.dtype):
    """A function image_hw -> StageRunner; stages (and their size-dependent constants) are built once per size."""
    model = model.to(device=device, dtype=torch.float32).eval()
    if dtype != torch.float32:
        model.aggregator.to(dtype)  # holds the encoder too; the heads stay float32
    cache: dict[tuple[int, int], StageRunner] = {}

    def runner_for_size(image_hw: tuple[int, int]) -> StageRunner:
        if image_hw not in cache:
            stages = build_stages(model, image_hw)
            eager = torch_stage_runner(stages, model.config.tapped_layers)

            def run(name, inputs):
                stage_dtype = dtype if name in _REDUCED_PRECISION_STAGES else torch.float32
                with torch.inference_mode():
                    outputs = eager(name, {k: v.to(stage_dtype) for k, v in inputs.items()})
                return outputs

            cache[image_hw] = run
        return cache[image_hw]

    return runner_for_size
