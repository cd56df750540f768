# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""One window's metric scale from the configured source, gathering what that source needs.

The session calls `measure_window_scale` after decoding a window. Each source answers in metres per window unit
(`vggt_ros.metric.sources`); what it compares VGGT against comes from here:

* depth: the sensor depth of the window's dense frames at the model pixels (NaN where a frame has none);
* rig: camera 0 -> camera j transforms, from the configuration or from the transforms between the images'
  frame ids (``/tf_static``), compared with the relative poses VGGT predicts within each frame set
  (`vggt_ros.metric.sources.rig_scale`), which start the alignment of the dense frame sets' images along the
  baseline (`vggt_ros.metric.stereo`);
* odometry: every window frame's camera position in the odom frame at its stamp, from the transforms.

``transforms`` is anything with ``lookup_transform(target_frame, source_frame, stamp_ns) -> (4, 4)`` raising a
`LookupError` when it has no answer: tf2_ros' Buffer through `vggt_ros.ros.tf_listener`, or the core
`vggt_ros.metric.tf_buffer.TransformBuffer`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Optional, Sequence, Union

import numpy as np
import torch

from vggt_ros.metric.config import MetricConfig
from vggt_ros.metric.sources import (
    ScaleMeasurement,
    ScaleObservation,
    ScaleUnavailable,
    camera_label,
    depth_disagreement,
    depth_scale,
    long_baseline_note,
    odometry_scale,
    rig_scale,
)
from vggt_ros.metric.stereo import stereo_rig_scale
from vggt_ros.products import WindowProducts

# The depth source compares every n-th row and column, n up to MAX_DEPTH_STRIDE while at least DEPTH_PIXELS pixels
# remain: a window's full-resolution pixels cost 0.3 - 0.6 s on a 2-core CPU, and a sixteenth of them (over
# 10,000 per frame at 518 x 392) pins a median just as well.
MAX_DEPTH_STRIDE = 4
DEPTH_PIXELS = 20_000


def measure_window_scale(
    config: MetricConfig,
    products: WindowProducts,
    cameras: int,
    camera_frames: Sequence[str],
    sensor_depth: Optional[torch.Tensor],
    transforms=None,
) -> Optional[ScaleMeasurement]:
    """The window's scale observation, why there is none (`ScaleUnavailable`), or None for the "none" source.

    Args:
        products: the decoded window (window units).
        cameras: K, images per frame set (window index = frame set * K + camera).
        camera_frames: each camera's image frame id (TF), "" where unknown.
        sensor_depth: ``(D, H, W)`` metres at the model pixels of the dense frames, NaN where none (depth source).
        transforms: the TF look-up (rig without configured transforms, odometry).
    """
    if config.source == "none":
        return None
    if config.source == "depth":
        if sensor_depth is None or not bool(torch.isfinite(sensor_depth).any()):
            return ScaleUnavailable(
                "no_depth",
                "no depth reading for the window's frames: either no depth image matched them (is the "
                "depth topic published, and stamped within the synchroniser's slop of the colour images?) or every "
                "reading was 0 or NaN",
            )
        stride = int(max(1, min(MAX_DEPTH_STRIDE, math.isqrt(products.depth.numel() // DEPTH_PIXELS))))
        step = (slice(None), slice(None, None, stride), slice(None, None, stride))
        observation = depth_scale(products.depth[step], products.confidence[step], sensor_depth[step], config.depth)
        if cameras < 2 or not isinstance(observation, ScaleObservation):
            return observation
        return _check_depth_cameras(config, products, cameras, camera_frames, sensor_depth[step], step, observation)
    if config.source == "rig":
        known = (
            dict(config.rig_transforms)
            if config.rig_transforms
            else _rig_from_transforms(cameras, camera_frames, transforms)
        )
        if isinstance(known, ScaleUnavailable):
            return known
        from_poses = rig_scale(products.window_from_camera, cameras, known)
        if isinstance(from_poses, ScaleUnavailable):
            return from_poses
        observation = stereo_rig_scale(products, cameras, known, from_poses)
        long = long_baseline_note(known)
        if not long or not isinstance(observation, ScaleObservation):
            return observation
        return replace(observation, note=f"{observation.note}; {long}" if observation.note else long)
    return _odometry(config, products, cameras, camera_frames, transforms)


def _check_depth_cameras(
    config: MetricConfig,
    products: WindowProducts,
    cameras: int,
    camera_frames: Sequence[str],
    sensor_depth: torch.Tensor,
    step: tuple,
    observation: ScaleObservation,
) -> ScaleMeasurement:
    """Several depth cameras pooled in ``observation``: none of it where they disagree (`depth_disagreement`), and
    a note naming the cameras whose images had no depth, or whose depth measured nothing alone (readings out of
    range: another unit), while the others measured."""
    rows_of = {camera: [] for camera in range(cameras)}  # camera -> its rows of the dense frames
    for row, index in enumerate(products.dense):
        rows_of[products.frame_ids[index][1]].append(row)
    predicted, confidence = products.depth[step], products.confidence[step]
    own, without, unusable = {}, [], {}
    for camera, rows in rows_of.items():
        if not rows or not bool(torch.isfinite(sensor_depth[rows]).any()):
            without.append(camera)
            continue
        alone = depth_scale(predicted[rows], confidence[rows], sensor_depth[rows], config.depth)
        if isinstance(alone, ScaleObservation):
            own[camera] = alone.metres_per_unit
        else:
            unusable[camera] = alone.reason
    disagreement = depth_disagreement(own, camera_frames)
    if disagreement:
        return ScaleUnavailable("inconsistent_depth", disagreement)
    notes = []
    if without:
        named = ", ".join(camera_label(camera, camera_frames) for camera in without)
        notes.append(
            f"no depth image matched the images of {named} in this window (is its depth topic published, and "
            "stamped within slop_s of its colour images?)"
        )
    notes += [
        f"the depth of {camera_label(camera, camera_frames)} measured nothing: {why}"
        for camera, why in unusable.items()
    ]
    if not notes:
        return observation
    return replace(observation, note="from the other cameras only: " + "; ".join(notes))


def _rig_from_transforms(cameras: int, camera_frames: Sequence[str], transforms) -> Union[dict, ScaleUnavailable]:
    if cameras < 2:
        return ScaleUnavailable("no_rig", "the rig scale source needs at least 2 cameras")
    missing = [camera for camera in range(cameras) if not camera_frames or not camera_frames[camera]]
    if missing or transforms is None:
        return ScaleUnavailable(
            "no_rig",
            f"cameras {missing or list(range(cameras))} have no frame id to look the rig up by; set the "
            "image headers' frame_id, or give the rig transforms as a parameter",
        )
    known = {}
    for camera in range(1, cameras):
        try:
            known[camera] = transforms.lookup_transform(camera_frames[0], camera_frames[camera], 0)
        except LookupError as err:
            return ScaleUnavailable(
                "no_rig",
                f"no transform from '{camera_frames[0]}' to '{camera_frames[camera]}' ({err}); publish the "
                "rig's calibration on /tf_static (e.g. robot_state_publisher) or give it as a parameter",
            )
    return known


def _odometry(
    config: MetricConfig, products: WindowProducts, cameras: int, camera_frames: Sequence[str], transforms
) -> ScaleMeasurement:
    if transforms is None or not camera_frames or not all(camera_frames):
        return ScaleUnavailable(
            "missing_odometry", "the odometry scale source needs the images' frame ids and the transforms (TF)"
        )
    positions = np.full((len(products.frame_ids), 3), np.nan)
    failure, failed = "", 0
    for index, (stamp_ns, camera) in enumerate(products.frame_ids):
        try:
            odom_from_camera = transforms.lookup_transform(config.odom_frame, camera_frames[camera], int(stamp_ns))
        except LookupError as err:
            failure, failed = str(err), failed + 1
            continue
        positions[index] = odom_from_camera[:3, 3]
    if not np.isfinite(positions).all(axis=1).any():
        return ScaleUnavailable(
            "missing_odometry",
            f"no transform from '{config.odom_frame}' to the cameras at the window's stamps ({failure})",
        )
    measured = odometry_scale(products.window_from_camera, positions, config.min_translation_m)
    if failed and isinstance(measured, ScaleUnavailable) and measured.kind in ("missing_odometry", "still"):
        # What was measured is part of the window only: say which part, and the likely cause.
        return ScaleUnavailable(
            measured.kind,
            f"{measured.reason}; only {len(positions) - failed} of the window's {len(positions)} frames had "
            f"odometry at their stamps (the last look-up: {failure}): odometry that lags the images, or runs "
            "slower than them, leaves the newest frames out; a window spanning more travel (keyframe_min_motion, "
            "window_size) measures with the rest",
        )
    return measured
