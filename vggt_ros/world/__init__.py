# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""One consistent world across VGGT windows (see `vggt_ros.world.world` for how and why).

config: thresholds, bounds and result types; overlap: aligning a window through shared frames;
keyframes: the bounded trajectory and alignment samples; world: the state machine; loop_constraint, loop_config,
loop_closure, pose_graph: loop closure and relocalisation over a Sim(3) pose graph.
"""

from vggt_ros.world.config import WindowResult, WindowStatus, WorldConfig, WorldCounters
from vggt_ros.world.keyframes import Trajectory
from vggt_ros.world.loop_closure import LoopResult
from vggt_ros.world.loop_config import LoopConfig
from vggt_ros.world.loop_constraint import LoopConstraint
from vggt_ros.world.world import World

__all__ = [
    "World",
    "WorldConfig",
    "WindowResult",
    "WindowStatus",
    "WorldCounters",
    "Trajectory",
    "LoopConfig",
    "LoopConstraint",
    "LoopResult",
]
