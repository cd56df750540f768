# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Waiting for what a test-side ROS node records (its subscription callbacks notify ``condition``)."""

from __future__ import annotations

import threading
import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_for(condition: threading.Condition, predicate: Callable[[], T], timeout_s: float, what: str) -> T:
    """The first true value of ``predicate``, checked under ``condition`` whenever it is notified (and every 0.2 s);
    AssertionError naming ``what`` after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    with condition:
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
            condition.wait(timeout=min(remaining, 0.2))
