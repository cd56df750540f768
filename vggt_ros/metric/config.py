# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""What sets the metric scale: the source and its settings (see `vggt_ros.metric.measure`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from vggt_ros.metric.sources import MAX_RIG_BASELINE_M, MIN_RIG_BASELINE_M, DepthScaleConfig, implausible_baselines

METRIC_SOURCES = ("none", "depth", "rig", "odometry")


@dataclass(frozen=True)
class MetricConfig:
    """The metric scale source and its settings.

    Attributes:
        source: "none" (VGGT's unit-less scale), "depth" (a depth image per camera, registered to the colour
            image), "rig" (known transforms between the cameras of one frame set), "odometry" (the cameras'
            travel in ``odom_frame``, from TF).
        depth: which depth pixels count (range, confidence).
        rig_transforms: ``(camera j, camera0_from_cameraj (4, 4) in metres)`` pairs for the rig source; empty:
            looked up between the images' frame ids in the transforms (``/tf_static``).
        odom_frame: the frame the odometry source measures the cameras' travel in.
        min_translation_m: the odometry source's shortest travel for a well-conditioned ratio.
    """

    source: str = "none"
    depth: DepthScaleConfig = field(default_factory=DepthScaleConfig)
    rig_transforms: tuple[tuple[int, np.ndarray], ...] = ()
    odom_frame: str = "odom"
    min_translation_m: float = 0.1

    def __post_init__(self) -> None:
        if self.source not in METRIC_SOURCES:
            raise ValueError(f"metric_scale_source must be one of {METRIC_SOURCES}, got {self.source!r}")
        for camera, transform in self.rig_transforms:
            matrix = np.asarray(transform, dtype=np.float64)
            if camera < 1 or matrix.shape != (4, 4) or not np.isfinite(matrix).all():
                raise ValueError(
                    f"rig transform for camera {camera!r} must be a finite (4, 4) camera0_from_camera matrix for a "
                    "camera index >= 1"
                )
            baseline_m = round(float(np.linalg.norm(matrix[:3, 3])), 3)
            if baseline_m > MAX_RIG_BASELINE_M:
                raise ValueError(f"rig_transforms: {implausible_baselines({camera: baseline_m})}")
            if baseline_m < MIN_RIG_BASELINE_M:
                raise ValueError(
                    f"rig_transforms: camera {camera}'s baseline to camera 0 is {baseline_m} m, shorter than "
                    f"{MIN_RIG_BASELINE_M} m: too short to measure a scale (the node would wait for one for ever); "
                    "give the cameras' calibrated offset in metres"
                )
        if self.source == "odometry" and not self.odom_frame:
            raise ValueError("the odometry scale source needs odom_frame (the frame the robot's odometry is in)")
        if not (math.isfinite(self.min_translation_m) and self.min_translation_m > 0):
            raise ValueError(f"min_translation_m must be a positive number of metres, got {self.min_translation_m!r}")

    @property
    def active(self) -> bool:
        return self.source != "none"
