# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Aligning a window to the world through the frames they share.

For the same pixel of the same frame both the world (its stored sample) and the window (its depth and camera)
give a 3-D point. The window's scale comes robustly from the ratio of the two depths, which involves neither
the predicted poses nor the focal lengths, so their noise stays out of the world's scale (on the bench this
halves the scale drift compared with taking the scale from the points); rotation and translation then come
from the robust `vggt_ros.world.alignment.estimate_sim3` with that scale, on those points plus the poses of every
camera the window shares with the world (`camera_pairs`): the depth head may have run on only a few shared
frames, but the camera head placed them all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Union

import numpy as np

from vggt_ros.geometry import similarity_matrix
from vggt_ros.products import WindowProducts
from vggt_ros.world.alignment import DegenerateAlignmentError, estimate_depth_scale, estimate_sim3
from vggt_ros.world.config import WorldConfig
from vggt_ros.world.keyframes import SampleStore
from vggt_ros.world.placement import cameras_in_world


@dataclass(frozen=True)
class AlignmentFailure:
    cause: str
    reason: str
    diagnostics: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Correspondences:
    """The shared frames' pixel pairs: window (src) and world (dst) points and depths, weights ``(M,)``,
    the (frame id, stored-sample rows) each block of pairs came from, and the scene depth (world units)."""

    src: np.ndarray
    dst: np.ndarray
    src_depth: np.ndarray
    dst_depth: np.ndarray
    weights: np.ndarray
    rows: list
    scene_depth: float


def correspondences(
    products: WindowProducts, shared: list[int], samples: SampleStore, confidence_threshold: float
) -> Correspondences:
    """Pixel pairs of the window's ``shared`` frames (window indices, all dense) with the stored samples."""
    src, dst, src_depth, dst_depth, weights, rows, depths = [], [], [], [], [], [], []
    for i in shared:
        stored = samples[products.frame_ids[i]]
        depth, confidence, valid = products.sample(i, stored.pixel_index)
        usable = valid & (confidence >= confidence_threshold)
        src.append(products.window_points(i, stored.pixel_index[usable], depth[usable]))
        dst.append(stored.points[usable])
        src_depth.append(depth[usable])
        dst_depth.append(stored.depth[usable])
        weights.append(np.sqrt(stored.confidence[usable] * confidence[usable]))
        rows.append((products.frame_ids[i], np.flatnonzero(usable)))
        depths.append(stored.depth)
    return Correspondences(
        src=np.concatenate(src),
        dst=np.concatenate(dst),
        src_depth=np.concatenate(src_depth),
        dst_depth=np.concatenate(dst_depth),
        weights=np.concatenate(weights),
        rows=rows,
        scene_depth=float(np.median(np.concatenate(depths))),
    )


def align(
    products: WindowProducts,
    samples: SampleStore,
    confidence_threshold: float,
    config: WorldConfig,
    seed: int,
) -> Union[tuple[np.ndarray, dict], AlignmentFailure]:
    """(world_from_window, diagnostics) or an `AlignmentFailure`; on success the shared samples are refined."""
    shared = [i for i in products.dense if products.frame_ids[i] in samples]
    if len(shared) < config.min_shared_frames:
        return AlignmentFailure(
            "no_overlap",
            f"{len(shared)} of the window's frames with depth are among the world's {len(samples)} recent frames "
            f"(need {config.min_shared_frames})",
        )
    pairs = correspondences(products, shared, samples, confidence_threshold)
    count = len(pairs.src)
    diagnostics = dict(shared_frames=tuple(products.frame_ids[i] for i in shared), num_correspondences=count)
    if count < config.min_correspondences:
        return AlignmentFailure(
            "few_correspondences",
            f"only {count} usable pixel pairs in the shared frames (need {config.min_correspondences})",
            diagnostics,
        )
    try:
        depth_scale = estimate_depth_scale(pairs.dst_depth, pairs.src_depth, pairs.weights)
        camera_weight = config.camera_weight * pairs.weights.sum() / len(shared) / 2
        cam_src, cam_dst, cam_w = camera_pairs(products, samples, pairs, depth_scale, camera_weight)
        scale, rot, trans, fit = estimate_sim3(
            np.concatenate((pairs.src, cam_src)),
            np.concatenate((pairs.dst, cam_dst)),
            np.concatenate((pairs.weights, cam_w)),
            fixed_scale=depth_scale,
            inlier_threshold=config.inlier_distance_ratio * pairs.scene_depth,
            seed=seed,
        )
    except DegenerateAlignmentError as error:
        return AlignmentFailure("degenerate", f"the shared pixels do not fix a similarity: {error}", diagnostics)
    diagnostics.update(
        residual=fit.residual, residual_ratio=fit.residual / pairs.scene_depth, inlier_ratio=fit.inlier_ratio
    )
    if not (math.isfinite(scale) and scale > 0 and np.isfinite(rot).all() and np.isfinite(trans).all()):
        return AlignmentFailure("non_finite_alignment", "the alignment produced a non-finite similarity", diagnostics)
    if fit.inlier_ratio < config.min_inlier_ratio:
        return AlignmentFailure(
            "inliers",
            f"only {100 * fit.inlier_ratio:.0f} % of {count} pixel pairs agree with the best alignment "
            f"within {100 * config.inlier_distance_ratio:.0f} % of the scene depth "
            f"(need {100 * config.min_inlier_ratio:.0f} %)",
            diagnostics,
        )
    if fit.residual > config.max_residual_ratio * pairs.scene_depth:
        return AlignmentFailure(
            "residual",
            f"alignment residual {fit.residual:.4g} is {100 * fit.residual / pairs.scene_depth:.1f} % of the "
            f"scene depth (limit {100 * config.max_residual_ratio:.1f} %)",
            diagnostics,
        )
    world_from_window = similarity_matrix(scale, rot, trans)
    mismatch = camera_mismatch(products, shared, world_from_window, samples, pairs.scene_depth, config)
    if mismatch:
        return AlignmentFailure("camera_mismatch", mismatch, diagnostics)
    refine_samples(
        samples, pairs, scale * pairs.src @ rot.T + trans, scale * pairs.src_depth, fit.inlier_mask[: len(pairs.src)]
    )
    return world_from_window, diagnostics


def camera_pairs(
    products: WindowProducts, samples: SampleStore, pairs: Correspondences, depth_scale: float, weight: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two points per camera the world shares with the window (with or without depth): its centre and a point
    one scene depth ahead on its optical axis, in the window (src) and in the world (dst), with ``weight`` each
    (half of one shared depth frame's pixel weight, times `WorldConfig.camera_weight`)."""
    held = [i for i, frame_id in enumerate(products.frame_ids) if frame_id in samples]
    src, dst = [], []
    for i in held:
        window_pose, world_pose = products.window_from_camera[i], samples[products.frame_ids[i]].world_from_camera
        src += [window_pose[:3, 3], window_pose[:3, 3] + window_pose[:3, 2] * pairs.scene_depth / depth_scale]
        dst += [world_pose[:3, 3], world_pose[:3, 3] + world_pose[:3, 2] * pairs.scene_depth]
    return np.array(src).reshape(-1, 3), np.array(dst).reshape(-1, 3), np.full(len(src), weight)


def refine_samples(samples: SampleStore, pairs: Correspondences, moved_src, moved_depth, inliers) -> None:
    """Average the merged window's aligned inlier points and depths into the stored samples it shares.

    A frame keeps the pose of the first window that merged it, but its stored points are refined: each window's
    own noise would otherwise enter the world's scale once and random-walk it; averaging damps that drift.
    """
    start = 0
    for frame_id, pixel_rows in pairs.rows:
        block = slice(start, start + len(pixel_rows))
        take = inliers[block]
        sel = pixel_rows[take]
        stored = samples[frame_id]
        n = stored.observations[sel]
        stored.points[sel] = (stored.points[sel] * n[:, None] + moved_src[block][take]) / (n + 1)[:, None]
        stored.depth[sel] = (stored.depth[sel] * n + moved_depth[block][take]) / (n + 1)
        stored.observations[sel] = n + 1
        start += len(pixel_rows)


def camera_mismatch(
    products: WindowProducts, shared, world_from_window, samples: SampleStore, scene_depth: float, config: WorldConfig
) -> str:
    """A sentence when a shared camera lands too far from (or turned too much against) its world pose, else ""."""
    poses = cameras_in_world(world_from_window, products.window_from_camera[shared])
    worst_offset, worst_angle, worst_id = 0.0, 0.0, None
    for pose, i in zip(poses, shared):
        stored = samples[products.frame_ids[i]].world_from_camera
        offset = float(np.linalg.norm(pose[:3, 3] - stored[:3, 3])) / scene_depth
        angle = math.degrees(rotation_angle(stored[:3, :3].T @ pose[:3, :3]))
        if offset > worst_offset or angle > worst_angle:
            worst_id = products.frame_ids[i]
        worst_offset, worst_angle = max(worst_offset, offset), max(worst_angle, angle)
    limit_offset, limit_angle = config.max_camera_offset_ratio, config.max_camera_rotation_deg
    if worst_offset > limit_offset or worst_angle > limit_angle:
        return (
            f"after alignment, shared frame {worst_id!r} is {100 * worst_offset:.1f} % of the scene depth and "
            f"{worst_angle:.1f} deg away from its world pose "
            f"(limits {100 * limit_offset:.0f} %, {limit_angle:g} deg)"
        )
    return ""


def rotation_angle(rotation: np.ndarray) -> float:
    """Angle (radians) of a rotation matrix."""
    return math.acos(min(1.0, max(-1.0, (float(np.trace(rotation)) - 1.0) / 2.0)))
