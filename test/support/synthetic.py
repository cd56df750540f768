# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Test and benchmark support (not used by the node): a synthetic textured room with exact geometry, and a
stand-in for the network that answers windows the way VGGT would.

* `SyntheticRoom`: an axis-aligned room (8 x 3 x 6 units, scene frame y down like OpenCV) with two free-standing
  panels, every surface painted with a procedural colour texture. Rendering is analytic (ray / rectangle
  intersection in numpy), so depth, colour and camera poses are exact, and `distance_to_surface` gives the
  true point-to-surface distance for map accuracy.
* `render_sequence(path, ...)`: one of the camera paths in `PATHS` ("straight", "loop", "rotation") rendered
  into a `SyntheticSequence` (ground-truth extrinsics, intrinsics, depth, RGB, stamps).
* `FakeVGGTForWorldTests`: a test double for the network. Given the indices of a window's frames it returns
  what VGGT returns for that window: the ground-truth depth and cameras re-expressed in the window's first
  camera, rescaled by VGGT's per-scene normalisation (1 / mean distance of the window's 3-D points to the
  first camera's centre), with seeded noise (depth, per-frame depth scale, poses, focal length, outlier pixels)
  and a confidence that is lower where the noise is larger. It also keeps the ground truth of every answer
  for evaluation.
* `FakePipelineForWorldTests`: a test double of `vggt_ros.runtime.Pipeline` answering with
  `FakeVGGTForWorldTests`, so a whole `ReconstructionSession` (keyframes, windows, frame cache, depth-frame
  selection, chaining, map) runs on the synthetic room.
* `run_chaining`, `evaluate_chaining`: a whole sequence through the session, and its accuracy against the
  ground truth (shared by test/core/test_world.py, bench/world_chaining.py and bench/soak.py).

Pixel convention as VGGT: integer pixel coordinates u = 0..W-1, v = 0..H-1, no half-pixel offset,
principal point (W/2, H/2), depth along the optical axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from vggt_ros.geometry import (
    compose_rigid,
    compose_similarity,
    decompose_similarity,
    extrinsics_intrinsics_to_pose_encoding,
    invert_rigid,
    invert_similarity,
    similarity_matrix,
    transform_points,
    unproject_depth,
)
from vggt_ros.mapping import GrowingMap, MapConfig
from vggt_ros.preprocess import preprocess_frames
from vggt_ros.products import WindowProducts, decode_window
from vggt_ros.session import ReconstructionSession, SessionConfig
from vggt_ros.window import FrameSet, WindowConfig
from vggt_ros.world import WindowResult, WindowStatus, World, WorldConfig
from vggt_ros.world.alignment import weighted_umeyama
from vggt_ros.world.cloud import CloudConfig

PATHS = ("straight", "loop", "rotation")


@dataclass(frozen=True)
class Rectangle:
    """An axis-aligned textured rectangle: the points with coordinate ``axis`` equal to ``offset`` and the two
    other coordinates inside ``bounds`` ((min, max) for the lower-numbered free axis, then the higher)."""

    axis: int
    offset: float
    bounds: tuple[tuple[float, float], tuple[float, float]]
    color: tuple[float, float, float]

    @property
    def free_axes(self) -> tuple[int, int]:
        a, b = (k for k in range(3) if k != self.axis)
        return a, b


class SyntheticRoom:
    """A closed room x in [-4, 4], y in [-1.5, 1.5] (y down: the floor is y = 1.5), z in [-3, 3], plus two panels."""

    half_size = np.array([4.0, 1.5, 3.0])

    def __init__(self) -> None:
        hx, hy, hz = self.half_size
        walls = [
            Rectangle(0, -hx, ((-hy, hy), (-hz, hz)), (0.85, 0.45, 0.35)),
            Rectangle(0, hx, ((-hy, hy), (-hz, hz)), (0.35, 0.65, 0.85)),
            Rectangle(1, -hy, ((-hx, hx), (-hz, hz)), (0.9, 0.9, 0.8)),
            Rectangle(1, hy, ((-hx, hx), (-hz, hz)), (0.55, 0.45, 0.35)),
            Rectangle(2, -hz, ((-hx, hx), (-hy, hy)), (0.5, 0.8, 0.45)),
            Rectangle(2, hz, ((-hx, hx), (-hy, hy)), (0.8, 0.75, 0.4)),
        ]
        panels = [
            Rectangle(2, 1.8, ((-2.5, -0.5), (-0.3, hy)), (0.7, 0.35, 0.7)),
            Rectangle(0, 2.8, ((0.0, hy), (-2.5, 0.0)), (0.35, 0.75, 0.7)),
        ]
        self.surfaces: tuple[Rectangle, ...] = tuple(walls + panels)

    @property
    def size(self) -> float:
        """Scene size for relative errors: the room's diagonal."""
        return float(2.0 * np.linalg.norm(self.half_size))

    def render(self, extrinsics: np.ndarray, intrinsics: np.ndarray, image_hw: tuple[int, int]):
        """Depth ``(N, H, W)`` float64 and RGB ``(N, H, W, 3)`` uint8 seen by cameras ``(N, 3, 4)``
        (camera-from-scene) with ``intrinsics`` ``(3, 3)``."""
        height, width = image_hw
        u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
        x = (u - intrinsics[0, 2]) / intrinsics[0, 0]
        y = (v - intrinsics[1, 2]) / intrinsics[1, 1]
        rays_cam = np.stack((x, y, np.ones_like(u)), axis=-1)
        depth = np.empty((len(extrinsics), height, width))
        rgb = np.empty((len(extrinsics), height, width, 3), dtype=np.uint8)
        for i, ext in enumerate(np.asarray(extrinsics, dtype=np.float64)):
            rot, trans = ext[:, :3], ext[:, 3]
            origin = -rot.T @ trans
            # Rays with unit camera-z component: the ray parameter is the depth.
            dirs = rays_cam.reshape(-1, 3) @ rot
            t_best = np.full(len(dirs), np.inf)
            hit_id = np.full(len(dirs), -1)
            for k, surf in enumerate(self.surfaces):
                d = dirs[:, surf.axis]
                with np.errstate(divide="ignore", invalid="ignore"):
                    t = (surf.offset - origin[surf.axis]) / d
                    p = origin + t[:, None] * dirs
                a, b = surf.free_axes
                inside = (
                    (t > 1e-6)
                    & (p[:, a] >= surf.bounds[0][0])
                    & (p[:, a] <= surf.bounds[0][1])
                    & (p[:, b] >= surf.bounds[1][0])
                    & (p[:, b] <= surf.bounds[1][1])
                )
                closer = inside & (t < t_best)
                t_best[closer] = t[closer]
                hit_id[closer] = k
            if (hit_id < 0).any():
                raise ValueError(f"camera {i} sees outside the room (is it inside the room?)")
            points = origin + t_best[:, None] * dirs
            depth[i] = t_best.reshape(height, width)
            rgb[i] = self._texture(points, hit_id).reshape(height, width, 3)
        return depth, rgb

    def _texture(self, points: np.ndarray, hit_id: np.ndarray) -> np.ndarray:
        colors = np.empty((len(points), 3))
        for k, surf in enumerate(self.surfaces):
            sel = hit_id == k
            if not sel.any():
                continue
            a, b = surf.free_axes
            pa, pb = points[sel, a], points[sel, b]
            pattern = 0.55 * _value_noise(pa, pb, 0.45, 2 * k) + 0.45 * _value_noise(pa, pb, 0.11, 2 * k + 1)
            colors[sel] = np.asarray(surf.color) * (0.25 + 0.75 * pattern[:, None])
        return np.clip(np.round(colors * 255.0), 0, 255).astype(np.uint8)

    def distance_to_surface(self, points: np.ndarray) -> np.ndarray:
        """``(N,)`` distance from scene-frame points ``(N, 3)`` to the nearest surface of the room."""
        points = np.asarray(points, dtype=np.float64)
        best = np.full(len(points), np.inf)
        for surf in self.surfaces:
            a, b = surf.free_axes
            da = np.maximum(0.0, np.maximum(surf.bounds[0][0] - points[:, a], points[:, a] - surf.bounds[0][1]))
            db = np.maximum(0.0, np.maximum(surf.bounds[1][0] - points[:, b], points[:, b] - surf.bounds[1][1]))
            dist = np.sqrt((points[:, surf.axis] - surf.offset) ** 2 + da**2 + db**2)
            best = np.minimum(best, dist)
        return best


def _value_noise(a: np.ndarray, b: np.ndarray, cell: float, seed: int) -> np.ndarray:
    """Smooth 2-D value noise in [0, 1] with feature size ``cell`` (bilinear blend of hashed lattice values)."""
    fa, fb = a / cell, b / cell
    ia, ib = np.floor(fa).astype(np.int64), np.floor(fb).astype(np.int64)
    sa, sb = fa - ia, fb - ib
    sa, sb = sa * sa * (3 - 2 * sa), sb * sb * (3 - 2 * sb)

    def corner(i, j):
        h = (i * 73856093) ^ (j * 19349663) ^ (seed * 83492791)
        h = (h ^ (h >> 13)) * 1274126177
        return ((h ^ (h >> 16)) & 0xFFFF) / 65535.0

    top = corner(ia, ib) * (1 - sa) + corner(ia + 1, ib) * sa
    bottom = corner(ia, ib + 1) * (1 - sa) + corner(ia + 1, ib + 1) * sa
    return top * (1 - sb) + bottom * sb


def look_at(centres: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Camera-from-scene extrinsics ``(N, 3, 4)`` for cameras at ``centres`` ``(N, 3)`` looking along
    ``directions`` ``(N, 3)``, image rows pointing down (scene +y), OpenCV axes."""
    z = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    x = np.cross(z, np.array([0.0, -1.0, 0.0]))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.cross(z, x)
    rot = np.stack((x, y, z), axis=1)
    trans = -np.einsum("nij,nj->ni", rot, centres)
    return np.concatenate((rot, trans[:, :, None]), axis=2)


def camera_path(name: str, num_frames: int = 200) -> np.ndarray:
    """Ground-truth extrinsics ``(num_frames, 3, 4)`` (camera-from-scene) of one path in `PATHS`.

    straight: 5 units sideways along the room looking at the far wall and a panel, gentle yaw and pitch sway.
    loop: once around an ellipse (radii 2 x 1.3) looking outwards and ahead; ends where it started.
    rotation: a full 360-degree pan with pitch sway while moving 3 units: rotation-heavy.
    """
    u = np.linspace(0.0, 1.0, num_frames)
    if name == "straight":
        centres = np.stack((-2.5 + 5.0 * u, 0.2 + 0.1 * np.sin(2 * np.pi * u), np.full_like(u, -1.8)), axis=1)
        yaw = 0.15 * np.sin(2 * np.pi * u)
        pitch = 0.06 * np.sin(4 * np.pi * u)
    elif name == "loop":
        theta = 2 * np.pi * u
        centres = np.stack((2.0 * np.cos(theta), 0.15 * np.sin(2 * theta), -0.4 + 1.3 * np.sin(theta)), axis=1)
        outward = np.stack((np.cos(theta), np.zeros_like(u), np.sin(theta)), axis=1)
        tangent = np.stack((-np.sin(theta), np.zeros_like(u), np.cos(theta)), axis=1)
        heading = outward + 0.8 * tangent
        yaw = np.arctan2(heading[:, 0], heading[:, 2])
        pitch = 0.08 * np.sin(3 * theta)
    elif name == "rotation":
        centres = np.stack((-1.5 + 3.0 * u, 0.1 * np.sin(2 * np.pi * u), -0.8 + 0.3 * np.sin(2 * np.pi * u)), axis=1)
        yaw = 2 * np.pi * u
        pitch = 0.15 * np.sin(6 * np.pi * u)
    else:
        raise ValueError(f"unknown camera path {name!r}; choose one of {PATHS}")
    directions = np.stack((np.sin(yaw) * np.cos(pitch), -np.sin(pitch), np.cos(yaw) * np.cos(pitch)), axis=1)
    return look_at(centres, directions)


def default_intrinsics(image_hw: tuple[int, int]) -> np.ndarray:
    """A 3x3 pinhole with about 65 degrees horizontal field of view and VGGT's principal point (W/2, H/2)."""
    height, width = image_hw
    focal = 0.78 * width
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class SyntheticSequence:
    """A rendered camera path.

    Attributes:
        name: path name; room: the scene.
        extrinsics: ``(N, 3, 4)`` camera-from-scene ground truth; intrinsics: ``(3, 3)`` for every frame.
        depth: ``(N, H, W)`` float64 ground-truth depth; rgb: ``(N, H, W, 3)`` uint8 images.
        stamps_ns: ``(N,)`` int64 capture stamps (10 Hz).
    """

    name: str
    room: SyntheticRoom
    extrinsics: np.ndarray
    intrinsics: np.ndarray
    depth: np.ndarray
    rgb: np.ndarray
    stamps_ns: np.ndarray

    @property
    def centres(self) -> np.ndarray:
        """``(N, 3)`` ground-truth camera centres in the scene frame."""
        return invert_rigid(self.extrinsics)[:, :, 3]

    @property
    def path_length(self) -> float:
        return float(np.linalg.norm(np.diff(self.centres, axis=0), axis=1).sum())


def render_sequence(name: str, num_frames: int = 200, image_hw: tuple[int, int] = (42, 56)) -> SyntheticSequence:
    """Render path ``name`` (one of `PATHS`) through the room at ``image_hw`` (H, W)."""
    return render_poses(name, camera_path(name, num_frames), image_hw)


def render_poses(name: str, extrinsics: np.ndarray, image_hw: tuple[int, int]) -> SyntheticSequence:
    """Render any camera-from-scene extrinsics ``(N, 3, 4)`` (cameras inside the room) at ``image_hw``."""
    num_frames = len(extrinsics)
    room = SyntheticRoom()
    intrinsics = default_intrinsics(image_hw)
    depth, rgb = room.render(extrinsics, intrinsics, image_hw)
    stamps = np.arange(num_frames, dtype=np.int64) * 100_000_000
    return SyntheticSequence(name, room, extrinsics, intrinsics, depth, rgb, stamps)


@dataclass(frozen=True)
class OracleNoise:
    """Noise of `FakeVGGTForWorldTests`, in VGGT's normalised units (mean point distance 1) where it has units.

    depth_pixel: relative per-pixel depth noise (std); depth_frame_scale: relative per-frame depth scale error;
    outlier_fraction: pixels whose depth is off by a factor exp(N(0, 0.7)); rotation_deg: per-frame camera
    rotation noise (std, degrees, frames after the first); translation: per-frame camera centre noise (std,
    normalised units); focal: relative focal-length noise (std).
    """

    depth_pixel: float = 0.015
    depth_frame_scale: float = 0.002
    outlier_fraction: float = 0.03
    rotation_deg: float = 0.1
    translation: float = 0.002
    focal: float = 0.002


NO_NOISE = OracleNoise(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class WindowPrediction:
    """One answer of `FakeVGGTForWorldTests`, numpy, in the window's frame (its first camera, normalised scale).

    extrinsics ``(S, 3, 4)`` camera-from-window; intrinsics ``(S, 3, 3)``; depth, confidence ``(S, H, W)``
    float32. Ground truth for evaluation only: ``normalization`` (window units per scene unit) and
    ``window_from_scene`` ``(4, 4)`` similarity.
    """

    frame_indices: tuple[int, ...]
    extrinsics: np.ndarray
    intrinsics: np.ndarray
    depth: np.ndarray
    confidence: np.ndarray
    normalization: float
    window_from_scene: np.ndarray


class FakeVGGTForWorldTests:
    """Test double of the VGGT network for the world-chaining tests and bench (see the module docstring).

    Answers are deterministic: the noise of a window depends only on ``seed`` and the window's frame indices
    (and ``rendered_as``). Every answer is recorded in ``answers``, keyed by the frame indices.
    """

    def __init__(self, sequence: SyntheticSequence, noise: OracleNoise = OracleNoise(), seed: int = 0) -> None:
        self.sequence = sequence
        self.noise = noise
        self.seed = seed
        self.answers: dict[tuple[int, ...], WindowPrediction] = {}

    def predict(self, frame_indices: Sequence[int], rendered_as: Sequence[int] | None = None) -> WindowPrediction:
        """What VGGT would answer for the window of sequence frames ``frame_indices`` (first = reference).

        rendered_as: optional, the sequence frames whose ground truth to answer with instead (same length):
            the network "sees" those frames; used to simulate windows inconsistent with the world.
        """
        indices = tuple(int(i) for i in frame_indices)
        source = indices if rendered_as is None else tuple(int(i) for i in rendered_as)
        if len(source) != len(indices) or len(indices) == 0:
            raise ValueError("frame_indices must be non-empty and rendered_as (if given) the same length")
        seq = self.sequence
        ext_scene = seq.extrinsics[list(source)]
        gt_depth = seq.depth[list(source)]
        intr = np.broadcast_to(seq.intrinsics, (len(source), 3, 3)).copy()
        # Cameras relative to the window's first camera, then VGGT's normalisation of the whole window.
        first_from_scene = ext_scene[0]
        cam_from_first = compose_rigid(ext_scene, np.broadcast_to(invert_rigid(first_from_scene), ext_scene.shape))
        points = unproject_depth(gt_depth, cam_from_first, intr)
        normalization = 1.0 / float(np.linalg.norm(points, axis=-1).mean())
        cam_from_first[:, :, 3] *= normalization
        depth = gt_depth * normalization

        rng = np.random.default_rng([self.seed, *source, len(indices), *indices])
        n = self.noise
        count = len(indices)
        extrinsics = cam_from_first.copy()
        for i in range(1, count):
            rot_noise = _axis_angle_to_matrix(rng.normal(size=3) * np.radians(n.rotation_deg))
            centre = -extrinsics[i, :, :3].T @ extrinsics[i, :, 3] + rng.normal(size=3) * n.translation
            rot = rot_noise @ extrinsics[i, :, :3]
            extrinsics[i] = np.concatenate((rot, (-rot @ centre)[:, None]), axis=1)
        intr[:, 0, 0] *= 1.0 + rng.normal(size=count) * n.focal
        intr[:, 1, 1] = intr[:, 0, 0] * (seq.intrinsics[1, 1] / seq.intrinsics[0, 0])
        pixel_error = rng.normal(size=depth.shape) * n.depth_pixel
        outliers = rng.random(depth.shape) < n.outlier_fraction
        pixel_error[outliers] = np.expm1(rng.normal(size=int(outliers.sum())) * 0.7)
        frame_scale = 1.0 + rng.normal(size=(count, 1, 1)) * n.depth_frame_scale
        noisy_depth = depth * frame_scale * (1.0 + pixel_error)
        # Confidence like VGGT's (> 1, larger is surer), falling with the error actually made at the pixel.
        confidence = 1.0 + 9.0 * np.exp(-np.abs(pixel_error) / 0.03) * rng.uniform(0.6, 1.0, size=depth.shape)

        answer = WindowPrediction(
            frame_indices=indices,
            extrinsics=extrinsics,
            intrinsics=intr,
            depth=noisy_depth.astype(np.float32),
            confidence=confidence.astype(np.float32),
            normalization=normalization,
            window_from_scene=similarity_matrix(
                normalization, first_from_scene[:, :3], normalization * first_from_scene[:, 3]
            ),
        )
        self.answers[indices] = answer
        return answer

    def model_output(self, frame_indices: Sequence[int]) -> dict[str, np.ndarray]:
        """The same answer in the network's output format (batch of one, numpy): ``pose_enc`` (1, S, 9),
        ``depth`` (1, S, H, W, 1), ``depth_conf`` (1, S, H, W), for code that decodes real network outputs."""
        answer = self.predict(frame_indices)
        pose_enc = extrinsics_intrinsics_to_pose_encoding(answer.extrinsics, answer.intrinsics, answer.depth.shape[1:])
        return {
            "pose_enc": pose_enc[None].astype(np.float32),
            "depth": answer.depth[None, ..., None],
            "depth_conf": answer.confidence[None],
        }


def _axis_angle_to_matrix(vector: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(vector))
    if angle < 1e-15:
        return np.eye(3)
    k = vector / angle
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


class FakePipelineForWorldTests:
    """Test double of `vggt_ros.runtime.Pipeline` over a synthetic sequence (the session's view of the network).

    `encode` recognises each preprocessed image as a frame of the sequence (nearest rendered image) and returns
    its index as a one-number "token" per frame; `predict` answers the window those tokens name with
    `FakeVGGTForWorldTests` (depth only on the requested frames, as the real depth head). ``encoded`` counts
    the frames encode ran on.
    """

    def __init__(self, oracle: FakeVGGTForWorldTests, preprocess_mode: str = "crop") -> None:
        self.oracle = oracle
        self.device = torch.device("cpu")
        self.frames = None
        self.image_hw = None
        self.encoded = 0
        rgb = oracle.sequence.rgb
        self._references = preprocess_frames(rgb, mode=preprocess_mode, target_size=rgb.shape[2]).flatten(1)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        self.encoded += len(images)
        distances = torch.cdist(images.flatten(1), self._references)
        return distances.argmin(dim=1).to(torch.float32)[:, None, None]

    def predict(self, patch_tokens, image_hw, outputs, dense_frames) -> dict[str, torch.Tensor]:
        unsupported = set(outputs) - {"pose_enc", "depth", "depth_conf"}
        if unsupported:
            raise ValueError(f"{type(self).__name__} answers pose_enc, depth and depth_conf only, not {unsupported}")
        answer = self.oracle.model_output([int(t) for t in patch_tokens[:, 0, 0]])
        dense = dense_frames.numpy()
        return {
            "pose_enc": torch.from_numpy(answer["pose_enc"][0]),
            "depth": torch.from_numpy(answer["depth"][0][dense]),
            "depth_conf": torch.from_numpy(answer["depth_conf"][0][dense]),
        }


def frame_ids(sequence: SyntheticSequence, indices: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """The ids a `ReconstructionSession` gives sequence frames ``indices``: (stamp ns, camera 0)."""
    return tuple((int(sequence.stamps_ns[i]), 0) for i in indices)


def network_outputs(answer: WindowPrediction, dense: Sequence[int]) -> dict[str, torch.Tensor]:
    """An answer of `FakeVGGTForWorldTests` as the pipeline returns it (`Pipeline.predict`: no batch axis, float32,
    depth only on the ``dense`` window frames)."""
    image_hw = answer.depth.shape[1:]
    pose_enc = extrinsics_intrinsics_to_pose_encoding(
        torch.from_numpy(answer.extrinsics), torch.from_numpy(answer.intrinsics), image_hw
    )
    dense = list(dense)
    return {
        "pose_enc": pose_enc.to(torch.float32),
        "depth": torch.from_numpy(answer.depth[dense])[..., None],
        "depth_conf": torch.from_numpy(answer.confidence[dense]),
    }


def decode_answer(
    answer: WindowPrediction,
    sequence: SyntheticSequence,
    dense: Sequence[int] | None = None,
    image_boxes: Sequence[tuple[int, int, int, int]] | None = None,
) -> WindowProducts:
    """`WindowProducts` of an answer (possibly altered by a test) through the real `decode_window`, with the
    session's frame ids, the sequence's stamps and images; ``dense``: the window frames with depth (default all);
    ``image_boxes``: per dense frame, the model pixels that show its image (default all: no padding)."""
    indices = answer.frame_indices
    dense = range(len(indices)) if dense is None else dense
    return decode_window(
        network_outputs(answer, dense),
        frame_ids(sequence, indices),
        [sequence.stamps_ns[i] * 1e-9 for i in indices],
        list(dense),
        torch.from_numpy(sequence.rgb[[indices[i] for i in dense]]),
        image_boxes,
    )


def window_products(
    oracle: FakeVGGTForWorldTests, indices: Sequence[int], dense: Sequence[int] | None = None
) -> WindowProducts:
    """The oracle's answer for the window of sequence frames ``indices``, decoded (see `decode_answer`)."""
    return decode_answer(oracle.predict(indices), oracle.sequence, dense)


# --- chaining run and its evaluation against the ground truth (shared by test/core/test_world.py and the benches) ---


@dataclass
class ChainingRun:
    """Everything a run of `run_chaining` produced: per window, the sequence indices and the `WindowResult`."""

    sequence: SyntheticSequence
    oracle: FakeVGGTForWorldTests
    pipeline: FakePipelineForWorldTests
    world: World
    map: GrowingMap
    windows: list[tuple[tuple[int, ...], WindowResult]]


def chaining_session_config(
    sequence: SyntheticSequence,
    window_config: WindowConfig,
    world_config: WorldConfig = WorldConfig(),
    map_config: MapConfig = MapConfig(),
    cloud_config: CloudConfig = CloudConfig(confidence_percentile=30.0),
    overlap_frame_sets: int = SessionConfig.overlap_frame_sets,
) -> SessionConfig:
    """A session for a synthetic sequence: model input = the rendered size (its width is a multiple of 14)."""
    return SessionConfig(
        window=window_config,
        cloud=cloud_config,
        world=world_config,
        map=map_config,
        image_size=int(sequence.rgb.shape[2]),
        overlap_frame_sets=overlap_frame_sets,
    )


def run_chaining(
    sequence: SyntheticSequence,
    window_config: WindowConfig,
    world_config: WorldConfig = WorldConfig(),
    map_config: MapConfig = MapConfig(),
    cloud_config: CloudConfig = CloudConfig(confidence_percentile=30.0),
    noise: OracleNoise = OracleNoise(),
    seed: int = 0,
    overlap_frame_sets: int = SessionConfig.overlap_frame_sets,
) -> ChainingRun:
    """Feed the sequence through a `ReconstructionSession` (keyframing, windows, frame cache, the network
    -- here `FakePipelineForWorldTests` --, decoding, chaining into the world, the map), exactly as the node and
    the offline command run it."""
    oracle = FakeVGGTForWorldTests(sequence, noise=noise, seed=seed)
    pipeline = FakePipelineForWorldTests(oracle)
    session = ReconstructionSession(
        pipeline,
        chaining_session_config(sequence, window_config, world_config, map_config, cloud_config, overlap_frame_sets),
    )
    index_of_stamp = {int(s): i for i, s in enumerate(sequence.stamps_ns)}
    windows = []
    for i in range(len(sequence.stamps_ns)):
        out = session.push(FrameSet((int(sequence.stamps_ns[i]),), (sequence.rgb[i],)))
        if out is None:
            continue
        indices = tuple(index_of_stamp[s] for s in out.window.stamps_ns)
        windows.append((indices, out.result))
    return ChainingRun(sequence, oracle, pipeline, session.world, session.map, windows)


@dataclass(frozen=True)
class ChainingMetrics:
    """Accuracy of a chaining run against the ground truth.

    ate_pct: RMS camera-centre error of the keyframes after one global Sim(3) fit (plain Umeyama) of the
        estimated to the true centres, in % of the true path length (all frames of the sequence).
    scale_drift_pct: each merged window w places its frames at lambda_w = s_w * n_w world units per scene unit
        (s_w: its depth scale in the world, n_w: VGGT's normalisation of that window). With keyframes in
        insertion order, scale_drift_pct = 100 * |mean(lambda, last 10 %) / mean(lambda, first 10 %) - 1|
        (10 % of the keyframes, at least one). Perfect chaining keeps lambda constant.
    map_error_pct: median distance of the map points, moved into the scene by the pose-aware global fit, to
        the true surfaces, in % of the scene size (the room's diagonal).
    wrong_merges: merged windows placed wrongly relative to the window merged before them: the similarity
        from the window to the previous one, through the world, differs from the true one by more than 2 % in
        scale, 2 degrees in rotation or 3 % of the window's unit (VGGT's normalised scale) in translation.
        Comparing neighbours checks each merge on its own, without the drift accumulated before it.
    The pose-aware fit is a plain Umeyama on the keyframe centres plus one point per keyframe one scene unit
    ahead on its optical axis (1 / s world units for the estimate, s from the centre-only fit). Centres alone
    leave the rotation about a straight path undetermined, which would tilt the map by degrees.
    """

    ate_pct: float
    scale_drift_pct: float
    map_error_pct: float
    wrong_merges: int
    keyframes: int
    windows: int
    merged: int
    rejected: int
    segments: int
    map_points: int


def evaluate_chaining(run: ChainingRun) -> ChainingMetrics:
    seq = run.sequence
    trajectory = run.world.trajectory()
    index_of_stamp = {int(s): i for i, s in enumerate(seq.stamps_ns)}
    frame_ids = np.array([index_of_stamp[stamp] for stamp, _ in trajectory.frame_ids], dtype=np.int64)
    est = trajectory.world_from_camera[:, :3, 3]
    true = seq.centres[frame_ids]
    scale, rot, trans = weighted_umeyama(est, true)
    errors = np.linalg.norm(scale * est @ rot.T + trans - true, axis=1)
    ate_pct = 100.0 * float(np.sqrt(np.mean(errors**2))) / seq.path_length

    world_units_per_scene_unit = {}
    for indices, result in run.windows:
        if result is not None and result.merged:
            n_w = run.oracle.answers[indices].normalization
            for k in np.flatnonzero(result.new_frames):
                world_units_per_scene_unit[indices[k]] = result.depth_scale * n_w
    lam = np.array([world_units_per_scene_unit[int(f)] for f in frame_ids])
    tenth = max(1, len(lam) // 10)
    scale_drift_pct = 100.0 * abs(lam[-tenth:].mean() / lam[:tenth].mean() - 1.0)

    est_ahead = est + trajectory.world_from_camera[:, :3, 2] / scale
    true_ahead = true + invert_rigid(seq.extrinsics[frame_ids])[:, :, 2]
    scale, rot, trans = weighted_umeyama(np.concatenate((est, est_ahead)), np.concatenate((true, true_ahead)))
    scene_from_world = similarity_matrix(scale, rot, trans)
    map_scene = transform_points(scene_from_world, run.map.points.astype(np.float64))
    map_error_pct = 100.0 * float(np.median(seq.room.distance_to_surface(map_scene))) / seq.room.size

    wrong = 0
    previous = None
    for indices, result in run.windows:
        if result is None or not result.merged:
            continue
        if result.status is WindowStatus.MERGED and previous is not None:
            # Window-to-previous-window similarity: estimated through the world, true through the scene.
            prev_indices, prev_result = previous
            estimated = compose_similarity(invert_similarity(prev_result.world_from_window), result.world_from_window)
            true = compose_similarity(
                run.oracle.answers[prev_indices].window_from_scene,
                invert_similarity(run.oracle.answers[indices].window_from_scene),
            )
            d_scale, d_rot, d_trans = decompose_similarity(compose_similarity(invert_similarity(estimated), true))
            angle = np.degrees(np.arccos(np.clip((np.trace(d_rot) - 1.0) / 2.0, -1.0, 1.0)))
            if abs(float(d_scale) - 1.0) > 0.02 or angle > 2.0 or np.linalg.norm(d_trans) > 0.03:
                wrong += 1
        previous = (indices, result)

    counters = run.world.counters
    return ChainingMetrics(
        ate_pct=ate_pct,
        scale_drift_pct=float(scale_drift_pct),
        map_error_pct=map_error_pct,
        wrong_merges=wrong,
        keyframes=len(frame_ids),
        windows=counters.windows,
        merged=counters.merged,
        rejected=counters.rejected,
        segments=counters.segments,
        map_points=len(run.map),
    )
