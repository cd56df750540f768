# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Loop-closure scenes on the synthetic room, with test doubles for drift, place recognition and loop verification.

- `DriftingVGGTForTests`: `FakeVGGTForWorldTests` that drifts the way VGGT does: window frame j is placed and
  its depth scaled by a similarity growing with j (scale (1 + scale_bias)^j, yaw yaw_bias_deg * j about the
  window's vertical axis), so each window chained through its shared frames adds a bias in scale and yaw.
- `LoopScene`: a camera path with its ground truth (``truth``, scene frame) and what the camera sees (``view``:
  the same images and depth, with the poses the network would infer from them; they differ from the truth only
  where two places look identical: the second of two identical rooms). Frames with ``place`` -1 see no room.
- `FakePlaceRecognitionForTests`: named descriptor test double: the descriptor of a keyframe is its room-local
  pose (from ``view``) plus noise; identical rooms give identical descriptors.
- `FakeLoopVerifierForTests`: verification test double that does what the real pass does, on the drifting
  double's answer for the loop window [query, its previous keyframe, match, its next keyframe]: each half is
  placed at its keyframes' world poses and depth (scale from the depth ratio, pose from the half's keyframe,
  checked on the other frame of the half), and the constraint is the similarity between the two placements.
  It knows nothing of the truth: identical rooms fool it, and the world's plausibility check must catch that.
- `run_loop_scene`: keyframes every ``keyframe_step`` frames, windows of ``window_size`` keyframes sliding by one,
  depth on the two newest and any frame new to the world, a blank span giving no keyframe and windows that only
  hold frames after it (tracking lost), and after every merged window one loop candidate verified and handed to
  `World.close_loop`. With ``metric_from``, each window from that frame on carries a depth camera's metric scale
  observation (test double: the truth with 1 % noise), and no loop is searched while the world awaits its scale,
  as in the session.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from support.synthetic import (
    FakeVGGTForWorldTests,
    OracleNoise,
    SyntheticSequence,
    _axis_angle_to_matrix,
    camera_path,
    decode_answer,
    render_poses,
)
from vggt_ros.geometry import invert_rigid
from vggt_ros.metric.sources import ScaleObservation
from vggt_ros.world import WindowStatus, World, WorldConfig
from vggt_ros.world.alignment import weighted_umeyama
from vggt_ros.world.loop_constraint import LoopConstraint


class DriftingVGGTForTests(FakeVGGTForWorldTests):
    """Test double of VGGT with drift (see the module docstring)."""

    def __init__(self, sequence, noise=OracleNoise(), seed=0, scale_bias=0.0, yaw_bias_deg=0.0) -> None:
        super().__init__(sequence, noise, seed)
        self.scale_bias = scale_bias
        self.yaw_bias = math.radians(yaw_bias_deg)

    def predict(self, frame_indices, rendered_as=None):
        answer = super().predict(frame_indices, rendered_as)
        extrinsics, depth = answer.extrinsics.copy(), answer.depth.copy()
        for j in range(len(extrinsics)):
            scale = (1.0 + self.scale_bias) ** j
            yaw = _axis_angle_to_matrix(np.array([0.0, self.yaw_bias * j, 0.0]))
            rotation, translation = extrinsics[j, :, :3], extrinsics[j, :, 3]
            centre = -rotation.T @ translation
            rotation = rotation @ yaw.T  # camera-from-window: the camera turned by yaw in the window
            extrinsics[j] = np.concatenate((rotation, (-rotation @ (scale * yaw @ centre))[:, None]), axis=1)
            depth[j] *= scale
        drifted = dataclasses.replace(answer, extrinsics=extrinsics, depth=depth.astype(np.float32))
        self.answers[answer.frame_indices] = drifted
        return drifted


@dataclass(frozen=True)
class LoopScene:
    """A scene for loop closure (see the module docstring). ``truth`` and ``view`` share images and depth;
    ``place[i]``: the room frame i sees (-1: none, no descriptor); ``blank``: frames that give no keyframe."""

    name: str
    truth: SyntheticSequence
    view: SyntheticSequence
    place: np.ndarray
    blank: np.ndarray

    @property
    def path_length(self) -> float:
        return self.truth.path_length


def _laps(laps: int, frames_per_lap: int) -> np.ndarray:
    lap = camera_path("loop", frames_per_lap + 1)[:-1]
    return np.concatenate([lap] * laps)


def revisit_scene(laps: int = 3, frames_per_lap: int = 200, image_hw=(28, 42)) -> LoopScene:
    """``laps`` laps of the loop path (ends where it started)."""
    sequence = render_poses("revisit", _laps(laps, frames_per_lap), image_hw)
    count = len(sequence.extrinsics)
    return LoopScene("revisit", sequence, sequence, np.zeros(count, int), np.zeros(count, bool))


def loop_free_scene(name: str, frames: int = 200, image_hw=(28, 42)) -> LoopScene:
    sequence = render_poses(name, camera_path(name, frames), image_hw)
    return LoopScene(name, sequence, sequence, np.zeros(frames, int), np.zeros(frames, bool))


def relocalisation_scene(frames_per_lap: int = 200, blank_frames: int = 30, image_hw=(28, 42)) -> LoopScene:
    """1.25 laps; ``blank_frames`` (3 s at 10 Hz) of blank images a quarter of the way round: tracking is lost
    there and the first revisit is the start of the path."""
    extrinsics = _laps(2, frames_per_lap)[: frames_per_lap + frames_per_lap // 4]
    sequence = render_poses("relocalisation", extrinsics, image_hw)
    blank = np.zeros(len(extrinsics), bool)
    start = frames_per_lap // 4
    blank[start : start + blank_frames] = True
    return LoopScene("relocalisation", sequence, sequence, np.zeros(len(extrinsics), int), blank)


def aliasing_scene(frames_per_lap: int = 200, transit_frames: int = 60, offset=14.0, image_hw=(28, 42)) -> LoopScene:
    """A lap in room A, ``transit_frames`` moving ``offset`` along x to room B (an identical copy of A), a lap
    in B. Room B's images are room A's at the room-local pose. The transit sees no room: the double holds the
    last view of room A while the poses move (chaining uses each frame's own depth and the relative poses only)."""
    lap = _laps(1, frames_per_lap)
    shift = np.array([offset, 0.0, 0.0])
    first_centre = invert_rigid(lap[:1])[0, :, 3]
    transit = []
    for u in np.linspace(0.0, 1.0, transit_frames + 2)[1:-1]:
        pose = lap[0].copy()
        pose[:, 3] = -pose[:, :3] @ (first_centre + u * shift)
        transit.append(pose)
    lap_b = lap.copy()
    lap_b[:, :, 3] -= np.einsum("nij,j->ni", lap[:, :, :3], shift)
    truth_poses = np.concatenate((lap, np.stack(transit), lap_b))
    local_poses = np.concatenate((lap, np.repeat(lap[:1], transit_frames, axis=0), lap))
    rendered = render_poses("aliasing", local_poses, image_hw)
    truth = dataclasses.replace(rendered, extrinsics=truth_poses)
    place = np.concatenate((np.zeros(frames_per_lap, int), np.full(transit_frames, -1), np.ones(frames_per_lap, int)))
    return LoopScene("aliasing", truth, rendered, place, np.zeros(len(truth_poses), bool))


class FakePlaceRecognitionForTests:
    """Named descriptor test double: room-local camera centre and viewing direction (from the scene's ``view``)
    with noise. ``candidate`` returns the best old keyframe (at least ``min_gap`` keyframes back) within
    ``radius`` and ``max_angle_deg``, or None."""

    def __init__(self, scene: LoopScene, noise=0.02, radius=0.3, max_angle_deg=20.0, min_gap=40, seed=0) -> None:
        rng = np.random.default_rng(seed)
        cameras = invert_rigid(scene.view.extrinsics)
        self.centres = cameras[:, :, 3] + rng.normal(size=(len(cameras), 3)) * noise
        self.forward = cameras[:, :, 2]
        self.place = scene.place
        self.radius, self.cos_angle, self.min_gap = radius, math.cos(math.radians(max_angle_deg)), min_gap

    def candidate(self, query: int, keyframes: list[int]) -> Optional[tuple[int, float]]:
        """(sequence index, score) of the best match of frame ``query`` among ``keyframes`` (older first)."""
        if self.place[query] < 0 or len(keyframes) <= self.min_gap:
            return None
        old = np.array(keyframes[: -self.min_gap])
        old = old[self.place[old] >= 0]
        if old.size == 0:
            return None
        distance = np.linalg.norm(self.centres[old] - self.centres[query], axis=1)
        facing = self.forward[old] @ self.forward[query] >= self.cos_angle
        ok = (distance < self.radius) & facing
        if not ok.any():
            return None
        best = int(np.argmin(np.where(ok, distance, np.inf)))
        return int(old[best]), float(math.exp(-distance[best] / self.radius))


class FakeLoopVerifierForTests:
    """Loop verification test double (see the module docstring); ``network`` answers what the camera sees."""

    def __init__(self, network: DriftingVGGTForTests, max_offset_ratio=0.1, max_rotation_deg=5.0) -> None:
        self.network = network
        self.max_offset_ratio, self.max_rotation_deg = max_offset_ratio, max_rotation_deg

    def verify(self, world: World, ids, query: tuple[int, int], match: tuple[int, int], score: float):
        """A `LoopConstraint` for keyframes ``query`` = (index, previous keyframe index) and ``match`` = (index,
        next keyframe index), or the reason it fails. ``ids[i]``: the frame id of sequence frame i."""
        answer = self.network.predict([query[0], query[1], match[0], match[1]])
        window_from_camera = invert_rigid(answer.extrinsics)
        placements = []
        for half in ((0, query), (2, match)):
            slot, frames = half
            keyframes = [world.keyframe(ids[f]) for f in frames]
            if any(k is None for k in keyframes):
                return "a keyframe of the loop window is no longer kept"
            ratios = [k.median_depth / float(np.median(answer.depth[slot + j])) for j, k in enumerate(keyframes)]
            scale = float(np.mean(ratios))
            placed = []
            for j in range(2):
                pose = _window_pose(window_from_camera[slot + j])
                pose[:3, 3] *= scale
                placed.append(pose)
            # world_from_window (scaled window units): the half's keyframe where the world has it.
            world_from_window = keyframes[0].world_from_camera @ np.linalg.inv(placed[0])
            other = world_from_window @ placed[1]
            offset = np.linalg.norm(other[:3, 3] - keyframes[1].world_from_camera[:3, 3])
            turned = _angle_deg(other[:3, :3].T @ keyframes[1].world_from_camera[:3, :3])
            if offset > self.max_offset_ratio * keyframes[1].median_depth or turned > self.max_rotation_deg:
                return f"the loop window's half does not align ({offset:.3f} units, {turned:.1f} deg)"
            placements.append((keyframes[0], placed[0], scale))
        (q_key, _, q_scale), (m_key, _, m_scale) = placements
        # match_from_query: query camera (world units at the query) -> window units -> the window -> the match camera
        # -> world units at the match.
        q_units = np.diag([1.0 / q_scale] * 3 + [1.0])
        m_units = np.diag([m_scale] * 3 + [1.0])
        window_from_query = _window_pose(window_from_camera[0])
        window_from_match = _window_pose(window_from_camera[2])
        match_from_query = m_units @ np.linalg.inv(window_from_match) @ window_from_query @ q_units
        return LoopConstraint(q_key.frame_id, m_key.frame_id, match_from_query, 0.01, score)


def _window_pose(camera: np.ndarray) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :4] = camera
    return pose


def _angle_deg(rotation: np.ndarray) -> float:
    return math.degrees(math.acos(max(-1.0, min(1.0, (float(np.trace(rotation)) - 1.0) / 2.0))))


@dataclass
class LoopRun:
    """A run of `run_loop_scene`: the world, per loop attempt (query index, match index, result or the
    verification's failure), the sequence index of every merged keyframe and the window answers."""

    scene: LoopScene
    world: World
    index_of_id: dict
    loops: list = field(default_factory=list)
    statuses: list = field(default_factory=list)


def run_loop_scene(
    scene: LoopScene,
    world_config: WorldConfig = WorldConfig(),
    keyframe_step: int = 2,
    window_size: int = 8,
    scale_bias: float = 0.0,
    yaw_bias_deg: float = 0.0,
    seed: int = 0,
    place_noise: float = 0.02,
    place_min_gap: int = 40,
    detect: bool = True,
    metric_from: Optional[int] = None,
) -> LoopRun:
    """Run the scene through a `World` (see the module docstring); ``detect``: look for loops (loop closure on);
    ``place_min_gap``: keyframes between a query and its oldest candidate; ``metric_from``: the first frame with a
    metric scale observation (None: the world stays unit-less)."""
    truth_network = DriftingVGGTForTests(scene.truth, seed=seed, scale_bias=scale_bias, yaw_bias_deg=yaw_bias_deg)
    view_network = DriftingVGGTForTests(scene.view, seed=seed, scale_bias=scale_bias, yaw_bias_deg=yaw_bias_deg)
    places = FakePlaceRecognitionForTests(scene, noise=place_noise, min_gap=place_min_gap, seed=seed)
    verifier = FakeLoopVerifierForTests(view_network)
    world = World(world_config)
    depth_camera_noise = np.random.default_rng([seed, 1])
    ids = [(int(s), 0) for s in scene.truth.stamps_ns]
    run = LoopRun(scene, world, {frame_id: i for i, frame_id in enumerate(ids)})
    keyframes = [i for i in range(0, len(ids), keyframe_step) if not scene.blank[i]]
    after_blank = {k for k in range(1, len(keyframes)) if keyframes[k] - keyframes[k - 1] > keyframe_step}
    merged: list[int] = []
    window_start = 0
    cooldown = 0
    for k in range(1, len(keyframes)):
        if k in after_blank:
            window_start = k  # the windows after a blank span hold only frames after it
        indices = keyframes[max(window_start, k - window_size + 1) : k + 1]
        if len(indices) < 2:
            continue
        answer = truth_network.predict(indices)
        # Depth on the two newest frames and on every frame new to the world (after a lost track: all of them).
        dense = sorted(
            {len(indices) - 2, len(indices) - 1} | {j for j, f in enumerate(indices) if ids[f] not in world.keyframes}
        )
        observation = None
        if metric_from is not None and indices[-1] >= metric_from:
            # Metres per window unit at the newest frame, whose depth the drift scaled by (1 + scale_bias)^j.
            metres_per_unit = 1.0 / (answer.normalization * (1.0 + scale_bias) ** (len(indices) - 1))
            noisy = metres_per_unit * (1.0 + 0.01 * depth_camera_noise.normal())
            observation = ScaleObservation(noisy, 0.01, 1000, "depth")
        result = world.integrate(decode_answer(answer, scene.truth, dense), 1, observation)
        run.statuses.append(result.status)
        if not result.merged:
            continue
        new = [indices[j] for j in np.flatnonzero(result.new_frames)]
        merged.extend(new)
        waiting_for_scale = metric_from is not None and not world.metric
        if not detect or world.loops is None or not new or waiting_for_scale:
            continue
        if cooldown > 0:
            cooldown -= 1
            continue
        query = new[-1]
        found = places.candidate(query, merged)
        if found is None:
            continue
        match, score = found
        position = merged.index(match)
        if position + 1 >= len(merged) or len(merged) < 2:
            continue
        verified = verifier.verify(world, ids, (query, merged[-2]), (match, merged[position + 1]), score)
        if isinstance(verified, str):
            run.loops.append((query, match, verified))
            continue
        outcome = world.close_loop(verified)
        run.loops.append((query, match, outcome))
        if outcome.accepted:
            cooldown = 10
    return run


@dataclass(frozen=True)
class LoopMetrics:
    """ate_pct (corrected poses) and ate_pct_chain (chained): RMS keyframe-centre error after one Sim(3) fit, % of
    the path length; scale_drift_pct: |s_last / s_first - 1| of Sim(3) fits of the first and last 10 % of the
    keyframes (corrected); loops_accepted; false_loops: accepted loops whose keyframes are truly more than
    ``false_distance`` apart."""

    ate_pct: float
    ate_pct_chain: float
    scale_drift_pct: float
    loops_accepted: int
    false_loops: int
    loops_rejected: int


def evaluate_loop_run(run: LoopRun, false_distance: float = 0.5) -> LoopMetrics:
    truth = run.scene.truth.centres
    corrected = run.world.corrected_trajectory()
    chained = run.world.trajectory()
    index = np.array([run.index_of_id[f] for f in corrected.frame_ids])

    def ate(trajectory) -> float:
        estimated = trajectory.world_from_camera[:, :3, 3]
        scale, rotation, translation = weighted_umeyama(estimated, truth[index])
        errors = np.linalg.norm(scale * estimated @ rotation.T + translation - truth[index], axis=1)
        return 100.0 * float(np.sqrt(np.mean(errors**2))) / run.scene.path_length

    tenth = max(3, len(index) // 10)
    estimated = corrected.world_from_camera[:, :3, 3]
    first = weighted_umeyama(estimated[:tenth], truth[index[:tenth]])[0]
    last = weighted_umeyama(estimated[-tenth:], truth[index[-tenth:]])[0]
    outcomes = [outcome for _, _, outcome in run.loops if not isinstance(outcome, str)]
    # A loop held for a join is accepted with the loop that joined the segments.
    joined = {run.index_of_id[held.query] for outcome in outcomes if outcome.accepted for held in outcome.joined_with}
    accepted = [
        (q, m)
        for q, m, outcome in run.loops
        if not isinstance(outcome, str) and (outcome.accepted or (outcome.held and q in joined))
    ]
    false = sum(np.linalg.norm(truth[q] - truth[m]) > false_distance for q, m in accepted)
    return LoopMetrics(
        ate_pct=ate(corrected),
        ate_pct_chain=ate(chained),
        scale_drift_pct=100.0 * abs(last / first - 1.0),
        loops_accepted=len(accepted),
        false_loops=int(false),
        loops_rejected=len(run.loops) - len(accepted),
    )


def map_error_pct(run: LoopRun, frame_ids=None) -> float:
    """Median distance of the world's map points (of the keyframes ``frame_ids``, default all) to the true
    surfaces, % of the room's diagonal, after the Sim(3) fit of the corrected keyframe centres to the truth."""
    world = run.world
    trajectory = world.corrected_trajectory()
    index = np.array([run.index_of_id[f] for f in trajectory.frame_ids])
    scale, rotation, translation = weighted_umeyama(
        trajectory.world_from_camera[:, :3, 3], run.scene.truth.centres[index]
    )
    corrected = world.loops.corrected()
    frames = trajectory.frame_ids if frame_ids is None else frame_ids
    points = []
    for frame_id in frames:
        if frame_id in world.loops.map:
            pose = corrected[frame_id]
            points.append(world.loops.map.points(frame_id).astype(np.float64) @ pose[:3, :3].T + pose[:3, 3])
    scene_points = scale * np.concatenate(points) @ rotation.T + translation
    room = run.scene.truth.room
    return 100.0 * float(np.median(room.distance_to_surface(scene_points))) / room.size


def segments(run: LoopRun) -> int:
    return sum(s in (WindowStatus.INITIALIZED, WindowStatus.NEW_SEGMENT) for s in run.statuses)
