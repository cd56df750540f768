# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Input assembly without DDS: messages -> decoded images -> stamp rules -> frame sets, depth pairing, and what is
reported (once per kind of problem, never once per frame)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from PIL import Image

from conftest import IMAGES
from support.bags import encode_image_file
from support.log_doubles import ManualClock, RecordingLogger
from vggt_ros.live.input import InputAssembly, InputConfig
from vggt_ros.live.log_policy import LogPolicy

SECOND = 1_000_000_000


@dataclass
class FakeHeader:
    """Test double of std_msgs/Header (only the frame id is read)."""

    frame_id: str = "camera"


@dataclass
class FakeImage:
    """Test double of sensor_msgs/Image: the fields the assembly reads."""

    data: bytes
    height: int
    width: int
    step: int
    encoding: str
    is_bigendian: int = 0
    header: FakeHeader = field(default_factory=FakeHeader)


@dataclass
class FakeCompressedImage:
    """Test double of sensor_msgs/CompressedImage."""

    data: bytes
    format: str = "rgb8; jpeg compressed bgr8"
    header: FakeHeader = field(default_factory=FakeHeader)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    with Image.open(IMAGES / "chelsea.png") as image:
        return np.asarray(image.convert("RGB"))


def rgb_message(photo: np.ndarray, frame_id: str = "camera") -> FakeImage:
    height, width = photo.shape[:2]
    return FakeImage(photo.tobytes(), height, width, width * 3, "rgb8", header=FakeHeader(frame_id))


def assembly(cameras: int = 1, depth_cameras: int = 0, slop_s: float = 0.01):
    logger, clock = RecordingLogger(), ManualClock()
    names = tuple(f"camera{i}" for i in range(cameras))
    topics = tuple(f"/{n}/image" for n in names) + tuple(f"/{n}/depth" for n in names[:depth_cameras])
    config = InputConfig(
        names, queue_size=5, slop_s=slop_s, max_reorder_s=0.5, topics=topics, depth_cameras=depth_cameras
    )
    return InputAssembly(config, LogPolicy(logger, clock=clock), clock=clock), logger


def test_two_cameras_pair_by_stamp_with_their_frame_ids(photo):
    inputs, _ = assembly(cameras=2)
    first = inputs.add_image(0, rgb_message(photo, "left"), 10 * SECOND, 0, compressed=False)
    assert first.frame_set is None
    second = inputs.add_image(1, rgb_message(photo[:, ::-1].copy(), "right"), 10 * SECOND + 3_000_000, 0, False)
    frame_set = second.frame_set
    assert frame_set.stamps_ns == (10 * SECOND, 10 * SECOND + 3_000_000)
    assert frame_set.camera_frames == ("left", "right")
    assert np.array_equal(frame_set.images[0], photo) and np.array_equal(frame_set.images[1], photo[:, ::-1])
    assert frame_set.frame_ids() == ((10 * SECOND, 0), (10 * SECOND + 3_000_000, 1))


def test_a_hundred_garbage_jpegs_give_one_error_line():
    inputs, logger = assembly()
    for size in range(100):  # each error text names its own byte count
        bad = FakeCompressedImage(data=b"\xff\xd8" + bytes(100 + size))
        assert inputs.add_image(0, bad, (size + 1) * SECOND, 0, compressed=True).frame_set is None
    errors = [text for level, text in logger.lines if level == "error"]
    assert len(errors) == 1 and "camera 'camera0'" in errors[0] and "image dropped" in errors[0]
    assert inputs.images_received == 100


def test_zero_stamps_take_the_arrival_time_and_are_reported_once(photo):
    inputs, logger = assembly()
    stamps = [inputs.add_image(0, rgb_message(photo), 0, arrival, False).frame_set.stamps_ns[0] for arrival in (5, 9)]
    assert stamps == [5, 9]
    assert [text for _, text in logger.lines if "stamps its images 0" in text] == [
        "camera 'camera0' stamps its images 0 (unset): using each image's arrival time instead, in the camera's "
        "clock where its stamped images show one (fix the driver: stamp images with their capture time)"
    ]


def test_repeated_and_late_stamps_are_dropped_and_a_jump_back_restarts(photo):
    inputs, logger = assembly()
    assert inputs.add_image(0, rgb_message(photo), 10 * SECOND, 0, False).frame_set is not None
    assert inputs.add_image(0, rgb_message(photo), 10 * SECOND, 0, False).frame_set is None  # repeated
    assert inputs.add_image(0, rgb_message(photo), 10 * SECOND - 100_000_000, 0, False).frame_set is None  # late
    stale = inputs.add_image(0, rgb_message(photo), 2 * SECOND, 0, False)
    assert stale.frame_set is None and not stale.restart  # one image far back says nothing yet
    jumped = inputs.add_image(0, rgb_message(photo), 2 * SECOND + 33_000_000, 0, False)
    assert jumped.restart and jumped.frame_set.stamps_ns == (2 * SECOND + 33_000_000,)
    texts = [text for _, text in logger.lines]
    assert any("repeated" in t for t in texts) and any("out of order" in t for t in texts)
    assert any("8.000 s before the newest: image dropped" in t for t in texts)
    assert any("time went backwards" in t for t in texts)
    assert inputs.dropped[(0, "stale")] == 1


def test_one_image_far_back_is_dropped_and_the_reconstruction_carries_on(photo):
    """A frame resent or delayed by a second restarted the whole reconstruction (everything merged was lost)."""
    inputs, logger = assembly()
    for k in range(5):
        assert not inputs.add_image(0, rgb_message(photo), (10 + k) * SECOND, 0, False).restart
    assert inputs.add_image(0, rgb_message(photo), 13 * SECOND, 0, False).frame_set is None  # 1 s late
    carried_on = inputs.add_image(0, rgb_message(photo), 15 * SECOND, 0, False)
    assert not carried_on.restart and carried_on.frame_set.stamps_ns == (15 * SECOND,)
    assert not any("time went backwards" in text for _, text in logger.lines)


def test_one_image_far_ahead_is_dropped_and_the_reconstruction_carries_on(photo):
    """One image stamped 1000 s ahead was taken; the camera's next images were stale, the second restarted the
    reconstruction, and the outputs went out stamped 1000 s ahead. It is dropped, and says why."""
    inputs, logger = assembly()
    for k in range(3):  # arriving with the stamps (their lead: 0)
        assert inputs.add_image(0, rgb_message(photo), (10 + k) * SECOND, (10 + k) * SECOND, False).frame_set
    assert inputs.add_image(0, rgb_message(photo), 1013 * SECOND, 13 * SECOND, False).frame_set is None
    for k in range(4, 7):
        carried_on = inputs.add_image(0, rgb_message(photo), (10 + k) * SECOND, (10 + k) * SECOND, False)
        assert not carried_on.restart and carried_on.frame_set.stamps_ns == ((10 + k) * SECOND,)
    assert inputs.dropped[(0, "ahead")] == 1
    texts = [text for _, text in logger.lines]
    assert not any("time went backwards" in text for text in texts)
    assert any(
        "image stamped 1001.000 s after the newest, its stamp 1000.000 s further ahead of its arrival time" in text
        for text in texts
    )


def test_an_image_no_model_input_can_be_made_of_is_dropped_on_arrival(photo):
    """An 8000 x 100 panorama (its height rounds to no row of 14-pixel patches) was taken: its size reset the world,
    and the network's worker failed on it. It is dropped on arrival as its camera's bad image, the world kept."""
    inputs, logger = assembly()
    assert inputs.add_image(0, rgb_message(photo), 10 * SECOND, 0, False).frame_set is not None
    panorama = np.zeros((100, 8000, 3), np.uint8)
    assert inputs.add_image(0, rgb_message(panorama), 11 * SECOND, 0, False).frame_set is None
    assert inputs.dropped[(0, "too_elongated")] == 1
    assert any("too elongated" in text and "image dropped" in text for _, text in logger.lines)
    assert inputs.add_image(0, rgb_message(photo), 12 * SECOND, 0, False).frame_set is not None


def test_the_first_image_after_a_reactivation_is_no_stamp_far_ahead(photo):
    """A node deactivated for a minute: its cameras' next images are a minute on, arriving a minute on too, which
    is no clock glitch."""
    inputs, logger = assembly()
    inputs.start_listening()
    assert inputs.add_image(0, rgb_message(photo), 10 * SECOND, 10 * SECOND, False).frame_set is not None
    inputs.stop_listening()
    inputs.start_listening()
    assert inputs.add_image(0, rgb_message(photo), 70 * SECOND, 70 * SECOND, False).frame_set is not None
    assert not inputs.dropped and not logger.lines


def test_depth_pairs_with_its_colour_image_and_bad_depth_is_reported_once_until_good():
    inputs, logger = assembly(depth_cameras=1)
    depth_m = np.full((4, 6), 2.5, dtype=np.float32)
    good = FakeImage(depth_m.tobytes(), 4, 6, 24, "32FC1")
    empty = FakeImage(np.zeros((4, 6), np.float32).tobytes(), 4, 6, 24, "32FC1")
    for _ in range(3):
        inputs.add_depth(0, empty, 7 * SECOND, 0)
    assert len(logger.lines) == 1 and "no valid reading" in logger.lines[0][1]
    inputs.add_depth(0, good, 7 * SECOND, 0)
    assert np.array_equal(inputs.depth_lookup()(0, 7 * SECOND + 1_000_000), depth_m)
    inputs.add_depth(0, empty, 8 * SECOND, 0)  # a new spell of bad depth is news again
    assert len(logger.lines) == 2
    assert inputs.depth_of(0, 30 * SECOND) is None  # nothing within slop


def test_why_the_newest_depth_image_was_dropped_is_kept_for_diagnostics():
    """Depth in a colour encoding: the log said so once, and /diagnostics gave only the generic "no depth image
    matched them ... or every reading was 0 or NaN". Cleared by a usable image."""
    inputs, _ = assembly(depth_cameras=1)
    assert inputs.depth_dropped() == ""
    inputs.add_depth(0, FakeImage(bytes(4 * 6 * 3), 4, 6, 18, "rgb8"), 7 * SECOND, 0)
    assert inputs.depth_dropped().startswith("depth of camera 'camera0': unsupported depth encoding 'rgb8'")
    inputs.add_depth(0, FakeImage(np.full((4, 6), 2.5, np.float32).tobytes(), 4, 6, 24, "32FC1"), 8 * SECOND, 0)
    assert inputs.depth_dropped() == ""


def test_a_keyframes_depth_outlasts_the_queue_until_the_network_has_run(photo):
    """A network slower than queue_size depth periods (0.3 s at 30 Hz with the default 10) looked each keyframe's
    depth up after the queue had dropped it: no metric scale ever. The keyframe's depth is kept."""
    inputs, _ = assembly(depth_cameras=1)  # queue_size 5
    depth_m = np.full((4, 6), 2.5, dtype=np.float32)
    inputs.add_depth(0, FakeImage(depth_m.tobytes(), 4, 6, 24, "32FC1"), 10 * SECOND, 0)
    keyframe = inputs.add_image(0, rgb_message(photo), 10 * SECOND, 0, False).frame_set
    inputs.keep_depth(keyframe)
    later = FakeImage(np.full((4, 6), 3.0, np.float32).tobytes(), 4, 6, 24, "32FC1")
    for k in range(1, 30):  # one second of 30 Hz depth while the network runs
        inputs.add_depth(0, later, 10 * SECOND + k * 33_000_000, 0)
    assert np.array_equal(inputs.depth_of(0, 10 * SECOND), depth_m)


def test_unstamped_depth_pairs_with_unstamped_colour_by_arrival(photo):
    """A driver that stamps colour and depth 0: the colour images took their arrival time, the depth stayed at 0,
    so no depth ever paired and the scale never came, without a word."""
    inputs, logger = assembly(depth_cameras=1)
    depth_m = np.full((4, 6), 2.5, dtype=np.float32)
    inputs.add_depth(0, FakeImage(depth_m.tobytes(), 4, 6, 24, "32FC1"), 0, 10 * SECOND - 1_000_000)
    frame_set = inputs.add_image(0, rgb_message(photo), 0, 10 * SECOND, False).frame_set
    assert np.array_equal(inputs.depth_of(0, frame_set.stamps_ns[0]), depth_m)
    assert any("depth of camera 'camera0' is stamped 0" in text for _, text in logger.lines)


def test_unstamped_depth_takes_its_cameras_clock(photo):
    """A camera that stamps its colour images in its own clock (a boot clock, a simulation's time), 1000 s ahead of
    the node's, and its depth 0: the depth took the node's arrival time, 1000 s from every colour stamp, and never
    paired. It takes the camera's clock, as the camera's unset colour stamps do."""
    inputs, _ = assembly(depth_cameras=1)
    lead = 1000 * SECOND
    inputs.add_image(0, rgb_message(photo), lead + 10 * SECOND, 10 * SECOND, False)
    depth_m = np.full((4, 6), 2.5, dtype=np.float32)
    arrival = 10 * SECOND + 33_000_000
    inputs.add_depth(0, FakeImage(depth_m.tobytes(), 4, 6, 24, "32FC1"), 0, arrival)
    frame_set = inputs.add_image(0, rgb_message(photo), lead + arrival, arrival, False).frame_set
    assert np.array_equal(inputs.depth_of(0, frame_set.stamps_ns[0]), depth_m)


def test_depth_in_another_frame_than_its_colour_image_is_named_once(photo):
    """A raw depth stream (the depth lens' own frame, another field of view) put the scale 2.5 - 20 % off without a
    word; registered depth carries the colour image's frame."""
    inputs, logger = assembly(depth_cameras=1)
    depth = FakeImage(np.full((4, 6), 2.5, np.float32).tobytes(), 4, 6, 24, "32FC1")
    depth.header = FakeHeader("camera_color_optical_frame")
    inputs.add_image(0, rgb_message(photo, "camera_color_optical_frame"), 10 * SECOND, 0, False)
    inputs.add_depth(0, depth, 10 * SECOND, 0)
    assert not logger.lines, "registered depth: nothing to say"
    depth.header = FakeHeader("camera_depth_optical_frame")
    for k in range(3):
        inputs.add_depth(0, depth, (11 + k) * SECOND, 0)
    warnings = [text for _, text in logger.lines if "registered to the colour image" in text]
    assert len(warnings) == 1 and "'camera_depth_optical_frame'" in warnings[0]
    assert "'camera_color_optical_frame'" in warnings[0]


@pytest.mark.parametrize(
    "offset_ms, slop_s, expected",
    [
        (250, 0.01, "'camera0' +0.0 ms, 'camera1' +250.0 ms; they must lie less than slop_s (10 ms) apart"),
        # Exactly the slop apart never pairs either (the spread must be below it, as message_filters'): the warning
        # said "+20.0 ms; they must lie within slop 20 ms", which reads as met (pass L).
        (20, 0.02, "'camera0' +0.0 ms, 'camera1' +20.0 ms; they must lie less than slop_s (20 ms) apart"),
    ],
)
def test_cameras_that_never_pair_are_named_with_their_offsets(photo, offset_ms, slop_s, expected):
    inputs, logger = assembly(cameras=2, slop_s=slop_s)
    for k in range(7):  # both keep sending, offset_ms apart: never within slop
        inputs.add_image(0, rgb_message(photo), (10 + k) * SECOND, 0, False)
        inputs.add_image(1, rgb_message(photo), (10 + k) * SECOND + offset_ms * 1_000_000, 0, False)
        inputs._clock.now += 1.0
    inputs.check_inputs({"/camera0/image": 1, "/camera1/image": 1}, "LARGE_DATA")
    warning = next(text for _, text in logger.lines if "have not formed a frame set" in text)
    assert expected in warning, warning


@pytest.mark.parametrize("fault", ["encoding", "frozen stamps"])
def test_a_camera_whose_images_are_all_dropped_is_named_not_the_clocks(photo, fault):
    """The cameras pair, then one camera's images are all dropped: an unsupported encoding, or both drivers
    repeating a frozen stamp. The pairing warning blamed the clocks, with offsets from the dropping camera's last
    accepted stamp (-995 ms) or ones within the slop (+5 ms), and said 5 s (the timeout) however long it had been."""
    inputs, logger = assembly(cameras=2, slop_s=0.02)
    bad = FakeImage(bytes(2 * photo.shape[0] * photo.shape[1]), *photo.shape[:2], 2 * photo.shape[1], "16UC1")
    assert inputs.add_image(0, rgb_message(photo), 10 * SECOND, 0, False).frame_set is None
    assert inputs.add_image(1, rgb_message(photo), 10 * SECOND + 5_000_000, 0, False).frame_set is not None
    for k in range(1, 9):
        stamp = 10 * SECOND if fault == "frozen stamps" else (10 + k) * SECOND
        inputs.add_image(0, rgb_message(photo), stamp, 0, False)
        inputs.add_image(1, rgb_message(photo) if fault == "frozen stamps" else bad, stamp + 5_000_000, 0, False)
        inputs._clock.now += 1.0
    inputs.check_inputs({"/camera0/image": 1, "/camera1/image": 1}, "LARGE_DATA")
    warning = next(text for _, text in logger.lines if "have not formed a frame set" in text)
    assert "for 8.0 s" in warning and "synchronise" not in warning, warning
    dropping = "'camera0', 'camera1'" if fault == "frozen stamps" else "'camera1'"
    assert f"every image of {dropping} is dropped" in warning, warning
    assert ("duplicate stamp" if fault == "frozen stamps" else "16UC1") in warning, warning


def test_cameras_that_stop_are_not_said_to_lie_outside_slop(photo):
    """Issue 19 item 14: two cameras 5 ms apart that simply stop are quiet, not unpaired."""
    inputs, logger = assembly(cameras=2, slop_s=0.02)
    inputs.check_inputs({"/camera0/image": 1, "/camera1/image": 1}, "LARGE_DATA")  # the publishers are seen
    inputs.add_image(0, rgb_message(photo), 10 * SECOND, 0, False)
    inputs.add_image(1, rgb_message(photo), 10 * SECOND + 5_000_000, 0, False)
    inputs._clock.now += 6.0
    inputs.check_inputs({"/camera0/image": 1, "/camera1/image": 1}, "LARGE_DATA")
    texts = [text for _, text in logger.lines]
    assert not any("slop" in text for text in texts), texts
    assert sum("no image on" in text for text in texts) == 2


def quiet_warnings(transports: str, sent_bytes: int | None) -> list[str]:
    """The quiet-topic warnings for one camera whose matched publisher sent one image of ``sent_bytes`` (None: none)
    and then nothing for 6 s."""
    inputs, logger = assembly()
    inputs.check_inputs({"/camera0/image": 1}, transports)  # the publisher is seen
    if sent_bytes is not None:
        side = int((sent_bytes / 3) ** 0.5)
        inputs.add_image(0, rgb_message(np.zeros((side, side, 3), np.uint8)), SECOND, 0, False)
    inputs._clock.now += 6.0
    inputs.check_inputs({"/camera0/image": 1}, transports)
    return [text for _, text in logger.lines if "no image on" in text]


def test_a_quiet_topic_is_blamed_on_the_512_kb_limit_only_where_it_can_apply():
    """Issue 18 item 10 and 19 item 14: the 512 kB explanation needs default transports and images that may be
    that large; otherwise the warning names what does apply."""
    default_large = quiet_warnings("(unset)", None)[0]
    assert "512 kB" in default_large and "LARGE_DATA" in default_large
    with_large_data = quiet_warnings("LARGE_DATA", None)[0]  # matched, so the transports agree
    assert "512 kB" not in with_large_data and "check the driver's QoS" in with_large_data
    small_stream = quiet_warnings("(unset)", 113 * 1024)[0]  # a 113 kB stream that pauses
    assert "512 kB" not in small_stream and "stopped publishing" in small_stream
    large_stream = quiet_warnings("(unset)", 900 * 1024)[0]
    assert "512 kB" in large_stream


def test_camera_counts_follow_the_images(photo):
    inputs, _ = assembly(cameras=2)
    inputs.add_image(1, FakeCompressedImage(encode_image_file(photo, "jpeg")), SECOND, 0, compressed=True)
    inputs.count_missed(1, b"publisher", 1)
    inputs.count_missed(1, b"publisher", 4)  # two images never arrived
    counts = inputs.camera_counts()
    assert [c.received for c in counts] == [0, 1] and counts[1].missed == 2 and counts[1].topic == "/camera1/image"
    assert [c.dropped for c in counts] == [0, 0] and counts[1].last_drop == ""
    # Dropped images count for /diagnostics, with why the newest was dropped: a repeated stamp, then a bad encoding.
    inputs.add_image(1, FakeCompressedImage(encode_image_file(photo, "jpeg")), SECOND, 0, compressed=True)
    assert inputs.camera_counts()[1].dropped == 1 and inputs.camera_counts()[1].last_drop == "duplicate stamp"
    inputs.add_image(1, FakeCompressedImage(b"not an image"), 2 * SECOND, 0, compressed=True)
    counts = inputs.camera_counts()
    assert [c.dropped for c in counts] == [0, 2] and [c.received for c in counts] == [0, 3]
    assert counts[1].last_drop.startswith("image ") and counts[1].last_drop != "image "


def test_an_image_in_a_frame_the_node_publishes_is_dropped_where_the_node_reads_tf(photo):
    """With robot frames the node publishes vggt_world -> camera0_optical and looks the images' frame up in TF: a
    driver stamping 'camera0_optical' gave that frame two parents, and the node's look-ups found its own estimate."""
    from vggt_ros.live.parameters import NodeParameters

    robot = NodeParameters(odom_frame="odom", robot_base_frame="base_link")
    config = robot.input_config(("/camera/image_raw",), max_reorder_s=0.5)
    logger, clock = RecordingLogger(), ManualClock()
    inputs = InputAssembly(config, LogPolicy(logger, clock=clock), clock=clock)
    for k, frame in enumerate(("camera0_optical", "vggt_world", "camera0_optical")):
        assert inputs.add_image(0, rgb_message(photo, frame), (k + 1) * SECOND, 0, False).frame_set is None
    assert inputs.dropped[(0, "own_frame")] == 3
    errors = [text for level, text in logger.lines if level == "error"]
    assert len(errors) == 1 and "frame_id 'camera0_optical' is the node's estimate of camera 'camera0'" in errors[0]
    assert (
        "Fix: rename the node's frames (camera_names, world_frame, frame_prefix) or the driver's frame_id" in errors[0]
    )
    assert inputs.add_image(0, rgb_message(photo, "front_camera_optical"), 4 * SECOND, 0, False).frame_set is not None
    # With publish_tf off the node publishes none of them.
    quiet = NodeParameters(odom_frame="odom", robot_base_frame="base_link", publish_tf=False)
    assert quiet.input_config(("/camera/image_raw",), max_reorder_s=0.5).own_frames == {}


@pytest.mark.parametrize(
    "frame, problem, fix",
    [
        ("", "frame_id is empty", ""),
        (
            "/front_optical",
            "frame_id '/front_optical' starts with '/', which tf2 frame ids never do",
            " ('front_optical'?)",
        ),
    ],
)
def test_an_image_frame_tf_cannot_look_up_is_dropped_with_the_drivers_fix_where_the_node_reads_tf(
    photo, frame, problem, fix
):
    """With robot frames, an empty or ROS 1 style frame_id told the user to publish a mounting to '' or to
    '/front_optical' (a name tf2 refuses), while the windows went out under a world placed nowhere."""
    from vggt_ros.live.parameters import NodeParameters

    config = NodeParameters(odom_frame="odom", robot_base_frame="base_link").input_config(("/camera/image_raw",), 0.5)
    logger, clock = RecordingLogger(), ManualClock()
    inputs = InputAssembly(config, LogPolicy(logger, clock=clock), clock=clock)
    for k in range(3):
        assert inputs.add_image(0, rgb_message(photo, frame), (k + 1) * SECOND, 0, False).frame_set is None
    assert inputs.dropped[(0, "frame_id")] == 3 and inputs.camera_counts()[0].last_drop == problem
    (error,) = [text for level, text in logger.lines if level == "error"]
    assert error.startswith(f"camera 'camera0': its images' {problem}, while this node looks")
    assert error.endswith(
        "Fix: set the camera driver's frame_id to the camera's optical frame as the TF tree names it" + fix
    )
    assert inputs.add_image(0, rgb_message(photo, "front_optical"), 4 * SECOND, 0, False).frame_set is not None
    # Where the node reads no TF the frame_id is only carried to the outputs: such images are used.
    plain = NodeParameters().input_config(("/camera/image_raw",), 0.5)
    inputs = InputAssembly(plain, LogPolicy(RecordingLogger(), clock=clock), clock=clock)
    assert inputs.add_image(0, rgb_message(photo, frame), SECOND, 0, False).frame_set is not None


def test_only_the_cameras_whose_frames_are_looked_up_need_a_frame_tf_can_look_up(photo):
    """With robot frames only camera 0's frame is looked up (the placement): a second camera's empty frame_id
    cost every frame set; with the odometry source every camera's is."""
    from vggt_ros.live.parameters import NodeParameters

    topics = ("/left/image", "/right/image")
    robot = NodeParameters(image_topics=topics, odom_frame="odom", robot_base_frame="base_link")
    odometry = NodeParameters(image_topics=topics, odom_frame="odom", metric_scale_source="odometry")
    assert (robot.looked_up_cameras, odometry.looked_up_cameras) == ({0}, {0, 1})
    for params, formed in ((robot, True), (odometry, False)):
        clock = ManualClock()
        inputs = InputAssembly(params.input_config(topics, 0.5), LogPolicy(RecordingLogger(), clock=clock), clock=clock)
        inputs.add_image(0, rgb_message(photo, "left_optical"), SECOND, 0, False)
        assembled = inputs.add_image(1, rgb_message(photo, ""), SECOND, 0, False)
        assert (assembled.frame_set is not None) is formed
        assert inputs.dropped[(1, "frame_id")] == (0 if formed else 1)


def test_cameras_sharing_a_frame_that_is_looked_up_are_named_and_their_frame_sets_dropped(photo):
    """Two rig cameras both stamped 'rig_optical': TF gave both one pose, and the node waited for ever, blaming the
    rig's size ("every known baseline is shorter than 0.01 m") or the odometry ("the displacements disagree")."""
    from vggt_ros.live.parameters import NodeParameters

    topics = ("/left/image", "/right/image")
    for params, dropped in (
        (NodeParameters(image_topics=topics, metric_scale_source="rig"), True),
        (NodeParameters(image_topics=topics, odom_frame="odom", metric_scale_source="odometry"), True),
        (NodeParameters(image_topics=topics, odom_frame="odom", robot_base_frame="base_link"), False),  # camera 0's
    ):
        logger, clock = RecordingLogger(), ManualClock()
        inputs = InputAssembly(params.input_config(topics, 0.5), LogPolicy(logger, clock=clock), clock=clock)
        for k in range(3):
            inputs.add_image(0, rgb_message(photo, "rig_optical"), (k + 1) * SECOND, 0, False)
            assembled = inputs.add_image(1, rgb_message(photo, "rig_optical"), (k + 1) * SECOND, 0, False)
            assert (assembled.frame_set is None) is dropped
        errors = [text for level, text in logger.lines if level == "error"]
        if dropped:
            assert len(errors) == 1 and errors[0].startswith("cameras 'camera0', 'camera1' all stamp their images")
            assert "Fix: give each camera's driver its own optical frame_id" in errors[0]
            assert inputs.camera_counts()[1].last_drop == "frame_id 'rig_optical' shared with another camera"
        else:
            assert errors == []


def test_a_camera_clock_ahead_of_the_nodes_is_warned_about_and_noted_for_diagnostics(photo):
    """A camera on another computer without time sync, 30 s ahead from its first image: every output went out
    stamped 30 s in the future, and nothing said so (only a jump of the lead was judged)."""
    from vggt_ros.live.parameters import NodeParameters

    logger, clock = RecordingLogger(), ManualClock()
    config = NodeParameters().input_config(("/camera/image_raw",), max_reorder_s=0.5)
    inputs = InputAssembly(config, LogPolicy(logger, clock=clock), clock=clock)
    arrival = 1_000 * SECOND
    for k in range(3):  # 30 s ahead, one every 0.1 s: taken (the reconstruction goes on), warned about once
        step = k * SECOND // 10
        assert inputs.add_image(0, rgb_message(photo), arrival + 30 * SECOND + step, arrival + step, False).frame_set
    (warning,) = [text for level, text in logger.lines if level == "warning"]
    assert warning.startswith("camera 'camera0': its images are stamped 30.000 s ahead of this node's clock")
    assert "Fix: synchronise the computers' clocks (chrony, PTP)" in warning
    assert inputs.camera_counts()[0].clock_ahead_s == pytest.approx(30.0)
    # The clocks agree again (a time sync stepped the camera's clock back; its second image confirms the jump and
    # starts a new world): nothing more to say.
    for k in (2, 3):
        inputs.add_image(0, rgb_message(photo), arrival + k * SECOND, arrival + k * SECOND + 20_000_000, False)
    assert inputs.camera_counts()[0].clock_ahead_s is None
    # Within the tolerance (a bag's /clock a few ms behind its messages): nothing to say.
    inputs.add_image(0, rgb_message(photo), arrival + 4 * SECOND, arrival + 4 * SECOND - SECOND // 5, False)
    assert inputs.camera_counts()[0].clock_ahead_s is None
    assert [text for level, text in logger.lines if level == "warning"] == [warning]
    # Before the node's clock starts (arrival 0 under use_sim_time until the first /clock) there is no lead.
    waiting = InputAssembly(config, LogPolicy(RecordingLogger(), clock=clock), clock=clock)
    assert waiting.add_image(0, rgb_message(photo), arrival, 0, False).frame_set
    assert waiting.camera_counts()[0].clock_ahead_s is None
    # A recording's log times are not this node's clock: not judged.
    recording, _ = assembly()
    recording.add_image(0, rgb_message(photo), arrival + 30 * SECOND, arrival, False)
    assert recording.camera_counts()[0].clock_ahead_s is None


def test_an_image_in_a_frame_the_node_publishes_is_used_with_one_warning_where_the_node_reads_no_tf(photo):
    """A driver may name its frame as the node does, but if the robot publishes it too it has two parents: that
    went unsaid."""
    from vggt_ros.live.parameters import NodeParameters

    config = NodeParameters().input_config(("/camera/image_raw",), max_reorder_s=0.5)
    logger, clock = RecordingLogger(), ManualClock()
    inputs = InputAssembly(config, LogPolicy(logger, clock=clock), clock=clock)
    for k in range(3):
        assert inputs.add_image(0, rgb_message(photo, "camera0_optical"), (k + 1) * SECOND, 0, False).frame_set
    assert not inputs.dropped
    warnings = [text for level, text in logger.lines if level == "warning"]
    assert len(warnings) == 1 and "'camera0_optical' is the node's estimate of camera 'camera0'" in warnings[0]
    assert "two parents" in warnings[0]


def test_images_lost_by_dds_add_up_across_the_subscriptions_a_reactivation_replaces():
    """The count took DDS' own total, which starts again with the new subscription of deactivate -> activate: 28
    lost, then 4 more read as 4."""
    inputs, _ = assembly()
    inputs.images_lost(0, 28, "LARGE_DATA")
    inputs.images_lost(0, 4, "LARGE_DATA")  # the new subscription's first event
    assert inputs.camera_lost_by_dds == [32]
