# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Calibration: the user's images as windows, the FP32 reference, and activation statistics from image tokens only.

Images come from a folder or from one image topic of a bag (rosbag2 or ROS 1), evenly subsampled to at most
``max_images`` (QVGGT finds 16 to 128 enough), preprocessed exactly as the node does (`preprocess_images`) and cut
into windows of ``frames`` consecutive images, the way the node runs VGGT.

One pass of the floating-point model over the windows (`reference_pass`) gives everything later steps compare
against or derive scales from:

* the reference outputs (cameras, depth, points and confidences) of every window;
* per planned-candidate linear layer, the mean |x| of each input channel and the largest |x|, over **image tokens
  only**. Camera and register tokens carry outlier activations (QVGGT section 3.3) that would dominate the scales,
  so they are left out: the first 1 + registers tokens of each frame in DINOv2 (class token, registers) and in the
  aggregator (camera token, registers). The largest |x| over all tokens is kept too: INT8 / FP8 activations are
  clipped at run time, and the scale search chooses how much of the outliers' range to keep. The camera-head trunk
  sees camera tokens only, so its statistics cover every token it sees;
* the camera tokens and the patch tokens' mean norm of the last tapped layer, for the compensation token.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from vggt_ros.model.stages import tapped_token_names
from vggt_ros.preprocess import check_image_size, preprocess_images
from vggt_ros.quantized_formats.plan import block_stage, split_layer_name
from vggt_ros.recording.bag_reader import BAG_FORMS, BagImageSource, is_bag
from vggt_ros.recording.inputs import image_files

from .evaluation import window_outputs


class CalibrationError(ValueError):
    """A calibration source that yields no usable images; the message says what to pass instead."""


@dataclass(frozen=True)
class CalibrationConfig:
    """frames: images per window (S); max_images: evenly spaced subset size; image_size and mode: preprocessing
    (as the node's ``image_size`` / ``mode``); topic: the image topic when the source is a bag."""

    frames: int = 8
    max_images: int = 128
    image_size: int = 518
    mode: str = "crop"
    topic: str | None = None

    def __post_init__(self) -> None:
        for name in ("frames", "max_images"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        check_image_size("image_size", self.image_size)  # else the preprocessing finds it, after every image was read


def _evenly_spaced(count: int, keep: int) -> list[int]:
    return sorted(set(np.linspace(0, count - 1, min(count, keep)).round().astype(int).tolist()))


def _bag_images(path: Path, config: CalibrationConfig) -> list[np.ndarray]:
    if not config.topic:
        raise CalibrationError(f"{path} is a bag; name its image topic (--topic /camera/image)")
    source = BagImageSource(path, [config.topic])
    wanted = set(_evenly_spaced(source.message_count, config.max_images)) if source.message_count else set()
    images = []
    for index, (_, _, image) in enumerate(source):
        if index in wanted:
            images.append(image)
        if len(images) == len(wanted):
            break
    return images


def load_calibration_images(source: str | Path, config: CalibrationConfig) -> torch.Tensor:
    """Preprocessed calibration images ``(N, 3, H, W)`` float32 in [0, 1], N <= ``config.max_images``.

    Raises `CalibrationError` for a missing source, a folder without images, or a bag without images on the topic.
    """
    path = Path(source)
    if not path.exists():
        raise CalibrationError(
            f"calibration source {path} does not exist; pass a folder of images or a bag ({BAG_FORMS})"
        )
    advice = "pass 16 to 128 images of the scenes the robot will see"
    if is_bag(path):
        images = _bag_images(path, config)
        if not images:
            raise CalibrationError(
                f"the calibration set is empty: no images on topic {config.topic} of {path}; {advice}"
            )
    elif path.is_dir():
        try:
            files = image_files(path)
        except ValueError as err:
            raise CalibrationError(f"the calibration set is empty: {err}; {advice}") from None
        images = [files[i] for i in _evenly_spaced(len(files), config.max_images)]
    else:
        raise CalibrationError(f"calibration source {path} is neither a folder of images nor a bag ({BAG_FORMS})")
    return preprocess_images(images, config.mode, config.image_size)


def calibration_windows(images: torch.Tensor, frames: int) -> list[torch.Tensor]:
    """Consecutive windows of ``frames`` images ``(S, 3, H, W)``; the last one holds the remainder."""
    if len(images) == 0:
        raise CalibrationError("the calibration set is empty; pass at least one image")
    return [images[start : start + frames] for start in range(0, len(images), frames)]


@dataclass
class LayerStatistics:
    """Input statistics of one linear layer: ``channel_mean_abs`` (K,) and ``image_amax`` over image tokens,
    ``all_amax`` over every token."""

    channel_mean_abs: torch.Tensor
    image_amax: float
    all_amax: float


@dataclass
class ReferencePass:
    """The floating-point model on the calibration windows (see the module docstring)."""

    outputs: list[dict[str, torch.Tensor]]
    statistics: dict[str, LayerStatistics]
    camera_tokens: torch.Tensor  # (frames of all windows, 2C)
    patch_token_norm: float
    image_hw: tuple[int, int]


class _Accumulator:
    def __init__(self, tokens_per_frame: int | None, special: int) -> None:
        self.tokens_per_frame, self.special = tokens_per_frame, special
        self.sum_abs: torch.Tensor | None = None
        self.count = 0
        self.image_amax = 0.0
        self.all_amax = 0.0

    def __call__(self, module: nn.Module, args: tuple) -> None:
        x = args[0].detach().float()
        channels = x.shape[-1]
        self.all_amax = max(self.all_amax, float(x.abs().max()))
        if self.tokens_per_frame is not None:
            x = x.reshape(-1, self.tokens_per_frame, channels)[:, self.special :]
        image = x.reshape(-1, channels).abs()
        total = image.double().sum(dim=0).cpu()
        self.sum_abs = total if self.sum_abs is None else self.sum_abs + total
        self.count += image.shape[0]
        self.image_amax = max(self.image_amax, float(image.max()))

    def result(self) -> LayerStatistics:
        return LayerStatistics((self.sum_abs / self.count).float(), self.image_amax, self.all_amax)


def token_layout(block: str, config, image_hw: tuple[int, int]) -> tuple[int | None, int]:
    """(tokens per frame, special tokens at the start of each frame) of a block's inputs; (None, 0): every token
    is counted (the camera trunk, whose inputs are camera tokens only)."""
    patches = (image_hw[0] // config.patch_size) * (image_hw[1] // config.patch_size)
    stage = block_stage(block)
    if stage == "dinov2":
        special = 1 + config.encoder.num_register_tokens
    elif stage == "aggregator":
        special = config.patch_start_idx
    else:
        return None, 0
    return special + patches, special


def reference_pass(model: nn.Module, windows: Sequence[torch.Tensor], layers: Sequence[str]) -> ReferencePass:
    """Run the floating-point model over ``windows``, collecting `ReferencePass` for the linear ``layers``."""
    image_hw = tuple(windows[0].shape[-2:])
    accumulators: dict[str, _Accumulator] = {}
    handles = []
    for name in layers:
        accumulators[name] = _Accumulator(*token_layout(split_layer_name(name)[0], model.config, image_hw))
        handles.append(model.get_submodule(name).register_forward_pre_hook(accumulators[name]))
    last = tapped_token_names(model.config.tapped_layers)[-1]
    camera_tokens, norms = [], []

    def observe(stage: str, outputs: Mapping[str, torch.Tensor]) -> None:
        if stage == "aggregator":
            tokens = outputs[last].float()
            camera_tokens.append(tokens[:, 0].cpu())
            norms.append(tokens[:, model.config.patch_start_idx :].norm(dim=-1).flatten().cpu())

    try:
        outputs = window_outputs(model, windows, observe)
    finally:
        for handle in handles:
            handle.remove()
    return ReferencePass(
        outputs=outputs,
        statistics={name: acc.result() for name, acc in accumulators.items()},
        camera_tokens=torch.cat(camera_tokens),
        patch_token_norm=float(torch.cat(norms).mean()),
        image_hw=image_hw,
    )
