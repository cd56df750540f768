# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The offline command's inputs as synchronised frame sets: a folder of images, or image topics of a bag.

Each `InputFrameSet` carries the `FrameSet` the session runs and, per camera, the name its image gets in the
exports (the file's own name for a folder; ``<camera>/<stamp_ns>.png`` for a bag, whose images have no files).
Bag topics are grouped by the node's approximate-time core (`vggt_ros.live.sync`), so K cameras pair up offline
exactly as they do live.

An image no model input can be made of (empty, or too elongated for the target size: `vggt_ros.preprocess`) is
skipped and counted like an unreadable one, found from the file header or the message before anything is decoded;
the common model size (`common_model_hw`) comes from the usable images only.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Iterator, Optional

from vggt_ros.dataset.frames import check_relative_name, frame_stem
from vggt_ros.files import NAME_MAX, temporary_name_bytes
from vggt_ros.image_encoding import ImageFormatError
from vggt_ros.image_limits import DEFAULT_MAX_IMAGE_PIXELS, check_max_image_pixels, image_file_hw
from vggt_ros.live.input import InputAssembly, InputConfig
from vggt_ros.live.log_policy import LogPolicy
from vggt_ros.live.stamps import StampVerdict
from vggt_ros.preprocess import decode_image_file, output_size
from vggt_ros.recording.bag_reader import DUPLICATE_STAMP, BagImageSource
from vggt_ros.window import FrameSet

log = logging.getLogger(__name__)
# The kind under which a bag's images that formed no frame set are counted in the source's skipped messages.
UNPAIRED = "unpaired"
# How far one camera's clock must move against the first camera's (stamp - log time, against the newest frame set
# they formed) to be named as the cause of unpaired images: delivery jitter moves a single image's lead too.
CLOCK_MOVE_SLOPS, MIN_CLOCK_MOVE_S = 10, 0.1
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
FRAME_PERIOD_NS = 100_000_000  # a folder's images carry no time: they are stamped 10 Hz apart


@dataclass(frozen=True)
class InputFrameSet:
    """A frame set and, per camera, its image's name in the exports and its source file (None for a bag).

    ``restart`` is True on the first frame set after the input's time went back (a bag whose stamps jump back: a
    restarted driver or simulation, or the same stamps recorded twice), as the node's input assembly reports it
    (`vggt_ros.live.input.Assembled.restart`, on which the node resets its world): the reconstruction should start
    over with this frame set. False on every other frame set, and always for a folder. A bag's image names
    (``<camera>/<stamp_ns>.png``) take the count of restarts before them as a suffix (``<stamp_ns>_1.png`` after
    the first), so that stamps recorded twice still name two images.
    """

    frame_set: FrameSet
    names: tuple[str, ...]
    files: tuple[Optional[Path], ...]
    restart: bool = False


class SkippedFiles(dict):
    """Input file name -> why it was skipped; `add` also logs it (a run goes on without the file)."""

    def add(self, path: Path, reason: str, name: Optional[str] = None) -> None:
        """Skip ``path`` for ``reason``, listed under ``name`` (default: the file's name)."""
        log.warning("skipping %s: %s", path, reason)
        self[path.name if name is None else name] = reason


def natural_order(name: str) -> tuple:
    """Sort key of a file name as people number frames: digit runs by value, letters without case ("frame_2" before
    "frame_10"; zero-padded names keep their plain order); the name itself breaks ties."""
    parts = re.split(r"(\d+)", name.casefold())
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in parts if part), name


def image_files(folder: Path) -> list[Path]:
    """The folder's images in the natural order of their names (`natural_order`): their time order. Other entries
    (hidden ones aside) are left out with one log line naming them, so a frame of another format is not lost
    unseen."""
    if not folder.is_dir():
        raise ValueError(f"--images {folder} is not a folder")
    entries = sorted(folder.iterdir(), key=lambda p: natural_order(p.name))
    # A link whose file is gone (an unmounted drive) is an image that cannot be read: skipped and named as one.
    files = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and (p.is_file() or _dangling(p))]
    kept = set(files)
    others = [p.name for p in entries if p not in kept and not p.name.startswith(".")]
    if not files:
        found = f"; it holds {_some(others)}" if others else ""
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}{found}")
    if others:
        log.info("%s: left out %s, not image files (%s)", folder, _some(others), ", ".join(IMAGE_SUFFIXES))
    return files


def _some(names: list[str], shown: int = 3) -> str:
    """``names`` for a message: the count and the first few."""
    more = f", ... ({len(names)} in all)" if len(names) > shown else ""
    return f"{len(names)} other entr{'y' if len(names) == 1 else 'ies'}: " + ", ".join(names[:shown]) + more


def model_sizes(image_sizes: Iterable[tuple[int, int]], mode: str, target_size: int) -> set[tuple[int, int]]:
    """The model input sizes (`output_size`) of images of ``image_sizes`` (H, W), leaving out the sizes no model input
    can be made of (empty, or too elongated for ``target_size``): the inputs skip those images."""
    sizes = set()
    for height, width in image_sizes:
        try:
            sizes.add(output_size(height, width, mode, target_size))
        except ImageFormatError:
            continue
    return sizes


def common_model_hw(image_sizes: Iterable[tuple[int, int]], mode: str, target_size: int) -> Optional[tuple[int, int]]:
    """The model input (H, W) every frame is padded to: the largest of each side over the images' model sizes (as
    the official loader pads a batch; no padding when they agree). With it, frames of different sizes (cameras of
    different resolutions, a size change mid-recording) share windows. Only usable sizes count (`model_sizes`).
    None without a usable image."""
    sizes = model_sizes(image_sizes, mode, target_size)
    return (max(h for h, _ in sizes), max(w for _, w in sizes)) if sizes else None


def needs_padding(image_sizes: Iterable[tuple[int, int]], mode: str, target_size: int) -> bool:
    """Whether the images' usable model sizes differ (some are padded to `common_model_hw`)."""
    return len(model_sizes(image_sizes, mode, target_size)) > 1


def _dangling(path: Path) -> bool:
    return path.is_symlink() and not path.exists()


def check_export_names(names: Iterable[str], where: str) -> None:
    """Refuse, before any work, image names the dataset export would refuse at the end of the run, by the export's
    own rules: `vggt_ros.dataset.frames.check_relative_name` (no spaces, control characters or backslashes) and
    `DatasetWriter.add`'s unique stems (``depth/<stem>.npy`` and ``confidence/<stem>.npy`` must not collide), and
    names short enough for the files written through temporaries (`vggt_ros.files.NAME_MAX`).

    Raises:
        ValueError: naming every offending image, the rule it breaks, and ``where`` they are (e.g. the folder).
    """
    problems = []
    by_stem: dict[str, list[str]] = {}
    for name in names:
        try:
            check_relative_name(name, "image name")
        except ValueError as err:
            problems.append(str(err))
        by_stem.setdefault(frame_stem(name), []).append(name)
        written = max(PurePosixPath(name).name, f"{PurePosixPath(frame_stem(name)).name}.npy", key=temporary_name_bytes)
        excess = temporary_name_bytes(written) - NAME_MAX
        if excess > 0:
            problems.append(
                f"image name {name!r} is too long: the export writes {written!r} through a temporary file whose name "
                f"is over the {NAME_MAX}-byte limit of file names; shorten it by {excess} bytes or more"
            )
    for stem, shared in by_stem.items():
        repeated = sorted(name for name, count in Counter(shared).items() if count > 1)
        if repeated:  # one file listed again, or files of one name in two folders (a TUM list): not a stem's case
            problems += [
                f"{shared.count(name)} images are named {name!r} (one file listed again, or files of that name in "
                "other folders), and the export writes one file of each name; list each image once, under a name of "
                "its own"
                for name in repeated
            ]
        elif len(shared) > 1:
            problems.append(
                f"images {', '.join(repr(name) for name in shared)} share the stem {stem!r}: their depth and "
                "confidence files in the dataset export are named after the stem and would overwrite each other; "
                "give them different stems"
            )
    if problems:
        raise ValueError(f"image names in {where} that the dataset export cannot write: " + "; ".join(problems))


def usable_image_files(
    paths: Iterable[Path], mode: str, target_size: int, max_image_pixels: int, skip: Callable[[Path, str], None]
) -> dict[Path, tuple[int, int]]:
    """The files of ``paths`` a model input can be made of, in order, each with its (H, W) from its header;
    ``skip(path, why)`` is told of each other one: unreadable, over ``max_image_pixels`` (`vggt_ros.image_limits`),
    or too elongated for the preprocessing's ``mode`` and ``target_size``. A size counts once a file of it decodes
    (one file per size is decoded here): a file whose header reads but whose pixels do not (cut short) must not pad
    every usable frame to its size."""
    check_max_image_pixels(max_image_pixels)
    usable: dict[Path, tuple[int, int]] = {}
    decoded: set[tuple[int, int]] = set()  # the sizes an image of which decoded
    for path in paths:
        if _dangling(path):
            skip(path, f"cannot read image file: it is a link to {os.readlink(path)}, which does not exist")
            continue
        try:
            hw = image_file_hw(path, max_image_pixels)
        except (OSError, ValueError) as err:
            skip(path, f"cannot read image file: {err}")
            continue
        try:
            output_size(*hw, mode, target_size)
            if hw not in decoded:
                decode_image_file(path)
        except ValueError as err:  # an ImageFormatError, or pixels that do not decode
            skip(path, str(err))
            continue
        decoded.add(hw)
        usable[path] = hw
    return usable


class FolderInput:
    """A folder's images as one camera's frame sets. Every file's header is read before any work: unreadable ones,
    ones over ``max_image_pixels`` (`vggt_ros.image_limits`) and ones no model input can be made of (too elongated
    for ``target_size``) are skipped with a warning (and listed in `skipped`), as are files that fail to decode later
    (corrupt data, more than 8 bits per channel: `vggt_ros.preprocess.decode_image_file`), so one bad file never
    costs the run. The names of the files kept are checked against the dataset export's rules (`check_export_names`):
    a name it would refuse fails here, before any work, not after the inference.

    Attributes:
        files: the readable images, in order.
        model_hw: the model input (H, W) every frame is padded to (`common_model_hw`).
        sizes: the images' (H, W).
        skipped: file name -> why it was skipped.
    """

    def __init__(
        self, folder: Path, mode: str, target_size: int, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    ) -> None:
        self.skipped = SkippedFiles()
        usable = usable_image_files(image_files(folder), mode, target_size, max_image_pixels, self.skipped.add)
        self.files = list(usable)
        if not self.files:
            raise ValueError(
                f"no usable image in {folder} ({len(self.skipped)} unreadable, too large or too elongated; see the "
                "warnings)"
            )
        check_export_names([path.name for path in self.files], str(folder))
        self.sizes = set(usable.values())
        self.model_hw = common_model_hw(self.sizes, mode, target_size)

    def frame_sets(self) -> Iterator[InputFrameSet]:
        """Each file a frame set, stamped `FRAME_PERIOD_NS` apart (by position in the folder)."""
        for index, path in enumerate(self.files):
            try:
                image = decode_image_file(path)
            except ValueError as err:
                self.skipped.add(path, str(err))
                continue
            frame_set = FrameSet(stamps_ns=(index * FRAME_PERIOD_NS,), images=(image,))
            yield InputFrameSet(frame_set, (path.name,), (path,))


def bag_frame_sets(
    source: BagImageSource,
    camera_names: tuple[str, ...],
    queue_size: int,
    slop: float,
    mode: str,
    target_size: int,
) -> Iterator[InputFrameSet]:
    """The bag's image messages through the node's input assembly (`vggt_ros.live.input`): decoded (over-large ones
    dropped before), the node's stamp rules (a zero stamp takes the log time in the camera's clock, known from
    `BagImageSource.clock_leads` before the first image; a repeated one is dropped; a stamp going back starts over,
    tolerance 0: a recording has no transport reordering), grouped into frame sets by approximate time (one camera:
    every image). What it drops is counted in ``source.skipped`` by topic and kind.

    An image no model input of the preprocessing's ``mode`` and ``target_size`` can be made of (too elongated:
    `vggt_ros.preprocess.output_size`) is dropped and counted by the assembly, as the node drops it.

    A stamp going back (the assembly's restart) sets `InputFrameSet.restart` on the next frame set yielded, and
    suffixes the names from there on (see `InputFrameSet`).
    """
    topics = tuple(camera.topic for camera in source.topics)
    config = InputConfig(
        names=camera_names,
        queue_size=queue_size,
        slop_s=slop,
        max_reorder_s=0.0,
        topics=topics,
        max_image_pixels=source.max_image_pixels,
        preprocess_mode=mode,
        image_size=target_size,
        clock_leads_ns=source.clock_leads,
    )
    assembly = InputAssembly(config, LogPolicy(log))
    restart = False  # reported by an image that completed no frame set: carried to the next one
    restarts = 0
    offered = [0] * len(topics)  # images handed to the assembly, per camera
    frame_sets = 0
    paired_leads_ns: Optional[list[int]] = None  # each camera's clock (stamp - log time) at the newest frame set
    try:
        for item in source.messages():
            offered[item.camera] += 1
            assembled = assembly.add_image(item.camera, item.message, item.stamp_ns, item.log_ns, item.compressed)
            restart = restart or assembled.restart
            frame_set = assembled.frame_set
            if frame_set is not None:
                for camera, (stamp_ns, image) in enumerate(zip(frame_set.stamps_ns, frame_set.images)):
                    source.note_colour_size(camera, stamp_ns, image.shape[:2])
                frame_sets += 1
                paired_leads_ns = assembly.clock_leads_ns()
                restarts += restart
                suffix = f"_{restarts}" if restarts else ""
                names = tuple(
                    f"{name}/{stamp_ns}{suffix}.png" for name, stamp_ns in zip(camera_names, frame_set.stamps_ns)
                )
                yield InputFrameSet(frame_set, names, (None,) * len(names), restart)
                restart = False
    finally:
        for (camera, kind), count in assembly.dropped.items():
            source.count_dropped(topics[camera], DUPLICATE_STAMP if kind == StampVerdict.DUPLICATE else kind, count)
        for camera, count in assembly.substituted.items():
            source.count_substituted(topics[camera], count)
        # The rest never found a partner within the slop (or lost it to a nearer one): they aged out of the
        # synchroniser's queues, or were still waiting when the bag ended.
        dropped = Counter()
        for (camera, _), count in assembly.dropped.items():
            dropped[camera] += count
        unpaired = {camera: offered[camera] - frame_sets - dropped[camera] for camera in range(len(topics))}
        if any(count > 0 for count in unpaired.values()):
            source.unpaired_reason = f"no image of every other camera within --slop {slop:g} s"
            # Each camera's clock against the first's, now and at the newest frame set they formed: e.g. one
            # camera's clock went back (its driver restarted) and the others' did not. A lead is one image's stamp
            # - log time, so delivery jitter moves it too: only a move of many slops is a clock's.
            if paired_leads_ns is not None:
                leads_ns = assembly.clock_leads_ns()
                moves_ns = [
                    (now - leads_ns[0]) - (then - paired_leads_ns[0]) for now, then in zip(leads_ns, paired_leads_ns)
                ]
                if max(abs(move) for move in moves_ns) / 1e9 > max(CLOCK_MOVE_SLOPS * slop, MIN_CLOCK_MOVE_S):
                    moves = ", ".join(f"'{name}' {move / 1e6:+.1f} ms" for name, move in zip(camera_names, moves_ns))
                    source.unpaired_reason += (
                        f"; since their last frame set the cameras' clocks moved apart (stamp - log time, against "
                        f"'{camera_names[0]}''s: {moves}): one went back or jumped"
                    )
        for camera, count in unpaired.items():
            if count > 0:
                source.count_dropped(topics[camera], UNPAIRED, count)
                log.warning(
                    "%s: %d of its %d images formed no frame set (%s); they are counted in summary.json's "
                    "skipped_inputs as '%s'",
                    topics[camera],
                    count,
                    offered[camera],
                    source.unpaired_reason,
                    UNPAIRED,
                )
