# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""A real filesystem that fills up: a small tmpfs mounted for one test (tools/run_tests.sh runs the suite in a
private mount namespace, where a test may mount one without touching the machine's)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

RUN_TESTS = "bash tools/run_tests.sh (unshare -m: a private mount namespace, as root or in a user namespace)"


@contextmanager
def small_filesystem(path: Path, size_kib: int) -> Iterator[Path]:
    """Mount a ``size_kib`` KiB tmpfs at ``path`` (created) for the ``with`` block; fails the test, with the
    command to use, where this process may not mount."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(path)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a small tmpfs ({mounted.stderr.strip()}); run the tests with {RUN_TESTS}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(path: Path, leave_bytes: int) -> None:
    """Fill the filesystem of ``path`` with a file ``path/filler`` until about ``leave_bytes`` are free."""
    stats = os.statvfs(path)
    free = stats.f_bavail * stats.f_frsize
    with open(path / "filler", "wb") as file:
        file.write(b"\0" * max(0, free - leave_bytes))


def digests(folder: Path) -> dict[str, str]:
    """md5 of every file under ``folder`` by relative path (what a failed save must leave as it was)."""
    return {
        str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
