# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The machine a benchmark ran on, for its JSON (imported by the bench scripts, which run from this folder)."""

from __future__ import annotations

import os
import platform


def describe_machine(load_before: float) -> dict:
    """Platform, processor, CPU count, Python, and the 1-minute load average before (``load_before``, read by the
    caller when it started) and after the run: other jobs slow every figure on a shared machine."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
    }
