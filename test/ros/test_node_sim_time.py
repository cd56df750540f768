# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The node under simulated time (use_sim_time, a bag played with --clock), over real rclpy/DDS: a /clock that
never comes is named, a paused clock is no executor stall, and a clock that goes back (a bag in a loop) clears the
transforms heard before, as tf2_ros does. The test's /clock publisher stands in for `ros2 bag play --clock`.

DDS must stay on this machine: every test here fails outside a network namespace whose only interface is lo:
    unshare -n sh -c 'ip link set lo up && exec python -m pytest test/ros/test_node_sim_time.py'
"""

import threading
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TransformStamped
from rosgraph_msgs.msg import Clock as ClockMsg
from test_node import CHELSEA, ERROR, WARN, Probe, Running, image_message
from tf2_msgs.msg import TFMessage

from support.netns import loopback_rclpy

pytestmark = [pytest.mark.ros, pytest.mark.timeout(60)]

TOPIC = "/cam/image"
SECOND = 1_000_000_000
SIM_TIME = {"use_sim_time": True, "image_topics": [TOPIC], "input_timeout_s": 1.0}


@pytest.fixture(scope="module", autouse=True)
def ros():
    """rclpy for the whole module, only where DDS cannot leave the machine (a loud failure, never a skip)."""
    with loopback_rclpy(__file__):
        yield


class BagClockForTests:
    """A test double of `ros2 bag play --clock`: /clock at 50 Hz of wall time, advancing at rate 1 from
    ``start_ns``; `pause` stops publishing (a paused bag), `jump_to` moves it (a bag loop)."""

    def __init__(self, probe: Probe, start_ns: int) -> None:
        self._publisher = probe.node.create_publisher(ClockMsg, "/clock", 10)
        self._lock = threading.Lock()
        self._sim_ns, self._wall_ns, self._paused = start_ns, time.monotonic_ns(), False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def pause(self, paused: bool) -> None:
        with self._lock:
            self._sim_ns, self._wall_ns = self.now_ns_unlocked(), time.monotonic_ns()
            self._paused = paused

    def jump_to(self, sim_ns: int) -> None:
        with self._lock:
            self._sim_ns, self._wall_ns = sim_ns, time.monotonic_ns()

    def now_ns_unlocked(self) -> int:
        return self._sim_ns + (0 if self._paused else time.monotonic_ns() - self._wall_ns)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            with self._lock:
                paused, now_ns = self._paused, self.now_ns_unlocked()
            if not paused:
                msg = ClockMsg()
                msg.clock.sec, msg.clock.nanosec = divmod(now_ns, SECOND)
                self._publisher.publish(msg)


def test_use_sim_time_without_a_clock_is_named_and_unstamped_images_are_dropped_with_the_reason():
    """A bag played without --clock: the map, /diagnostics and the input checks waited silently for ever, and
    unstamped images got time 0, so all but the first were dropped as repeated captures."""
    running = Running(SIM_TIME)
    probe = Probe([TOPIC], ["/vggt/"])
    try:
        probe.wait_connected()
        probe.wait_for(lambda: probe.logs(WARN, "no /clock has arrived"), what="the missing /clock warning")
        assert "ros2 bag play --clock" in probe.logs(WARN, "no /clock has arrived")[0].msg
        for _ in range(2):
            probe.publishers[TOPIC].publish(image_message(CHELSEA, "rgb8", 0))
        probe.wait_for(lambda: probe.logs(ERROR, "before the node's clock started"), what="the dropped image's error")
        assert not probe.logs(ERROR, "repeated")
        assert running.node.counts.frame_sets == 0
    finally:
        probe.close()
        running.close()


def test_sim_time_switched_on_at_run_time_without_a_clock_is_named():
    """`ros2 param set /vggt use_sim_time true` with no /clock: /diagnostics, the map and the input checks stopped
    without a word, since the warning's timer existed only where sim time was on at start-up."""
    from rclpy.parameter import Parameter

    running = Running({**SIM_TIME, "use_sim_time": False})
    probe = Probe([TOPIC], ["/vggt/"])
    try:
        probe.wait_connected()
        assert running.node.set_parameters([Parameter("use_sim_time", value=True)])[0].successful
        probe.wait_for(lambda: probe.logs(WARN, "no /clock has arrived"), what="the missing /clock warning")
    finally:
        probe.close()
        running.close()


def test_sim_time_switched_back_on_after_its_clock_stopped_is_named_while_images_arrive():
    """Sim time, then off, then on again with no /clock any more: the node's time stood at the last /clock heard
    without a word (no "no /clock" warning: the clock is not 0), and the camera's wall-time stamps were blamed for
    running ahead of it."""
    from rclpy.parameter import Parameter

    running = Running(SIM_TIME)
    probe = Probe([TOPIC], ["/vggt/"])
    clock = BagClockForTests(probe, 100 * SECOND)
    try:
        probe.wait_connected()
        probe.wait_for(lambda: running.node.get_clock().now().nanoseconds > 0, what="the node on the bag's clock")
        clock.close()  # the bag ended
        assert running.node.set_parameters([Parameter("use_sim_time", value=False)])[0].successful
        assert running.node.set_parameters([Parameter("use_sim_time", value=True)])[0].successful
        stamp = time.time_ns()
        deadline = time.monotonic() + 10
        while not probe.logs(WARN, "/clock has not moved") and time.monotonic() < deadline:
            stamp += 100_000_000
            probe.publishers[TOPIC].publish(image_message(CHELSEA, "rgb8", stamp))
            time.sleep(0.1)
        warning = probe.logs(WARN, "/clock has not moved")
        assert warning and "use_sim_time is true and images arrive" in warning[0].msg
        assert "the node's time stands at 10" in warning[0].msg  # about 100 s, the bag's clock when it ended
    finally:
        probe.close()
        running.close()


def test_a_paused_clock_is_no_executor_stall():
    """The diagnostics were stamped with the wall clock while their timer followed /clock: a bag paused for 3 s
    read as a 3 s executor stall."""
    running = Running(SIM_TIME)
    probe = Probe([TOPIC], ["/vggt/"])
    probe.node.create_subscription(DiagnosticArray, "/diagnostics", probe._recorder("/diagnostics"), 10)
    clock = BagClockForTests(probe, 100 * SECOND)
    try:
        probe.wait_connected()
        probe.wait_for(lambda: len(probe.received.get("/diagnostics", [])) >= 2, what="diagnostics on sim time")
        clock.pause(True)
        time.sleep(3.0)
        clock.pause(False)
        seen = len(probe.received["/diagnostics"])
        probe.wait_for(lambda: len(probe.received["/diagnostics"]) >= seen + 3, what="diagnostics after the pause")
        stalls = [
            float(dict((v.key, v.value) for v in status.values)["longest executor stall (s)"])
            for array in probe.received["/diagnostics"][seen:]
            for status in array.status
            if status.name == "vggt: pipeline"
        ]
        assert stalls and max(stalls) < 2.0, stalls  # the pause read as 3.0
    finally:
        clock.close()
        probe.close()
        running.close()


def test_a_clock_that_goes_back_clears_the_transforms_heard_before():
    """A bag in a loop: its odometry of the second pass is older than the first pass's newest by more than TF's
    10 s, and was refused for the whole pass, so the new world was never placed in odom."""
    running = Running({**SIM_TIME, "odom_frame": "odom", "robot_base_frame": "base_link"})
    probe = Probe([TOPIC], ["/vggt/"])
    odometry = probe.node.create_publisher(TFMessage, "/tf", 10)
    clock = BagClockForTests(probe, 100 * SECOND)
    transforms = running.node._transforms

    def publish_odometry(stamp_ns: int) -> None:
        transform = TransformStamped(child_frame_id="base_link")
        transform.header.frame_id = "odom"
        transform.header.stamp.sec, transform.header.stamp.nanosec = divmod(stamp_ns, SECOND)
        transform.transform.rotation.w = 1.0
        odometry.publish(TFMessage(transforms=[transform]))

    try:
        probe.wait_connected()
        first_pass = 130 * SECOND
        publish_odometry(first_pass)
        probe.wait_for(
            lambda: transforms.can_transform("odom", "base_link", first_pass), what="the first pass's odometry"
        )
        clock_s = running.node.get_clock().now
        probe.wait_for(lambda: clock_s().nanoseconds > 100 * SECOND + SECOND // 2, what="the node on /clock")
        clock.jump_to(100 * SECOND)
        probe.wait_for(lambda: probe.logs(WARN, "the clock went back"), what="the clock jump's warning")
        second_pass = 101 * SECOND  # 29 s before the newest odometry heard
        publish_odometry(second_pass)
        probe.wait_for(
            lambda: transforms.can_transform("odom", "base_link", second_pass), what="the second pass's odometry"
        )
        assert not transforms.can_transform("odom", "base_link", first_pass), "the first pass is forgotten"
        np.testing.assert_allclose(transforms.lookup_transform("odom", "base_link", second_pass), np.eye(4))
    finally:
        clock.close()
        probe.close()
        running.close()
