# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""`vggt-ros-reconstruct`: the node's reconstruction core run offline on a folder of images or a rosbag2 recording.

Input: ``--images DIR`` (one camera, files in the natural order of their names = time order), ``--bag PATH
--topics T1,T2`` (mcap or sqlite3, sensor_msgs/Image or CompressedImage, K cameras paired by the node's
approximate-time core) or ``--tum DIR`` (a TUM RGB-D sequence folder: rgb.txt's images at their stamps;
``--metric-depth``: depth.txt's images set the metric scale, the node's depth scale source; for a bag, the
``--depth-topics``).

Mode, chosen by the frame budget ``--max-frames`` (images per forward pass):
* joint: every image in one forward pass, when they fit: the official demo's mode and the model's best accuracy;
* chunks: beyond the budget, chunks of the budget that overlap, chained through the shared frames;
* ``--sliding-window``: the node's streaming mode (keyframes, a sliding window, incremental inference).
All three run the node's session (`vggt_ros.session`) with the exact (official) preprocessing.

Output folder (new or empty; ``--overwrite`` replaces an earlier run's outputs once this run's are complete, see
`vggt_ros.output_folder`): ``map.ply``, ``trajectory.tum``
(TUM format, the first image's optical frame; further cameras' in ``trajectory_<name>.tum``; none without a
merged window), ``summary.json`` (strict JSON), and the dataset exports: ``colmap/sparse/0`` (binary and text),
``transforms.json`` (nerfstudio), ``images/``, ``depth/`` and ``confidence/`` (see `vggt_ros.dataset`).
``--out-bag`` also records what the node would have published into an mcap bag. Every output is checked before
any work.

Nothing computed is lost: an image or message that cannot be read (or is over ``--max-image-pixels``) is skipped,
a frame set the session refuses is skipped, a window that fails is skipped, each counted and named in the
summary; an export that fails stops only that export; Ctrl-C and SIGTERM end the input after the window in progress
and write what exists (`vggt_ros.termination`).
Exit status: 0 done, 1 an error (nothing reconstructed, or an output that failed: the summary is written
whenever the run got that far), 130 Ctrl-C and 143 SIGTERM (after writing).
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np
from tqdm import tqdm

from vggt_ros.arguments import path_argument
from vggt_ros.dataset import strict_json
from vggt_ros.dataset.frame_files import why_not_copied
from vggt_ros.dataset.tum import FURTHER_TRAJECTORY_FILES
from vggt_ros.dataset.writer import DatasetWriter, WrittenDataset
from vggt_ros.engine_budget import check_run_fits_engines
from vggt_ros.files import replace_atomically, saved_entries, staged_entries
from vggt_ros.live.parameters import add_option, check_camera_names
from vggt_ros.mapping import EmptyMapError, MapConfig, require_open3d
from vggt_ros.metric.config import MetricConfig
from vggt_ros.output_folder import (
    adopt_earlier_run,
    check_inputs_outside,
    check_out_bag,
    check_output_folder,
    check_run_entries,
    check_run_folder,
    run_entries,
    run_folder,
)
from vggt_ros.recording.bag_reader import BAG_FILE_SUFFIXES, BagError, BagImageSource
from vggt_ros.recording.inputs import (
    UNPAIRED,
    FolderInput,
    InputFrameSet,
    bag_frame_sets,
    common_model_hw,
    needs_padding,
)
from vggt_ros.recording.tum_rgbd import TumRgbdSequence
from vggt_ros.runtime import RuntimeConfig, create_pipeline
from vggt_ros.session import (
    DepthLookup,
    FrameSetError,
    PublishedCorrection,
    ReconstructionSession,
    SessionConfig,
    WindowOutput,
)
from vggt_ros.termination import EXIT_STATUS, Interrupted, StopRequest, stop_on_signal
from vggt_ros.window import ChunkWindows, FrameId, KeyframePolicy, Window, WindowConfig
from vggt_ros.world import WindowStatus, WorldConfig
from vggt_ros.world.cloud import CloudConfig
from vggt_ros.world.loop_config import LoopConfig
from vggt_ros.world.loop_verification import LoopVerificationConfig
from vggt_ros.world.place_recognition import PlaceRecognitionConfig
from vggt_ros.world.pose_graph import require_gtsam

log = logging.getLogger("vggt_ros.offline")
# summary.json's status of a window the world merged while a metric source had not measured the scale yet.
WAITING_FOR_SCALE = "waiting_for_scale"
# Frame sets two consecutive chunks share: enough for a well-conditioned Sim(3), a small share of the budget.
MAX_CHUNK_OVERLAP = 8
NODE_PREFIX = "/vggt/"  # topics of --out-bag: the node's, resolved under its default name
# Node parameter -> option of this command (besides --camera-names, --slop and --queue-size, which --bag uses).
SHARED_OPTIONS = {
    "weights": "--weights",
    "model_config": "--config",
    "backend": "--backend",
    "engine_dir": "--engine-dir",
    "device": "--device",
    "precision": "--precision",
    "preprocess_mode": "--mode",
    "image_size": "--image-size",
    "window_size": "--window-size",
    "window_stride": "--window-stride",
    "keyframe_min_motion": "--keyframe-min-motion",
    "confidence_percentile": "--confidence-percentile",
    "point_decimation": "--point-decimation",
    "map_voxel_size": "--voxel-size",
    "loop_closure": "--loop-closure",
    "loop_min_score": "--loop-min-score",
    "loop_min_age_s": "--loop-min-age",
    "loop_exclude_recent": "--loop-exclude-recent",
    "loop_join_min_loops": "--loop-join-min-loops",
    "slop_s": "--slop",
    "queue_size": "--queue-size",
}

# Where the node's help text names what only the node has (its topics, frames, parameters).
OFFLINE_HELP = {
    "map_voxel_size": {
        "help": "voxel size of map.ply (the first window's scale, metres once a metric scale is measured); grows "
        f"when the map holds over {MapConfig.max_points:,} points [world units]"
    },
    "loop_closure": {
        "help": "close loops: recognise places seen before (DINOv2 descriptors), verify each with one network pass "
        "of at most 4 frames, optimise a Sim(3) pose graph (GTSAM) and correct the trajectories and the map; joins a "
        "lost track's segments at the first revisit (--loop-join-min-loops). Needs gtsam (pip install gtsam)"
    },
}


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and every option's default."""


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vggt-ros-reconstruct", description=__doc__, formatter_class=_HelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--images",
        type=path_argument,
        help="folder of images, in the natural order of their names (frame_2 before frame_10) = time order",
    )
    source.add_argument("--bag", type=path_argument, help="rosbag2 recording (folder, .mcap or .db3) or ROS 1 .bag")
    source.add_argument("--tum", type=path_argument, help="TUM RGB-D sequence folder (rgb.txt, images at their stamps)")
    parser.add_argument(
        "--metric-depth",
        action="store_true",
        help="the depth scale source sets the metric scale, the world in metres: with --tum from depth.txt's depth "
        "images, with --bag from --depth-topics",
    )
    parser.add_argument("--topics", default="", help="with --bag: image topics, comma separated, one per camera")
    parser.add_argument(
        "--depth-topics",
        default="",
        help="with --bag and --metric-depth: depth image topics, comma separated, one per camera in --topics' order, "
        "each registered to its colour image (sensor_msgs/Image, 16UC1 millimetres or 32FC1 metres, REP 118; a "
        "RealSense's aligned_depth_to_color/image_raw), paired by stamp within --slop",
    )
    add_option(parser, "camera_names", "--camera-names")
    parser.add_argument("--start", type=float, default=None, help="with --bag: seconds after the bag's start")
    parser.add_argument("--stop", type=float, default=None, help="with --bag: seconds after the bag's start")
    parser.add_argument(
        "--out", type=path_argument, required=True, help="output folder, new or empty (see --overwrite)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="--out may hold an earlier run: its outputs (map.ply, the trajectory*.tum files, summary.json, "
        "transforms.json, colmap/, images/, depth/, confidence/, as it recorded them) are replaced when this run's "
        "are complete (a run that fails to start, is aborted or reconstructs nothing leaves them); other files are "
        "kept, and a file of yours inside those folders (colmap/database.db) is refused before any work",
    )
    add_option(parser, "max_image_pixels", "--max-image-pixels")
    parser.add_argument(
        "--out-bag",
        type=path_argument,
        default=None,
        help="also write the node's messages into this rosbag2 folder (new; mcap storage inside it)",
    )
    parser.add_argument(
        "--max-frames",
        type=int,
        default=64,
        help="images per forward pass: all images in one pass when they fit, else overlapping chunks",
    )
    parser.add_argument(
        "--sliding-window",
        action="store_true",
        help="run the node's streaming sliding window (--window-size, --window-stride) instead",
    )
    # The options the node has as parameters: the same types, defaults and help (vggt_ros.live.parameters).
    for name, flag in SHARED_OPTIONS.items():
        add_option(parser, name, flag, **OFFLINE_HELP.get(name, {}))
    parser.add_argument(
        "--full-recompute",
        action="store_true",
        help="run every network stage on every image of every window (slower; the reference the "
        "incremental default is tested against)",
    )
    args = parser.parse_args(argv)
    # "/left, /right" as "/left,/right"
    args.topics = [t.strip() for t in args.topics.split(",") if t.strip()]
    args.depth_topics = [t.strip() for t in args.depth_topics.split(",") if t.strip()]
    if args.bag is not None and not args.topics:
        parser.error("--bag needs --topics (the image topics, one per camera)")
    if args.bag is None and (args.topics or args.depth_topics or args.start is not None or args.stop is not None):
        parser.error("--topics, --depth-topics, --start and --stop apply to --bag only")
    for option, seconds in (("--start", args.start), ("--stop", args.stop)):
        if seconds is not None and not (math.isfinite(seconds) and seconds >= 0):
            parser.error(f"{option} must be a finite number of seconds >= 0 after the bag's start, got {seconds}")
    start = 0.0 if args.start is None else args.start  # the bag's start
    if args.stop is not None and args.stop <= start:
        since = f"--start ({start:g})" if args.start is not None else "the bag's start (0)"
        parser.error(f"--stop ({args.stop:g}) must be later than {since}: the time range is empty")
    if args.metric_depth and args.images is not None:
        parser.error(
            "--metric-depth reads a --tum sequence's depth.txt or a --bag's --depth-topics; a folder has no depth"
        )
    if args.bag is not None and args.metric_depth != bool(args.depth_topics):
        parser.error(
            "--metric-depth with --bag needs --depth-topics (one per camera)"
            if args.metric_depth
            else "--depth-topics set the metric scale: add --metric-depth"
        )
    if args.depth_topics and len(args.depth_topics) != len(args.topics):
        parser.error(
            f"--depth-topics must give one depth topic per camera of --topics ({len(args.topics)}), got "
            f"{args.depth_topics}"
        )
    if args.max_image_pixels < 1:
        parser.error(f"--max-image-pixels must be >= 1, got {args.max_image_pixels}")
    _check_shared_options(parser, args)
    return args


def _check_shared_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The node's checks of the options it shares (bounds, an image size the patch size divides, the core
    configurations' own), their errors naming this command's options."""
    from vggt_ros.live.parameters import NodeParameters, renamed

    values = {name: getattr(args, flag.removeprefix("--").replace("-", "_")) for name, flag in SHARED_OPTIONS.items()}
    if not args.sliding_window:  # the chunks decide the windows, and these options are not read
        del values["window_size"], values["window_stride"]
    try:
        NodeParameters(**values)
    except ValueError as err:
        parser.error(renamed(str(err), SHARED_OPTIONS))


@dataclass
class _Inputs:
    frame_sets: Iterator[InputFrameSet]
    cameras: int
    camera_names: tuple[str, ...]
    expected_frame_sets: int  # for the progress bar and the mode (a bag's pairing may drop a few)
    model_hw: Optional[tuple[int, int]]
    # `source.skipped`: what was skipped, with why (files) or how many (bag messages by topic and kind).
    source: Union[FolderInput, BagImageSource, TumRgbdSequence]
    depth_lookup: Optional[DepthLookup] = None  # --metric-depth: the sensor depth of each image


def _open_inputs(args: argparse.Namespace) -> _Inputs:
    if args.images is not None:
        folder = FolderInput(args.images, args.mode, args.image_size, args.max_image_pixels)
        _log_padding(args, folder.sizes, folder.model_hw)
        names = _camera_names(args, 1)
        return _Inputs(folder.frame_sets(), 1, names, len(folder.files), folder.model_hw, folder)
    if args.tum is not None:
        sequence = TumRgbdSequence(args.tum, args.metric_depth, args.mode, args.image_size, args.max_image_pixels)
        _log_padding(args, sequence.sizes, sequence.model_hw)
        depth_lookup = sequence.depth_lookup if args.metric_depth else None
        names = _camera_names(args, 1)
        return _Inputs(sequence.frame_sets(), 1, names, len(sequence.rgb), sequence.model_hw, sequence, depth_lookup)
    source = BagImageSource(
        args.bag,
        args.topics,
        start_s=args.start,
        stop_s=args.stop,
        max_image_pixels=args.max_image_pixels,
        depth_topics=args.depth_topics,
        depth_slop_s=args.slop,
    )
    names = _camera_names(args, len(args.topics))
    # As for a folder, every image's size is known before any work (from the message fields and file headers):
    # frames of different sizes (a camera's or the cameras') are padded to one model size, and share windows.
    sizes = source.image_sizes()
    model_hw = common_model_hw(sizes, args.mode, args.image_size)
    _log_padding(args, sizes, model_hw)
    frame_sets = bag_frame_sets(source, names, args.queue_size, args.slop, args.mode, args.image_size)
    # A frame set takes one image of each camera: the slowest camera bounds their number (repeats and unreadable
    # messages are no images).
    expected = min(source.distinct_images.values(), default=0)
    depth_lookup = source.depth_lookup if args.metric_depth else None
    return _Inputs(frame_sets, len(names), names, expected, model_hw, source, depth_lookup)


def _log_padding(args: argparse.Namespace, sizes: set[tuple[int, int]], model_hw: Optional[tuple[int, int]]) -> None:
    if needs_padding(sizes, args.mode, args.image_size):
        log.warning(
            "images have different model input sizes; every image is padded with white to %dx%d (HxW)", *model_hw
        )


def _camera_names(args: argparse.Namespace, cameras: int) -> tuple[str, ...]:
    """The cameras' names, checked before any work by the node's rule (`check_camera_names`): each also names the
    exports' ``<name>/`` folder of its frames, its trajectory file and, with --out-bag, the node's topics."""
    names = args.camera_names or tuple(f"camera{i}" for i in range(cameras))
    if len(names) != cameras:
        raise ValueError(f"--camera-names must give {cameras} names, one per camera, got {list(names)}")
    check_camera_names(names, "--camera-names")
    return names


def _session_config(args: argparse.Namespace, inputs: _Inputs, chunk: Optional[tuple[int, int]]) -> SessionConfig:
    """``chunk``: (frame sets per chunk, overlap) in joint / chunk mode, None for the sliding window."""
    window_size = chunk[0] if chunk else args.window_size
    frames = window_size * inputs.cameras
    return SessionConfig(
        window=WindowConfig(
            window_size,
            window_size if chunk else args.window_stride,
            KeyframePolicy(min_motion=0.0 if chunk else args.keyframe_min_motion),
        ),
        cloud=CloudConfig(confidence_percentile=args.confidence_percentile, point_decimation=args.point_decimation),
        world=WorldConfig(
            retained_frames=max(WorldConfig.retained_frames, frames),
            trajectory_recent=max(WorldConfig.trajectory_recent, frames),
            loop=LoopConfig(enabled=args.loop_closure, join_min_loops=args.loop_join_min_loops),
        ),
        loop_verification=LoopVerificationConfig(
            place=PlaceRecognitionConfig(
                min_score=args.loop_min_score, min_age_s=args.loop_min_age, exclude_recent=args.loop_exclude_recent
            )
        ),
        map=MapConfig(voxel_size=args.voxel_size),
        cameras=inputs.cameras,
        camera_names=inputs.camera_names,
        image_size=args.image_size,
        preprocess_mode=args.mode,
        preprocessing="exact",
        model_hw=inputs.model_hw,
        # Chunks compare the depth of every frame set they share; the sliding window keeps the node's default,
        # clamped to the window as the node clamps it.
        overlap_frame_sets=chunk[1] if chunk else min(SessionConfig.overlap_frame_sets, max(1, window_size - 1)),
        incremental=not args.full_recompute,
        metric=MetricConfig(source="depth" if args.metric_depth else "none"),
    )


def _loop_summary(session: ReconstructionSession, candidates: list[dict], failures: list[str]) -> Optional[dict]:
    """Loop closure's outcome for summary.json (None when it is off); ``failures``: loop passes that raised."""
    closed = session.world.loop_counters
    if closed is None:
        return None
    found = session.loop_verifier.counters
    return {
        "candidates": candidates,
        "verified": found.accepted,
        "accepted": closed.accepted,
        "rejected": {**found.rejections, **closed.rejections},
        "segments_joined": closed.segments_joined,
        "held_for_join": closed.held,
        "failed": failures,
    }


def _choose_mode(args: argparse.Namespace, inputs: _Inputs) -> tuple[str, Optional[tuple[int, int]]]:
    """("sliding window" | "joint" | "chunks", (chunk size, overlap) in frame sets) with a log line saying why."""
    if args.sliding_window:
        log.info(
            "mode: sliding window of %d keyframes, stride %d (--sliding-window)", args.window_size, args.window_stride
        )
        return "sliding window", None
    per_chunk = args.max_frames // inputs.cameras
    if per_chunk < 2:
        raise ValueError(f"--max-frames {args.max_frames} must allow 2 frame sets of {inputs.cameras} images")
    total = inputs.expected_frame_sets
    if total == 0:  # said below, with the cause (`_why_nothing`)
        log.info("mode: joint, but the input holds no images to run")
        return "joint", (2, 1)
    if total * inputs.cameras <= args.max_frames:
        log.info(
            "mode: joint, all %d images in one forward pass (they fit --max-frames %d)",
            total * inputs.cameras,
            args.max_frames,
        )
        return "joint", (max(total, 2), 1)  # no larger: engines take windows up to their frame range
    overlap = min(MAX_CHUNK_OVERLAP, per_chunk // 4) or 1
    log.info(
        "mode: chunks, %d images exceed --max-frames %d: chunks of %d frame sets overlapping by %d, chained",
        total * inputs.cameras,
        args.max_frames,
        per_chunk,
        overlap,
    )
    return "chunks", (per_chunk, overlap)


class _Exports:
    """The dataset exports of a run: each merged frame, named as its input (a folder's file, copied as it is).

    An export that fails (a full disk, a frame the writer refuses) stops the exports only: `error` names the file
    or frame and the cause, the scratch files go, and the reconstruction goes on.
    """

    def __init__(self, out: Path, session: ReconstructionSession, metric: bool) -> None:
        self.session = session
        self.writer = DatasetWriter(out, metric=metric)
        self.out = out
        self.images_dir = out / "images"
        self._inputs: dict[tuple[int, int], tuple[str, Optional[Path]]] = {}  # frame id -> (name, file)
        self._exported: dict[str, FrameId] = {}  # name -> frame id of every frame written
        # name -> (world, segment) each frame was placed in: a world per start of the session's world (a restart
        # of the input starts a new one), a segment per loss of tracking within it.
        self._placed_in: dict[str, tuple[int, int]] = {}
        self._world = 0
        self.converted = 0  # folder files written as RGB pixels, not copied (`why_not_copied`)
        self.error: Optional[str] = None

    def offer(self, item: InputFrameSet) -> None:
        for camera, (stamp_ns, name, path) in enumerate(zip(item.frame_set.stamps_ns, item.names, item.files)):
            self._inputs[(stamp_ns, camera)] = (name, path)

    def add(self, out: WindowOutput) -> None:
        """Export the frames this window merged; forget inputs older than the window (never merged later)."""
        if out.status is WindowStatus.INITIALIZED and self._placed_in:
            self._world += 1
        try:
            frames = self.session.exported_frames(out) if self.error is None else []
        except ValueError as err:  # a frame the exports cannot describe: it costs the exports, not the run
            self._fail(f"window {out.window.sequence}'s frames", err)
            frames = []
        for frame, image in frames:
            name, path = self._inputs.pop((frame.stamp_ns, frame.camera))
            try:
                # A folder's file is copied as it is (not re-encoded), whole or not at all, where readers take its
                # pixels as they are; else, as a recording's image, the RGB pixels the model saw are written.
                not_copied = why_not_copied(path) if path is not None else None
                copied = path is not None and not_copied is None
                if copied:
                    target = self.images_dir / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    replace_atomically(target, lambda temporary, source=path: shutil.copyfile(source, temporary))
                elif path is not None:
                    self._note_rgb_copy(name, not_copied)
                self.writer.add(replace(frame, name=name), image=None if copied else image)
                self._exported[name] = FrameId(frame.stamp_ns, frame.camera)
                self._placed_in[name] = (self._world, self.session.world.segment)
            except (ValueError, OSError) as err:
                self._fail(f"frame {name}", err)
                break
        oldest = min(out.window.frame_sets[0].stamps_ns)
        self._inputs = {key: value for key, value in self._inputs.items() if key[0] >= oldest}

    def _note_rgb_copy(self, name: str, why: str) -> None:
        if not self.converted:
            log.info(
                "images/%s: written as the RGB pixels the model saw, not copied: %s; other such images are not named",
                name,
                why,
            )
        self.converted += 1

    def parts(self, corrections: Optional[dict[str, np.ndarray]]) -> int:
        """How many parts, placed independently of each other, the exported frames form: 1 when they share one
        world and segment, or loops joined their segments (``corrections``, `loop_corrections`, moves them all into
        one world); else one per world and segment, whose offsets to each other are unknown."""
        return 1 if corrections is not None else len(set(self._placed_in.values()))

    def loop_corrections(self) -> Optional[dict[str, np.ndarray]]:
        """Frame name -> the similarity by which the closed loops moved it, for every exported frame; None when loops
        did not move the world or some exported frame has no loop-corrected pose (`World.loop_corrections`)."""
        corrections = self.session.world.loop_corrections(self._exported.values())
        if corrections is None:
            return None
        return {name: corrections[frame_id] for name, frame_id in self._exported.items()}

    def finish(
        self, ply_path: Optional[str], corrections: Optional[dict[str, np.ndarray]] = None
    ) -> Optional[WrittenDataset]:
        """The COLMAP model and transforms.json, moved by ``corrections`` when given (None when no frame was
        exported or the exports failed)."""
        if self.error is None and self.writer.num_frames:
            try:
                return self.writer.finish(ply_path=ply_path, corrections=corrections)
            except (ValueError, OSError) as err:
                self._fail("the COLMAP model and transforms.json", err)
        self.close()
        return None

    def close(self) -> None:
        """Delete the scratch files (no-op after `finish`): they never outlive the run."""
        self.writer.close()

    def _fail(self, what: str, err: Exception) -> None:
        detail = f"{err.filename}: {err.strerror}" if isinstance(err, OSError) and err.filename else str(err)
        if isinstance(err, OSError) and str(self.out) not in detail:  # a buffered write's error names no file
            detail = f"{detail}, writing into {self.out}"
        self.error = f"dataset export failed at {what} ({detail}); exports stopped, files written so far are kept"
        log.error("%s", self.error)
        self.close()


class _BagRecording:
    """--out-bag: the node's messages for every merged window, under the node's topics (vggt_ros.ros.outputs).

    A write that fails stops the recording only (`error` says why); the bag is closed (finished) in every case.
    """

    def __init__(self, path: Path, camera_names: tuple[str, ...], topics: list[str]) -> None:
        # ROS message types are needed only here: the rest of the command runs without a ROS install.
        from vggt_ros.live.parameters import NodeParameters
        from vggt_ros.ros import outputs
        from vggt_ros.ros.bag_writer import BagWriter

        self._outputs = outputs
        self.params = NodeParameters(
            image_topics=tuple(topics) or tuple(f"/{n}/image" for n in camera_names), camera_names=camera_names
        )
        self.path = path
        self.writer = BagWriter(path)
        self._started = False
        self._correction = PublishedCorrection()
        self._log_ns = 0  # the newest log time written
        self._log_shift_ns = 0  # log time - stamp: how far the input's time went back so far
        self.error: Optional[str] = None

    def add(self, out: WindowOutput, session: ReconstructionSession) -> None:
        if self.error is not None:
            return
        outputs = self._outputs
        stamp_ns = out.window.frame_sets[-1].stamps_ns[0]  # camera 0's, as the node stamps a window's outputs
        # The frames the node would not publish (the first window's, a joint run's, a chunk's) first, each frame set
        # at its camera 0's stamp, then the newest as the node publishes it.
        earlier = session.earlier_added_frame_sets(out)
        try:
            if not self._started:  # at the first message's time: a later one would read as the input going back
                first_ns = out.window.frame_sets[min(earlier, default=-1)].stamps_ns[0]
                self._write("/tf_static", outputs.world_frame_message(self.params, first_ns), first_ns, latched=True)
                self._started = True
            for index, frames in earlier.items():
                frames_stamp_ns = out.window.frame_sets[index].stamps_ns[0]
                for output, message in outputs.frame_set_messages(self.params, frames):
                    self._write(outputs.topic(self.params, output, NODE_PREFIX), message, frames_stamp_ns)
            path = session.camera_path() if self.params.publish_path else []
            for output, message in outputs.window_messages(self.params, out, path):
                self._write(outputs.topic(self.params, output, NODE_PREFIX), message, stamp_ns)
        except (ValueError, OSError) as err:
            self._fail(err)

    def add_correction(self, out: WindowOutput, session: ReconstructionSession, loop_closed: bool) -> None:
        """After a merged window's loop pass, as the node publishes it (`PublishedCorrection`): parent_frame ->
        world_frame (latched) when it is due, and the corrected path after a closed loop."""
        if self.error is not None:
            return
        correction = self._correction.due(out, loop_closed, session.world_correction())
        if correction is None:
            return
        outputs = self._outputs
        stamp_ns = out.window.frame_sets[-1].stamps_ns[0]
        try:
            message = outputs.world_frame_message(self.params, stamp_ns, correction)
            self._write("/tf_static", message, stamp_ns, latched=True)
            if loop_closed:
                path = outputs.messages.path(session.camera_path(), stamp_ns, self.params.world_frame_id)
                self._write(outputs.topic(self.params, outputs.Output("path"), NODE_PREFIX), path, stamp_ns)
        except (ValueError, OSError) as err:
            self._fail(err)

    def finish(self, session: ReconstructionSession, stamp_ns: int) -> None:
        """The map (latched), then the bag's index and metadata."""
        try:
            if self.error is None and len(session.map):
                message = self._outputs.map_message(self.params, *session.map_in_chained_world(), stamp_ns)
                self._write(
                    self._outputs.topic(self.params, self._outputs.Output("map"), NODE_PREFIX),
                    message,
                    stamp_ns,
                    latched=True,
                )
        except (ValueError, OSError) as err:
            self._fail(err)
        self.close()

    def discard(self) -> None:
        """Close the bag and remove it: a run that reconstructed nothing leaves no empty bag behind, which the next
        run would refuse as an existing --out-bag."""
        self.close()
        try:
            shutil.rmtree(self.path)
        except OSError as err:
            log.warning(
                "--out-bag %s holds nothing, but cannot be removed (%s): remove it before the next run", self.path, err
            )
        else:
            log.info("--out-bag %s: nothing was reconstructed, so no bag is left there", self.path)

    def close(self) -> None:
        """Finish the bag as it is (no-op after `finish`)."""
        try:
            self.writer.close()
        except (ValueError, OSError) as err:
            # rosbags' reader, and ros2 bag, refuse an mcap without its summary
            unfinished = (
                f"the bag could not be finished ({err}): it lacks its index and metadata.yaml, and readers refuse it "
                "until it is recovered (mcap recover, then ros2 bag reindex)"
            )
            self.error = f"{self.error}; {unfinished}" if self.error else f"--out-bag {self.path}: {unfinished}"
            log.error("--out-bag %s: %s", self.path, unfinished)

    def restart(self, stamp_ns: int) -> None:
        """The input's time went back to ``stamp_ns`` (a new world): its messages are logged from just after the
        newest written on. Their stamps need not go back (a joint window of a recording made twice ends at the
        first one's last stamp), and the same log time and stamp with another transform is a repeat to tf2."""
        self._log_shift_ns = max(self._log_shift_ns, self._log_ns + 1 - stamp_ns)

    def _write(self, topic: str, message, stamp_ns: int, latched: bool = False) -> None:
        """Write ``message`` (stamped ``stamp_ns``) at its stamp as log time, shifted by how far the input's time went
        back so far (`restart`): a world that started over plays after the one before it, at its own pace, as the
        node published it."""
        log_ns = stamp_ns + self._log_shift_ns
        if log_ns < self._log_ns:  # the input's time went back
            self._log_shift_ns += self._log_ns - log_ns
            log_ns = self._log_ns
        self._log_ns = log_ns
        self.writer.write(topic, message, log_ns, latched=latched)

    def _fail(self, err: Exception) -> None:
        if self.error is None:
            self.error = f"--out-bag {self.path}: recording stopped ({err}); messages written so far are kept"
            log.error("%s", self.error)


def run(args: argparse.Namespace, stop: Optional[StopRequest] = None) -> dict:
    """The whole run (see the module docstring). Once input is read, Ctrl-C or SIGTERM (``stop``, handled by
    `vggt_ros.termination.stop_on_signal`; None: signals as Python handles them) stops it after the window in
    progress: what was reconstructed until then is written as at a normal end, and the summary says the run was
    interrupted. While the results are written, the first signal waits for them; a second one aborts."""
    stop = stop or StopRequest()
    check_output_folder(args.out, "--out")
    if args.out_bag is not None:
        _check_out_bag_name(args.out_bag)
    if args.out_bag is not None and (args.out_bag.exists() or args.out_bag.is_symlink()):  # before --out is made
        raise ValueError(f"--out-bag {args.out_bag} exists; remove it or choose another path")
    with run_folder(args.out):  # one run at a time into a folder, from its first check to the swap
        return _run(args, stop)


def _check_out_bag_name(out_bag: Path) -> None:
    """Refuse an --out-bag named as a bag file: the bag is a rosbag2 folder, which would get that name and hold
    ``<name>.mcap`` and metadata.yaml (``x.mcap/x.mcap.mcap``)."""
    if out_bag.suffix in BAG_FILE_SUFFIXES:
        raise ValueError(
            f"--out-bag {out_bag} names a bag file, but --out-bag is the name of the rosbag2 folder to write (it "
            f"holds {out_bag.name}.mcap and metadata.yaml); give a folder name such as {out_bag.with_suffix('')}"
        )


def _run(args: argparse.Namespace, stop: StopRequest) -> dict:
    check_run_folder(args.out, args.overwrite, {"--images": args.images, "--tum": args.tum, "--bag": args.bag})
    if args.overwrite:
        adopt_earlier_run(args.out)
    require_open3d()
    if args.loop_closure:
        require_gtsam()
    if args.out_bag is not None:
        check_output_folder(args.out_bag, "--out-bag")  # the bag folder is created only once the model has loaded
    inputs = _open_inputs(args)
    entries = run_entries(inputs.camera_names)
    check_run_entries(args.out, entries)
    if args.out_bag is not None:
        check_out_bag(args.out_bag, args.out, entries)
    option = "--images" if args.images is not None else "--tum"
    check_inputs_outside(args.out, option, _input_files(inputs.source))
    mode, chunk = _choose_mode(args, inputs)
    config = _session_config(args, inputs, chunk)
    runtime = RuntimeConfig(
        backend=args.backend,
        weights=args.weights,
        model_config=args.config or None,
        device=args.device,
        precision=args.precision,
        engine_dir=args.engine_dir,
    ).resolve()
    runtime.log(log)
    pipeline = create_pipeline(runtime.config)
    check_run_fits_engines(args, config, inputs.model_hw, pipeline)
    session = ReconstructionSession(pipeline, config)
    # Written into a staging folder and swapped in at the end (`vggt_ros.output_folder`): the earlier run's outputs
    # stay until this one's are complete.
    with stop.deferred(_stopping):
        try:
            # run_folder holds --out's lock from the first check to here.
            with staged_entries(args.out, (*entries, FURTHER_TRAJECTORY_FILES), target_locked=True) as staging:
                exports = _Exports(staging, session, metric=config.metric.active)
                recording = None
                try:
                    recording = _BagRecording(args.out_bag, inputs.camera_names, args.topics) if args.out_bag else None
                    summary = _reconstruct(
                        args, staging, inputs, mode, chunk, session, exports, recording, stop, runtime.config
                    )
                finally:  # after an abort too: no scratch folder outlives the run, and the bag is readable
                    exports.close()
                    if recording is not None:
                        recording.close()
                if summary["no_result"] and saved_entries(args.out):
                    raise _NothingToReplace(summary)
                stop.finishing()  # the results are whole: no signal may cut their swap into place short
        except _NothingToReplace as kept:
            log.warning("nothing was reconstructed: the earlier run's outputs in %s are kept as they were", args.out)
            return kept.summary
    return summary


class _NothingToReplace(Exception):
    """A run that reconstructed nothing, into a folder with an earlier run: its outputs stay (raised through
    `staged_entries`, which then swaps nothing in)."""

    def __init__(self, summary: dict) -> None:
        super().__init__(summary["no_result"])
        self.summary = summary


def _input_files(source: Union[FolderInput, BagImageSource, TumRgbdSequence]) -> list[Path]:
    """The files a folder or TUM sequence reads (a bag is one path, checked as given)."""
    if isinstance(source, FolderInput):
        return list(source.files)
    if isinstance(source, TumRgbdSequence):
        return [image.path for image in source.rgb] + list(source.depth.values())
    return []


def _stopping(signal_name: str) -> None:
    log.warning(
        "%s: the run stops after the step in progress (a window, or writing the results) and writes what was "
        "reconstructed; a second %s aborts, writing nothing of this run",
        signal_name,
        signal_name,
    )


def _reconstruct(
    args: argparse.Namespace,
    out: Path,
    inputs: _Inputs,
    mode: str,
    chunk: Optional[tuple[int, int]],
    session: ReconstructionSession,
    exports: _Exports,
    recording: Optional[_BagRecording],
    stop: StopRequest,
    runtime: RuntimeConfig,
) -> dict:
    """Run the inputs through the session into ``out``'s outputs; the summary (also written as summary.json).
    ``runtime``: the resolved configuration that runs the network, recorded in the summary."""
    chunks = ChunkWindows(*chunk) if chunk else None
    windows, frame_sets, last_stamp_ns = [], 0, 0
    stopped_by: Optional[str] = None  # the signal that stopped the input early
    input_error: Optional[str] = None
    skipped_frame_sets: dict[str, dict] = {}  # kind -> {"count", "first" (image name), "reason"}
    output_errors: list[str] = []
    loop_candidates: list[dict] = []  # {"query", "match": [stamp_ns, camera], "score"} as place recognition proposed
    loop_failures: list[str] = []  # loop passes that raised, with the window
    # Frames merged while the world awaited its metric scale (in the trajectories, not in the exports), and the first
    # window written in metres after them.
    held_back_frames, metric_from_window = 0, None
    earlier_world: Optional[_WorldFiles] = None  # the files of the world before the input's latest restart
    start = time.perf_counter()

    def record(out: Optional[WindowOutput], last_name: str) -> None:
        nonlocal held_back_frames, metric_from_window
        if out is None:
            return
        residual = out.result.residual if out.result is not None else float("nan")
        status, reason = out.status.value, out.reason
        if out.waiting_for_scale:  # merged, but nothing is written until the world is in metres (as the node)
            status, reason = WAITING_FOR_SCALE, f"held back until the metric scale is known: {out.scale.reason}"
            held_back_frames += int(out.result.new_frames.sum())
        elif out.merged and out.metric and metric_from_window is None:
            metric_from_window = out.window.sequence
            if held_back_frames:
                log.warning(
                    "window %d: the world is in metres from here on; the %d frames merged while it awaited its scale "
                    "are in the trajectories (rescaled) but not in the dataset exports, map.ply or --out-bag",
                    out.window.sequence,
                    held_back_frames,
                )
        log.info(
            "window %d (images up to %s): %s%s",
            out.window.sequence,
            last_name,
            status,
            f" - {reason}" if reason else "",
        )
        windows.append(
            {
                "window": out.window.sequence,
                "last_image": last_name,
                "status": status,
                "reason": reason,
                "residual": residual,
                "images": len(out.window.images),
            }
        )
        exports.add(out)
        if recording is not None and out.merged and not out.waiting_for_scale:
            recording.add(out, session)
        if out.merged:
            try:
                close_loops(out)
            except (ValueError, RuntimeError) as err:  # the loop pass (e.g. out of memory) costs loops, not the run
                log.error("window %d: loop closure failed, the run goes on: %s", out.window.sequence, err)
                loop_failures.append(f"window {out.window.sequence}: {err}")

    def close_loops(out: WindowOutput) -> None:
        """Loops from the keyframes this window added: verified, then judged and optimised by the world."""
        report = session.close_loops(out)
        for line in report.messages():
            log.info("%s", line)
        loop_candidates.extend(
            {"query": list(search.query), "match": list(candidate.match), "score": candidate.score}
            for search in report.searches
            for candidate in search.candidates
        )
        closed = False
        for result in session.apply_loops(report):
            if result.held:
                log.info("%s", result.reason)
            elif result.accepted:
                closed = True
                joined = f" (segments joined: {result.reason})" if result.joined_segments else ""
                log.info("loop closed in %.0f ms%s", result.optimisation.milliseconds, joined)
            else:
                log.info("loop not closed (%s): %s", result.cause, result.reason)
            for dropped in result.dropped_held:  # after the loop that dropped them, as the node logs them
                log.info("%s", dropped)
        if recording is not None:
            recording.add_correction(out, session, closed)

    def run_window(window: Optional[Window], last_name: str) -> None:
        """One window through the network and into the world; one that fails is skipped, named and counted."""
        if window is None:
            return
        try:
            out = session.integrate(session.infer(window, inputs.depth_lookup))
        except (ValueError, RuntimeError) as err:
            log.error("window %d (images up to %s) failed and is skipped: %s", window.sequence, last_name, err)
            windows.append(
                {
                    "window": window.sequence,
                    "last_image": last_name,
                    "status": "failed",
                    "reason": str(err),
                    "residual": float("nan"),
                    "images": len(window.images),
                }
            )
            return
        record(out, last_name)

    def skip_frame_set(err: FrameSetError, name: str) -> None:
        entry = skipped_frame_sets.setdefault(err.kind, {"count": 0, "first": name, "reason": str(err)})
        if not entry["count"]:
            log.warning("frame set %s skipped (further ones of this kind are counted): %s", name, err)
        entry["count"] += 1

    progress = tqdm(
        inputs.frame_sets,
        total=inputs.expected_frame_sets,
        unit="frame set",
        mininterval=1.0,
        dynamic_ncols=True,
        disable=None,
    )
    last_name = ""
    try:
        try:
            for item in progress:
                if stop.signal is not None:
                    break
                frame_sets += 1
                # Every camera's image of the set names it (camera 0's alone would hide the others').
                name = ", ".join(item.names)
                if item.restart:  # as the node: a new world from here (the frames before it end their own)
                    log.warning(
                        "time went back at %s (a restarted driver or simulation, or stamps recorded twice): the "
                        "reconstruction starts over in a new world; map.ply and the trajectories will hold the last "
                        "world only",
                        name,
                    )
                    if chunks is not None:
                        run_window(chunks.finish(), last_name)
                        chunks = ChunkWindows(*chunk)
                    if recording is not None:
                        recording.restart(item.frame_set.stamps_ns[0])
                    if not session.world.is_empty:  # kept, should no window merge after the restart
                        _remove_world_files(earlier_world)
                        earlier_world = _write_world(session, out)
                    session.request_reset()
                last_name, last_stamp_ns = name, item.frame_set.stamps_ns[0]  # camera 0's, as the node stamps
                exports.offer(item)
                if chunks is not None:
                    run_window(chunks.add(item.frame_set), last_name)
                    continue
                try:
                    update = session.add(item.frame_set)  # `session.push` in steps: a refused set is skipped
                except FrameSetError as err:
                    skip_frame_set(err, last_name)
                    continue
                if update.reset:
                    log.warning(update.reset)
                run_window(update.window, last_name)
        except BagError as err:  # the storage failed part-way: what was read until then is kept
            input_error = str(err)
            log.error("%s; writing what was reconstructed from the first %d frame sets", err, frame_sets)
        if chunks is not None and stop.signal is None:
            run_window(chunks.finish(), last_name)
        stopped_by = stop.signal
    except Interrupted:  # a second signal: abort
        raise
    except KeyboardInterrupt:  # raised by code, not by a signal (those are `stop`'s)
        stopped_by = "SIGINT"
    finally:
        progress.close()
    if stopped_by is not None:
        log.warning("%s: writing what was reconstructed from the first %d frame sets", stopped_by, frame_sets)
    seconds = time.perf_counter() - start

    # The trajectories and the map first, then the exports and the bag, each failing alone, then the summary.
    if session.world.is_empty and earlier_world is not None:  # the input restarted, and no window merged after
        log.warning(
            "the last world (from the input's restart) merged no window: map.ply and the trajectories hold the world "
            "before it"
        )
        world_files = earlier_world
    else:
        _remove_world_files(earlier_world)
        world_files = _write_world(session, out)
    output_errors.extend(world_files.errors)
    map_path, trajectories = world_files.map_path, world_files.trajectories
    # The dataset exports were written as the frames came, with the chained poses. After a loop they are moved with
    # it when every exported frame has its loop-corrected pose; otherwise they keep the chained poses, and
    # transforms.json must not name the loop-corrected map as its point cloud.
    corrections = exports.loop_corrections() if exports.writer.num_frames else None
    poses_before_loops = bool(session.world.corrected_by_loops and exports.writer.num_frames and corrections is None)
    dataset_parts = exports.parts(corrections)
    if corrections is not None:
        log.info("loops moved the world: the COLMAP model, transforms.json and the depth files follow them")
    if poses_before_loops:
        log.warning(
            "loops moved the world: map.ply and the trajectories are loop-corrected, but some exported frames have "
            "no loop-corrected pose (the kept keyframes dropped them, or their segment was never joined by a loop), "
            "so the COLMAP model and transforms.json keep the poses their frames had when integrated and "
            "transforms.json names no point cloud (map.ply would not match its cameras)"
        )
    if dataset_parts > 1:
        log.warning(
            "the COLMAP model and transforms.json hold %d parts whose offsets to each other are unknown (tracking was "
            "lost, or the input restarted: see per_window in summary.json), so they are not one scene; map.ply holds "
            "the last part only and transforms.json names no point cloud",
            dataset_parts,
        )
    map_matches_dataset = map_path is not None and not poses_before_loops and dataset_parts <= 1
    dataset = exports.finish(map_path.name if map_matches_dataset else None, corrections)
    if exports.error:
        output_errors.append(exports.error)
    counters = session.world.counters
    merged = sum(w["status"] not in ("rejected", "failed", WAITING_FOR_SCALE) for w in windows)
    source = inputs.source
    no_result = None if merged else _why_nothing(args, inputs, frame_sets, windows, skipped_frame_sets, input_error)
    if recording is not None and no_result:
        recording.discard()
    elif recording is not None:
        recording.finish(session, last_stamp_ns)
        if recording.error:
            output_errors.append(recording.error)
    summary = {
        "mode": mode,
        "runtime": runtime.summary(),
        "interrupted": stopped_by is not None,
        "signal": stopped_by,
        "images": frame_sets * inputs.cameras,
        "frame_sets": frame_sets,
        "cameras": list(inputs.camera_names),
        "windows": len(windows),
        "merged": merged,
        "failed_windows": sum(w["status"] == "failed" for w in windows),
        "skipped_frame_sets": skipped_frame_sets,
        "segments": counters.segments,
        "exported_frames": dataset.num_frames if dataset else 0,
        # Frames merged before the world had its metric scale: in the trajectories, not in the exports, the map or
        # the bag; and the run's first window in metres (None: it never had its metric scale, or had no source).
        "held_back_frames": held_back_frames,
        "metric_from_window": metric_from_window,
        "converted_images": exports.converted,
        "map_points": world_files.map_points,
        "seconds": seconds,
        "seconds_per_frame_set": seconds / max(frame_sets, 1),
        "units": world_files.units,
        "map": str(map_path) if map_path else None,
        # Camera 0's file (None: no keyframe, no file), and every camera's by name (`vggt_ros.dataset.tum`).
        "trajectory": _path_or_none(trajectories[inputs.camera_names[0]]),
        "trajectories": {name: _path_or_none(path) for name, path in trajectories.items()},
        "colmap_model": str(dataset.colmap_files[0].parent) if dataset else None,
        "transforms": str(dataset.transforms_json) if dataset else None,
        "colmap_points": dataset.num_points if dataset else 0,
        # True: the COLMAP model and transforms.json hold the poses from before the loops (see the warning above);
        # "dataset_moved_by_loops": they were moved with the loops.
        "dataset_poses_before_loops": bool(dataset and poses_before_loops),
        "dataset_moved_by_loops": bool(dataset and corrections is not None),
        # Parts of the COLMAP model and transforms.json placed independently (1: one scene; see the warning above).
        "dataset_parts": dataset_parts if dataset else 0,
        "bag": None if recording is None or no_result else str(args.out_bag),
        "skipped_inputs": inputs.source.skipped,
        "unpaired_reason": getattr(source, "unpaired_reason", None),
        "substituted_stamps": getattr(source, "substituted_stamps", {}),
        "truncated_input": list(getattr(source, "truncated", [])),
        "input_error": input_error,
        "model_hw": list(inputs.model_hw) if inputs.model_hw else None,
        "max_image_pixels": args.max_image_pixels,
        "no_result": no_result,
        "output_errors": output_errors,
        "loops": _loop_summary(session, loop_candidates, loop_failures),
        "per_window": windows,
    }
    summary = _named_in(summary, out, args.out)  # where the files will be once swapped in
    try:
        strict_json.write(out / "summary.json", summary)
    except OSError as err:  # the last output: it costs itself, not the others (reported as the others are)
        problem = _named_in(f"summary: {err}", out, args.out)
        summary["output_errors"].append(problem)
        log.error("cannot write %s", problem)
    if no_result:
        log.warning("nothing was reconstructed: %s", no_result)
    log.info(
        "%s: %d images, %d windows (%d merged), %d map points, %.2f s per frame set -> %s",
        mode,
        summary["images"],
        summary["windows"],
        summary["merged"],
        summary["map_points"],
        summary["seconds_per_frame_set"],
        args.out,
    )
    return summary


def _why_nothing(
    args: argparse.Namespace,
    inputs: _Inputs,
    frame_sets: int,
    windows: list[dict],
    skipped_frame_sets: dict,
    input_error: Optional[str],
) -> str:
    """Why a run merged no window, in the user's terms (the first cause that applies)."""
    source = inputs.source
    if frame_sets == 0 and isinstance(source, BagImageSource):
        if args.start is not None and source.message_count == 0 and args.start >= source.bag_duration_s:
            return f"--start {args.start:g} s is past the bag's end ({source.bag_duration_s:.3f} s long)"
        unread = [topic for topic, count in source.distinct_images.items() if count == 0]
        if source.truncated and unread:  # before "never paired": a camera without images cannot pair
            return (
                f"no image of {', '.join(unread)} could be read from the cut-off bag ({'; '.join(source.truncated)}), "
                "so no frame set formed"
            )
        empty = [topic for topic, count in source.topic_messages.items() if count == 0]
        if empty:
            where = " in the --start/--stop range" if args.start is not None or args.stop is not None else ""
            return f"topic {', '.join(empty)} has no messages{where}"
        # Unreadable ones: images that were read but never paired are the cameras' problem, said below.
        unreadable = {
            topic: sum(count for kind, count in source.skipped.get(topic, {}).items() if kind != UNPAIRED)
            for topic in source.topic_messages
        }
        if sum(unreadable.values()) >= source.message_count:
            return f"every message was skipped as unreadable: {source.skipped} (see skipped_inputs)"
        lost = [topic for topic, count in unreadable.items() if count >= source.topic_messages[topic]]
        if lost:  # the other cameras' images had no partner
            details = "; ".join(f"{topic}: {source.skipped[topic]}" for topic in lost)
            return f"every message of {', '.join(lost)} was skipped as unreadable, so no frame set formed ({details})"
        if inputs.cameras > 1:
            return (
                f"the cameras never paired: no frame set of {inputs.cameras} images with stamps within --slop "
                f"{args.slop} s (check the cameras' stamps, or raise --slop or --queue-size)"
            )
    if frame_sets == 0:
        if input_error:
            return f"no image was read: {input_error}"
        return f"no image could be read (see skipped_inputs: {source.skipped})"
    if skipped_frame_sets and sum(e["count"] for e in skipped_frame_sets.values()) == frame_sets:
        return f"every frame set was skipped: {'; '.join(e['reason'] for e in skipped_frame_sets.values())}"
    if not windows:
        return f"{frame_sets} frame sets gave no window; lower --window-size or --keyframe-min-motion"
    waiting = [w for w in windows if w["status"] == WAITING_FOR_SCALE]
    if waiting:
        return (
            f"{len(waiting)} window(s) waited for the metric scale and none was written: "
            f"{waiting[-1]['reason']} (nothing is written in an unknown unit; each window's reason is in per_window)"
        )
    return "no window merged into the world (each window's reason is in per_window)"


@dataclass(frozen=True)
class _WorldFiles:
    """What one world wrote: the map (None: none), each camera's trajectory file (None: none), the map's points, the
    unit of both, and the outputs that failed (for summary.json's ``output_errors`` if these files are the run's)."""

    map_path: Optional[Path]
    trajectories: dict[str, Optional[Path]]
    map_points: int
    units: str
    errors: tuple[str, ...]


def _write_world(session: ReconstructionSession, out: Path) -> _WorldFiles:
    """Write the session's world into ``out``: the trajectories, then the map, each failing alone."""
    errors = []
    trajectories = {name: None for name in session.config.names}
    try:
        trajectories = session.save_trajectories(out)
    except (OSError, ValueError) as err:  # ValueError: poses the TUM writer refuses (stamps that go back)
        errors.append(f"trajectory: {err}")
        log.error("cannot write the trajectory: %s", err)
    else:
        if session.awaiting_scale:
            log.warning("the world never had its metric scale: no trajectory file (nothing is written in VGGT's unit)")
        elif not any(trajectories.values()):
            log.warning("no keyframe in the world: no trajectory file")
    map_path = out / "map.ply"
    try:
        session.map.save_ply(map_path)
    except EmptyMapError:
        map_path = None
        log.warning("no window merged into the world: no map (the per-window reasons are in summary.json)")
    except OSError as err:
        map_path = None
        errors.append(f"map: {err}")
        log.error("cannot write the map: %s", err)
    units = "metres" if session.world.metric else "VGGT world units (the first window's scale; not metric)"
    return _WorldFiles(map_path, trajectories, len(session.map), units, tuple(errors))


def _remove_world_files(files: Optional[_WorldFiles]) -> None:
    """Remove what an earlier world wrote (`_write_world`): none of it may stay beside a later world's files."""
    if files is not None:
        for path in (files.map_path, *files.trajectories.values()):
            if path is not None:
                path.unlink(missing_ok=True)


def _named_in(value, staging: Path, out: Path):
    """``value`` (the summary: dicts, lists, strings) with the paths of ``staging`` named by ``out``."""
    if isinstance(value, dict):
        return {key: _named_in(item, staging, out) for key, item in value.items()}
    if isinstance(value, list):
        return [_named_in(item, staging, out) for item in value]
    if isinstance(value, str):
        return value.replace(str(staging), str(out))
    return value


def _path_or_none(path: Optional[Path]) -> Optional[str]:
    return str(path) if path is not None else None


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 done, 1 a user-facing failure (the message, not a traceback; the summary is written when the
    run got that far: a damaged recording's input that ended early, or an output that failed, leaves what was
    reconstructed written), 130 interrupted, 143 terminated (after writing what was reconstructed)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_arguments(argv)
    with stop_on_signal() as stop:
        try:
            summary = run(args, stop)
        except (ValueError, RuntimeError, OSError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        except Interrupted as err:
            if err.second:
                print(
                    f"aborted by a second {err.signal}: nothing of this run was written into {args.out} (an earlier "
                    "run's outputs there are as they were)",
                    file=sys.stderr,
                )
            else:
                print(f"{err.signal} before any input was read: no results written", file=sys.stderr)
            return EXIT_STATUS[err.signal]
    for problem in summary["output_errors"]:
        print(f"error: {problem}", file=sys.stderr)
    if summary["interrupted"]:
        return EXIT_STATUS[summary["signal"]]
    if stop.signal is not None:  # it came while the results were written: they are whole
        return EXIT_STATUS[stop.signal]
    if summary["no_result"]:
        print(f"error: nothing was reconstructed: {summary['no_result']}", file=sys.stderr)
        return 1
    if summary["input_error"]:  # a script must not take a part of the recording for all of it
        print(
            f"error: the input ended early ({summary['input_error']}): what was read before is reconstructed and "
            f"written in {args.out}",
            file=sys.stderr,
        )
        return 1
    return 1 if summary["output_errors"] else 0


def entry() -> None:
    sys.exit(main())
