# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""A streaming reconstruction session: frame sets in, one chained world out, with no repeated work.

The ROS node and the offline command both run this; neither holds reconstruction rules of its own.

    FrameSet --add--> keyframing, sliding window, reset rules --> Window
    Window --infer--> preprocessing and DINOv2 of new frames only (per-frame cache), aggregator and camera head
                      over the window, depth head on the frames the world needs --> WindowInference
    WindowInference --integrate--> decode on the device, Sim(3) chaining into the world, cloud, map --> WindowOutput
    WindowOutput --close_loops--> new keyframes into the place index, at most one 4-frame loop pass each
                      --> LoopReport: verified `LoopConstraint`s, counted rejections (`world.loop_verification`)
    LoopReport --apply_loops--> the world's pose graph judges and optimises each loop; the map is re-placed

`push` runs the three in a row (offline). The node calls `add` on its executor thread and `infer` then
`integrate` on its worker thread, the latter alone under its world lock: inference never blocks the services.

Incremental and exact. DINOv2 and the DPT heads work frame by frame, so a frame's patch tokens are computed
once, when it first enters a window, and cached by frame id; the aggregator and the camera head span frames
(global attention, the camera trunk) and run on the whole window every time. The depth head runs only on
the frames whose depth is used: those new to the world, plus ``overlap_frame_sets`` frame sets the world
already holds (the newest, and evenly back to the oldest), which the alignment compares. The point head runs
only when asked.

Metric scale (`SessionConfig.metric`): with a source configured, each window's scale is measured
(`vggt_ros.metric.measure`: sensor depth resampled to the model pixels and cached per frame, the camera rig, or
odometry from the transforms) and handed to the world, which becomes metric at the first good measurement. Until
then nothing is published or mapped (`WindowOutput.metric` is False and its newest frames and cloud are empty):
outputs are either in metres or absent, never in an unknown unit.

Reset rules (the world and the window start over): time going backwards, a change of image size (unless every
frame is padded to one model size, `SessionConfig.model_hw`), `request_reset` (the node's ``~/reset``), and a
window that cannot chain to the world's newest frames (one formed after a reset that a stale window took). A
reset holds until a window has run through `integrate`: one whose inference fails passes it on. State
is bounded: the window, the per-frame cache (the current window's frames), the world (see `vggt_ros.world`) and
the map (`vggt_ros.mapping`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, NamedTuple, Optional

import numpy as np
import torch

from vggt_ros.dataset.frames import ExportFrame
from vggt_ros.dataset.tum import trajectory_file_name, write_camera_trajectories
from vggt_ros.geometry import compose_poses, invert_pose, moved_pose, transform_points
from vggt_ros.mapping import EmptyMapError, GrowingMap, MapConfig
from vggt_ros.metric.config import MetricConfig
from vggt_ros.metric.measure import ScaleMeasurement, measure_window_scale
from vggt_ros.metric.sensor_depth import DepthFormatError, depth_to_model
from vggt_ros.metric.sources import ScaleObservation, ScaleUnavailable
from vggt_ros.preprocess import MODES, PixelMap, pixel_map, preprocess_frames_u8, preprocess_images_u8, to_unit_float
from vggt_ros.products import decode_window
from vggt_ros.window import FrameId, FrameSet, SlidingWindow, Window, WindowConfig, anchor_window
from vggt_ros.world import Trajectory, WindowResult, WindowStatus, World, WorldConfig
from vggt_ros.world.cloud import CloudConfig, PointCloud, build_cloud
from vggt_ros.world.loop_closure import LoopResult
from vggt_ros.world.loop_verification import (
    LOOP_WINDOW_MAX_FRAMES,
    LoopReport,
    LoopVerificationConfig,
    LoopVerifier,
    NewKeyframe,
)

log = logging.getLogger(__name__)

PREPROCESSING = ("fast", "exact")
# Points per call when the map is rebuilt after a loop (see `ReconstructionSession.apply_loops`).
MAP_REBUILD_CHUNK = 50_000
DEPTH_OUTPUTS = ("pose_enc", "depth", "depth_conf")
POINT_OUTPUTS = ("world_points", "world_points_conf")
# The depth source's sensor images: (camera, stamp_ns) -> (H, W) float32 metres at the camera's resolution, or None.
DepthLookup = Callable[[int, int], Optional[np.ndarray]]


@dataclass(frozen=True)
class SessionConfig:
    """Everything a session decides with.

    Attributes:
        window: keyframing and the sliding window.
        cloud, world, map: the published cloud, the chaining, the map.
        cameras: images per frame set.
        camera_names: names for messages (default camera0, camera1, ...).
        image_size, preprocess_mode: model input width (crop) or longer side (pad), and the mode.
        preprocessing: "fast" (torch, on the pipeline's device: live frames) or "exact" (the official loader).
        model_hw: with exact preprocessing, the (H, W) every frame is padded to (white, centred) whatever its
            size, as the official loader pads a batch: frames of different sizes then share windows. None: each
            frame's own model size, and a change of image size starts over.
        overlap_frame_sets: frame sets already in the world whose depth the alignment compares (>= 1): the newest
            and, for more than one, spread evenly back to the oldest the world still holds.
        incremental: False runs every stage on every frame of every window (the reference the incremental path
            is tested against; same products).
        point_head: also run the point head; its outputs are in `WindowOutput.predictions`.
        metric: the metric scale source (`vggt_ros.metric`); "none" keeps VGGT's unit-less scale.
        loop_verification: loop detection and verification (`vggt_ros.world.loop_verification`, `close_loops`);
            loop closure itself is the world's (`WorldConfig.loop`).
    """

    window: WindowConfig = field(default_factory=WindowConfig)
    cloud: CloudConfig = field(default_factory=CloudConfig)
    world: WorldConfig = field(default_factory=WorldConfig)
    map: MapConfig = field(default_factory=MapConfig)
    cameras: int = 1
    camera_names: tuple[str, ...] = ()
    image_size: int = 518
    preprocess_mode: str = "crop"
    preprocessing: str = "fast"
    model_hw: Optional[tuple[int, int]] = None
    overlap_frame_sets: int = 2
    incremental: bool = True
    point_head: bool = False
    metric: MetricConfig = field(default_factory=MetricConfig)
    loop_verification: LoopVerificationConfig = field(default_factory=LoopVerificationConfig)

    def __post_init__(self) -> None:
        if isinstance(self.cameras, bool) or not isinstance(self.cameras, int) or self.cameras < 1:
            raise ValueError(f"cameras must be an int >= 1, got {self.cameras!r}")
        if self.camera_names and len(self.camera_names) != self.cameras:
            raise ValueError(f"camera_names must name the {self.cameras} cameras, got {list(self.camera_names)}")
        if self.preprocess_mode not in MODES:
            raise ValueError(f"preprocess_mode must be one of {MODES}, got {self.preprocess_mode!r}")
        if self.preprocessing not in PREPROCESSING:
            raise ValueError(f"preprocessing must be one of {PREPROCESSING}, got {self.preprocessing!r}")
        if self.model_hw is not None and self.preprocessing != "exact":
            raise ValueError("model_hw (pad every frame to one size) needs exact preprocessing")
        if not 1 <= self.overlap_frame_sets < max(2, self.window.window_size):
            raise ValueError(
                f"overlap_frame_sets must be in [1, window_size - 1 = {self.window.window_size - 1}], "
                f"got {self.overlap_frame_sets!r}"
            )
        if self.world.retained_frames < self.window.window_size * self.cameras:
            raise ValueError(
                f"world.retained_frames ({self.world.retained_frames}) must hold a whole window "
                f"({self.window.window_size} x {self.cameras} images) to find the frames the next one shares"
            )

    @property
    def names(self) -> tuple[str, ...]:
        return self.camera_names or tuple(f"camera{i}" for i in range(self.cameras))

    @property
    def outputs(self) -> tuple[str, ...]:
        return DEPTH_OUTPUTS + (POINT_OUTPUTS if self.point_head else ())


class FrameSetError(ValueError):
    """A frame set the session cannot use (dropped, nothing else changes); ``kind`` names the problem."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class SessionUpdate:
    """What `ReconstructionSession.add` did: kept as keyframe, a reset (with its reason, else ""), a window."""

    is_keyframe: bool
    reset: str
    window: Optional[Window]


@dataclass(frozen=True)
class WindowInference:
    """The network's answer for one window (device tensors), ready to integrate.

    frame_ids, stamps: model order; dense: window indices the depth head ran on; predictions: the pipeline's
    outputs (pose_enc (S, 9); depth (D, H, W, 1), depth_conf (D, H, W); with the point head world_points
    (D, H, W, 3), world_points_conf); colors: (D, H, W, 3) uint8; reset: start a new world before integrating;
    seconds: host time per step; camera_frames: each camera's frame id (newest frame set); sensor_depth:
    (D, H, W) metres at the model pixels, NaN where none (depth source, else None); depth_problem: why sensor
    depth could not be used (e.g. a resolution that differs from the colour image's), else None; image_boxes: per
    dense frame, the model pixels that show its camera image (`PixelMap.image_box`; the rest is padding).
    """

    window: Window
    frame_ids: tuple[FrameId, ...]
    stamps: np.ndarray
    dense: tuple[int, ...]
    predictions: Mapping[str, torch.Tensor]
    colors: torch.Tensor
    reset: bool
    seconds: dict[str, float]
    camera_frames: tuple[str, ...] = ()
    sensor_depth: Optional[torch.Tensor] = None
    depth_problem: Optional[ScaleUnavailable] = None
    image_boxes: Optional[tuple[tuple[int, int, int, int], ...]] = None


@dataclass(frozen=True)
class PublishedFrame:
    """One image of the newest frame set, on the host: camera index, stamp (ns), world pose ``(4, 4)``,
    intrinsics ``(3, 3)`` of the ``(H, W)`` model image, depth (world units, NaN where unusable) and confidence."""

    camera: int
    stamp_ns: int
    world_from_camera: np.ndarray
    intrinsics: np.ndarray
    depth: np.ndarray
    confidence: np.ndarray


@dataclass(frozen=True)
class WindowOutput:
    """What one window produced.

    Attributes:
        window: the window as run (after anchoring).
        status, reason: the world's verdict; the reason is a sentence for the log.
        result: the world's `WindowResult`, or None when the network output could not even be decoded
            (e.g. a predicted field of view outside (0, pi)); then status is REJECTED.
        newest: the newest frame set's images in the world (empty unless merged, and, with a metric source,
            metric).
        cloud: the points of the frames new to the world (None unless merged, and metric with a metric source).
        map_reset: a new segment or world started, so the map was emptied before this window was added.
        dense: window indices of the frames the depth head ran on (rows of the dense predictions).
        predictions: the network's outputs (see `WindowInference`).
        seconds: host time per step of this window.
        scale: the window's metric scale measurement, or why there is none (None for the "none" source).
        metric: everything above is in metres.
    """

    window: Window
    status: WindowStatus
    reason: str
    result: Optional[WindowResult]
    newest: list[PublishedFrame]
    cloud: Optional[PointCloud]
    map_reset: bool
    dense: tuple[int, ...]
    predictions: Mapping[str, torch.Tensor]
    seconds: dict[str, float]
    scale: Optional[ScaleMeasurement] = None
    metric: bool = False

    @property
    def merged(self) -> bool:
        return self.status is not WindowStatus.REJECTED

    @property
    def waiting_for_scale(self) -> bool:
        """Merged, but held back: a metric source is configured and has not measured a scale yet."""
        return self.merged and self.scale is not None and not self.metric


@dataclass
class _CachedFrame:
    tokens: torch.Tensor  # (h*w, C) DINOv2 patch tokens
    colors: torch.Tensor  # (H, W, 3) uint8 model-resolution image
    image: Optional[torch.Tensor]  # (3, H, W) model input, kept only for the non-incremental reference path
    image_hw: tuple[int, int]  # the camera image's (H, W)
    image_box: tuple[int, int, int, int]  # model pixels showing the camera image (PixelMap.image_box); else padding
    sensor_depth: Optional[torch.Tensor] = None  # (H, W) metres at the model pixels, NaN where none (depth source)


class ImagesPerCall(NamedTuple):
    """The fewest and the most images of one network call in a session, each with what runs it."""

    fewest: int
    fewest_from: str
    most: int
    most_from: str


def images_per_call(config: SessionConfig) -> ImagesPerCall:
    """The fewest and most images of one network call in this session: one frame set (a new frame set through
    DINOv2) up to a full window; with loop closure a loop pass too, which re-encodes one or two stored keyframes and
    runs up to `LOOP_WINDOW_MAX_FRAMES`."""
    window_images = config.window.window_size * config.cameras
    fewest, fewest_from = config.cameras, "1 frame set"
    most, most_from = window_images, "window_size x cameras"
    if config.world.loop.enabled:
        fewest, fewest_from = 1, "a loop pass re-encodes 1 keyframe, or turn loop closure off"
        if LOOP_WINDOW_MAX_FRAMES > window_images:
            most, most_from = LOOP_WINDOW_MAX_FRAMES, "a loop closure pass, or turn loop closure off"
    return ImagesPerCall(fewest, fewest_from, most, most_from)


def check_engines_fit(pipeline, config: SessionConfig) -> None:
    """Exported engines have a fixed image size and frame range: check they can run this session's calls
    (`images_per_call`; engines too small for a loop pass, found mid-run, failed every loop)."""
    frames = getattr(pipeline, "frames", None)
    if frames is not None:
        calls = images_per_call(config)
        if frames.min > calls.fewest or frames.max < calls.most:
            raise ValueError(
                f"the engines accept {frames.min}..{frames.max} frames, but this session runs {calls.fewest}.."
                f"{calls.most} images per call ({calls.fewest_from if frames.min > calls.fewest else calls.most_from})"
            )
    image_hw = getattr(pipeline, "image_hw", None)
    if image_hw is not None:
        square = config.preprocess_mode == "pad"
        if image_hw[1] != config.image_size or (square and image_hw[0] != config.image_size):
            raise ValueError(
                f"the engines take {image_hw[0]}x{image_hw[1]} images (HxW), but image_size {config.image_size} "
                f"in {config.preprocess_mode} mode gives width {config.image_size}"
                + (" and height too" if square else "")
            )


class PublishedCorrection:
    """The loops' correction of the world as last published (``parent_frame -> world_frame``), and when it is due
    again: after a window whose loop pass closed a loop, or whose correction moved. It moves without a new loop too:
    it is rigid, fitted at the newest keyframe, while the loops' correction is a similarity (a unit-less world's
    scale drift), so each window after a loop moves it a little, and the window's path and the map go out under the
    new one. Never while the world awaits its metric scale (nothing is published then): a correction that moved
    meanwhile (back to the identity after a reset) goes out with the first window in metres. The node and
    ``--out-bag`` publish by this one rule."""

    def __init__(self) -> None:
        self._sent = np.eye(4)

    def due(self, out: WindowOutput, loop_closed: bool, correction: np.ndarray) -> Optional[np.ndarray]:
        """``correction`` (`ReconstructionSession.world_correction` after window ``out``'s loop pass) when it is to
        be published now, else None."""
        if out.waiting_for_scale or (not loop_closed and np.array_equal(correction, self._sent)):
            return None
        self._sent = correction
        return correction


class ReconstructionSession:
    """See the module docstring. `add` from one thread, `infer` and `integrate` from one (possibly other) thread."""

    def __init__(self, pipeline, config: SessionConfig = SessionConfig(), transforms=None) -> None:
        """``transforms``: the TF look-up the rig and odometry scale sources use (see `vggt_ros.metric.measure`)."""
        check_engines_fit(pipeline, config)
        self.pipeline = pipeline
        self.config = config
        self.transforms = transforms
        # The map keyframes' points a loop's rebuild of the map re-places: those the map took (`integrate`).
        self.world = World(config.world, keeps_map_points=False)
        self.map = GrowingMap(config.map)
        self._window = SlidingWindow(config.window)
        self._image_hw: Optional[tuple[int, int]] = None  # input size of the current run (add's thread)
        self._new_hw: Optional[tuple[int, int]] = None  # another size, seen once: a new size once seen again
        self._resets_requested = 0  # counted by add's thread; the worker compares it with the resets it took
        # Worker state (infer / integrate thread).
        self._resets_taken = 0
        self._reset_pending = False  # infer decided on a reset that integrate has not made yet
        self._cache: dict[FrameId, _CachedFrame] = {}
        self._anchor: Optional[FrameSet] = None  # the newest frame set merged into the world
        self.loop_verifier = LoopVerifier(config.loop_verification, config.world)

    # ------------------------------------------------------------------------------------------ input side
    def add(self, frame_set: FrameSet) -> SessionUpdate:
        """Offer one synchronised frame set (arrival order).

        Raises:
            FrameSetError: wrong number of images, cameras with different sizes without ``model_hw``, or the first
                set of a new image size without it (the set is dropped; a second one of that size starts over).
        """
        if len(frame_set.images) != self.config.cameras:
            raise FrameSetError(
                "cameras",
                f"a frame set has {len(frame_set.images)} images, the session runs {self.config.cameras} cameras",
            )
        sizes = {image.shape[:2] for image in frame_set.images}
        if len(sizes) > 1 and self.config.model_hw is None:  # with model_hw every frame is padded to one size
            listed = ", ".join(
                f"{name} {image.shape[1]}x{image.shape[0]}" for name, image in zip(self.config.names, frame_set.images)
            )
            raise FrameSetError(
                "resolution",
                f"cameras have different resolutions ({listed}, WxH); they must match: set dropped "
                "(resize them upstream, e.g. with image_proc)",
            )
        reset = ""
        image_hw = max(sizes)
        if self._image_hw is not None and image_hw != self._image_hw and self.config.model_hw is None:
            change = f"image size changed from {self._image_hw[1]}x{self._image_hw[0]} to {image_hw[1]}x{image_hw[0]}"
            if image_hw != self._new_hw:
                # Seen once: a lone image of another size (a glitch, a second publisher on the topic) costs itself
                # only, as a lone late image does; the next of that size confirms it, and the world starts over.
                self._new_hw = image_hw
                raise FrameSetError(
                    "size_change",
                    f"{change} (WxH): set dropped; a second set of the new size starts the reconstruction over, a "
                    "set of the old size goes on with it",
                )
            reset = f"{change} (WxH): reconstruction starts over"
            self._window.reset()
        self._new_hw = None
        self._image_hw = image_hw
        update = self._window.add(frame_set)
        if update.reset:
            reset = "time went backwards (a bag loop or a restarted driver?): reconstruction starts over"
        if reset:
            self._resets_requested += 1
        window = update.window
        if window is not None:
            window = dataclasses.replace(window, resets=self._resets_requested)
        return SessionUpdate(update.is_keyframe, reset, window)

    def request_reset(self) -> None:
        """Start a new world and an empty map from the next window `add` forms, and forget the window's keyframes.

        Call from `add`'s thread (the node's executor).
        """
        self._window.reset()
        self._image_hw = self._new_hw = None
        self._resets_requested += 1

    # ------------------------------------------------------------------------------------------ inference
    # The entry points run under torch.inference_mode: nothing here is differentiated, and autograd's bookkeeping
    # costs each of the many small tensor ops of a window's packing (about 0.2 ms of a 5 ms frame on a 2-core CPU).
    @torch.inference_mode()
    def infer(self, window: Window, depth_lookup: Optional[DepthLookup] = None) -> WindowInference:
        """Run the network on one window, recomputing nothing that an earlier window already computed.

        ``depth_lookup``: the depth source's sensor depth per frame; asked for each frame until it answers (depth
        usually arrives after its colour image), then kept with the frame.
        """
        seconds: dict[str, float] = {}
        # The resets counted when the window formed, not now: a reset the node serves after its worker took a
        # window starts the world at the next window, which holds no frame from before it.
        requested = self._resets_requested if window.resets is None else window.resets
        # A window can also meet a world its frames cannot be chained to (another image size, or a time before the
        # world's): start over here too.
        reset = (
            self._reset_pending
            or requested != self._resets_taken
            or (self._anchor is not None and not self._continues(window))
        )
        if reset:  # pending until integrate resets the world: a window that fails before passes it on
            self._resets_taken, self._reset_pending = requested, True
            self._cache.clear()
            self._anchor = None
        window = anchor_window(window, self._anchor)
        cameras = window.num_cameras
        frame_ids = tuple(frame_id for s in window.frame_sets for frame_id in s.frame_ids())
        images = window.images
        missing = [i for i, frame_id in enumerate(frame_ids) if frame_id not in self._cache]
        if not self.config.incremental:
            missing = list(range(len(frame_ids)))
        self._encode(frame_ids, images, missing, seconds)
        self._cache = {frame_id: self._cache[frame_id] for frame_id in frame_ids}  # only this window's frames

        dense = self._dense_frames(frame_ids, cameras, reset)
        image_hw = tuple(self._cache[frame_ids[0]].colors.shape[:2])
        # Before the network: the depth source's look-up holds each keyframe's depth only until newer keyframes
        # push it out, and a slow network's run lets many arrive. Asked again after it, for depth that arrived
        # after its colour image meanwhile (a frame keeps what it found).
        looks_up_depth = self.config.metric.source == "depth" and depth_lookup is not None
        depth_problem = self._look_up_sensor_depth(frame_ids, depth_lookup) if looks_up_depth else None
        start = time.perf_counter()
        if self.config.incremental:
            tokens = torch.stack([self._cache[f].tokens for f in frame_ids])
            predictions = self.pipeline.predict(tokens, image_hw, self.config.outputs, torch.tensor(dense))
        else:  # the reference: every head on every frame, then the same frames kept
            images = torch.stack([self._cache[f].image for f in frame_ids])
            full = {k: v[0] if k != "pose_enc_list" else v[:, 0] for k, v in self.pipeline(images).items()}
            keep = torch.tensor(dense, device=full["depth"].device)
            predictions = {
                k: (full[k] if k == "pose_enc" else full[k].index_select(0, keep)) for k in self.config.outputs
            }
        seconds["network"] = time.perf_counter() - start
        colors = torch.stack([self._cache[frame_ids[i]].colors for i in dense])
        sensor_depth = None
        if looks_up_depth:
            depth_problem = self._look_up_sensor_depth(frame_ids, depth_lookup) or depth_problem
        if self.config.metric.source == "depth":
            sensor_depth, depth_problem = self._sensor_depth(frame_ids, dense, depth_problem)
        return WindowInference(
            window=window,
            frame_ids=frame_ids,
            stamps=np.array([stamp * 1e-9 for stamp, _ in frame_ids]),
            dense=dense,
            predictions=predictions,
            colors=colors,
            reset=reset,
            seconds=seconds,
            camera_frames=window.frame_sets[-1].camera_frames,
            sensor_depth=sensor_depth,
            depth_problem=depth_problem,
            image_boxes=tuple(self._cache[frame_ids[i]].image_box for i in dense),
        )

    def _continues(self, window: Window) -> bool:
        """Whether ``window`` can chain to the world's newest merged frame set (`_anchor`): it holds it, or comes
        after it with the same image sizes (any sizes where every frame is padded to ``model_hw``)."""
        anchor, sets = self._anchor, window.frame_sets
        if any(s.stamps_ns == anchor.stamps_ns for s in sets):
            return True
        sizes = (image.shape[:2] for image in (*anchor.images, *sets[-1].images))
        same_size = self.config.model_hw is not None or len(set(sizes)) == 1
        return same_size and max(anchor.stamps_ns) < min(sets[0].stamps_ns)

    def _look_up_sensor_depth(self, frame_ids, depth_lookup: DepthLookup) -> Optional[ScaleUnavailable]:
        """Ask ``depth_lookup`` for the sensor depth of each frame without one yet, and keep what it answers with the
        frame (model pixels); the problem that kept a frame's depth image out, if one did."""
        problem = None
        for frame_id in frame_ids:
            cached = self._cache[frame_id]
            if cached.sensor_depth is not None:
                continue
            stamp_ns, camera = frame_id
            depth_m = depth_lookup(camera, stamp_ns)
            if depth_m is None:
                continue
            mapping = self._pixel_map(cached.image_hw)
            try:
                resampled = depth_to_model(depth_m, mapping)
            except DepthFormatError as err:
                problem = ScaleUnavailable(err.kind, f"camera {self.config.names[camera]}: {err}")
                continue
            cached.sensor_depth = torch.from_numpy(resampled).to(cached.colors.device)
        return problem

    def _sensor_depth(
        self, frame_ids, dense: tuple[int, ...], problem: Optional[ScaleUnavailable]
    ) -> tuple[torch.Tensor, Optional[ScaleUnavailable]]:
        """``(D, H, W)`` sensor depth (metres, model pixels, NaN where none) of the dense frames, and, when none of
        them has any, ``problem``, what kept a frame's depth out (one frame's bad depth image leaves that frame
        without depth, not the window without a measurement)."""
        missing = torch.full(tuple(self._cache[frame_ids[dense[0]]].colors.shape[:2]), float("nan"))
        depth = [self._cache[frame_ids[i]].sensor_depth for i in dense]
        stacked = torch.stack(
            [d if d is not None else missing.to(self._cache[frame_ids[i]].colors.device) for i, d in zip(dense, depth)]
        )
        return stacked, None if any(d is not None for d in depth) else problem

    def _encode(self, frame_ids, images, missing: list[int], seconds: dict[str, float]) -> None:
        """Preprocess and (incremental path) encode the frames not cached yet, into the cache."""
        if not missing:
            seconds["preprocess"] = seconds["encode"] = 0.0
            return
        start = time.perf_counter()
        config = self.config
        batch = [images[i] for i in missing]
        if config.preprocessing == "exact":
            pixels = preprocess_images_u8(
                batch, mode=config.preprocess_mode, target_size=config.image_size, pad_to=config.model_hw
            )
        else:
            pixels = preprocess_frames_u8(
                np.stack(batch), mode=config.preprocess_mode, target_size=config.image_size, device=self.pipeline.device
            )
        pixels = pixels.to(self.pipeline.device)
        model_input = to_unit_float(pixels)
        colors = pixels.permute(0, 2, 3, 1)  # the model images' colours, as uint8 from here to the message
        seconds["preprocess"] = time.perf_counter() - start
        start = time.perf_counter()
        tokens = self.pipeline.encode(model_input) if config.incremental else [None] * len(missing)
        seconds["encode"] = time.perf_counter() - start
        for k, i in enumerate(missing):
            image = None if config.incremental else model_input[k]
            image_hw = tuple(images[i].shape[:2])
            box = self._pixel_map(image_hw).image_box()
            self._cache[frame_ids[i]] = _CachedFrame(tokens[k], colors[k], image, image_hw, box)

    def _pixel_map(self, image_hw: tuple[int, int]) -> PixelMap:
        """Where a camera image of ``image_hw`` lands in the model image, under this session's preprocessing."""
        return pixel_map(*image_hw, self.config.preprocess_mode, self.config.image_size, self.config.model_hw)

    def _dense_frames(self, frame_ids, cameras: int, reset: bool) -> tuple[int, ...]:
        """Window indices whose depth is used: frames new to the world, and ``overlap_frame_sets`` of the frame sets
        it holds (the newest, and spread back to the oldest)."""
        known = (lambda f: False) if reset else (lambda f: f in self.world.keyframes)
        new = [i for i, f in enumerate(frame_ids) if not known(f)]
        held_sets = sorted({i // cameras for i, f in enumerate(frame_ids) if known(f) and f in self.world.samples})
        count = min(self.config.overlap_frame_sets, len(held_sets))
        # Spread over the held sets, the newest always included: a wider baseline fixes the alignment better.
        picks = (
            {held_sets[round(k * (len(held_sets) - 1) / (count - 1))] for k in range(count)}
            if count > 1
            else set(held_sets[-1:])
        )
        overlap = [s * cameras + c for s in picks for c in range(cameras)]
        return tuple(sorted(set(new) | set(overlap)))

    # ------------------------------------------------------------------------------------------ world side
    @torch.inference_mode()
    def integrate(self, inference: WindowInference) -> WindowOutput:
        """Chain one window into the world and the map. Call under the lock that guards `world` and `map`."""
        seconds = dict(inference.seconds)
        start = time.perf_counter()
        map_reset = inference.reset
        if inference.reset:
            self.world.reset()
            self.map.reset()
            self._reset_pending = False

        scale: Optional[ScaleMeasurement] = None

        def output(status: WindowStatus, reason: str, result, metric: bool, newest=(), cloud=None) -> WindowOutput:
            return WindowOutput(
                window=inference.window,
                status=status,
                reason=reason,
                result=result,
                newest=list(newest),
                cloud=cloud,
                map_reset=map_reset,
                dense=inference.dense,
                predictions=inference.predictions,
                seconds=seconds,
                scale=scale,
                metric=metric,
            )

        def rejected(reason: str, result: Optional[WindowResult]) -> WindowOutput:
            seconds["world"] = time.perf_counter() - start
            return output(WindowStatus.REJECTED, reason, result, self.world.metric)

        try:
            products = decode_window(
                inference.predictions,
                inference.frame_ids,
                inference.stamps,
                inference.dense,
                inference.colors,
                inference.image_boxes,
            )
        except ValueError as err:  # unusable cameras (e.g. a field of view of 0): nothing to align or publish
            return rejected(f"unusable network output: {err}", None)
        scale = inference.depth_problem or measure_window_scale(
            self.config.metric,
            products,
            self.config.cameras,
            inference.camera_frames,
            inference.sensor_depth,
            self.transforms,
        )
        observation = scale if isinstance(scale, ScaleObservation) else None
        result = self.world.integrate(products, self.config.cloud.point_decimation, observation)
        if result.scale_note:  # the filter refused the observation: report that instead
            scale = ScaleUnavailable("outlier", result.scale_note)
        seconds["world"] = time.perf_counter() - start
        if not result.merged:
            return rejected(result.reason, result)
        self._anchor = inference.window.frame_sets[-1]
        if self.awaiting_scale:
            seconds["cloud"] = seconds["map"] = 0.0
            return output(result.status, result.reason, result, metric=False)
        start = time.perf_counter()
        cloud = build_cloud(result.placed, self.config.cloud) if result.placed is not None else None
        seconds["cloud"] = time.perf_counter() - start
        start = time.perf_counter()
        if result.status is WindowStatus.NEW_SEGMENT:
            self.map.reset()
            map_reset = True
        if cloud is not None:
            map_rows = [row for row, i in enumerate(result.placed.frames) if result.map_frames[i]]
            if map_rows:
                in_map = np.isin(cloud.frames, map_rows)
                # The map lives in the corrected world (loops closed): the chained points moved by the correction.
                chained = cloud.points[in_map, :3].astype(np.float64)
                self.map.add(transform_points(self.world.corrected_from_chained, chained), cloud.colors[in_map])
                for row in map_rows:  # what a loop's rebuild of the map re-places: the points the map took
                    kept = cloud.frames == row
                    frame_id = result.frame_ids[result.placed.frames[row]]
                    pose = result.placed.world_from_camera[row]
                    self.world.keep_map_points(frame_id, pose, cloud.points[kept, :3], cloud.colors[kept])
        seconds["map"] = time.perf_counter() - start
        return output(result.status, result.reason, result, result.metric, self._newest(result), cloud)

    def _newest(self, result: WindowResult) -> list[PublishedFrame]:
        """The newest frame set's images, copied to the host (what the node publishes per camera)."""
        return self._published(result, len(result.frame_ids) // self.config.cameras - 1)

    def _published(self, result: WindowResult, frame_set: int) -> list[PublishedFrame]:
        """The images of the window's ``frame_set``-th frame set that the world placed, copied to the host."""
        placed = result.placed
        if placed is None:
            return []
        cameras = self.config.cameras
        frames = []
        for camera in range(cameras):
            i = frame_set * cameras + camera
            if i not in placed.frames:
                continue
            row = placed.frames.index(i)
            frames.append(
                PublishedFrame(
                    camera=camera,
                    stamp_ns=int(result.frame_ids[i].stamp_ns),
                    world_from_camera=placed.world_from_camera[row],
                    intrinsics=placed.intrinsics[row],
                    depth=placed.depth[row].cpu().numpy(),
                    confidence=placed.confidence[row].cpu().numpy(),
                )
            )
        return frames

    def earlier_added_frame_sets(self, out: WindowOutput) -> dict[int, list[PublishedFrame]]:
        """The images of each frame set ``out`` added to the world before its newest (`WindowOutput.newest`), by
        their frame set's index in ``out.window``, oldest first: the first window's, a joint run's or a chunk's
        frames, which the node, publishing as it runs, never publishes. Empty unless the window was merged and
        published (metric, with a source)."""
        if not out.newest or out.result is None:
            return {}
        cameras = self.config.cameras
        newest_set = len(out.result.frame_ids) // cameras - 1
        added = sorted({index // cameras for index in out.result.placed.frames} - {newest_set})
        return {frame_set: self._published(out.result, frame_set) for frame_set in added}

    @torch.inference_mode()
    def close_loops(self, out: WindowOutput) -> LoopReport:
        """Remember the keyframes ``out`` (the window just integrated) added, and look for loops from them: at most
        one loop pass (one network call of <= 4 frames) per new keyframe. Call after `integrate`, on the same
        thread, outside the world lock: it only reads the world. Returns the verified constraints (for the pose
        graph), the rejections with their causes, and each new keyframe's candidates with their scores (to log).
        The reference path (``incremental`` False) caches no tokens and closes no loops.
        """
        if not self.config.incremental or self.world.loops is None:
            return LoopReport()
        frames = {
            frame_id: NewKeyframe(frame_id, frame_id.stamp_ns * 1e-9, cached.tokens, cached.colors, cached.image_box)
            for frame_id, cached in self._cache.items()
        }
        # While the world awaits its metric scale its keyframes are stored but no loop is closed: a loop closed in
        # the unit-less world corrects scale, and the first metric keyframes would take that correction on (they
        # follow the newest keyframe's). The loops closed later, from the metric world, correct that stretch.
        return self.loop_verifier.after_window(
            out.result, frames, self.world, self.pipeline, self.config.cameras, search=not out.waiting_for_scale
        )

    @torch.inference_mode()
    def apply_loops(self, report: LoopReport) -> list[LoopResult]:
        """Hand ``report``'s verified loops to the world's pose graph (`World.close_loop`: the world judges whether
        each correction is plausible, optimises and re-places the keyframes). After an accepted loop the map is
        rebuilt from the re-placed keyframes' points (`World.map_cloud`), so a segment a loop joined brings its
        map back. Call under the lock that guards `world` and `map`; cheap (no network)."""
        if self.world.loops is None:
            return []
        results = [self.world.close_loop(constraint) for constraint in report.constraints]
        if any(result.accepted for result in results):
            self.loop_verifier.loop_closed()
            points, colors = self.world.map_cloud()
            self.map.reset()
            # In chunks: a rebuild in one call holds the GIL for most of a second (voxel sorting, Open3D), and the
            # node's executor thread cannot run meanwhile; a chunk takes tens of milliseconds.
            for start in range(0, len(points), MAP_REBUILD_CHUNK):
                self.map.add(points[start : start + MAP_REBUILD_CHUNK], colors[start : start + MAP_REBUILD_CHUNK])
        return results

    @torch.inference_mode()
    def push(self, frame_set: FrameSet, depth_lookup: Optional[DepthLookup] = None) -> Optional[WindowOutput]:
        """`add`, then `infer` and `integrate` if a window is due: the offline loop's one call."""
        update = self.add(frame_set)
        if update.reset:
            log.warning(update.reset)
        if update.window is None:
            return None
        return self.integrate(self.infer(update.window, depth_lookup))

    # ------------------------------------------------------------------------------------------ results
    @property
    def cached_frames(self) -> int:
        """Frames in the per-frame cache (the last window's)."""
        return len(self._cache)

    def trajectory(self) -> Trajectory:
        return self.world.trajectory()

    def exported_frames(self, out: WindowOutput) -> list[tuple[ExportFrame, np.ndarray]]:
        """The frames this window added to the world, ready for the dataset exports (`vggt_ros.dataset`), each with
        its camera image ``(H, W, 3)`` uint8 (host copies). Named ``<camera name>/<stamp_ns>.png``; a caller with
        image files renames them. Empty unless the window was merged and published (metric, with a source)."""
        placed = out.result.placed if out.merged and out.result is not None and not out.waiting_for_scale else None
        if placed is None:
            return []
        cameras = self.config.cameras
        frames = []
        for row, index in enumerate(placed.frames):
            stamp_ns, camera = out.result.frame_ids[index]
            image = out.window.frame_sets[index // cameras].images[camera]
            mapping = self._pixel_map(image.shape[:2])
            frame = ExportFrame(
                name=f"{self.config.names[camera]}/{stamp_ns}.png",
                camera=camera,
                stamp_ns=int(stamp_ns),
                pixel_map=mapping,
                world_from_camera=placed.world_from_camera[row],
                intrinsics=placed.intrinsics[row],
                depth=placed.depth[row].cpu().numpy(),
                confidence=placed.confidence[row].cpu().numpy(),
                colors=placed.colors[row].cpu().numpy(),
            )
            frames.append((frame, np.array(image)))
        return frames

    @property
    def awaiting_scale(self) -> bool:
        """A metric source is configured and has not measured the world's scale yet: nothing is published or
        written in the unit-less world."""
        return self.config.metric.active and not self.world.metric

    def world_correction(self) -> np.ndarray:
        """``(4, 4)`` rigid correction of the chained world at the newest keyframe: its loop-closed pose times the
        inverse of its chained pose (REP 105's map -> odom; the node publishes it under ``parent_frame``). The
        chained poses never jump; this moves when a loop closes. Identity until then. Rigid, as TF is: the scale a
        loop corrects in a unit-less world lives in the corrected poses and map, not in this transform."""
        if not self.world.corrected_by_loops:
            return np.eye(4)
        chained = self.world.keyframes.last.world_from_camera
        # The pose graph keeps the newest keyframe's correction at hand: O(1), where the corrected trajectory is a
        # pass over the keyframes.
        corrected, _ = moved_pose(self.world.corrected_from_chained, chained)
        return compose_poses(corrected, invert_pose(chained))

    def loop_corrected(
        self, frames: list[tuple[ExportFrame, np.ndarray]]
    ) -> Optional[list[tuple[ExportFrame, np.ndarray]]]:
        """Exported frames (`exported_frames`, kept since) in the corrected world the map and the trajectories are
        written in: each moved by the similarity the closed loops moved it by (`World.loop_corrections`, the rule
        of the offline exports too), its depth in the new unit. None when loops moved the world but some frame has
        no corrected pose (the keyframe store dropped it): moving only the others would mix two worlds in one
        dataset, so the caller keeps them all as they were."""
        if not self.world.corrected_by_loops:
            return frames
        ids = [FrameId(frame.stamp_ns, frame.camera) for frame, _ in frames]
        corrections = self.world.loop_corrections(ids)
        if corrections is None:
            return None
        moved = []
        for frame_id, (frame, image) in zip(ids, frames):
            pose, scale = moved_pose(corrections[frame_id], frame.world_from_camera)
            moved.append(
                (dataclasses.replace(frame, world_from_camera=pose, depth=frame.depth * np.float32(scale)), image)
            )
        return moved

    def camera_path(self, camera: int = 0) -> list[tuple[int, np.ndarray]]:
        """(stamp_ns, ``(4, 4)`` pose) of one camera's kept keyframes, oldest first (bounded): their loop-closed
        poses in the frame the node publishes in (the chained world, placed under ``parent_frame`` by
        `world_correction`), so that under ``parent_frame`` the path is the corrected one."""
        trajectory = self.world.corrected_trajectory()
        if not self.world.corrected_by_loops:
            poses = trajectory.world_from_camera
        else:  # one batched product for all the keyframes
            poses = compose_poses(invert_pose(self.world_correction()), trajectory.world_from_camera)
        return [
            (frame_id.stamp_ns, pose)
            for frame_id, pose in zip(trajectory.frame_ids, poses)
            if frame_id.camera == camera
        ]

    def map_in_chained_world(self) -> tuple[np.ndarray, np.ndarray]:
        """The map's points ``(N, 3)`` float32 in the frame the node publishes in (see `camera_path`) and colours
        ``(N, 3)`` uint8; the map itself is kept in the corrected (loop-closed) world."""
        points = transform_points(invert_pose(self.world_correction()), self.map.points.astype(np.float64))
        return points.astype(np.float32), self.map.colors

    def save_entries(self) -> tuple[str, ...]:
        """The names `save` writes into its folder: the map and each camera's trajectory file."""
        cameras = (trajectory_file_name(camera, name) for camera, name in enumerate(self.config.names))
        return ("map.ply", *cameras)

    def save_trajectories(self, directory: str | Path) -> dict[str, Optional[Path]]:
        """Write each camera's kept keyframe trajectory (`vggt_ros.dataset.tum`); camera name -> path, or None
        for a camera without a kept keyframe (no file). No file while the world awaits its metric scale: nothing is
        written in an unknown unit (`awaiting_scale`)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.awaiting_scale:
            return {name: None for name in self.config.names}
        trajectory = self.world.corrected_trajectory()  # the exports use the loop-closed poses
        return write_camera_trajectories(directory, trajectory, self.config.names, self.world.metric)

    def save(self, directory: str | Path) -> tuple[Optional[Path], dict[str, Optional[Path]]]:
        """Write the trajectories (`save_trajectories`) and the map (`map.ply`); return the map's path (None: the
        map has no point, every merged point filtered out) and the trajectories'.

        Raises:
            EmptyMapError: there is nothing to save: no map point and no trajectory file (no window merged yet), or
            the world waits for its metric scale (nothing is written in an unknown unit).
        """
        if self.awaiting_scale:  # said as such: the map of the windows merged meanwhile is not empty
            raise EmptyMapError(
                f"nothing to save yet: the world waits for its first metric scale from the {self.config.metric.source} "
                "source, and nothing is written in an unknown unit (/diagnostics says what the source lacks)"
            )
        trajectories = self.save_trajectories(directory)
        map_path = Path(directory) / "map.ply"
        try:
            self.map.save_ply(map_path)
        except EmptyMapError:
            if not any(trajectories.values()):
                raise
            return None, trajectories  # the trajectories are worth keeping without points
        return map_path, trajectories
