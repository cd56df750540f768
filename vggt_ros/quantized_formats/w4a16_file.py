# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The W4A16 export file, ``<dir>/w4a16.safetensors``: what it holds, how it is written and read back.

It holds the whole model: the packed INT4 weights, their scales and input scales of the planned layers, every other
tensor in float16 (the model replaces the FP16 one), and the compensation token when it was kept. Its metadata
carries the export format, the model configuration and the plan, so `load_w4a16_model` rebuilds the exact module
structure (which layers are packed, whether the camera head is compensated) before adopting the tensors, and refuses
files that do not match.
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

from .compensated_head import CompensatedCameraHead
from .int4 import W4A16Linear
from .layers import replace_modules
from .plan import PlanError, QuantizationPlan, group_size_for
from .schemes import W4A16

W4A16_FILE = "w4a16.safetensors"
W4A16_FORMAT = "1"


class QuantizedExportError(ValueError):
    """A quantized export that is missing, unreadable or does not match the model it describes."""


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


def _stored_dtypes(model: nn.Module) -> dict[str, torch.dtype]:
    """The dtype of each state-dict entry in the file: the packed storage of `W4A16Linear` layers as it is (uint8
    weights, float16 scales), every other floating tensor float16."""
    storage = {
        f"{name}.{buffer}"
        for name, module in model.named_modules()
        if isinstance(module, W4A16Linear)
        for buffer in W4A16Linear._STORAGE
    }
    return {
        key: value.dtype if key in storage or not value.is_floating_point() else torch.float16
        for key, value in model.state_dict().items()
    }


def _w4a16_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    dtypes = _stored_dtypes(model)
    return {key: value.detach().to(dtypes[key]).cpu().contiguous() for key, value in model.state_dict().items()}


def _check_dtypes(state: Mapping[str, torch.Tensor], model: nn.Module, path: Path) -> None:
    """Refuse tensors of another dtype than the format's: they would load and compute with wrong values (integer
    scales) or fail only at inference (a packed weight that is not bytes)."""
    wrong = [
        f"{key}: {state[key].dtype}, expected {dtype}"
        for key, dtype in _stored_dtypes(model).items()
        if state[key].dtype != dtype
    ]
    if wrong:
        shown = wrong[:10] + ([f"... and {len(wrong) - 10} more"] if len(wrong) > 10 else [])
        raise QuantizedExportError(
            f"{path} holds {len(wrong)} tensor(s) of another dtype than its format writes:\n  "
            + "\n  ".join(shown)
            + f"\n  The file was not written by vggt-ros-quantize or was changed since; re-run `vggt-ros-quantize "
            f"--scheme w4a16 --out {path.parent}`"
        )


def save_w4a16_export(directory: str | Path, model: VGGT, plan: QuantizationPlan) -> None:
    """Write ``<directory>/w4a16.safetensors`` from a `pack_w4a16` model."""
    from safetensors import SafetensorError
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

    def write(temporary: Path) -> None:
        try:
            save_file(tensors, str(temporary), metadata)
        except SafetensorError as err:  # its I/O failures (a full disk) are no OSError
            raise OSError(str(err)) from None

    replace_atomically(directory / W4A16_FILE, write)


def load_w4a16_model(directory: str | Path, device: str | torch.device = "cpu") -> VGGT:
    """The W4A16 model saved by `save_w4a16_export`, on ``device``.

    Raises `QuantizedExportError` when the folder holds no such export or the file does not match its metadata (the
    tensors' names, shapes and dtypes).
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
    _check_dtypes(state, model, path)
    model.load_state_dict(state, strict=True, assign=True)
    model.float()  # float16-stored tensors compute in float32 unless the runtime chooses otherwise
    return model.to(device).eval()
