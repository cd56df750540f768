# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Issue #9 at the node: metric scale and robot frames over real rclpy, with real messages in and out.

The network is `support.ros_metric.CountingPipelineForTests`, a test double that answers every window from the
synthetic room's ground truth (VGGT's per-window normalisation and noise included), injected in place of
`create_pipeline`; the room's unit is the metre. A robot of test doubles (`support.ros_metric.RobotForTests`)
publishes the rendered camera images (56 x 42, image_size 56), a depth camera's images
(`support.metric_synthetic.FakeDepthSensorForTests`: noise, holes, flying pixels, millimetre steps), the camera
mounting and the rig on /tf_static and wheel odometry on /tf (`support.metric_synthetic.FakeOdometryForTests`).
Everything the node publishes is read back from the messages and compared with the ground truth in metres.

One node start-up per scale source, shared by the tests of its class (they run in order and carry on along one
camera path; each test first sends the frames it needs before its own, so each also runs alone), and one for
robot frames without ``publish_tf``:

* depth (a robot without odometry, ``publish_odom_tf``): no depth topic at all, then depth in 16UC1 and 32FC1,
  then every bad depth input of the issue, each between good frames;
* odometry (a robot with odometry): standing still for 12 s at start-up, moving, standing still, then a 2 m
  odometry jump;
* rig (two cameras): the rig transform missing from /tf_static, then published.

Each frame set gives one window (every frame set is a keyframe, stride 1), and the next frame set is sent only once
the node has taken the window before, so no window is dropped and every run sees the same windows.

For each bad input the node must keep publishing every window, log each kind of problem once, keep the last good
scale (the published depth stays metric) and never publish a jump (each published step of the camera matches the
true step). The camera frame ids of the images differ from the node's own ``<name>_optical`` frames, as on a
robot, so the node's TF output does not re-parent the robot's frames in its own listener.

DDS must stay on this machine: every test fails outside a network namespace whose only interface is loopback
(tools/run_tests.sh runs pytest in one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable, Optional

import numpy as np
import pytest
import yaml
from nav_msgs.msg import Odometry, Path
from sensor_msgs.msg import Image, PointCloud2
from std_srvs.srv import Trigger

from support.metric_synthetic import (
    BASE_FROM_CAMERA,
    FakeDepthSensorForTests,
    FakeOdometryForTests,
    FrameSetSequence,
    OdometryConfig,
    render_rig,
    rig_camera1_pose,
    single_camera,
)
from support.netns import loopback_rclpy
from support.ros_metric import (
    NANOSECONDS,
    WARN,
    CountingPipelineForTests,
    RobotForTests,
    RunningNode,
    cloud_xyz,
    depth_image,
    float_image,
    pose_matrix,
    rgb_image,
    rotation_angle_deg,
    stamp_ns,
    transform_matrix,
)
from support.rotations import quaternion_matrix, yaw_pose
from support.synthetic import FakeVGGTForWorldTests, look_at
from vggt_ros.metric.robot_frames import MIN_POSITION_SIGMA_M, MIN_ROTATION_SIGMA_RAD
from vggt_ros.metric.tf_buffer import TransformBuffer

pytestmark = [pytest.mark.ros, pytest.mark.timeout(120)]

IMAGE_HW = (42, 56)
IMAGE_SIZE = IMAGE_HW[1]  # the model's input width: the rendered images go in unresized
FIRST_STAMP_NS = 1_700_000_000 * 1_000_000_000
PERIOD_NS = 100_000_000  # 10 Hz
ODOM, BASE = "odom", "base_link"
WORLD, PARENT = "vggt_world", "map"
NODE_CAMERA = "camera0_optical"  # the node's TF frame of camera 0
WINDOW_SIZE = 4
COMMON_PARAMETERS = {
    "image_size": IMAGE_SIZE,
    "device": "cpu",
    "precision": "fp32",
    "window_size": WINDOW_SIZE,
    "map_publish_period_s": 0.2,
}
# Tolerances against the ground truth, metres and fractions (the test double's noise: 1.5 % per depth pixel, a
# 0.2 % depth scale per frame, ~7 mm per camera centre at the room's depth; the depth camera's: sigma = 1.5 mm z^2).
DEPTH_RATIO_TOLERANCE = 0.02  # published / true depth, depth and rig sources
# The odometry source compares 4 - 12 cm displacements with VGGT's (its camera centres carry ~7 mm of noise), so a
# window's observation is only good to several per cent and the first one fixes the scale.
ODOMETRY_RATIO_TOLERANCE = 0.05
# While a problem lasts, each published depth stays this close to the last one before it: a window's own depth
# ratio scatters by ~1 %, and the filter may still converge on the observations it holds by 1 % per window.
SCALE_KEPT_TOLERANCE = 0.02
# A published step of the camera vs the true one (4 cm per frame): two frames' pose errors (up to ~3 cm together
# here); a jump of the scale or of the pose is far larger.
STEP_TOLERANCE_M = 0.05
# A published pose vs the true one: the chaining drifts by about 1 degree and a few centimetres per metre here.
POSITION_TOLERANCE_M = 0.08
ROTATION_TOLERANCE_DEG = 2.0
SURFACE_TOLERANCE_M = 0.05  # median distance of cloud / map points to the room's surfaces
# A unit-less world would be off by VGGT's normalisation (1 / the mean scene distance, ~0.3 per metre here), far
# outside every tolerance above.


@pytest.fixture(scope="module", autouse=True)
def ros():
    """rclpy for the whole module, only where DDS cannot leave the machine (a loud failure, never a skip)."""
    with loopback_rclpy(__file__):
        yield


def homogeneous(rigid: np.ndarray) -> np.ndarray:
    """``(..., 3, 4)`` -> ``(..., 4, 4)``."""
    bottom = np.broadcast_to(np.array([0.0, 0.0, 0.0, 1.0]), rigid.shape[:-2] + (1, 4))
    return np.concatenate((rigid, bottom), axis=-2)


def camera_path(moving: np.ndarray) -> np.ndarray:
    """Camera-from-scene ``(frames, 3, 4)`` for ``moving`` ``(frames,)`` bool: each moving frame 4 cm sideways and
    1 cm forward from the one before, with a gentle yaw sway, looking at the far wall and a panel 3 - 5 m away; a
    frame that is not moving is where the one before it was."""
    moved = np.cumsum(np.asarray(moving, dtype=np.float64)) - float(moving[0])
    frames = len(moved)
    centres = np.stack((-2.5 + 0.04 * moved, np.full(frames, 0.2), -1.8 + 0.01 * moved), axis=1)
    yaw = 0.1 * np.sin(moved / 15.0)
    directions = np.stack((np.sin(yaw), np.zeros(frames), np.cos(yaw)), axis=1)
    return look_at(centres, directions)


def stamps_at(periods_ns) -> np.ndarray:
    """``(T,)`` int64 frame set stamps from FIRST_STAMP_NS, each ``periods_ns[t - 1]`` after the one before."""
    return FIRST_STAMP_NS + np.concatenate(([0], np.cumsum(periods_ns))).astype(np.int64)


@dataclass
class Scenario:
    """One node and its robot, driven frame set by frame set along the rendered camera path ``frames``."""

    running: RunningNode
    robot: RobotForTests
    pipeline: CountingPipelineForTests
    frames: FrameSetSequence
    image_topics: tuple[str, ...]
    camera_frames: tuple[str, ...]
    stamps_ns: np.ndarray  # (T,) int64 each frame set's capture stamp
    sensor: Optional[FakeDepthSensorForTests] = None
    odom_from_base: Optional[np.ndarray] = None  # (T, 4, 4) what the robot's odometry publishes, metres
    next_t: int = 0
    sent: list[int] = field(default_factory=list)

    @property
    def node(self):
        return self.running.node

    def stamp(self, t: int) -> int:
        """Frame set ``t``'s capture stamp, nanoseconds."""
        return int(self.stamps_ns[t])

    def send(self, before: Optional[Callable[[int, int], None]] = None) -> int:
        """Publish frame set ``next_t`` (``before(t, stamp)`` first: depth, odometry) and wait until the node has
        taken its window; returns its stamp."""
        t = self.next_t
        stamp = self.stamp(t)
        if before is not None:
            before(t, stamp)
        for topic, camera_frame, index in zip(self.image_topics, self.camera_frames, self.frames.indices[t]):
            self.robot.publish_image(topic, rgb_image(self.frames.sequence.rgb[index], stamp, camera_frame))
        self.pipeline.wait_windows(len(self.sent) + 1)
        self.sent.append(t)
        self.next_t += 1
        return stamp

    def wait_published(self, stamp: int, topics=("/vggt/depth/image", "/vggt/points", "/vggt/path")) -> None:
        self.robot.wait_for(
            lambda: all(self.robot.at(topic, stamp) for topic in topics) and self.camera_pose(stamp) is not None,
            what=f"the outputs stamped {stamp}",
        )

    def camera_pose(self, stamp: int, camera: int = 0) -> Optional[np.ndarray]:
        """camera ``camera``'s published world pose ``(4, 4)`` at ``stamp`` (TF), or None."""
        child = f"camera{camera}_optical"
        found = [t for t in self.robot.transforms("/tf", WORLD, child) if stamp_ns(t) == stamp]
        return transform_matrix(found[-1]) if found else None

    def true_world_from_camera(self, t: int, camera: int = 0) -> np.ndarray:
        """The true pose of camera ``camera`` at frame set ``t`` in the world: camera 0 at frame set 0, metres."""
        extrinsics = homogeneous(self.frames.sequence.extrinsics)
        origin, index = self.frames.indices[0, 0], self.frames.indices[t, camera]
        return extrinsics[origin] @ np.linalg.inv(extrinsics[index])

    def depth_ratio(self, t: int, camera_prefix: str = "/vggt/", camera: int = 0) -> float:
        """Median of the published depth over the true depth of camera ``camera`` at frame set ``t``."""
        published = float_image(self.robot.at(f"{camera_prefix}depth/image", self.stamp(t)))
        truth = self.frames.sequence.depth[self.frames.indices[t, camera]]
        usable = np.isfinite(published)
        return float(np.median(published[usable] / truth[usable]))

    def send_until(self, end_t: int, before: Optional[Callable[[int, int], None]] = None) -> list[int]:
        """`send` frame sets up to ``end_t`` (exclusive); the frame sets sent."""
        first = self.next_t
        while self.next_t < end_t:
            self.send(before)
        return list(range(first, end_t))

    def true_base_in_odom(self, t: int, odom_from_first_base: np.ndarray) -> np.ndarray:
        """The true pose of the base at frame set ``t`` in odom, where the base was at ``odom_from_first_base`` at
        frame set 0 (the camera path through the mounting)."""
        return (
            odom_from_first_base @ BASE_FROM_CAMERA @ self.true_world_from_camera(t) @ np.linalg.inv(BASE_FROM_CAMERA)
        )

    def logged(self, text: str) -> int:
        return len(self.robot.logs(WARN, text))

    def settle(self) -> None:
        """Until the last window sent has been integrated and its report logged: the next window has started."""
        self.send()


def check_scale_kept(scenario: Scenario, times: list[int], reference_t: int) -> None:
    """The published depth of each of frame sets ``times`` stays at the scale of frame set ``reference_t`` (the
    last one before a problem)."""
    reference = scenario.depth_ratio(reference_t)
    for t in times:
        change = scenario.depth_ratio(t) / reference - 1.0
        assert abs(change) < SCALE_KEPT_TOLERANCE, f"frame set {t}: the scale moved by {100 * change:.1f} %"


def check_metric_without_jumps(scenario: Scenario, times: list[int], accuracy: float = DEPTH_RATIO_TOLERANCE) -> None:
    """The published depth of each of frame sets ``times`` is metric to ``accuracy``, and each published step of
    camera 0 (from the frame set before) matches the true step: nothing jumped."""
    for t in times:
        ratio = scenario.depth_ratio(t)
        assert abs(ratio - 1.0) < accuracy, f"frame set {t}: published / true depth {ratio:.4f}"
        before, now = scenario.camera_pose(scenario.stamp(t - 1)), scenario.camera_pose(scenario.stamp(t))
        true_step = scenario.true_world_from_camera(t)[:3, 3] - scenario.true_world_from_camera(t - 1)[:3, 3]
        error = np.linalg.norm((now[:3, 3] - before[:3, 3]) - true_step)
        assert error < STEP_TOLERANCE_M, f"frame set {t}: the published step is {error:.3f} m off the true one"


def check_base_odometry(scenario: Scenario, times: list[int], odom_from_first_base: np.ndarray) -> None:
    """~/odometry at each of frame sets ``times``: exactly the node's own camera pose (TF) carried into odom by the
    world's placement (/tf_static) and through the mounting; the true base pose in odom (the base was at
    ``odom_from_first_base`` at frame set 0) to the chaining's accuracy; a covariance from the alignment's residual."""
    robot = scenario.robot
    odom_from_world = transform_matrix(world_placement(robot))
    for t in times:
        odometry = robot.at("/vggt/odometry", scenario.stamp(t))
        assert (odometry.header.frame_id, odometry.child_frame_id) == (ODOM, BASE)
        pose = pose_matrix(odometry.pose.pose)
        composed = odom_from_world @ scenario.camera_pose(scenario.stamp(t)) @ np.linalg.inv(BASE_FROM_CAMERA)
        np.testing.assert_allclose(pose, composed, atol=1e-6)
        truth = scenario.true_base_in_odom(t, odom_from_first_base)
        error = np.linalg.norm(pose[:3, 3] - truth[:3, 3])
        assert error < POSITION_TOLERANCE_M, f"frame set {t}: ~/odometry is {error:.3f} m off the base"
        assert rotation_angle_deg(pose[:3, :3].T @ truth[:3, :3]) < ROTATION_TOLERANCE_DEG

        covariance = np.array(odometry.pose.covariance).reshape(6, 6)
        assert np.count_nonzero(covariance - np.diag(np.diag(covariance))) == 0
        position_variance, rotation_variance = np.diag(covariance)[:3], np.diag(covariance)[3:]
        assert np.ptp(position_variance) == 0 and np.ptp(rotation_variance) == 0
        position_sigma, rotation_sigma = math.sqrt(position_variance[0]), math.sqrt(rotation_variance[0])
        assert position_sigma >= MIN_POSITION_SIGMA_M and rotation_sigma >= MIN_ROTATION_SIGMA_RAD
        if position_sigma > MIN_POSITION_SIGMA_M and rotation_sigma > MIN_ROTATION_SIGMA_RAD:
            # Both come from the residual: position = residual (metres), rotation = residual / scene depth, so
            # their ratio is the scene depth in metres.
            scene_depth_m = float(np.median(scenario.frames.sequence.depth[scenario.frames.indices[t, 0]]))
            ratio = position_sigma / rotation_sigma
            assert abs(ratio / scene_depth_m - 1.0) < 0.25, f"frame set {t}: {ratio:.2f} m vs {scene_depth_m:.2f} m"


def world_placement(robot: RobotForTests):
    """The world's latched transform under odom or, where the node closes loops on a robot with its own odometry,
    under map (docs/node.md, "Robot frames"): the placement, made when map was odom, so without a loop the same."""
    placements = robot.transforms("/tf_static", ODOM, WORLD) + robot.transforms("/tf_static", PARENT, WORLD)
    assert len({t.header.frame_id for t in placements}) == 1, "the world must have one parent"
    return placements[-1]


def check_base_in_map(scenario: Scenario, t: int, odom_from_first_base: np.ndarray) -> None:
    """Loop closure on a robot with its own odometry: map -> odom on /tf times the robot's odom -> base of frame
    set ``t`` is the node's base in map (the world under map, its camera pose, the mounting) once map -> odom has
    taken up that window, and the true base (map was odom at the placement) to the chaining's accuracy."""
    robot = scenario.robot
    map_from_world = transform_matrix(robot.transforms("/tf_static", PARENT, WORLD)[-1])
    node_base = map_from_world @ scenario.camera_pose(scenario.stamp(t)) @ np.linalg.inv(BASE_FROM_CAMERA)

    def base_through_odom():
        sent = robot.transforms("/tf", PARENT, ODOM)
        base = transform_matrix(sent[-1]) @ scenario.odom_from_base[t] if sent else None
        return [base] if base is not None and np.allclose(base, node_base, atol=1e-6) else None

    (base,) = robot.wait_for(base_through_odom, what=f"map -> odom to put the base where frame set {t} has it")
    truth = scenario.true_base_in_odom(t, odom_from_first_base)
    error = np.linalg.norm(base[:3, 3] - truth[:3, 3])
    assert error < POSITION_TOLERANCE_M, f"frame set {t}: the base in map is {error:.3f} m off"


def start(parameters: dict, frames, image_topics, camera_frames, periods_ns=None) -> Scenario:
    """The node with ``parameters`` over ``frames`` and its robot, connected; frame sets ``periods_ns`` apart (default
    10 Hz)."""
    stamps = stamps_at(np.full(len(frames) - 1, PERIOD_NS) if periods_ns is None else periods_ns)
    pipeline = CountingPipelineForTests(FakeVGGTForWorldTests(frames.sequence, seed=0))
    running = RunningNode({**COMMON_PARAMETERS, **parameters, "image_topics": list(image_topics)}, pipeline)
    prefixes = ["/vggt/"] if len(image_topics) == 1 else [f"/vggt/camera{i}/" for i in range(len(image_topics))]
    outputs = {"/vggt/points": PointCloud2, "/vggt/path": Path, "/vggt/map": PointCloud2}
    outputs.update({f"{prefix}depth/image": Image for prefix in prefixes})
    if "robot_base_frame" in parameters:
        outputs["/vggt/odometry"] = Odometry
    robot = RobotForTests(image_topics, outputs)
    robot.wait_connected()
    return Scenario(running, robot, pipeline, frames, tuple(image_topics), tuple(camera_frames), stamps)


# ---------------------------------------------------------------------------------------------- depth camera
class TestDepthSource:
    """metric_scale_source depth, one camera; a robot without odometry (odom starts at the base, publish_odom_tf)."""

    IMAGE_TOPIC, DEPTH_TOPIC = "/robot/camera/color", "/robot/camera/aligned_depth"
    CAMERA_FRAME = "front_camera_optical"
    FRAMES = 100

    @pytest.fixture(scope="class")
    @classmethod
    def scenario(cls, tmp_path_factory):
        frames = single_camera("depth_path", camera_path(np.ones(cls.FRAMES, dtype=bool)), IMAGE_HW)
        save_folder = tmp_path_factory.mktemp("depth_source_saves")
        parameters = {
            "metric_scale_source": "depth",
            "depth_topics": [cls.DEPTH_TOPIC],
            "odom_frame": ODOM,
            "robot_base_frame": BASE,
            "publish_odom_tf": True,
            "save_directory": str(save_folder),
        }
        scenario = start(parameters, frames, [cls.IMAGE_TOPIC], [cls.CAMERA_FRAME])
        scenario.robot.publish_static(BASE, cls.CAMERA_FRAME, BASE_FROM_CAMERA)
        scenario.sensor = FakeDepthSensorForTests(frames)
        scenario.save_folder = save_folder
        yield scenario
        scenario.robot.close()
        scenario.running.close()

    def depth(
        self,
        scenario: Scenario,
        encoding: str = "16UC1",
        delay_ns: int = 0,
        altered: Optional[Callable[[int, np.ndarray, int], Image]] = None,
    ) -> Callable[[int, int], None]:
        """A ``before`` hook publishing the depth camera's image of each frame set: its reading in ``encoding``,
        stamped ``delay_ns`` late, or ``altered(t, reading in metres, stamp)`` instead."""

        def publish(t: int, stamp: int) -> None:
            metres = scenario.sensor.reading(int(scenario.frames.indices[t, 0]))
            if altered is not None:
                msg = altered(t, metres, stamp)
            else:
                msg = depth_image(metres, stamp + delay_ns, self.CAMERA_FRAME, encoding)
            scenario.robot.publish_depth(self.DEPTH_TOPIC, msg)

        return publish

    def test_without_a_depth_topic_nothing_is_published_and_the_wait_is_logged_once(self, scenario):
        node, robot = scenario.node, scenario.robot
        assert node.count_publishers(self.DEPTH_TOPIC) == 0, "the depth camera must not be running yet"
        for _ in range(WINDOW_SIZE + 1):
            scenario.send()
        scenario.settle()
        waiting = "waiting for the first metric scale from the depth source"
        robot.wait_for(lambda: scenario.logged(waiting), what="the waiting warning")
        assert scenario.logged(waiting) == 1
        assert "nothing is published until then" in robot.logs(WARN, waiting)[0]
        assert node.counts.windows_published == 0 and node.counts.windows_failed == 0
        for topic in ("/vggt/depth/image", "/vggt/points", "/vggt/path", "/vggt/odometry"):
            assert robot.messages(topic) == [], f"{topic} published before the scale is known"
        assert all(len(cloud_xyz(msg)) == 0 for msg in robot.messages("/vggt/map")), "map points before the scale"
        assert robot.transforms("/tf", WORLD, NODE_CAMERA) == []
        # The world is placed at start-up all the same (in metres whatever VGGT's scale), so map -> odom is there
        # (odom is map until a loop); the world's own transform waits for the first window published in it, which
        # the next test checks: before, after a reset, a listener's newest camera TF was the old world's under it.
        map_from_odom = robot.wait_for(lambda: robot.transforms("/tf", PARENT, ODOM), what="map -> odom")[-1]
        np.testing.assert_allclose(transform_matrix(map_from_odom), np.eye(4), atol=1e-12)
        assert robot.transforms("/tf_static", PARENT, WORLD) == [], "the world's transform before anything in it"

    def test_depth_in_16uc1_and_32fc1_makes_every_output_metric_and_places_the_robot(self, scenario):
        robot = scenario.robot
        times = []
        for encoding in ("16UC1",) * 4 + ("32FC1",) * 4:
            scenario.send(self.depth(scenario, encoding))
            times.append(scenario.sent[-1])
        stamps = [scenario.stamp(t) for t in times]
        scenario.wait_published(stamps[-1], ("/vggt/depth/image", "/vggt/points", "/vggt/path", "/vggt/odometry"))
        published = [t for t in times if robot.at("/vggt/depth/image", scenario.stamp(t))]
        assert published[0] == times[0] or published[0] == times[1], "the first window with depth makes it metric"
        assert published == times[times.index(published[0]) :], "every window from then on is published"

        # depth (32FC1, metres, REP 118) and the camera's TF
        for t in published:
            msg = robot.at("/vggt/depth/image", scenario.stamp(t))
            assert msg.encoding == "32FC1" and msg.header.frame_id == NODE_CAMERA
            assert abs(scenario.depth_ratio(t) - 1.0) < DEPTH_RATIO_TOLERANCE
            pose, truth = scenario.camera_pose(scenario.stamp(t)), scenario.true_world_from_camera(t)
            assert np.linalg.norm(pose[:3, 3] - truth[:3, 3]) < POSITION_TOLERANCE_M
            assert rotation_angle_deg(pose[:3, :3].T @ truth[:3, :3]) < ROTATION_TOLERANCE_DEG
        # the path: every keyframe so far (also those from before the scale was known), in metres
        path = robot.at("/vggt/path", stamps[-1])
        assert path.header.frame_id == WORLD
        time_of = {scenario.stamp(t): t for t in range(times[-1] + 1)}
        path_times = [time_of[stamp_ns(pose)] for pose in path.poses]
        assert path_times == list(range(times[-1] + 1))
        for t, pose in zip(path_times, path.poses):
            error = np.linalg.norm(pose_matrix(pose.pose)[:3, 3] - scenario.true_world_from_camera(t)[:3, 3])
            assert error < POSITION_TOLERANCE_M, f"path keyframe {t} is {error:.3f} m off"
        # the cloud and the map lie on the room's surfaces, in metres
        scene_from_world = np.linalg.inv(homogeneous(scenario.frames.sequence.extrinsics[0]))
        room = scenario.frames.sequence.room
        for label, msg in (
            ("cloud", robot.at("/vggt/points", stamps[-1])),
            ("map", robot.wait_for(lambda: [m for m in robot.messages("/vggt/map") if m.width > 0], what="a map")[-1]),
        ):
            assert msg.header.frame_id == WORLD
            points = cloud_xyz(msg)
            in_scene = points @ scene_from_world[:3, :3].T + scene_from_world[:3, 3]
            distance = float(np.median(room.distance_to_surface(in_scene)))
            assert len(points) > 100 and distance < SURFACE_TOLERANCE_M, f"{label}: median {distance:.3f} m off"

        # robot frames: the world placed where the camera was in odom at the first image (odom = the base then).
        # The node closes loops (loop_closure's default), so it owns map -> odom, on /tf: the identity until a
        # loop, there from the placement on, so that RViz's fixed frame (parent_frame) exists before any loop; the
        # world hangs under map, placed when map was odom.
        placements = robot.transforms("/tf_static", PARENT, WORLD)
        assert len(placements) == 1, "one world, placed once"
        np.testing.assert_allclose(transform_matrix(placements[-1]), BASE_FROM_CAMERA, atol=1e-6)
        parents = {t.child_frame_id: t.header.frame_id for msg in robot.messages("/tf_static") for t in msg.transforms}
        assert ODOM not in parents, "map -> odom changes with every loop: it belongs on /tf"
        map_from_odom = robot.wait_for(lambda: robot.transforms("/tf", PARENT, ODOM), what="map -> odom")[-1]
        np.testing.assert_allclose(transform_matrix(map_from_odom), np.eye(4), atol=1e-12)
        # ~/odometry of the base (odom started at the base: no odometry); odom -> base on /tf with the same pose
        check_base_odometry(scenario, published, np.eye(4))
        for t in published:
            odom_tf = [x for x in robot.transforms("/tf", ODOM, BASE) if stamp_ns(x) == scenario.stamp(t)]
            assert len(odom_tf) == 1, "publish_odom_tf: one odom -> base per window"
            np.testing.assert_allclose(
                transform_matrix(odom_tf[0]),
                pose_matrix(robot.at("/vggt/odometry", scenario.stamp(t)).pose.pose),
                atol=1e-6,
            )

    def bad_depth_between_good_frames(
        self, scenario: Scenario, bad: Callable[[int, int], None], texts: list[str], good: str = "16UC1"
    ) -> None:
        """3 good frames, 7 with ``bad`` depth (a ``before`` hook), 4 good: every window published, each of
        ``texts`` logged once, the scale kept and no jump."""
        for _ in range(3):
            scenario.send(self.depth(scenario, good))
        reference_t = scenario.sent[-1]
        scenario.wait_published(scenario.stamp(reference_t))
        logged_before = [scenario.logged(t) for t in texts]
        times = []
        for hook in [bad] * 7 + [self.depth(scenario, good)] * 4:
            scenario.send(hook)
            times.append(scenario.sent[-1])
        scenario.wait_published(scenario.stamp(times[-1]))
        missing = [
            t
            for t in times
            if scenario.robot.at("/vggt/depth/image", scenario.stamp(t)) is None
            or scenario.camera_pose(scenario.stamp(t)) is None
        ]
        assert missing == [], f"frame sets {missing} were not published"
        assert scenario.node.counts.windows_failed == 0
        for text, before in zip(texts, logged_before):
            assert scenario.logged(text) - before == 1, f"{text!r} logged {scenario.logged(text) - before} times"
        check_scale_kept(scenario, times[:7], reference_t)
        check_metric_without_jumps(scenario, times)

    def test_late_depth_keeps_the_scale(self, scenario):
        late = self.depth(scenario, delay_ns=50_000_000)  # 50 ms: outside the 20 ms slop of both neighbours
        self.bad_depth_between_good_frames(scenario, late, ["metric scale not updated", "no depth image matched"])

    def test_all_zero_depth_keeps_the_scale(self, scenario):
        zeros = self.depth(
            scenario,
            altered=lambda t, metres, stamp: depth_image(np.zeros_like(metres), stamp, self.CAMERA_FRAME, "16UC1"),
        )
        self.bad_depth_between_good_frames(scenario, zeros, ["has no valid reading", "metric scale not updated"])

    def test_all_nan_depth_keeps_the_scale(self, scenario):
        nan = self.depth(
            scenario,
            altered=lambda t, metres, stamp: depth_image(
                np.full_like(metres, np.nan), stamp, self.CAMERA_FRAME, "32FC1"
            ),
        )
        self.bad_depth_between_good_frames(
            scenario, nan, ["has no valid reading", "metric scale not updated"], good="32FC1"
        )

    def test_depth_in_a_colour_encoding_keeps_the_scale(self, scenario):
        # The colour image published on the depth topic, as a wrong remapping would.
        colour = self.depth(
            scenario,
            altered=lambda t, metres, stamp: rgb_image(scenario.frames.sequence.rgb[t], stamp, self.CAMERA_FRAME),
        )
        self.bad_depth_between_good_frames(
            scenario, colour, ["unsupported depth encoding 'rgb8'", "metric scale not updated"]
        )

    def test_depth_of_another_resolution_keeps_the_scale(self, scenario):
        halved = self.depth(
            scenario, altered=lambda t, metres, stamp: depth_image(metres[::2, ::2], stamp, self.CAMERA_FRAME, "16UC1")
        )
        self.bad_depth_between_good_frames(
            scenario, halved, ["depth image is 28x21 (WxH) but the colour image is 56x42"]
        )

    def test_a_reset_starts_the_new_world_where_the_nodes_odometry_left_the_base(self, scenario):
        """publish_odom_tf: odom is the node's, so a new world (here ~/reset) is placed where the base was last
        published (REP 105: odom is continuous) and ~/odometry with odom -> base carries on. The node's own
        odom -> base, which its listener hears, must not be taken for the robot's odometry."""
        robot = scenario.robot
        for _ in range(3):
            scenario.send(self.depth(scenario))
        last_t = scenario.sent[-1]
        scenario.wait_published(scenario.stamp(last_t), ("/vggt/depth/image", "/vggt/odometry"))
        odom_from_last_base = pose_matrix(robot.at("/vggt/odometry", scenario.stamp(last_t)).pose.pose)
        reset = robot.node.create_client(Trigger, "/vggt/reset")
        assert reset.wait_for_service(timeout_sec=10.0)
        answer = reset.call_async(Trigger.Request())
        assert robot.wait_for(answer.done, what="~/reset to answer") and answer.result().success
        times = [scenario.sent[-1] + 1 + k for k in range(6)]
        for _ in times:
            scenario.send(self.depth(scenario))
        scenario.wait_published(scenario.stamp(times[-1]), ("/vggt/depth/image", "/vggt/odometry"))
        placement = world_placement(robot)
        assert stamp_ns(placement) > scenario.stamp(last_t), "the new world was never placed in odom"
        # the new world's first camera where the base was last published, through the mounting
        np.testing.assert_allclose(transform_matrix(placement), odom_from_last_base @ BASE_FROM_CAMERA, atol=1e-6)
        published = [t for t in times if robot.at("/vggt/odometry", scenario.stamp(t))]
        assert published and published == times[times.index(published[0]) :], "~/odometry stopped after the reset"
        # the base at the new world's first frame set is taken to be where it last was: odom carries on from there
        first_base_step = BASE_FROM_CAMERA @ scenario.true_world_from_camera(times[0]) @ np.linalg.inv(BASE_FROM_CAMERA)
        check_base_odometry(scenario, published, odom_from_last_base @ np.linalg.inv(first_base_step))

        def odom_tf(t):
            return [x for x in robot.transforms("/tf", ODOM, BASE) if stamp_ns(x) == scenario.stamp(t)]

        # /tf is another topic than ~/odometry, whose arrival was waited for: it may come a little later.
        robot.wait_for(lambda: all(odom_tf(t) for t in published), what="odom -> base on /tf for every window")
        for t in published:
            assert len(odom_tf(t)) == 1, "publish_odom_tf: one odom -> base per window, after the reset too"

    def test_save_says_where_the_world_sits_among_the_robots_frames(self, scenario):
        """~/save's files are in the world's frame; world_placement.yaml says where it sits in map (the node closes
        loops, so the world hangs under map). The newest camera pose of the saved trajectory, through it, is where
        ~/odometry and the mounting put the camera (after the test above, in the world its reset started, placed where
        the base was last published). Before, nothing saved tied the files to odom or map."""
        robot = scenario.robot
        for _ in range(2):
            scenario.send(self.depth(scenario))
        scenario.wait_published(scenario.stamp(scenario.sent[-1]), ("/vggt/depth/image", "/vggt/odometry"))
        save = robot.node.create_client(Trigger, "/vggt/save")
        assert save.wait_for_service(timeout_sec=10.0)
        answer = save.call_async(Trigger.Request())
        assert robot.wait_for(answer.done, what="~/save to answer") and answer.result().success, answer.result()
        assert "world_placement.yaml" in answer.result().message

        saved = yaml.safe_load((scenario.save_folder / "world_placement.yaml").read_text())
        assert saved["header"]["frame_id"] == PARENT and saved["child_frame_id"] == WORLD
        placement = world_placement(robot)  # on /tf_static: no loop closed, so the placement itself
        stamp = saved["header"]["stamp"]
        assert stamp["sec"] * NANOSECONDS + stamp["nanosec"] == stamp_ns(placement)
        translation, rotation = saved["transform"]["translation"], saved["transform"]["rotation"]
        parent_from_world = np.eye(4)
        parent_from_world[:3, :3] = quaternion_matrix(SimpleNamespace(**rotation))
        parent_from_world[:3, 3] = [translation[k] for k in "xyz"]
        np.testing.assert_allclose(parent_from_world, transform_matrix(placement), atol=1e-9)

        rows = [
            line.split()
            for line in (scenario.save_folder / "trajectory.tum").read_text().splitlines()
            if line[0] != "#"
        ]
        seconds, fraction = rows[-1][0].split(".")
        newest_ns = int(seconds) * NANOSECONDS + int(fraction)
        world_from_camera = np.eye(4)
        world_from_camera[:3, :3] = quaternion_matrix(SimpleNamespace(**dict(zip("xyzw", map(float, rows[-1][4:8])))))
        world_from_camera[:3, 3] = [float(v) for v in rows[-1][1:4]]
        odom_from_base = pose_matrix(robot.at("/vggt/odometry", newest_ns).pose.pose)
        np.testing.assert_allclose(parent_from_world @ world_from_camera, odom_from_base @ BASE_FROM_CAMERA, atol=1e-6)


def test_robot_frames_without_publish_tf_give_odometry_and_no_transforms(tmp_path):
    """publish_tf off: ~/odometry of the base all the same, and nothing of the node's on /tf or /tf_static. ~/save
    still places its files in map: they hold the loop-corrected world (loop closure is on), which is map's whether
    the node publishes map -> odom or not (it was labelled odom, and after a loop the files sat 0.4 m off there)."""
    frames = single_camera("quiet_tf_path", camera_path(np.ones(8, dtype=bool)), IMAGE_HW)
    parameters = {
        "metric_scale_source": "depth",
        "depth_topics": ["/robot/camera/aligned_depth"],
        "odom_frame": ODOM,
        "robot_base_frame": BASE,
        "publish_tf": False,
        "save_directory": str(tmp_path),
    }
    scenario = start(parameters, frames, ["/robot/camera/color"], ["front_camera_optical"])
    try:
        robot, sensor = scenario.robot, FakeDepthSensorForTests(frames)
        robot.publish_static(BASE, "front_camera_optical", BASE_FROM_CAMERA)

        def depth(t: int, stamp: int) -> None:
            reading = sensor.reading(int(frames.indices[t, 0]))
            robot.publish_depth(
                "/robot/camera/aligned_depth", depth_image(reading, stamp, "front_camera_optical", "16UC1")
            )

        times = scenario.send_until(len(frames), depth)
        robot.wait_for(lambda: robot.at("/vggt/odometry", scenario.stamp(times[-1])), what="~/odometry")
        assert scenario.node.counts.windows_failed == 0
        published = [t for t in times if robot.at("/vggt/odometry", scenario.stamp(t))]
        assert published == times[times.index(published[0]) :] and published[0] <= times[1]
        for t in published:
            pose = pose_matrix(robot.at("/vggt/odometry", scenario.stamp(t)).pose.pose)
            truth = scenario.true_base_in_odom(t, np.eye(4))
            assert np.linalg.norm(pose[:3, 3] - truth[:3, 3]) < POSITION_TOLERANCE_M
        node_frames = {WORLD, NODE_CAMERA}
        sent = [
            (t.header.frame_id, t.child_frame_id)
            for topic in ("/tf", "/tf_static")
            for msg in robot.messages(topic)
            for t in msg.transforms
        ]
        assert not [pair for pair in sent if node_frames & set(pair)], f"the node published transforms: {sent}"
        save = robot.node.create_client(Trigger, "/vggt/save")
        assert save.wait_for_service(timeout_sec=10.0)
        answer = save.call_async(Trigger.Request())
        assert robot.wait_for(answer.done, what="~/save to answer") and answer.result().success, answer.result()
        placement = yaml.safe_load((tmp_path / "world_placement.yaml").read_text())
        assert placement["header"]["frame_id"] == PARENT and placement["child_frame_id"] == WORLD
    finally:
        scenario.robot.close()
        scenario.running.close()


# -------------------------------------------------------------------------------------------------- odometry
class TestOdometrySource:
    """metric_scale_source odometry, one camera on a robot with wheel odometry (publish_odom_tf off)."""

    IMAGE_TOPIC, CAMERA_FRAME = "/robot/camera/color", "front_camera_optical"
    # still 0-3, moving 4-11, still 12-19, moving 20-39 with the odometry jumping 2 m at 28
    MOVING = np.array([False] * 4 + [True] * 8 + [False] * 8 + [True] * 20)
    # 10 Hz, except 4 s between the first four frame sets: the robot stands still for 12 s at start-up, longer than
    # TF keeps odometry (10 s), so the odometry at the first image has left the buffer when the robot starts moving.
    PERIODS_NS = np.array([4_000_000_000] * 3 + [PERIOD_NS] * 36)
    JUMP_AT, JUMP_M = 28, (2.0, 0.0, 0.0)
    # The robot had driven before the node started: odom is not where the base is at the first image.
    ODOM_FROM_FIRST_BASE = yaw_pose(30.0, (1.5, -0.7, 0.0))

    @pytest.fixture(scope="class")
    @classmethod
    def scenario(cls):
        frames = single_camera("odometry_path", camera_path(cls.MOVING), IMAGE_HW)
        exact = OdometryConfig(
            scale_error=0.0, translation_walk_m=0.0, heading_walk_rad=0.0, jump_at=cls.JUMP_AT, jump_m=cls.JUMP_M
        )
        odometry = FakeOdometryForTests(frames, TransformBuffer(), exact)
        parameters = {"metric_scale_source": "odometry", "odom_frame": ODOM, "robot_base_frame": BASE}
        scenario = start(parameters, frames, [cls.IMAGE_TOPIC], [cls.CAMERA_FRAME], cls.PERIODS_NS)
        scenario.odom_from_base = cls.ODOM_FROM_FIRST_BASE @ odometry.odom_from_base
        scenario.robot.publish_static(BASE, cls.CAMERA_FRAME, BASE_FROM_CAMERA)
        yield scenario
        scenario.robot.close()
        scenario.running.close()

    @staticmethod
    def odometry(scenario: Scenario) -> Callable[[int, int], None]:
        """A ``before`` hook publishing odom -> base of each frame set on /tf, as the robot's odometry does."""
        return lambda t, stamp: scenario.robot.publish_tf(ODOM, BASE, stamp, scenario.odom_from_base[t])

    def check_robot_outputs(self, scenario: Scenario, times: list[int]) -> None:
        """~/odometry of ``times`` follows the base, never the odometry's jump; with publish_odom_tf off, each
        stamp's odom -> base on /tf is the robot's own, none is the node's."""
        check_base_odometry(scenario, times, self.ODOM_FROM_FIRST_BASE)
        odometry_stamps = [stamp_ns(x) for x in scenario.robot.transforms("/tf", ODOM, BASE)]
        for t in times:
            assert odometry_stamps.count(scenario.stamp(t)) == 1

    def test_a_still_robot_waits_then_moving_makes_it_metric_and_places_the_world_in_odom(self, scenario):
        robot = scenario.robot
        still = scenario.send_until(4, self.odometry(scenario))
        moving = scenario.send_until(12, self.odometry(scenario))
        scenario.wait_published(scenario.stamp(moving[-1]), ("/vggt/depth/image", "/vggt/odometry"))
        # once per kind: the first window's single frame (no displacement at all), then standing still
        waiting = robot.logs(WARN, "waiting for the first metric scale from the odometry source")
        assert len(waiting) == 2 and "the camera moved at most 0.000 m" in waiting[1], waiting
        assert all(robot.at("/vggt/depth/image", scenario.stamp(t)) is None for t in still), "published while still"
        published = [t for t in moving if robot.at("/vggt/depth/image", scenario.stamp(t))]
        # metres per window unit need a displacement of odometry_min_translation (0.1 m): 3 steps of 4.1 cm
        assert published and published[0] <= moving[3] and published == moving[moving.index(published[0]) :]
        # placed at start-up although the odometry at the first image is no longer in TF's buffer by now; the node
        # closes loops (loop_closure's default), so the world hangs under map, placed when map was odom
        placements = robot.transforms("/tf_static", PARENT, WORLD)
        assert len(placements) == 1 and not robot.transforms("/tf_static", ODOM, WORLD)
        np.testing.assert_allclose(
            transform_matrix(placements[0]), self.ODOM_FROM_FIRST_BASE @ BASE_FROM_CAMERA, atol=1e-6
        )
        assert not robot.transforms("/tf_static", PARENT, ODOM), "map -> odom changes: it belongs on /tf"
        check_base_in_map(scenario, published[-1], self.ODOM_FROM_FIRST_BASE)
        check_metric_without_jumps(scenario, published[1:], ODOMETRY_RATIO_TOLERANCE)
        self.check_robot_outputs(scenario, published)

    def test_standing_still_keeps_the_scale(self, scenario):
        scenario.send_until(12, self.odometry(scenario))
        reference_t = 11
        logged_before = scenario.logged("(odometry source: the camera moved at most")
        times = scenario.send_until(24, self.odometry(scenario))
        scenario.wait_published(scenario.stamp(times[-1]), ("/vggt/depth/image", "/vggt/odometry"))
        assert scenario.logged("(odometry source: the camera moved at most") - logged_before == 1
        assert scenario.node.counts.windows_failed == 0
        check_scale_kept(scenario, times[:8], reference_t)
        check_metric_without_jumps(scenario, times, ODOMETRY_RATIO_TOLERANCE)
        self.check_robot_outputs(scenario, times)

    def test_an_odometry_jump_keeps_the_scale_and_publishes_no_jump(self, scenario):
        scenario.send_until(self.JUMP_AT, self.odometry(scenario))
        logged_before = scenario.logged("(odometry source: the displacements disagree")
        times = scenario.send_until(len(self.MOVING), self.odometry(scenario))
        scenario.wait_published(scenario.stamp(times[-1]), ("/vggt/depth/image", "/vggt/odometry"))
        assert scenario.logged("(odometry source: the displacements disagree") - logged_before == 1
        assert scenario.node.counts.windows_failed == 0
        # the windows holding frames from both sides of the jump
        check_scale_kept(scenario, times[:WINDOW_SIZE], self.JUMP_AT - 1)
        check_metric_without_jumps(scenario, times, ODOMETRY_RATIO_TOLERANCE)
        self.check_robot_outputs(scenario, times)
        # The robot's odom jumped 2 m and the node's estimate did not: map -> odom takes the jump up, so the base
        # in map, through the robot's own odometry, is where it is (map -> odom alone was off by the jump).
        check_base_in_map(scenario, times[-1], self.ODOM_FROM_FIRST_BASE)


# ------------------------------------------------------------------------------------------------------- rig
class TestRigSource:
    """metric_scale_source rig, two cameras whose calibration comes from /tf_static (no rig_transforms)."""

    TOPICS = ("/robot/left/color", "/robot/right/color")
    CAMERA_FRAMES = ("rig_left_optical", "rig_right_optical")
    BASELINE_M = 0.3
    FRAMES = 12

    @pytest.fixture(scope="class")
    @classmethod
    def scenario(cls):
        frames = render_rig("rig_path", camera_path(np.ones(cls.FRAMES, dtype=bool)), IMAGE_HW, cls.BASELINE_M)
        scenario = start({"metric_scale_source": "rig"}, frames, cls.TOPICS, cls.CAMERA_FRAMES)
        yield scenario
        scenario.robot.close()
        scenario.running.close()

    def test_a_rig_missing_from_tf_static_waits_then_its_transform_makes_it_metric(self, scenario):
        robot = scenario.robot
        scenario.send_until(WINDOW_SIZE + 1)
        scenario.settle()
        waiting = "waiting for the first metric scale from the rig source"
        robot.wait_for(lambda: scenario.logged(waiting), what="the waiting warning")
        missing = f"no transform from '{self.CAMERA_FRAMES[0]}' to '{self.CAMERA_FRAMES[1]}'"
        assert scenario.logged(waiting) == 1 and missing in robot.logs(WARN, waiting)[0]
        assert scenario.node.counts.windows_published == 0
        assert robot.messages("/vggt/camera0/depth/image") == [] and robot.messages("/vggt/points") == []

        robot.publish_static(self.CAMERA_FRAMES[0], self.CAMERA_FRAMES[1], rig_camera1_pose(self.BASELINE_M))
        times = scenario.send_until(self.FRAMES)
        stamp = scenario.stamp(times[-1])
        scenario.wait_published(stamp, ("/vggt/camera0/depth/image", "/vggt/camera1/depth/image", "/vggt/points"))
        published = [t for t in times if robot.at("/vggt/camera0/depth/image", scenario.stamp(t))]
        assert published[0] <= times[1] and published == times[times.index(published[0]) :], (
            "the first window after the rig reached /tf_static makes it metric, and every one from then on"
        )
        for t in published:
            for camera in (0, 1):
                ratio = scenario.depth_ratio(t, f"/vggt/camera{camera}/", camera)
                assert abs(ratio - 1.0) < DEPTH_RATIO_TOLERANCE, f"camera {camera} at {t}: depth ratio {ratio:.4f}"
        left, right = scenario.camera_pose(stamp, 0), scenario.camera_pose(stamp, 1)
        baseline = np.linalg.inv(left) @ right
        np.testing.assert_allclose(baseline[:3, 3], (self.BASELINE_M, 0.0, 0.0), atol=0.01)
