# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Nodes spinning in their own executor thread, as `ros2 run` spins a node (for tests and benchmarks over rclpy)."""

from __future__ import annotations

import threading

from rclpy.executors import SingleThreadedExecutor


class Spinner:
    """``nodes`` spun by one executor on a daemon thread (``thread``) from construction until `stop`."""

    def __init__(self, *nodes) -> None:
        self.executor = SingleThreadedExecutor()
        for node in nodes:
            self.executor.add_node(node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.executor.shutdown(timeout_sec=5.0)
        self.thread.join(timeout=5.0)
