# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Runtime configuration shared by the node, the engine builder and the benchmarks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..quantized_formats.schemes import SCHEMES, W4A16, check_scheme_backend
from .io_contract import BackendUnavailableError
from .pipeline import BACKENDS, PRECISIONS, Pipeline


@dataclass(frozen=True)
class RuntimeConfig:
    backend: str = "torch"  # torch | onnxruntime | tensorrt
    weights: str = "facebook/VGGT-1B"  # hub id, folder or file (torch backend)
    model_config: str | None = None  # optional config.json for non-default model sizes
    device: str = "cuda"  # cpu | cuda (torch backend)
    precision: str = "fp16"  # fp32 | fp16 | bf16, or a quantization scheme: w4a16 (torch) | int8 | fp8 (engines)
    # An exported set (manifest.json + ONNX graphs; TensorRT engines are cached there), or for w4a16 the output
    # folder of vggt-ros-quantize (its weights replace `weights`).
    engine_dir: str = "engines"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; choose one of {list(BACKENDS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of {list(PRECISIONS)}")
        if self.precision in SCHEMES:
            check_scheme_backend(self.precision, self.backend)


def create_pipeline(cfg: RuntimeConfig) -> Pipeline:
    """Build the pipeline a configuration asks for; missing weights, engines or devices fail here, with the fix."""
    if cfg.backend == "torch":
        from ..model import VGGT

        if cfg.device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailableError(
                "device 'cuda' requested but torch sees no CUDA GPU; use the CPU "
                "(parameter device: cpu, or --device cpu)"
            )
        if cfg.precision == W4A16:
            from ..quantized_formats.w4a16_file import load_w4a16_model

            model = load_w4a16_model(cfg.engine_dir, device=cfg.device)
        else:
            model = VGGT.from_pretrained(cfg.weights, config=cfg.model_config, device=cfg.device)
        return Pipeline.from_model(model, device=cfg.device, precision=cfg.precision)
    if cfg.backend == "tensorrt":
        return Pipeline.from_engine_dir(
            Path(cfg.engine_dir), backend="tensorrt", precision=cfg.precision, build_missing=False
        )
    return Pipeline.from_engine_dir(Path(cfg.engine_dir), backend="onnxruntime", precision=cfg.precision)
