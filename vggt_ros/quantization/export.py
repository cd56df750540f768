# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The quantized exports that ``engine_dir`` + ``precision`` take, and what their weights weigh.

* W4A16 (torch backend): ``<dir>/w4a16.safetensors`` holds the whole model: the packed INT4 weights, their scales
  and input scales of the planned layers, every other tensor in float16 (the model replaces the FP16 one), and the
  compensation token when it was kept. Its metadata carries the export format, the model configuration and the
  plan, so `load_w4a16_model` rebuilds the exact module structure (which layers are packed, whether the camera head
  is compensated) before adopting the tensors, and refuses files that do not match.
* INT8 / FP8 (onnxruntime, tensorrt): the usual exported set (manifest.json and five ONNX graphs) of the
  floating-point model, with Q/DQ nodes written into the DINOv2 and aggregator graphs (`qdq.QDQExport`) and the
  plan in the manifest's ``quantization`` section.

Weight memory is counted as the runtime holds the weights: the quantized layers as stored, everything else in FP16
(`held_weight_bytes`; for W4A16 that is exactly the tensors of the safetensors file). The ONNX graphs of an INT8 /
FP8 export are larger on disk (float32 outside the quantized layers; TensorRT converts those to FP16). The FP16
figure everything is compared with is two bytes per parameter of the floating-point model.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from vggt_ros.files import replace_atomically
from vggt_ros.model import VGGT, VGGTConfig
from vggt_ros.model.weights import CheckpointError, check_state_dict
from vggt_ros.runtime.io_contract import ExportManifest, FramesProfile

from .compensation import CompensatedCameraHead
from .int4 import FakeInt4Linear, W4A16Linear
from .layers import replace_modules
from .plan import PlanError, QuantizationPlan, group_size_for
from .qdq import QDQExport, QDQLinear
from .schemes import W4A16

W4A16_FILE = "w4a16.safetensors"
W4A16_FORMAT = "1"
FP16_BYTES = 2


class QuantizedExportError(ValueError):
    """A quantized export that is missing, unreadable or does not match the model it describes."""


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


def _config_from_dict(values: Mapping[str, Any], cls=VGGTConfig):
    """Rebuild a (nested) configuration dataclass from `VGGTConfig.to_dict`'s JSON (lists back to tuples)."""
    kwargs = {}
    for item in fields(cls):
        value = values[item.name]
        if item.default_factory is not MISSING and is_dataclass(item.default_factory):
            value = _config_from_dict(value, item.default_factory)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[item.name] = value
    return cls(**kwargs)


def module_name(layer: str, compensated: bool) -> str:
    """A plan's layer name in a model whose camera head may be wrapped by `CompensatedCameraHead`."""
    return (
        layer.replace("camera_head.", "camera_head.head.", 1)
        if compensated and layer.startswith("camera_head.")
        else layer
    )


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


def _w4a16_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    storage = {
        f"{name}.{buffer}"
        for name, module in model.named_modules()
        if isinstance(module, W4A16Linear)
        for buffer in W4A16Linear._STORAGE
    }
    return {
        key: (value if key in storage or not value.is_floating_point() else value.to(torch.float16))
        .detach()
        .cpu()
        .contiguous()
        for key, value in model.state_dict().items()
    }


def save_w4a16_export(directory: str | Path, model: VGGT, plan: QuantizationPlan) -> int:
    """Write ``<directory>/w4a16.safetensors`` from a `pack_w4a16` model; return the bytes of its tensors."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = _w4a16_tensors(model)
    metadata = {
        "format": W4A16_FORMAT,
        "scheme": W4A16,
        "config": json.dumps(model.config.to_dict()),
        "plan": json.dumps(plan.to_json()),
        "compensated": str(isinstance(model.camera_head, CompensatedCameraHead)).lower(),
    }
    replace_atomically(directory / W4A16_FILE, lambda temporary: save_file(tensors, str(temporary), metadata))
    return sum(t.numel() * t.element_size() for t in tensors.values())


def load_w4a16_model(directory: str | Path, device: str | torch.device = "cpu") -> VGGT:
    """The W4A16 model saved by `save_w4a16_export`, on ``device``.

    Raises `QuantizedExportError` when the folder holds no such export or the file does not match its metadata.
    """
    from safetensors import safe_open

    path = Path(directory) / W4A16_FILE
    if not path.is_file():
        raise QuantizedExportError(
            f"{directory} holds no W4A16 export ({W4A16_FILE} is missing); run `vggt-ros-quantize --scheme w4a16 "
            f"--out {directory}` first, or set precision to a float precision to run unquantized weights"
        )
    try:
        with safe_open(str(path), framework="pt") as stream:
            metadata = stream.metadata() or {}
            state = {key: stream.get_tensor(key) for key in stream.keys()}
    except Exception as err:  # a corrupt or foreign file raises many types; report them all the same way
        raise QuantizedExportError(f"cannot read {path}: {err}") from err
    if metadata.get("format") != W4A16_FORMAT or metadata.get("scheme") != W4A16:
        raise QuantizedExportError(
            f"{path} is not a W4A16 export of format {W4A16_FORMAT} (metadata {dict(metadata)}); quantize again"
        )
    try:
        config = _config_from_dict(json.loads(metadata["config"]))
        plan = QuantizationPlan.from_json(json.loads(metadata["plan"]), str(path))
    except (KeyError, TypeError, ValueError) as err:
        raise QuantizedExportError(f"{path}: unreadable configuration or plan in its metadata ({err})") from None
    compensated = metadata.get("compensated") == "true"
    with torch.device("meta"):
        model = VGGT(config)
        try:
            plan.check_against(model)
        except PlanError as err:
            raise QuantizedExportError(f"{path}: {err}") from None
        shells = {}
        for name in plan.layer_names():
            linear = model.get_submodule(name)
            shells[name] = W4A16Linear(
                linear.in_features,
                linear.out_features,
                group_size_for(linear.in_features, plan.group_size, name),
                bias=linear.bias is not None,
                input_scale=f"{module_name(name, compensated)}.input_scale" in state,
            )
        replace_modules(model, shells)
        if compensated:
            model.camera_head = CompensatedCameraHead(model.camera_head, torch.zeros(2 * config.embed_dim))
    try:
        check_state_dict(state, model.state_dict(), path)
    except CheckpointError as err:
        raise QuantizedExportError(str(err)) from None
    model.load_state_dict(state, strict=True, assign=True)
    model.float()  # float16-stored tensors compute in float32 unless the runtime chooses otherwise
    return model.to(device).eval()


def export_qdq(
    model: VGGT,
    plan: QuantizationPlan,
    layers: Mapping[str, QDQLinear],
    directory: str | Path,
    image_hw: tuple[int, int],
    frames: FramesProfile,
    opset: int = 18,
) -> ExportManifest:
    """Export ``model`` (floating point, possibly with a compensated camera head) with the Q/DQ nodes of ``layers``.

    The opset is raised to the scheme's minimum (19 for FP8) when lower.
    """
    from vggt_ros.export.onnx_export import export_onnx

    source = {name: model.get_submodule(name).weight for name in plan.layer_names()}
    quantization = QDQExport(plan, dict(layers), source)
    return export_onnx(
        model, directory, image_hw, frames, max(opset, quantization.min_opset), quantization=quantization
    )


def onnx_export_bytes(directory: str | Path, manifest: ExportManifest) -> int:
    """Bytes of an exported set's graphs and their external data files."""
    total = 0
    for component in manifest.components.values():
        graph = Path(directory) / component.file
        data = graph.with_name(graph.name + ".data")
        total += graph.stat().st_size + (data.stat().st_size if data.is_file() else 0)
    return total
