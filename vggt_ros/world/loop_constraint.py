# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""What a verified loop hands to the pose graph: the measured Sim(3) between two keyframes far apart in time.

Produced by the loop verification (`vggt_ros.world.loop_verification`) and consumed by the pose graph
(`vggt_ros.world.pose_graph`): the one interface between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable

import numpy as np


@dataclass(frozen=True)
class LoopConstraint:
    """A verified loop between the new keyframe ``query`` and the old keyframe ``match``.

    Attributes:
        query: frame id ``(stamp_ns, camera)`` of the new keyframe.
        match: frame id of the old keyframe it was recognised as.
        match_from_query: ``(4, 4)`` similarity [[s*R, t], [0, 0, 0, 1]]: the query camera's optical frame in the
            match camera's optical frame, as the loop pass measured it (s: match-side units per query-side unit,
            1 when both halves are placed in one metric world).
        residual_ratio: the worse of the two halves' alignment residual / scene depth (weights the edge).
        score: the place-recognition similarity of the pair (for the log).
    """

    query: Hashable
    match: Hashable
    match_from_query: np.ndarray
    residual_ratio: float
    score: float
