# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Sliding window of synchronised frame sets, keyframe selection, and the latest-only hand-off to inference.

No ROS here: the node and offline tools feed `SlidingWindow.add` with `FrameSet`s in arrival order.

* A frame set (one image per camera, same instant) becomes a keyframe when it passes every enabled test of
  the `KeyframePolicy`: at least ``min_interval_s`` seconds after the previous keyframe and at least
  ``min_motion`` mean absolute grey-level change (0..1) against it. A threshold of 0 disables that test.
* The window keeps the last ``window_size`` keyframes (a bounded deque). Every ``window_stride`` keyframes,
  and immediately for the first keyframe, it emits a `Window` to run the network on; early windows are
  shorter than ``window_size`` until it fills.
* A frame set stamped more than ``max_reorder_s`` before the previous one (a bag loop, a restarted driver) resets
  the window; the update says so and that frame set starts the new window. One stamped less far back arrived out
  of order: it is skipped and the window kept.
* `LatestSlot` passes windows to the inference worker: it holds one, and a newer one replaces an unprocessed
  one (the newest frames win), so nothing queues without bound when inference is slower than the cameras.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Generic, Hashable, NamedTuple, Optional, TypeVar

import numpy as np

T = TypeVar("T")

# Keyframe motion is measured on a grey thumbnail about this many pixels wide, each pixel the mean of up to this
# many samples squared: cheap, and blind to noise (a mean of 4 has half of one pixel's noise; 16 would cost twice
# as much again for another half, at 518 x 350).
_THUMBNAIL_WIDTH = 64
_THUMBNAIL_SAMPLES = 2


class FrameId(NamedTuple):
    """One image of one camera: the project's key for a frame everywhere (cache, world, exports). A tuple, so
    ``(stamp_ns, camera)`` literals compare and hash equal to it."""

    stamp_ns: int
    camera: int


def same_frame_set(previous: Hashable, frame_id: Hashable) -> bool:
    """Whether ``frame_id`` is a later camera of ``previous``'s frame set, where frames come set by set, camera 0
    first (the order of windows and of the world's keyframes); an id that is not ``(stamp_ns, camera)`` is a frame
    set of its own."""
    return isinstance(previous, tuple) and isinstance(frame_id, tuple) and frame_id[1] > previous[1]


@dataclass(frozen=True)
class FrameSet:
    """One synchronised image per camera.

    Attributes:
        stamps_ns: capture stamp of each camera's image, nanoseconds, camera order.
        images: ``(H, W, 3)`` uint8 RGB per camera (views on the messages are fine: nothing writes to them).
        camera_frames: each image's TF frame id (its header's), camera order; empty when unknown. The rig and
            odometry scale sources look the cameras up by them.
    """

    stamps_ns: tuple[int, ...]
    images: tuple[np.ndarray, ...]
    camera_frames: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.stamps_ns) == 0 or len(self.stamps_ns) != len(self.images):
            raise ValueError(
                f"a frame set needs one stamp per image and at least one camera; got {len(self.stamps_ns)} stamps "
                f"and {len(self.images)} images"
            )
        if self.camera_frames and len(self.camera_frames) != len(self.images):
            raise ValueError(f"a frame set needs one frame id per image, got {len(self.camera_frames)}")

    def frame_ids(self) -> tuple[FrameId, ...]:
        """Each camera's image as a `FrameId`, camera order."""
        return tuple(FrameId(int(stamp), camera) for camera, stamp in enumerate(self.stamps_ns))

    @property
    def stamp_ns(self) -> int:
        """The set's time: its newest image."""
        return max(self.stamps_ns)


@dataclass(frozen=True)
class KeyframePolicy:
    """When a frame set is worth adding to the window (every enabled test must pass; 0 disables a test).

    Attributes:
        min_interval_s: minimum time since the previous keyframe, seconds.
        min_motion: minimum mean absolute grey-level difference to the previous keyframe, 0..1
            (averaged over cameras, on a ~64-pixel-wide thumbnail).
    """

    min_interval_s: float = 0.0
    min_motion: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_interval_s < float("inf"):
            raise ValueError(f"keyframe min_interval_s must be >= 0 seconds, got {self.min_interval_s!r}")
        if not 0.0 <= self.min_motion <= 1.0:
            raise ValueError(f"keyframe min_motion must be in [0, 1] (grey-level fraction), got {self.min_motion!r}")


@dataclass(frozen=True)
class WindowConfig:
    """Attributes: window_size (keyframes per inference), window_stride (new keyframes between inferences),
    max_reorder_s (a frame set at most this much older than the previous one arrived out of order and is skipped;
    further back, time went backwards and the window starts over)."""

    window_size: int = 8
    window_stride: int = 1
    keyframes: KeyframePolicy = field(default_factory=KeyframePolicy)
    max_reorder_s: float = 0.5

    def __post_init__(self) -> None:
        if self.window_size < 2:
            # The next window must share a keyframe with the world to be chained into it (`anchor_window`).
            raise ValueError(
                f"window_size must be >= 2 keyframes (a window of one shares no keyframe with the one before, so no "
                f"window after the first could join the world), got {self.window_size}"
            )
        if not 1 <= self.window_stride <= self.window_size:
            raise ValueError(
                f"window_stride must be in [1, window_size={self.window_size}] (a larger stride would skip "
                f"keyframes entirely), got {self.window_stride}"
            )


@dataclass(frozen=True)
class Window:
    """Keyframes to run the network on, oldest first.

    Attributes:
        frame_sets: the keyframes; the model input is their images in this order, cameras in camera order
            within each set, so image 0 (oldest set, camera 0) defines VGGT's world for this window.
        new_count: how many of the newest frame sets were not part of any earlier window (the ones whose
            points are published); at most len(frame_sets).
        sequence: 0 for the first window after start or reset, then counting up.
        resets: the resets the session had counted when this window formed (`ReconstructionSession.add` sets it):
            a new world starts at the first window formed after a reset, whenever the reset was served. None: the
            session's count when the window runs (the offline command's chunks, run as they form).
    """

    frame_sets: tuple[FrameSet, ...]
    new_count: int
    sequence: int
    resets: Optional[int] = None

    @property
    def num_cameras(self) -> int:
        return len(self.frame_sets[0].images)

    @property
    def images(self) -> list[np.ndarray]:
        """All ``(H, W, 3)`` images in model order: S = len(frame_sets) * num_cameras."""
        return [image for frame_set in self.frame_sets for image in frame_set.images]

    @property
    def stamps_ns(self) -> list[int]:
        """Stamp of each image, model order."""
        return [stamp for frame_set in self.frame_sets for stamp in frame_set.stamps_ns]


@dataclass(frozen=True)
class WindowUpdate:
    """What one `SlidingWindow.add` did.

    Attributes:
        is_keyframe: the frame set entered the window.
        reset: time went backwards, so the window was emptied before this frame set.
        window: the window to run inference on now, or None.
    """

    is_keyframe: bool
    reset: bool
    window: Optional[Window]


def grey_thumbnail(image: np.ndarray) -> np.ndarray:
    """``(h, w)`` float32 grey levels in [0, 1] of an ``(H, W, 3)`` uint8 image, ~64 px wide (64 to 127 px for an
    image at least 64 px wide): each pixel the mean of a block of up to ``_THUMBNAIL_SAMPLES x _THUMBNAIL_SAMPLES``
    evenly spaced image pixels (right and bottom remainders left out).

    A mean, not one pixel per block: a still camera's sensor noise (12 grey levels in a dark room) made every frame
    set a keyframe at min_motion 0.05 (it measures 0.048 on one pixel, 0.025 on a mean of 4). Of a bounded number of
    samples, read in strides, not of every pixel: the cost stays that of a 128 to 255 px wide image for any camera,
    whatever view the decoder gives (a reshape would copy bgr8's reversed channels whole).
    """
    stride = max(1, image.shape[1] // (_THUMBNAIL_WIDTH * _THUMBNAIL_SAMPLES))  # image pixels between samples
    samples = image[::stride, ::stride]
    block = min(_THUMBNAIL_SAMPLES, max(1, samples.shape[1] // _THUMBNAIL_WIDTH))  # samples per thumbnail pixel side
    rows, cols = max(1, samples.shape[0] // block), samples.shape[1] // block
    block_rows = min(block, samples.shape[0])  # an image fewer samples tall than a block: one row of blocks
    grid = samples[: rows * block_rows, : cols * block]
    row_sums = np.zeros((rows, cols * block, 3), dtype=np.uint16)  # sums of at most 2 samples
    for phase in range(block_rows):  # strided reads of any view, no copy of the whole image
        row_sums += grid[phase::block_rows]
    sums = row_sums.reshape(rows, cols, block * 3).sum(axis=2, dtype=np.uint32)
    return sums.astype(np.float32) / np.float32(255.0 * 3 * block_rows * block)


def motion_between(thumbnails_a: tuple[np.ndarray, ...], thumbnails_b: tuple[np.ndarray, ...]) -> float:
    """Mean absolute grey-level change between two sets of thumbnails, averaged over cameras; 1.0 if sizes differ."""
    changes = []
    for a, b in zip(thumbnails_a, thumbnails_b):
        changes.append(float(np.abs(a - b).mean()) if a.shape == b.shape else 1.0)
    return sum(changes) / len(changes)


class SlidingWindow:
    """Keyframe selection plus a bounded window of the last ``window_size`` keyframes (see the module doc)."""

    def __init__(self, config: WindowConfig) -> None:
        self.config = config
        self._keyframes: deque[FrameSet] = deque(maxlen=config.window_size)
        self._last_stamp_ns: Optional[int] = None
        self._last_keyframe_stamp_ns: Optional[int] = None
        self._last_keyframe_thumbnails: tuple[np.ndarray, ...] = ()
        self._since_emitted = 0
        self._sequence = 0

    def __len__(self) -> int:
        return len(self._keyframes)

    def reset(self) -> None:
        """Start over: no keyframes, no history."""
        self._keyframes.clear()
        self._last_stamp_ns = None
        self._last_keyframe_stamp_ns = None
        self._last_keyframe_thumbnails = ()
        self._since_emitted = 0
        self._sequence = 0

    def add(self, frame_set: FrameSet) -> WindowUpdate:
        """Offer one synchronised frame set; returns whether it was kept, whether time jumped back, and a window."""
        back_ns = self._last_stamp_ns - frame_set.stamp_ns if self._last_stamp_ns is not None else 0
        # Repeated (a frame set delivered twice, a frozen clock) or late by a little: not used, the window is kept.
        if self._last_stamp_ns is not None and 0 <= back_ns <= self.config.max_reorder_s * 1e9:
            return WindowUpdate(is_keyframe=False, reset=False, window=None)
        went_back = back_ns > 0
        if went_back:
            self.reset()
        self._last_stamp_ns = frame_set.stamp_ns

        thumbnails = tuple(grey_thumbnail(image) for image in frame_set.images)
        if not self._is_keyframe(frame_set.stamp_ns, thumbnails):
            return WindowUpdate(is_keyframe=False, reset=went_back, window=None)

        first = self._last_keyframe_stamp_ns is None
        self._keyframes.append(frame_set)
        self._last_keyframe_stamp_ns = frame_set.stamp_ns
        self._last_keyframe_thumbnails = thumbnails
        self._since_emitted += 1
        if not first and self._since_emitted < self.config.window_stride:
            return WindowUpdate(is_keyframe=True, reset=went_back, window=None)

        window = Window(
            frame_sets=tuple(self._keyframes),
            new_count=min(self._since_emitted, len(self._keyframes)),
            sequence=self._sequence,
        )
        self._since_emitted = 0
        self._sequence += 1
        return WindowUpdate(is_keyframe=True, reset=went_back, window=window)

    def _is_keyframe(self, stamp_ns: int, thumbnails: tuple[np.ndarray, ...]) -> bool:
        if self._last_keyframe_stamp_ns is None:
            return True
        policy = self.config.keyframes
        if policy.min_interval_s > 0 and (stamp_ns - self._last_keyframe_stamp_ns) < policy.min_interval_s * 1e9:
            return False
        if policy.min_motion > 0 and motion_between(self._last_keyframe_thumbnails, thumbnails) < policy.min_motion:
            return False
        return True


class ChunkWindows:
    """Joint reconstruction's windows: every frame set, in chunks of up to ``chunk_size`` that overlap by ``overlap``.

    The official demo's mode (all images in one forward pass, the model's best accuracy) when the whole input fits
    one chunk; beyond that, consecutive chunks share ``overlap`` frame sets, through which the world chains them.
    No keyframe selection: every frame set is used. Offline only (a chunk is run when full, or at `finish`).
    """

    def __init__(self, chunk_size: int, overlap: int) -> None:
        if chunk_size < 2 or not 1 <= overlap < chunk_size:
            raise ValueError(
                f"chunks need chunk_size >= 2 frame sets and an overlap in [1, chunk_size - 1], got {chunk_size} and "
                f"{overlap}"
            )
        self.chunk_size = chunk_size
        self.overlap = overlap
        self._frame_sets: list[FrameSet] = []
        self._shared = 0  # leading frame sets already run in the previous chunk
        self._sequence = 0

    def add(self, frame_set: FrameSet) -> Optional[Window]:
        """Queue one frame set; returns the chunk it completes, if any."""
        self._frame_sets.append(frame_set)
        return self._emit() if len(self._frame_sets) == self.chunk_size else None

    def finish(self) -> Optional[Window]:
        """The last, partial chunk (None when every frame set has been run)."""
        return self._emit() if len(self._frame_sets) > self._shared else None

    def _emit(self) -> Window:
        window = Window(tuple(self._frame_sets), len(self._frame_sets) - self._shared, self._sequence)
        self._sequence += 1
        self._frame_sets = self._frame_sets[-self.overlap :]
        self._shared = len(self._frame_sets)
        return window


def anchor_window(window: Window, anchor: Optional[FrameSet]) -> Window:
    """Make a window overlap the world it will be chained into.

    ``anchor`` is the newest frame set already in the world. Consecutive windows share keyframes, but when
    inference lags and windows in between were dropped, the window to run may share none with the world, and
    could not be aligned. Then its oldest frame set is replaced by the anchor (the window keeps its size, so it
    still fits the engines) and it no longer counts that set as new.
    """
    sets = window.frame_sets
    if anchor is None or len(sets) < 2 or any(s.stamps_ns == anchor.stamps_ns for s in sets):
        return window
    return replace(window, frame_sets=(anchor, *sets[1:]), new_count=min(window.new_count, len(sets) - 1))


class LatestSlot(Generic[T]):
    """A one-item, thread-safe hand-off where a newer item replaces an unconsumed one.

    The producer never blocks; the consumer waits in `take`. `put` returns the replaced item (dropped, never
    consumed) so the caller can count what was lost.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._item: Optional[T] = None
        self._closed = False

    def put(self, item: T) -> Optional[T]:
        with self._condition:
            replaced, self._item = self._item, item
            self._condition.notify()
            return replaced

    def take(self, timeout: Optional[float] = None) -> Optional[T]:
        """The waiting item, waiting up to ``timeout`` seconds; None on timeout or once closed."""
        with self._condition:
            self._condition.wait_for(lambda: self._item is not None or self._closed, timeout=timeout)
            if self._closed:
                return None
            item, self._item = self._item, None
            return item

    def clear(self) -> Optional[T]:
        """Drop the waiting item, if any, and return it."""
        with self._condition:
            dropped, self._item = self._item, None
            return dropped

    def close(self) -> None:
        """Wake the consumer for good (shutdown); later `take` calls return None."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
