# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Checking, before any work, that a command can write its output folder at the end.

A long run (quantization takes minutes to hours) must not fail at its last step on an output path that was never
usable. `check_output_folder` creates nothing: a folder that does not exist yet is judged by its nearest existing
parent, where a temporary file is created and removed again, so permissions, read-only mounts and pseudo file
systems such as /proc all answer as they will at the end.

The offline command's ``--out`` is one run's results. It is new or empty (`check_run_folder`), since files of an
earlier run left in it (a third image's depth beside a two-image run's) would make the folder describe no single
run, unless ``--overwrite`` is given. A run writes its entries (`run_entries`) into a staging folder inside
``--out`` and swaps them in only at its end (`vggt_ros.files.staged_entries`, the node's ``~/save``'s way), so:
- an earlier run's outputs go only when the new run's are complete: a run that fails to start, is aborted, or
  reconstructs nothing leaves them as they were (one whose output fails, a full disk, swaps in what it computed,
  and its summary names the failure);
- only entries an earlier run recorded writing (`vggt_ros.files.SAVE_RECORD`) are replaced or removed: a user's
  own ``images/`` or ``trajectory_right.tum`` of an output's name is refused before any work
  (`check_run_entries`), and any other file is kept; a run an earlier vggt_ros wrote without a record is
  recorded first (`adopt_earlier_run`);
- one run at a time writes into a folder (`run_folder` locks it from the first check to the swap).
An input inside ``--out`` is refused (`check_inputs_outside`, also through a link: ``--images`` of links to
``project/images/`` with ``--out project``): the run replaces ``images/`` and ``depth/`` there.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Optional, Sequence

from vggt_ros.dataset.tum import TUM_HEADER, trajectory_file_name
from vggt_ros.dataset.writer import DATASET_ENTRIES
from vggt_ros.files import (
    STAGING_PREFIX,
    FolderBusy,
    folder_locked,
    listed,
    missing_folders,
    record_unrecorded_save,
    remove_empty_folders,
    unrecorded_paths,
)

# What `vggt-ros-reconstruct` writes into --out besides the dataset exports (and each further camera's
# trajectory_<name>.tum, `run_entries`).
RUN_FILES = ("map.ply", "trajectory.tum", "summary.json")


class OutputFolderError(ValueError):
    """An output folder that the command could not write; the message names the option and the fix."""


def run_entries(camera_names: Sequence[str]) -> tuple[str, ...]:
    """The top-level entries a run of cameras ``camera_names`` writes into --out."""
    trajectories = (trajectory_file_name(camera, name) for camera, name in enumerate(camera_names) if camera)
    return (*RUN_FILES, *trajectories, *DATASET_ENTRIES)


def check_output_folder(folder: Path, option: str) -> None:
    """Raise `OutputFolderError` unless ``folder`` (given with the command-line ``option``, e.g. ``--out``) is a
    folder, or can become one, that this process can write into."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(f"{option} {folder} exists and is not a folder; choose a folder path")
    existing = folder
    while not existing.exists():
        if existing.is_symlink():  # mkdir would say only "File exists", at the end
            raise OutputFolderError(
                f"{option} {folder} cannot be created: {existing} is a link to {os.readlink(existing)}, which does not "
                "exist; create that folder, or choose another path"
            )
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
    """Check that ``out`` (--out) can take a run's results: new, empty (but for what a killed run left staged), or
    with ``overwrite`` anything.

    Args:
        inputs: the run's input paths by option (``{"--images": path}``; None: not given), which must lie outside
            ``out``.
    Raises:
        OutputFolderError: ``out`` is a file, holds an input, holds files without ``overwrite``, or cannot be
            written; the message names --out and the fix.
    """
    check_output_folder(out, "--out")
    for option, path in inputs.items():
        if path is not None:
            check_inputs_outside(out, option, [Path(path)])
    if not overwrite and out.is_dir() and any(not entry.name.startswith(STAGING_PREFIX) for entry in out.iterdir()):
        raise OutputFolderError(
            f"--out {out} is not empty; choose a new or empty folder, or pass --overwrite to replace an earlier "
            "run's outputs there (other files are kept)"
        )


def adopt_earlier_run(out: Path) -> None:
    """Record the outputs of a run that an earlier vggt_ros wrote into ``out`` without a record (its summary.json
    is ours), by the rules it followed (the fixed names, and the trajectory files its TUM writer began), so that
    --overwrite replaces them as a recorded run's."""
    if out.is_dir() and _our_summary(out / "summary.json"):
        trajectories = [path.name for path in sorted(out.glob("trajectory_*.tum")) if _written_by_us(path)]
        record_unrecorded_save(out, [*RUN_FILES, *DATASET_ENTRIES, *trajectories])


def _our_summary(path: Path) -> bool:
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and {"mode", "per_window", "units"} <= summary.keys()


def _written_by_us(path: Path) -> bool:
    """A trajectory file `vggt_ros.dataset.tum` wrote: its first line is ours."""
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return file.readline().startswith(TUM_HEADER)
    except OSError:
        return False


def check_inputs_outside(out: Path, option: str, paths: Iterable[Path]) -> None:
    """`OutputFolderError` when one of ``paths`` (given with ``option``), followed through links, lies in ``out``."""
    resolved = Path(out).resolve()
    for path in paths:
        if Path(path).resolve().is_relative_to(resolved):
            raise OutputFolderError(
                f"{option} {path} lies inside --out {out}"
                + (f" (it links to {Path(path).resolve()})" if Path(path).is_symlink() else "")
                + ", where the run replaces its outputs; choose an --out outside the inputs"
            )


def check_run_entries(out: Path, entries: Sequence[str]) -> None:
    """`OutputFolderError` when ``out`` holds one of ``entries`` (`run_entries`) that no earlier run recorded
    writing, or a file inside one of them that the earlier run did not write (``colmap/database.db``): the run would
    replace the user's own file or folder at its end."""
    if not out.is_dir():
        return
    foreign, inside = unrecorded_paths(out, entries)
    if foreign:
        raise OutputFolderError(
            f"--out {out} holds {', '.join(foreign)}, which no earlier run recorded writing there, and this run "
            "writes entries of those names: move them, or choose another --out"
        )
    if inside:
        raise OutputFolderError(
            f"--out {out} holds {listed(inside)}, which no earlier run wrote, inside folders this run replaces: "
            "move them, or choose another --out"
        )


def check_out_bag(out_bag: Path, out: Path, entries: Sequence[str]) -> None:
    """`OutputFolderError` when --out-bag is --out, holds it, or lies in one of its run ``entries``, which the run
    replaces."""
    bag, out = Path(out_bag).resolve(), Path(out).resolve()
    if bag == out:
        raise OutputFolderError(f"--out-bag {out_bag} is --out; the bag is a folder of its own: choose another path")
    if out.is_relative_to(bag):  # creating --out would create the bag's folder, which must not exist
        raise OutputFolderError(f"--out-bag {out_bag} holds --out; the bag is a folder of its own: choose another path")
    for name in entries:
        if bag.is_relative_to(out / name):
            raise OutputFolderError(
                f"--out-bag {out_bag} lies in --out's {name}, which the run writes (and a later --overwrite "
                "replaces); choose another path"
            )


@contextlib.contextmanager
def run_folder(out: Path) -> Iterator[Path]:
    """``out``, created if missing and locked for this run: `OutputFolderError` while another run writes into it.
    Folders created here that are still empty at the end (a run that failed to start) are removed again."""
    out = Path(out)
    created = missing_folders(out)
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        stack.callback(remove_empty_folders, created)  # not empty: the run's results are in it
        try:
            stack.enter_context(folder_locked(out))
        except FolderBusy:
            raise OutputFolderError(
                f"another vggt-ros-reconstruct run is writing into --out {out}; wait for it, or choose another --out"
            ) from None
        yield out
