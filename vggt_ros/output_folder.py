# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Checking, before any work, that a command can write its output folder at the end.

A long run (quantization takes minutes to hours) must not fail at its last step on an output path that was never
usable. `check_output_folder` creates nothing: a folder that does not exist yet is judged by its nearest existing
parent, where a temporary file is created and removed again, so permissions, read-only mounts and pseudo file
systems such as /proc all answer as they will at the end.
"""

from __future__ import annotations

import tempfile
from pathlib import Path


class OutputFolderError(ValueError):
    """An output folder that the command could not write; the message names the option and the fix."""


def check_output_folder(folder: Path, option: str) -> None:
    """Raise `OutputFolderError` unless ``folder`` (given with the command-line ``option``, e.g. ``--out``) is a
    folder, or can become one, that this process can write into."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(f"{option} {folder} exists and is not a folder; choose a folder path")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputFolderError(f"{option} {folder} cannot be created: {existing} is not a folder; choose another path")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        where = "" if existing == folder else f" (it would be created in {existing})"
        raise OutputFolderError(
            f"{option} {folder} cannot be written{where}: {err.strerror or err}; choose a writable folder"
        ) from None
