# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Loop closure's configuration (a module of its own: `vggt_ros.world.config` holds it, and the loop closure
imports the world's alignment helpers, which import that config)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from vggt_ros.world.pose_graph import PoseGraphConfig

# Loops held for a join at once (the oldest goes beyond): a segment that keeps finding look-alikes, none agreeing,
# would hold them all. `LoopConfig.join_min_loops` is at most this.
MAX_HELD_LOOPS = 8


@dataclass(frozen=True)
class LoopConfig:
    """Loop closure settings.

    Attributes:
        enabled: close loops (default on; needs `gtsam`, checked when the world is built).
        graph: the pose graph's noise and solver settings.
        map_points_per_keyframe: points kept per map keyframe, in its own frame (default 2000, 30 KB).
        max_drift_ratio: largest translation of a loop's implied correction per unit of distance travelled
            between its two keyframes (default 0.25: the bench's drift, 40 degrees of yaw a lap, needs 0.15; a
            place seen again after travelling less than 4 times its true distance is not drift).
        min_drift_depths: correction always allowed, in the match keyframe's median depths (default 0.3).
        max_rotation_drift_deg: largest rotation of the implied correction (default 60: a guard against degenerate
            answers; the translation decides plausibility).
        max_scale_drift: largest |log| of the implied correction's scale (default 0.4, about 50 %: a guard).
        join_min_loops: verified loops that must agree on the offset between two segments before a loop joins them
            (relocalisation; default 2). Nothing bounds that offset, so one loop to a look-alike place put the lost
            segment wherever the look-alike was; a second loop, from another frame set, agrees with the first
            only where both see the same place. 1 joins at the first loop; at most `MAX_HELD_LOOPS`.
        seed: seed of the map points' subsampling.
    """

    enabled: bool = True
    graph: PoseGraphConfig = field(default_factory=PoseGraphConfig)
    map_points_per_keyframe: int = 2000
    max_drift_ratio: float = 0.25
    min_drift_depths: float = 0.3
    max_rotation_drift_deg: float = 60.0
    max_scale_drift: float = 0.4
    join_min_loops: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ValueError(f"LoopConfig.enabled must be a bool, got {self.enabled!r}")
        for name, most in (("map_points_per_keyframe", math.inf), ("join_min_loops", MAX_HELD_LOOPS)):
            count = getattr(self, name)
            if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= most:
                raise ValueError(f"LoopConfig.{name} must be an int in [1, {most}], got {count!r}")
        for name in ("max_drift_ratio", "min_drift_depths", "max_rotation_drift_deg", "max_scale_drift"):
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (number and math.isfinite(value) and value > 0):
                raise ValueError(f"LoopConfig.{name} must be a positive number, got {value!r}")
