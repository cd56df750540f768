# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""How far a quantized model's outputs are from the floating-point model's: the task objective and the report's errors.

There is no ground truth on a user's images, so the floating-point model's outputs stand in for it. QVGGT's task
objective (section 3.4, eq. 12) combines

* camera: the pose encodings' relative L1 error (weight 1.0);
* depth and points: relative L1 errors weighted by the reference's confidence maps (weights 0.1 and 0.1);
* consistency: how far the points unprojected from the quantized depth with the quantized cameras lie from the
  quantized point head's points (weight 1.0): the heads of VGGT describe one geometry, and scales that keep them
  agreeing keep that geometry.

Every term is relative (dimensionless), so the paper's weights balance terms of comparable size whatever the
scene's scale. A frame whose field of view is unusable (outside (0, pi)) has no camera to unproject with: frames
where the floating-point model's is unusable are left out of the consistency term, and a candidate that makes a
usable one unusable gets an infinite term, so it loses.

The report's errors are the seed's (`vggt_ros.runtime.verify.relative_errors`): mean |out - ref| / mean |ref|, in
percent, over all windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Mapping, Sequence

import torch

from vggt_ros.geometry import pose_encoding_to_extrinsics_intrinsics, unproject_depth
from vggt_ros.runtime.verify import relative_errors

Outputs = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class ObjectiveWeights:
    camera: float = 1.0
    depth: float = 0.1
    points: float = 0.1
    consistency: float = 1.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"objective weight {item.name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class TaskLoss:
    camera: float
    depth: float
    points: float
    consistency: float
    total: float


def _weighted_relative(out: torch.Tensor, ref: torch.Tensor, confidence: torch.Tensor) -> float:
    weight = confidence.double().reshape(*confidence.shape, *([1] * (ref.ndim - confidence.ndim)))
    return float((weight * (out.double() - ref.double()).abs()).sum() / (weight * ref.double().abs()).sum())


def _usable_cameras(pose_enc: torch.Tensor) -> torch.Tensor:
    """(S,) frames whose two fields of view lie in (0, pi), i.e. that have intrinsics."""
    fov = pose_enc[0, :, 7:9]
    return ((fov > 0) & (fov < math.pi)).all(dim=-1)


def head_consistency(outputs: Outputs, reference: Outputs) -> float:
    """Mean distance between depth-plus-camera points and point-head points, over the reference points' mean norm.

    Frames without a usable reference camera have nothing to preserve and are left out; a frame whose reference
    camera is usable but whose quantized one is not makes the term infinite.
    """
    frames = _usable_cameras(reference["pose_enc"])
    if not bool(_usable_cameras(outputs["pose_enc"])[frames].all()):
        return math.inf
    if not bool(frames.any()):
        return 0.0
    pose_enc = outputs["pose_enc"][0, frames].double()
    depth = outputs["depth"][0, frames, ..., 0].double()
    points = outputs["world_points"][0, frames].double()
    extrinsics, intrinsics = pose_encoding_to_extrinsics_intrinsics(pose_enc, tuple(depth.shape[-2:]))
    distance = (unproject_depth(depth, extrinsics, intrinsics) - points).norm(dim=-1)
    valid = torch.isfinite(distance) & (depth > 0)
    if not bool(valid.any()):
        return math.inf
    return float(distance[valid].mean() / reference["world_points"].double().norm(dim=-1).mean())


def task_loss(
    outputs: Sequence[Outputs], references: Sequence[Outputs], weights: ObjectiveWeights = ObjectiveWeights()
) -> TaskLoss:
    """The objective averaged over windows (each a model output dict with batch axis B = 1)."""
    terms = {"camera": 0.0, "depth": 0.0, "points": 0.0, "consistency": 0.0}
    for out, ref in zip(outputs, references, strict=True):
        terms["camera"] += float(
            (out["pose_enc"].double() - ref["pose_enc"].double()).abs().mean() / ref["pose_enc"].double().abs().mean()
        )
        terms["depth"] += _weighted_relative(out["depth"], ref["depth"], ref["depth_conf"])
        terms["points"] += _weighted_relative(out["world_points"], ref["world_points"], ref["world_points_conf"])
        terms["consistency"] += head_consistency(out, ref)
    terms = {name: value / len(outputs) for name, value in terms.items()}
    total = sum(getattr(weights, name) * value for name, value in terms.items())
    return TaskLoss(**terms, total=total)


def _concatenate(windows: Sequence[Outputs]) -> dict[str, torch.Tensor]:
    # pose_enc_list is (iterations, B, S, 9); every other output has the frame axis at dim 1.
    return {key: torch.cat([w[key] for w in windows], dim=2 if key == "pose_enc_list" else 1) for key in windows[0]}


def errors_vs_reference(outputs: Sequence[Outputs], references: Sequence[Outputs]) -> dict[str, float]:
    """``{"depth_rel", "points_rel", "camera_rel"}``: the seed's relative errors in percent, over all windows."""
    errors = relative_errors(_concatenate(outputs), _concatenate(references))
    return {"depth_rel": errors["depth"], "points_rel": errors["points"], "camera_rel": errors["camera"]}
