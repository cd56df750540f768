# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""BagWriter: the node's messages (built by vggt_ros.ros.messages) into mcap, read back by rosbags and by rclpy."""

import numpy as np
import pytest
from rclpy.serialization import deserialize_message
from rosbags.highlevel import AnyReader
from rosbags.interfaces import QosDurability, QosReliability
from std_msgs.msg import String

from vggt_ros.ros import messages
from vggt_ros.ros.bag_writer import BagWriter, message_type_name

NANOSECONDS = 1_000_000_000
STAMP_NS = 1_700_000_123 * NANOSECONDS + 456_789


def _pose(angle_rad: float, translation) -> np.ndarray:
    """A rigid ``(4, 4)`` [R | t] rotating by ``angle_rad`` about z."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    pose = np.eye(4)
    pose[:2, :2] = [[c, -s], [s, c]]
    pose[:3, 3] = translation
    return pose


@pytest.fixture(scope="module")
def node_messages() -> dict:
    """topic -> (rclpy message, log stamp ns, latched): one of each kind the node publishes."""
    rng = np.random.default_rng(7)
    points = rng.normal(size=(12, 5)).astype(np.float32)
    depth = rng.uniform(0.5, 4.0, size=(6, 8)).astype(np.float32)
    intrinsics = np.array([[50.0, 0.0, 4.0], [0.0, 52.0, 3.0], [0.0, 0.0, 1.0]])
    optical = "camera0_optical"
    return {
        "/vggt/points": (messages.point_cloud2(points, 3, 4, STAMP_NS, "world"), STAMP_NS, False),
        "/vggt/depth/image": (messages.float_image(depth, STAMP_NS, optical), STAMP_NS, False),
        "/vggt/depth/camera_info": (messages.camera_info(intrinsics, (6, 8), STAMP_NS, optical), STAMP_NS, False),
        "/tf": (
            messages.tf_message([messages.transform_stamped("world", optical, STAMP_NS, _pose(0.3, [1.0, 2.0, 3.0]))]),
            STAMP_NS,
            False,
        ),
        "/tf_static": (
            messages.tf_message([messages.transform_stamped("map", "world", 0, _pose(-1.2, [0.0, 0.5, 0.0]))]),
            STAMP_NS - 1,
            True,
        ),
        "/vggt/path": (
            messages.path(
                [(STAMP_NS - 10, _pose(0.0, [0, 0, 0])), (STAMP_NS, _pose(0.1, [0.2, 0, 0]))], STAMP_NS, "world"
            ),
            STAMP_NS,
            False,
        ),
        "/vggt/map": (
            messages.point_cloud2(points[:, :4], 1, 12, STAMP_NS + 5, "world", ("x", "y", "z", "rgb")),
            STAMP_NS + 5,
            True,
        ),
    }


def _decoded(message):
    """An rclpy message object; a `messages.SerializedMessage` (the path, images and clouds) decoded by rclpy
    itself."""
    if isinstance(message, messages.SerializedMessage):
        return deserialize_message(message.data, message.msg_type)
    return message


def _assert_same(rclpy_value, rosbags_value, where: str) -> None:
    """Field-by-field equality of an rclpy message (or value) and rosbags' deserialisation of it."""
    rclpy_value = _decoded(rclpy_value)
    if hasattr(rclpy_value, "get_fields_and_field_types"):
        for field in rclpy_value.get_fields_and_field_types():
            _assert_same(getattr(rclpy_value, field), getattr(rosbags_value, field), f"{where}.{field}")
    elif isinstance(rclpy_value, list) and rclpy_value and hasattr(rclpy_value[0], "get_fields_and_field_types"):
        assert len(rclpy_value) == len(rosbags_value), where
        for i, (a, b) in enumerate(zip(rclpy_value, rosbags_value)):
            _assert_same(a, b, f"{where}[{i}]")
    elif isinstance(rclpy_value, (str, bool, int, float)):
        assert rclpy_value == rosbags_value, where
    else:  # numeric sequences: array.array, numpy arrays, lists of numbers
        np.testing.assert_array_equal(np.asarray(rclpy_value), np.asarray(rosbags_value), err_msg=where)


@pytest.fixture(scope="module")
def written(tmp_path_factory, node_messages):
    path = tmp_path_factory.mktemp("writer") / "out"
    with BagWriter(path) as writer:
        for topic, (message, stamp_ns, latched) in node_messages.items():
            writer.write(topic, message, stamp_ns, latched=latched)
    return path


def test_every_message_reads_back_equal_with_rosbags(written, node_messages):
    with AnyReader([written]) as reader:
        types = {topic: info.msgtype for topic, info in reader.topics.items()}
        read = {c.topic: (reader.deserialize(raw, c.msgtype), t) for c, t, raw in reader.messages()}

    assert types == {
        "/vggt/points": "sensor_msgs/msg/PointCloud2",
        "/vggt/depth/image": "sensor_msgs/msg/Image",
        "/vggt/depth/camera_info": "sensor_msgs/msg/CameraInfo",
        "/tf": "tf2_msgs/msg/TFMessage",
        "/tf_static": "tf2_msgs/msg/TFMessage",
        "/vggt/path": "nav_msgs/msg/Path",
        "/vggt/map": "sensor_msgs/msg/PointCloud2",
    }
    for topic, (original, stamp_ns, _) in node_messages.items():
        decoded, log_ns = read[topic]
        assert log_ns == stamp_ns, topic
        _assert_same(original, decoded, topic)


def test_known_values_survive_the_bag(written, node_messages):
    with AnyReader([written]) as reader:
        read = {c.topic: reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()}

    cloud = read["/vggt/points"]
    assert (cloud.header.stamp.sec, cloud.header.stamp.nanosec) == (1_700_000_123, 456_789)
    assert cloud.header.frame_id == "world" and [f.name for f in cloud.fields] == ["x", "y", "z", "rgb", "confidence"]
    expected_points = np.frombuffer(bytes(_decoded(node_messages["/vggt/points"][0]).data), dtype=np.float32)
    np.testing.assert_array_equal(np.frombuffer(cloud.data.tobytes(), dtype=np.float32), expected_points)
    depth = read["/vggt/depth/image"]
    assert depth.encoding == "32FC1" and (depth.height, depth.width, depth.step) == (6, 8, 32)
    info = read["/vggt/depth/camera_info"]
    np.testing.assert_array_equal(info.k, [50.0, 0.0, 4.0, 0.0, 52.0, 3.0, 0.0, 0.0, 1.0])
    transform = read["/tf"].transforms[0]
    assert (transform.header.frame_id, transform.child_frame_id) == ("world", "camera0_optical")
    translation = transform.transform.translation
    assert (translation.x, translation.y, translation.z) == (1.0, 2.0, 3.0)
    # A rotation by 0.3 rad about z is the quaternion (0, 0, sin 0.15, cos 0.15).
    rotation = transform.transform.rotation
    np.testing.assert_allclose(
        [rotation.x, rotation.y, rotation.z, rotation.w], [0, 0, np.sin(0.15), np.cos(0.15)], atol=1e-12
    )
    assert read["/tf_static"].transforms[0].child_frame_id == "world"
    path = read["/vggt/path"]
    assert path.header.frame_id == "world" and (path.header.stamp.sec, path.header.stamp.nanosec) == (
        1_700_000_123,
        456_789,
    )
    assert [p.pose.position.x for p in path.poses] == [0.0, 0.2]
    assert [(p.header.stamp.sec, p.header.stamp.nanosec) for p in path.poses] == [
        (1_700_000_123, 456_779),
        (1_700_000_123, 456_789),
    ]
    second = path.poses[1].pose.orientation  # 0.1 rad about z
    np.testing.assert_allclose([second.x, second.y, second.z, second.w], [0, 0, np.sin(0.05), np.cos(0.05)], atol=1e-12)


def test_rclpy_deserialises_what_was_written(written, node_messages):
    with AnyReader([written]) as reader:
        raw_by_topic = {c.topic: raw for c, _, raw in reader.messages()}

    for topic, (original, _, _) in node_messages.items():
        original = _decoded(original)
        assert deserialize_message(bytes(raw_by_topic[topic]), type(original)) == original, topic


def test_latched_topics_offer_transient_local_like_the_node(written):
    with AnyReader([written]) as reader:
        offers = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}

    for topic, profiles in offers.items():
        (profile,) = profiles
        latched = topic in ("/tf_static", "/vggt/map")
        assert profile.reliability == QosReliability.RELIABLE, topic
        assert profile.durability == (QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE), topic
        if latched:
            assert profile.depth == 1, topic


def test_the_bag_is_mcap(written):
    metadata = (written / "metadata.yaml").read_text()

    assert "storage_identifier: mcap" in metadata
    assert [p.suffix for p in written.iterdir() if p.name != "metadata.yaml"] == [".mcap"]


def test_an_existing_bag_is_never_overwritten(tmp_path):
    existing = tmp_path / "bag"
    existing.mkdir()
    (existing / "keep.txt").write_text("data")

    with pytest.raises(FileExistsError, match="already exists"):
        BagWriter(existing)

    assert (existing / "keep.txt").read_text() == "data"


def test_messages_written_before_an_error_stay_readable(tmp_path):
    path = tmp_path / "bag"
    with pytest.raises(RuntimeError, match="stop"):
        with BagWriter(path) as writer:
            writer.write("/chatter", String(data="before"), 10)
            raise RuntimeError("stop")

    with AnyReader([path]) as reader:
        assert [reader.deserialize(raw, c.msgtype).data for c, _, raw in reader.messages()] == ["before"]


def test_a_topic_keeps_its_type_and_latching(tmp_path, node_messages):
    cloud = node_messages["/vggt/points"][0]
    with BagWriter(tmp_path / "bag") as writer:
        writer.write("/vggt/points", cloud, 1)

        with pytest.raises(ValueError, match="first written as sensor_msgs/msg/PointCloud2"):
            writer.write("/vggt/points", String(data="x"), 2)
        with pytest.raises(ValueError, match="latched"):
            writer.write("/vggt/points", cloud, 3, latched=True)


@pytest.mark.parametrize(
    "topic, stamp_ns, problem",
    [
        ("vggt/points", 1, "fully qualified"),
        ("/", 1, "fully qualified"),
        ("/vggt/points", -1, "stamp_ns"),
        ("/vggt/points", 1.5, "stamp_ns"),
    ],
)
def test_bad_topic_or_stamp_is_refused(tmp_path, topic, stamp_ns, problem):
    with BagWriter(tmp_path / "bag") as writer:
        with pytest.raises(ValueError, match=problem):
            writer.write(topic, String(data="x"), stamp_ns)


def test_only_rclpy_messages_are_accepted(tmp_path):
    with BagWriter(tmp_path / "bag") as writer:
        with pytest.raises(TypeError, match="rclpy message"):
            writer.write("/chatter", {"data": "x"}, 1)


def test_writing_after_close_is_refused(tmp_path):
    writer = BagWriter(tmp_path / "bag")
    writer.close()
    writer.close()  # a second close is harmless

    with pytest.raises(ValueError, match="closed"):
        writer.write("/chatter", String(data="x"), 1)


def test_message_type_names_come_from_the_class(node_messages):
    assert message_type_name(node_messages["/tf"][0]) == "tf2_msgs/msg/TFMessage"
    assert message_type_name(String()) == "std_msgs/msg/String"
