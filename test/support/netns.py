# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Where DDS may run: tests and benchmarks that start rclpy check `network_is_loopback_only` first; test modules
start it through `loopback_rclpy`."""

from __future__ import annotations

import fcntl
import os
import socket
import struct
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

_SIOCGIFFLAGS = 0x8913
_IFF_UP = 0x1


def network_is_loopback_only() -> bool:
    """True when this process's network namespace has only an up ``lo`` interface.

    Tests and benchmarks that start DDS check this first: DDS discovery multicasts on every interface, and in a
    shared development or CI machine it must stay on loopback (``unshare -n sh -c 'ip link set lo up && ...'``).
    Reads the namespace through sockets, not /sys (which shows the namespace that mounted it).
    """
    if [name for _, name in socket.if_nameindex()] != ["lo"]:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)  # struct ifreq: name, flags, padding to 40 bytes
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, request))[1]
    return bool(flags & _IFF_UP)


def require_loopback_only(test_file: str) -> None:
    """Fail the calling test, loudly and never as a skip, unless DDS cannot leave the machine
    (`network_is_loopback_only`); the message names ``test_file`` (its ``__file__``) and how to run it."""
    if network_is_loopback_only():
        return
    import pytest  # tests only: the benchmarks import this module too

    path = Path(test_file).resolve().relative_to(Path(__file__).resolve().parents[2])
    pytest.fail(
        f"{path.name} starts DDS and must run in a network namespace whose only interface is an up 'lo'. Run it "
        f"as:\n  bash tools/run_tests.sh {path}\n(or: unshare -n sh -c 'ip link set lo up && exec python -m pytest "
        f"{path}')",
        pytrace=False,
    )


# `loopback_rclpy`'s default: the Fast DDS transports the environment already selects.
INHERITED = object()


@contextmanager
def loopback_rclpy(test_file: str, transports: Any = INHERITED) -> Iterator[None]:
    """rclpy initialised for the ``with`` block, only where DDS cannot leave the machine (`require_loopback_only`,
    naming ``test_file``). ``transports``: Fast DDS' builtin transports for the block (None: its defaults), set
    before `rclpy.init` creates the participant, which reads them; the environment is restored afterwards."""
    require_loopback_only(test_file)
    import rclpy  # tests only: the benchmarks import this module too

    from vggt_ros.ros.node import TRANSPORTS_VARIABLE

    saved = os.environ.get(TRANSPORTS_VARIABLE)
    if transports is not INHERITED:
        os.environ.pop(TRANSPORTS_VARIABLE, None)
        if transports is not None:
            os.environ[TRANSPORTS_VARIABLE] = transports
    rclpy.init()
    try:
        yield
    finally:
        rclpy.shutdown()
        os.environ.pop(TRANSPORTS_VARIABLE, None)
        if saved is not None:
            os.environ[TRANSPORTS_VARIABLE] = saved
