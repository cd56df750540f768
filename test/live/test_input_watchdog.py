# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""InputWatchdog: which image topics count as quiet, on a hand-driven clock (no ROS); the fix its warning names."""

import pytest

from vggt_ros.live.input_watchdog import InputWatchdog, QuietTopic, quiet_topic_warning

TOPICS = ("/left/image", "/right/image")


def test_a_topic_with_a_publisher_but_no_image_is_quiet_after_the_timeout():
    watchdog = InputWatchdog(TOPICS, timeout_s=5.0, now_s=100.0)
    assert watchdog.quiet_topics({"/left/image": 1, "/right/image": 1}, now_s=100.0) == []
    assert watchdog.quiet_topics({"/left/image": 1, "/right/image": 1}, now_s=104.9) == []
    watchdog.image_arrived("/right/image", now_s=104.9)
    assert watchdog.quiet_topics({"/left/image": 1, "/right/image": 1}, now_s=105.0) == [
        QuietTopic("/left/image", publishers=1, quiet_s=5.0)
    ]


def test_images_keep_a_topic_alive_and_their_end_makes_it_quiet():
    watchdog = InputWatchdog(TOPICS[:1], timeout_s=2.0, now_s=0.0)
    counts = {"/left/image": 2}
    assert watchdog.quiet_topics(counts, now_s=0.0) == []
    for now in (1.0, 2.5, 4.0):
        watchdog.image_arrived("/left/image", now_s=now)
        assert watchdog.quiet_topics(counts, now_s=now + 1.9) == []
    assert watchdog.quiet_topics(counts, now_s=6.5) == [QuietTopic("/left/image", publishers=2, quiet_s=2.5)]


def test_a_topic_without_publishers_is_reported_with_zero_publishers():
    watchdog = InputWatchdog(TOPICS[:1], timeout_s=1.0, now_s=0.0)
    assert watchdog.quiet_topics({"/left/image": 0}, now_s=1.0) == [
        QuietTopic("/left/image", publishers=0, quiet_s=1.0)
    ]


def test_a_late_publisher_gets_the_full_timeout_from_when_it_is_seen():
    watchdog = InputWatchdog(TOPICS[:1], timeout_s=5.0, now_s=0.0)
    assert watchdog.quiet_topics({"/left/image": 0}, now_s=30.0)[0].publishers == 0  # no camera yet
    assert watchdog.quiet_topics({"/left/image": 1}, now_s=31.0) == []  # it appears: judged afresh
    assert watchdog.quiet_topics({"/left/image": 1}, now_s=35.9) == []
    assert watchdog.quiet_topics({"/left/image": 1}, now_s=36.0) == [
        QuietTopic("/left/image", publishers=1, quiet_s=5.0)
    ]


def test_publishers_leaving_restart_the_quiet_spell():
    watchdog = InputWatchdog(TOPICS[:1], timeout_s=5.0, now_s=0.0)
    watchdog.image_arrived("/left/image", now_s=1.0)
    assert watchdog.quiet_topics({"/left/image": 1}, now_s=2.0) == []
    assert watchdog.quiet_topics({"/left/image": 0}, now_s=3.0) == []  # the camera stopped
    assert watchdog.quiet_topics({"/left/image": 0}, now_s=8.0) == [
        QuietTopic("/left/image", publishers=0, quiet_s=5.0)
    ]


def test_more_publishers_do_not_restart_the_quiet_spell():
    watchdog = InputWatchdog(TOPICS[:1], timeout_s=5.0, now_s=0.0)
    assert watchdog.quiet_topics({"/left/image": 1}, now_s=0.0) == []
    assert watchdog.quiet_topics({"/left/image": 3}, now_s=4.0) == []
    assert watchdog.quiet_topics({"/left/image": 3}, now_s=5.0) == [
        QuietTopic("/left/image", publishers=3, quiet_s=5.0)
    ]


@pytest.mark.parametrize("timeout_s", [0.0, -1.0, float("nan")])
def test_the_timeout_must_be_positive(timeout_s):
    with pytest.raises(ValueError, match="input timeout must be > 0 seconds"):
        InputWatchdog(TOPICS, timeout_s=timeout_s, now_s=0.0)


@pytest.mark.parametrize(
    "transports, fix",
    [
        ("LARGE_DATA", "LARGE_DATA in the camera driver's environment too (this node's value: LARGE_DATA)"),
        # ros2 run without the launch file: this node runs the defaults, so the driver alone cannot fix it
        ("(unset)", "LARGE_DATA in both the camera driver's environment and this node's (this node's value: (unset))"),
    ],
)
def test_the_transport_fix_names_the_processes_that_need_it(transports, fix):
    for quiet, last_image_bytes in ((QuietTopic("/cam", 0, 6.0), None), (QuietTopic("/cam", 1, 6.0), None)):
        warning = quiet_topic_warning(quiet, transports, last_image_bytes)
        if quiet.publishers and transports == "LARGE_DATA":
            assert "FASTDDS_BUILTIN_TRANSPORTS" not in warning  # matched: the transports agree
        else:
            assert f"Fix: set FASTDDS_BUILTIN_TRANSPORTS={fix}" in warning, warning


def test_publishers_of_another_type_are_named_with_the_fix():
    quiet = QuietTopic("/camera/depth", 0, 7.0)
    warning = quiet_topic_warning(
        quiet, "LARGE_DATA", None, "sensor_msgs/msg/Image", ("sensor_msgs/msg/CompressedImage",)
    )
    assert warning.startswith("no image on '/camera/depth' for 7.0 s: the node reads sensor_msgs/msg/Image there")
    assert "publishers send sensor_msgs/msg/CompressedImage" in warning and "compressedDepth" in warning
    # without publishers of another type, the other causes as before
    assert quiet_topic_warning(quiet, "LARGE_DATA", None, "sensor_msgs/msg/Image", ()).startswith("no publisher on")
