# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Shared test fixtures: paths to the repo's fixtures (fixtures/README.md) and the tiny VGGT model with the official
implementation's outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TINY = FIXTURES / "vggt_tiny"
IMAGES = FIXTURES / "preprocess" / "images"
# Node parameters that let every window of the tiny random-weight model into the world: its windows do not agree
# geometrically, and tests about the ROS interface need every window published (the chaining itself is tested on
# ground truth in test_world.py).
PERMISSIVE_WORLD = {
    "alignment_min_inlier_ratio": 0.0,
    "alignment_inlier_distance_ratio": 1e6,
    "alignment_max_residual_ratio": 1e6,
    "alignment_max_camera_offset_ratio": 1e6,
    "alignment_max_camera_rotation_deg": 180.0,
}


@pytest.fixture(scope="session")
def tiny_model():
    from vggt_ros.model import VGGT

    return VGGT.from_pretrained(TINY)


@pytest.fixture(scope="session", params=["A", "B"])
def fixture_case(request) -> dict[str, torch.Tensor]:
    """One reference case: inputs and every output of the official implementation (see its README)."""
    from safetensors.torch import load_file

    case = load_file(str(TINY / f"fixture_case{request.param}.safetensors"))
    case["images"] = case["images_u8"].float() / 255
    case["name"] = request.param
    return case
