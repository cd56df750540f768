# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Typed configuration of the VGGT network. Defaults are facebook/VGGT-1B."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from os import PathLike
from typing import Any


@dataclass(frozen=True)
class EncoderConfig:
    """DINOv2 ViT patch embed with register tokens (`aggregator.patch_embed`)."""

    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_register_tokens: int = 4
    layernorm_eps: float = 1e-6
    pos_embed_grid: int = 37  # the positional table was trained for a 37x37 patch grid (518x518 pixels)


@dataclass(frozen=True)
class AggregatorConfig:
    """Alternating frame/global attention blocks."""

    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_register_tokens: int = 4
    rope_freq: float = 100.0
    layernorm_eps: float = 1e-5
    qk_norm_eps: float = 1e-5
    image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    image_std: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class CameraHeadConfig:
    trunk_depth: int = 4
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_iterations: int = 4
    layernorm_eps: float = 1e-5
    adaln_eps: float = 1e-6


@dataclass(frozen=True)
class DPTHeadConfig:
    """Shared by the depth head and the point head; they differ only in output channels and activation."""

    features: int = 256
    out_channels: tuple[int, int, int, int] = (256, 512, 1024, 1024)
    intermediate_layer_idx: tuple[int, int, int, int] = (4, 11, 17, 23)
    head_features_2: int = 32
    pos_embed_ratio: float = 0.1
    pos_embed_omega_0: float = 100.0
    layernorm_eps: float = 1e-5


@dataclass(frozen=True)
class VGGTConfig:
    patch_size: int = 14
    embed_dim: int = 1024
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    aggregator: AggregatorConfig = field(default_factory=AggregatorConfig)
    camera_head: CameraHeadConfig = field(default_factory=CameraHeadConfig)
    dpt_head: DPTHeadConfig = field(default_factory=DPTHeadConfig)

    @property
    def patch_start_idx(self) -> int:
        """Index of the first patch token: one camera token, then the register tokens."""
        return 1 + self.aggregator.num_register_tokens

    @property
    def tapped_layers(self) -> tuple[int, ...]:
        """Aggregator layers the heads read; the camera head reads the last of them."""
        return self.dpt_head.intermediate_layer_idx

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, path: str | PathLike) -> "VGGTConfig":
        """Read the schema of `fixtures/vggt_tiny/config.json` (official constructor arguments)."""
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
        if "aggregator" not in raw:
            return cls._from_hub_kwargs(raw, path)
        try:
            return cls._from_official_schema(raw)
        except KeyError as e:
            raise ValueError(f"{path}: missing key {e} in the VGGT config") from None

    @classmethod
    def _from_hub_kwargs(cls, raw: dict[str, Any], path: str | PathLike) -> "VGGTConfig":
        """The Hugging Face repo's config.json holds only `VGGT(...)` keyword arguments; accept the default ones."""
        default = cls()
        expected = {"img_size": 518, "patch_size": default.patch_size, "embed_dim": default.embed_dim}
        for key, value in raw.items():
            if key.startswith("enable_"):
                continue  # head switches: the heads this package needs are always built
            if key not in expected or value != expected[key]:
                raise ValueError(f"{path}: unsupported VGGT argument {key}={value!r}; expected one of {expected}")
        return default

    @classmethod
    def _from_official_schema(cls, raw: dict[str, Any]) -> "VGGTConfig":
        pe, ag, cam, dep = raw["patch_embed"], raw["aggregator"], raw["camera_head"], raw["depth_head"]
        point = raw.get("point_head") or dep
        embed_dim = int(raw["embed_dim"])
        for name, width in (("patch_embed", pe["embed_dim"]), ("aggregator", ag["embed_dim"])):
            if int(width) != embed_dim:
                raise ValueError(f"{name}.embed_dim={width} differs from embed_dim={embed_dim}; VGGT needs one width")
        if int(cam["dim_in"]) != 2 * embed_dim or int(dep["dim_in"]) != 2 * embed_dim:
            raise ValueError("camera_head.dim_in and depth_head.dim_in must be 2 * embed_dim")
        for key in ("features", "out_channels", "intermediate_layer_idx"):
            if point[key] != dep[key]:
                raise ValueError(f"depth_head.{key} != point_head.{key}; this implementation shares them")
        grid = int(pe.get("pos_embed_grid", int(pe["img_size"]) // int(pe["patch_size"])))
        return cls(
            patch_size=int(raw["patch_size"]),
            embed_dim=embed_dim,
            encoder=EncoderConfig(
                depth=int(pe["depth"]),
                num_heads=int(pe["num_heads"]),
                mlp_ratio=float(pe["mlp_ratio"]),
                num_register_tokens=int(pe["num_register_tokens"]),
                layernorm_eps=float(pe.get("layernorm_eps", 1e-6)),
                pos_embed_grid=grid,
            ),
            aggregator=AggregatorConfig(
                depth=int(ag["depth"]),
                num_heads=int(ag["num_heads"]),
                mlp_ratio=float(ag["mlp_ratio"]),
                num_register_tokens=int(ag["num_register_tokens"]),
                rope_freq=float(ag["rope_freq"]),
                layernorm_eps=float(ag.get("layernorm_eps", 1e-5)),
                qk_norm_eps=float(ag.get("qk_norm_eps", 1e-5)),
                image_mean=tuple(ag.get("image_mean", AggregatorConfig.image_mean)),
                image_std=tuple(ag.get("image_std", AggregatorConfig.image_std)),
            ),
            camera_head=CameraHeadConfig(
                trunk_depth=int(cam["trunk_depth"]),
                num_heads=int(cam["num_heads"]),
                mlp_ratio=float(cam["mlp_ratio"]),
                num_iterations=int(cam.get("num_iterations", 4)),
                layernorm_eps=float(cam.get("layernorm_eps", 1e-5)),
                adaln_eps=float(cam.get("adaln_eps", 1e-6)),
            ),
            dpt_head=DPTHeadConfig(
                features=int(dep["features"]),
                out_channels=tuple(int(c) for c in dep["out_channels"]),
                intermediate_layer_idx=tuple(int(i) for i in dep["intermediate_layer_idx"]),
                head_features_2=int(dep.get("head_features_2", 32)),
                pos_embed_ratio=float(dep.get("pos_embed_ratio", 0.1)),
                pos_embed_omega_0=float(dep.get("pos_embed_omega_0", 100.0)),
                layernorm_eps=float(dep.get("layernorm_eps", 1e-5)),
            ),
        )
