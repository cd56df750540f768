# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The world's memory, bounded: the keyframe trajectory and the recent frames' pixel samples used for alignment.

`KeyframeStore` keeps the newest ``trajectory_recent`` keyframes in full and a decimated history of the older
ones (``trajectory_history`` at most: when it fills up every second frame set is dropped, so the history spans
the whole run at a spacing that doubles). Frame ids are known (recognised as already merged) while they are
among the recent keyframes; a sliding window never brings back an older frame.

Keyframes come in frame sets, one keyframe per camera (ids ``(stamp_ns, camera)``, `vggt_ros.window.FrameId`,
camera 0 first), and the store keeps or drops whole frame sets: decimating keyframe by keyframe kept every other
one, and with two cameras that was always camera 0's, so camera 1's trajectory lost its whole history.

`SampleStore` keeps, for the newest ``retained_frames`` frames, a sample of their pixels' world points that later
windows align to.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, replace
from typing import Hashable, Iterator, Optional

import numpy as np

from vggt_ros.geometry import scale_pose
from vggt_ros.window import same_frame_set


@dataclass(frozen=True)
class Keyframe:
    """One merged frame: its id, capture time (s), pose ``world_from_camera`` ``(4, 4)``, the window-to-world
    depth factor of the window that added it, its segment and its median depth (world units)."""

    frame_id: Hashable
    timestamp: float
    world_from_camera: np.ndarray
    depth_scale: float
    segment: int
    median_depth: float


@dataclass(frozen=True)
class Trajectory:
    """Keyframes in insertion order (decimated history, then the recent ones).

    frame_ids: ids; timestamps: ``(N,)`` seconds; world_from_camera: ``(N, 4, 4)`` rigid poses of the optical
    frames; depth_scale: ``(N,)`` window-to-world depth factor of the window that added each frame;
    segment: ``(N,)`` int segment of each frame.
    """

    frame_ids: tuple[Hashable, ...]
    timestamps: np.ndarray
    world_from_camera: np.ndarray
    depth_scale: np.ndarray
    segment: np.ndarray

    @classmethod
    def of(cls, keyframes: list[Keyframe]) -> "Trajectory":
        return cls(
            frame_ids=tuple(k.frame_id for k in keyframes),
            timestamps=np.array([k.timestamp for k in keyframes], dtype=np.float64),
            world_from_camera=np.stack([k.world_from_camera for k in keyframes]) if keyframes else np.zeros((0, 4, 4)),
            depth_scale=np.array([k.depth_scale for k in keyframes], dtype=np.float64),
            segment=np.array([k.segment for k in keyframes], dtype=np.int64),
        )


class KeyframeStore:
    """Bounded keyframe trajectory (see the module docstring)."""

    def __init__(self, recent: int, history: int) -> None:
        self._recent: deque[list[Keyframe]] = deque()  # frame sets, oldest first
        self._recent_count = 0  # keyframes in them
        self._recent_limit = recent
        self._history: list[list[Keyframe]] = []
        self._history_limit = history
        self._history_stride = 1  # keep every n-th frame set that leaves the recent ones
        self._left_recent = 0
        self._known: set[Hashable] = set()
        self.total = 0  # keyframes ever added

    def __len__(self) -> int:
        return _count(self._history) + self._recent_count

    def __iter__(self) -> Iterator[Keyframe]:
        for frame_set in self._history:
            yield from frame_set
        for frame_set in self._recent:
            yield from frame_set

    def __contains__(self, frame_id: Hashable) -> bool:
        return frame_id in self._known

    @property
    def last(self) -> Optional[Keyframe]:
        return self._recent[-1][-1] if self._recent else None

    def add(self, keyframe: Keyframe) -> list[Hashable]:
        """Add the newest keyframe (a camera after the newest keyframe's joins its frame set); the ids of the
        keyframes this dropped (decimation), oldest first."""
        newest = self.last
        if newest is not None and same_frame_set(newest.frame_id, keyframe.frame_id):
            self._recent[-1].append(keyframe)
        else:
            self._recent.append([keyframe])
        self._recent_count += 1
        self._known.add(keyframe.frame_id)
        self.total += 1
        dropped: list[Hashable] = []
        while self._recent_count > self._recent_limit and len(self._recent) > 1:
            old = self._recent.popleft()
            self._recent_count -= len(old)
            self._known.difference_update(k.frame_id for k in old)
            if self._left_recent % self._history_stride == 0:
                self._history.append(old)
                # A history smaller than one frame set keeps one.
                if _count(self._history) > self._history_limit and len(self._history) > 1:
                    dropped += [k.frame_id for frame_set in self._history[1::2] for k in frame_set]
                    self._history = self._history[::2]
                    self._history_stride *= 2
            else:
                dropped += [k.frame_id for k in old]
            self._left_recent += 1
        return dropped

    def newest_of_camera(self, camera: int) -> Optional[Keyframe]:
        """The newest kept keyframe of ``camera`` (the second part of its id), None when none is kept."""
        for frame_set in (*reversed(self._recent), *reversed(self._history)):
            for keyframe in frame_set:
                if keyframe.frame_id[1] == camera:
                    return keyframe
        return None

    def get(self, frame_id: Hashable) -> Optional[Keyframe]:
        """The kept keyframe ``frame_id`` (recent or history), None when it is not kept."""
        return next((k for k in self if k.frame_id == frame_id), None)

    def trajectory(self) -> Trajectory:
        return Trajectory.of(list(self))

    def rescale(self, factor: float) -> None:
        """Scale every kept keyframe's position and depth by ``factor`` (the world's unit changed)."""

        def scaled(frame_set: list[Keyframe]) -> list[Keyframe]:
            return [
                replace(
                    keyframe,
                    world_from_camera=scale_pose(keyframe.world_from_camera, factor),
                    depth_scale=keyframe.depth_scale * factor,
                    median_depth=keyframe.median_depth * factor,
                )
                for keyframe in frame_set
            ]

        self._recent = deque(scaled(s) for s in self._recent)
        self._history = [scaled(s) for s in self._history]


def _count(frame_sets: list[list[Keyframe]]) -> int:
    return sum(len(frame_set) for frame_set in frame_sets)


@dataclass
class FrameSamples:
    """A recent frame kept for alignment: sampled pixels (flat indices), their world points, depths (world
    units) and confidences. ``points`` and ``depth`` are the means of ``observations`` aligned estimates per
    pixel (see `vggt_ros.world.overlap.refine_samples`); ``world_from_camera`` is the frame's trajectory pose."""

    pixel_index: np.ndarray
    points: np.ndarray
    observations: np.ndarray
    confidence: np.ndarray
    depth: np.ndarray
    world_from_camera: np.ndarray


class SampleStore(OrderedDict):
    """frame id -> `FrameSamples` of the newest ``limit`` frames (oldest first)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, frame_id: Hashable, samples: FrameSamples) -> None:
        super().__setitem__(frame_id, samples)
        while len(self) > self.limit:
            self.popitem(last=False)

    def rescale(self, factor: float) -> None:
        """Scale every stored point, depth and pose position by ``factor`` (the world's unit changed)."""
        for samples in self.values():
            samples.points = samples.points * factor
            samples.depth = samples.depth * factor
            samples.world_from_camera = scale_pose(samples.world_from_camera, factor)
