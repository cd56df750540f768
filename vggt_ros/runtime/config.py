# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Runtime configuration shared by the node, the engine builder and the benchmarks."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import torch

from ..quantized_formats.schemes import SCHEMES, W4A16, check_scheme_backend
from .engine_cache import PRECISIONS as ENGINE_PRECISIONS
from .io_contract import BackendUnavailableError, ExportManifest
from .pipeline import BACKENDS, Pipeline, check_precision

# `device` / `precision` "auto": chosen by `RuntimeConfig.resolve` from what torch sees on this machine.
AUTO = "auto"
DEVICES = (AUTO, "cpu", "cuda")
# What "auto" precision becomes: half precision where a GPU computes, float32 on the CPU (where FP16 is slow
# and BF16 only emulated on many CPUs).
AUTO_PRECISION = {"cuda": "fp16", "cpu": "fp32"}


@dataclass(frozen=True)
class Resolved:
    """A `RuntimeConfig` without "auto", what was chosen ("" when nothing was auto) and a warning, if any."""

    config: RuntimeConfig
    chosen: str
    warning: Optional[str]

    def log(self, logger) -> None:
        """The warning, then what was chosen, to a `logging.Logger` or an rclpy logger (both have these levels)."""
        if self.warning:
            logger.warning(self.warning)
        if self.chosen:
            logger.info(self.chosen)


@dataclass(frozen=True)
class RuntimeConfig:
    backend: str = "torch"  # torch | onnxruntime | tensorrt
    weights: str = "facebook/VGGT-1B"  # hub id, folder or file (torch backend)
    model_config: str | None = None  # optional config.json for non-default model sizes
    device: str = AUTO  # auto | cpu | cuda (torch backend); auto: cuda when torch sees a GPU, else cpu
    # auto (fp16 on cuda, fp32 on cpu) | fp32 | fp16 | bf16, or a quantization scheme: w4a16 (torch) | int8 | fp8
    precision: str = AUTO
    # An exported set (manifest.json + ONNX graphs; TensorRT engines are cached there), or for w4a16 the output
    # folder of vggt-ros-quantize (its weights replace `weights`).
    engine_dir: str = "engines"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; choose one of {list(BACKENDS)}")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"unknown device {self.device!r}; choose one of {list(DEVICES)} (or cuda:N)")
        if self.precision != AUTO:
            check_precision(self.precision)
        if self.precision in SCHEMES:
            check_scheme_backend(self.precision, self.backend)
        elif self.backend == "tensorrt" and self.precision not in (AUTO, *ENGINE_PRECISIONS):
            raise ValueError(
                f"precision {self.precision!r} is not one the tensorrt backend builds; choose one of "
                f"{[AUTO, *ENGINE_PRECISIONS]}"
            )

    @property
    def from_engine_dir(self) -> bool:
        """The network comes from `engine_dir` (an export, or a w4a16 quantization), not from `weights`."""
        return self.backend != "torch" or self.precision == W4A16

    def summary(self) -> dict:
        """What runs the network, for a run's record: the backend, device and precision, and the weights or the
        export they come from (another precision or export gives other numbers: an INT8 export's depth is a few
        percent off float32's)."""
        source = {"engine_dir": self.engine_dir} if self.from_engine_dir else {"weights": self.weights}
        if self.model_config and not self.from_engine_dir:
            source["model_config"] = self.model_config
        return {"backend": self.backend, "device": self.device, "precision": self.precision, **source}

    def resolve(self, cuda_available: Optional[bool] = None) -> Resolved:
        """Replace "auto": the device is cuda when torch sees a GPU (``cuda_available``, default: ask torch), else
        the CPU with a warning; the precision is the scheme of a quantized export an engine backend runs, else
        `AUTO_PRECISION` of the device (ONNX Runtime: fp32, the export as it is). Explicit values are kept, but a
        half precision ONNX Runtime does not apply becomes fp32, with a warning, as weights an export replaces get."""
        warnings = []
        if self.from_engine_dir and (self.weights != RuntimeConfig.weights or self.model_config):
            warnings.append(
                f"weights and model_config are not used with backend {self.backend}, precision {self.precision}: the "
                f"export in engine_dir {self.engine_dir} holds the weights"
            )
        precision = self.precision
        # A quantized export refuses a half precision when the pipeline is made, naming the precision asked for.
        if self.backend == "onnxruntime" and precision in ("fp16", "bf16") and self._export_scheme() is None:
            warnings.append(
                f"precision {precision}: the onnxruntime backend runs the export as it is (float32 graphs), so it "
                "runs at fp32; half precision applies to the torch backend and to TensorRT's engines. Set precision "
                "to fp32 or auto"
            )
            precision = "fp32"  # what runs, and what the run's records say
        if cuda_available is None and self.device == AUTO:
            cuda_available = torch.cuda.is_available()
        device, chosen = self.device, []
        if device == AUTO:
            device = "cuda" if cuda_available else "cpu"
            chosen.append(f"device auto -> {device}")
            if not cuda_available and self.backend == "torch":
                warnings.append(
                    "device auto: torch sees no CUDA GPU, so inference runs on the CPU (seconds per window); "
                    "set device to cpu to silence this, or install a CUDA build of torch for a GPU"
                )
        scheme = self._export_scheme() if precision == AUTO else None  # a manifest read only where it decides
        if scheme is not None:  # the export as it is: the only precision it runs at
            precision = scheme
            chosen.append(
                f"precision auto -> {precision} (engine_dir {self.engine_dir} holds an export quantized for it)"
            )
        elif precision == AUTO:
            on_gpu = device.startswith("cuda") and self.backend != "onnxruntime"  # its graphs are float32
            precision = AUTO_PRECISION["cuda" if on_gpu else "cpu"]
            chosen.append(f"precision auto -> {precision}")
        return Resolved(
            replace(self, device=device, precision=precision), ", ".join(chosen), " ".join(warnings) or None
        )

    def _export_scheme(self) -> Optional[str]:
        """The quantization scheme of the export an engine backend runs; None for the torch backend, a float export,
        or an engine_dir that does not read as an export (creating the pipeline then says why)."""
        if self.backend == "torch":
            return None
        try:
            return ExportManifest.load(self.engine_dir).quantization_scheme
        except (ValueError, OSError):
            return None


def create_pipeline(cfg: RuntimeConfig) -> Pipeline:
    """Build the pipeline a configuration asks for; missing weights, engines or devices fail here, with the fix.
    "auto" values are resolved here when the caller has not (`RuntimeConfig.resolve`, which also says what it chose)."""
    cfg = cfg.resolve().config
    if cfg.backend == "torch":
        from .weights_source import load_model

        if cfg.device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailableError(
                "device 'cuda' requested but torch sees no CUDA GPU; use the CPU "
                "(parameter device: cpu, or --device cpu)"
            )
        if cfg.precision == W4A16:
            from ..quantized_formats.w4a16_file import load_w4a16_model

            model = load_w4a16_model(cfg.engine_dir, device=cfg.device)
        else:
            model = load_model(cfg.weights, config=cfg.model_config, device=cfg.device)
        return Pipeline.from_model(model, device=cfg.device, precision=cfg.precision)
    if cfg.backend == "tensorrt":
        return Pipeline.from_engine_dir(
            Path(cfg.engine_dir), backend="tensorrt", precision=cfg.precision, build_missing=False
        )
    return Pipeline.from_engine_dir(Path(cfg.engine_dir), backend="onnxruntime", precision=cfg.precision)
