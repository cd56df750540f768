# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""VGGTConfig: the valid configs load as they always did; a config the network cannot be built from is refused when
it is read, by one ValueError that names the file and the key, what the value must be and what it is."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path

import pytest

from conftest import TINY
from vggt_ros.model import VGGT
from vggt_ros.model.config import (
    AggregatorConfig,
    CameraHeadConfig,
    ConfigError,
    DPTHeadConfig,
    EncoderConfig,
    VGGTConfig,
)

TINY_CONFIG = json.loads((TINY / "config.json").read_text())
# The Hugging Face repo's config.json of facebook/VGGT-1B: VGGT(...) keyword arguments.
HUB_CONFIG = {"img_size": 518, "patch_size": 14, "embed_dim": 1024, "enable_camera": True, "enable_track": False}

# The tiny fixture's network (fixtures/vggt_tiny/config.json), written out by hand.
TINY_EXPECTED = VGGTConfig(
    patch_size=14,
    embed_dim=16,
    encoder=EncoderConfig(
        depth=2, num_heads=2, mlp_ratio=4.0, num_register_tokens=4, layernorm_eps=1e-6, pos_embed_grid=37
    ),
    aggregator=AggregatorConfig(
        depth=24,
        num_heads=2,
        mlp_ratio=4.0,
        num_register_tokens=4,
        rope_freq=100.0,
        layernorm_eps=1e-5,
        qk_norm_eps=1e-5,
        image_mean=(0.485, 0.456, 0.406),
        image_std=(0.229, 0.224, 0.225),
    ),
    camera_head=CameraHeadConfig(
        trunk_depth=4, num_heads=2, mlp_ratio=4.0, num_iterations=4, layernorm_eps=1e-5, adaln_eps=1e-6
    ),
    dpt_head=DPTHeadConfig(
        features=16,
        out_channels=(8, 12, 16, 20),
        intermediate_layer_idx=(4, 11, 17, 23),
        head_features_2=32,
        pos_embed_ratio=0.1,
        pos_embed_omega_0=100.0,
        layernorm_eps=1e-5,
    ),
)


def write_config(folder: Path, config) -> Path:
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    return path


def edited(base: dict, edits: dict) -> dict:
    """``base`` with each dotted key set to its value, or removed where the value is `DELETE`."""
    config = copy.deepcopy(base)
    for dotted, value in edits.items():
        *parents, key = dotted.split(".")
        target = config
        for parent in parents:
            target = target[parent]
        if value is DELETE:
            del target[key]
        else:
            target[key] = value
    return config


DELETE = object()


def official_vggt_1b() -> dict:
    """VGGT-1B in the official schema: the tiny fixture's file with the full model's sizes
    (config.json's full_model_reference)."""
    both_heads = {"dim_in": 2048, "features": 256, "out_channels": [256, 512, 1024, 1024]}
    return edited(
        TINY_CONFIG,
        {
            "embed_dim": 1024,
            "aggregator.embed_dim": 1024,
            "aggregator.num_heads": 16,
            "patch_embed.embed_dim": 1024,
            "patch_embed.depth": 24,
            "patch_embed.num_heads": 16,
            "camera_head.dim_in": 2048,
            "camera_head.num_heads": 16,
            **{f"{head}.{key}": value for head in ("depth_head", "point_head") for key, value in both_heads.items()},
        },
    )


def test_the_tiny_fixture_config_reads_as_its_values(tmp_path):
    config = VGGTConfig.from_json(TINY / "config.json")
    assert config == TINY_EXPECTED
    assert type(config.aggregator.rope_freq) is float and type(config.encoder.mlp_ratio) is float  # JSON gives ints
    assert config.dpt_head.out_channels == (8, 12, 16, 20) and config.tapped_layers == (4, 11, 17, 23)


def test_vggt_1b_reads_as_the_defaults_from_the_hub_and_the_official_schema(tmp_path):
    default = VGGTConfig()
    assert (default.embed_dim, default.aggregator.num_heads, default.dpt_head.features) == (1024, 16, 256)
    assert VGGTConfig.from_json(write_config(tmp_path, HUB_CONFIG)) == default
    assert VGGTConfig.from_json(write_config(tmp_path, official_vggt_1b())) == default
    assert VGGTConfig.from_json(write_config(tmp_path, {})) == default  # no arguments: VGGT()


def test_optional_keys_of_the_official_schema_default_to_vggt_1b(tmp_path):
    """Absent optional keys, the trained grid from the image and patch sizes, a null point head: as before."""
    lean = edited(
        TINY_CONFIG,
        {
            "patch_embed.pos_embed_grid": DELETE,
            "patch_embed.layernorm_eps": DELETE,
            "aggregator.image_mean": DELETE,
            "camera_head.num_iterations": DELETE,
            "depth_head.head_features_2": DELETE,
            "point_head": None,
        },
    )
    assert VGGTConfig.from_json(write_config(tmp_path, lean)) == TINY_EXPECTED


def test_the_micro_model_of_the_quantization_tests_is_valid(tmp_path):
    """Four aggregator blocks, all tapped: the last tapped layer is the aggregator's last."""
    micro = edited(
        TINY_CONFIG,
        {
            "aggregator.depth": 4,
            "depth_head.intermediate_layer_idx": [0, 1, 2, 3],
            "point_head.intermediate_layer_idx": [0, 1, 2, 3],
        },
    )
    config = VGGTConfig.from_json(write_config(tmp_path, micro))
    assert config.aggregator.depth == 4 and config.tapped_layers == (0, 1, 2, 3)


BAD_OFFICIAL = [
    # (edits of the tiny fixture's config.json, the key the error names, what the message says it must be)
    ({"aggregator.num_heads": 0}, "aggregator.num_heads", "a positive integer, got 0"),
    ({"aggregator.num_heads": 3}, "aggregator.num_heads", "a divisor of embed_dim (16)"),
    ({"aggregator.num_heads": 8}, "aggregator.num_heads", "multiple of 4 channels (2-D RoPE), got 8"),
    ({"aggregator.num_heads": 2.0}, "aggregator.num_heads", "a positive integer, got 2.0"),
    ({"patch_embed.num_heads": 3}, "patch_embed.num_heads", "a divisor of embed_dim (16), got 3"),
    ({"camera_head.num_heads": 5}, "camera_head.num_heads", "2 * embed_dim (32), got 5"),
    ({"embed_dim": "abc"}, "embed_dim", "a positive integer, got 'abc'"),
    ({"embed_dim": True}, "embed_dim", "a positive integer, got True"),
    ({"embed_dim": DELETE}, "embed_dim", "is missing"),
    ({"patch_size": 0}, "patch_size", "a positive integer, got 0"),
    ({"aggregator.depth": -1}, "aggregator.depth", "a positive integer, got -1"),
    ({"aggregator.depth": DELETE}, "aggregator.depth", "is missing"),
    ({"aggregator.depth": 5}, "depth_head.intermediate_layer_idx", "last layer, 4 (aggregator.depth - 1)"),
    ({"aggregator.depth": 30}, "depth_head.intermediate_layer_idx", "last layer, 29 (aggregator.depth - 1)"),
    ({"depth_head.intermediate_layer_idx": [4, 11, 23]}, "depth_head.intermediate_layer_idx", "4 increasing"),
    ({"depth_head.intermediate_layer_idx": [23, 17, 11, 4]}, "depth_head.intermediate_layer_idx", "4 increasing"),
    ({"depth_head.intermediate_layer_idx": [4, 4, 17, 23]}, "depth_head.intermediate_layer_idx", "4 increasing"),
    ({"depth_head.intermediate_layer_idx": [-1, 11, 17, 23]}, "depth_head.intermediate_layer_idx", ">= 0"),
    ({"depth_head.intermediate_layer_idx": [4, 11, 17, 99]}, "depth_head.intermediate_layer_idx", "last layer, 23"),
    ({"depth_head.intermediate_layer_idx": "4,11,17,23"}, "depth_head.intermediate_layer_idx", "4 increasing"),
    ({"aggregator.num_register_tokens": -2}, "aggregator.num_register_tokens", "an integer >= 0, got -2"),
    ({"aggregator.image_mean": "abc"}, "aggregator.image_mean", "3 finite numbers (R, G, B), got 'abc'"),
    ({"aggregator.image_mean": [0.5, 0.5]}, "aggregator.image_mean", "3 finite numbers (R, G, B)"),
    ({"aggregator.image_mean": [0.5, math.nan, 0.5]}, "aggregator.image_mean", "3 finite numbers (R, G, B)"),
    ({"aggregator.image_std": [0.2, 0, 0.2]}, "aggregator.image_std", "3 finite numbers > 0 (R, G, B)"),
    ({"aggregator.rope_freq": 0}, "aggregator.rope_freq", "a finite number > 0, got 0"),
    ({"aggregator.layernorm_eps": "1e-5"}, "aggregator.layernorm_eps", "a finite number > 0, got '1e-5'"),
    ({"aggregator.qk_norm_eps": math.inf}, "aggregator.qk_norm_eps", "a finite number > 0, got inf"),
    ({"aggregator": None}, "aggregator", "a JSON object, got None"),
    ({"patch_embed": [1, 2]}, "patch_embed", "a JSON object, got [1, 2]"),
    ({"patch_embed.depth": 0}, "patch_embed.depth", "a positive integer, got 0"),
    ({"patch_embed.mlp_ratio": -4}, "patch_embed.mlp_ratio", "a finite number > 0, got -4"),
    ({"patch_embed.num_register_tokens": "4"}, "patch_embed.num_register_tokens", "an integer >= 0, got '4'"),
    ({"patch_embed.pos_embed_grid": 0}, "patch_embed.pos_embed_grid", "a positive integer, got 0"),
    ({"patch_embed.pos_embed_grid": DELETE, "patch_embed.img_size": 10}, "patch_embed.img_size", "at least"),
    ({"patch_embed.pos_embed_grid": DELETE, "patch_embed.img_size": DELETE}, "patch_embed.img_size", "is missing"),
    ({"patch_embed.embed_dim": 32}, "patch_embed.embed_dim", "embed_dim (16): VGGT has one width, got 32"),
    ({"patch_embed.patch_size": 16}, "patch_embed.patch_size", "patch_size (14): VGGT has one patch size, got 16"),
    ({"camera_head.dim_in": 16}, "camera_head.dim_in", "2 * embed_dim (32)"),
    ({"camera_head.num_iterations": 0}, "camera_head.num_iterations", "a positive integer, got 0"),
    ({"camera_head.trunk_depth": 0}, "camera_head.trunk_depth", "a positive integer, got 0"),
    ({"camera_head.adaln_eps": -1e-6}, "camera_head.adaln_eps", "a finite number > 0"),
    ({"depth_head.features": 12}, "depth_head.features", "a positive multiple of 8"),
    ({"depth_head.out_channels": [8, 12, 16, 18]}, "depth_head.out_channels", "4 positive multiples of 4"),
    ({"depth_head.out_channels": [8, 12, 16]}, "depth_head.out_channels", "4 positive multiples of 4"),
    ({"depth_head.head_features_2": 0}, "depth_head.head_features_2", "a positive integer, got 0"),
    ({"depth_head.pos_embed_omega_0": 0}, "depth_head.pos_embed_omega_0", "a finite number > 0, got 0"),
    ({"depth_head.pos_embed_ratio": None}, "depth_head.pos_embed_ratio", "a finite number, got None"),
    ({"depth_head.dim_in": DELETE}, "depth_head.dim_in", "is missing"),
    ({"point_head.features": 8}, "point_head.features", "depth_head.features (16): both heads share it"),
    ({"point_head.layernorm_eps": 1e-6}, "point_head.layernorm_eps", "depth_head.layernorm_eps (1e-05)"),
    ({"point_head.dim_in": 64}, "point_head.dim_in", "2 * embed_dim (32)"),
    ({"point_head": "depth_head"}, "point_head", "a JSON object or null"),
]


@pytest.mark.parametrize("edits, key, requirement", BAD_OFFICIAL, ids=[case[1] for case in BAD_OFFICIAL])
def test_a_bad_official_config_names_the_file_and_the_key(tmp_path, edits, key, requirement):
    path = write_config(tmp_path, edited(TINY_CONFIG, edits))
    with pytest.raises(ValueError) as raised:
        VGGTConfig.from_json(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: {key} "), message
    assert requirement in message, message
    assert "\n" not in message


BAD_HUB = [
    ({"embed_dim": 16}, "embed_dim", "must be 1024 in a config of VGGT(...) arguments"),
    ({"patch_size": "14"}, "patch_size", "must be 14 in a config of VGGT(...) arguments"),
    ({"enable_camera": "yes"}, "enable_camera", "must be true or false, got 'yes'"),
    ({"enable_track": 1}, "enable_track", "must be true or false, got 1"),
    ({"depth": 12}, "depth", "is not a VGGT(...) argument this loader reads"),
]


@pytest.mark.parametrize("edits, key, requirement", BAD_HUB, ids=[case[1] for case in BAD_HUB])
def test_a_bad_hub_config_names_the_file_and_the_key(tmp_path, edits, key, requirement):
    path = write_config(tmp_path, {**HUB_CONFIG, **edits})
    with pytest.raises(ValueError) as raised:
        VGGTConfig.from_json(path)
    assert str(raised.value).startswith(f"{path}: {key} {requirement}"), str(raised.value)


@pytest.mark.parametrize(
    "text, problem",
    [("[1, 2]", "must hold a JSON object (a VGGT config), got a JSON list"), ("{oops", "is not a JSON VGGT config")],
)
def test_a_file_that_is_no_json_object_is_refused_naming_it(tmp_path, text, problem):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(ValueError) as raised:
        VGGTConfig.from_json(path)
    assert str(raised.value).startswith(f"{path} {problem}"), str(raised.value)


def test_a_folder_given_as_the_config_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=f"cannot read the VGGT config {tmp_path}"):
        VGGTConfig.from_json(tmp_path)


@pytest.mark.parametrize(
    "build, key",
    [
        (lambda: EncoderConfig(depth=0), "encoder.depth"),
        (lambda: AggregatorConfig(image_std=(0.2, -0.2, 0.2)), "aggregator.image_std"),
        (lambda: CameraHeadConfig(num_iterations=0), "camera_head.num_iterations"),
        (lambda: DPTHeadConfig(intermediate_layer_idx=(4, 11, 23)), "dpt_head.intermediate_layer_idx"),
        (lambda: VGGTConfig(aggregator=None), "aggregator"),
        (lambda: VGGTConfig(embed_dim=1000), "encoder.num_heads"),  # 16 heads do not split 1000 channels
        (lambda: dataclasses.replace(VGGTConfig(), patch_size=-14), "patch_size"),
    ],
)
def test_a_config_built_in_python_is_checked_too(build, key):
    with pytest.raises(ConfigError) as raised:
        build()
    assert raised.value.key == key and str(raised.value).startswith(f"{key} must be"), str(raised.value)


def test_python_values_are_normalised_to_the_declared_types():
    config = AggregatorConfig(mlp_ratio=4, image_mean=[0, 0, 0])
    assert type(config.mlp_ratio) is float and config.image_mean == (0.0, 0.0, 0.0)
    assert DPTHeadConfig(out_channels=[8, 12, 16, 20]).out_channels == (8, 12, 16, 20)


def test_loading_weights_with_a_bad_config_fails_before_any_model_is_built(tmp_path, monkeypatch):
    """The export and the runtime load through `from_pretrained`: they stop here with the key, not in the model."""
    (tmp_path / "state_dict.safetensors").symlink_to(TINY / "state_dict.safetensors")
    write_config(tmp_path, edited(TINY_CONFIG, {"aggregator.num_heads": 0}))
    monkeypatch.setattr(VGGT, "__init__", lambda *args: pytest.fail("a model was built from a bad config"))
    with pytest.raises(ValueError, match=r"config\.json: aggregator\.num_heads must be a positive integer, got 0"):
        VGGT.from_pretrained(tmp_path)
