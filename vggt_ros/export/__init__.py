# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""ONNX export of the five VGGT stages and the engine-building command."""

from .onnx_export import export_onnx, state_dict_sha256

__all__ = ["export_onnx", "state_dict_sha256"]
