# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Acceptance criteria for float32 against the official outputs (fixtures/vggt_tiny/README.md)."""

from __future__ import annotations

import torch


def relative_to_max(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """max |ours - ref| / max |ref|."""
    ours, ref = torch.as_tensor(ours).double(), torch.as_tensor(ref).double()
    assert ours.shape == ref.shape, f"shape {tuple(ours.shape)} != reference {tuple(ref.shape)}"
    return ((ours - ref).abs().max() / ref.abs().max()).item()


def max_abs(ours: torch.Tensor, ref: torch.Tensor) -> float:
    ours, ref = torch.as_tensor(ours).double(), torch.as_tensor(ref).double()
    assert ours.shape == ref.shape, f"shape {tuple(ours.shape)} != reference {tuple(ref.shape)}"
    return (ours - ref).abs().max().item()


TOKENS_REL = 1e-5  # aggregated tokens: max abs(d) <= 1e-5 * max abs(ref)
POSE_ABS = 5e-5  # pose_enc, pose_enc_list, extrinsics: absolute
INTRINSICS_REL = 1e-5  # element-wise relative
DENSE_REL = 1e-4  # depth, points, confidences: max abs(d) <= 1e-4 * max abs(ref)
DENSE_KEYS = ("depth", "depth_conf", "world_points", "world_points_conf")


def assert_matches_reference(out: dict, ref: dict) -> dict[str, float]:
    """Check a model-style output dict (B = 1) against a fixture case; return the measured errors."""
    errors = {
        "pose_enc": max_abs(out["pose_enc"], ref["pose_enc"]),
        "pose_enc_list": max_abs(out["pose_enc_list"], ref["pose_enc_list"]),
    }
    errors.update({k: relative_to_max(out[k], ref[k]) for k in DENSE_KEYS})
    for key in ("pose_enc", "pose_enc_list"):
        assert errors[key] <= POSE_ABS, f"{key}: max abs error {errors[key]:.2e} > {POSE_ABS}"
    for key in DENSE_KEYS:
        assert errors[key] <= DENSE_REL, f"{key}: relative error {errors[key]:.2e} > {DENSE_REL}"
    return errors
