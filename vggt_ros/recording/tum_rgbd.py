# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""A TUM RGB-D sequence folder, read exactly as published (https://cvg.cit.tum.de/data/datasets/rgbd-dataset).

* ``rgb.txt`` and ``depth.txt``: ``#`` comment lines, then ``timestamp filename`` per image: seconds with six
  decimals, file names relative to the folder (``rgb/1305031102.175304.png``).
* Depth PNGs: 16-bit, 5000 units per metre (`DEPTH_FACTOR`), 0 where the sensor measured nothing.
* ``groundtruth.txt``: a TUM trajectory (``timestamp tx ty tz qx qy qz qw``, four-decimal stamps at 100 Hz, more
  often than the 30 Hz images), scored with evo (bench/tum_rgbd.py); not read here.

The colour images are one camera's frame sets for the offline command, stamped exactly with their listed times
(integer nanoseconds), so the written trajectory associates with the ground truth. The depth image of a colour
image is the one nearest in time within `DEPTH_MAX_DIFFERENCE_NS`, as the dataset's ``associate.py`` pairs them.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
from PIL import Image as PILImage

from vggt_ros.image_limits import DEFAULT_MAX_IMAGE_PIXELS, image_file_hw
from vggt_ros.preprocess import DEFAULT_TARGET_SIZE, decode_image_file
from vggt_ros.recording.inputs import (
    InputFrameSet,
    SkippedFiles,
    check_export_names,
    common_model_hw,
    usable_image_files,
)
from vggt_ros.window import FrameSet

log = logging.getLogger(__name__)
DEPTH_FACTOR = 5000.0  # depth PNG units per metre
DEPTH_MAX_DIFFERENCE_NS = 20_000_000  # associate.py's default --max_difference, 0.02 s
_NANOSECONDS = Decimal(1_000_000_000)


@dataclass(frozen=True)
class ListedImage:
    """One line of ``rgb.txt`` / ``depth.txt``: the stamp in integer nanoseconds and the image file."""

    stamp_ns: int
    path: Path


def parse_stamp_ns(text: str) -> int:
    """Decimal seconds (``1305031102.175304``) as exact integer nanoseconds; ValueError if not a finite number of
    seconds >= 0 (a ROS time, which the exports and the bag stamp with, is never negative)."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a time in seconds") from None
    if not value.is_finite():
        raise ValueError(f"{text!r} is not a time in seconds")
    if value < 0:
        raise ValueError(f"stamp {text} is negative; stamps are seconds >= 0 (since 1970 for recorded sequences)")
    return int((value * _NANOSECONDS).to_integral_value())


def _list_lines(path: Path) -> list[str]:
    """The lines of a list file: UTF-8, with or without the byte-order mark some editors write before the first
    line (it would make the header comment a malformed image line)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text ({err.reason}); save the file as UTF-8") from None


def read_image_list(path: Path) -> list[ListedImage]:
    """The images a TUM list file names, in its order (strictly increasing stamps)."""
    if not path.is_file():
        raise ValueError(f"{path} not found; a TUM RGB-D sequence folder holds rgb.txt, depth.txt, groundtruth.txt")
    images: list[ListedImage] = []
    for number, line in enumerate(_list_lines(path), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            if len(fields) != 2:
                raise ValueError(f"expected 'timestamp filename', got {line!r}")
            stamp_ns = parse_stamp_ns(fields[0])
        except ValueError as err:
            raise ValueError(f"{path}:{number}: {err}") from None
        if images and stamp_ns == images[-1].stamp_ns:
            raise ValueError(
                f"{path}:{number}: stamp {fields[0]} repeats the previous line's, to the nanosecond (two images at "
                "one time); remove one"
            )
        if images and stamp_ns < images[-1].stamp_ns:
            raise ValueError(f"{path}:{number}: stamp {fields[0]} is before the previous line's; sort the file")
        images.append(ListedImage(stamp_ns, path.parent / fields[1]))
    if not images:
        raise ValueError(f"{path} lists no image")
    return images


def read_depth_png(path: Path) -> np.ndarray:
    """``(H, W)`` float32 metres of a TUM depth PNG (16-bit, `DEPTH_FACTOR` per metre), NaN where it reads 0."""
    try:
        with PILImage.open(path) as image:
            if image.mode not in ("I;16", "I;16B", "I"):
                raise ValueError(f"depth image {path} is {image.mode}, not a 16-bit PNG (TUM: 5000 units per metre)")
            units = np.asarray(image).astype(np.float32)
    except FileNotFoundError:
        raise ValueError(f"depth image {path} not found (listed in depth.txt)") from None
    except OSError as err:
        raise ValueError(f"cannot read depth image {path} ({err})") from err
    units[units == 0] = np.nan
    return units / DEPTH_FACTOR


class TumRgbdSequence:
    """A sequence folder's colour images as one camera's frame sets, and optionally their depth images.

    The colour images' file headers are read first, as a folder's are (`usable_image_files`): unreadable ones, ones
    over ``max_image_pixels`` and ones no model input of ``mode`` and ``target_size`` can be made of are skipped, and
    images of different sizes are padded to one model size (`model_hw`), so one odd image never costs the run.

    Attributes:
        rgb: the usable colour images of ``rgb.txt``.
        sizes: their (H, W).
        model_hw: the model input (H, W) every frame is padded to (`common_model_hw`).
        depth: colour stamp -> the nearest depth image within `DEPTH_MAX_DIFFERENCE_NS` (empty without depth).
        skipped: file name -> why it was skipped (an unreadable colour image, or ``depth/<name>`` for an unreadable
            depth image; the run goes on).
    """

    def __init__(
        self,
        folder: Path,
        depth: bool = False,
        mode: str = "crop",
        target_size: int = DEFAULT_TARGET_SIZE,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    ) -> None:
        if not folder.is_dir():
            raise ValueError(f"--tum {folder} is not a folder; give a TUM RGB-D sequence folder (with rgb.txt)")
        self.skipped = SkippedFiles()
        listed = read_image_list(folder / "rgb.txt")
        usable = usable_image_files(
            [image.path for image in listed], mode, target_size, max_image_pixels, self.skipped.add
        )
        self.sizes = set(usable.values())
        self.rgb = [image for image in listed if image.path in usable]
        if not self.rgb:
            raise ValueError(
                f"no usable colour image in {folder / 'rgb.txt'} ({len(self.skipped)} missing, unreadable, too large "
                "or too elongated; see the warnings)"
            )
        check_export_names([image.path.name for image in self.rgb], str(folder / "rgb.txt"))  # named as their files
        self.model_hw = common_model_hw(self.sizes, mode, target_size)
        self.depth: dict[int, Path] = {}
        if depth:
            self.depth = associate_nearest(self.rgb, read_image_list(folder / "depth.txt"), DEPTH_MAX_DIFFERENCE_NS)
            if not self.depth:
                raise ValueError(f"no depth image of {folder / 'depth.txt'} is within 0.02 s of a colour image")
            self._leave_out_unregistered_depth(usable, max_image_pixels)
            if not self.depth:
                raise ValueError(
                    f"no depth image of {folder / 'depth.txt'} has its colour image's size; --metric-depth needs depth "
                    "registered to the colour images, pixel for pixel, as TUM RGB-D's depth/ is (see the warnings)"
                )
            log.info("%d of %d colour images have a depth image within 0.02 s", len(self.depth), len(self.rgb))

    def _leave_out_unregistered_depth(self, colour_hw: dict[Path, tuple[int, int]], max_image_pixels: int) -> None:
        """Leave out, as unreadable ones are, the depth images of another size than their colour image's (``colour_hw``
        by file; from the file headers, before any work): such depth is not registered to the colour image, and would
        give no scale only after the inference."""
        for image in self.rgb:
            path = self.depth.get(image.stamp_ns)
            if path is None:
                continue
            try:
                depth_hw = image_file_hw(path, max_image_pixels)
            except (OSError, ValueError):
                continue  # unreadable: skipped when it is read, with the reader's reason
            colour = colour_hw[image.path]
            if depth_hw != colour:
                why = (
                    f"depth image is {depth_hw[1]}x{depth_hw[0]} (WxH) but its colour image {image.path.name} is "
                    f"{colour[1]}x{colour[0]}; --metric-depth needs depth registered to the colour images"
                )
                self.skipped.add(path, why, f"{path.parent.name}/{path.name}")
                del self.depth[image.stamp_ns]

    def frame_sets(self) -> Iterator[InputFrameSet]:
        """Each colour image a frame set stamped with its listed time; named as its file in the exports."""
        for image in self.rgb:
            try:
                pixels = decode_image_file(image.path)
            except ValueError as err:
                self.skipped.add(image.path, str(err))
                continue
            frame_set = FrameSet(stamps_ns=(image.stamp_ns,), images=(pixels,))
            yield InputFrameSet(frame_set, (image.path.name,), (image.path,))

    def depth_lookup(self, camera: int, stamp_ns: int) -> Optional[np.ndarray]:
        """The session's `DepthLookup`: ``(H, W)`` metres of the colour image's depth image, None if it has none.

        A depth image that cannot be read (missing, truncated, not 16-bit) is skipped like a colour image: its
        colour image has no sensor depth, and the scale comes from the others."""
        path = self.depth.get(stamp_ns)
        if path is None:
            return None
        try:
            return read_depth_png(path)
        except ValueError as err:
            self.skipped.add(path, str(err), f"{path.parent.name}/{path.name}")
            del self.depth[stamp_ns]  # asked once
            return None


def associate_nearest(first: list[ListedImage], second: list[ListedImage], max_difference_ns: int) -> dict[int, Path]:
    """first's stamp -> the file of a second's image, as ``associate.py`` pairs them: of all pairs closer in time than
    ``max_difference_ns``, greedily the nearest first, each image of either list in one pair at most."""
    stamps = [image.stamp_ns for image in second]
    candidates = []
    for image in first:  # every pair closer than the limit, as associate.py's, not only the nearest two
        low = bisect.bisect_right(stamps, image.stamp_ns - max_difference_ns)
        high = bisect.bisect_left(stamps, image.stamp_ns + max_difference_ns)
        candidates += [(abs(stamps[i] - image.stamp_ns), image.stamp_ns, i) for i in range(low, high)]
    pairs: dict[int, Path] = {}
    used: set[int] = set()
    for _, stamp_ns, index in sorted(candidates):
        if stamp_ns not in pairs and index not in used:
            pairs[stamp_ns] = second[index].path
            used.add(index)
    return pairs
