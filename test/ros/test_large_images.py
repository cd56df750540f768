# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Camera-sized images reach the node from another process, and images that do not arrive are reported.

The bug: with Fast DDS' default transports, rgb8 images of 640x480 and larger published by a camera driver in
another process rarely or never reached the node's sensor-data (best-effort) subscription (measured: 640x480 3 to
5 of 10, 1280x720 0 of 10), while the 448x336 images of the other node tests always did. Here the node's process is
configured as launch/reconstruct.launch.py configures it (FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA before rclpy.init)
and the camera is a second Python process with rclpy, default-configured except for the environment the README
tells users to set. With both sides on the default transports instead, the two image tests fail.

DDS must stay on this machine: every test here fails outside a network namespace whose only interface is lo:
    unshare -n sh -c 'ip link set lo up && exec python -m pytest test/ros/test_large_images.py'
"""

import os
import subprocess
import sys
import threading
import time

import pytest
import rclpy
from rcl_interfaces.msg import Log
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from conftest import IMAGES, PERMISSIVE_WORLD, TINY
from support.netns import loopback_rclpy
from support.spinning import Spinner
from vggt_ros.ros.node import TRANSPORTS_VARIABLE, ReconstructionNode

pytestmark = [pytest.mark.ros, pytest.mark.timeout(60)]

WEIGHTS = str(TINY)
# A photograph for which the tiny random network predicts usable fields of view at these sizes (see test_node.py).
PHOTO = str(IMAGES / "chelsea.png")
TOPIC = "/camera/image_raw"
LARGE_DATA = "LARGE_DATA"  # what the launch file sets
WARN = 30  # rcl_interfaces/Log level
WAIT_S = 20.0
FIRST_STAMP_NS = 1_700_000_000 * 1_000_000_000
FRAME_PERIOD_NS = 200_000_000  # 5 Hz

# The camera driver: creates its publisher (sensor-data QoS, as camera drivers use), then on a line on stdin waits
# up to match_timeout_s for a matched subscription, publishes `count` rgb8 images of the photograph resized to
# width x height, and prints how many subscriptions it matched.
CAMERA_PROCESS = """
import sys, time
import rclpy
from PIL import Image as Photo
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

topic, photo, width, height, count, first_stamp_ns, period_ns, match_timeout_s = sys.argv[1:9]
width, height, count, first_stamp_ns, period_ns = map(int, (width, height, count, first_stamp_ns, period_ns))
pixels = Photo.open(photo).convert("RGB").resize((width, height)).tobytes()
rclpy.init()
node = rclpy.create_node("fake_camera")
publisher = node.create_publisher(Image, topic, qos_profile_sensor_data)
sys.stdin.readline()
deadline = time.monotonic() + float(match_timeout_s)
while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
    time.sleep(0.05)
for index in range(count):
    msg = Image(height=height, width=width, encoding="rgb8", step=width * 3, data=pixels)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(first_stamp_ns + index * period_ns, 1_000_000_000)
    publisher.publish(msg)
    time.sleep(period_ns * 1e-9)
time.sleep(1.0)  # let the last samples leave before the participant goes away
print("matched subscriptions:", publisher.get_subscription_count())
"""


@pytest.fixture(scope="module", autouse=True)
def ros():
    """rclpy for the module, with the transports the launch file selects, only where DDS cannot leave the machine."""
    with loopback_rclpy(__file__, transports=LARGE_DATA):
        yield


def environment_with(transports: str | None) -> dict[str, str]:
    """This process's environment with FASTDDS_BUILTIN_TRANSPORTS as given (None: unset)."""
    environment = {key: value for key, value in os.environ.items() if key != TRANSPORTS_VARIABLE}
    if transports is not None:
        environment[TRANSPORTS_VARIABLE] = transports
    return environment


class Camera:
    """The camera driver process, with FASTDDS_BUILTIN_TRANSPORTS = `transports` (None: unset); a context manager
    that never leaves it running."""

    def __init__(self, width: int, height: int, count: int, transports: str | None, match_timeout_s: float) -> None:
        args = [TOPIC, PHOTO, width, height, count, FIRST_STAMP_NS, FRAME_PERIOD_NS, match_timeout_s]
        self.process = subprocess.Popen(
            [sys.executable, "-c", CAMERA_PROCESS, *map(str, args)],
            env=environment_with(transports),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def __enter__(self) -> "Camera":
        return self

    def __exit__(self, *exc_info) -> None:
        self.process.kill()
        self.process.communicate()

    def publish(self) -> str:
        """Let it publish its images; wait for it to exit and return what it printed."""
        output, _ = self.process.communicate("go\n", timeout=WAIT_S)
        assert self.process.returncode == 0, output
        return output


class Harness:
    """The node under test and a probe node (its /rosout lines and depth images), spun in one executor thread."""

    def __init__(self, overrides: dict) -> None:
        params = {"weights": WEIGHTS, "device": "cpu", "precision": "fp32", "image_size": 154, "window_size": 2}
        params.update(PERMISSIVE_WORLD, **overrides)
        self.node = ReconstructionNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        self.probe = Node("large_images_probe")
        self._lock = threading.Lock()
        self.logs: list[Log] = []
        self.depth_stamps: list[int] = []
        self.probe.create_subscription(Log, "/rosout", self._on_log, QoSProfile(depth=200))
        reliable = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
        self.probe.create_subscription(Image, "/vggt/depth/image", self._on_depth, reliable)
        self.spinner = Spinner(self.node, self.probe)

    def _on_log(self, msg: Log) -> None:
        with self._lock:
            self.logs.append(msg)

    def _on_depth(self, msg: Image) -> None:
        with self._lock:
            self.depth_stamps.append(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec)

    def warnings(self, text: str) -> list[str]:
        with self._lock:
            return [m.msg for m in self.logs if m.name == "vggt" and m.level == WARN and text in m.msg]

    def close(self) -> None:
        self.spinner.stop()
        self.probe.destroy_node()
        self.node.destroy_node()


def wait_until(predicate, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
    return result


@pytest.fixture
def harness(request):
    running = Harness(getattr(request, "param", {}))
    yield running
    running.close()


def subscription_matched(node: Node, topic: str) -> bool:
    """Whether the node's own subscription on `topic` has matched a publisher (its side of discovery)."""
    return any(sub.topic_name == topic and sub.get_publisher_count() > 0 for sub in node.subscriptions)


@pytest.mark.parametrize("width, height", [(640, 480), (1280, 720)])
def test_camera_sized_images_from_another_process_reach_the_node(harness, width, height):
    count = 5
    with Camera(width, height, count, transports=LARGE_DATA, match_timeout_s=WAIT_S) as camera:
        # Best effort has no retransmission: publish only once both sides of the match exist. (Measured: with
        # LARGE_DATA, discovering a process that starts after the node takes about 3 to 6 s here.)
        wait_until(lambda: subscription_matched(harness.node, TOPIC), "the node to match the camera")
        assert "matched subscriptions: 1" in camera.publish()
    assert wait_until(lambda: harness.node.images_received == count, f"{count} {width}x{height} images", 5.0)
    # and the node reconstructs from them: the newest image is always processed
    last_stamp = FIRST_STAMP_NS + (count - 1) * FRAME_PERIOD_NS
    assert wait_until(lambda: last_stamp in harness.depth_stamps, "the depth image of the newest image")
    assert not harness.warnings("no image on"), "the watchdog must stay quiet while images arrive"


@pytest.mark.parametrize("harness", [{"input_timeout_s": 1.0}], indirect=True)
def test_a_publisher_whose_images_never_arrive_is_reported_once_per_period_with_the_fix(harness):
    harness.probe.create_publisher(Image, TOPIC, qos_profile_sensor_data)  # a camera that publishes nothing
    warning = wait_until(lambda: harness.warnings(f"no image on '{TOPIC}'"), "the watchdog's warning")[0]
    assert "1 publisher(s) are matched" in warning
    # Matched means the transports agree (LARGE_DATA here): the 512 kB limit is not the cause (issue 18 item 10).
    assert "512 kB" not in warning and "Fix: set FASTDDS_BUILTIN_TRANSPORTS" not in warning
    assert "check the driver's QoS" in warning and f"ros2 topic hz {TOPIC}" in warning
    time.sleep(2.5)  # five more checks: the throttle keeps it to one line per 5 s
    assert len(harness.warnings(f"no image on '{TOPIC}'")) == 1


@pytest.mark.parametrize("harness", [{"input_timeout_s": 1.0}], indirect=True)
def test_a_publisher_of_another_message_type_is_named_not_the_transports(harness):
    """A CompressedImage topic given as a raw one (or compressedDepth as depth): its publisher never matches, and the
    warning blamed the 512 kB limit and the transports ("1 publisher(s) are matched"). It names the types now."""
    # Another participant (a DDS participant refuses a second type on one topic): its own context.
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        camera = rclpy.create_node("compressed_camera", context=context)
        camera.create_publisher(CompressedImage, TOPIC, qos_profile_sensor_data)
        warning = wait_until(lambda: harness.warnings(f"no image on '{TOPIC}'"), "the watchdog's warning")[0]
    finally:
        rclpy.shutdown(context=context)
    assert "the node reads sensor_msgs/msg/Image there" in warning
    assert "publishers send sensor_msgs/msg/CompressedImage" in warning and "image_transport: compressed" in warning
    assert "matched" not in warning and "512 kB" not in warning


@pytest.mark.parametrize("harness", [{"input_timeout_s": 1.0}], indirect=True)
def test_a_camera_with_default_transports_is_not_discovered_and_the_node_says_so(harness):
    # Measured: a LARGE_DATA process and a default-transport one do not discover each other, so even images small
    # enough for the default transports (448x336) never arrive; the node names the topic and the fix.
    with Camera(448, 336, 5, transports=None, match_timeout_s=1.0) as camera:
        warning = wait_until(lambda: harness.warnings(f"no publisher on '{TOPIC}'"), "the watchdog's warning")[0]
        assert "Fix: set FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA in the camera driver's environment too" in warning
        assert "matched subscriptions: 0" in camera.publish()
    assert harness.node.images_received == 0
