# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""``reconstruct_node``'s entry point: the node in a single-threaded executor, stopped in order on a signal."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Optional

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions
from rclpy.task import Future

from vggt_ros.live.startup import StartupError
from vggt_ros.ros.node import NODE_NAME, ReconstructionNode
from vggt_ros.ros.params import ros_arguments_fix

# The longest a SIGINT or SIGTERM waits to be handled while the node is idle (see main).
SIGNAL_LATENCY_S = 0.25


def main(args: Optional[list[str]] = None) -> int:
    """Entry point of ``ros2 run vggt_ros reconstruct_node``: spin until Ctrl-C (SIGINT) or SIGTERM; exit 1 on a
    start-up error.

    Stopping is ordered so nothing runs on a dead ROS context: the signal stops the executor once every ``~/save``
    in flight has answered (the save thread writes them, the executor sends the answers); then the node closes its
    worker, which finishes and publishes the window it is on; only then does rclpy shut down. (rclpy's own signal
    handler would shut the context down at once, under the worker's feet.) A signal during start-up (loading the
    weights) stops it at once.
    """
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except RuntimeError as err:  # rcl's argument parser: a missing or malformed --params-file, a bad --ros-args
        reason = str(err).split(", at ")[0]  # without rcl's C source locations
        print(
            f"[FATAL] [{NODE_NAME}]: cannot start: {reason}. Fix: {ros_arguments_fix(reason)}",
            file=sys.stderr,
        )
        return 1
    executor = SingleThreadedExecutor()
    spinning = threading.Event()
    stopped: Future = Future()

    signalled = threading.Event()

    def stop(signum, frame) -> None:
        signalled.set()
        if not spinning.is_set():
            raise KeyboardInterrupt  # still starting up
        # Completing the future wakes the executor, which returns once the callback in flight is done. From another
        # thread: this handler may interrupt the main thread inside the future's own lock.
        threading.Thread(target=lambda: stopped.done() or stopped.set_result(signum), daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    node = None
    try:
        node = ReconstructionNode()
        executor.add_node(node)
        spinning.set()
        # rcl waits in C, where Python runs no signal handler: with nothing that wakes the executor (no timer before
        # configure or after the shutdown transition) a signal would never be handled. Waking every
        # SIGNAL_LATENCY_S bounds that delay.
        # spin_once, not spin_until_future_complete: that adds a done callback to the future at every call.
        while not stopped.done() and executor.context.ok():
            executor.spin_once(timeout_sec=SIGNAL_LATENCY_S)
        if node.saves_in_flight:
            node.get_logger().info("waiting for the save in progress to finish and answer")
        while node.saves_in_flight and executor.context.ok():
            executor.spin_once(timeout_sec=SIGNAL_LATENCY_S)
    except StartupError as err:
        if signalled.is_set():
            # Stopped while starting up: a library may turn the interrupt into its own error (Open3D's import
            # raises ImportError "initialization failed"), which is not the node's failure to report.
            rclpy.logging.get_logger(NODE_NAME).info("stopped by a signal during start-up")
            return 0
        rclpy.logging.get_logger(NODE_NAME).fatal(str(err))
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # a signal while still starting up
    finally:
        executor.shutdown()
        if node is not None:
            node.destroy_node()  # joins the worker while the context is still valid
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
