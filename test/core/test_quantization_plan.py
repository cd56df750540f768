# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The mixed-precision plan: block names of the real model, the default plan, JSON a person may edit, the errors a bad
plan gets, and protected blocks that really stay FP16 in the W4A16 export."""

import json

import pytest
import torch

from conftest import TINY
from vggt_ros.model import VGGT, VGGTConfig
from vggt_ros.quantization.export import pack_w4a16
from vggt_ros.quantized_formats.int4 import FakeInt4Linear, W4A16Linear
from vggt_ros.quantized_formats.layers import linear_layers
from vggt_ros.quantized_formats.plan import (
    LINEAR_NAMES,
    PlanError,
    QuantizationPlan,
    default_plan,
    group_size_for,
    model_blocks,
    scheme_blocks,
)
from vggt_ros.quantized_formats.w4a16_file import load_w4a16_model, save_w4a16_export


@pytest.fixture(scope="module")
def full_size_on_meta():
    with torch.device("meta"):
        return VGGT(VGGTConfig())


def test_blocks_of_vggt_1b_in_execution_order(full_size_on_meta):
    blocks = model_blocks(full_size_on_meta)
    names = list(blocks)
    assert len(names) == 24 + 2 * 24 + 4
    assert names[:2] == ["aggregator.patch_embed.blocks.0", "aggregator.patch_embed.blocks.1"]
    assert names[24:28] == [
        "aggregator.frame_blocks.0",
        "aggregator.global_blocks.0",
        "aggregator.frame_blocks.1",
        "aggregator.global_blocks.1",
    ]
    assert names[-1] == "camera_head.trunk.3" and blocks["camera_head.trunk.3"] == "camera_head"
    assert set(scheme_blocks(full_size_on_meta, "w4a16")) == set(names)
    assert set(scheme_blocks(full_size_on_meta, "int8")) == set(names[:-4])  # the camera head stays float


def test_qvggt_plan_keeps_fragile_blocks_fp16_except_the_attention_projection(full_size_on_meta):
    fragile = [
        "aggregator.frame_blocks.14",
        "aggregator.frame_blocks.17",
        "aggregator.frame_blocks.23",
        "aggregator.global_blocks.23",
    ]
    plan = default_plan("w4a16", scheme_blocks(full_size_on_meta, "w4a16"), fragile)
    plan.check_against(full_size_on_meta)
    assert plan.protected_blocks == tuple(b for b in model_blocks(full_size_on_meta) if b in fragile)
    assert all(plan.blocks[b] == ("attn.proj",) for b in fragile)
    assert plan.blocks["aggregator.frame_blocks.0"] == LINEAR_NAMES
    assert len(plan.layer_names()) == 4 * (76 - 4) + 4 and plan.group_size == 128


def test_the_plan_round_trips_through_json_and_a_hand_edit_changes_its_digest(tmp_path):
    plan = QuantizationPlan("w4a16", {"aggregator.frame_blocks.0": LINEAR_NAMES, "camera_head.trunk.1": ["attn.proj"]})
    plan.save(tmp_path / "plan.json")
    assert QuantizationPlan.load(tmp_path / "plan.json") == plan
    edited = json.loads((tmp_path / "plan.json").read_text())
    assert "note" in edited  # explains the format to whoever edits it
    edited["blocks"]["aggregator.frame_blocks.0"] = ["mlp.fc2", "attn.qkv"]  # any order
    (tmp_path / "plan.json").write_text(json.dumps(edited))
    reloaded = QuantizationPlan.load(tmp_path / "plan.json")
    assert reloaded.blocks["aggregator.frame_blocks.0"] == ("attn.qkv", "mlp.fc2")
    assert reloaded.sha256() != plan.sha256()


def test_a_plan_naming_blocks_that_do_not_exist_names_them_and_the_real_ones(full_size_on_meta):
    plan = QuantizationPlan(
        "w4a16",
        {
            "aggregator.frame_blocks.24": LINEAR_NAMES,
            "aggregator.frame_blocks.3": LINEAR_NAMES,
            "aggregator.middle_blocks.0": LINEAR_NAMES,
        },
    )
    with pytest.raises(PlanError) as error:
        plan.check_against(full_size_on_meta)
    message = str(error.value)
    assert "'aggregator.frame_blocks.24'" in message and "'aggregator.middle_blocks.0'" in message
    assert "'aggregator.frame_blocks.3'" not in message.split("its blocks are")[0]
    assert "aggregator.frame_blocks.0-23" in message and "camera_head.trunk.0-3" in message


def test_fp16_layers_the_model_does_not_have_are_named(full_size_on_meta):
    """A plan's fp16_layers were never checked: a made-up layer was reported as kept in FP16."""
    plan = QuantizationPlan("w4a16", {"aggregator.frame_blocks.0": LINEAR_NAMES[:3]}, 128, ("not.a.layer",))
    with pytest.raises(PlanError, match=r"fp16_layers name layers this model does not have: \['not.a.layer'\]"):
        plan.check_against(full_size_on_meta)
    QuantizationPlan(
        "w4a16", {"aggregator.frame_blocks.0": LINEAR_NAMES[:3]}, 128, ("aggregator.frame_blocks.0.mlp.fc2",)
    ).check_against(full_size_on_meta)


def test_int8_cannot_quantize_the_camera_head(full_size_on_meta):
    with pytest.raises(PlanError, match=r"camera_head.trunk.0.*int8 quantizes only the dinov2, aggregator stages"):
        QuantizationPlan("int8", {"camera_head.trunk.0": LINEAR_NAMES}, None).check_against(full_size_on_meta)


@pytest.mark.parametrize(
    "data, message",
    [
        (
            {"format": 1, "scheme": "w4a16", "blocks": {"aggregator.frame_blocks.0": ["attn.out"]}},
            r"unknown: \['attn.out'\]",
        ),
        ({"format": 1, "scheme": "w4a16", "blocks": {"aggregator.frame_blocks.0": []}}, "at least one"),
        ({"format": 1, "scheme": "w2a16", "blocks": {}}, "unknown quantization scheme 'w2a16'"),
        ({"format": 1, "scheme": "int8", "group_size": 128, "blocks": {}}, "group_size applies to w4a16 only"),
        ({"format": 1, "scheme": "w4a16", "group_size": 127, "blocks": {}}, "even integer"),
        ({"format": 2, "scheme": "w4a16", "blocks": {}}, "format 2 is not 1"),
        ({"format": 1, "scheme": "w4a16"}, r"missing \['blocks'\]"),
    ],
)
def test_malformed_plans_are_refused_with_what_is_wrong(data, message):
    with pytest.raises(PlanError, match=message):
        QuantizationPlan.from_json(data, "plan.json")


def test_an_int8_plan_without_a_group_size_is_not_a_group_size_problem():
    plan = QuantizationPlan.from_json(
        {"format": 1, "scheme": "int8", "blocks": {"aggregator.frame_blocks.0": ["attn.proj"]}}, "plan.json", "int8"
    )
    assert plan.scheme == "int8" and plan.group_size is None


def test_layers_kept_in_fp16_leave_their_blocks_and_travel_in_the_json(tmp_path):
    plan = QuantizationPlan("w4a16", {"aggregator.frame_blocks.0": LINEAR_NAMES, "camera_head.trunk.1": ["mlp.fc2"]})
    kept = plan.keeping_fp16(["aggregator.frame_blocks.0.mlp.fc2", "camera_head.trunk.1.mlp.fc2"])
    assert kept.blocks == {"aggregator.frame_blocks.0": ("attn.qkv", "attn.proj", "mlp.fc1")}  # trunk.1 left empty
    assert kept.fp16_layers == ("aggregator.frame_blocks.0.mlp.fc2", "camera_head.trunk.1.mlp.fc2")
    kept.save(tmp_path / "plan.json")
    assert QuantizationPlan.load(tmp_path / "plan.json") == kept and kept.sha256() != plan.sha256()
    assert "fp16_layers" not in plan.to_json()  # plans without such layers are written (and digested) as before
    with pytest.raises(PlanError, match=r"listed both as quantized \(blocks\) and as fp16_layers"):
        QuantizationPlan("w4a16", plan.blocks, 128, ("camera_head.trunk.1.mlp.fc2",))


def test_an_unreadable_plan_file_says_so(tmp_path):
    (tmp_path / "plan.json").write_text("{not json")
    with pytest.raises(PlanError, match="is not valid JSON"):
        QuantizationPlan.load(tmp_path / "plan.json")
    with pytest.raises(PlanError, match="cannot read the plan"):
        QuantizationPlan.load(tmp_path / "missing.json")


def test_protected_blocks_keep_their_fp16_weights_in_the_export(tmp_path):
    model = VGGT.from_pretrained(TINY)
    original = {
        name: layer.weight.detach().clone()
        for name, layer in linear_layers(model, [f"aggregator.frame_blocks.3.{n}" for n in LINEAR_NAMES]).items()
    }
    plan = default_plan(
        "w4a16", ["aggregator.frame_blocks.3", "aggregator.global_blocks.3"], fragile=["aggregator.frame_blocks.3"]
    )
    layers = {
        name: FakeInt4Linear.from_linear(layer, group_size_for(layer.in_features, plan.group_size, name))
        for name, layer in linear_layers(model, plan.layer_names()).items()
    }
    save_w4a16_export(tmp_path, pack_w4a16(model, layers, token=None), plan)

    loaded = load_w4a16_model(tmp_path)
    for linear in ("attn.qkv", "mlp.fc1", "mlp.fc2"):
        layer = loaded.get_submodule(f"aggregator.frame_blocks.3.{linear}")
        assert type(layer) is torch.nn.Linear
        assert torch.equal(layer.weight, original[f"aggregator.frame_blocks.3.{linear}"].half().float())
    assert isinstance(loaded.get_submodule("aggregator.frame_blocks.3.attn.proj"), W4A16Linear)
    assert all(isinstance(loaded.get_submodule(f"aggregator.global_blocks.3.{n}"), W4A16Linear) for n in LINEAR_NAMES)
    assert type(loaded.get_submodule("aggregator.frame_blocks.4.attn.qkv")) is torch.nn.Linear  # not in the plan
