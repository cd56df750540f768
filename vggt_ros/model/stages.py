# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""VGGT split into the five stages that become the five engines.

Each stage wraps the model's own modules and holds, as buffers, the size-dependent constants that the
reference code computes from data at run time (the resampled DINOv2 positional table, the RoPE tables,
the DPT grid embeddings). Nothing data-dependent is left inside, so a stage traces to a static graph for
one H x W with a dynamic frame count S. `VGGT.forward`, the torch runtime and the ONNX export all run
these same modules.

Stage I/O (one sequence: the batch axis is folded away; P = 5 + h*w tokens per frame, C = embed dim):
    dinov2       images (S, 3, H, W)                       -> patch_tokens (S, h*w, C)
    aggregator   patch_tokens                               -> tokens_4, tokens_11, tokens_17, tokens_23 (S, P, 2C)
    camera_head  tokens_23                                  -> pose_enc (S, 9), pose_enc_list (iterations, S, 9)
    depth_head   tokens_4, tokens_11, tokens_17, tokens_23  -> depth (S, H, W, 1), depth_conf (S, H, W)
    point_head   tokens_4, tokens_11, tokens_17, tokens_23  -> world_points (S, H, W, 3), world_points_conf (S, H, W)
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import nn

STAGE_NAMES = ("dinov2", "aggregator", "camera_head", "depth_head", "point_head")


def tapped_token_names(layers: tuple[int, ...]) -> tuple[str, ...]:
    return tuple(f"tokens_{i}" for i in layers)


class EncoderStage(nn.Module):
    def __init__(self, encoder: nn.Module, image_hw: tuple[int, int]) -> None:
        super().__init__()
        self.encoder = encoder
        with torch.no_grad():
            pos_embed = encoder.positional_embedding(image_hw)
        self.register_buffer("pos_embed", pos_embed.detach().clone(), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images, self.pos_embed)


class AggregatorStage(nn.Module):
    def __init__(self, aggregator: nn.Module, image_hw: tuple[int, int]) -> None:
        super().__init__()
        self.aggregator = aggregator
        cos, sin = aggregator.rope_tables(image_hw, aggregator.camera_token.device)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def forward(self, patch_tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
        tapped = self.aggregator(patch_tokens.unsqueeze(0), (self.rope_cos, self.rope_sin))
        # index rather than squeeze: squeeze of a traced dynamic axis exports as an ONNX If node
        return tuple(t[0] for t in tapped)


class CameraStage(nn.Module):
    def __init__(self, camera_head: nn.Module) -> None:
        super().__init__()
        self.camera_head = camera_head

    def forward(self, last_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pose_enc_list = self.camera_head(last_tokens[:, 0].unsqueeze(0))[:, 0]
        return pose_enc_list[-1], pose_enc_list


class DenseStage(nn.Module):
    def __init__(self, head: nn.Module, image_hw: tuple[int, int]) -> None:
        super().__init__()
        self.head = head
        self.image_hw = tuple(image_hw)
        for i, pos in enumerate(head.positional_embeddings(image_hw)):
            self.register_buffer(f"pos_embed_{i}", pos.to(head.norm.weight.device), persistent=False)

    def forward(self, *tapped: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pos_embeds = [getattr(self, f"pos_embed_{i}") for i in range(5)]
        pred, conf = self.head([t.unsqueeze(0) for t in tapped], self.image_hw, pos_embeds)
        return pred[0], conf[0]


def stage_io(tapped_layers: tuple[int, ...]) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """(input names, output names) of each stage, in positional order."""
    tokens = tapped_token_names(tapped_layers)
    return {
        "dinov2": (("images",), ("patch_tokens",)),
        "aggregator": (("patch_tokens",), tokens),
        "camera_head": ((tokens[-1],), ("pose_enc", "pose_enc_list")),
        "depth_head": (tokens, ("depth", "depth_conf")),
        "point_head": (tokens, ("world_points", "world_points_conf")),
    }


def build_stages(model: nn.Module, image_hw: tuple[int, int]) -> nn.ModuleDict:
    """The five stages of `model` for one input size; they share the model's parameters (no copy)."""
    image_hw = (int(image_hw[0]), int(image_hw[1]))
    return nn.ModuleDict(
        {
            "dinov2": EncoderStage(model.aggregator.patch_embed, image_hw),
            "aggregator": AggregatorStage(model.aggregator, image_hw),
            "camera_head": CameraStage(model.camera_head),
            "depth_head": DenseStage(model.depth_head, image_hw),
            "point_head": DenseStage(model.point_head, image_hw),
        }
    ).train(model.training)


StageRunner = Callable[[str, Mapping[str, torch.Tensor]], Mapping[str, torch.Tensor]]


OUTPUT_NAMES = ("pose_enc", "pose_enc_list", "depth", "depth_conf", "world_points", "world_points_conf")
# The head stages and the outputs each one produces.
HEAD_OUTPUTS = {
    "camera_head": ("pose_enc", "pose_enc_list"),
    "depth_head": ("depth", "depth_conf"),
    "point_head": ("world_points", "world_points_conf"),
}
# Heads that work frame by frame (the DPT heads): they may run on any subset of a window's frames.
PER_FRAME_HEADS = ("depth_head", "point_head")


def check_outputs(outputs) -> tuple[str, ...]:
    """The requested output names, validated, in `OUTPUT_NAMES` order."""
    unknown = sorted(set(outputs) - set(OUTPUT_NAMES))
    if unknown or not outputs:
        raise ValueError(f"unknown or no outputs requested: {unknown or list(outputs)}; choose from {OUTPUT_NAMES}")
    return tuple(name for name in OUTPUT_NAMES if name in outputs)


def run_encoder(run_stage: "StageRunner", images: torch.Tensor) -> torch.Tensor:
    """DINOv2 patch tokens (S, h*w, C) of images (S, 3, H, W). Frame by frame, so a caller may cache them."""
    return run_stage("dinov2", {"images": images})["patch_tokens"]


def run_heads(
    run_stage: "StageRunner",
    patch_tokens: torch.Tensor,
    tapped_layers: tuple[int, ...],
    outputs=OUTPUT_NAMES,
    dense_frames: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The aggregator over all S frames, then only the heads whose outputs are asked for.

    Args:
        patch_tokens: (S, h*w, C) from `run_encoder`, window order (frame 0 defines VGGT's world).
        outputs: names from `OUTPUT_NAMES`.
        dense_frames: (D,) int64 window indices the DPT heads run on (None: all S). The aggregator and the
            camera head always span the whole window: their attention and the camera trunk mix frames.
    Returns:
        One sequence without the batch axis: pose_enc (S, 9), pose_enc_list (iterations, S, 9), depth (D, H, W, 1),
        depth_conf (D, H, W), world_points (D, H, W, 3), world_points_conf (D, H, W); only those asked for.
    """
    outputs = check_outputs(outputs)
    io = stage_io(tapped_layers)
    tokens = run_stage("aggregator", {"patch_tokens": patch_tokens})
    results: dict[str, torch.Tensor] = {}
    for head, produced in HEAD_OUTPUTS.items():
        if not set(produced) & set(outputs):
            continue
        inputs = {k: tokens[k] for k in io[head][0]}
        if head in PER_FRAME_HEADS and dense_frames is not None:
            inputs = {k: v.index_select(0, dense_frames.to(v.device)) for k, v in inputs.items()}
        results.update(run_stage(head, inputs))
    return {k: results[k] for k in outputs}


def run_stages(
    run_stage: "StageRunner", images: torch.Tensor, tapped_layers: tuple[int, ...], outputs=OUTPUT_NAMES
) -> dict[str, torch.Tensor]:
    """Compose the five stages for one sequence, images (S, 3, H, W) -> the output dict with B = 1 added.

    `run_stage(name, inputs)` executes one stage with any backend and returns its named outputs; heads whose
    outputs are not in ``outputs`` do not run.
    """
    values = run_heads(run_stage, run_encoder(run_stage, images), tapped_layers, outputs)
    # pose_enc_list is (iterations, B, S, 9): its batch axis is dim 1
    return {k: v.unsqueeze(1 if k == "pose_enc_list" else 0) for k, v in values.items()}


def torch_stage_runner(stages: nn.ModuleDict, tapped_layers: tuple[int, ...]) -> StageRunner:
    """Run stage modules eagerly: positional inputs in `stage_io` order, outputs named the same way."""
    io = stage_io(tapped_layers)

    def run(name: str, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        in_names, out_names = io[name]
        outputs = stages[name](*(inputs[k] for k in in_names))
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        return dict(zip(out_names, outputs))

    return run
