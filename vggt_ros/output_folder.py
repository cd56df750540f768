# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The offline command's output paths, checked before any work so that no result is lost at the end.

``--out`` must be a folder that is empty or new: files of an earlier run left in it (a third image's depth
beside a two-image run's) would make the folder describe no single run. ``--overwrite`` removes first exactly
the outputs the command writes (`OUTPUTS`, and scratch folders an earlier run left), and nothing else of the
user's. ``--out-bag`` must be a new path whose folder can be written.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# What `vggt-ros-reconstruct` writes into --out: files, then folders.
OUTPUT_FILES = ("map.ply", "trajectory.tum", "summary.json", "transforms.json")
OUTPUT_FOLDERS = ("colmap", "images", "depth", "confidence")
OUTPUTS = OUTPUT_FILES + OUTPUT_FOLDERS
SCRATCH_PATTERN = ".colmap-scratch-*"  # `vggt_ros.dataset.writer.DatasetWriter`'s, left only by a killed run
_PROBE = ".vggt-ros-write-check"


def prepare_output_folder(out: Path, overwrite: bool) -> None:
    """Check that ``out`` can take a run's results, and with ``overwrite`` remove an earlier run's.

    Raises:
        ValueError: ``out`` is a file, holds files without ``overwrite``, or cannot be written; the message names
            --out and the fix.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder; choose a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(
                f"--out {out} is not empty; choose a new or empty folder, or pass --overwrite to replace an earlier "
                f"run's outputs there ({', '.join(OUTPUTS)}; other files are kept)"
            )
        _remove_outputs(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / _PROBE
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"--out {out} cannot be written ({err}); choose a writable folder") from None


def _remove_outputs(out: Path) -> None:
    try:
        for name in OUTPUTS:
            path = out / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
        for scratch in out.glob(SCRATCH_PATTERN):
            shutil.rmtree(scratch)
    except OSError as err:
        raise ValueError(f"--overwrite: cannot remove {err.filename or out} ({err.strerror or err})") from None


def check_out_bag(path: Path) -> None:
    """Check that ``--out-bag`` can be created (a new path in an existing, writable folder).

    Raises:
        ValueError: the path exists, or its folder is missing or not writable; the message names --out-bag.
    """
    if path.exists() or path.is_symlink():
        raise ValueError(f"--out-bag {path} exists; remove it or choose another path")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise ValueError(f"--out-bag {path}: {parent} is not an existing folder; create it or choose another path")
    try:  # the bag is a folder (rosbag2's layout): create it as the writer will, then leave the path free
        path.mkdir()
        path.rmdir()
    except OSError as err:
        raise ValueError(
            f"--out-bag {path} cannot be created ({err.strerror or err}); choose a writable place"
        ) from None
