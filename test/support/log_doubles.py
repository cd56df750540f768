# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Test doubles of a logger and of a monotonic clock, for the live logic's tests."""

from __future__ import annotations


class RecordingLogger:
    """Test double of rclpy's / logging's logger: records (level, text)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, text: str) -> None:
        self.lines.append(("info", text))

    def warning(self, text: str) -> None:
        self.lines.append(("warning", text))

    def error(self, text: str) -> None:
        self.lines.append(("error", text))


class ManualClock:
    """Test double of time.monotonic, advanced by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now
