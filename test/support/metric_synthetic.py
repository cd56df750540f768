# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Test and benchmark support for the metric scale sources: realistic sensors over the synthetic room, whole
sessions run with them, and their accuracy in metres against the ground truth.

The synthetic room's unit is the metre. Three sources, each a test double of a real sensor, all seeded:

* `FakeDepthSensorForTests`: a depth camera registered to the colour image (RealSense-like). Noise grows with the
  square of the distance (sigma = k z^2, the error of a stereo depth), a fraction of the pixels are holes, nothing
  is read outside the sensor's range, and some pixels on depth edges "fly" between the foreground and the
  background. Readings are stored as the driver publishes them, 16UC1 millimetres with 0 = no measurement, and
  read back with the real `depth_to_metres`, so they carry the sensor's millimetre quantisation.
* `render_rig`: a two-camera rig (camera 1 at a known baseline from camera 0, same orientation). Both cameras'
  images are rendered into ONE `SyntheticSequence`, so the test double of the network recognises every image and
  answers a window holding both cameras from the same ground truth.
* `FakeOdometryForTests`: wheel odometry of a robot carrying camera 0 (REP 103 base frame, a static base -> camera
  mounting). Each step's true motion is integrated with a scale error of the wheels, a random walk of the position
  and of the heading, and optionally one jump (a relocalisation); it is published into a real
  `vggt_ros.metric.tf_buffer.TransformBuffer` step by step, as a ROS odometry node would.

`FrameSetSequence` is what a session is fed: T times x K cameras, every image a frame of one rendered sequence.
`run_metric_session` feeds one through a `ReconstructionSession` with the network replaced by
`FakePipelineForWorldTests`; `evaluate_metric` measures the result against the truth (definitions in
`MetricAccuracy`). Shared by test/core/test_metric_session.py and bench/metric_scale.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Optional, Sequence

import numpy as np

from support.synthetic import (
    FakePipelineForWorldTests,
    FakeVGGTForWorldTests,
    OracleNoise,
    SyntheticSequence,
    chaining_session_config,
    render_poses,
)
from vggt_ros.geometry import compose_rigid, invert_rigid, similarity_matrix, transform_points
from vggt_ros.metric.config import MetricConfig
from vggt_ros.metric.scale_filter import ScaleFilterConfig
from vggt_ros.metric.sensor_depth import depth_to_metres
from vggt_ros.metric.sources import ScaleObservation
from vggt_ros.metric.tf_buffer import TransformBuffer
from vggt_ros.session import ReconstructionSession, SessionConfig, WindowOutput
from vggt_ros.window import FrameSet, WindowConfig
from vggt_ros.world import WorldConfig
from vggt_ros.world.alignment import weighted_umeyama

CAMERA_FRAMES = ("camera0_optical", "camera1_optical")
ODOM_FRAME = "odom"
BASE_FRAME = "base_link"
# Capture stamps: 10 Hz from a realistic clock (a stamp of 0 means "the newest" to a TF look-up).
FIRST_STAMP_NS = 1_700_000_000 * 1_000_000_000
FRAME_PERIOD_NS = 100_000_000
# Camera 0 on the robot: 0.2 m ahead of the base origin and 0.5 m up, looking forward. Base axes (REP 103): x
# forward, y left, z up; optical axes: x right = -y, y down = -z, z forward = x.
BASE_FROM_CAMERA = np.array(
    [
        [0.0, 0.0, 1.0, 0.2],
        [-1.0, 0.0, 0.0, 0.0],
        [0.0, -1.0, 0.0, 0.5],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


# --- what the session is fed -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameSetSequence:
    """T synchronised frame sets of K cameras, every image a frame of ``sequence``.

    Attributes:
        sequence: all images of all cameras (what the test double of the network recognises and answers from).
        indices: ``(T, K)`` int, the ``sequence`` frame of camera k's image at time t.
        stamps_ns: ``(T,)`` int64, the frame sets' capture stamps (`FIRST_STAMP_NS` on at 10 Hz), shared by the
            cameras.
        camera_frames: each camera's optical frame id (TF).
    """

    sequence: SyntheticSequence
    indices: np.ndarray
    stamps_ns: np.ndarray
    camera_frames: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.indices.ndim != 2 or len(self.stamps_ns) != len(self.indices):
            raise ValueError(f"indices must be (T, K) for T = {len(self.stamps_ns)} stamps, got {self.indices.shape}")
        if len(self.camera_frames) != self.cameras:
            raise ValueError(f"camera_frames must name the {self.cameras} cameras, got {self.camera_frames}")

    def __len__(self) -> int:
        return len(self.stamps_ns)

    @property
    def cameras(self) -> int:
        return self.indices.shape[1]

    def frame_set(self, t: int, camera_frames: Optional[tuple[str, ...]] = None) -> FrameSet:
        """Frame set ``t`` (optionally with other frame ids, e.g. a driver that renamed its frames)."""
        images = tuple(self.sequence.rgb[i] for i in self.indices[t])
        return FrameSet((int(self.stamps_ns[t]),) * self.cameras, images, camera_frames or self.camera_frames)

    def time_of(self, stamp_ns: int) -> int:
        """The frame set index of ``stamp_ns`` (KeyError if none)."""
        t = int(np.searchsorted(self.stamps_ns, stamp_ns))
        if t >= len(self) or self.stamps_ns[t] != stamp_ns:
            raise KeyError(f"no frame set at {stamp_ns} ns")
        return t

    def index_of(self, frame_id: tuple[int, int]) -> int:
        """The ``sequence`` frame of a session frame id (stamp ns, camera)."""
        stamp_ns, camera = frame_id
        return int(self.indices[self.time_of(stamp_ns), camera])

    @property
    def path_length_m(self) -> float:
        """Camera 0's true path length, metres."""
        centres = self.sequence.centres[self.indices[:, 0]]
        return float(np.linalg.norm(np.diff(centres, axis=0), axis=1).sum())


def single_camera(name: str, extrinsics: np.ndarray, image_hw: tuple[int, int]) -> FrameSetSequence:
    """One camera along the camera-from-scene ``extrinsics`` ``(T, 3, 4)``, rendered at ``image_hw`` (H, W)."""
    sequence = render_poses(name, extrinsics, image_hw)
    indices = np.arange(len(extrinsics))[:, None]
    return FrameSetSequence(sequence, indices, _stamps(len(extrinsics)), CAMERA_FRAMES[:1])


def _stamps(count: int) -> np.ndarray:
    return FIRST_STAMP_NS + np.arange(count, dtype=np.int64) * FRAME_PERIOD_NS


def rig_camera1_pose(baseline_m: float) -> np.ndarray:
    """camera0_from_camera1 ``(4, 4)``: camera 1 ``baseline_m`` metres to the right of camera 0, same orientation."""
    camera0_from_camera1 = np.eye(4)
    camera0_from_camera1[0, 3] = baseline_m
    return camera0_from_camera1


def render_rig(
    name: str, extrinsics: np.ndarray, image_hw: tuple[int, int], baseline_m: float = 0.12
) -> FrameSetSequence:
    """A two-camera rig with camera 0 along ``extrinsics`` ``(T, 3, 4)`` and camera 1 as `rig_camera1_pose`.

    Both cameras are rendered into one sequence, interleaved (frame 2t: camera 0 at time t, 2t + 1: camera 1).
    """
    camera1 = compose_rigid(invert_rigid(rig_camera1_pose(baseline_m)[:3]), extrinsics)
    both = np.stack((extrinsics, camera1), axis=1).reshape(-1, 3, 4)
    sequence = render_poses(name, both, image_hw)
    return FrameSetSequence(sequence, np.arange(len(both)).reshape(-1, 2), _stamps(len(extrinsics)), CAMERA_FRAMES)


# --- the depth camera ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DepthSensorConfig:
    """How `FakeDepthSensorForTests` errs (defaults: a RealSense D435-like stereo camera indoors).

    Attributes:
        noise_per_m: k in sigma = k z^2 (metres of noise at z metres), 1 / metre.
        hole_fraction: pixels without a measurement (independently, uniformly), 0..1.
        min_range_m, max_range_m: nothing is read nearer or farther, metres.
        flying_fraction: of the pixels on a depth edge, those read between the two surfaces, 0..1.
        edge_jump_m: a depth difference to a 4-neighbour that makes a pixel an edge pixel, metres.
    """

    noise_per_m: float = 0.0015
    hole_fraction: float = 0.07
    min_range_m: float = 0.3
    max_range_m: float = 5.0
    flying_fraction: float = 0.5
    edge_jump_m: float = 0.2

    def __post_init__(self) -> None:
        for name in ("noise_per_m", "hole_fraction", "min_range_m", "flying_fraction", "edge_jump_m"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        for name in ("hole_fraction", "flying_fraction"):
            if getattr(self, name) > 1.0:
                raise ValueError(f"{name} is a fraction of pixels: it must be in [0, 1], got {getattr(self, name)!r}")
        if not self.max_range_m > self.min_range_m:
            raise ValueError(f"max_range_m ({self.max_range_m}) must exceed min_range_m ({self.min_range_m})")


class FakeDepthSensorForTests:
    """Test double of a depth camera registered to each colour camera of ``frames`` (see the module docstring).

    Call it as the session's depth look-up: ``sensor(camera, stamp_ns)`` -> ``(H, W)`` float32 metres at the colour
    image's resolution, NaN where there is no measurement. The same frame always gives the same reading.
    """

    def __init__(self, frames: FrameSetSequence, config: DepthSensorConfig = DepthSensorConfig(), seed: int = 0):
        self.frames = frames
        self.config = config
        self.seed = seed

    def __call__(self, camera: int, stamp_ns: int) -> np.ndarray:
        return self.reading(self.frames.index_of((stamp_ns, camera)))

    def reading(self, index: int) -> np.ndarray:
        """The sensor's ``(H, W)`` float32 metres for ``sequence`` frame ``index``."""
        config = self.config
        truth = self.frames.sequence.depth[index]
        rng = np.random.default_rng([self.seed, index])
        depth = truth + rng.normal(size=truth.shape) * config.noise_per_m * truth**2
        # Flying pixels: a stereo matcher mixes the two sides of a depth edge into a depth on neither.
        nearer, farther = _edge_neighbours(truth)
        edge = (farther - nearer) > config.edge_jump_m
        flying = edge & (rng.random(truth.shape) < config.flying_fraction)
        depth[flying] = nearer[flying] + rng.random(int(flying.sum())) * (farther - nearer)[flying]
        read = (depth >= config.min_range_m) & (depth <= config.max_range_m)
        read &= rng.random(truth.shape) >= config.hole_fraction
        millimetres = np.where(read, np.round(depth * 1000.0), 0.0).astype("<u2")
        height, width = truth.shape
        return depth_to_metres(millimetres.tobytes(), height, width, 2 * width, "16UC1")


def _edge_neighbours(depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the smallest and largest depth among itself and its 4-neighbours, both ``(H, W)``."""
    padded = np.pad(depth, 1, mode="edge")
    stack = np.stack((depth, padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]))
    return stack.min(axis=0), stack.max(axis=0)


# --- odometry --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OdometryConfig:
    """How `FakeOdometryForTests` drifts.

    Attributes:
        scale_error: relative error of every distance the wheels measure (0.01: reads 1 % too far).
        translation_walk_m: standard deviation of each step's position error, per axis, metres.
        heading_walk_rad: standard deviation of each step's heading error (about the base's z axis), radians.
        jump_at: the frame set from which the odometry is offset by ``jump_m`` (a relocalisation), or None.
        jump_m: that offset, ``(3,)`` metres in the odom frame.
    """

    scale_error: float = 0.01
    translation_walk_m: float = 0.001
    heading_walk_rad: float = 0.0005
    jump_at: Optional[int] = None
    jump_m: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale_error) and self.scale_error > -1.0):
            raise ValueError(f"scale_error must be a number > -1 (a relative distance error), got {self.scale_error!r}")
        for name in ("translation_walk_m", "heading_walk_rad"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0.0):
                raise ValueError(f"{name} must be a number >= 0, got {getattr(self, name)!r}")
        if self.jump_at is not None and self.jump_at < 1:
            raise ValueError(f"jump_at must be a frame set index >= 1 (or None for no jump), got {self.jump_at!r}")


class FakeOdometryForTests:
    """Test double of a robot's odometry carrying camera 0 of ``frames`` (see the module docstring).

    At construction it sets the static mounting ``base_link`` -> camera 0's frame in ``transforms``; `publish(t)`
    then adds ``odom`` -> ``base_link`` at frame set t's stamp. ``odom_from_base`` ``(T, 4, 4)`` holds what it
    publishes.
    """

    def __init__(
        self,
        frames: FrameSetSequence,
        transforms: TransformBuffer,
        config: OdometryConfig = OdometryConfig(),
        seed: int = 0,
    ) -> None:
        self.frames = frames
        self.transforms = transforms
        self.config = config
        scene_from_camera = invert_rigid(frames.sequence.extrinsics[frames.indices[:, 0]])
        scene_from_base = compose_rigid(scene_from_camera, invert_rigid(BASE_FROM_CAMERA[:3]))  # (T, 3, 4)
        rng = np.random.default_rng(seed)
        odom_from_base = [np.eye(4)]
        step_squares = [0.0]
        for t in range(1, len(frames)):
            step = compose_rigid(invert_rigid(scene_from_base[t - 1]), scene_from_base[t])  # the true motion, base
            step_squares.append(float(step[:3, 3] @ step[:3, 3]))
            measured = np.eye(4)
            measured[:3, :3] = step[:3, :3] @ _rotation_about_z(rng.normal() * config.heading_walk_rad)
            measured[:3, 3] = (1.0 + config.scale_error) * step[:3, 3] + rng.normal(size=3) * config.translation_walk_m
            odom_from_base.append(odom_from_base[-1] @ measured)
        self.odom_from_base = np.stack(odom_from_base)
        self._step_squares_m2 = np.cumsum(step_squares)  # (T,) sum of |true step|^2 up to frame set t
        if config.jump_at is not None:
            self.odom_from_base[config.jump_at :, :3, 3] += np.asarray(config.jump_m)
        transforms.set_transform_static(BASE_FRAME, frames.camera_frames[0], BASE_FROM_CAMERA)

    def scale_sigma_pct(self, t: int) -> float:
        """The Cramér-Rao bound of the wheels' distance scale from their steps up to frame set ``t``: the smallest
        standard deviation, in % of the scale, of any unbiased estimate of it.

        Each step is measured as (1 + scale_error) x the true step plus N(0, translation_walk_m^2 I), in the
        base's frame before it, so the Fisher information of the scale is sum |true step|^2 / translation_walk_m^2.
        The bound leaves out the heading walk, the world's errors and the steps between keyframes that a session
        never looks up, each of which only adds to it: whatever a session does, its odometry scale scatters at least
        this much. Infinite before the first step or with no motion; 0 without a walk.
        """
        information = self._step_squares_m2[t]
        if self.config.translation_walk_m == 0.0:
            return 0.0
        if information == 0.0:
            return math.inf
        return 100.0 * self.config.translation_walk_m / math.sqrt(information) / (1.0 + self.config.scale_error)

    def publish(self, t: int) -> None:
        """Publish the odometry of frame set ``t`` (call before the session gets that frame set)."""
        self.transforms.set_transform(ODOM_FRAME, BASE_FRAME, int(self.frames.stamps_ns[t]), self.odom_from_base[t])


def _rotation_about_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# --- a whole session -----------------------------------------------------------------------------------------


def metric_session_config(
    frames: FrameSetSequence,
    window: WindowConfig,
    metric: MetricConfig,
    world: WorldConfig = WorldConfig(),
    overlap_frame_sets: int = SessionConfig.overlap_frame_sets,
) -> SessionConfig:
    """`chaining_session_config` for ``frames``' cameras with the ``metric`` source."""
    config = chaining_session_config(frames.sequence, window, world, overlap_frame_sets=overlap_frame_sets)
    return replace(config, cameras=frames.cameras, metric=metric)


@dataclass
class MetricRun:
    """A session run: per window that ran, the newest frame set's index t and the session's `WindowOutput`."""

    frames: FrameSetSequence
    oracle: FakeVGGTForWorldTests
    session: ReconstructionSession
    windows: list[tuple[int, WindowOutput]] = field(default_factory=list)


def start_metric_session(
    frames: FrameSetSequence, config: SessionConfig, transforms=None, noise: OracleNoise = OracleNoise(), seed: int = 0
) -> MetricRun:
    """A session over ``frames`` with `FakePipelineForWorldTests` as the network; feed it with `feed`."""
    oracle = FakeVGGTForWorldTests(frames.sequence, noise=noise, seed=seed)
    return MetricRun(frames, oracle, ReconstructionSession(FakePipelineForWorldTests(oracle), config, transforms))


def feed(
    run: MetricRun,
    times: Sequence[int],
    depth_lookup=None,
    frame_set: Optional[Callable[[int], FrameSet]] = None,
    before: Optional[Callable[[int], None]] = None,
) -> list[tuple[int, WindowOutput]]:
    """Push frame sets ``times`` (default `FrameSetSequence.frame_set`), calling ``before(t)`` first (e.g. to
    publish odometry); the windows that ran, also appended to ``run.windows``."""
    ran = []
    for t in times:
        if before is not None:
            before(t)
        out = run.session.push((frame_set or run.frames.frame_set)(t), depth_lookup)
        if out is not None:
            ran.append((t, out))
    run.windows.extend(ran)
    return ran


def run_metric_session(
    frames: FrameSetSequence,
    config: SessionConfig,
    transforms=None,
    depth_lookup=None,
    before: Optional[Callable[[int], None]] = None,
    noise: OracleNoise = OracleNoise(),
    seed: int = 0,
) -> MetricRun:
    """All of ``frames`` through a new session (see `start_metric_session` and `feed`)."""
    run = start_metric_session(frames, config, transforms, noise, seed)
    feed(run, range(len(frames)), depth_lookup, before=before)
    return run


# --- accuracy against the truth ----------------------------------------------------------------------------------


def published_depth_ratio(frames: FrameSetSequence, output: WindowOutput) -> float:
    """Median over pixels of the published depth of the newest frame set's camera 0 over its true depth (metres
    per metre once metric); NaN when the window published nothing."""
    newest = [frame for frame in output.newest if frame.camera == 0]
    if not newest:
        return math.nan
    truth = frames.sequence.depth[frames.index_of((newest[0].stamp_ns, 0))]
    published = newest[0].depth
    usable = np.isfinite(published)
    return float(np.median(published[usable] / truth[usable]))


def newest_position(output: WindowOutput) -> Optional[np.ndarray]:
    """Camera 0's published world position ``(3,)`` in the newest frame set, or None when nothing was published."""
    newest = [frame for frame in output.newest if frame.camera == 0]
    return newest[0].world_from_camera[:3, 3].copy() if newest else None


@dataclass(frozen=True)
class MetricAccuracy:
    """Accuracy of a session run in metres (the room's unit), against the ground truth.

    Attributes:
        scale_error_10_windows_pct, scale_error_pct: the scale error of the first window at or after the 10th
            that published, and of the last window that published. A window's scale error is
            100 x |median over pixels (published depth / true depth) - 1| on the newest frame set's camera 0: what
            a user of the published depth sees. NaN when no such window published.
        scale_error_10_windows_signed_pct, scale_error_signed_pct: the same two with their sign (> 0: the world is
            too large).
        scale_error_max_pct: the largest scale error of the windows from the 10th on (how steady the scale is).
        trajectory_scale_error_pct: 100 x |1 / s - 1|, s the scale of a least-squares Sim(3) fit of the
            estimated keyframe centres to the true ones (metres per world unit): how much too large or too small
            the trajectory is.
        ate_m: RMS keyframe-centre error after a least-squares fit of the estimated to the true centres, metres.
            The fit is rigid (SE(3)) when ``rigid``: the scale is supposed to be right and its error must show;
            Sim(3) otherwise (VGGT's unit-less scale), as `support.synthetic.evaluate_chaining`.
        ate_pct_of_path: ate_m in % of camera 0's true path length.
        map_error_cm: median distance of the map points to the true surfaces, centimetres, after the same kind of
            fit made pose-aware: the keyframe centres plus one point per keyframe 1 m ahead on its optical axis
            (centres alone leave the roll about a straight path free).
        map_error_pct: the same in % of the room's diagonal.
        windows, merged, metric_windows: windows run, merged, and published in metres.
        first_metric_window: 1-based index of the first window published in metres (0: none).
        scale_bound_10_windows_signed_pct, scale_bound_signed_pct: the information bound at the same two windows:
            the error of the best combination of the source's own observations up to that window, were the world's
            unit perfectly still (see `observation_bound`). No filter can expect to do better; NaN for the "none"
            source or before the first observation.
        sensor_sigma_10_windows_pct, sensor_sigma_pct: the sensor's own limit at the same two windows, where its
            test double has one (`FakeOdometryForTests.scale_sigma_pct`): the Cramér-Rao bound, the smallest
            standard deviation any unbiased estimate of its scale can have from what it measured up to that frame
            set; NaN without one.
        rigid: which fit was used.
    """

    scale_error_10_windows_pct: float
    scale_error_pct: float
    scale_error_10_windows_signed_pct: float
    scale_error_signed_pct: float
    scale_error_max_pct: float
    trajectory_scale_error_pct: float
    ate_m: float
    ate_pct_of_path: float
    map_error_cm: float
    map_error_pct: float
    windows: int
    merged: int
    metric_windows: int
    first_metric_window: int
    scale_bound_10_windows_signed_pct: float
    scale_bound_signed_pct: float
    sensor_sigma_10_windows_pct: float
    sensor_sigma_pct: float
    rigid: bool


def window_metres_per_unit(run: MetricRun, output: WindowOutput) -> float:
    """The true metres per window unit of ``output``'s window: the inverse of the normalisation the test double of
    the network applied to that window (its answer is recorded in ``run.oracle.answers``)."""
    frames = run.frames
    indices = tuple(
        frames.index_of((frame_set.stamps_ns[camera], camera))
        for frame_set in output.window.frame_sets
        for camera in range(frames.cameras)
    )
    return 1.0 / run.oracle.answers[indices].normalization


def observation_bound(run: MetricRun, min_sigma: float = ScaleFilterConfig().min_sigma) -> np.ndarray:
    """``(windows,)`` signed %: for each window, the error of the inverse-variance weighted mean of log(observed /
    true metres per window unit) over the scale observations up to and including it, with the weights the filter
    gives them (each window's relative sigma, at least ``min_sigma``); NaN before the first observation.

    Each window's observation is compared with that window's own truth, so the world's chaining plays no part:
    this is what the source's measurements themselves support, the bound a filter of them reaches only if the
    world's unit never moved. Rejected windows' observations count too (they were measured).
    """
    log_errors, weights, bound = [], [], []
    for _, output in run.windows:
        if isinstance(output.scale, ScaleObservation):
            truth = window_metres_per_unit(run, output)
            log_errors.append(math.log(output.scale.metres_per_unit / truth))
            weights.append(1.0 / max(output.scale.relative_sigma, min_sigma) ** 2)
        bound.append(100.0 * math.expm1(float(np.average(log_errors, weights=weights))) if log_errors else math.nan)
    return np.array(bound)


def _least_squares_fit(estimated: np.ndarray, true: np.ndarray, rigid: bool) -> tuple[float, np.ndarray, np.ndarray]:
    """(s, R, t) minimising sum |true - (s R estimated + t)|^2 over ``(N, 3)`` points, with s = 1 when ``rigid``.

    Umeyama's rotation comes from the cross-covariance alone, whatever the scale, so the rigid fit shares it and
    only the translation changes: the difference of the means.
    """
    scale, rot, trans = weighted_umeyama(estimated, true)
    if rigid:
        scale, trans = 1.0, true.mean(axis=0) - rot @ estimated.mean(axis=0)
    return scale, rot, trans


def evaluate_metric(
    run: MetricRun,
    rigid: bool = True,
    after_windows: int = 10,
    sensor_sigma_pct: Optional[Callable[[int], float]] = None,
) -> MetricAccuracy:
    """`MetricAccuracy` of a finished run (``rigid``: SE(3) fits, else Sim(3); ``sensor_sigma_pct``: the sensor's
    Cramér-Rao bound at a frame set index, where its test double has one; see there)."""
    frames = run.frames
    ratios = np.array([published_depth_ratio(frames, out) for _, out in run.windows])
    errors = 100.0 * np.abs(ratios - 1.0)
    published = np.flatnonzero(np.isfinite(ratios))
    later = published[published >= after_windows - 1]
    metric = [i for i, (_, out) in enumerate(run.windows) if out.metric and out.newest]

    trajectory = run.session.world.trajectory()
    true_index = [frames.index_of(frame_id) for frame_id in trajectory.frame_ids]
    true_poses = invert_rigid(frames.sequence.extrinsics[true_index])  # (N, 3, 4) scene_from_camera
    est, true = trajectory.world_from_camera[:, :3, 3], true_poses[:, :, 3]
    sim_scale = weighted_umeyama(est, true)[0]
    scale, rot, trans = _least_squares_fit(est, true, rigid)
    ate = float(np.sqrt(np.mean(np.sum((scale * est @ rot.T + trans - true) ** 2, axis=1))))

    metre_ahead = 1.0 if rigid else 1.0 / sim_scale  # 1 m in world units (Sim(3): its best guess)
    est_ahead = est + trajectory.world_from_camera[:, :3, 2] * metre_ahead
    true_ahead = true + true_poses[:, :, 2]
    scene_from_world = similarity_matrix(
        *_least_squares_fit(np.concatenate((est, est_ahead)), np.concatenate((true, true_ahead)), rigid)
    )
    map_points = transform_points(scene_from_world, run.session.map.points.astype(np.float64))
    room = frames.sequence.room
    map_error = float(np.median(room.distance_to_surface(map_points))) if len(map_points) else math.nan

    bound = observation_bound(run)

    def sensor_sigma(window: np.ndarray) -> float:
        if sensor_sigma_pct is None or not window.size:
            return math.nan
        return sensor_sigma_pct(run.windows[int(window[0])][0])

    counters = run.session.world.counters
    return MetricAccuracy(
        scale_error_10_windows_pct=float(errors[later[0]]) if later.size else math.nan,
        scale_error_pct=float(errors[published[-1]]) if published.size else math.nan,
        scale_error_10_windows_signed_pct=float(100.0 * (ratios[later[0]] - 1.0)) if later.size else math.nan,
        scale_error_signed_pct=float(100.0 * (ratios[published[-1]] - 1.0)) if published.size else math.nan,
        scale_error_max_pct=float(errors[later].max()) if later.size else math.nan,
        trajectory_scale_error_pct=100.0 * abs(1.0 / sim_scale - 1.0),
        ate_m=ate,
        ate_pct_of_path=100.0 * ate / frames.path_length_m,
        map_error_cm=100.0 * map_error,
        map_error_pct=100.0 * map_error / room.size,
        windows=counters.windows,
        merged=counters.merged,
        metric_windows=len(metric),
        first_metric_window=metric[0] + 1 if metric else 0,
        scale_bound_10_windows_signed_pct=float(bound[later[0]]) if later.size else math.nan,
        scale_bound_signed_pct=float(bound[published[-1]]) if published.size else math.nan,
        sensor_sigma_10_windows_pct=sensor_sigma(later),
        sensor_sigma_pct=sensor_sigma(published[-1:]),
        rigid=rigid,
    )
