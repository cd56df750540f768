# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The sparse points of a dataset export: a bounded, seeded sample of each frame's confident depth pixels, each seen
by the frame it came from and by the neighbouring frames that agree with it.

VGGT has no feature matches, so a COLMAP point here is a depth pixel unprojected into the world. Its first
observation is the pixel itself (mapped to the camera image). It is then projected into up to
``neighbour_frames`` frames before and after its own (in the order frames are added); where it lands inside
that frame's image, in front of the camera, and two confident depths there agree with the point's within
``depth_agreement`` (relative), that frame observes it too, at the projected position. The two are the model
pixel's nearest the projection and the frame's depth file's at the camera pixel it lands in
(`resample_to_image`: that pixel's nearest model pixel). The first rejects points hidden behind something in the
other view; the second keeps every observation true of the file a reader checks it against (with a network's
per-pixel noise the two differ where the model image enlarges the camera image). An observation is the
projection itself, so the reprojection error is 0 by construction and written as 0.

Streaming: only the last ``neighbour_frames`` frames stay open (their depth for the agreement test, their points
and 2-D observations). A frame is closed when it can gain no more observations, and leaves as one COLMAP image
record plus its points' records (`vggt_ros.dataset.colmap`), so memory does not grow with the recording.

Points sample only pixels that show the camera image (pad mode's white borders show nothing), that the depth file
shows (`resampled_model_pixels`: where the model image enlarges the camera image, the depth file at a point's own
observation would otherwise give a neighbouring model pixel's depth) and that are at or above the frame's
``confidence_percentile`` of confidence among its usable pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from vggt_ros.dataset.colmap import ImageRecord, PointBatch
from vggt_ros.dataset.frames import ExportFrame, model_pixels_in_image, nearest_model_pixels, resampled_model_pixels
from vggt_ros.geometry import apply_transform, invert_rigid, project_points
from vggt_ros.numeric import usable_pixels


@dataclass(frozen=True)
class PointSampling:
    """How the sparse points are chosen and tracked.

    Attributes:
        points_per_frame: most points sampled from one frame (memory and file size grow with it).
        confidence_percentile: only pixels at or above this percentile of the frame's confidence (0..100) are
            sampled or used to confirm another frame's point; 0 takes every usable pixel.
        neighbour_frames: frames before and after a point's own frame that may observe it (0: none).
        depth_agreement: a neighbour observes a point when its depth there differs from the point's by at most
            this fraction of its depth.
        seed: the sample of frame k depends only on (seed, k).
    """

    points_per_frame: int = 2000
    confidence_percentile: float = 50.0
    neighbour_frames: int = 2
    depth_agreement: float = 0.03
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("points_per_frame", "neighbour_frames", "seed"):
            value = getattr(self, name)
            minimum = 1 if name == "points_per_frame" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
        if not (isinstance(self.confidence_percentile, (int, float)) and 0.0 <= self.confidence_percentile < 100.0):
            raise ValueError(f"confidence_percentile must be in [0, 100), got {self.confidence_percentile!r}")
        if not (isinstance(self.depth_agreement, (int, float)) and 0.0 < self.depth_agreement < 1.0):
            raise ValueError(
                f"depth_agreement must be a fraction in (0, 1) (0.03 = 3 % of the depth), got {self.depth_agreement!r}"
            )


@dataclass(eq=False)
class _OpenFrame:
    """A frame that may still gain observations: its geometry, its points, and growing 2-D point and track lists."""

    image_id: int
    frame: ExportFrame
    camera_from_world: np.ndarray  # (3, 4)
    confident_depth: np.ndarray  # (h, w) float32, NaN where the pixel may not confirm a point
    # Each camera-image row's and column's nearest model row and column (-1: none), as the depth file takes them.
    nearest_rows: np.ndarray  # (H,) int64
    nearest_columns: np.ndarray  # (W,) int64
    point3d_ids: np.ndarray  # (P,) uint64
    xyz: np.ndarray  # (P, 3) float64
    rgb: np.ndarray  # (P, 3) uint8
    # Never empty once opened: the frame's own observations are the first chunk (possibly of length 0).
    points2d: list = field(default_factory=list)  # chunks of (k, 2) float64
    observed_ids: list = field(default_factory=list)  # chunks of (k,) uint64
    num_points2d: int = 0
    # Track elements of this frame's points: chunks of (point row, image id, point2D index).
    track_point: list = field(default_factory=list)
    track_image: list = field(default_factory=list)
    track_index: list = field(default_factory=list)

    def observe(self, points2d: np.ndarray, point3d_ids: np.ndarray) -> np.ndarray:
        """Append 2-D points seen in this frame; returns their point2D indices."""
        indices = np.arange(self.num_points2d, self.num_points2d + len(points2d), dtype=np.uint32)
        self.points2d.append(points2d)
        self.observed_ids.append(point3d_ids)
        self.num_points2d += len(points2d)
        return indices

    def add_track(self, rows: np.ndarray, image_id: int, point2d_idx: np.ndarray) -> None:
        self.track_point.append(rows)
        self.track_image.append(np.full(len(rows), image_id, dtype=np.uint32))
        self.track_index.append(point2d_idx)


class TrackBuilder:
    """Turns frames, one at a time, into closed COLMAP image records and point batches (see the module docstring).

    `add` returns the frames it closed; `close_all` closes the rest at the end. Point ids are 1, 2, 3, ... in the
    order points are sampled.
    """

    def __init__(self, sampling: PointSampling = PointSampling()) -> None:
        self.sampling = sampling
        self._open: list[_OpenFrame] = []
        self._next_point_id = 1
        self._last_image_id = 0

    def add(self, frame: ExportFrame, image_id: int) -> list[tuple[ImageRecord, PointBatch]]:
        """Sample ``frame``'s points, cross-observe them with the open neighbours, and close the frames that are
        now out of reach. ``image_id`` is its COLMAP image id, larger than the previous frame's (the first >= 1)."""
        if isinstance(image_id, bool) or not isinstance(image_id, int) or image_id <= self._last_image_id:
            raise ValueError(
                f"image_id must be an int above the previous frame's ({self._last_image_id}), got {image_id!r}"
            )
        self._last_image_id = image_id
        new, model_pixels = self._open_frame(frame, image_id)
        own = new.observe(frame.corner_pixels(model_pixels), new.point3d_ids)
        new.add_track(np.arange(len(new.point3d_ids)), image_id, own)
        for neighbour in self._open:
            self._cross_observe(new, neighbour)
            self._cross_observe(neighbour, new)
        self._open.append(new)
        closed = []
        while len(self._open) > self.sampling.neighbour_frames:
            closed.append(self._close(self._open.pop(0)))
        return closed

    def close_all(self) -> list[tuple[ImageRecord, PointBatch]]:
        closed = [self._close(frame) for frame in self._open]
        self._open = []
        return closed

    @property
    def open_frames(self) -> int:
        """Frames held in memory (at most ``neighbour_frames`` between calls)."""
        return len(self._open)

    def _open_frame(self, frame: ExportFrame, image_id: int) -> tuple[_OpenFrame, np.ndarray]:
        """The frame's sampled points in the world, and their model pixel coordinates ``(P, 2)`` (u, v)."""
        confident = usable_pixels(frame.depth, frame.confidence) & model_pixels_in_image(frame.pixel_map)
        if self.sampling.confidence_percentile > 0 and confident.any():
            threshold = np.percentile(frame.confidence[confident], self.sampling.confidence_percentile)
            confident &= frame.confidence >= threshold
        nearest_rows, nearest_columns = nearest_model_pixels(frame.pixel_map)
        candidates = np.flatnonzero(confident & resampled_model_pixels(frame.pixel_map, nearest_rows, nearest_columns))
        rng = np.random.default_rng([self.sampling.seed, image_id])
        if len(candidates) > self.sampling.points_per_frame:
            candidates = np.sort(rng.choice(candidates, self.sampling.points_per_frame, replace=False))
        width = frame.depth.shape[1]
        rows, columns = candidates // width, candidates % width
        pose = frame.world_from_camera.astype(np.float64)
        # geometry.depth_to_camera_points unprojects whole grids; only the P sampled pixels are needed here (same
        # convention: integer model pixel coordinates are pixel centres).
        intrinsics = frame.intrinsics.astype(np.float64)
        depth = frame.depth[rows, columns].astype(np.float64)
        camera_points = np.stack(
            (
                (columns - intrinsics[0, 2]) * depth / intrinsics[0, 0],
                (rows - intrinsics[1, 2]) * depth / intrinsics[1, 1],
                depth,
            ),
            axis=1,
        )
        xyz = apply_transform(pose, camera_points)
        point3d_ids = np.arange(self._next_point_id, self._next_point_id + len(candidates), dtype=np.uint64)
        self._next_point_id += len(candidates)
        opened = _OpenFrame(
            image_id=image_id,
            frame=frame,
            camera_from_world=invert_rigid(pose[:3]),
            confident_depth=np.where(confident, frame.depth, np.float32(math.nan)),
            nearest_rows=nearest_rows,
            nearest_columns=nearest_columns,
            point3d_ids=point3d_ids,
            xyz=xyz,
            rgb=frame.colors[rows, columns],
        )
        return opened, np.stack((columns, rows), axis=1).astype(np.float64)

    def _cross_observe(self, source: _OpenFrame, target: _OpenFrame) -> None:
        """Let ``target`` observe the points of ``source`` that it sees with agreeing depth."""
        if not len(source.xyz):
            return
        camera_points = apply_transform(target.camera_from_world, source.xyz)
        z = camera_points[:, 2]
        rows = np.flatnonzero(z > 0)
        model_uv = project_points(target.frame.intrinsics.astype(np.float64), camera_points[rows])
        corner = target.frame.corner_pixels(model_uv)
        image_height, image_width = target.frame.image_hw
        inside = (
            (corner[:, 0] >= 0) & (corner[:, 0] < image_width) & (corner[:, 1] >= 0) & (corner[:, 1] < image_height)
        )
        rows, model_uv, corner = rows[inside], model_uv[inside], corner[inside]
        # Two depths must agree with the point's: the model pixel nearest its projection (the finer of the two
        # grids where the model image enlarges the camera image: a point just behind an edge is hidden), and the
        # depth file's at the camera pixel it lands in (that pixel's nearest model pixel).
        pixel = np.floor(corner).astype(np.int64)
        file_pixel = np.stack((target.nearest_columns[pixel[:, 0]], target.nearest_rows[pixel[:, 1]]), axis=1)
        agrees = np.ones(len(rows), dtype=bool)
        height, width = target.confident_depth.shape
        for model_pixel in (np.floor(model_uv + 0.5).astype(np.int64), file_pixel):
            valid = (model_pixel[:, 0] >= 0) & (model_pixel[:, 0] < width)
            valid &= (model_pixel[:, 1] >= 0) & (model_pixel[:, 1] < height)
            reference = np.full(len(rows), math.nan)
            reference[valid] = target.confident_depth[model_pixel[valid, 1], model_pixel[valid, 0]]
            agrees &= np.abs(z[rows] - reference) <= self.sampling.depth_agreement * reference  # NaN: False
        rows, corner = rows[agrees], corner[agrees]
        if len(rows):
            indices = target.observe(corner, source.point3d_ids[rows])
            source.add_track(rows, target.image_id, indices)

    @staticmethod
    def _close(frame: _OpenFrame) -> tuple[ImageRecord, PointBatch]:
        record = ImageRecord(
            image_id=frame.image_id,
            camera_id=frame.image_id,
            name=frame.frame.name,
            camera_from_world=frame.camera_from_world,
            points2d=np.concatenate(frame.points2d),
            point3d_ids=np.concatenate(frame.observed_ids),
        )
        track_point = np.concatenate(frame.track_point)
        order = np.argsort(track_point, kind="stable")
        batch = PointBatch(
            point3d_ids=frame.point3d_ids,
            xyz=frame.xyz,
            rgb=frame.rgb,
            error=np.zeros(len(frame.point3d_ids)),
            track_point=track_point[order],
            track_image_ids=np.concatenate(frame.track_image)[order],
            track_point2d_idx=np.concatenate(frame.track_index)[order],
        )
        return record, batch
