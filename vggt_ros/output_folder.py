# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Checking, before any work, that a command can write its output folder at the end.

A long run (quantization takes minutes to hours) must not fail at its last step on an output path that was never
usable. `check_output_folder` creates nothing: a folder that does not exist yet is judged by its nearest existing
parent, where a temporary file is created and removed again, so permissions, read-only mounts and pseudo file
systems such as /proc all answer as they will at the end.

`check_run_folder` is the offline command's ``--out``: a folder that is new or empty, since files of an earlier run
left in it (a third image's depth beside a two-image run's) would make the folder describe no single run, unless
``--overwrite`` is given. Then `remove_earlier_outputs` removes exactly the outputs the command writes (`OUTPUTS`:
every camera's trajectory file, known by its first line, and scratch folders a killed run left) and nothing else of
the user's (a ``trajectory_groundtruth.tum`` beside them stays). The command removes them only once the run has
started (inputs, options and model checked): a run that fails to start leaves the earlier one whole. An input
inside ``--out`` is refused either way: the run writes ``images/`` and ``depth/`` there, and ``--overwrite`` would
remove them (a nerfstudio-style ``project/images`` given with ``--out project``).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Mapping, Optional

from vggt_ros.dataset.tum import TUM_HEADER
from vggt_ros.files import temporary_glob

# What `vggt-ros-reconstruct` writes into --out: files, then folders, then patterns (trajectory_<camera>.tum of
# cameras after the first, `vggt_ros.dataset.tum`; `vggt_ros.dataset.writer`'s scratch, left only by a
# killed run).
OUTPUT_FILES = ("map.ply", "trajectory.tum", "summary.json", "transforms.json")
OUTPUT_FOLDERS = ("colmap", "images", "depth", "confidence")
TRAJECTORIES = "trajectory_*.tum"
SCRATCH = ".colmap-scratch-*"
OUTPUT_PATTERNS = (TRAJECTORIES, SCRATCH)
OUTPUTS = OUTPUT_FILES + OUTPUT_FOLDERS + OUTPUT_PATTERNS


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


def check_run_folder(out: Path, overwrite: bool, inputs: Mapping[str, Optional[Path]]) -> None:
    """Check that ``out`` (--out) can take a run's results: new, empty, or with ``overwrite`` an earlier run's
    (`remove_earlier_outputs` removes them once the run has started).

    Args:
        inputs: the run's input paths by option (``{"--images": path}``; None: not given), which must lie outside
            ``out``.
    Raises:
        OutputFolderError: ``out`` is a file, holds an input, holds files without ``overwrite``, or cannot be
            written; the message names --out and the fix.
    """
    check_output_folder(out, "--out")
    for option, path in inputs.items():
        if path is not None and Path(path).resolve().is_relative_to(Path(out).resolve()):
            raise OutputFolderError(
                f"{option} {path} lies inside --out {out}, where the run writes (and --overwrite removes) "
                f"{', '.join(OUTPUTS)}; choose an --out outside the inputs"
            )
    if not overwrite and out.is_dir() and any(out.iterdir()):
        raise OutputFolderError(
            f"--out {out} is not empty; choose a new or empty folder, or pass --overwrite to replace an earlier "
            f"run's outputs there ({', '.join(OUTPUTS)}; other files are kept)"
        )


def remove_earlier_outputs(out: Path) -> None:
    """Remove an earlier run's outputs from ``out`` (see the module docstring); `OutputFolderError` when one cannot
    be removed."""
    if not out.is_dir():
        return
    paths = [out / name for name in OUTPUT_FILES + OUTPUT_FOLDERS]
    paths += sorted(out.glob(SCRATCH))
    paths += [path for path in sorted(out.glob(TRAJECTORIES)) if _written_by_us(path)]
    # The temporaries of the files written whole (`vggt_ros.files`) that a killed run left.
    paths += [path for name in (*OUTPUT_FILES, TRAJECTORIES) for path in sorted(out.glob(temporary_glob(name)))]
    try:
        for path in paths:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
    except OSError as err:
        raise OutputFolderError(f"--overwrite: cannot remove {err.filename or out} ({err.strerror or err})") from None


def _written_by_us(path: Path) -> bool:
    """A trajectory file `vggt_ros.dataset.tum` wrote: its first line is ours."""
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return file.readline().startswith(TUM_HEADER)
    except OSError:
        return False
