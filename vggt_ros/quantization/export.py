# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Writing the quantized exports that ``engine_dir`` + ``precision`` take, and what their weights weigh.

* W4A16 (torch backend): `pack_w4a16` puts the packed layers (and the compensated camera head) into the model, and
  `vggt_ros.quantized_formats.w4a16_file` writes and reads ``<dir>/w4a16.safetensors`` (the format is defined there,
  beside the runtime that loads it).
* INT8 / FP8 (onnxruntime, tensorrt): the usual exported set (manifest.json and five ONNX graphs) of the
  floating-point model, with Q/DQ nodes written into the DINOv2 and aggregator graphs (`qdq.QDQExport`) and the
  plan in the manifest's ``quantization`` section.

Weight memory is counted as the runtime holds the weights: the quantized layers as stored, everything else in FP16
(`held_weight_bytes`; for W4A16 that is exactly the tensors of the safetensors file). The ONNX graphs of an INT8 /
FP8 export are larger on disk (float32 outside the quantized layers; TensorRT converts those to FP16). The FP16
figure everything is compared with is two bytes per parameter of the floating-point model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from vggt_ros.export.onnx_export import write_onnx_export
from vggt_ros.model import VGGT
from vggt_ros.quantized_formats.compensated_head import CompensatedCameraHead
from vggt_ros.quantized_formats.int4 import FakeInt4Linear, W4A16Linear
from vggt_ros.quantized_formats.layers import replace_modules
from vggt_ros.quantized_formats.plan import QuantizationPlan
from vggt_ros.quantized_formats.w4a16_file import module_name
from vggt_ros.runtime.io_contract import ExportManifest, FramesProfile

from .qdq import QDQExport, QDQLinear

FP16_BYTES = 2


def fp16_weight_bytes(model: nn.Module) -> int:
    """Bytes of every parameter of ``model`` in float16."""
    return FP16_BYTES * sum(p.numel() for p in model.parameters())


def quantized_layer_bytes(layers: Mapping[str, W4A16Linear | QDQLinear]) -> dict[str, int]:
    """Count, stored bytes and FP16 bytes of the quantized layers' weights (their biases count as float weights)."""
    return {
        "count": len(layers),
        "stored_bytes": sum(layer.storage_bytes for layer in layers.values()),
        "fp16_bytes": FP16_BYTES * sum(layer.in_features * layer.out_features for layer in layers.values()),
    }


def held_weight_bytes(
    fp16_bytes: int, layer_fp16_bytes: int, layer_stored_bytes: int, token: torch.Tensor | None
) -> int:
    """Weight bytes of a quantized model held as the runtime holds it: the quantized layers' weights as stored, every
    other parameter (and the compensation token) in FP16."""
    return fp16_bytes - layer_fp16_bytes + layer_stored_bytes + (0 if token is None else FP16_BYTES * token.numel())


def packed_layers(model: VGGT, plan: QuantizationPlan) -> dict[str, W4A16Linear]:
    """The plan's layers of a `pack_w4a16` model, by their plan names."""
    compensated = isinstance(model.camera_head, CompensatedCameraHead)
    return {name: model.get_submodule(module_name(name, compensated)) for name in plan.layer_names()}


def pack_w4a16(model: VGGT, layers: Mapping[str, FakeInt4Linear], token: torch.Tensor | None) -> VGGT:
    """Put packed `W4A16Linear` layers (bitwise equal to ``layers``) into ``model``, then the compensated camera head
    if ``token`` is given. Modifies and returns ``model``."""
    replace_modules(model, {name: layer.packed() for name, layer in layers.items()})
    if token is not None:
        model.camera_head = CompensatedCameraHead(model.camera_head, token)
    return model


def export_qdq(
    model: VGGT,
    plan: QuantizationPlan,
    layers: Mapping[str, QDQLinear],
    folder: Path,
    image_hw: tuple[int, int],
    frames: FramesProfile,
    opset: int = 18,
) -> ExportManifest:
    """Export ``model`` (floating point, possibly with a compensated camera head) with the Q/DQ nodes of ``layers``
    into ``folder``, the staging folder of vggt-ros-quantize's save.

    The opset is raised to the scheme's minimum (19 for FP8) when lower.
    """
    source = {name: model.get_submodule(name).weight for name in plan.layer_names()}
    quantization = QDQExport(plan, dict(layers), source)
    return write_onnx_export(
        model, folder, image_hw, frames, max(opset, quantization.min_opset), quantization=quantization
    )


def onnx_export_bytes(directory: str | Path, manifest: ExportManifest) -> int:
    """Bytes of an exported set's graphs and their external data files."""
    total = 0
    for component in manifest.components.values():
        graph = Path(directory) / component.file
        data = graph.with_name(graph.name + ".data")
        total += graph.stat().st_size + (data.stat().st_size if data.is_file() else 0)
    return total
