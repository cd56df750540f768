# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Command-line values the console scripts share."""

from __future__ import annotations

import argparse
from pathlib import Path


def path_argument(text: str) -> Path:
    """argparse ``type`` of a path option: an empty value (``--out ""``, an unset shell variable) is refused, where
    ``Path("")`` would be the current folder and a command would write its outputs there."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; give a path")
    return Path(text)
