# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Service calls from a test-side node to a node in another process, robust to ROS 2's service discovery race."""

from __future__ import annotations

import time
from typing import Callable

# A request is sent again when its answer has not come in this long (the node answers in milliseconds).
RESEND_AFTER_S = 5.0


def call_answered(client, request, wait_for: Callable, timeout_s: float, what: str):
    """The answer to ``request`` through the rclpy ``client``, the request sent again every `RESEND_AFTER_S` while
    none has come; AssertionError naming ``what`` when the service is not offered or nothing answers within
    ``timeout_s``. ``wait_for(predicate, timeout, what)`` waits while the test's executor spins (`Probe.wait_for`).

    `wait_for_service` is true once the client sees the server's request reader, but the server's response writer
    may not have discovered the client's response reader yet: rmw_fastrtps then waits 100 ms for it and drops the
    response (ros2/ros2#1253), which a loaded machine's discovery can outlast. Only for requests a server may
    handle twice: queries, or a transition whose outcome the caller reads back.
    """
    assert client.wait_for_service(timeout_sec=timeout_s), f"{what}: the service is not offered"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        future = client.call_async(request)
        resend_at = min(time.monotonic() + RESEND_AFTER_S, deadline)
        wait_for(
            lambda future=future, resend_at=resend_at: future.done() or time.monotonic() >= resend_at, timeout_s, what
        )
        if future.done():
            return future.result()
        client.remove_pending_request(future)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
