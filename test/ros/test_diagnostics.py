# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The node's /diagnostics read back over real rclpy/DDS: every component, its keys, values after a few windows
(checked against what the test sent and received), WARN when a camera goes quiet, a window is rejected or a metric
source has measured nothing yet, and images that DDS loses counted, logged and reported.

The node runs the tiny fixture model on the CPU at image_size 154 (see test_node.py, whose node runner and probe
are reused). Fast DDS' transports are left at their defaults in this process and in the camera process, so that
camera-sized images are lost on the way, as they are for a default-configured camera driver.

DDS must stay on this machine: every test here fails outside a network namespace whose only interface is lo:
    unshare -n sh -c 'ip link set lo up && exec python -m pytest test/ros/test_diagnostics.py'
"""

import os
import re
import subprocess
import sys
import threading
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image, PointCloud2
from test_node import CHELSEA, CHELSEA_MIRRORED, DEFAULT_WORLD, ERROR, WARN, Probe, Running, image_message, stamp_ns

from conftest import IMAGES
from support.netns import loopback_rclpy
from vggt_ros.live.health import ComponentHealth, Level
from vggt_ros.ros.diagnostics import diagnostic_array
from vggt_ros.ros.node import TRANSPORTS_VARIABLE

pytestmark = [pytest.mark.ros, pytest.mark.timeout(60)]

TOPIC = "/cam/image"
WAIT_S = 20.0
COMPONENTS = {
    "vggt: camera camera0",
    "vggt: pipeline",
    "vggt: backend",
    "vggt: metric scale",
    "vggt: loop closure",  # loop_closure defaults to on
}
CAMERA_KEYS = [
    "topic",
    "rate (Hz)",
    "images received",
    "images missed",
    "images lost by DDS",
    "images dropped",
    "last image age (s)",
]
PIPELINE_KEYS = [
    "keyframes/s",
    "windows/s",
    "latency p50 (s)",
    "latency p95 (s)",
    "frame sets refused",
    "frame sets dropped",
    "windows published",
    "windows rejected",
    "last rejection",
    "windows failed",
    "tracking segment",
    "longest executor stall (s)",
]
# Thresholds far from what a loaded 2-core machine reaches, so that only the condition under test changes a level.
RELAXED = {
    "diagnostics_latency_warn_s": 30.0,
    "diagnostics_latency_error_s": 60.0,
    "diagnostics_dropped_warn_ratio": 1.0,
    "diagnostics_window_s": 2.0,
}

# A camera driver in its own process, on Fast DDS' default transports: on a line on stdin it publishes the
# photograph alternately at 448x336 (451 kB: arrives) and 1920x1080 (6.2 MB: the default UDP transport loses most
# of them, not always all), starting and ending with the small size, at 5 Hz; then prints how many of each it sent.
CAMERA_PROCESS = """
import sys, time
import rclpy
from PIL import Image as Photo
from sensor_msgs.msg import Image

topic, photo, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
sizes = [(448, 336), (1920, 1080)]
pixels = {size: Photo.open(photo).convert("RGB").resize(size).tobytes() for size in sizes}
rclpy.init()
node = rclpy.create_node("fake_camera")
publisher = node.create_publisher(Image, topic, 10)
sys.stdin.readline()
for index in range(count):
    width, height = sizes[index % 2]
    msg = Image(height=height, width=width, encoding="rgb8", step=width * 3, data=pixels[(width, height)])
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 1_000_000_000)
    publisher.publish(msg)
    time.sleep(0.2)
time.sleep(1.0)  # let the last samples leave before the participant goes away
print("small:", (count + 1) // 2, "large:", count // 2)
"""


@pytest.fixture(scope="module", autouse=True)
def ros():
    """rclpy on Fast DDS' default transports, only where DDS cannot leave the machine (a loud failure, never a skip)."""
    with loopback_rclpy(__file__, transports=None):
        yield


class DiagnosticsProbe(Probe):
    """test_node's probe, also recording /diagnostics and the arrival time (ns, system clock) of each cloud."""

    def __init__(self) -> None:
        super().__init__([TOPIC], ["/vggt/"])
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._recorder("/diagnostics"), 10)
        self.cloud_arrivals: dict[int, int] = {}
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(PointCloud2, "/vggt/points", self._on_cloud, reliable)

    def _on_cloud(self, msg: PointCloud2) -> None:
        self.cloud_arrivals.setdefault(stamp_ns(msg), time.time_ns())

    def statuses(self, predicate, what: str, timeout: float = WAIT_S) -> dict[str, DiagnosticStatus]:
        """The first /diagnostics message (by name) from now on for which ``predicate(statuses)`` holds."""
        seen = len(self.received.get("/diagnostics", []))

        def matching():
            for array in self.received.get("/diagnostics", [])[seen:]:
                statuses = {status.name: status for status in array.status}
                if predicate(statuses):
                    return statuses
            return None

        return self.wait_for(matching, timeout, what)


def values(status: DiagnosticStatus) -> dict[str, str]:
    return {pair.key: pair.value for pair in status.values}


def level(status: DiagnosticStatus) -> Level:
    return Level(status.level[0])


def test_diagnostic_array_layout_survives_serialization():
    components = [
        ComponentHealth("camera left", "/left/image", Level.WARN, "no image for 6.0 s", (("rate (Hz)", "0.00"),)),
        ComponentHealth("pipeline", "", Level.ERROR, "1 windows failed", (("windows failed", "1"),)),
    ]
    stamp = 1_700_000_000_123_456_789
    array = deserialize_message(
        serialize_message(diagnostic_array("vggt", "/robot1/vggt", components, stamp)), DiagnosticArray
    )
    assert stamp_ns(array) == stamp
    assert [(s.name, s.hardware_id, s.level, s.message) for s in array.status] == [
        ("vggt: camera left", "/left/image", DiagnosticStatus.WARN, "no image for 6.0 s"),
        ("vggt: pipeline", "/robot1/vggt", DiagnosticStatus.ERROR, "1 windows failed"),  # the node's own
    ]
    assert [(kv.key, kv.value) for kv in array.status[1].values] == [("windows failed", "1")]


def test_a_running_node_reports_rates_windows_latency_backend_and_scale_then_a_quiet_camera():
    running = Running({"image_topics": [TOPIC], "window_size": 2, "input_timeout_s": 1.0, **RELAXED})
    probe = DiagnosticsProbe()
    try:
        probe.wait_connected()
        sent = []
        sending_started = time.monotonic()
        rate_statuses = []
        for index in range(20):  # 4 s at 5 Hz, stamped with the clock the node's latency is measured on
            sent.append(time.time_ns())
            probe.publishers[TOPIC].publish(image_message(CHELSEA_MIRRORED if index % 2 else CHELSEA, "rgb8", sent[-1]))
            time.sleep(0.2)
            if time.monotonic() - sending_started > 3.2:  # the 2 s window lies within the sending, with a margin
                rate_statuses += [array.status for array in probe.received.get("/diagnostics", [])[-1:]]
        probe.wait_for(lambda: sent[-1] in probe.cloud_arrivals, what="the newest image's cloud")
        final = probe.statuses(
            lambda s: (
                values(s["vggt: camera camera0"])["images received"] == "20"
                and values(s["vggt: pipeline"])["windows published"] == str(len(probe.cloud_arrivals))
            ),
            what="diagnostics after the last window",
        )
        assert set(final) == COMPONENTS
        camera = final["vggt: camera camera0"]
        assert [pair.key for pair in camera.values] == CAMERA_KEYS
        assert camera.hardware_id == TOPIC and values(camera)["topic"] == TOPIC
        assert values(camera)["images missed"] == "0" and values(camera)["images lost by DDS"] == "0"

        # While the camera sent at 5 Hz, it was OK and the node saw about 5 images (and keyframes) per second. (After
        # the last window the camera may already be quiet for input_timeout_s: the last inference can take longer.)
        during = {status.name: status for status in rate_statuses[-1]}
        assert level(during["vggt: camera camera0"]) is Level.OK, during["vggt: camera camera0"].message
        assert 3.5 <= float(values(during["vggt: camera camera0"])["rate (Hz)"]) <= 6.5
        assert 3.5 <= float(values(during["vggt: pipeline"])["keyframes/s"]) <= 6.5

        pipeline = final["vggt: pipeline"]
        assert [pair.key for pair in pipeline.values] == PIPELINE_KEYS
        assert level(pipeline) is Level.OK, pipeline.message
        pipeline_values = values(pipeline)
        assert pipeline_values["windows rejected"] == "0" and pipeline_values["windows failed"] == "0"
        assert pipeline_values["last rejection"] == "none" and pipeline_values["tracking segment"] == "0"
        # Every published window came from an image sent; the others were dropped while the worker was busy.
        published = int(pipeline_values["windows published"])
        assert 1 <= published <= 20 and int(pipeline_values["frame sets dropped"]) <= 20 - published
        # The node measures at publication, the probe on arrival (later): the probe's latencies bound the node's.
        arrived_s = [(probe.cloud_arrivals[stamp] - stamp) / 1e9 for stamp in sent if stamp in probe.cloud_arrivals]
        during_pipeline = values(during["vggt: pipeline"])
        p50, p95 = float(during_pipeline["latency p50 (s)"]), float(during_pipeline["latency p95 (s)"])
        assert 0 < p50 <= p95 <= max(arrived_s)

        backend = final["vggt: backend"]
        assert values(backend) == {"backend": "torch", "device": "cpu", "precision": "fp32"}, "no GPU keys on cpu"
        assert level(backend) is Level.OK and backend.hardware_id == "cpu"
        scale = final["vggt: metric scale"]
        assert values(scale) == {"source": "none", "metric": "no", "last problem": "none", "last note": "none"}
        assert level(scale) is Level.OK
        loops = final["vggt: loop closure"]
        assert [pair.key for pair in loops.values] == [
            "loop candidates",
            "loops accepted",
            "loops rejected",
            "last rejection",
            "segments joined",
            "loops dropped later",
            "loops held for a join now",
            "last optimisation (ms)",
        ]
        assert level(loops) is Level.OK and values(loops)["loops accepted"] == "0"  # 4 s of one view: no revisit

        # The camera goes quiet: WARN after input_timeout_s (1 s), the rest stays OK.
        quiet = probe.statuses(lambda s: level(s["vggt: camera camera0"]) is Level.WARN, what="the quiet camera")
        assert quiet["vggt: camera camera0"].message.startswith("no image for ")
        assert float(values(quiet["vggt: camera camera0"])["last image age (s)"]) >= 1.0
        assert level(quiet["vggt: pipeline"]) is Level.OK
    finally:
        probe.close()
        running.close()


def test_a_rejected_window_is_warn_with_the_reason_the_log_gives():
    # The node's default alignment thresholds: the random tiny model's windows disagree, so one is soon rejected.
    running = Running({"image_topics": [TOPIC], "window_size": 2, **DEFAULT_WORLD, **RELAXED})
    probe = DiagnosticsProbe()
    node = running.node
    try:
        probe.wait_connected()
        for index in range(8):
            finished = node.counts.windows_inferred + node.counts.windows_failed
            probe.publishers[TOPIC].publish(
                image_message((CHELSEA, CHELSEA_MIRRORED)[index % 2], "rgb8", time.time_ns())
            )
            probe.wait_for(
                lambda: node.counts.windows_inferred + node.counts.windows_failed > finished, what="the window"
            )
            if node.counts.windows_rejected:
                break
        logged = probe.wait_for(lambda: probe.logs(ERROR, "not merged into the world"), what="the rejection's log line")
        reason = logged[-1].msg.split("not merged into the world: ", 1)[1]
        statuses = probe.statuses(
            lambda s: values(s["vggt: pipeline"])["windows rejected"] == "1", what="the rejection in /diagnostics"
        )
        pipeline = statuses["vggt: pipeline"]
        assert level(pipeline) is Level.WARN
        assert values(pipeline)["last rejection"] == reason
        assert pipeline.message.startswith("1 windows rejected in the last ") and pipeline.message.endswith(reason)
    finally:
        probe.close()
        running.close()


def test_a_camera_whose_every_image_is_dropped_is_error_with_the_reason():
    """A camera sending an encoding the node cannot read: it arrived at its full rate and /diagnostics said OK
    everywhere while nothing was published."""
    running = Running({"image_topics": [TOPIC], **RELAXED})
    probe = DiagnosticsProbe()
    try:
        probe.wait_connected()
        deep = image_message(CHELSEA, "rgb8", 0)
        deep.encoding, deep.step = "rgb16", deep.width * 6
        deep.data = bytes(deep.height * deep.step)

        def camera_error(statuses) -> bool:
            probe.publishers[TOPIC].publish(_stamped(deep))
            return level(statuses["vggt: camera camera0"]) is Level.ERROR

        statuses = probe.statuses(camera_error, what="the camera's ERROR")
        camera = statuses["vggt: camera camera0"]
        assert camera.message.startswith("every image of the last ") and "image encoding (rgb16)" in camera.message
        assert int(values(camera)["images dropped"]) == int(values(camera)["images received"]) > 0
        assert probe.logs(ERROR, "rgb16"), "the log names the encoding too"
        assert running.node.counts.windows_emitted == 0
    finally:
        probe.close()
        running.close()


def _stamped(msg):
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 1_000_000_000)
    return msg


def test_a_metric_source_that_measured_nothing_yet_is_warn_with_the_reason_the_log_gives():
    # The depth source, but no depth image ever arrives: windows are held back until a scale is measured.
    running = Running(
        {"image_topics": [TOPIC], "window_size": 2, "metric_scale_source": "depth", "depth_topics": ["/cam/depth"]}
        | RELAXED
    )
    probe = DiagnosticsProbe()
    try:
        probe.wait_connected()
        probe.publishers[TOPIC].publish(image_message(CHELSEA, "rgb8", time.time_ns()))
        prefix, suffix = (
            "waiting for the first metric scale from the depth source (",
            "); nothing is published until then",
        )
        logged = probe.wait_for(lambda: probe.logs(WARN, prefix), what="the waiting line in the log")[0].msg
        assert logged.endswith(suffix), logged
        reason = logged[len(prefix) : -len(suffix)]
        statuses = probe.statuses(
            lambda s: values(s["vggt: metric scale"])["last problem"] != "none", what="the problem in /diagnostics"
        )
        scale = statuses["vggt: metric scale"]
        assert values(scale) == {
            "source": "depth",
            "metric": "no",
            "last problem": reason,
            "last note": "none",
            "newest depth image dropped": "no",  # none arrived
        }
        assert level(scale) is Level.WARN
        assert scale.message == (
            f"waiting for the first metric scale from the depth source; nothing is published ({reason})"
        )
        assert values(statuses["vggt: pipeline"])["windows published"] == "0"
        # The depth camera's images come in a colour encoding (a wrong remapping): the status names why they are
        # dropped behind "no depth reading" (it gave the generic reason only, and the log said it once).
        depth_publisher = probe.node.create_publisher(Image, "/cam/depth", 10)
        probe.wait_for(lambda: depth_publisher.get_subscription_count() > 0, what="the node's depth subscription")
        depth_publisher.publish(image_message(CHELSEA, "rgb8", time.time_ns()))
        statuses = probe.statuses(
            lambda s: values(s["vggt: metric scale"])["newest depth image dropped"] != "no", what="the dropped depth"
        )
        scale = statuses["vggt: metric scale"]
        dropped = values(scale)["newest depth image dropped"]
        assert dropped.startswith("depth of camera 'camera0': unsupported depth encoding 'rgb8'")
        assert scale.message.endswith(f"; the depth images are dropped: {dropped})")
    finally:
        probe.close()
        running.close()


def test_images_dds_loses_are_counted_logged_and_reported():
    running = Running({"image_topics": [TOPIC], "window_size": 2, **RELAXED, "diagnostics_window_s": 10.0})
    probe = DiagnosticsProbe()
    sent = 11
    camera = subprocess.Popen(
        [sys.executable, "-c", CAMERA_PROCESS, TOPIC, str(IMAGES / "chelsea.png"), str(sent)],
        env={key: value for key, value in os.environ.items() if key != TRANSPORTS_VARIABLE},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = []
    try:
        # Best effort has no retransmission: publish only once the node's side of the match exists (the probe's
        # own publisher on the topic is the first match).
        probe.wait_for(
            lambda: any(s.topic_name == TOPIC and s.get_publisher_count() > 1 for s in running.node.subscriptions),
            what="the node to match the camera process",
        )
        time.sleep(0.5)
        reader = threading.Thread(target=lambda: output.append(camera.communicate("go\n", timeout=WAIT_S)[0]))
        reader.start()
        reader.join(timeout=WAIT_S)
        assert camera.returncode == 0 and "small: 6 large: 5" in output[0], output
        # Every image either arrived or DDS reported it lost.
        statuses = probe.statuses(
            lambda s: (
                sum(int(values(s["vggt: camera camera0"])[key]) for key in ("images received", "images lost by DDS"))
                == sent
            ),
            what=f"all {sent} images accounted for in /diagnostics",
        )
        status = statuses["vggt: camera camera0"]
        lost = int(values(status)["images lost by DDS"])
        assert 1 <= lost <= 5, "only large images are lost, and 1920x1080 ones rarely all arrive"
        assert values(status)["images missed"] == str(lost), "the gaps in the camera's sequence numbers"
        assert level(status) is Level.WARN
        assert f"{lost} of {sent} images missed in the last" in status.message
        assert f"({lost} of them lost by DDS)" in status.message
        warning = probe.wait_for(lambda: probe.logs(WARN, f"image(s) on '{TOPIC}'"), what="the log line")[0].msg
        assert re.match(rf"DDS lost \d+ image\(s\) on '{TOPIC}' \(\d+ so far\)", warning), warning
        assert f"Fix: set {TRANSPORTS_VARIABLE}=LARGE_DATA" in warning
    finally:
        if camera.poll() is None:
            camera.kill()
            camera.communicate()
        probe.close()
        running.close()


def test_an_inactive_node_reports_its_cameras_as_not_listening_and_counts_nothing_sent_meanwhile_as_missed():
    """Issue 19 item 12: a deactivated node misses nothing; after activation the pause is neither a quiet spell nor
    images "never reached this node"."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    running = Running({"image_topics": [TOPIC], "window_size": 2, "input_timeout_s": 1.0, **RELAXED})
    probe = DiagnosticsProbe()
    change = probe.node.create_client(ChangeState, "/vggt/change_state")

    def transition(transition_id: int) -> None:
        assert change.wait_for_service(timeout_sec=WAIT_S)
        future = change.call_async(ChangeState.Request(transition=Transition(id=transition_id)))
        probe.wait_for(future.done, what="the transition")
        assert future.result().success

    camera = probe.publishers[TOPIC]
    try:
        probe.wait_connected()
        camera.publish(image_message(CHELSEA, "rgb8", time.time_ns()))
        probe.statuses(lambda s: values(s["vggt: camera camera0"])["images received"] == "1", what="the first image")
        transition(Transition.TRANSITION_DEACTIVATE)
        probe.wait_for(lambda: camera.get_subscription_count() == 0, what="the node to stop listening")
        for _ in range(10):  # sent while nobody listens: the publisher's sequence numbers run on
            camera.publish(image_message(CHELSEA_MIRRORED, "rgb8", time.time_ns()))
        time.sleep(2.5)  # over twice input_timeout_s
        paused = probe.statuses(lambda s: True, what="diagnostics while inactive")["vggt: camera camera0"]
        assert level(paused) is Level.OK and paused.message == "not listening: the node is inactive"

        transition(Transition.TRANSITION_ACTIVATE)
        probe.wait_connected()
        camera.publish(image_message(CHELSEA, "rgb8", time.time_ns()))
        resumed = probe.statuses(
            lambda s: values(s["vggt: camera camera0"])["images received"] == "2", what="the image after activation"
        )["vggt: camera camera0"]
        assert values(resumed)["images missed"] == "0", resumed.message
        assert level(resumed) is Level.OK, resumed.message
        assert not probe.logs(WARN, "never reached this node")
    finally:
        probe.close()
        running.close()
