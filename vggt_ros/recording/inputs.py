# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The offline command's inputs as synchronised frame sets: a folder of images, or image topics of a bag.

Each `InputFrameSet` carries the `FrameSet` the session runs and, per camera, the name its image gets in the
exports (the file's own name for a folder; ``<camera>/<stamp_ns>.png`` for a bag, whose images have no files).
Bag topics are grouped by the node's approximate-time core (`vggt_ros.live.sync`), so K cameras pair up offline
exactly as they do live.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from PIL import Image as PILImage

from vggt_ros.live.sync import synchronize
from vggt_ros.preprocess import decode_image_file, output_size
from vggt_ros.recording.bag_reader import BagImageSource
from vggt_ros.window import FrameSet

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
FRAME_PERIOD_NS = 100_000_000  # a folder's images carry no time: they are stamped 10 Hz apart


@dataclass(frozen=True)
class InputFrameSet:
    """A frame set and, per camera, its image's name in the exports and its source file (None for a bag)."""

    frame_set: FrameSet
    names: tuple[str, ...]
    files: tuple[Optional[Path], ...]


def image_files(folder: Path) -> list[Path]:
    """The folder's images, sorted by name (= time order)."""
    if not folder.is_dir():
        raise ValueError(f"--images {folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


class FolderInput:
    """A folder's images as one camera's frame sets. Every file's header is read before any work: unreadable ones
    are skipped with a warning (and listed in `skipped`), as are files that fail to decode later, so one bad file
    never costs the run.

    Attributes:
        files: the readable images, in order.
        model_hw: the largest model input (H, W) when the images' model sizes differ (each frame is then padded to
            it, as the official loader pads a batch), else None.
        skipped: file name -> why it was skipped.
    """

    def __init__(self, folder: Path, mode: str, target_size: int) -> None:
        self.skipped: dict[str, str] = {}
        self.files: list[Path] = []
        sizes = set()
        for path in image_files(folder):
            try:
                with PILImage.open(path) as image:
                    width, height = image.size
            except (OSError, ValueError) as err:
                self._skip(path, f"cannot read image file: {err}")
                continue
            self.files.append(path)
            sizes.add(output_size(height, width, mode, target_size))
        if not self.files:
            raise ValueError(f"no readable image in {folder} ({len(self.skipped)} unreadable)")
        self.model_hw = None if len(sizes) == 1 else (max(h for h, _ in sizes), max(w for _, w in sizes))

    def _skip(self, path: Path, reason: str) -> None:
        log.warning("skipping %s: %s", path, reason)
        self.skipped[path.name] = reason

    def frame_sets(self) -> Iterator[InputFrameSet]:
        """Each file a frame set, stamped `FRAME_PERIOD_NS` apart (by position in the folder)."""
        for index, path in enumerate(self.files):
            try:
                image = decode_image_file(path)
            except ValueError as err:
                self._skip(path, str(err))
                continue
            frame_set = FrameSet(stamps_ns=(index * FRAME_PERIOD_NS,), images=(image,))
            yield InputFrameSet(frame_set, (path.name,), (path,))


def bag_frame_sets(
    source: BagImageSource, camera_names: tuple[str, ...], queue_size: int, slop: float
) -> Iterator[InputFrameSet]:
    """The bag's image topics grouped into frame sets by approximate time (one camera: every image)."""
    for synced in synchronize(iter(source), len(camera_names), queue_size, slop):
        names = tuple(f"{name}/{stamp_ns}.png" for name, stamp_ns in zip(camera_names, synced.stamps_ns))
        frame_set = FrameSet(stamps_ns=synced.stamps_ns, images=synced.items)
        yield InputFrameSet(frame_set, names, (None,) * len(names))
