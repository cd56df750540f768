# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Inference runtimes: one `Pipeline` over the five stages with torch, ONNX Runtime or TensorRT.

TensorRT is imported only when the tensorrt backend is asked for.
"""

from .config import RuntimeConfig, create_pipeline
from .io_contract import BackendUnavailableError
from .pipeline import BACKENDS, PRECISIONS, Pipeline

__all__ = ["Pipeline", "RuntimeConfig", "create_pipeline", "BackendUnavailableError", "BACKENDS", "PRECISIONS"]
