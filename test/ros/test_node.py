# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The `vggt` node end to end over real rclpy/DDS: real photographs in as sensor_msgs/Image, every output checked.

Runs the tiny fixture model on the CPU at image_size 154 (98x154 model input), which keeps a window well under
a second. The photographs and sizes are ones for which the tiny random network predicts usable fields of view.

DDS must stay on this machine, so every test here fails (with the command to use) outside a network namespace
whose only interface is loopback:
    unshare -n sh -c 'ip link set lo up && exec python -m pytest test/ros/test_node.py'
"""

import io
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pycolmap
import pytest
import yaml
from evo.tools import file_interface
from nav_msgs.msg import Path as PathMsg
from PIL import Image as PILImage
from PIL import ImageOps
from rcl_interfaces.msg import Log
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage

from conftest import IMAGES, PERMISSIVE_WORLD, TINY
from support.camera_encodings import BAYER_SITES, sensor_bytes
from support.netns import loopback_rclpy
from support.node_process import node_command, running_process, start_then_interrupt
from support.rotations import quaternion_matrix
from support.services import call_answered
from support.small_filesystem import digests, fill, small_filesystem
from support.spinning import Spinner
from support.waiting import wait_for
from vggt_ros.files import SAVE_RECORD
from vggt_ros.live.parameters import NodeParameters
from vggt_ros.preprocess import preprocess_images
from vggt_ros.ros import node as node_module
from vggt_ros.ros.messages import tf_message, transform_stamped
from vggt_ros.ros.node import ReconstructionNode, StartupError

pytestmark = [pytest.mark.ros, pytest.mark.timeout(120)]

WEIGHTS = str(TINY)
IMAGE_SIZE = 154
MODEL_HW = (98, 154)  # chelsea 451x300 and rocket 640x427 at width 154, crop mode
WAIT_S = 60.0
ERROR, WARN, INFO = 40, 30, 20  # rcl_interfaces/Log levels


def _photo(name: str) -> PILImage.Image:
    with PILImage.open(IMAGES / name) as image:
        return image.convert("RGB")


CHELSEA = _photo("chelsea.png")
CHELSEA_MIRRORED = ImageOps.mirror(CHELSEA)
ROCKET_GREY = _photo("rocket.jpg").convert("L")


def image_message(photo: PILImage.Image, encoding: str, stamp_ns: int, frame_id: str = "camera") -> Image:
    """A sensor_msgs/Image as a camera driver sends it; the bytes come from Pillow's packers, or for YUV 4:2:2 and
    Bayer from the standards' formulas (`support.camera_encodings`)."""
    if encoding == "yuyv" or encoding in BAYER_SITES:
        rgb = np.asarray(photo.convert("RGB"))
        msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding=encoding)
        msg.data, msg.step = sensor_bytes(rgb, encoding)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        msg.header.frame_id = frame_id
        return msg
    raw_mode, channels = {
        "rgb8": ("RGB", 3),
        "bgr8": ("BGR", 3),
        "rgba8": ("RGBA", 4),
        "bgra8": ("BGRA", 4),
        "mono8": ("L", 1),
    }[encoding]
    source = photo.convert("RGBA") if channels == 4 else photo
    msg = Image(height=photo.height, width=photo.width, encoding=encoding, step=photo.width * channels)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.header.frame_id = frame_id
    msg.data = source.tobytes("raw", raw_mode)
    return msg


def stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def cloud_array(msg: PointCloud2) -> np.ndarray:
    """(height, width, 5) float32 [x, y, z, rgb, confidence] from the message bytes and its declared layout."""
    offsets = {field.name: field.offset for field in msg.fields}
    raw = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height * msg.width, msg.point_step)
    columns = [
        raw[:, offsets[name] : offsets[name] + 4].copy().view(np.float32)[:, 0]
        for name in ("x", "y", "z", "rgb", "confidence")
    ]
    return np.stack(columns, axis=-1).reshape(msg.height, msg.width, 5)


def cloud_colors(cloud: np.ndarray) -> np.ndarray:
    bits = np.ascontiguousarray(cloud[..., 3]).view(np.uint32)
    return np.stack([(bits >> 16) & 255, (bits >> 8) & 255, bits & 255], axis=-1).astype(np.int32)


def float_image(msg: Image) -> np.ndarray:
    assert msg.encoding == "32FC1" and msg.step == 4 * msg.width
    return np.frombuffer(bytes(msg.data), dtype=np.float32).reshape(msg.height, msg.width)


class Probe:
    """A test-side node in its own executor thread: records every output and publishes the camera images."""

    def __init__(self, image_topics: list[str], camera_topics: list[str]) -> None:
        self.node = Node("vggt_probe")
        self.sent_hw = None  # (H, W) of the last image a test sent on a one-camera topic
        self._condition = threading.Condition()
        self.received: dict[str, list] = {}
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        topics = {"/vggt/points": PointCloud2, "/vggt/path": PathMsg, "/tf": TFMessage}
        for prefix in camera_topics:
            topics.update(
                {f"{prefix}depth/image": Image, f"{prefix}confidence": Image, f"{prefix}depth/camera_info": CameraInfo}
            )
        self.subscriptions = [
            self.node.create_subscription(t, name, self._recorder(name), reliable) for name, t in topics.items()
        ]
        self.subscriptions.append(
            self.node.create_subscription(TFMessage, "/tf_static", self._recorder("/tf_static"), latched)
        )
        self.node.create_subscription(Log, "/rosout", self._recorder("/rosout"), QoSProfile(depth=200))
        self.publishers = {topic: self.node.create_publisher(Image, topic, 10) for topic in image_topics}
        self.spinner = Spinner(self.node)

    def _recorder(self, topic: str):
        def record(msg) -> None:
            with self._condition:
                self.received.setdefault(topic, []).append(msg)
                self._condition.notify_all()

        return record

    def wait_for(self, predicate, timeout: float = WAIT_S, what: str = "a condition"):
        return wait_for(self._condition, predicate, timeout, what)

    def wait_connected(self) -> None:
        self.wait_for(
            lambda: (
                all(s.get_publisher_count() > 0 for s in self.subscriptions)
                and all(p.get_subscription_count() > 0 for p in self.publishers.values())
                # the node's log too: a warning about the very first image must not be lost to discovery
                and any(info.node_name == "vggt" for info in self.node.get_publishers_info_by_topic("/rosout"))
            ),
            what="DDS discovery between the probe and the node",
        )

    def latest(self, topic: str, stamp: int):
        """The newest message on `topic` whose header stamp is `stamp`, or None."""
        for msg in reversed(self.received.get(topic, [])):
            if stamp_ns(msg) == stamp:
                return msg
        return None

    def tf_at(self, child: str, stamp: int):
        for msg in reversed(self.received.get("/tf", [])):
            for transform in msg.transforms:
                if transform.child_frame_id == child and stamp_ns(transform) == stamp:
                    return transform
        return None

    def logs(self, level: int, text: str) -> list:
        return [m for m in self.received.get("/rosout", []) if m.name == "vggt" and m.level == level and text in m.msg]

    def close(self) -> None:
        self.spinner.stop()
        self.node.destroy_node()


# The node's own defaults, restored over PERMISSIVE_WORLD.
DEFAULT_WORLD = {
    "alignment_min_inlier_ratio": 0.6,
    "alignment_inlier_distance_ratio": 0.08,
    "alignment_max_residual_ratio": 0.05,
    "alignment_max_camera_offset_ratio": 0.1,
    "alignment_max_camera_rotation_deg": 5.0,
}


class Running:
    """The node under test spinning in its own executor thread, as `ros2 run` would spin it."""

    def __init__(self, overrides: dict, cli_args: list[str] | None = None) -> None:
        params = {
            "weights": WEIGHTS,
            "device": "cpu",
            "precision": "fp32",
            "image_size": IMAGE_SIZE,
            "confidence_percentile": 0.0,  # no filtering and no decimation: an organised cloud, pixel for pixel
            "point_decimation": 1,
            # The tiny model has random weights, so consecutive windows do not agree geometrically. These tests
            # are about the ROS interface, so every window is let into the world; the acceptance tests of the
            # chaining itself are in test_world.py, and TestWorldChaining below runs the default thresholds.
            **PERMISSIVE_WORLD,
            **overrides,
        }
        self.node = ReconstructionNode(
            parameter_overrides=[Parameter(k, value=v) for k, v in params.items()], cli_args=cli_args
        )
        self.spinner = Spinner(self.node)

    def close(self) -> None:
        self.spinner.stop()
        self.node.destroy_node()


@pytest.fixture(scope="module", autouse=True)
def ros():
    """rclpy for the whole module, only where DDS cannot leave the machine (a loud failure, never a skip)."""
    with loopback_rclpy(__file__):
        yield


class Clock:
    """Strictly increasing stamps (10 Hz) so tests only go back in time on purpose."""

    def __init__(self) -> None:
        self.now_ns = 1_700_000_000 * 1_000_000_000

    def next(self) -> int:
        self.now_ns += 100_000_000
        return self.now_ns


def check_consistency(
    probe: Probe, camera_prefix: str, optical: str, cloud: np.ndarray, stamp: int, rows: slice
) -> None:
    """Each pixel of the published depth, unprojected with the published CameraInfo and moved by the published
    TF, lands on the published cloud point of that pixel."""
    depth = float_image(probe.latest(f"{camera_prefix}depth/image", stamp))
    info = probe.latest(f"{camera_prefix}depth/camera_info", stamp)
    transform = probe.tf_at(optical, stamp).transform
    k = np.array(info.k).reshape(3, 3)
    v, u = np.mgrid[0 : depth.shape[0], 0 : depth.shape[1]]
    d = depth.astype(np.float64)
    camera_points = np.stack([(u - k[0, 2]) * d / k[0, 0], (v - k[1, 2]) * d / k[1, 1], d], axis=-1)
    rotation = quaternion_matrix(transform.rotation)
    translation = np.array([transform.translation.x, transform.translation.y, transform.translation.z])
    world = camera_points @ rotation.T + translation
    published = cloud[rows, :, :3].astype(np.float64)
    scale = np.abs(world).max()
    np.testing.assert_allclose(published, world, rtol=0, atol=2e-5 * scale)


def expected_colors(photo: PILImage.Image) -> np.ndarray:
    """The model-resolution image from the exact (Pillow) preprocessing, as 0..255 ints."""
    tensor = preprocess_images([np.asarray(photo.convert("RGB"))], mode="crop", target_size=IMAGE_SIZE)[0]
    return (tensor.permute(1, 2, 0).numpy() * 255).round().astype(np.int32)


# --------------------------------------------------------------------------------------------- one camera
class TestOneCamera:
    @pytest.fixture(scope="class")
    @classmethod
    def setup(cls):
        running = Running({"image_topics": ["/cam/image"], "window_size": 3, "window_stride": 1})
        probe = Probe(["/cam/image"], ["/vggt/"])
        probe.wait_connected()
        yield running, probe, Clock()
        probe.close()
        running.close()

    @staticmethod
    def send(probe: Probe, clock: Clock, photo=CHELSEA, encoding="rgb8") -> int:
        """Publish ``photo`` and return its stamp. An image of another size than the last one sent goes twice: the
        node drops the first of a new size (a lone one costs itself only) and starts over at the second."""
        image_hw = np.asarray(photo).shape[:2]
        if probe.sent_hw not in (None, image_hw):
            probe.publishers["/cam/image"].publish(image_message(photo, encoding, clock.next()))
        probe.sent_hw = image_hw
        stamp = clock.next()
        probe.publishers["/cam/image"].publish(image_message(photo, encoding, stamp))
        return stamp

    @staticmethod
    def wait_outputs(probe: Probe, stamp: int) -> None:
        topics = ["/vggt/points", "/vggt/path", "/vggt/depth/image", "/vggt/confidence", "/vggt/depth/camera_info"]
        probe.wait_for(
            lambda: all(probe.latest(t, stamp) for t in topics) and probe.tf_at("camera0_optical", stamp),
            what=f"all outputs stamped {stamp}",
        )

    def test_every_output_arrives_with_its_fields_encodings_frames_and_stamps(self, setup):
        _, probe, clock = setup
        stamp = self.send(probe, clock)
        self.wait_outputs(probe, stamp)
        height, width = MODEL_HW

        cloud = probe.latest("/vggt/points", stamp)
        assert cloud.header.frame_id == "vggt_world"
        assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == [
            ("x", 0, PointField.FLOAT32, 1),
            ("y", 4, PointField.FLOAT32, 1),
            ("z", 8, PointField.FLOAT32, 1),
            ("rgb", 12, PointField.FLOAT32, 1),
            ("confidence", 16, PointField.FLOAT32, 1),
        ]
        assert (cloud.height, cloud.width, cloud.point_step, cloud.row_step) == (height, width, 20, 20 * width)
        assert len(cloud.data) == height * width * 20 and not cloud.is_bigendian and cloud.is_dense

        for topic in ("/vggt/depth/image", "/vggt/confidence"):
            image = probe.latest(topic, stamp)
            assert image.header.frame_id == "camera0_optical"
            assert (image.height, image.width, image.encoding, image.step) == (height, width, "32FC1", 4 * width)
        depth = float_image(probe.latest("/vggt/depth/image", stamp))
        confidence = float_image(probe.latest("/vggt/confidence", stamp))
        assert np.isfinite(depth).all() and (depth > 0).all()
        assert (confidence > 1).all()
        np.testing.assert_array_equal(cloud_array(cloud)[..., 4], confidence)

        info = probe.latest("/vggt/depth/camera_info", stamp)
        assert info.header.frame_id == "camera0_optical" and (info.height, info.width) == (height, width)
        k = np.array(info.k).reshape(3, 3)
        assert k[0, 0] > 0 and k[1, 1] > 0 and (k[0, 2], k[1, 2]) == (width / 2, height / 2)
        assert k[0, 1] == 0 and list(k[2]) == [0, 0, 1]
        np.testing.assert_array_equal(np.array(info.p).reshape(3, 4), np.hstack([k, np.zeros((3, 1))]))
        assert list(info.r) == [1, 0, 0, 0, 1, 0, 0, 0, 1] and info.distortion_model == "plumb_bob"

        path = probe.latest("/vggt/path", stamp)
        assert path.header.frame_id == "vggt_world" and stamp_ns(path.poses[-1]) == stamp
        transform = probe.tf_at("camera0_optical", stamp)
        assert transform.header.frame_id == "vggt_world"
        position = path.poses[-1].pose.position
        assert (position.x, position.y, position.z) == pytest.approx(
            (transform.transform.translation.x, transform.transform.translation.y, transform.transform.translation.z)
        )

    def test_tf_tree_is_consistent(self, setup):
        _, probe, clock = setup
        stamp = self.send(probe, clock)
        self.wait_outputs(probe, stamp)
        static = probe.wait_for(lambda: probe.received.get("/tf_static"), what="/tf_static")[-1].transforms
        assert [(t.header.frame_id, t.child_frame_id) for t in static] == [("map", "vggt_world")]
        rotation = quaternion_matrix(static[0].transform.rotation)
        # VGGT's optical world: z forward, x right, y down; map (REP-103): x forward, y left, z up.
        np.testing.assert_allclose(rotation @ [0, 0, 1], [1, 0, 0], atol=1e-12)
        np.testing.assert_allclose(rotation @ [1, 0, 0], [0, -1, 0], atol=1e-12)
        np.testing.assert_allclose(rotation @ [0, 1, 0], [0, 0, -1], atol=1e-12)
        translation = static[0].transform.translation
        assert (translation.x, translation.y, translation.z) == (0, 0, 0)

        parents = {}
        for msg in probe.received["/tf"] + probe.received["/tf_static"]:
            for t in msg.transforms:
                assert parents.setdefault(t.child_frame_id, t.header.frame_id) == t.header.frame_id, (
                    "a frame with two parents"
                )
                q = t.transform.rotation
                assert math.isclose(q.x**2 + q.y**2 + q.z**2 + q.w**2, 1.0, rel_tol=1e-9)
        assert parents == {"vggt_world": "map", "camera0_optical": "vggt_world"}

    def test_a_pixel_unprojected_and_moved_by_tf_lands_on_its_cloud_point(self, setup):
        _, probe, clock = setup
        stamps = []
        for i in range(3):
            stamps.append(self.send(probe, clock, CHELSEA_MIRRORED if i % 2 else CHELSEA))
            self.wait_outputs(probe, stamps[-1])
        stamp = stamps[-1]
        # stamp: the newest of a full 3-frame window, whose camera is not at the world origin; the path holds
        # every keyframe of the chained world so far, these three last
        assert [stamp_ns(p) for p in probe.latest("/vggt/path", stamp).poses[-3:]] == stamps
        cloud = cloud_array(probe.latest("/vggt/points", stamp))
        check_consistency(probe, "/vggt/", "camera0_optical", cloud, stamp, slice(None))
        assert np.abs(cloud_colors(cloud) - expected_colors(CHELSEA)).max() <= 2

    @pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
    def test_colour_encodings_give_the_photographs_colours(self, setup, encoding):
        _, probe, clock = setup
        stamp = self.send(probe, clock, CHELSEA, encoding)
        self.wait_outputs(probe, stamp)
        colors = cloud_colors(cloud_array(probe.latest("/vggt/points", stamp)))
        assert np.abs(colors - expected_colors(CHELSEA)).max() <= 2

    def test_another_publisher_of_the_nodes_camera_transform_is_named_once(self, setup):
        """A second node without frame_prefix sends vggt_world -> camera0_optical too: lookups jumped between the two
        worlds without a word."""
        _, probe, clock = setup
        self.wait_outputs(probe, self.send(probe, clock))
        other = probe.node.create_publisher(TFMessage, "/tf", 10)
        probe.wait_for(lambda: other.get_subscription_count() > 0, what="the node's /tf subscriptions")
        for _ in range(2):
            other.publish(tf_message([transform_stamped("vggt_world", "camera0_optical", clock.next(), np.eye(4))]))
        text = "another node publishes 'vggt_world' -> 'camera0_optical' on /tf too"
        warning = probe.wait_for(lambda: probe.logs(WARN, text), what="the second publisher's warning")
        assert "give each its frame_prefix" in warning[0].msg
        self.wait_outputs(probe, self.send(probe, clock))  # the node's own transforms are no other publisher's
        assert len(probe.logs(WARN, text)) == 1

    def test_mono8_gives_grey_points_and_a_size_change_restarts_the_window(self, setup):
        _, probe, clock = setup
        stamp = self.send(probe, clock, ROCKET_GREY, "mono8")
        self.wait_outputs(probe, stamp)
        colors = cloud_colors(cloud_array(probe.latest("/vggt/points", stamp)))
        assert (colors[..., 0] == colors[..., 1]).all() and (colors[..., 1] == colors[..., 2]).all()
        assert np.abs(colors - expected_colors(ROCKET_GREY)).max() <= 2
        assert len(probe.latest("/vggt/path", stamp).poses) == 1, "a new image size must start a new window"
        # The first image of the new size was dropped, the second started over.
        assert probe.logs(ERROR, "image size changed from 451x300 to 640x427 (WxH): set dropped")
        assert probe.wait_for(
            lambda: probe.logs(WARN, "image size changed from 451x300 to 640x427 (WxH): reconstruction starts over"),
            what="size warning",
        )

    @pytest.mark.parametrize("encoding", ["yuyv", "bayer_grbg8"])
    def test_what_cameras_send_before_image_proc_gives_the_photographs_colours(self, setup, encoding):
        """A UVC camera's YUV 4:2:2 and a machine-vision camera's Bayer mosaic were dropped as unsupported: the
        camera had to go through image_proc first. Within the losses of the encodings (chroma shared by pixel pairs,
        colours interpolated between sites), the points have the photograph's colours. (After the mono8 test: the
        even width YUV 4:2:2 needs changes the image size, which that test's warning must not see.)"""
        _, probe, clock = setup
        pairs = PILImage.fromarray(np.asarray(CHELSEA)[:, :450:2].repeat(2, axis=1))  # chroma pairs lose nothing
        photo = pairs if encoding == "yuyv" else CHELSEA
        stamp = self.send(probe, clock, photo, encoding)
        self.wait_outputs(probe, stamp)
        colors = cloud_colors(cloud_array(probe.latest("/vggt/points", stamp)))
        error = np.abs(colors - expected_colors(photo))
        # The decoded image at the model's resolution is within 2 (mean 0.3) of the photograph's for YUV 4:2:2, and
        # within 18 (mean 1.0) for the mosaic; the points' colours are within 2 of that image.
        assert error.max() <= (4 if encoding == "yuyv" else 20) and error.mean() <= (1 if encoding == "yuyv" else 2)

    @pytest.mark.parametrize(
        "corrupt, text",
        [
            (lambda m: setattr(m, "encoding", "16UC1"), "unsupported image encoding '16UC1'"),
            (
                lambda m: (
                    setattr(m, "height", 0),
                    setattr(m, "width", 0),
                    setattr(m, "step", 0),
                    setattr(m, "data", b""),
                ),
                "image is empty",
            ),
            (lambda m: setattr(m, "step", m.width * 3 - 1), "is smaller than width 451 x 3 bytes per pixel"),
            (lambda m: setattr(m, "data", bytes(m.data)[:-451]), "the message is truncated or its step is wrong"),
        ],
        ids=["unknown_encoding", "zero_size", "step_smaller_than_row", "truncated_data"],
    )
    def test_bad_image_is_reported_once_and_the_node_keeps_working(self, setup, corrupt, text):
        running, probe, clock = setup
        for _ in range(2):  # the same problem twice in a row: one throttled log line
            bad = image_message(CHELSEA, "rgb8", clock.next())
            corrupt(bad)
            probe.publishers["/cam/image"].publish(bad)
        probe.wait_for(lambda: probe.logs(ERROR, text), what=f"an error log saying {text!r}")
        stamp = self.send(probe, clock)
        self.wait_outputs(probe, stamp)
        assert len(probe.logs(ERROR, text)) == 1
        assert running.node.counts.windows_failed == 0

    def test_time_going_backwards_resets_the_window_and_says_so(self, setup):
        _, probe, clock = setup
        self.wait_outputs(probe, self.send(probe, clock))
        back = clock.now_ns - 30_000_000_000  # a bag loop
        probe.publishers["/cam/image"].publish(image_message(CHELSEA, "rgb8", back - 33_000_000))  # stale, dropped
        probe.wait_for(lambda: probe.logs(ERROR, "before the newest: image dropped"), what="the stale image's error")
        probe.publishers["/cam/image"].publish(image_message(CHELSEA, "rgb8", back))  # the loop goes on: confirmed
        probe.wait_for(lambda: probe.logs(ERROR, "time went backwards"), what="a time-went-backwards error")
        self.wait_outputs(probe, back)
        assert len(probe.latest("/vggt/path", back).poses) == 1
        assert "window reset" in probe.logs(ERROR, "time went backwards")[0].msg
        # The old world's windows, never saved, are gone: said as a cleanup says it (it went without a word).
        discarded = "window(s) merged since the last ~/save, never saved (call ~/save before a ~/reset to keep them"
        probe.wait_for(lambda: probe.logs(WARN, discarded), what="the warning of the windows discarded")
        # Carry on from the looped time.
        clock.now_ns = back
        self.wait_outputs(probe, self.send(probe, clock))

    def test_two_different_bad_encodings_are_both_reported_within_the_throttle_period(self, setup):
        running, probe, clock = setup
        for encoding in ("rgb16", "bayer_rggb16"):
            bad = image_message(CHELSEA, "rgb8", clock.next())
            bad.encoding = encoding
            probe.publishers["/cam/image"].publish(bad)
        for encoding in ("rgb16", "bayer_rggb16"):
            probe.wait_for(lambda: probe.logs(ERROR, f"'{encoding}'"), what=f"the error about {encoding}")

    def test_repeated_and_slightly_reordered_stamps_are_dropped_and_the_world_kept(self, setup):
        running, probe, clock = setup
        self.wait_outputs(probe, self.send(probe, clock))
        stamp = clock.next()
        probe.publishers["/cam/image"].publish(image_message(CHELSEA, "rgb8", stamp))
        self.wait_outputs(probe, stamp)
        poses = len(probe.latest("/vggt/path", stamp).poses)
        publish = probe.publishers["/cam/image"].publish
        publish(image_message(CHELSEA_MIRRORED, "rgb8", stamp))  # the same stamp again
        publish(image_message(CHELSEA_MIRRORED, "rgb8", stamp - 1_000_000))  # 1 ms out of order
        probe.wait_for(
            lambda: probe.logs(ERROR, "repeated") and probe.logs(ERROR, "out of order"),
            what="the repeated-stamp and out-of-order errors",
        )
        later = self.send(probe, clock, CHELSEA_MIRRORED)
        self.wait_outputs(probe, later)
        assert len(probe.latest("/vggt/path", later).poses) == poses + 1, "the world was kept"
        assert not probe.logs(ERROR, "time went backwards")[1:], "no reset beyond the earlier test's bag loop"

    def test_when_inference_lags_the_newest_frame_wins_and_drops_are_counted(self, setup):
        running, probe, clock = setup
        node = running.node
        dropped_before = node.counts.windows_dropped
        stamps = []
        for i in range(8):
            stamps.append(self.send(probe, clock, CHELSEA_MIRRORED if i % 2 else CHELSEA))
            time.sleep(0.01)
        self.wait_outputs(probe, stamps[-1])
        probe.wait_for(
            lambda: (
                node.counts.windows_published
                + node.counts.windows_dropped
                + node.counts.windows_failed
                + node.counts.windows_rejected
                == node.counts.windows_emitted
            ),
            timeout=10,
            what="counters to settle",
        )
        assert node.counts.windows_failed == 0 and node.counts.windows_rejected == 0
        assert node.counts.frame_sets_dropped == node.counts.windows_dropped  # stride 1: one new frame set per window
        published = [stamp_ns(m) for m in probe.received["/vggt/points"] if stamp_ns(m) in stamps]
        assert published[-1] == stamps[-1], "the newest frame must always be processed"
        assert published == sorted(published) and len(published) == len(set(published))
        assert len(published) + node.counts.windows_dropped - dropped_before <= len(stamps)


# ------------------------------------------------------------------------------------------- chained world
class TestWorldChaining:
    """The world, the map and their services over real rclpy (the chaining maths is tested in test_world.py)."""

    @pytest.fixture(scope="class")
    @classmethod
    def setup(cls, tmp_path_factory):
        save_directory = tmp_path_factory.mktemp("saved")
        running = Running(
            {
                "image_topics": ["/cam/image"],
                "window_size": 2,
                "map_publish_period_s": 0.2,
                "map_voxel_size": 0.05,
                "save_directory": str(save_directory),
            }
        )
        probe = Probe(["/cam/image"], ["/vggt/"])
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        probe.node.create_subscription(PointCloud2, "/vggt/map", probe._recorder("/vggt/map"), latched)
        probe.wait_connected()
        yield running, probe, Clock(), save_directory
        probe.close()
        running.close()

    @staticmethod
    def call(probe: Probe, service: str) -> Trigger.Response:
        client = probe.node.create_client(Trigger, service)
        assert client.wait_for_service(timeout_sec=WAIT_S), f"{service} not offered"
        future = client.call_async(Trigger.Request())
        probe.wait_for(future.done, what=f"{service} to answer")
        return future.result()

    @staticmethod
    def send_and_wait(probe: Probe, clock: Clock, photo=CHELSEA) -> int:
        stamp = TestOneCamera.send(probe, clock, photo)
        TestOneCamera.wait_outputs(probe, stamp)
        return stamp

    def test_map_is_latched_and_save_writes_map_and_trajectory(self, setup):
        running, probe, clock, save_directory = setup
        stamps = [self.send_and_wait(probe, clock, photo) for photo in (CHELSEA, CHELSEA_MIRRORED, CHELSEA)]
        cloud = probe.wait_for(lambda: probe.received.get("/vggt/map"), what="~/map")[-1]
        assert cloud.header.frame_id == "vggt_world" and [f.name for f in cloud.fields] == ["x", "y", "z", "rgb"]
        assert cloud.height == 1 and cloud.width > 0 and cloud.point_step == 16
        assert np.isfinite(np.frombuffer(bytes(cloud.data), np.float32).reshape(-1, 4)[:, :3]).all()

        response = self.call(probe, "/vggt/save")
        assert response.success, response.message
        assert (save_directory / "map.ply").stat().st_size > 0
        # The files' frame, the first camera's optical frame, under parent_frame z up (REP 103): its z (ahead) is
        # the parent's x, its x (right) the parent's -y, its y (down) the parent's -z.
        placement = yaml.safe_load((save_directory / "world_placement.yaml").read_text())
        assert placement["header"]["frame_id"] == "map" and placement["child_frame_id"] == "vggt_world"
        rotation = placement["transform"]["rotation"]
        parent_from_world = quaternion_matrix(SimpleNamespace(**rotation))
        np.testing.assert_allclose(parent_from_world, [[0, 0, 1], [-1, 0, 0], [0, -1, 0]], atol=1e-12)
        assert placement["transform"]["translation"] == {"x": 0.0, "y": 0.0, "z": 0.0}
        rows = [
            line.split()
            for line in (save_directory / "trajectory.tum").read_text().splitlines()
            if not line.startswith("#")
        ]
        path = probe.latest("/vggt/path", stamps[-1])
        assert len(rows) == len(path.poses) >= 3 and all(len(r) == 8 for r in rows)
        assert float(rows[-1][0]) == pytest.approx(stamps[-1] * 1e-9)
        last = path.poses[-1].pose.position
        assert [float(v) for v in rows[-1][1:4]] == pytest.approx([last.x, last.y, last.z], abs=1e-6)
        # ... and the newest keyframes as a COLMAP model and nerfstudio's transforms.json, read back by pycolmap.
        model = pycolmap.Reconstruction(str(save_directory / "colmap" / "sparse" / "0"))
        assert len(model.images) >= 3 and model.num_points3D() > 0
        assert all((save_directory / "images" / image.name).is_file() for image in model.images.values())
        assert all(
            camera.width == CHELSEA.width and camera.height == CHELSEA.height for camera in model.cameras.values()
        )
        transforms = json.loads((save_directory / "transforms.json").read_text())
        assert len(transforms["frames"]) == len(model.images)
        assert {f["file_path"] for f in transforms["frames"]} == {f"images/{i.name}" for i in model.images.values()}

    def test_reset_service_starts_a_new_world(self, setup):
        running, probe, clock, _ = setup
        self.send_and_wait(probe, clock)
        assert self.call(probe, "/vggt/reset").success
        stamp = self.send_and_wait(probe, clock, CHELSEA_MIRRORED)
        assert [stamp_ns(p) for p in probe.latest("/vggt/path", stamp).poses] == [stamp]
        transform = probe.tf_at("camera0_optical", stamp)
        translation = transform.transform.translation
        assert (translation.x, translation.y, translation.z) == pytest.approx((0, 0, 0), abs=1e-9), (
            "the first image defines the new world"
        )
        assert probe.wait_for(lambda: probe.logs(INFO, "reset requested"), what="reset log")


def test_a_save_that_fills_the_disk_keeps_the_previous_save_exactly_then_saves_whole_with_room(tmp_path):
    """Issue 19: on a full disk a save answered false, yet map.ply and trajectory.tum had changed and new frame files
    had appeared. A save is now all or nothing (staged, then swapped in), on a real filesystem that fills up."""
    with small_filesystem(tmp_path / "disk", 16 * 1024) as disk:
        saved = disk / "vggt_map"
        running = Running({"image_topics": ["/cam/image"], "window_size": 2, "save_directory": str(saved)})
        probe = Probe(["/cam/image"], ["/vggt/"])
        try:
            probe.wait_connected()
            clock = Clock()
            for photo in (CHELSEA, CHELSEA_MIRRORED):
                TestWorldChaining.send_and_wait(probe, clock, photo)
            first = TestWorldChaining.call(probe, "/vggt/save")
            assert first.success, first.message
            size = sum(p.stat().st_size for p in saved.rglob("*") if p.is_file())
            TestWorldChaining.send_and_wait(probe, clock, CHELSEA)  # the next save has more to write
            fill(disk, leave_bytes=size // 2)
            before = digests(saved)

            failed = TestWorldChaining.call(probe, "/vggt/save")
            assert not failed.success, failed.message
            assert digests(saved) == before
            assert "No space left on device" in failed.message and "(nothing there changed)" in failed.message
            assert sorted(p.name for p in saved.iterdir()) == sorted(
                [
                    *("map.ply", "trajectory.tum", "world_placement.yaml", "images", "depth", "confidence", "colmap"),
                    *("transforms.json", SAVE_RECORD),
                ]
            )

            (disk / "filler").unlink()
            again = TestWorldChaining.call(probe, "/vggt/save")
            assert again.success, again.message
            # The save names its node, so that another node's save into this folder is refused (test_files.py).
            assert (saved / SAVE_RECORD).read_text().splitlines()[0] == "# saved by /vggt"
            header, _, body = (saved / "map.ply").read_bytes().partition(b"end_header\n")
            count = int(
                next(line for line in header.decode().splitlines() if line.startswith("element vertex")).split()[2]
            )
            assert count > 0 and len(body) == count * 15  # float32 x, y, z and uint8 r, g, b per point
            model = pycolmap.Reconstruction(str(saved / "colmap" / "sparse" / "0"))
            assert len(model.images) == 3 == len(json.loads((saved / "transforms.json").read_text())["frames"])
            assert all((saved / "images" / image.name).is_file() for image in model.images.values())
        finally:
            probe.close()
            running.close()


def test_a_driver_that_stamps_zero_gets_a_window_per_image_and_one_warning():
    running = Running({"image_topics": ["/cam/image"], "window_size": 2})
    probe = Probe(["/cam/image"], ["/vggt/"])
    try:
        probe.wait_connected()
        for index in range(3):
            probe.publishers["/cam/image"].publish(image_message((CHELSEA, CHELSEA_MIRRORED)[index % 2], "rgb8", 0))
            probe.wait_for(lambda: running.node.counts.windows_published == index + 1, what=f"window {index + 1}")
        assert len(probe.logs(WARN, "stamps its images 0")) == 1
        path = probe.wait_for(
            lambda: next((p for p in probe.received.get("/vggt/path", []) if len(p.poses) == 3), None),
            what="the third window's path",
        )
        stamps = [stamp_ns(pose) for pose in path.poses]
        assert stamps == sorted(set(stamps)) and stamps[0] > 0  # arrival times, in order
    finally:
        probe.close()
        running.close()


def test_a_camera_clock_ahead_of_the_nodes_is_a_warning_and_a_diagnostics_warn():
    """A camera on another computer without time sync, 30 s ahead: the node published every output 30 s in the
    future while /diagnostics said OK, with a negative latency."""
    from diagnostic_msgs.msg import DiagnosticArray

    running = Running({"image_topics": ["/cam/image"], "window_size": 2})
    probe = Probe(["/cam/image"], ["/vggt/"])
    reports = []
    probe.node.create_subscription(DiagnosticArray, "/diagnostics", reports.append, 10)
    try:
        probe.wait_connected()
        for index in range(2):
            ahead = time.time_ns() + 30 * 1_000_000_000
            probe.publishers["/cam/image"].publish(image_message((CHELSEA, CHELSEA_MIRRORED)[index], "rgb8", ahead))
            probe.wait_for(lambda: running.node.counts.windows_published == index + 1, what=f"window {index + 1}")
        (warning,) = probe.wait_for(lambda: probe.logs(WARN, "ahead of this node's clock"), what="the warning")
        ahead_s = float(warning.msg.removeprefix("camera 'camera0': its images are stamped ").split(" s ahead")[0])
        assert 29.5 < ahead_s <= 30.0  # less the delivery

        def camera_status():
            statuses = [s for report in list(reports) for s in report.status if s.name == "vggt: camera camera0"]
            return statuses[-1] if statuses and statuses[-1].level == b"\x01" else None

        status = probe.wait_for(camera_status, what="the camera's WARN on /diagnostics")
        assert status.message.startswith("stamped ") and status.message.endswith(
            " s ahead of this node's clock (see the log)"
        )
        assert 29.5 < float(status.message.split()[1]) <= 30.0
    finally:
        probe.close()
        running.close()


def jpeg_message(photo: PILImage.Image, stamp_ns: int, data: bytes | None = None) -> CompressedImage:
    """A sensor_msgs/CompressedImage as image_transport's compressed plugin sends it (JPEG from Pillow)."""
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=90)
    msg = CompressedImage(format="rgb8; jpeg compressed bgr8")
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.header.frame_id = "camera"
    msg.data = buffer.getvalue() if data is None else data
    return msg


def test_compressed_transport_reads_jpeg_and_reports_a_corrupt_one_once():
    running = Running({"image_topics": ["/cam/image"], "image_transport": "compressed", "window_size": 2})
    probe = Probe([], ["/vggt/"])
    publisher = probe.node.create_publisher(CompressedImage, "/cam/image/compressed", 10)
    try:
        probe.wait_for(lambda: publisher.get_subscription_count() > 0, what="the node on /cam/image/compressed")
        clock = Clock()
        first = clock.next()
        publisher.publish(jpeg_message(CHELSEA, first))
        TestOneCamera.wait_outputs(probe, first)
        depth = float_image(probe.latest("/vggt/depth/image", first))
        assert depth.shape == MODEL_HW
        whole = jpeg_message(CHELSEA, 0).data
        for _ in range(3):  # a truncated file, three times: one error line
            publisher.publish(jpeg_message(CHELSEA, clock.next(), data=bytes(whole[: len(whole) // 2])))
        errors = probe.wait_for(lambda: probe.logs(ERROR, "corrupt"), what="the corrupt-JPEG error")
        later = clock.next()
        publisher.publish(jpeg_message(CHELSEA_MIRRORED, later))
        TestOneCamera.wait_outputs(probe, later)  # still working
        assert len(probe.logs(ERROR, "corrupt")) == 1, [m.msg for m in errors]
    finally:
        probe.close()
        running.close()


def test_remapping_the_image_topic_moves_its_compressed_topic_as_image_transport_does():
    """The node subscribed to '/cam/image/compressed' under a remap of '/cam/image', said it listened to the
    remapped topic, and then blamed the DDS transports for the silence. (The start-up line and the input watchdog
    name the topics the subscriptions use: one list, `ReconstructionNode._image_topics`.)"""
    remap = ["--ros-args", "-r", "/cam/image:=/robot/camera/image_raw"]
    running = Running({"image_topics": ["/cam/image"], "image_transport": "compressed", "window_size": 2}, remap)
    probe = Probe([], ["/vggt/"])
    publisher = probe.node.create_publisher(CompressedImage, "/robot/camera/image_raw/compressed", 10)
    try:
        probe.wait_for(lambda: publisher.get_subscription_count() > 0, what="the node on the remapped topic")
        assert probe.node.count_subscribers("/cam/image/compressed") == 0
        first = Clock().next()
        publisher.publish(jpeg_message(CHELSEA, first))
        TestOneCamera.wait_outputs(probe, first)
    finally:
        probe.close()
        running.close()


def test_a_remap_that_swaps_two_raw_image_topics_is_applied_once():
    """Subscribed by their resolved names, raw topics were remapped twice: a swap of the cameras' topics undone,
    while the start-up line named the swapped ones."""
    swap = ["--ros-args", "-r", "/left/image:=/right/image", "-r", "/right/image:=/left/image"]
    running = Running({"image_topics": ["/left/image", "/right/image"], "window_size": 2}, swap)
    probe = Probe(["/left/image", "/right/image"], ["/vggt/camera0/"])
    try:
        probe.wait_connected()
        probe.publishers["/right/image"].publish(image_message(CHELSEA, "rgb8", Clock().next()))
        probe.wait_for(lambda: sum(running.node._input.camera_images) == 1, what="the image")
        assert running.node._input.camera_images == [1, 0]  # camera 0 ('/left/image' given) reads /right/image
    finally:
        probe.close()
        running.close()


def test_a_flood_of_bad_compressed_images_gives_one_error_line_per_kind():
    """Issue 19 item 8: the log throttle keys on the kind of problem, not on the text (which carries byte counts)."""
    running = Running({"image_topics": ["/cam/image"], "image_transport": "compressed", "window_size": 2})
    probe = Probe([], ["/vggt/"])
    reliable = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
    publisher = probe.node.create_publisher(CompressedImage, "/cam/image/compressed", reliable)
    try:
        probe.wait_for(lambda: publisher.get_subscription_count() > 0, what="the node on /cam/image/compressed")
        clock = Clock()
        whole = jpeg_message(CHELSEA, 0).data
        for index in range(100):  # garbage of 100 different lengths, then 100 JPEGs truncated at different lengths
            publisher.publish(jpeg_message(CHELSEA, clock.next(), data=bytes(1000 + index)))
            time.sleep(0.002)  # the node's queue keeps 5: let it take them
        for index in range(100):
            publisher.publish(jpeg_message(CHELSEA, clock.next(), data=bytes(whole[: len(whole) // 2 + index])))
            time.sleep(0.002)
        good = clock.next()
        publisher.publish(jpeg_message(CHELSEA_MIRRORED, good))
        TestOneCamera.wait_outputs(probe, good)  # every bad image was handled before it
        assert running.node.images_received >= 50, "most bad images reached the node"
        errors = [m.msg for m in probe.logs(ERROR, "camera 'camera0'")]
        assert 1 <= len(errors) <= 2, errors  # one per kind of problem, within the 5 s period
    finally:
        probe.close()
        running.close()


class SlowPipelineForLockTests:
    """Test double: the real pipeline, except that its ``hold_from``-th `predict` call (and later ones) blocks
    until `release` is set: an inference that is still running."""

    def __init__(self, pipeline, hold_from: int) -> None:
        self.pipeline, self.hold_from, self.calls = pipeline, hold_from, 0
        self.device, self.frames, self.image_hw = pipeline.device, pipeline.frames, pipeline.image_hw
        self.inside, self.release = threading.Event(), threading.Event()

    def encode(self, images):
        return self.pipeline.encode(images)

    def predict(self, *args, **kwargs):
        self.calls += 1
        if self.calls >= self.hold_from:
            self.inside.set()
            self.release.wait(timeout=WAIT_S)
        return self.pipeline.predict(*args, **kwargs)


def test_services_and_the_map_timer_answer_while_an_inference_runs(monkeypatch, tmp_path):
    import vggt_ros.live.startup as startup_module

    slow = []
    create = startup_module.create_pipeline
    monkeypatch.setattr(
        startup_module,
        "create_pipeline",
        lambda config: slow.append(SlowPipelineForLockTests(create(config), hold_from=2)) or slow[0],
    )
    running = Running(
        {"image_topics": ["/cam/image"], "window_size": 2, "map_publish_period_s": 0.3, "save_directory": str(tmp_path)}
    )
    probe = Probe(["/cam/image"], ["/vggt/"])
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    probe.node.create_subscription(PointCloud2, "/vggt/map", probe._recorder("/vggt/map"), latched)
    pipeline = slow[0]
    try:
        probe.wait_connected()
        clock = Clock()
        TestWorldChaining.send_and_wait(probe, clock)
        probe.wait_for(lambda: probe.received.get("/vggt/map"), what="the first window's map")
        TestOneCamera.send(probe, clock, CHELSEA_MIRRORED)  # its window's inference blocks
        assert pipeline.inside.wait(WAIT_S), "the second window's inference did not start"
        node = running.node
        checks = node.counts.map_checks
        probe.wait_for(
            lambda: node.counts.map_checks >= checks + 2, timeout=5.0, what="the map timer during an inference"
        )
        saved = TestWorldChaining.call(probe, "/vggt/save")
        assert saved.success and (tmp_path / "map.ply").stat().st_size > 0, saved.message
        reset = TestWorldChaining.call(probe, "/vggt/reset")
        # It takes effect at the next window, which a save before it could not tell.
        assert reset.success and reset.message.endswith("; until then ~/save saves this one"), reset.message
        assert not pipeline.release.is_set() and running.node.counts.windows_published == 1, (
            "all while the inference ran"
        )
    finally:
        pipeline.release.set()
        probe.close()
        running.close()


def test_the_executor_neither_builds_the_map_nor_waits_for_an_integration(monkeypatch):
    """Issue 18 item 13: the ~/map message is built off the executor thread, and the executor keeps answering
    while the worker holds the world lock (as during a long integration) with the map on."""
    import vggt_ros.ros.node as node_module

    builders: list[threading.Thread] = []
    build = node_module.map_message
    monkeypatch.setattr(
        node_module, "map_message", lambda *args: builders.append(threading.current_thread()) or build(*args)
    )
    running = Running({"image_topics": ["/cam/image"], "window_size": 2, "map_publish_period_s": 0.1})
    probe = Probe(["/cam/image"], ["/vggt/"])
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    probe.node.create_subscription(PointCloud2, "/vggt/map", probe._recorder("/vggt/map"), latched)
    try:
        probe.wait_connected()
        TestWorldChaining.send_and_wait(probe, Clock())
        probe.wait_for(
            lambda: any(cloud.width > 0 for cloud in probe.received.get("/vggt/map", [])), what="the window's map"
        )
        assert builders and running.spinner.thread not in builders, "the map message was built on the executor thread"

        client = probe.node.create_client(Trigger, "/vggt/reset")
        assert client.wait_for_service(timeout_sec=WAIT_S)
        with running.node._live.world_lock:  # the worker integrating a window, for up to 2.5 s (25 map periods)
            time.sleep(0.5)  # the map timer has fired meanwhile
            future = client.call_async(Trigger.Request())
            deadline = time.monotonic() + 2.0
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.01)
            answered_while_locked = future.done()
        assert answered_while_locked, "the executor waited for the world lock (the map timer read the map)"
        probe.wait_for(future.done, what="~/reset to answer")
    finally:
        probe.close()
        running.close()


class BlockingSaveForTests:
    """Test double of `save_world`: the real save, once `release` is set (a save that takes long: 20 s for 50
    keyframes at 1280x720, mostly PNG encoding)."""

    def __init__(self, save, seconds_each: float = 0.0) -> None:
        self.save, self.seconds_each = save, seconds_each
        self.inside, self.release = threading.Event(), threading.Event()
        self.threads: list[threading.Thread] = []

    def __call__(self, *args):
        self.threads.append(threading.current_thread())
        self.inside.set()
        self.release.wait(timeout=WAIT_S)
        time.sleep(self.seconds_each)
        return self.save(*args)


def test_a_long_save_runs_off_the_executor_and_a_cleanup_waits_for_it(monkeypatch, tmp_path):
    """~/save ran on the executor thread: for a 20 s save the node heard no camera (and blamed it), sent no
    map -> odom and no /diagnostics, and answered no lifecycle service."""
    from lifecycle_msgs.msg import State, Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    # Each save takes 0.3 s at least once released: a client hears every answer to the service, not only its own,
    # and keeps the last 10, so answers that come all at once can push out its own.
    blocking = BlockingSaveForTests(node_module.save_world, seconds_each=0.3)
    monkeypatch.setattr(node_module, "save_world", blocking)
    running = Running({"image_topics": ["/cam/image"], "window_size": 2, "save_directory": str(tmp_path / "saved")})
    probe = Probe(["/cam/image"], ["/vggt/"])
    node = running.node
    try:
        probe.wait_connected()
        clock = Clock()
        TestWorldChaining.send_and_wait(probe, clock)
        callers = [probe.node.create_client(Trigger, "/vggt/save") for _ in range(13)]
        assert all(caller.wait_for_service(timeout_sec=WAIT_S) for caller in callers)
        saving = callers[0].call_async(Trigger.Request())
        assert blocking.inside.wait(WAIT_S), "the save did not start"
        assert running.spinner.thread not in blocking.threads, "the save ran on the executor thread"

        # Meanwhile the cameras are heard and windows published.
        TestOneCamera.send(probe, clock, CHELSEA_MIRRORED)
        probe.wait_for(lambda: node.counts.windows_published >= 2, timeout=20.0, what="a window during the save")
        # And more requests are taken, from other callers, at once: each one is answered. (A save in progress held
        # the service: the others waited in its queue, which keeps the last 10, and the oldest of 11 was lost.)
        queued = [caller.call_async(Trigger.Request()) for caller in callers[1:12]]
        probe.wait_for(lambda: node.saves_in_flight == 12, timeout=10.0, what="every request taken")
        assert not saving.done() and not any(q.done() for q in queued)
        blocking.release.set()
        probe.wait_for(lambda: saving.done() and all(q.done() for q in queued), what="the saves' answers")
        assert saving.result().success and (tmp_path / "saved" / "map.ply").stat().st_size > 0, saving.result()
        assert all(q.result().success for q in queued)

        # A cleanup waits for a save in progress, which reads the session it releases; then both answer.
        blocking.inside.clear()
        blocking.release.clear()
        last = callers[12].call_async(Trigger.Request())
        assert blocking.inside.wait(WAIT_S), "the last save did not start"
        change = probe.node.create_client(ChangeState, "/vggt/change_state")
        assert change.wait_for_service(timeout_sec=WAIT_S)
        deactivated = change.call_async(ChangeState.Request(transition=Transition(id=Transition.TRANSITION_DEACTIVATE)))
        probe.wait_for(deactivated.done, what="the deactivation")
        cleaned = change.call_async(ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CLEANUP)))
        time.sleep(0.5)
        assert not cleaned.done() and not last.done()
        blocking.release.set()
        probe.wait_for(lambda: last.done() and cleaned.done(), what="the last save and the cleanup")
        assert last.result().success and cleaned.result().success
        get = probe.node.create_client(GetState, "/vggt/get_state")
        assert get.wait_for_service(timeout_sec=WAIT_S)
        state = get.call_async(GetState.Request())
        probe.wait_for(state.done, what="the state")
        assert state.result().current_state.id == State.PRIMARY_STATE_UNCONFIGURED

        # Unconfigured, ~/save is still offered, and says there is nothing to save.
        answer = TestWorldChaining.call(probe, "/vggt/save")
        assert not answer.success and answer.message == "nothing to save: the node is not configured"
        assert not probe.logs(WARN, "never saved")  # the last save held both windows
    finally:
        blocking.release.set()
        probe.close()
        running.close()


def test_saving_before_any_window_says_the_map_is_empty_and_the_node_keeps_running(tmp_path):
    running = Running({"image_topics": ["/cam/image"], "save_directory": str(tmp_path / "saved")})
    probe = Probe(["/cam/image"], ["/vggt/"])
    try:
        probe.wait_connected()
        response = TestWorldChaining.call(probe, "/vggt/save")
        assert not response.success and "the map is empty" in response.message
        assert response.message.startswith(f"nothing saved to '{tmp_path / 'saved'}'")
        assert not (tmp_path / "saved" / "map.ply").exists()
        # An answer, not a failure: logged as a warning (it was an ERROR "could not save", as a failed disk write).
        probe.wait_for(lambda: probe.logs(WARN, "the map is empty"), what="the empty save's warning")
        assert not probe.logs(ERROR, "the map is empty")
        TestWorldChaining.send_and_wait(probe, Clock())  # still working
        assert TestWorldChaining.call(probe, "/vggt/save").success
    finally:
        probe.close()
        running.close()


def test_a_save_whose_every_point_was_filtered_out_keeps_the_trajectory(tmp_path):
    """confidence_threshold above every confidence: windows merged and the path grew, but ~/save refused with "the
    map is empty", so the valid trajectory could not be saved either."""
    saved = tmp_path / "saved"
    running = Running({"image_topics": ["/cam/image"], "save_directory": str(saved), "confidence_threshold": 1e30})
    probe = Probe(["/cam/image"], ["/vggt/"])
    try:
        probe.wait_connected()
        clock = Clock()
        stamps = [TestWorldChaining.send_and_wait(probe, clock, photo) for photo in (CHELSEA, CHELSEA_MIRRORED)]
        response = TestWorldChaining.call(probe, "/vggt/save")
        assert response.success, response.message
        assert "no map: every merged point was filtered out" in response.message
        assert not (saved / "map.ply").exists()
        trajectory = file_interface.read_tum_trajectory_file(str(saved / "trajectory.tum"))
        assert [round(t * 1e9) for t in trajectory.timestamps] == stamps
    finally:
        probe.close()
        running.close()


def test_windows_the_world_cannot_align_are_reported_and_the_node_keeps_running():
    # Default thresholds: the random tiny model's windows disagree, so they are rejected, never merged silently.
    running = Running({"image_topics": ["/cam/image"], "window_size": 2, **DEFAULT_WORLD})
    probe = Probe(["/cam/image"], ["/vggt/"])
    try:
        probe.wait_connected()
        clock = Clock()
        TestWorldChaining.send_and_wait(probe, clock)
        for photo in (CHELSEA_MIRRORED, CHELSEA, CHELSEA_MIRRORED):
            TestOneCamera.send(probe, clock, photo)
            time.sleep(0.5)
        probe.wait_for(lambda: probe.logs(ERROR, "not merged into the world"), what="a rejection report")
        node = running.node
        probe.wait_for(
            lambda: (
                node.counts.windows_published + node.counts.windows_rejected + node.counts.windows_dropped
                == node.counts.windows_emitted
                == 4
            ),
            what="every window accounted for",
        )
        assert node.counts.windows_rejected >= 1 and node.counts.windows_failed == 0
        time.sleep(0.5)  # let the last publications arrive
        assert len(probe.received["/vggt/points"]) == node.counts.windows_published, "a rejected window was published"
    finally:
        probe.close()
        running.close()


# ------------------------------------------------------------------------------------------- two cameras
class TestTwoCameras:
    TOPICS = ["/left/image", "/right/image"]

    @pytest.fixture(scope="class")
    @classmethod
    def setup(cls, tmp_path_factory):
        running = Running(
            {
                "image_topics": cls.TOPICS,
                "camera_names": ["left", "right"],
                "window_size": 2,
                "slop_s": 0.02,
                "save_directory": str(tmp_path_factory.mktemp("saved")),
            }
        )
        probe = Probe(cls.TOPICS, ["/vggt/left/", "/vggt/right/"])
        probe.wait_connected()
        yield running, probe, Clock()
        probe.close()
        running.close()

    @staticmethod
    def send_pair(probe: Probe, clock: Clock, left=CHELSEA, right=CHELSEA_MIRRORED) -> tuple[int, int]:
        stamp = clock.next()
        right_stamp = stamp + 5_000_000  # 5 ms apart: within slop
        probe.publishers["/left/image"].publish(image_message(left, "rgb8", stamp))
        probe.publishers["/right/image"].publish(image_message(right, "bgr8", right_stamp))
        return stamp, right_stamp

    @staticmethod
    def wait_outputs(probe: Probe, stamps: tuple[int, int]) -> None:
        def arrived():
            per_camera = all(
                probe.latest(f"/vggt/{name}/{topic}", stamp) and probe.tf_at(f"{name}_optical", stamp)
                for name, stamp in zip(("left", "right"), stamps)
                for topic in ("depth/image", "confidence", "depth/camera_info")
            )
            return per_camera and probe.latest("/vggt/points", stamps[0]) and probe.latest("/vggt/path", stamps[0])

        probe.wait_for(arrived, what=f"both cameras' outputs for {stamps}")

    def test_each_camera_gets_its_topics_frames_and_a_consistent_cloud(self, setup):
        _, probe, clock = setup
        first = self.send_pair(probe, clock)
        self.wait_outputs(probe, first)
        stamps = self.send_pair(probe, clock)
        self.wait_outputs(probe, stamps)
        height, width = MODEL_HW
        for name, stamp in zip(("left", "right"), stamps):
            assert probe.latest(f"/vggt/{name}/depth/image", stamp).header.frame_id == f"{name}_optical"
            assert probe.latest(f"/vggt/{name}/depth/camera_info", stamp).header.frame_id == f"{name}_optical"
            assert probe.tf_at(f"{name}_optical", stamp).header.frame_id == "vggt_world"
        cloud_msg = probe.latest("/vggt/points", stamps[0])
        assert (cloud_msg.height, cloud_msg.width) == (2 * height, width)  # the newest set: left rows, then right
        cloud = cloud_array(cloud_msg)
        check_consistency(probe, "/vggt/left/", "left_optical", cloud, stamps[0], slice(0, height))
        check_consistency(probe, "/vggt/right/", "right_optical", cloud, stamps[1], slice(height, 2 * height))
        assert np.abs(cloud_colors(cloud[height:]) - expected_colors(CHELSEA_MIRRORED)).max() <= 2
        path = probe.latest("/vggt/path", stamps[0])
        assert [stamp_ns(p) for p in path.poses] == [first[0], stamps[0]]

    def test_cameras_with_different_resolutions_are_reported_and_the_node_keeps_working(self, setup):
        running, probe, clock = setup
        self.send_pair(probe, clock, right=ROCKET_GREY.convert("RGB"))
        probe.wait_for(
            lambda: probe.logs(ERROR, "cameras have different resolutions (left 451x300, right 640x427"),
            what="resolution error",
        )
        self.wait_outputs(probe, self.send_pair(probe, clock))
        assert running.node.counts.windows_failed == 0

    def test_save_writes_one_trajectory_per_camera_that_evo_reads(self, setup):
        running, probe, clock = setup
        sent = [self.send_pair(probe, clock) for _ in range(2)]
        self.wait_outputs(probe, sent[-1])
        response = TestWorldChaining.call(probe, "/vggt/save")
        assert response.success, response.message
        directory = Path(running.node.params.save_directory)
        for camera, name in enumerate(("trajectory.tum", "trajectory_right.tum")):
            trajectory = file_interface.read_tum_trajectory_file(directory / name)
            valid, details = trajectory.check()
            assert valid, (name, details)
            assert name in response.message
            # Only this camera's stamps, the newest pair's last, written exactly from the nanoseconds.
            stamps = [line.split()[0] for line in (directory / name).read_text().splitlines() if line[0] != "#"]
            assert stamps[-1] == f"{sent[-1][camera] // 10**9}.{sent[-1][camera] % 10**9:09d}"
            offset = sent[-1][camera] - sent[-1][0]  # the right camera stamps 5 ms after the left
            assert all(int(stamp.replace(".", "")) % 100_000_000 == offset for stamp in stamps)


# ------------------------------------------------------------------------------------ exported engines
def test_namespaced_nodes_with_frame_prefixes_publish_apart_on_the_one_tf():
    """Two robots' nodes under namespaces published the same frame ids on the one /tf: a tf2 listener's camera
    jumped between the robots, and both clouds were drawn in one 'vggt_world'. frame_prefix names each node's own
    frames apart (the parent frame is the robots' shared map)."""
    robots = ("robot1", "robot2")
    nodes = [
        Running(
            {"image_topics": ["image"], "frame_prefix": f"{robot}/"}, cli_args=["--ros-args", "-r", f"__ns:=/{robot}"]
        )
        for robot in robots
    ]
    probe = Probe([f"/{robot}/image" for robot in robots], [])
    # Both nodes' latched transforms, as tf2_ros' static listener keeps them (the probe's depth 1 keeps one).
    static = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    probe.node.create_subscription(TFMessage, "/tf_static", probe._recorder("both /tf_static"), static)
    try:
        tf_subscription = next(s for s in probe.subscriptions if s.topic_name == "/tf")
        probe.wait_for(
            lambda: (
                all(p.get_subscription_count() > 0 for p in probe.publishers.values())
                and tf_subscription.get_publisher_count() >= len(robots)
            ),
            what="DDS discovery between the probe and both nodes",
        )
        stamp = Clock().next()
        for robot in robots:
            probe.publishers[f"/{robot}/image"].publish(image_message(CHELSEA, "rgb8", stamp))
        probe.wait_for(
            lambda: all(probe.tf_at(f"{robot}/camera0_optical", stamp) for robot in robots),
            what="both robots' camera transforms",
        )
        for robot in robots:
            assert probe.tf_at(f"{robot}/camera0_optical", stamp).header.frame_id == f"{robot}/vggt_world"
        assert probe.tf_at("camera0_optical", stamp) is None

        def worlds_under_map():
            return {
                (t.header.frame_id, t.child_frame_id)
                for m in probe.received.get("both /tf_static", [])
                for t in m.transforms
            }

        probe.wait_for(
            lambda: worlds_under_map() == {("map", f"{robot}/vggt_world") for robot in robots},
            what="both worlds under map",
        )
    finally:
        probe.close()
        for node in nodes:
            node.close()


class TestOnnxRuntimeEngines:
    """The node on exported graphs (ONNX Runtime, CPU): it runs, and engines that cannot hold its windows stop it."""

    @pytest.fixture(scope="class")
    def engine_dir(self, tmp_path_factory):
        from vggt_ros.export import export_onnx
        from vggt_ros.model import VGGT
        from vggt_ros.runtime.io_contract import FramesProfile

        out = tmp_path_factory.mktemp("engines")
        export_onnx(VGGT.from_pretrained(WEIGHTS), out, MODEL_HW, FramesProfile(1, 1, 2))
        return str(out)

    def test_engines_for_too_few_frames_fail_at_start_up_with_the_fix(self, engine_dir):
        overrides = {
            "backend": "onnxruntime",
            "engine_dir": engine_dir,
            "image_topics": ["/cam/image"],
            "window_size": 3,
            "loop_closure": False,  # the window, not the loop pass, is what does not fit
        }
        with pytest.raises(StartupError) as err:
            Running(overrides)
        text = str(err.value)
        assert "the engines accept 1..2 frames, but this session runs 1..3 images per call" in text
        expected_fix = (
            "vggt-ros-build-engines --backend onnxruntime --weights <weights> --height <model input height> "
            f"--width {IMAGE_SIZE} --max-frames 3 --out {engine_dir}"
        )
        assert expected_fix in text

    def test_loop_closure_needs_engines_for_its_pass_and_start_up_says_so(self, engine_dir):
        """Windows of 2 fit these engines, the 4-frame loop pass does not: every loop failed, mid-run."""
        overrides = {"backend": "onnxruntime", "engine_dir": engine_dir, "image_topics": ["/cam/image"]}
        with pytest.raises(StartupError) as err:
            Running({**overrides, "window_size": 2})
        text = str(err.value)
        assert "this session runs 1..4 images per call (a loop closure pass, or turn loop closure off)" in text
        assert "--max-frames 4" in text

    def test_node_runs_on_the_exported_graphs(self, engine_dir):
        running = Running(
            {
                "backend": "onnxruntime",
                "engine_dir": engine_dir,
                "image_topics": ["/cam/image"],
                "window_size": 2,
                "loop_closure": False,  # its 4-frame pass needs engines for 4 frames
            }
        )
        probe = Probe(["/cam/image"], ["/vggt/"])
        try:
            probe.wait_connected()
            clock = Clock()
            for photo in (CHELSEA, CHELSEA_MIRRORED):
                stamp = TestOneCamera.send(probe, clock, photo)
                TestOneCamera.wait_outputs(probe, stamp)
            cloud = cloud_array(probe.latest("/vggt/points", stamp))
            check_consistency(probe, "/vggt/", "camera0_optical", cloud, stamp, slice(None))
            assert len(probe.latest("/vggt/path", stamp).poses) == 2
        finally:
            probe.close()
            running.close()


# ------------------------------------------------------------------------------------------------ start-up
def _run_node_process(*ros_args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        node_command({"device": "cpu"}, *ros_args),
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_shipped_parameter_file_starts_the_node_and_ctrl_c_stops_it_cleanly():
    params_file = Path(__file__).resolve().parents[2] / "config" / "reconstruct.yaml"
    command = node_command({}, "--params-file", str(params_file))
    command += ["-p", f"weights:={WEIGHTS}", "-p", "device:=cpu", "-p", "precision:=fp32"]
    marker = "listening to ['/camera/image_raw'] as ['camera0']"
    output = start_then_interrupt(command, marker, start_timeout_s=60, exit_timeout_s=30)
    assert "window 8 (stride 1)" in output  # the file's values, not a default elsewhere
    assert "Traceback" not in output


def test_missing_weights_fail_at_start_up_with_the_fix():
    result = _run_node_process("-p", "weights:=/nonexistent/vggt_weights")
    assert result.returncode == 1
    assert "cannot load the torch pipeline (weights '/nonexistent/vggt_weights'" in result.stderr
    assert "Fix: set 'weights'" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_parameter_fails_at_start_up_naming_it():
    result = _run_node_process("-p", f"weights:={WEIGHTS}", "-p", "window_size:=3", "-p", "window_stride:=5")
    assert result.returncode == 1
    assert "window_stride must be in [1, window_size=3]" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "values, message",
    [
        ({"slop_s": 0.0}, "slop_s must be a finite number of seconds > 0"),
        ({"slop_s": float("nan")}, "slop_s must be a finite number of seconds > 0"),
        ({"queue_size": 0}, "queue_size must be in [1, 100] images"),
        ({"save_directory": " "}, "save_directory must name a folder"),
        ({"window_size": 10000}, "window_size must be in [2, 64]"),
        ({"window_size": 1}, "window_size must be in [2, 64]"),  # it merged the first window only
        ({"image_size": 14000}, "image_size must be in [14, 1036]"),
        ({"image_size": 500}, "image_size must be a positive multiple of the patch size 14 (518 for VGGT-1B), got 500"),
        ({"world_frame": "/vggt_world"}, "no leading '/'"),
        ({"odom_frame": "odom ", "robot_base_frame": "base_link"}, "no spaces"),
        ({"metric_scale_source": "depth"}, "one depth topic per image topic"),
        (
            {
                "metric_scale_source": "odometry",
                "odom_frame": "odom",
                "robot_base_frame": "base_link",
                "publish_odom_tf": True,
            },
            "use one or the other",
        ),
        (  # the node's odometry is in metres: without a scale source odom -> base never went out, without a word
            {"odom_frame": "odom", "robot_base_frame": "base_link", "publish_odom_tf": True},
            "set metric_scale_source to depth or rig",
        ),
    ],
)
def test_parameter_values_are_checked_with_the_fix(values, message):
    with pytest.raises(ValueError) as err:
        NodeParameters(**values)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "ros_args, message",
    [
        (("-p", "slop_s:=0.0"), "slop_s must be a finite number of seconds > 0"),
        (("-p", "tracking_lost_after:=0"), "bad parameter: tracking_lost_after must be an int >= 1, got 0"),
        (("-p", "image_topics:=['/camera/image raw']"), "is not a valid ROS topic name"),
        (
            ("-p", "metric_scale_source:=depth", "-p", "depth_topics:=['depth?']"),
            "'depth?' is not a valid ROS topic name",
        ),
        (("-p", "image_topics:=[]"), "image_topics must list 1 or more"),  # YAML's [] has no type: not the default
        (
            ("-p", "image_topics:=['image', '/image']"),  # one topic in the root namespace, written two ways
            "image_topics 'image' and image_topics '/image' both resolve to '/image'",
        ),
        (
            (
                "-p",
                "metric_scale_source:=depth",
                "-p",
                "image_topics:=['/cam/image']",
                "-p",
                "depth_topics:=['/cam/image']",
            ),
            "image_topics '/cam/image' and depth_topics '/cam/image' both resolve to '/cam/image'",
        ),
        (("-p", "windows_size:=3"), "unknown parameter 'windows_size' (did you mean 'window_size'?)"),
        (("--params-file", "/nonexistent/params.yaml"), "Couldn't parse params file"),
    ],
)
def test_each_start_up_error_is_one_fatal_line_and_exit_code_1(ros_args, message):
    result = _run_node_process("-p", f"weights:={WEIGHTS}", *ros_args)
    assert result.returncode == 1, result.stderr
    fatal = [line for line in result.stderr.splitlines() if "FATAL" in line]
    assert len(fatal) == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_cameras_that_never_pair_are_named_with_their_offsets():
    running = Running(
        {
            "image_topics": TestTwoCameras.TOPICS,
            "camera_names": ["left", "right"],
            "slop_s": 0.02,
            "input_timeout_s": 1.0,
        }
    )
    probe = Probe(TestTwoCameras.TOPICS, ["/vggt/left/", "/vggt/right/"])
    try:
        probe.wait_connected()
        clock = Clock()
        deadline = time.monotonic() + WAIT_S
        while not probe.logs(WARN, "have not formed a frame set") and time.monotonic() < deadline:
            stamp = clock.next()  # the right camera's clock runs 50 ms ahead: never within the 20 ms slop
            probe.publishers["/left/image"].publish(image_message(CHELSEA, "rgb8", stamp))
            probe.publishers["/right/image"].publish(image_message(CHELSEA_MIRRORED, "rgb8", stamp + 50_000_000))
            time.sleep(0.1)
        warning = probe.wait_for(lambda: probe.logs(WARN, "have not formed a frame set"), what="the pairing warning")
        assert "'right' +50.0 ms" in warning[0].msg and "less than slop_s (20 ms) apart" in warning[0].msg
        assert running.node.counts.windows_emitted == 0
    finally:
        probe.close()
        running.close()


# The node as its own process (`node_command`'s -p values): the tiny model, one camera, windows of two.
ONE_CAMERA_PROCESS = {
    "weights": WEIGHTS,
    "device": "cpu",
    "precision": "fp32",
    "image_topics": "['/cam/image']",
    "window_size": 2,
    **PERMISSIVE_WORLD,
}


def test_sigint_during_an_inference_finishes_and_publishes_that_window_then_exits_cleanly():
    """The worker is stopped before the ROS context goes away: the window in flight is published, and no
    "publisher's context is invalid" error appears (rclpy's own SIGINT handler used to pull the context away)."""
    parameters = {**ONE_CAMERA_PROCESS, "image_size": 308}
    probe = Probe(["/cam/image"], ["/vggt/"])
    try:
        with running_process(node_command(parameters)) as (process, lines):
            probe.wait_connected()
            clock = Clock()
            first = TestOneCamera.send(probe, clock)
            probe.wait_for(lambda: probe.latest("/vggt/path", first), what="the first window")
            last = TestOneCamera.send(probe, clock, CHELSEA_MIRRORED)
            # Received within milliseconds; its window (308 wide, where the tiny model gives usable cameras) then
            # takes about a second on a 2-core CPU: interrupt it.
            time.sleep(0.5)
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=60) == 0, "".join(lines)
            probe.wait_for(lambda: probe.latest("/vggt/path", last), timeout=5.0, what="the window in flight")
    finally:
        probe.close()
    output = "".join(lines)
    assert "context is invalid" not in output and "failed" not in output and "Traceback" not in output, output


_SLOW_SAVE_NODE = """
import sys, time
import vggt_ros.ros.node as node
save = node.save_world
def slow_save_for_tests(*args):  # a test double: the real save, 3 s late
    time.sleep(3.0)
    return save(*args)
node.save_world = slow_save_for_tests
from vggt_ros.ros.main import main
sys.argv = ["reconstruct_node", *sys.argv[1:]]
sys.exit(main())
"""


def test_sigint_during_a_save_answers_it_then_exits_cleanly(tmp_path):
    """The save runs on its own thread, whose answer the executor sends: the entry point shut the executor down at
    once, so the save finished but its caller never had an answer (``ros2 service call`` hung)."""
    import vggt_ros

    root = os.path.dirname(os.path.dirname(vggt_ros.__file__))  # the code under test, whichever checkout it is
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    parameters = {**ONE_CAMERA_PROCESS, "image_size": IMAGE_SIZE, "save_directory": str(tmp_path / "saved")}
    command = [sys.executable, "-c", _SLOW_SAVE_NODE, *node_command(parameters)[3:]]
    probe = Probe(["/cam/image"], ["/vggt/"])
    try:
        with running_process(command, env) as (process, lines):
            probe.wait_connected()
            TestWorldChaining.send_and_wait(probe, Clock())
            save = probe.node.create_client(Trigger, "/vggt/save")
            assert save.wait_for_service(timeout_sec=WAIT_S)
            saving = save.call_async(Trigger.Request())
            time.sleep(1.0)  # inside the slow save
            process.send_signal(signal.SIGINT)
            probe.wait_for(saving.done, timeout=30.0, what="the save's answer")
            assert saving.result().success and (tmp_path / "saved" / "map.ply").is_file(), saving.result()
            assert process.wait(timeout=60) == 0, "".join(lines)
    finally:
        probe.close()
    output = "".join(lines)
    assert "waiting for the save in progress to finish and answer" in output and "Traceback" not in output, output


def test_without_open3d_the_node_fails_at_start_up_with_the_fix(tmp_path):
    """A test double of a missing Open3D: a package of that name, first on the path, whose import fails."""
    (tmp_path / "open3d").mkdir()
    (tmp_path / "open3d" / "__init__.py").write_text("raise ImportError('No module named open3d (test double)')\n")
    result = subprocess.run(
        node_command({"device": "cpu", "weights": WEIGHTS}),
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 1, result.stderr
    assert "Open3D cannot be imported" in result.stderr and "pip install open3d" in result.stderr
    assert "Traceback" not in result.stderr


def test_ctrl_c_while_open3d_imports_is_a_stop_not_a_fatal_error(tmp_path):
    """Issue 19 item 13. A test double of Open3D's import under Ctrl-C: the interrupt arrives while it imports and,
    as the real extension does, it turns the KeyboardInterrupt into ImportError("initialization failed")."""
    (tmp_path / "open3d").mkdir()
    (tmp_path / "open3d" / "__init__.py").write_text(
        "import os, signal, time\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(5)\n"
        "except KeyboardInterrupt:\n"
        "    raise ImportError('initialization failed') from None\n"
    )
    result = subprocess.run(
        node_command({"device": "cpu", "weights": WEIGHTS}),
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert "FATAL" not in result.stderr and "Open3D cannot be imported" not in result.stderr
    assert "Traceback" not in result.stderr


def test_lifecycle_transitions_driven_over_the_change_state_service():
    """autostart false: a lifecycle manager configures (weights loaded, outputs offered), activates (cameras heard),
    deactivates (cameras not heard, the world kept), cleans up (pipeline released) and configures again."""
    from lifecycle_msgs.msg import State, Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    running = Running({"image_topics": ["/cam/image"], "window_size": 2, "autostart": False})
    probe = Probe(["/cam/image"], ["/vggt/"])
    change = probe.node.create_client(ChangeState, "/vggt/change_state")
    get = probe.node.create_client(GetState, "/vggt/get_state")
    node = running.node

    def call(client, request):
        assert client.wait_for_service(timeout_sec=WAIT_S)
        future = client.call_async(request)
        probe.wait_for(future.done, what=f"{client.srv_name} to answer")
        return future.result()

    def transition(transition_id: int) -> None:
        assert call(change, ChangeState.Request(transition=Transition(id=transition_id))).success

    def state() -> int:
        return call(get, GetState.Request()).current_state.id

    camera = probe.publishers["/cam/image"]
    try:
        assert state() == State.PRIMARY_STATE_UNCONFIGURED and camera.get_subscription_count() == 0
        transition(Transition.TRANSITION_CONFIGURE)
        assert state() == State.PRIMARY_STATE_INACTIVE and camera.get_subscription_count() == 0
        transition(Transition.TRANSITION_ACTIVATE)
        probe.wait_connected()
        clock = Clock()
        first = TestWorldChaining.send_and_wait(probe, clock)

        transition(Transition.TRANSITION_DEACTIVATE)
        probe.wait_for(lambda: camera.get_subscription_count() == 0, what="the node to stop listening")
        published = node.counts.windows_published
        TestOneCamera.send(probe, clock, CHELSEA_MIRRORED)
        time.sleep(1.0)
        assert node.counts.windows_published == published, "an inactive node processes no image"

        transition(Transition.TRANSITION_ACTIVATE)
        probe.wait_connected()
        later = TestWorldChaining.send_and_wait(probe, clock, CHELSEA_MIRRORED)
        assert [stamp_ns(p) for p in probe.latest("/vggt/path", later).poses] == [first, later], "the world was kept"

        transition(Transition.TRANSITION_DEACTIVATE)
        assert node._log.allow_once(("reported before the cleanup",))  # as a once-only warning of the old run
        transition(Transition.TRANSITION_CLEANUP)
        assert state() == State.PRIMARY_STATE_UNCONFIGURED and node._live.session is None  # the pipeline is released
        # Never saved: the cleanup says what it discards (it said only "released").
        unsaved = "the world is released with 2 window(s) merged since the last ~/save, never saved"
        probe.wait_for(lambda: probe.logs(WARN, unsaved), what="the cleanup's warning")
        transition(Transition.TRANSITION_CONFIGURE)
        # A new configuration reports its state afresh: the old run's once-only warnings may be logged again.
        assert node._log.allow_once(("reported before the cleanup",))
        transition(Transition.TRANSITION_ACTIVATE)
        probe.wait_connected()
        fresh = TestWorldChaining.send_and_wait(probe, clock)
        assert [stamp_ns(p) for p in probe.latest("/vggt/path", fresh).poses] == [fresh], "a new world"
    finally:
        probe.close()
        running.close()


def test_cleanup_during_a_long_inference_waits_for_that_window_and_leaves_no_worker_behind():
    """VGGT-1B takes minutes a window on a CPU. Cleanup gave the worker 30 s, then released the session under it:
    the window failed ("'NoneType' object has no attribute 'integrate'") and the old worker, with its pipeline, ran
    on beside the next configure's. The slow network is a test double: the real inference, held until released."""
    running = Running({"image_topics": ["/cam/image"], "window_size": 2})
    probe = Probe(["/cam/image"], ["/vggt/"])
    node = running.node
    session = node._live.session
    infer, started, release = session.infer, threading.Event(), threading.Event()

    def held_infer(*args, **kwargs):
        started.set()
        release.wait()
        return infer(*args, **kwargs)

    try:
        probe.wait_connected()
        clock = Clock()
        TestWorldChaining.send_and_wait(probe, clock)
        session.infer = held_infer
        held = TestOneCamera.send(probe, clock, CHELSEA_MIRRORED)
        assert started.wait(WAIT_S), "the second window never reached the network"
        cleanup = threading.Thread(target=lambda: (node.trigger_deactivate(), node.trigger_cleanup()))
        cleanup.start()
        probe.wait_for(lambda: probe.logs(INFO, "waiting for the window in inference"), what="cleanup to wait")
        assert cleanup.is_alive(), "cleanup returned while the window was in inference"
        release.set()
        cleanup.join(WAIT_S)
        assert not cleanup.is_alive() and node._live.session is None
        assert not [t for t in threading.enumerate() if t.name in ("vggt-inference", "vggt-map")], "a worker lives on"
        probe.wait_for(lambda: probe.latest("/vggt/path", held), what="the held window, published")
        assert node.counts.windows_failed == 0 and not probe.logs(ERROR, "failed")
    finally:
        release.set()
        probe.close()
        running.close()


def _map_topic_rclpy_refuses(monkeypatch) -> None:
    """A test double of a configure failure no start-up check foresees: ~/map's topic name turned into one rclpy
    refuses (InvalidTopicNameException), so configure fails after the other outputs' publishers are made."""
    real_topic = node_module.topic

    def topic(params, output, node_prefix="~/"):
        return "~/map-cloud" if output.kind == "map" else real_topic(params, output, node_prefix)

    monkeypatch.setattr(node_module, "topic", topic)


def test_an_unforeseen_configure_failure_says_why_releases_what_it_made_and_configure_can_be_retried(monkeypatch):
    """rclpy's lifecycle wrapper swallows an exception that escapes on_configure: the lifecycle manager used to get a
    failed transition with nothing logged, and the publishers and threads made so far stayed."""
    from lifecycle_msgs.msg import State, Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    _map_topic_rclpy_refuses(monkeypatch)
    running = Running({"image_topics": ["/cam/image"], "autostart": False})
    probe = Probe([], [])
    node = running.node

    def call(service_type, name, request):
        return call_answered(probe.node.create_client(service_type, name), request, probe.wait_for, WAIT_S, name)

    def configure() -> int:
        """The state after a configure request (read back: a request sent again is refused in the new state)."""
        call(
            ChangeState,
            "/vggt/change_state",
            ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CONFIGURE)),
        )
        return call(GetState, "/vggt/get_state", GetState.Request()).current_state.id

    def published() -> set[str]:
        return {name for name, _ in node.get_publisher_names_and_types_by_node("vggt", "/")}

    try:
        probe.wait_for(  # the node's /rosout is matched: its error is not lost to discovery
            lambda: any(info.node_name == "vggt" for info in probe.node.get_publishers_info_by_topic("/rosout")),
            what="the node's /rosout",
        )
        assert configure() == State.PRIMARY_STATE_UNCONFIGURED
        errors = probe.wait_for(lambda: probe.logs(ERROR, "configure failed"), what="the configure error")
        assert errors[0].msg.startswith("configure failed: InvalidTopicNameException: Invalid topic name: "), errors
        assert "'~/map-cloud'" in errors[0].msg
        outputs = {"/vggt/points", "/vggt/path", "/vggt/depth/image", "/tf", "/tf_static"}
        probe.wait_for(lambda: not published() & outputs, what="the node to destroy the outputs it made")
        assert not [thread.name for thread in threading.enumerate() if thread.name.startswith("vggt-")]

        monkeypatch.undo()
        assert configure() == State.PRIMARY_STATE_INACTIVE
        assert {*outputs, "/vggt/map", "/diagnostics"} <= published()
    finally:
        probe.close()
        running.close()


def test_a_failed_activate_says_why_releases_what_configure_made_and_configure_makes_one_set(monkeypatch):
    """An activate that raised (rmw refusing a subscription) moved the node to unconfigured silently, still holding
    its publishers, timers and threads; the next configure made a second set of each, and threads outlived the node
    (pass L). Every transition's failure is now logged and `on_error` releases everything."""
    running = Running({"image_topics": ["/cam/image"], "autostart": False})
    probe = Probe([], [])
    node = running.node

    def threads() -> list[str]:
        return sorted(thread.name for thread in threading.enumerate() if thread.name.startswith("vggt-"))

    def subscription_refused_for_tests(*args, **kwargs):
        raise RuntimeError("rmw refused the subscription (a test double)")

    try:
        probe.wait_for(  # the node's /rosout is matched: its error is not lost to discovery
            lambda: any(info.node_name == "vggt" for info in probe.node.get_publishers_info_by_topic("/rosout")),
            what="the node's /rosout",
        )
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        configured = (len(list(node.publishers)), len(list(node.timers)), threads())
        monkeypatch.setattr(node, "create_subscription", subscription_refused_for_tests)
        assert node.trigger_activate() == TransitionCallbackReturn.ERROR
        probe.wait_for(lambda: probe.logs(ERROR, "activate failed: RuntimeError: rmw refused"), what="the error")
        probe.wait_for(lambda: probe.logs(WARN, "is unconfigured: configure it again"), what="the release")
        assert node._state_machine.current_state[1] == "unconfigured"
        assert threads() == [] and list(node.timers) == [] and len(list(node.publishers)) == 1  # /rosout only

        monkeypatch.undo()
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert (len(list(node.publishers)), len(list(node.timers)), threads()) == configured
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    finally:
        probe.close()
        running.close()


class HeldInferenceForTests:
    """Test double around the session's `infer`: the real one, each call held until `release` is set."""

    def __init__(self, infer) -> None:
        self.infer, self.calls = infer, 0
        self.started, self.release = threading.Event(), threading.Event()

    def __call__(self, *args, **kwargs):
        self.calls += 1
        self.started.set()
        self.release.wait(timeout=WAIT_S)
        return self.infer(*args, **kwargs)


def test_deactivating_drops_the_window_waiting_for_inference(monkeypatch):
    """A deactivated node ran the window that waited behind the one in inference and published it (pass L): with
    VGGT-1B on a CPU, minutes of work after the manager paused the node. The one in inference still finishes."""
    running = Running({"image_topics": ["/cam/image"], "window_size": 2, "loop_closure": False})
    probe = Probe(["/cam/image"], ["/vggt/"])
    node = running.node
    try:
        probe.wait_connected()
        clock = Clock()
        TestWorldChaining.send_and_wait(probe, clock)
        held = HeldInferenceForTests(node._live.session.infer)
        monkeypatch.setattr(node._live.session, "infer", held)
        for photo in (CHELSEA_MIRRORED, CHELSEA, CHELSEA_MIRRORED):
            probe.publishers["/cam/image"].publish(image_message(photo, "rgb8", clock.next()))
            time.sleep(0.2)
        assert held.started.wait(WAIT_S)
        probe.wait_for(lambda: node._live._slot._item is not None, what="a window waiting behind the held one")
        dropped_before = node.counts.windows_dropped
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        held.release.set()
        probe.wait_for(lambda: node.counts.windows_inferred >= 2, what="the window in inference to finish")
        time.sleep(1.0)  # a window still waiting would be taken and inferred by now
        assert held.calls == 1 and node.counts.windows_dropped == dropped_before + 1
    finally:
        probe.close()
        running.close()


def test_an_unforeseen_configure_failure_under_autostart_is_the_start_up_error(monkeypatch):
    """What main prints as the one FATAL line: it used to be empty."""
    _map_topic_rclpy_refuses(monkeypatch)
    with pytest.raises(StartupError) as err:
        Running({"image_topics": ["/cam/image"]})
    assert str(err.value).startswith("configure failed: InvalidTopicNameException: Invalid topic name: ")


@pytest.mark.parametrize(
    "after, sig", [("shutdown", signal.SIGINT), ("unconfigured", signal.SIGTERM)], ids=["shutdown", "unconfigured"]
)
def test_an_idle_node_exits_on_a_signal_after_the_shutdown_transition_or_before_configure(after, sig):
    """With nothing that wakes the executor (no timer: after the lifecycle shutdown transition, or waiting to be
    configured) the node used to wait in rcl forever, where Python runs no signal handler: only SIGKILL ended it."""
    from lifecycle_msgs.msg import State, Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    process = subprocess.Popen(
        node_command(
            {
                "weights": WEIGHTS,
                "device": "cpu",
                "precision": "fp32",
                "autostart": "true" if after == "shutdown" else "false",
            }
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    probe = Probe([], [])
    try:

        def call(service_type, name, request):
            client = probe.node.create_client(service_type, name)
            try:
                return call_answered(client, request, probe.wait_for, WAIT_S, f"{name} to answer")
            except AssertionError as err:
                raise AssertionError(f"{err}; the node printed:\n{''.join(lines)}") from None

        if after == "shutdown":
            # Its answer may be lost and the request sent again, which a finalized node refuses: the state read
            # back below is the outcome.
            request = ChangeState.Request(transition=Transition(id=Transition.TRANSITION_ACTIVE_SHUTDOWN))
            call(ChangeState, "/vggt/change_state", request)
        state = call(GetState, "/vggt/get_state", GetState.Request()).current_state.id
        expected = State.PRIMARY_STATE_FINALIZED if after == "shutdown" else State.PRIMARY_STATE_UNCONFIGURED
        assert state == expected
        process.send_signal(sig)
        assert process.wait(timeout=10) == 0, "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
        probe.close()
    reader.join(timeout=5)
    assert "Traceback" not in "".join(lines)
