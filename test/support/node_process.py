# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The node as a separate process, started and stopped as a user would: wait for a line, then Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from typing import Iterator, Mapping, Optional


def node_command(parameters: Mapping[str, object] = {}, *ros_args: str) -> list[str]:
    """The command that starts the node as its own process (as `ros2 run` would): ``-p name:=value`` for each of
    ``parameters``, then ``ros_args`` (more ``-p``, ``--params-file``, ...)."""
    command = [sys.executable, "-m", "vggt_ros.ros.node", "--ros-args"]
    for name, value in parameters.items():
        command += ["-p", f"{name}:={value}"]
    return command + list(ros_args)


def start_then_interrupt(
    command: list[str],
    marker: str,
    start_timeout_s: float,
    exit_timeout_s: float,
    env: Optional[dict] = None,
    cwd=None,
) -> str:
    """Run ``command`` until a line of its output contains ``marker``, send SIGINT, and return its whole output
    (stdout and stderr). Fails the test when the marker does not come within ``start_timeout_s`` or the process does
    not exit with code 0 within ``exit_timeout_s``."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    started = threading.Event()

    def read() -> None:
        for line in process.stdout:
            lines.append(line)
            if marker in line:
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(timeout=start_timeout_s), "".join(lines)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=exit_timeout_s) == 0, "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(timeout=5)
    return "".join(lines)


@contextmanager
def running_process(command: list[str], env: Optional[dict] = None) -> Iterator[tuple[subprocess.Popen, list[str]]]:
    """``command`` as its own process, and its output (stdout and stderr) as it comes, line by line; killed if it
    still runs at the end of the block."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        yield process, lines
    finally:
        if process.poll() is None:
            process.kill()
        reader.join(timeout=5)
