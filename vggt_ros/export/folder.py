# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""An export's folder (``--out`` of `python -m vggt_ros.export`, vggt-ros-build-engines and vggt-ros-quantize):
what is checked there before any work.

An export is swapped into its folder whole, at its end (`vggt_ros.files.staged_entries`), and replaces or removes only
the entries an earlier export recorded writing there (``.vggt-saved``). So a user's own ``manifest.json`` or graph of
an export's name is refused before the model loads (`check_export_entries`), rather than when the work is done; and
an export that an earlier vggt_ros wrote without a record is recorded first (`adopt_earlier_export`), by the names
its commands write, so that it is replaced as a recorded one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..files import record_unrecorded_save
from ..output_folder import check_run_entries
from ..quantized_formats.plan import quantized_scheme_in
from ..runtime.io_contract import ExportManifest, ManifestError

# What an exporting command that is stopped says: its staging folder (gigabytes for VGGT-1B) is removed as it
# unwinds, and a signal during the swap waits for its end (`vggt_ros.files.staged_entries`).
STOPPED_MESSAGE = "stopped; --out holds a whole export: the earlier one, or this one if it was already in place"


def check_export_entries(out: Path, entries: Sequence[str]) -> None:
    """`vggt_ros.output_folder.OutputFolderError` when ``out`` (--out) holds one of ``entries``, the names the export
    writes, that no earlier export recorded writing (after `adopt_earlier_export`): the export would replace the
    user's own file."""
    adopt_earlier_export(out, entries)
    check_run_entries(out, entries)


def adopt_earlier_export(out: Path, entries: Sequence[str]) -> None:
    """Record those of ``entries`` that ``out`` holds when it holds an export an earlier vggt_ros wrote without a
    record: a manifest.json that reads as an export's, or a vggt-ros-quantize plan.json."""
    if out.is_dir() and _holds_an_export(out):
        record_unrecorded_save(out, entries)


def _holds_an_export(out: Path) -> bool:
    try:
        ExportManifest.load(out)
        return True
    except ManifestError:
        return quantized_scheme_in(out) not in (None, "unknown")
