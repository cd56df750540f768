# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Our implementation of VGGT inference, checkpoint-compatible with facebook/VGGT-1B."""

from .config import AggregatorConfig, CameraHeadConfig, ConfigError, DPTHeadConfig, EncoderConfig, VGGTConfig
from .vggt import VGGT, check_images
from .weights import CheckpointError

__all__ = [
    "VGGT",
    "VGGTConfig",
    "EncoderConfig",
    "AggregatorConfig",
    "CameraHeadConfig",
    "DPTHeadConfig",
    "CheckpointError",
    "ConfigError",
    "check_images",
]
