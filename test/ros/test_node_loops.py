# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Issue 16 at the node: loop closure end to end over real rclpy (with and without REP 105 robot frames, and what a
/tf_static listener that joins after the loop gets), and its start-up requirement (GTSAM).

The network is `LoopPassPipelineForTests` (test/support/places.py) over `DriftingVGGTForTests`
(test/support/loop_synthetic.py): the synthetic room's ground truth re-expressed per window as VGGT would, with a
drift the way VGGT drifts (a scale and yaw bias per window position), so the chained world bends over a lap. The
camera goes once around the loop path and comes back along its start (`revisit_sequence`). The fake's "token" is a
frame index, so the place descriptor is the pose test double `PosePlaceDescriptorForTests`, installed on the node's
session; the verification (the loop pass, one network call of 4 frames), the pose graph (GTSAM) and every output
are the node's own. A robot of test doubles (`support.ros_metric.RobotForTests`) publishes the rendered images and
records what the node publishes, read back from the messages and compared with the ground truth.

Each frame set is a keyframe and gives one window; the next is sent only once the node has started the window
before (so every window, and the loop pass after it, runs; none is dropped). Sending stops as soon as a loop is
accepted. DDS stays on this machine: the tests fail outside a loopback-only network namespace (tools/run_tests.sh).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from types import SimpleNamespace
from typing import Optional

import numpy as np
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from evo.tools import file_interface
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from nav_msgs.msg import Path
from sensor_msgs.msg import PointCloud2
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage

import vggt_ros.live.startup as startup_module
from conftest import TINY
from support.loop_synthetic import DriftingVGGTForTests
from support.netns import loopback_rclpy
from support.node_process import node_command, start_then_interrupt
from support.places import LoopPassPipelineForTests, PosePlaceDescriptorForTests, revisit_sequence
from support.ros_metric import (
    WARN,
    RobotForTests,
    RunningNode,
    cloud_xyz,
    pose_matrix,
    rgb_image,
    rotation_angle_deg,
    stamp_ns,
    transform_matrix,
)
from support.rotations import quaternion_matrix
from support.services import call_answered
from vggt_ros.ros import messages
from vggt_ros.world import pose_graph
from vggt_ros.world.alignment import weighted_umeyama

pytestmark = [pytest.mark.ros, pytest.mark.timeout(180)]

LAP, AGAIN = 60, 14  # frames once around, then along the start again
IMAGE_HW = (42, 56)
FIRST_STAMP_NS = 1_700_000_000 * 1_000_000_000
PERIOD_NS = 100_000_000  # 10 Hz: the lap takes 6 s
WORLD, PARENT, NODE_CAMERA = "vggt_world", "map", "camera0_optical"
PARAMETERS = {
    "image_topics": ["/cam/image"],
    "image_size": IMAGE_HW[1],
    "device": "cpu",
    "precision": "fp32",
    "window_size": 8,
    "map_publish_period_s": 0.1,
    "loop_min_age_s": 3.0,  # the revisit comes 6 s after the start
    "loop_min_score": 0.95,
}
# REP 105 robot frames: the world placed where odom had the first camera (docs/node.md, "Robot frames").
ODOM, BASE = "odom", "base_link"
ROBOT_PARAMETERS = {**PARAMETERS, "odom_frame": ODOM, "robot_base_frame": BASE}
# The camera's mounting: optical z forward along base x, optical x along -base y, optical y along -base z (the
# columns are where the optical axes point in the base frame), 0.2 m ahead of and 0.5 m above the base.
BASE_FROM_CAMERA = np.eye(4)
BASE_FROM_CAMERA[:3, :3] = np.column_stack([(0, -1, 0), (0, 0, -1), (1, 0, 0)])
BASE_FROM_CAMERA[:3, 3] = (0.2, 0.0, 0.5)
WAIT_S = 30.0


class FinishedWindows:
    """Counts the windows the node's worker has finished (inference, publishing, the loop pass and the pose graph):
    it asks for the next window (`LiveReconstruction.next_window`) only once the one before is done."""

    def __init__(self, live) -> None:
        self.count = 0
        self._condition = threading.Condition()
        take = live.next_window  # the worker is already waiting in the first call: the patch counts from there

        def next_window():
            with self._condition:
                self.count += 1
                self._condition.notify_all()
            return take()

        live.next_window = next_window

    def wait(self, count: int) -> None:
        with self._condition:
            if not self._condition.wait_for(lambda: self.count >= count, timeout=WAIT_S):
                raise AssertionError(f"the node finished {self.count} windows in {WAIT_S} s, expected {count}")


@pytest.fixture(scope="module", autouse=True)
def ros():
    """rclpy for the whole module, only where DDS cannot leave the machine (a loud failure, never a skip)."""
    with loopback_rclpy(__file__):
        yield


@pytest.fixture(scope="module")
def sequence():
    return revisit_sequence(LAP, AGAIN, IMAGE_HW)


class LoopRun:
    """The node (with ``parameters``) and its robot, driven along the revisit frame set by frame set (see the module
    docstring)."""

    def __init__(self, sequence, parameters: dict = PARAMETERS, odom_from_base: Optional[np.ndarray] = None) -> None:
        """``odom_from_base`` ``(T, 4, 4)``: the robot's own odometry of each frame set, published on /tf before
        its image (None: the robot has none)."""
        self.odom_from_base = odom_from_base
        oracle = DriftingVGGTForTests(sequence, seed=0, scale_bias=0.002, yaw_bias_deg=0.4)
        self.pipeline = LoopPassPipelineForTests(oracle)
        self.running = RunningNode(parameters, self.pipeline)
        self.live = self.running.node._live
        self.session = self.live.session
        self.session.loop_verifier.describe = PosePlaceDescriptorForTests(sequence)
        self.finished = FinishedWindows(self.live)
        outputs = {"/vggt/path": Path, "/vggt/map": PointCloud2, "/diagnostics": DiagnosticArray}
        self.robot = RobotForTests(parameters["image_topics"], outputs)
        self.sequence = sequence
        self.stamps = FIRST_STAMP_NS + PERIOD_NS * np.arange(len(sequence.rgb), dtype=np.int64)
        self.index_of_stamp = {int(s): i for i, s in enumerate(self.stamps)}
        self.loop_t = -1  # the frame set whose window's loop pass closed the first loop (-1: none yet)
        self.sent = 0
        try:
            self.robot.wait_connected()
        except BaseException:
            self.close()
            raise

    def send_until(self, end: int, stop_at_loop: bool = False) -> None:
        """Send frame sets up to ``end`` (exclusive), each once the window before is done (loop pass included);
        ``stop_at_loop``: stop after the window that closed the first loop."""
        counters = self.live.counters
        while self.sent < end:
            t = self.sent
            if self.odom_from_base is not None:
                self.robot.publish_tf(ODOM, BASE, self.stamp(t), self.odom_from_base[t])
            self.robot.publish_image("/cam/image", rgb_image(self.sequence.rgb[t], self.stamp(t), "camera_for_tests"))
            self.robot.wait_for(lambda: counters.keyframes > t, what=f"the node to take frame set {t}")
            self.finished.wait(counters.windows_emitted)
            self.sent = t + 1
            if self.loop_t < 0 and self.session.world.loop_counters.accepted:
                self.loop_t = t
                if stop_at_loop:
                    return

    def stamp(self, t: int) -> int:
        return int(self.stamps[t])

    def close(self) -> None:
        self.robot.close()
        self.running.close()


def path_poses(msg: Path) -> dict[int, np.ndarray]:
    """stamp ns -> ``(4, 4)`` pose of each pose of a nav_msgs/Path."""
    return {stamp_ns(p): pose_matrix(p.pose) for p in msg.poses}


def wait_for_the_loop_outputs(robot: RobotForTests, loop_stamp: int) -> None:
    """Until /tf_static and the second ~/path (the corrected one) stamped at the loop's window have arrived."""
    robot.wait_for(
        lambda: (
            stamp_ns(robot.transforms("/tf_static", PARENT, WORLD)[-1]) == loop_stamp
            and sum(stamp_ns(m) == loop_stamp for m in robot.messages("/vggt/path")) >= 2
        ),
        what="/tf_static and ~/path after the loop",
    )


def under_parent(robot: RobotForTests, path: Path) -> dict[int, np.ndarray]:
    """stamp ns -> ``(4, 4)`` pose under parent_frame of each pose of ``path`` (in world_frame), through the
    parent_frame -> world_frame transform on /tf_static when ``path`` arrived (the newest one)."""
    parent_from_world = transform_matrix(robot.transforms("/tf_static", PARENT, WORLD)[-1])
    return {stamp: parent_from_world @ pose for stamp, pose in path_poses(path).items()}


def sim3_to_truth(poses: dict[int, np.ndarray], run: LoopRun, sequence) -> tuple[float, tuple]:
    """RMS camera-centre error (% of the path length) of ``poses`` after one Sim(3) fit to the truth, and the fit."""
    stamps = sorted(poses)
    estimated = np.stack([poses[s][:3, 3] for s in stamps])
    truth = sequence.centres[[run.index_of_stamp[s] for s in stamps]]
    fit = weighted_umeyama(estimated, truth)
    scale, rotation, translation = fit
    errors = np.linalg.norm(scale * estimated @ rotation.T + translation - truth, axis=1)
    return 100.0 * float(np.sqrt(np.mean(errors**2))) / sequence.path_length, fit


def map_error_pct(cloud: PointCloud2, fit: tuple, sequence) -> float:
    """Median distance of a ~/map's points to the room's surfaces after the path's Sim(3) fit, % of the room."""
    scale, rotation, translation = fit
    points = scale * cloud_xyz(cloud) @ rotation.T + translation
    return 100.0 * float(np.median(sequence.room.distance_to_surface(points))) / sequence.room.size


def loop_component(array: DiagnosticArray):
    return next((s for s in array.status if s.name.endswith(": loop closure")), None)


@pytest.mark.slow  # about 10 s on a 2-core CPU
def test_a_revisit_closes_a_loop_and_moves_the_world_the_path_and_the_map(sequence, tmp_path):
    run = LoopRun(sequence, {**PARAMETERS, "save_directory": str(tmp_path)})
    robot, session = run.robot, run.session
    try:
        run.send_until(len(sequence.rgb), stop_at_loop=True)
        # The path is a closed loop: its end comes back to its start.
        assert run.loop_t >= LAP - 5, f"no loop accepted after {run.sent} frame sets: {session.loop_verifier.counters}"
        loop_stamp = run.stamp(run.loop_t)
        accepted = session.world.loop_counters.accepted
        assert robot.wait_for(lambda: robot.logs(20, "loop closed: the world moved by"), what="the loop's log line")

        # /tf_static: parent_frame -> world_frame, first the REP 103 rotation alone, then moved by the loop.
        wait_for_the_loop_outputs(robot, loop_stamp)
        statics = robot.transforms("/tf_static", PARENT, WORLD)
        first, last = transform_matrix(statics[0]), transform_matrix(statics[-1])
        rep103 = np.eye(4)
        rep103[:3, :3] = messages.PARENT_FROM_OPTICAL_WORLD
        np.testing.assert_allclose(first, rep103, atol=1e-9)
        assert stamp_ns(statics[-1]) == loop_stamp
        moved = np.linalg.norm(last[:3, 3]) + rotation_angle_deg(last[:3, :3].T @ rep103[:3, :3])
        assert moved > 0.05, f"the loop did not move {PARENT} -> {WORLD}: {last}"

        # ~/path at the loop's window: first the chained poses (with the window), then the corrected ones (the loop).
        at_loop = [m for m in robot.messages("/vggt/path") if stamp_ns(m) == loop_stamp]
        assert len(at_loop) == 2, f"{len(at_loop)} paths stamped at the loop's window"
        chained, corrected = path_poses(at_loop[0]), path_poses(at_loop[1])
        assert chained.keys() == corrected.keys() and max(chained) == loop_stamp
        # Under world_frame the newest keyframe stays where the chained world has it (its camera TF: no jump) ...
        camera_tf = [t for t in robot.transforms("/tf", WORLD, NODE_CAMERA) if stamp_ns(t) == loop_stamp]
        np.testing.assert_allclose(corrected[loop_stamp], transform_matrix(camera_tf[-1]), atol=1e-6)
        np.testing.assert_allclose(corrected[loop_stamp], chained[loop_stamp], atol=1e-6)
        # ... and under parent_frame it is the corrected pose: the new transform times it.
        ate_chained, fit_chained = sim3_to_truth(chained, run, sequence)
        ate_corrected, fit_corrected = sim3_to_truth(corrected, run, sequence)
        print(f"ATE chained {ate_chained:.3f} % -> corrected {ate_corrected:.3f} % of the path")
        assert ate_corrected < 0.5 * ate_chained, (ate_chained, ate_corrected)

        # ~/map: republished after the loop, in the corrected world.
        time.sleep(10 * PARAMETERS["map_publish_period_s"])  # the map timer has sent the map as the loop left it
        after = robot.messages("/vggt/map")[-1]
        assert stamp_ns(after) == loop_stamp
        before = [m for m in robot.messages("/vggt/map") if stamp_ns(m) < loop_stamp][-1]
        error_before = map_error_pct(before, fit_chained, sequence)
        error_after = map_error_pct(after, fit_corrected, sequence)
        print(f"map error chained {error_before:.3f} % -> corrected {error_after:.3f} % of the room")
        assert error_after < 0.7 * error_before, (error_before, error_after)

        # ~/save: the files hold the corrected world, which world_placement.yaml places under parent_frame, so the
        # newest saved camera pose through it is where /tf has that camera now (parent_frame -> world_frame as the
        # loop moved it, then the camera's chained pose), as evo reads the trajectory.
        save = robot.node.create_client(Trigger, "/vggt/save")
        assert save.wait_for_service(timeout_sec=WAIT_S)
        answer = save.call_async(Trigger.Request())
        assert robot.wait_for(answer.done, what="~/save to answer") and answer.result().success, answer.result()
        placement = yaml.safe_load((tmp_path / "world_placement.yaml").read_text())
        assert placement["header"]["frame_id"] == PARENT and placement["child_frame_id"] == WORLD
        parent_from_files = np.eye(4)
        parent_from_files[:3, :3] = quaternion_matrix(SimpleNamespace(**placement["transform"]["rotation"]))
        parent_from_files[:3, 3] = [placement["transform"]["translation"][k] for k in "xyz"]
        trajectory = file_interface.read_tum_trajectory_file(str(tmp_path / "trajectory.tum"))
        camera_tfs = robot.transforms("/tf", WORLD, NODE_CAMERA)
        newest_tf = min(camera_tfs, key=lambda t: abs(stamp_ns(t) * 1e-9 - trajectory.timestamps[-1]))
        assert abs(stamp_ns(newest_tf) * 1e-9 - trajectory.timestamps[-1]) < 1e-6
        parent_from_world = transform_matrix(robot.transforms("/tf_static", PARENT, WORLD)[-1])
        np.testing.assert_allclose(
            parent_from_files @ trajectory.poses_se3[-1], parent_from_world @ transform_matrix(newest_tf), atol=1e-5
        )
        assert not np.allclose(parent_from_world, parent_from_files, atol=1e-3), "the loop moved the live world"

        # /diagnostics: the loop closure component counts it.
        def counted():
            arrays = robot.messages("/diagnostics")
            component = loop_component(arrays[-1]) if arrays else None
            values = {v.key: v.value for v in component.values} if component is not None else {}
            return values if values.get("loops accepted") == str(accepted) else None

        values = robot.wait_for(counted, timeout_s=5.0, what="/diagnostics to count the loop")
        assert int(values["loop candidates"]) >= accepted >= 1

        # ~/reset: the new world has no loop, so parent_frame -> world_frame is the REP 103 rotation alone again.
        reset = robot.node.create_client(Trigger, "/vggt/reset")
        assert reset.wait_for_service(timeout_sec=WAIT_S)
        answer = reset.call_async(Trigger.Request())
        assert robot.wait_for(answer.done, what="~/reset to answer") and answer.result().success
        before_reset = run.stamp(run.sent - 1)
        run.send_until(run.sent + 3)
        robot.wait_for(
            lambda: stamp_ns(robot.transforms("/tf_static", PARENT, WORLD)[-1]) > before_reset,
            what="/tf_static after the reset",
        )
        np.testing.assert_allclose(
            transform_matrix(robot.transforms("/tf_static", PARENT, WORLD)[-1]), rep103, atol=1e-9
        )
    finally:
        run.close()


def change_state(robot: RobotForTests, transition_id: int) -> int:
    """Ask the node's lifecycle for a transition over its change_state service; its state after it (read back: a
    request sent again is refused in the new state)."""

    def call(service_type, name, request):
        return call_answered(robot.node.create_client(service_type, name), request, robot.wait_for, WAIT_S, name)

    call(ChangeState, "/vggt/change_state", ChangeState.Request(transition=Transition(id=transition_id)))
    return call(GetState, "/vggt/get_state", GetState.Request()).current_state.id


def late_static_message(robot: RobotForTests, key: str):
    """What a /tf_static listener that joins now (recording under ``key``) gets from the node: the first message
    with a transform of the node's (the robot's own mounting comes from its own publisher, as a message of its
    own)."""
    robot.listen_late("/tf_static", TFMessage, key)

    def of_the_node():
        messages = robot.messages(key)
        return next((m for m in messages if any(t.child_frame_id != "camera_for_tests" for t in m.transforms)), None)

    return robot.wait_for(of_the_node, what=f"the node's /tf_static ({key})")


def new_world_static_tree(robot: RobotForTests, first_stamp: int, key: str) -> dict:
    """Once the world whose first image is stamped ``first_stamp`` hangs under parent_frame: what a /tf_static
    listener that joins now gets from the node, by (parent, child) frame."""
    robot.wait_for(
        lambda: any(stamp_ns(t) == first_stamp for t in robot.transforms("/tf_static", PARENT, WORLD)),
        what="the new world's placement under parent_frame",
    )
    return {(t.header.frame_id, t.child_frame_id): t for t in late_static_message(robot, key).transforms}


@pytest.mark.slow  # about 5 s on a 2-core CPU
def test_with_robot_frames_a_listener_that_joins_after_the_loop_gets_the_whole_tree(sequence):
    """/tf_static keeps one message for late listeners (tf2_ros' QoS): a listener that joins after the loop (RViz, a
    tf2 buffer started then) gets the world under map, moved by the loop, and map -> odom on /tf agrees with it. The
    robot has no odometry on /tf, so odom is at the base and the world, the first camera, sits at the mounting in
    odom. After a lifecycle cleanup the next world starts with no loop: map -> odom is the identity again, not the
    old one."""
    run = LoopRun(sequence, ROBOT_PARAMETERS)
    robot, session = run.robot, run.session
    try:
        robot.publish_static(BASE, "camera_for_tests", BASE_FROM_CAMERA)  # the images' frame on the robot
        run.send_until(len(sequence.rgb), stop_at_loop=True)
        assert run.loop_t >= 0, f"no loop accepted after {run.sent} frame sets: {session.loop_verifier.counters}"
        loop_stamp = run.stamp(run.loop_t)
        wait_for_the_loop_outputs(robot, loop_stamp)

        message = late_static_message(robot, "late /tf_static")
        transforms = {(t.header.frame_id, t.child_frame_id): t for t in message.transforms}
        assert set(transforms) == {(PARENT, WORLD)}, sorted(transforms)
        map_from_world = transform_matrix(transforms[PARENT, WORLD])
        assert stamp_ns(transforms[PARENT, WORLD]) == loop_stamp
        np.testing.assert_allclose(map_from_world, BASE_FROM_CAMERA @ session.world_correction(), atol=1e-6)

        # map -> odom -> (the placement) the world: where map -> world has it.
        def agreeing():
            sent = robot.transforms("/tf", PARENT, ODOM)
            map_from_odom = transform_matrix(sent[-1]) if sent else None
            agrees = map_from_odom is not None and np.allclose(
                map_from_odom @ BASE_FROM_CAMERA, map_from_world, atol=1e-6
            )
            return [map_from_odom] if agrees else None

        (map_from_odom,) = robot.wait_for(agreeing, what="map -> odom to agree with map -> world")
        assert np.linalg.norm(map_from_odom[:3, 3]) > 0.01, "the loop did not move map -> odom"

        # Cleanup, then a new configure (the same test double as the network) and the next image: a new world.
        camera = robot.image_publishers["/cam/image"]
        assert change_state(robot, Transition.TRANSITION_DEACTIVATE) == State.PRIMARY_STATE_INACTIVE
        robot.wait_for(lambda: camera.get_subscription_count() == 0, what="the node to stop listening")
        assert change_state(robot, Transition.TRANSITION_CLEANUP) == State.PRIMARY_STATE_UNCONFIGURED
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(startup_module, "create_pipeline", lambda config: run.pipeline)
            assert change_state(robot, Transition.TRANSITION_CONFIGURE) == State.PRIMARY_STATE_INACTIVE
        run.running.node._live.session.loop_verifier.describe = PosePlaceDescriptorForTests(sequence)
        assert change_state(robot, Transition.TRANSITION_ACTIVATE) == State.PRIMARY_STATE_ACTIVE
        robot.wait_connected()
        first = run.stamp(run.sent)
        robot.publish_image("/cam/image", rgb_image(sequence.rgb[run.sent], first, "camera_for_tests"))
        transforms = new_world_static_tree(robot, first, "late /tf_static, new world")
        assert set(transforms) == {(PARENT, WORLD)}, sorted(transforms)
        assert stamp_ns(transforms[PARENT, WORLD]) == first, "the old world's transform sent again"
        np.testing.assert_allclose(transform_matrix(transforms[PARENT, WORLD]), BASE_FROM_CAMERA, atol=1e-9)
        robot.wait_for(
            lambda: np.allclose(transform_matrix(robot.transforms("/tf", PARENT, ODOM)[-1]), np.eye(4), atol=1e-12),
            what="map -> odom back to the identity",
        )
    finally:
        run.close()


def wheel_odometry(sequence) -> np.ndarray:
    """``(T, 4, 4)`` odom_from_base of exact wheels: the true camera poses carried to the base, odom at the base
    of the first frame set."""
    room_from_base = np.linalg.inv(as_4x4(sequence.extrinsics)) @ np.linalg.inv(BASE_FROM_CAMERA)
    return np.linalg.inv(room_from_base[0]) @ room_from_base


def as_4x4(rows: np.ndarray) -> np.ndarray:
    """``(..., 3, 4)`` -> ``(..., 4, 4)``."""
    square = np.zeros(rows.shape[:-2] + (4, 4))
    square[..., :3, :] = rows
    square[..., 3, 3] = 1.0
    return square


@pytest.mark.slow  # about 10 s on a 2-core CPU
def test_with_the_robots_own_odometry_map_to_odom_puts_the_base_where_the_corrected_world_has_it(sequence):
    """REP 105 on a robot with its own wheel odometry (here exact) and the odometry scale source: the node's chained
    world drifts over the lap, the loop corrects it. map -> odom (on /tf: it changes with every window) times the
    wheels' odom -> base must put the base where the corrected world has it, which the world hangs under map for.
    The loops' correction alone as map -> odom (what the node published before) left the base off by the difference
    between the wheels and the node's chained estimate: about a metre after this lap."""
    wheels = wheel_odometry(sequence)
    parameters = {**ROBOT_PARAMETERS, "metric_scale_source": "odometry"}
    run = LoopRun(sequence, parameters, wheels)
    robot, session = run.robot, run.session
    try:
        robot.publish_static(BASE, "camera_for_tests", BASE_FROM_CAMERA)
        run.send_until(len(sequence.rgb), stop_at_loop=True)
        assert run.loop_t >= LAP - 5, f"no loop accepted after {run.sent} frame sets: {session.loop_verifier.counters}"
        loop_stamp = run.stamp(run.loop_t)
        wait_for_the_loop_outputs(robot, loop_stamp)
        assert not robot.transforms("/tf_static", ODOM, WORLD), "the world must hang under map, not under odom"
        # map -> odom from the world's first image on (the timer's are stamped ahead of the clock): map was odom then
        at_first = [t for t in robot.transforms("/tf", PARENT, ODOM) if stamp_ns(t) == run.stamp(0)]
        assert len(at_first) == 1, "no map -> odom at the world's first image"
        np.testing.assert_allclose(transform_matrix(at_first[0]), np.eye(4), atol=1e-12)
        map_from_world = transform_matrix(robot.transforms("/tf_static", PARENT, WORLD)[-1])
        camera = [t for t in robot.transforms("/tf", WORLD, NODE_CAMERA) if stamp_ns(t) == loop_stamp][-1]
        corrected_base = map_from_world @ transform_matrix(camera) @ np.linalg.inv(BASE_FROM_CAMERA)

        def base_through_odom():
            sent = robot.transforms("/tf", PARENT, ODOM)
            base = transform_matrix(sent[-1]) @ wheels[run.loop_t] if sent else None
            return [base] if base is not None and np.allclose(base, corrected_base, atol=1e-6) else None

        (base,) = robot.wait_for(base_through_odom, what="map -> odom to put the base where the loop has it")
        # Exact wheels: the true base in map (map was odom at the placement) is the wheels' own pose.
        error_m = np.linalg.norm(base[:3, 3] - wheels[run.loop_t][:3, 3])
        placement = map_from_world @ np.linalg.inv(session.world_correction())
        correction_alone = placement @ session.world_correction() @ np.linalg.inv(placement)
        before_m = np.linalg.norm((correction_alone @ wheels[run.loop_t])[:3, 3] - wheels[run.loop_t][:3, 3])
        print(f"base in map {error_m:.3f} m from the truth (the correction alone as map -> odom: {before_m:.3f} m)")
        assert error_m < 0.1 and error_m < 0.2 * before_m, (error_m, before_m)
    finally:
        run.close()


def test_whoever_odometry_is_odom_map_to_odom_is_on_tf_only(sequence):
    """A robot whose odometry starts after the node: the first world takes the node's odometry (odom at the base),
    the next one (after ~/reset) the robot's. Both hang the world under map and send map -> odom on /tf only: a
    static map -> odom of the first world, next to the second's on /tf, would give odom two values."""
    run = LoopRun(sequence, ROBOT_PARAMETERS)
    robot = run.robot
    try:
        robot.publish_static(BASE, "camera_for_tests", BASE_FROM_CAMERA)
        run.send_until(3)
        robot.wait_for(lambda: robot.transforms("/tf", PARENT, ODOM), what="the first world's map -> odom")
        assert {(t.header.frame_id, t.child_frame_id) for t in late_static_message(robot, "first").transforms} == {
            (PARENT, WORLD)
        }
        reset = robot.node.create_client(Trigger, "/vggt/reset")
        assert call_answered(reset, Trigger.Request(), robot.wait_for, WAIT_S, "~/reset").success
        run.odom_from_base = wheel_odometry(sequence)
        first_t = run.sent
        first = run.stamp(first_t)
        run.send_until(run.sent + 3)
        transforms = new_world_static_tree(robot, first, "second")
        assert set(transforms) == {(PARENT, WORLD)}, sorted(transforms)
        # placed by the robot's odometry: where the wheels had the camera at the new world's first image
        np.testing.assert_allclose(
            transform_matrix(transforms[PARENT, WORLD]), run.odom_from_base[first_t] @ BASE_FROM_CAMERA, atol=1e-9
        )
        assert not robot.transforms("/tf_static", PARENT, ODOM)
    finally:
        run.close()


def test_a_solver_failure_keeps_the_last_good_poses_logs_once_and_the_node_goes_on(sequence, monkeypatch):
    """The first loop closes; then the pose graph's solver raises (a test double of a GTSAM failure) on every later
    loop the revisit offers: one warning says why, every later window is published, and under parent_frame the
    keyframes stay where the last good solve put them. The latter also needs /tf_static to follow the rigid
    correction as each window moves it (the loop's correction is a similarity; the drifting world's scale is
    corrected too): before that fix the first keyframe moved by 9 cm under parent_frame over 14 windows."""
    run = LoopRun(sequence)
    robot, session = run.robot, run.session
    try:
        run.send_until(len(sequence.rgb), stop_at_loop=True)
        assert run.loop_t >= 0, session.loop_verifier.counters
        loop_stamp = run.stamp(run.loop_t)
        wait_for_the_loop_outputs(robot, loop_stamp)
        good = under_parent(robot, [m for m in robot.messages("/vggt/path") if stamp_ns(m) == loop_stamp][-1])

        def failing_solve(self, ids, loops):
            raise RuntimeError("IndeterminantLinearSystemException (test double of a GTSAM failure)")

        monkeypatch.setattr(pose_graph.PoseGraph, "_solve", failing_solve)
        run.send_until(len(sequence.rgb))
        last = run.stamp(len(sequence.rgb) - 1)
        # The window's path goes out with the window, the correction it moved to after the window's loop pass.
        robot.wait_for(
            lambda: (
                robot.at("/vggt/path", last) and stamp_ns(robot.transforms("/tf_static", PARENT, WORLD)[-1]) == last
            ),
            what="the last window's path and /tf_static",
        )

        closed = session.world.loop_counters
        assert closed.accepted == 1 and closed.rejections["solver"] >= 2, closed
        warnings = robot.logs(WARN, "loop not closed (solver)")
        assert len(warnings) == 1 and "test double of a GTSAM failure" in warnings[0], warnings
        assert run.live.counters.windows_failed == 0 and run.live.counters.windows_inferred == len(sequence.rgb)
        # One path per window (none republished for the failed loops) ...
        stamps = [stamp_ns(m) for m in robot.messages("/vggt/path") if stamp_ns(m) > loop_stamp]
        assert stamps == [run.stamp(t) for t in range(run.loop_t + 1, len(sequence.rgb))]
        # ... and under parent_frame (the newest /tf_static) the keyframes stay where the good solve put them.
        newest = under_parent(robot, robot.at("/vggt/path", last))
        for stamp, pose in good.items():
            np.testing.assert_allclose(newest[stamp], pose, atol=1e-6)
    finally:
        run.close()


def _node_command(*parameters: str) -> list[str]:
    arguments = [a for p in ("device:=cpu", f"weights:={TINY}", *parameters) for a in ("-p", p)]
    return node_command({}, *arguments)


def _without_gtsam(tmp_path) -> dict:
    """The environment with a test double of a missing GTSAM: a package of that name, first on the path, whose
    import fails."""
    (tmp_path / "gtsam").mkdir()
    (tmp_path / "gtsam" / "__init__.py").write_text("raise ImportError('No module named gtsam (test double)')\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}


def test_without_gtsam_the_node_fails_at_start_up_naming_the_install_and_loop_closure(tmp_path):
    result = subprocess.run(_node_command(), capture_output=True, text=True, timeout=90, env=_without_gtsam(tmp_path))
    assert result.returncode == 1, result.stderr
    fatal = [line for line in result.stderr.splitlines() if "FATAL" in line]
    assert len(fatal) == 1, result.stderr
    assert "pip install gtsam" in fatal[0] and "loop_closure" in fatal[0], fatal[0]
    assert "Traceback" not in result.stderr


def test_without_gtsam_the_node_starts_with_loop_closure_off(tmp_path):
    output = start_then_interrupt(
        _node_command("loop_closure:=false", "image_topics:=['/cam/image']"),
        "listening to",
        start_timeout_s=90,
        exit_timeout_s=60,
        env=_without_gtsam(tmp_path),
    )
    assert "FATAL" not in output and "Traceback" not in output, output
