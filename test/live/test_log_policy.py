# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The node's one log de-duplication policy: per-key periods, once-until-cleared, and a bounded key table."""

from __future__ import annotations

from support.log_doubles import ManualClock, RecordingLogger
from vggt_ros.live.log_policy import LogPolicy


def test_a_key_is_reported_once_per_period_whatever_its_text():
    logger, clock = RecordingLogger(), ManualClock()
    log = LogPolicy(logger, period_s=5.0, clock=clock)
    for size in range(100):  # the text carries a value that changes every time, the key does not
        log.every("error", ("image", 0, "corrupt"), f"JPEG of {1000 + size} bytes is corrupt")
        clock.now += 0.04
    assert len(logger.lines) == 1
    clock.now += 5.0
    log.every("error", ("image", 0, "corrupt"), "again")
    assert logger.lines[-1] == ("error", "again") and len(logger.lines) == 2


def test_different_keys_are_each_news():
    logger = RecordingLogger()
    log = LogPolicy(logger, clock=ManualClock())
    log.every("error", ("image", 0, "encoding", "yuv422"), "a")
    log.every("error", ("image", 0, "encoding", "bayer_rggb8"), "b")
    log.every("error", ("image", 1, "encoding", "yuv422"), "c")
    assert [text for _, text in logger.lines] == ["a", "b", "c"]


def test_once_holds_until_its_group_is_cleared():
    logger = RecordingLogger()
    log = LogPolicy(logger, clock=ManualClock())
    for _ in range(3):
        log.once("warning", ("depth", 0, "encoding"), "depth of camera 0 is not depth")
        log.once("warning", ("depth", 1, "encoding"), "depth of camera 1 is not depth")
    assert len(logger.lines) == 2
    log.clear(("depth", 0))  # camera 0 sent a usable image
    log.once("warning", ("depth", 0, "encoding"), "depth of camera 0 is not depth")
    log.once("warning", ("depth", 1, "encoding"), "depth of camera 1 is not depth")
    assert len(logger.lines) == 3 and logger.lines[-1][1].startswith("depth of camera 0")


def test_the_key_table_is_bounded_under_hostile_input():
    logger = RecordingLogger()
    log = LogPolicy(logger, max_keys=64, clock=ManualClock())
    for value in range(10_000):  # e.g. a different bogus encoding string in every message
        log.every("error", ("image", 0, "encoding", f"bogus{value}"), "bad encoding")
    assert len(log) == 64


def test_each_level_reaches_its_own_logger_method():
    logger = RecordingLogger()
    log = LogPolicy(logger, clock=ManualClock())
    log.every("info", ("a",), "1")
    log.every("warning", ("b",), "2")
    log.once("error", ("c",), "3")
    assert logger.lines == [("info", "1"), ("warning", "2"), ("error", "3")]
