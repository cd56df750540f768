# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Reading the W4A16 export file back: a file whose tensors or metadata are not what `save_w4a16_export` writes is
refused at load with what is wrong and the fix, not loaded to compute wrong values or to fail at inference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from conftest import TINY
from vggt_ros.model import VGGT
from vggt_ros.quantization.export import pack_w4a16
from vggt_ros.quantized_formats.int4 import FakeInt4Linear, W4A16Linear
from vggt_ros.quantized_formats.layers import linear_layers
from vggt_ros.quantized_formats.plan import LINEAR_NAMES, QuantizationPlan, group_size_for
from vggt_ros.quantized_formats.w4a16_file import W4A16_FILE, QuantizedExportError, load_w4a16_model, save_w4a16_export

QKV = "aggregator.frame_blocks.3.attn.qkv"


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    """The tiny model with one block packed (its qkv with an input scale) and a compensation token."""
    model = VGGT.from_pretrained(TINY)
    plan = QuantizationPlan("w4a16", {"aggregator.frame_blocks.3": LINEAR_NAMES})
    generator = torch.Generator().manual_seed(0)
    layers = {
        name: FakeInt4Linear.from_linear(
            layer,
            group_size_for(layer.in_features, plan.group_size, name),
            torch.rand(layer.in_features, generator=generator) + 0.5 if name == QKV else None,
        )
        for name, layer in linear_layers(model, plan.layer_names()).items()
    }
    token = torch.randn(2 * model.config.embed_dim, generator=generator)
    directory = tmp_path_factory.mktemp("w4a16")
    save_w4a16_export(directory, pack_w4a16(model, layers, token), plan)
    return directory


def read(directory: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(directory / W4A16_FILE), framework="pt") as stream:
        return {key: stream.get_tensor(key) for key in stream.keys()}, stream.metadata()


def test_the_written_file_holds_the_format_dtypes_and_loads(export):
    state, _ = read(export)
    assert state[f"{QKV}.packed_weight"].dtype == torch.uint8
    assert state[f"{QKV}.weight_scales"].dtype == torch.float16
    assert state[f"{QKV}.input_scale"].dtype == torch.float16
    assert state["aggregator.camera_token"].dtype == torch.float16
    assert state["camera_head.compensation_token"].dtype == torch.float16
    assert isinstance(load_w4a16_model(export).get_submodule(QKV), W4A16Linear)


@pytest.mark.parametrize(
    "key, dtype, expected",
    [
        (f"{QKV}.weight_scales", torch.int64, torch.float16),  # loaded and ran with truncated scales
        (f"{QKV}.weight_scales", torch.float32, torch.float16),
        (f"{QKV}.packed_weight", torch.int32, torch.uint8),  # failed only at inference
        (f"{QKV}.packed_weight", torch.float32, torch.uint8),
        (f"{QKV}.input_scale", torch.float32, torch.float16),
        ("aggregator.camera_token", torch.int64, torch.float16),
        ("aggregator.camera_token", torch.float32, torch.float16),
        ("camera_head.compensation_token", torch.bfloat16, torch.float16),
    ],
)
def test_a_tensor_of_another_dtype_is_refused_naming_it(export, tmp_path, key, dtype, expected):
    state, metadata = read(export)
    save_file({**state, key: state[key].to(dtype)}, str(tmp_path / W4A16_FILE), metadata)
    with pytest.raises(QuantizedExportError) as raised:
        load_w4a16_model(tmp_path)
    message = str(raised.value)
    assert f"{key}: {dtype}, expected {expected}" in message, message
    assert "holds 1 tensor(s) of another dtype" in message
    assert f"re-run `vggt-ros-quantize --scheme w4a16 --out {tmp_path}`" in message


def test_every_wrong_dtype_is_listed(export, tmp_path):
    state, metadata = read(export)
    scales = [key for key in state if key.endswith("weight_scales")]
    save_file({**state, **{k: state[k].float() for k in scales}}, str(tmp_path / W4A16_FILE), metadata)
    with pytest.raises(QuantizedExportError, match=f"holds {len(scales)} tensor\\(s\\) of another dtype") as raised:
        load_w4a16_model(tmp_path)
    assert all(f"{key}: torch.float32, expected torch.float16" in str(raised.value) for key in scales)


def test_a_bad_model_config_in_the_metadata_names_the_key(export, tmp_path):
    state, metadata = read(export)
    config = json.loads(metadata["config"])
    config["aggregator"]["num_heads"] = 0
    save_file(state, str(tmp_path / W4A16_FILE), {**metadata, "config": json.dumps(config)})
    with pytest.raises(QuantizedExportError, match="configuration .*aggregator.num_heads must be a positive integer"):
        load_w4a16_model(tmp_path)
