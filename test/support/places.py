# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Test and benchmark support for loop detection on the synthetic room (`test/support/synthetic.py`).

* `revisit_sequence`: the loop path once around, then its first frames again (the camera comes back).
* `PosePlaceDescriptorForTests`: a test double of `vggt_ros.world.place_recognition.PlaceDescriptor` that
  describes a frame by its ground-truth pose (the "token" `FakePipelineForWorldTests` gives is the frame index),
  so detection is perfect up to its radius and the loop verification can be tested on its own.
* `stored_keyframes_at_vggt_size`: three keyframes at VGGT's 518 x 392 stored by a `LoopVerifier` (their memory).
* `LoopPassPipelineForTests`: `FakePipelineForWorldTests` whose answer to a loop pass (a window whose frames are
  far apart in the sequence) is altered on purpose: the match side seen as other frames ("misplace"), the
  query side moved by a rigid offset ("offset", window units) or scaled about the window's origin ("scale"), as
  if the world had drifted by that much.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import torch
from PIL import Image

from conftest import IMAGES
from support.synthetic import (
    FakePipelineForWorldTests,
    FakeVGGTForWorldTests,
    SyntheticSequence,
    camera_path,
    network_outputs,
    render_poses,
    render_sequence,
    window_products,
)
from vggt_ros.geometry import invert_rigid
from vggt_ros.world import World, WorldConfig
from vggt_ros.world.loop_verification import LoopVerificationConfig, LoopVerifier, NewKeyframe

LOOP_PASS_GAP = 20  # sequence frames between two neighbours of a session window never reach this


def revisit_sequence(lap: int = 100, again: int = 24, image_hw: tuple[int, int] = (42, 56)) -> SyntheticSequence:
    """The "loop" path in ``lap`` frames, then ``again`` frames along its start once more: frame lap + k lies
    half-way between frames k and k + 1 (new images of places seen before)."""
    extrinsics = camera_path("loop", lap)
    between = camera_path("loop", 2 * lap - 1)[1 : 2 * again : 2]
    return render_poses("loop", np.concatenate((extrinsics, between)), image_hw)


VGGT_HW = (392, 518)  # VGGT's model image for 4:3 cameras at its default 518


def stored_keyframes_at_vggt_size(config: LoopVerificationConfig) -> tuple[LoopVerifier, tuple, torch.Tensor]:
    """A world of one synthetic window of three frames at `VGGT_HW`, whose keyframes a `LoopVerifier` stores with a
    photograph as their image (a photograph's JPEG is larger than the synthetic room's). Returns the closer, the
    keyframe ids and the ``(H, W, 3)`` uint8 image."""
    world = World(WorldConfig())
    result = world.integrate(window_products(FakeVGGTForWorldTests(render_sequence("straight", 3, VGGT_HW)), [0, 1, 2]))
    with Image.open(IMAGES / "chelsea.png") as photo:
        colors = torch.from_numpy(np.asarray(photo.convert("RGB").resize(VGGT_HW[::-1])).copy())
    closer = LoopVerifier(config, world.config)
    tokens = torch.randn(3, (VGGT_HW[0] // 14) * (VGGT_HW[1] // 14), 16)
    box = (0, VGGT_HW[0], 0, VGGT_HW[1])  # no padding
    frames = {f: NewKeyframe(f, 0.1 * k, tokens[k], colors, box) for k, f in enumerate(result.frame_ids)}
    report = closer.after_window(result, frames, world, pipeline=None)
    assert not report.constraints  # nothing to find: three keyframes a tenth of a second apart
    return closer, result.frame_ids, colors


class PosePlaceDescriptorForTests:
    """Test double of `PlaceDescriptor`: ``(S, 1, 1)`` frame-index tokens -> ``(S, dim)`` unit descriptors of the
    frames' true poses (Gaussian bumps around fixed random (centre, axis) anchors: close poses, high cosine)."""

    def __init__(self, sequence: SyntheticSequence, dim: int = 1024, width: float = 0.3, seed: int = 0) -> None:
        poses = invert_rigid(sequence.extrinsics)
        self._features = np.concatenate((poses[:, :, 3], poses[:, :, 2]), axis=1)
        rng = np.random.default_rng(seed)
        self._anchors = rng.uniform(-1.0, 1.0, size=(dim, 6)) * np.array([2.5, 0.3, 2.0, 1.0, 1.0, 1.0])
        self._width = width

    def __call__(self, tokens: torch.Tensor) -> np.ndarray:
        features = self._features[tokens[:, 0, 0].round().long().numpy()]
        bumps = np.exp(-((features[:, None] - self._anchors[None]) ** 2).sum(-1) / self._width)
        return (bumps / np.linalg.norm(bumps, axis=1, keepdims=True)).astype(np.float32)


class LoopPassPipelineForTests(FakePipelineForWorldTests):
    """Test double of the pipeline: session windows answered as `FakePipelineForWorldTests`; loop passes altered
    (see the module docstring). ``loop_passes`` records each loop pass's sequence frames."""

    def __init__(
        self,
        oracle: FakeVGGTForWorldTests,
        misplace: bool = False,
        offset: Optional[np.ndarray] = None,
        scale: float = 1.0,
    ) -> None:
        super().__init__(oracle)
        self.misplace = misplace
        self.offset = offset  # (4, 4) rigid, window units: the query side's cameras move by it
        self.scale = scale  # the query side's camera centres and depths, times this
        self.loop_passes: list[tuple[int, ...]] = []

    def predict(self, patch_tokens, image_hw, outputs, dense_frames) -> dict[str, torch.Tensor]:
        indices = [int(t) for t in patch_tokens[:, 0, 0]]
        jump = int(np.argmax(np.diff(indices))) + 1 if len(indices) > 1 else 0
        if len(indices) < 2 or indices[jump] - indices[jump - 1] < LOOP_PASS_GAP:
            return super().predict(patch_tokens, image_hw, outputs, dense_frames)
        self.loop_passes.append(tuple(indices))
        count = len(self.oracle.sequence.rgb)
        rendered_as = list(indices)
        if self.misplace:  # the match side answered as frames a third of the sequence away
            rendered_as[:jump] = [(i + count // 3) % count for i in indices[:jump]]
        answer = self.oracle.predict(indices, rendered_as)
        if self.offset is not None:
            extrinsics = answer.extrinsics.copy()
            camera_from_window = np.concatenate(
                (extrinsics, np.tile([[[0.0, 0.0, 0.0, 1.0]]], (len(indices), 1, 1))), 1
            )
            moved = camera_from_window[jump:] @ np.linalg.inv(self.offset)
            extrinsics[jump:] = moved[:, :3]
            answer = dataclasses.replace(answer, extrinsics=extrinsics)
        if self.scale != 1.0:
            extrinsics, depth = answer.extrinsics.copy(), answer.depth.copy()
            extrinsics[jump:, :, 3] *= self.scale
            depth[jump:] *= self.scale
            answer = dataclasses.replace(answer, extrinsics=extrinsics, depth=depth)
        return network_outputs(answer, dense_frames.tolist())
