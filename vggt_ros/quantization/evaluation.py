# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Running a (partly quantized) model over the calibration windows, the way the pipeline runs it.

Every measurement of the recipe (the FP32 reference, the per-block sensitivity, each scale candidate, the final
error) goes through `window_outputs`, so they all see the same five stages in the same order as the runtime.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from vggt_ros.model.stages import build_stages, run_stages, torch_stage_runner

# Called with (stage name, its outputs) after each stage runs; the reference pass reads the tapped tokens with it.
StageObserver = Callable[[str, Mapping[str, torch.Tensor]], None]


def window_outputs(
    model: nn.Module, windows: Sequence[torch.Tensor], observe: StageObserver | None = None
) -> list[dict[str, torch.Tensor]]:
    """The model's output dict (batch axis B = 1, on the CPU, float32) for each window ``(S, 3, H, W)``.

    All windows share one image size (calibration images are preprocessed to one size).
    """
    device = next(model.parameters()).device
    stages = build_stages(model, tuple(windows[0].shape[-2:]))
    run = torch_stage_runner(stages, model.config.tapped_layers)

    def observed(name, inputs):
        outputs = run(name, inputs)
        if observe is not None:
            observe(name, outputs)
        return outputs

    results = []
    with torch.inference_mode():
        for window in windows:
            outputs = run_stages(observed, window.to(device, torch.float32), model.config.tapped_layers)
            results.append({k: v.float().cpu() for k, v in outputs.items()})
    return results
