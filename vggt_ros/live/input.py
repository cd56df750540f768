# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Input assembly: camera messages -> decoded images -> stamp checks -> approximate-time sync -> `FrameSet`s, and
depth images -> metres -> the queues that pair them with colour frame sets.

ROS-free: a message is anything with the fields of sensor_msgs/Image or CompressedImage (rclpy's messages and
rosbags' both are), its stamp already in integer nanoseconds. The node and the offline command's bag input both
assemble their frame sets here, so the rules below hold for live cameras and recordings alike:

* an image that cannot be decoded is dropped and reported (once per period per camera, kind of problem and
  encoding: a second, different bad encoding is news, a byte count is not);
* a zero (unset) stamp takes the camera's clock at the image's arrival (the node's clock, or a recording's log
  time, plus the camera's lead over it: `vggt_ros.live.stamps`), reported once per camera;
* a repeated stamp, or one older than the camera's newest, is dropped; further back, and followed by the
  camera's next image from that earlier time too, time jumped back (a bag loop, a restarted driver) and the caller
  starts the reconstruction over (`vggt_ros.live.stamps`);
* depth images with no valid reading, or in an encoding that is not depth, are dropped and reported once until a
  usable one arrives.

Counts per camera (images received, their arrival) are kept here for the node's health.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Hashable, Mapping, Optional, Sequence

import numpy as np

from vggt_ros.compressed_image import decode_compressed
from vggt_ros.image_encoding import ImageFormatError, image_to_rgb
from vggt_ros.image_limits import DEFAULT_MAX_IMAGE_PIXELS, check_image_pixels, message_hw
from vggt_ros.live.health import CameraCounts, SequenceGaps
from vggt_ros.live.input_watchdog import InputWatchdog, dds_loss_warning, quiet_topic_warning
from vggt_ros.live.log_policy import LogPolicy
from vggt_ros.live.stamps import CameraStamps, StampCheck, StampVerdict
from vggt_ros.live.sync import ApproximateTimeSynchronizer, NearestStampQueue
from vggt_ros.metric.sensor_depth import DepthFormatError, depth_to_metres
from vggt_ros.preprocess import DEFAULT_TARGET_SIZE, output_size
from vggt_ros.window import FrameSet

# How far ahead of its arrival a live image may be stamped before the camera's clock is said to run ahead: clocks
# kept by NTP or PTP agree within milliseconds, and under use_sim_time the node's clock follows /clock, which a bag
# player sends every few milliseconds.
CLOCK_AHEAD_TOLERANCE_S = 0.5


@dataclass(frozen=True)
class InputConfig:
    """How images are grouped.

    Attributes:
        names: the cameras' names, in camera order (frame sets follow it).
        queue_size: images held per camera while waiting for the other cameras (and depth images per camera).
        slop_s: the stamps of one frame set lie less than this apart (strictly, as message_filters'); a depth image
            pairs with a colour image at most this far from it.
        max_reorder_s: an image at most this much older than its camera's newest arrived out of order (dropped);
            further back, time went backwards (the session's window draws the same line for frame sets).
        topics: each camera's image topic as the ROS graph shows it, then each depth camera's depth topic.
        topic_types: the message type the node reads on each of ``topics`` ("" where unknown).
        depth_cameras: how many cameras (the first ones) have a depth image topic.
        depth_keyframes: each depth camera keeps the depth of its newest this many keyframes (`keep_depth`) until
            the network has run on them, however many depth images arrive meanwhile.
        input_timeout_s: a topic without images for this long is reported, and so are cameras whose images have
            not formed a frame set for this long; an image whose stamp ran further ahead of its arrival time than
            its camera's newest did is held back until the next image confirms the jump (`vggt_ros.live.stamps`).
        max_image_pixels: larger images (width x height, from the message or the JPEG / PNG header) are dropped
            before they are decoded.
        preprocess_mode, image_size: the model input the images are made into (`vggt_ros.preprocess`): an image
            none can be made of (too elongated) is dropped on arrival, as a bad image.
        own_frames: frame id -> what it is, for the frames the node publishes on TF.
        looked_up_cameras: the cameras whose images' frames the node looks up in TF: such an image whose frame tf2
            cannot look up (an empty frame_id, or one starting with '/') is dropped, and so is one in ``own_frames``
            (the look-up would find the node's own estimate); another camera's image in one of ``own_frames`` is
            used, with one warning (a driver may name its frame as the node does, but if the robot publishes that
            frame too, it gets two parents).
        clock_ahead_tolerance_s: an image stamped further ahead of its arrival than this (on the node's clock) is
            taken, with a warning and a /diagnostics note that the camera's clock runs ahead (infinite: not judged,
            as for a recording's log times).
        clock_leads_ns: each camera's lead over the arrival clock (stamp - arrival, ns) known before its first
            image, which an unset (zero) stamp before the camera's first image adds to its arrival time: a
            recording's, from each camera's first stamped message (empty: unknown, 0; the node's case).
    """

    names: tuple[str, ...]
    queue_size: int
    slop_s: float
    max_reorder_s: float
    topics: tuple[str, ...] = ()
    topic_types: tuple[str, ...] = ()
    depth_cameras: int = 0
    depth_keyframes: int = 8
    input_timeout_s: float = 5.0
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    preprocess_mode: str = "crop"
    image_size: int = DEFAULT_TARGET_SIZE
    own_frames: Mapping[str, str] = field(default_factory=dict)
    looked_up_cameras: frozenset[int] = frozenset()
    clock_ahead_tolerance_s: float = math.inf
    clock_leads_ns: tuple[int, ...] = ()


@dataclass(frozen=True)
class Assembled:
    """What one image did: completed a frame set, asked for a restart (time went backwards; the image then starts
    the new history), or neither (held for the other cameras, or dropped and reported)."""

    frame_set: Optional[FrameSet] = None
    restart: bool = False


class InputAssembly:
    """One node's (or recording's) image inputs; called from one thread (the node's executor)."""

    def __init__(self, config: InputConfig, log: LogPolicy, clock=time.monotonic) -> None:
        self.config = config
        self._log = log
        self._clock = clock
        cameras = len(config.names)
        self._sync: ApproximateTimeSynchronizer[np.ndarray] = ApproximateTimeSynchronizer(
            cameras, config.queue_size, config.slop_s
        )
        self._stamps = CameraStamps(cameras, config.max_reorder_s, config.input_timeout_s, config.clock_leads_ns)
        self._depth_dropped: dict[int, str] = {}  # camera -> why its newest depth image was dropped
        self._depth_queues = [
            NearestStampQueue(config.queue_size, config.slop_s, config.depth_keyframes)
            for _ in range(config.depth_cameras)
        ]
        self._camera_frames: list[str] = [""] * cameras  # each camera's image frame id (its newest header's)
        self.last_synced_s = clock()  # when the cameras last formed a frame set
        self.images_received = 0
        self.camera_images = [0] * cameras
        self.camera_last_image_s: list[Optional[float]] = [None] * cameras
        self._camera_last_used_s: list[Optional[float]] = [None] * cameras  # newest image past every check
        self.camera_lost_by_dds = [0] * cameras  # DDS' message-lost event (cumulative)
        self.dropped: Counter[tuple[int, str]] = Counter()  # (camera, kind) -> images dropped (bad, too large, stamps)
        self._camera_dropped = [0] * cameras  # the same, each camera's total
        self._last_drop = [""] * cameras  # each camera's newest drop's kind
        self.substituted = Counter()  # camera -> images whose zero stamp took the camera's clock at their arrival
        self._camera_gaps = [SequenceGaps() for _ in range(cameras)]  # images that never reached the callback
        self._watchdog = InputWatchdog(config.topics, config.input_timeout_s, clock())
        self.listening = False  # subscribed (an active node): `start_listening`
        self._last_image_bytes: dict[str, int] = {}  # topic -> size of its newest image (the quiet warning's cause)
        self._listening_since_s: Optional[float] = None
        # Each camera's newest used image's stamp - arrival where beyond clock_ahead_tolerance_s, else None.
        self._clock_ahead_s: list[Optional[float]] = [None] * cameras

    @property
    def has_depth(self) -> bool:
        return bool(self._depth_queues)

    def reset(self) -> None:
        """Forget every held image and stamp history: the next images start over."""
        self._sync.reset()
        for queue in self._depth_queues:
            queue.clear()
        self._stamps.reset()

    def clock_leads_ns(self) -> list[int]:
        """Each camera's clock: its newest image's stamp - arrival time (ns), its delivery delay included (so only
        a change between cameras far beyond the slop says a clock moved)."""
        return [self._stamps.lead(camera) for camera in range(len(self.config.names))]

    def stop_listening(self) -> None:
        """Drop the images held for a frame set (on deactivation): nothing is heard, so nothing is missed."""
        self._sync.reset()
        self.listening = False

    def start_listening(self) -> None:
        """Judge the topics, the pairing and the publishers' sequence numbers afresh from now (on activation)."""
        self.restart_clock()
        self.listening = True
        for gaps in self._camera_gaps:
            gaps.restart()

    def restart_clock(self) -> None:
        """Judge the topics and the pairing afresh from now: on activation, and when the clock went back (a bag
        played in a loop under use_sim_time), where every time kept would lie in the future."""
        now_s = self._clock()
        self._watchdog = InputWatchdog(self.config.topics, self.config.input_timeout_s, now_s)
        self.last_synced_s = now_s
        self._listening_since_s = now_s
        self.camera_last_image_s = [None] * len(self.camera_last_image_s)

    def camera_counts(self) -> tuple[CameraCounts, ...]:
        """Each camera's input so far, for the node's health."""
        return tuple(
            CameraCounts(
                name,
                topic,
                received,
                gaps.missed,
                lost,
                last_s,
                self.listening,
                self._listening_since_s,
                self._camera_dropped[camera],
                self._last_drop[camera],
                self._clock_ahead_s[camera],
            )
            for camera, (name, topic, received, gaps, lost, last_s) in enumerate(
                zip(
                    self.config.names,
                    self.config.topics,
                    self.camera_images,
                    self._camera_gaps,
                    self.camera_lost_by_dds,
                    self.camera_last_image_s,
                )
            )
        )

    # ------------------------------------------------------------------------------------------ transport
    def count_missed(self, camera: int, publisher: Hashable, sequence: Optional[int]) -> None:
        """Count the images ``camera``'s publisher numbered before ``sequence`` that never arrived (a gap in its
        publication sequence numbers): lost by DDS, or overwritten in the subscription queue while the executor
        was busy, which DDS does not report."""
        gaps = self._camera_gaps[camera]
        if gaps.observe(publisher, sequence):
            self._log.every(
                "warning",
                ("missed", camera),
                f"camera '{self.config.names[camera]}': {gaps.missed} images sent on "
                f"'{self.config.topics[camera]}' never reached this node so far "
                f"({self.camera_lost_by_dds[camera]} of them reported lost by DDS, the rest overwritten in the "
                "subscription queue while the node was busy); the newest images are used. Fix: a lower camera rate, "
                "or less work for the node (a longer map_publish_period_s, fewer publish_* outputs)",
            )

    def images_lost(self, camera: int, lost_now: int, transports: str) -> None:
        """DDS' message-lost event: ``lost_now`` more images the transport lost (never delivered whole). Summed
        here: the event's own total is its subscription's, which a deactivate -> activate replaces."""
        self.camera_lost_by_dds[camera] += lost_now
        topic = self.config.topics[camera]
        total = self.camera_lost_by_dds[camera]
        self._log.every("warning", ("lost", camera), dds_loss_warning(topic, lost_now, total, transports))

    def check_inputs(
        self,
        publisher_counts: Mapping[str, int],
        transports: str,
        other_types: Mapping[str, Sequence[str]] = MappingProxyType({}),
    ) -> None:
        """Report each topic quiet for the input timeout (with the likely cause and its fix), and cameras whose
        images do not pair. ``publisher_counts``: each topic's publishers of the type the node reads there, now;
        ``other_types``: per topic, the types of its publishers of another type."""
        self._check_pairing()
        expected = dict(zip(self.config.topics, self.config.topic_types))
        for quiet in self._watchdog.quiet_topics(publisher_counts, self._clock()):
            key = ("input", quiet.topic, quiet.publishers > 0)
            text = quiet_topic_warning(
                quiet,
                transports,
                self._last_image_bytes.get(quiet.topic),
                expected.get(quiet.topic, ""),
                other_types.get(quiet.topic, ()),
            )
            self._log.every("warning", key, text)

    # ----------------------------------------------------------------------------------------------- colour
    def add_image(self, camera: int, msg, stamp_ns: int, arrival_ns: int, compressed: bool) -> Assembled:
        """Decode, check and group one colour image of ``camera`` stamped ``stamp_ns`` (0: unstamped), which
        arrived at ``arrival_ns`` (the clock that stands in for a zero stamp)."""
        now_s = self._clock()
        self.images_received += 1
        self.camera_images[camera] += 1
        self.camera_last_image_s[camera] = now_s
        self._watchdog.image_arrived(self.config.topics[camera], now_s)
        self._last_image_bytes[self.config.topics[camera]] = len(msg.data)
        name = self.config.names[camera]
        frame = msg.header.frame_id
        looked_up = camera in self.config.looked_up_cameras
        if looked_up and (problem := unusable_frame_id(frame)):
            self._drop(camera, "frame_id", problem)
            named = f" ({frame.lstrip('/')!r}?)" if frame.lstrip("/") else ""
            self._log.every(
                "error",
                ("image", camera, "frame_id"),
                f"camera '{name}': its images' {problem}, while this node looks the camera's frame up in TF (robot "
                "frames, the rig, odometry); image dropped. Fix: set the camera driver's frame_id to the camera's "
                f"optical frame as the TF tree names it{named}",
            )
            return Assembled()
        if frame in self.config.own_frames and not looked_up:
            self._log.once(
                "warning",
                ("image", camera, "own_frame"),
                f"camera '{name}': its images' frame_id {frame!r} is {self.config.own_frames[frame]}, which this node "
                "publishes on /tf: if the robot publishes that frame too (its URDF, the driver's transforms), the "
                "frame has two parents and TF breaks. Fix: rename the node's frames (camera_names, world_frame, "
                "frame_prefix) or the driver's frame_id",
            )
        elif frame in self.config.own_frames:
            self._drop(camera, "own_frame", f"frame_id {frame!r} is the node's own")
            self._log.every(
                "error",
                ("image", camera, "own_frame"),
                f"camera '{name}': its images' frame_id {frame!r} is {self.config.own_frames[frame]}, which this node "
                "publishes, while it looks the camera's frame up in TF (robot frames, the rig, odometry): that frame "
                "would have two parents and the look-up would find the node's own estimate; image dropped. Fix: "
                "rename the node's frames (camera_names, world_frame, frame_prefix) or the driver's frame_id",
            )
            return Assembled()
        try:
            rgb = decode_image_message(msg, compressed, self.config.max_image_pixels)
            # Dropped here, not by the network's worker: a failed window, and a world reset by its size.
            output_size(*rgb.shape[:2], self.config.preprocess_mode, self.config.image_size)
        except ImageFormatError as err:
            encoding = msg.format if compressed else msg.encoding
            self._drop(camera, err.kind, f"image {err.kind.replace('_', ' ')} ({encoding})")
            self._log.every("error", ("image", camera, err.kind, encoding), f"camera '{name}': {err}; image dropped")
            return Assembled()
        if stamp_ns == 0 and arrival_ns == 0:
            self._drop(camera, "no_time", "unstamped, before the clock started")
            self._log.every(
                "error",
                ("image", camera, "no_time"),
                f"camera '{name}': an unstamped image (stamp 0) before the node's clock started (use_sim_time without "
                "a /clock yet): no time to give it; image dropped. Fix: stamp the images in the driver, or play the "
                "bag with --clock",
            )
            return Assembled()
        newest = self._stamps.newest(camera)
        check = self._stamps.check(camera, stamp_ns, arrival_ns)
        stamp_ns = check.stamp_ns
        if check.substituted:
            self.substituted[camera] += 1
            self._log.once(
                "warning",
                ("zero_stamps", camera),
                f"camera '{name}' stamps its images 0 (unset): using each image's arrival time instead, in the "
                "camera's clock where its stamped images show one (fix the driver: stamp images with their capture "
                "time)",
            )
        dropped = _stamp_drop(check, newest)
        if dropped is not None:
            self._drop(camera, check.verdict.value, f"{check.verdict.value} stamp")
            self._log.every("error", ("stamp", camera, check.verdict.value), f"camera '{name}': {dropped}")
            return Assembled()
        restart = check.verdict is StampVerdict.JUMP_BACK
        if restart:  # each one: a restart is an event (a short bag in a loop restarts often), not a repeated fault
            self._log.logger.error(
                f"camera '{name}': time went backwards ({newest / 1e9:.3f} s -> {stamp_ns / 1e9:.3f} s; a bag loop or "
                "a restarted driver?): window reset, reconstruction starts over"
            )
            self.reset()
            self._stamps.check(camera, stamp_ns, arrival_ns)
        self._check_clock_ahead(camera, stamp_ns, arrival_ns, check.substituted)
        self._camera_frames[camera] = frame
        self._camera_last_used_s[camera] = self._clock()
        synced = self._sync.add(camera, stamp_ns, rgb)
        if synced is None:
            return Assembled(restart=restart)
        self.last_synced_s = self._clock()
        if self._looked_up_frame_shared():
            return Assembled(restart=restart)
        frame_set = FrameSet(stamps_ns=synced.stamps_ns, images=synced.items, camera_frames=tuple(self._camera_frames))
        return Assembled(frame_set=frame_set, restart=restart)

    def _looked_up_frame_shared(self) -> bool:
        """Whether two cameras whose frames the node looks up in TF stamp one frame id: their frame set is dropped,
        with an error every 5 s (TF would give both one pose)."""
        owners: dict[str, list[int]] = {}
        for camera in sorted(self.config.looked_up_cameras):
            owners.setdefault(self._camera_frames[camera], []).append(camera)
        shared = next((frame for frame, cameras in owners.items() if len(cameras) > 1), None)
        if shared is None:
            return False
        names = [self.config.names[camera] for camera in owners[shared]]
        for camera in owners[shared]:
            self._drop(camera, "shared_frame_id", f"frame_id {shared!r} shared with another camera")
        self._log.every(
            "error",
            ("frame_id", "shared"),
            f"cameras {', '.join(repr(name) for name in names)} all stamp their images {shared!r}, while this node "
            "looks each camera's frame up in TF (the rig from /tf_static, the odometry scale): TF would give them one "
            "pose; frame set dropped. Fix: give each camera's driver its own optical frame_id",
        )
        return True

    def _check_clock_ahead(self, camera: int, stamp_ns: int, arrival_ns: int, substituted: bool) -> None:
        """Note and warn where ``camera``'s image is stamped further ahead of its arrival than the tolerance: an
        image cannot arrive before it is taken, so the camera's clock runs ahead of the node's (arrival 0: the
        node's clock has not started, under use_sim_time before the first /clock)."""
        ahead_s = (stamp_ns - arrival_ns) / 1e9
        if substituted or not arrival_ns or ahead_s <= self.config.clock_ahead_tolerance_s:
            self._clock_ahead_s[camera] = None
            return
        self._clock_ahead_s[camera] = ahead_s
        self._log.every(
            "warning",
            ("clock_ahead", camera),
            f"camera '{self.config.names[camera]}': its images are stamped {ahead_s:.3f} s ahead of this node's "
            "clock when they arrive, and no image arrives before it is taken: the camera's clock runs ahead of this "
            "computer's. Every output carries its image's stamp, in this computer's future, so tf2 listeners and "
            "RViz that look them up at their stamps wait for or refuse them. Fix: synchronise the computers' clocks "
            "(chrony, PTP), or under use_sim_time play the bag with --clock",
        )

    def _drop(self, camera: int, kind: str, label: str) -> None:
        """Count one image of ``camera`` dropped for ``kind``; ``label`` says why in /diagnostics."""
        self.dropped[(camera, kind)] += 1
        self._camera_dropped[camera] += 1
        self._last_drop[camera] = label

    def _check_pairing(self) -> None:
        """Warn when every camera sends images but they never form a frame set: a camera whose every image is
        dropped (its errors say why), else stamps further apart than the slop (unsynchronised clocks, a camera far
        behind). Cameras that stopped sending are the quiet-topic warning's case, not this one."""
        names = self.config.names
        timeout_s = self.config.input_timeout_s
        now_s = self._clock()
        unpaired_s = now_s - self.last_synced_s
        if len(names) < 2 or unpaired_s < timeout_s:
            return
        if any(last is None or now_s - last >= timeout_s for last in self.camera_last_image_s):
            return  # a camera went quiet: its newest stamp says nothing about the pairing
        # A camera whose images all fail the checks offers no stamp to pair; its newest accepted one only ages.
        dropping = [
            camera for camera, used in enumerate(self._camera_last_used_s) if used is None or now_s - used >= timeout_s
        ]
        if dropping:
            causes = "; ".join(f"'{names[c]}': {self._last_drop[c] or 'no image accepted'}" for c in dropping)
            self._log.every(
                "warning",
                ("pairing", "dropped"),
                f"the cameras' images have not formed a frame set for {unpaired_s:.1f} s: every image of "
                f"{', '.join(repr(names[c]) for c in dropping)} is dropped ({causes}; see the errors above)",
            )
            return
        newest = [self._stamps.newest(camera) for camera in range(len(names))]
        reference = newest[0]
        offsets = ", ".join(f"'{name}' {(stamp - reference) / 1e6:+.1f} ms" for name, stamp in zip(names, newest))
        self._log.every(
            "warning",
            ("pairing",),
            f"the cameras' images have not formed a frame set for {unpaired_s:.1f} s: their newest stamps, relative "
            f"to '{names[0]}': {offsets}; they must lie less than slop_s ({self.config.slop_s * 1e3:g} ms) apart. "
            "Fix: synchronise the cameras' clocks or triggers, or raise slop_s",
        )

    # ------------------------------------------------------------------------------------------------ depth
    def add_depth(self, camera: int, msg, stamp_ns: int, arrival_ns: int) -> None:
        """Convert one depth image of ``camera`` stamped ``stamp_ns`` (0: unset, then the camera's clock at
        ``arrival_ns`` stands in, as for its colour images) to metres and queue it for the colour frame set of its
        stamp."""
        topic = self.config.topics[len(self.config.names) + camera]
        self._watchdog.image_arrived(topic, self._clock())
        self._last_image_bytes[topic] = len(msg.data)
        name = self.config.names[camera]
        if stamp_ns == 0:
            stamp_ns = self._stamps.clock_at(camera, arrival_ns)
            self._log.once(
                "warning",
                ("zero_stamps", "depth", camera),
                f"depth of camera '{name}' is stamped 0: using the camera's clock at each depth image's arrival "
                "instead, as for the colour images (fix the driver: stamp images with their capture time)",
            )
        colour_frame, depth_frame = self._camera_frames[camera], msg.header.frame_id
        if colour_frame and depth_frame and depth_frame != colour_frame:
            self._log.once(
                "warning",
                ("depth_frame", camera, depth_frame),
                f"depth of camera '{name}' is in frame '{depth_frame}', its colour images in '{colour_frame}': the "
                "depth must be registered to the colour image (pixel for pixel, e.g. a RealSense's "
                "aligned_depth_to_color/image_raw), else the metric scale is off by the two lenses' difference",
            )
        try:
            depth_m = depth_to_metres(msg.data, msg.height, msg.width, msg.step, msg.encoding, bool(msg.is_bigendian))
        except DepthFormatError as err:
            self._depth_dropped[camera] = f"depth of camera '{name}': {err}"
            self._log.once(
                "warning", ("depth", camera, err.kind), f"{self._depth_dropped[camera]}; depth image dropped"
            )
            return
        if not np.isfinite(depth_m).any():
            self._depth_dropped[camera] = (
                f"depth of camera '{name}': the image has no valid reading (every pixel 0, NaN or infinite: is the "
                "sensor covered, blinded, or is everything out of its range?)"
            )
            self._log.once(
                "warning", ("depth", camera, "no_reading"), f"{self._depth_dropped[camera]}; depth image dropped"
            )
            return
        self._log.clear(("depth", camera))  # a usable image: report the next problem anew
        self._depth_dropped.pop(camera, None)
        self._depth_queues[camera].add(stamp_ns, depth_m)

    def depth_dropped(self) -> str:
        """Why each depth camera's newest image was dropped, for /diagnostics ("" when every newest one was used)."""
        return " | ".join(self._depth_dropped[camera] for camera in sorted(self._depth_dropped))  # texts hold ";"

    def keep_depth(self, frame_set: FrameSet) -> None:
        """``frame_set`` is a keyframe: each depth camera holds its depth image (queued, or arriving later) until
        the network has run on it (`NearestStampQueue.keep`)."""
        for camera, queue in enumerate(self._depth_queues):
            queue.keep(frame_set.stamps_ns[camera])

    def depth_of(self, camera: int, stamp_ns: int) -> Optional[np.ndarray]:
        """The depth image (metres) matched to a colour image of ``camera``: the session's look-up."""
        return self._depth_queues[camera].nearest(stamp_ns)

    def depth_lookup(self):
        """The session's depth look-up, or None without depth cameras."""
        return self.depth_of if self._depth_queues else None


def unusable_frame_id(frame: str) -> str:
    """Why tf2 cannot look up ``frame`` (an image's frame_id), or "" where it can: empty, or starting with '/' (a
    ROS 1 habit; tf2 refuses such ids)."""
    if not frame:
        return "frame_id is empty"
    if frame.startswith("/"):
        return f"frame_id {frame!r} starts with '/', which tf2 frame ids never do"
    return ""


def _stamp_drop(check: StampCheck, newest: Optional[int]) -> Optional[str]:
    """Why an image of ``check``'s verdict is dropped (`vggt_ros.live.stamps`), or None when it is used."""
    verdict, stamp_ns = check.verdict, check.stamp_ns
    if verdict is StampVerdict.DUPLICATE:
        return f"stamp {stamp_ns / 1e9:.3f} s repeated (the same capture sent twice?): image dropped"
    if verdict is StampVerdict.LATE:
        return (
            f"image stamped {(newest - stamp_ns) / 1e6:.1f} ms before the newest arrived out of order: image dropped, "
            "the reconstruction goes on"
        )
    if verdict is StampVerdict.STALE:
        return (
            f"image stamped {(newest - stamp_ns) / 1e9:.3f} s before the newest: image dropped; if the next one is "
            "from that earlier time too, time went back and the reconstruction starts over"
        )
    if verdict is StampVerdict.AHEAD:
        return (
            f"image stamped {(stamp_ns - newest) / 1e9:.3f} s after the newest, its stamp "
            f"{check.lead_jump_ns / 1e9:.3f} s further ahead of its arrival time than the camera's images before it: "
            "image dropped (a clock glitch?); if the next one follows it, the camera's clock jumped, and the "
            "reconstruction goes on from there"
        )
    return None


def decode_image_message(msg, compressed: bool, max_image_pixels: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of a sensor_msgs/Image or CompressedImage (rclpy's or rosbags'); ImageFormatError if it
    has none, or if it is over ``max_image_pixels`` (kind "too_large", checked from the message or the JPEG / PNG
    header before anything is decoded: a 2 MB JPEG can hold 12000 x 12000 pixels)."""
    hw = message_hw(msg, compressed)
    if hw is not None:
        check_image_pixels(*hw, max_image_pixels, "compressed image" if compressed else "image")
    if compressed:
        return decode_compressed(msg.data, msg.format)
    return image_to_rgb(msg.data, msg.height, msg.width, msg.step, msg.encoding)
