# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Accuracy of a pipeline against the float32 torch reference, in the form docs/engines.md quotes."""

from __future__ import annotations

import torch

# Output groups as reported: each is the relative L1 error of its tensors against the reference.
REPORTED = {
    "depth": ("depth",),
    "points": ("world_points",),
    "camera": ("pose_enc",),
    "depth_conf": ("depth_conf",),
    "points_conf": ("world_points_conf",),
}


def relative_errors(outputs: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> dict[str, float]:
    """mean |out - ref| / mean |ref| per reported group, in percent."""
    errors = {}
    for group, keys in REPORTED.items():
        diff = sum((outputs[k].double().cpu() - reference[k].double().cpu()).abs().sum() for k in keys)
        scale = sum(reference[k].double().cpu().abs().sum() for k in keys)
        errors[group] = float(100.0 * diff / scale)
    return errors


def format_errors(errors: dict[str, float]) -> str:
    return ", ".join(f"{group} {value:.3g} %" for group, value in errors.items())
