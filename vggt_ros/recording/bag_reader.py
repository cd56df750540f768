# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Camera images out of a rosbag2 recording (mcap or sqlite3), read with rosbags: no ROS install needed.

`BagImageSource` streams ``(camera_index, stamp_ns, rgb)`` for K image topics in the order the recorder received
them, the order a live node would have seen them. Grouping the K cameras into frame sets is not done here: the
caller feeds the stream to `vggt_ros.live.sync.synchronize`, the approximate-time core the node uses, so offline and
live pairing cannot differ.

Design decisions:

* Messages are decoded with the definitions stored in the bag (rosbags' `AnyReader`), so a bag from any ROS 2
  distribution reads without that distribution's packages; bags without stored definitions (sqlite3 before
  Iron) fall back to rosbags' ROS 2 Kilted types. The path may be the bag folder (with metadata.yaml) or a
  single .mcap or .db3 file.
* Topics follow image_transport: sensor_msgs/Image or sensor_msgs/CompressedImage, and a requested
  ``/cam/image_raw`` that the bag holds only as ``/cam/image_raw/compressed`` is read from there (logged once).
  Names without a leading slash are taken from the root namespace, as ``ros2 bag`` shows them.
* The time range (``start_s``, ``stop_s``) is in seconds after the bag's first message, by log time (when the
  recorder received each message), the clock of ``ros2 bag info`` and ``ros2 bag play --start-offset``, and the
  one the storage can seek by; header stamps may come from a camera clock unrelated to the recording. Each
  yielded image carries its header stamp, which is what the synchroniser pairs on, as live.
* A message that cannot be decoded (truncated or corrupt file, an encoding the node does not read, data of the
  wrong length, bytes that do not deserialise) is skipped, never fatal: it is logged once per topic and kind of
  problem, and counted in `skipped`. An unreadable bag, or a failure of the storage itself, raises `BagError`.
  Messages the bag's index counts that the storage never gave (a record damaged inside a chunk, which the storage
  reader passes over) are counted too, as "lost", once the iteration reaches the end.
* Raw images come out through `vggt_ros.image_encoding.image_to_rgb` (views on the message data where the
  encoding allows, no pixel copied; YUV 4:2:2 and Bayer converted), compressed ones through
  `vggt_ros.compressed_image.decode_compressed`; both are read-only or fresh arrays the caller may keep.
* The reader is opened for the checks in the constructor and again by each iteration, so the source holds no
  open file between uses and can be iterated more than once.
* Stamps follow the node's rules (`vggt_ros.live.stamps.CameraStamps`): a zero (unset) header stamp takes the
  message's log time in the camera's clock (plus the camera's lead, stamp - log time, which `clock_leads` finds
  before the first image from the camera's first stamped message; counted in `substituted_stamps`, logged once
  per topic), and a repeated stamp is the same capture again: skipped and counted (kind "duplicate_stamp").
* An image over ``max_image_pixels`` (`vggt_ros.image_limits`) is skipped and counted (kind "too_large") from its
  header fields or file header, before anything is decoded.
* Depth topics (``depth_topics``, one per camera, registered to its colour image) are not streamed: `depth_lookup`
  gives the depth image stamped nearest to a colour image within ``depth_slop_s``, as the node's depth pairing does,
  read when the session asks for it (one pass indexes the depth topics' stamps first).
* An mcap file cut off mid-recording (no summary, no end magic) is read up to its last complete record
  (`vggt_ros.recording.truncated_mcap`), with a warning; `truncated` says what was lost. A bag folder without
  metadata.yaml (the recorder never closed it) is read from its one storage file.
"""

from __future__ import annotations

import bisect
import functools
import logging
import math
from collections import OrderedDict
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import numpy as np
import yaml
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.interfaces import Connection
from rosbags.rosbag2 import ReaderError
from rosbags.typesys import Stores, get_typestore

from vggt_ros.image_encoding import ImageFormatError
from vggt_ros.image_limits import (
    COMPRESSED_IMAGE_TYPE,
    DEFAULT_MAX_IMAGE_PIXELS,
    IMAGE_TYPE,
    check_max_image_pixels,
    message_hw,
)
from vggt_ros.live.input import decode_image_message
from vggt_ros.live.stamps import NANOSECONDS, CameraStamps, StampVerdict, ns_from_stamp
from vggt_ros.metric.sensor_depth import SUPPORTED_DEPTH_ENCODINGS, DepthFormatError, depth_to_metres
from vggt_ros.recording.truncated_mcap import open_reader, truncations

IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)
# image_transport's compressed transport publishes <base topic>/compressed.
COMPRESSED_SUFFIX = "/compressed"
# The kind under which a message whose bytes do not deserialise is counted (decoding errors use their own).
UNREADABLE_MESSAGE = "message"
DUPLICATE_STAMP = "duplicate_stamp"
# The kind under which messages the bag's index counts but its storage never gave are counted (`_count_lost`).
LOST_MESSAGE = "lost"
# The kind under which a depth image without a valid reading (all 0 or NaN) is counted.
NO_DEPTH_READING = "no_reading"
DEPTH_RESOLUTION = "resolution"  # a depth image of another size than its colour image
# Colour image sizes kept per camera for the depth look-ups: more than a window's frames.
COLOUR_SIZES_KEPT = 256
# image_transport's compressedDepth transport, which is not read (a PNG with its own depth quantisation header).
COMPRESSED_DEPTH_SUFFIX = "/compressedDepth"
STORAGE_SUFFIXES = (".mcap", ".db3")
# A bag given as one file: a rosbag2 storage file, or a ROS 1 bag (rosbags reads both).
BAG_FILE_SUFFIXES = (*STORAGE_SUFFIXES, ".bag")
# What may be given as a bag, as the errors say it.
BAG_FORMS = "a rosbag2 folder (with metadata.yaml), its .mcap or .db3 file, or a ROS 1 .bag"

log = logging.getLogger(__name__)


class BagError(ValueError):
    """A recording that cannot be read, or topics it does not hold; the message says what to change."""


@dataclass(frozen=True)
class BagImageMessage:
    """One deserialised image message: its camera (index into the read topics), log time and header stamp (ns),
    the message (sensor_msgs/Image or CompressedImage fields) and whether it is compressed."""

    camera: int
    log_ns: int
    stamp_ns: int
    message: object
    compressed: bool


@dataclass(frozen=True)
class BagImageTopic:
    """One camera: the topic asked for, the topic read (its ``/compressed`` transport, possibly) and its type."""

    requested: str
    topic: str
    msgtype: str


class BagImageSource:
    """Images of ``topics`` (one per camera, camera index = position) in a rosbag2 recording.

    Args:
        path: the bag (`BAG_FORMS`).
        topics: image topics, one per camera (see the module docstring for /compressed and relative names).
        start_s, stop_s: only messages received in [start_s, stop_s) seconds after the bag's first message; None:
            from the start, to the end.
        max_image_pixels: larger images (width x height) are skipped before decoding (`vggt_ros.image_limits`).
        depth_topics: depth image topics (sensor_msgs/Image, 16UC1 / mono16 millimetres or 32FC1 metres, REP 118),
            one per camera, each registered to its colour image, for `depth_lookup`; empty: none.
        depth_slop_s: a colour image's depth is the depth image stamped nearest to it within this many seconds.
    Raises:
        FileNotFoundError: ``path`` does not exist.
        BagError: the bag cannot be read, a topic is not in it (the message lists its image topics) or is not an
            image topic.
        ValueError: no topics, a repeated topic, or a time range that is negative, not finite or empty.
    """

    def __init__(
        self,
        path: Union[str, Path],
        topics: Sequence[str],
        start_s: Optional[float] = None,
        stop_s: Optional[float] = None,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
        depth_topics: Sequence[str] = (),
        depth_slop_s: float = 0.02,
    ) -> None:
        check_max_image_pixels(max_image_pixels)
        self.max_image_pixels = max_image_pixels
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"bag not found: '{self.path}'; pass {BAG_FORMS}")
        _refuse_message_compressed_file(self.path)
        self._storage_paths = _storage_paths(self.path)  # once: it warns about a folder without metadata.yaml
        self._unmerged = _unmerged_wal(self._storage_paths)
        for wal in self._unmerged:
            log.warning("%s", _wal_note(wal))
        if isinstance(topics, str) or not topics:
            raise ValueError(f"topics must be a non-empty list of image topics, one per camera, got {topics!r}")
        for name, value in (("start_s", start_s), ("stop_s", stop_s)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0
            ):
                raise ValueError(f"{name} must be a finite number of seconds >= 0 after the bag's start, got {value!r}")
        if stop_s is not None and stop_s <= (start_s or 0):  # start_s None: the bag's start
            raise ValueError(f"stop_s ({stop_s}) must be later than start_s ({start_s or 0}): the time range is empty")

        with self._opened() as reader:
            self.truncated: list[str] = truncations(reader)
            if self.truncated and not reader.connections:
                raise BagError(
                    f"cannot read bag '{self.path}': it is cut off (it ends without its summary: the recorder stopped "
                    "before closing it) and no complete chunk survived, so it holds no message to read "
                    f"({'; '.join(self.truncated)})"
                )
            self.topics: tuple[BagImageTopic, ...] = tuple(_resolve(reader, topic, self.path) for topic in topics)
            read = [camera.topic for camera in self.topics]
            if len(set(read)) != len(read):
                raise ValueError(f"topics must name distinct cameras; {list(topics)} read the topics {read}")
            if depth_topics and len(depth_topics) != len(self.topics):
                raise ValueError(
                    f"depth topics must give one per camera ({len(self.topics)}: {list(topics)}), got "
                    f"{list(depth_topics)}"
                )
            self.depth_topics: tuple[str, ...] = tuple(
                _resolve_depth(reader, topic, self.path, read) for topic in depth_topics
            )
            if len(set(self.depth_topics)) != len(self.depth_topics):
                raise ValueError(f"depth topics must name distinct topics, one per camera; got {list(depth_topics)}")
            self.bag_start_ns: int = reader.start_time
            self.bag_duration_s: float = max(reader.end_time - reader.start_time, 0) / NANOSECONDS
            self._start_ns = None if start_s is None else self.bag_start_ns + round(start_s * NANOSECONDS)
            self._stop_ns = None if stop_s is None else self.bag_start_ns + round(stop_s * NANOSECONDS)
            # Messages per read topic in the time range.
            self.topic_messages: dict[str, int] = self._count(reader)
            self.message_count: int = sum(self.topic_messages.values())
        for note in self.truncated:
            log.warning("%s", note)
        self._skipped: dict[str, dict[str, int]] = {}
        self._substituted: dict[str, int] = {}
        # Why images of the latest iteration formed no frame set (`bag_frame_sets` says; None: every one did).
        self.unpaired_reason: Optional[str] = None
        # Per read topic, its images of a usable size with distinct stamps (`image_sizes` counts them); until then
        # its messages.
        self.distinct_images: dict[str, int] = dict(self.topic_messages)
        if not (math.isfinite(depth_slop_s) and depth_slop_s >= 0):
            raise ValueError(f"depth_slop_s must be a finite number of seconds >= 0, got {depth_slop_s!r}")
        self._depth_slop_ns = round(depth_slop_s * NANOSECONDS)
        # (camera, depth stamp) of depth images found unusable: skipped and counted once, not at each look-up (the
        # session asks again for a frame without depth in every window that holds it).
        self._unusable_depth: set[tuple[int, int]] = set()
        self._wrong_size_depth: set[tuple[int, int]] = set()  # of another size than their colour images: counted
        self._depth_reader: Optional[AnyReader] = None  # kept open while the messages are read
        # Per camera, the sizes of its newest colour images by stamp, which a depth image must have (bounded: the
        # look-ups ask for the frames of the window just formed).
        self._colour_hw: list[OrderedDict[int, tuple[int, int]]] = [OrderedDict() for _ in self.topics]

    @property
    def skipped(self) -> dict[str, dict[str, int]]:
        """Messages skipped by the latest iteration: topic -> kind of problem -> count (JSON-friendly)."""
        return {topic: dict(kinds) for topic, kinds in self._skipped.items()}

    @property
    def substituted_stamps(self) -> dict[str, int]:
        """Messages of the latest iteration whose zero header stamp was replaced by the log time (in the camera's
        clock), by topic."""
        return dict(self._substituted)

    def image_sizes(self) -> set[tuple[int, int]]:
        """The (H, W) of the images in the time range, read from the message fields or file headers: one pass over
        the messages, for the model input size before any work. Messages that cannot be read, empty ones (0 pixels,
        as some drivers publish at start-up) and ones over ``max_image_pixels`` are left out (the iteration skips and
        counts them). A size counts once a message of it decodes (one message per size is decoded here): one whose
        pixels do not (a JPEG cut short, raw data a row short) must not pad every usable frame to its size. The same
        pass counts each read topic's distinct images (`distinct_images`: a repeated header stamp is one image)."""
        sizes: set[tuple[int, int]] = set()
        stamps: dict[str, set[int]] = {camera.topic: set() for camera in self.topics}
        with self._opened() as reader:
            messages = reader.messages(connections=self._connections(reader), start=self._start_ns, stop=self._stop_ns)
            try:
                for connection, log_ns, raw in self._stored(messages):
                    try:
                        message = reader.deserialize(raw, connection.msgtype)
                    except AnyReaderError:
                        continue
                    compressed = connection.msgtype == COMPRESSED_IMAGE_TYPE
                    hw = message_hw(message, compressed)
                    if hw is not None and min(hw) > 0 and hw[0] * hw[1] <= self.max_image_pixels:
                        if hw not in sizes and not self._decodes(message, compressed):
                            continue
                        sizes.add(hw)
                        # An unstamped image takes its log time.
                        stamps[connection.topic].add(ns_from_stamp(message.header.stamp) or log_ns)
            except BagError:
                pass  # a damaged storage: the sizes up to there; the iteration stops at the same place and says so
        self.distinct_images = {topic: len(seen) for topic, seen in stamps.items()}
        return sizes

    def _decodes(self, message, compressed: bool) -> bool:
        try:
            decode_image_message(message, compressed, self.max_image_pixels)
        except ValueError:  # an ImageFormatError: the iteration skips and counts it
            return False
        return True

    @functools.cached_property
    def clock_leads(self) -> tuple[int, ...]:
        """Per camera, its clock's lead over the log time (header stamp - log time, ns) at its first message with a
        stamp set; 0 for a camera that sets none (its unset stamps take the log time). One pass over the messages in
        the time range, made once for all iterations (the bag does not change), which ends at every camera's first
        stamped message (a camera that never stamps is read to the end; a damaged storage ends it, the iteration
        then says so)."""
        leads: dict[str, int] = {}
        with self._opened() as reader:
            messages = reader.messages(connections=self._connections(reader), start=self._start_ns, stop=self._stop_ns)
            try:
                for connection, log_ns, raw in self._stored(messages):
                    if connection.topic in leads:
                        continue
                    try:
                        stamp_ns = ns_from_stamp(reader.deserialize(raw, connection.msgtype).header.stamp)
                    except AnyReaderError:
                        continue
                    if stamp_ns:
                        leads[connection.topic] = stamp_ns - log_ns
                        if len(leads) == len(self.topics):
                            break
            except BagError:
                pass
        return tuple(leads.get(camera.topic, 0) for camera in self.topics)

    def messages(self) -> Iterator[BagImageMessage]:
        """Each readable message of the read topics in log-time order, deserialised (not decoded): the input of
        `vggt_ros.recording.inputs.bag_frame_sets`, which runs them through the node's input assembly. Unreadable
        messages are skipped and counted; the counts restart with each iteration."""
        self._skipped, self._substituted, self._unusable_depth, self._wrong_size_depth = {}, {}, set(), set()
        self.unpaired_reason = None
        camera_of_topic = {camera.topic: index for index, camera in enumerate(self.topics)}
        stored = {camera.topic: 0 for camera in self.topics}  # messages the storage gave, per read topic
        with self._opened() as reader, self._depth_reader_kept():
            messages = reader.messages(connections=self._connections(reader), start=self._start_ns, stop=self._stop_ns)
            for connection, log_ns, raw in self._stored(messages):
                stored[connection.topic] += 1
                try:
                    message = reader.deserialize(raw, connection.msgtype)
                except AnyReaderError as err:
                    self.skip(connection.topic, UNREADABLE_MESSAGE, f"{len(raw)} bytes do not deserialise ({err})")
                    continue
                yield BagImageMessage(
                    camera=camera_of_topic[connection.topic],
                    log_ns=log_ns,
                    stamp_ns=ns_from_stamp(message.header.stamp),
                    message=message,
                    compressed=connection.msgtype == COMPRESSED_IMAGE_TYPE,
                )
        self._count_lost(stored)

    def _count_lost(self, stored: dict[str, int]) -> None:
        """Count in `skipped` (kind "lost", with a warning) the messages of each read topic that the bag's index or
        metadata counts (`topic_messages`) but its storage never gave (``stored``, per topic): a record damaged inside
        an mcap chunk is passed over by the storage reader without a word. A cut-off file's loss is its truncation's
        (`truncated`); in a time range the counts come from the storage itself, which shows no loss."""
        if self.truncated:
            return
        cause = (
            "the write-ahead log beside the file: " + "; ".join(_wal_note(wal) for wal in self._unmerged)
            if self._unmerged
            else "damage inside the file (records the storage reader could not parse)"
        )
        for topic, counted in self.topic_messages.items():
            lost = counted - stored[topic]
            if lost > 0:
                log.warning(
                    "%s: the bag's index counts %d messages, but its storage gave %d: %d lost to %s; counted in "
                    "skipped_inputs as '%s'",
                    topic,
                    counted,
                    stored[topic],
                    lost,
                    cause,
                    LOST_MESSAGE,
                )
                self.count_dropped(topic, LOST_MESSAGE, lost)

    def __iter__(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(camera_index, header stamp_ns, (H, W, 3) uint8 RGB)`` of every image in log-time order (the log time in
        the camera's clock for a zero stamp), with the node's stamp rules (`CameraStamps`) and decoding
        (`decode_image_message`); undecodable, over-large and repeated ones skipped and counted."""
        # Tolerance 0: a stamp before the camera's newest is stale, or a jump back (the session starts over); both
        # pass here, where only repeats are skipped.
        stamps = CameraStamps(len(self.topics), reorder_tolerance_s=0.0, leads_ns=self.clock_leads)
        for item in self.messages():
            topic = self.topics[item.camera].topic
            check = stamps.check(item.camera, item.stamp_ns, item.log_ns)
            if check.verdict is StampVerdict.DUPLICATE:
                self.skip(topic, DUPLICATE_STAMP, f"header stamp {check.stamp_ns} ns repeats")
                continue
            if check.substituted:
                self.count_substituted(topic)
            try:
                rgb = decode_image_message(item.message, item.compressed, self.max_image_pixels)
            except ImageFormatError as err:
                self.skip(topic, err.kind, str(err))
                continue
            self.note_colour_size(item.camera, check.stamp_ns, rgb.shape[:2])
            yield item.camera, check.stamp_ns, rgb

    def note_colour_size(self, camera: int, stamp_ns: int, image_hw: tuple[int, int]) -> None:
        """``camera``'s colour image of ``stamp_ns`` (its stamp in the camera's clock) is ``image_hw``: its depth
        image must be as large (`depth_lookup`). The iteration notes each image it gives; a consumer of `messages`
        that decodes them itself notes them before it asks for their depth."""
        sizes = self._colour_hw[camera]
        sizes[stamp_ns] = tuple(image_hw)
        if len(sizes) > COLOUR_SIZES_KEPT:
            sizes.popitem(last=False)

    @functools.cached_property
    def _depth_stamps(self) -> tuple[tuple[list[int], list[int]], ...]:
        """Per camera, its depth images' header stamps in increasing order and their log times: one pass over the
        depth topics in the time range widened by the slop (a colour image's depth may be logged just outside it),
        made at the first look-up. A zero (unset) stamp takes the log time in the camera's clock (`clock_leads`), as
        its colour images' do; a repeated stamp keeps its first image. A depth topic without a message there is
        named: its camera's frames have no sensor depth."""
        found: dict[str, dict[int, int]] = {topic: {} for topic in self.depth_topics}
        camera_of_topic = {topic: camera for camera, topic in enumerate(self.depth_topics)}
        clocks = CameraStamps(len(self.topics), reorder_tolerance_s=0.0, leads_ns=self.clock_leads)
        start = None if self._start_ns is None else self._start_ns - self._depth_slop_ns
        stop = None if self._stop_ns is None else self._stop_ns + self._depth_slop_ns
        with self._opened() as reader:
            connections = _topic_connections(reader, self.depth_topics)
            try:
                for connection, log_ns, raw in self._stored(
                    reader.messages(connections=connections, start=start, stop=stop)
                ):
                    try:
                        stamp_ns = ns_from_stamp(reader.deserialize(raw, connection.msgtype).header.stamp)
                    except AnyReaderError as err:
                        self.skip(connection.topic, UNREADABLE_MESSAGE, f"{len(raw)} bytes do not deserialise ({err})")
                        continue
                    camera = camera_of_topic[connection.topic]
                    found[connection.topic].setdefault(stamp_ns or clocks.clock_at(camera, log_ns), log_ns)
            except BagError as err:  # the depth up to the damage: the colour images' iteration says so
                log.warning("depth topics: %s; the depth images before that point are used", err)
        stamps = []
        for camera, topic in enumerate(self.depth_topics):
            if not found[topic]:
                log.warning(
                    "depth topic %s has no readable message in the time range: camera %d's images have no sensor "
                    "depth, and the scale comes from the other cameras' depth, if any",
                    topic,
                    camera,
                )
            ordered = sorted(found[topic].items())
            stamps.append(([stamp for stamp, _ in ordered], [log_ns for _, log_ns in ordered]))
        return tuple(stamps)

    def depth_lookup(self, camera: int, stamp_ns: int) -> Optional[np.ndarray]:
        """The session's `DepthLookup`: ``(H, W)`` metres of the depth image stamped nearest to ``camera``'s colour
        image at ``stamp_ns`` within ``depth_slop_s`` (NaN where the sensor measured nothing), None if there is none.
        One that cannot be used (an encoding that is not depth, the wrong length, no valid reading) is skipped and
        counted as a colour image is: that colour image has no sensor depth, and the scale comes from the others.
        One of another size than its colour image (`note_colour_size`) is counted once and handed on, so that the
        session says why its window has no scale."""
        if not self.depth_topics:
            return None
        stamps, log_times = self._depth_stamps[camera]
        index = bisect.bisect_left(stamps, stamp_ns)
        near = [k for k in (index - 1, index) if 0 <= k < len(stamps)]
        nearest = min(near, key=lambda k: abs(stamps[k] - stamp_ns), default=None)
        if nearest is None or abs(stamps[nearest] - stamp_ns) > self._depth_slop_ns:
            return None
        key, topic = (camera, stamps[nearest]), self.depth_topics[camera]
        if key in self._unusable_depth:
            return None
        message = self._depth_message(topic, log_times[nearest], stamps[nearest])
        depth_m = None
        if message is not None:
            try:
                depth_m = depth_to_metres(
                    message.data,
                    message.height,
                    message.width,
                    message.step,
                    message.encoding,
                    bool(message.is_bigendian),
                )
            except DepthFormatError as err:
                self.skip(topic, err.kind, str(err))
            else:
                colour_hw = self._colour_hw[camera].get(stamp_ns)
                if colour_hw is not None and depth_m.shape != colour_hw:
                    # Counted once, and handed on all the same: the session then says why the window has no scale.
                    if key not in self._wrong_size_depth:
                        self._wrong_size_depth.add(key)
                        self.skip(
                            topic,
                            DEPTH_RESOLUTION,
                            f"the depth image is {depth_m.shape[1]}x{depth_m.shape[0]} (WxH) but its colour image is "
                            f"{colour_hw[1]}x{colour_hw[0]}; record the depth registered to the colour image (a "
                            "RealSense's aligned_depth_to_color/image_raw)",
                        )
                elif not np.isfinite(depth_m).any():
                    self.skip(topic, NO_DEPTH_READING, "the depth image has no valid reading (every pixel 0 or NaN)")
                    depth_m = None
        if depth_m is None:
            self._unusable_depth.add(key)
        return depth_m

    @contextmanager
    def _depth_reader_kept(self) -> Iterator[None]:
        """While the messages are read, one reader serves every depth look-up (opening the bag for each cost
        14 ms a frame); a second one, since the messages' reader is suspended in its own pass."""
        if not self.depth_topics:
            yield
            return
        with self._opened() as reader:
            self._depth_reader = reader
            try:
                yield
            finally:
                self._depth_reader = None

    def _depth_message(self, topic: str, log_ns: int, stamp_ns: int):
        """The deserialised depth message of ``topic`` logged at ``log_ns`` whose stamp (in the camera's clock) is
        ``stamp_ns``; None (counted) where it cannot be read."""
        kept = self._depth_reader
        with self._opened() if kept is None else nullcontext(kept) as reader:
            connections = _topic_connections(reader, [topic])
            try:
                for connection, _, raw in self._stored(
                    reader.messages(connections=connections, start=log_ns, stop=log_ns + 1)
                ):
                    message = reader.deserialize(raw, connection.msgtype)
                    if ns_from_stamp(message.header.stamp) in (stamp_ns, 0):
                        return message
            except (BagError, AnyReaderError) as err:
                self.skip(topic, UNREADABLE_MESSAGE, str(err))
        return None

    def count_dropped(self, topic: str, kind: str, count: int) -> None:
        """Add ``count`` messages of ``topic`` that a consumer dropped (bad image, repeated stamp) to `skipped`."""
        kinds = self._skipped.setdefault(topic, {})
        kinds[kind] = kinds.get(kind, 0) + count

    def count_substituted(self, topic: str, count: int = 1) -> None:
        """``count`` messages of ``topic`` whose zero header stamp took the log time (`substituted_stamps`)."""
        if topic not in self._substituted:
            log.warning(
                "%s has zero (unset) header stamps: the recording's log time stands in, in the camera's clock (as the "
                "node does)",
                topic,
            )
        self._substituted[topic] = self._substituted.get(topic, 0) + count

    def skip(self, topic: str, kind: str, reason: str) -> None:
        """Count one message of ``topic`` skipped for ``kind`` of problem in `skipped`; the first of each kind is logged
        with ``reason``."""
        kinds = self._skipped.setdefault(topic, {})
        if kind not in kinds:
            log.warning(
                "skipping a message on %s that cannot be read or used (%s); further ones of this kind are counted, "
                "not logged: %s",
                topic,
                kind,
                reason,
            )
        kinds[kind] = kinds.get(kind, 0) + 1

    @contextmanager
    def _opened(self) -> Iterator[AnyReader]:
        try:
            reader = open_reader(self._storage_paths, get_typestore(Stores.ROS2_KILTED))
            reader.open()
        except (AnyReaderError, ReaderError, FileNotFoundError) as err:
            # FileNotFoundError: a folder without metadata.yaml (the path itself was checked to exist).
            raise BagError(f"cannot read bag '{self.path}': {err}; {_fix_for_unreadable(self.path, err)}") from None
        try:
            yield reader
        finally:
            reader.close()

    def _connections(self, reader: AnyReader) -> list[Connection]:
        return _topic_connections(reader, [camera.topic for camera in self.topics])

    def _count(self, reader: AnyReader) -> dict[str, int]:
        """Messages per topic in the time range: from the bag's index when the range is the whole bag, else by one
        pass over the raw messages in the range (no deserialising, no decoding)."""
        connections = self._connections(reader)
        counts = {camera.topic: 0 for camera in self.topics}
        if self._start_ns is None and self._stop_ns is None:
            for connection in connections:
                counts[connection.topic] += connection.msgcount
            return counts
        for connection, _, _ in self._stored(
            reader.messages(connections=connections, start=self._start_ns, stop=self._stop_ns)
        ):
            counts[connection.topic] += 1
        return counts

    def _stored(self, records: Iterator) -> Iterator:
        """The records of an `AnyReader.messages` iteration, which a damaged storage (a chunk, a page, a record)
        ends with `BagError`. Only the storage runs in ``next()``, and each part of it fails on damage in its own way:
        rosbags' ReaderError, the decompressors' (zstd's, lz4's RuntimeError), sqlite's, and the record parsers'
        (struct.error, EOFError, OverflowError; AssertionError, KeyError and UnicodeDecodeError from a ROS 1 bag's).
        Running out of memory is no damage."""
        iterator = iter(records)
        while True:
            try:
                record = next(iterator)
            except StopIteration:
                return
            except MemoryError:
                raise
            except Exception as err:  # noqa: BLE001 - see the docstring
                raise BagError(f"cannot read bag '{self.path}' past this point: {type(err).__name__}: {err}") from None
            yield record


def _resolve(reader: AnyReader, requested: str, path: Path) -> BagImageTopic:
    """The topic to read for ``requested``, following image_transport (see the module docstring)."""
    if not isinstance(requested, str) or not requested.strip("/"):
        raise ValueError(f"an image topic must be a non-empty name such as '/camera/image_raw', got {requested!r}")
    name = requested if requested.startswith("/") else "/" + requested
    types = _topic_types(reader)
    if name in types:
        found = types[name]
        if len(found) > 1:
            raise BagError(
                f"topic {name} in bag '{path}' was recorded with messages of {len(found)} types ({', '.join(found)}), "
                "and one topic is read as one type: write the bag again with each type on a topic of its own "
                f"(CompressedImage on {name}{COMPRESSED_SUFFIX}, as image_transport publishes it), or record from "
                f"publishers of one type; its image topics: {_image_topics(types)}"
            )
        if found[0] not in IMAGE_TYPES:
            raise BagError(
                f"topic {name} in bag '{path}' has type {found[0]}, not an image ({' or '.join(IMAGE_TYPES)}); its "
                f"image topics: {_image_topics(types)}"
            )
        return BagImageTopic(requested, name, found[0])
    compressed = name + COMPRESSED_SUFFIX
    if types.get(compressed) == (COMPRESSED_IMAGE_TYPE,):
        log.info("%s is not in the bag: reading %s (image_transport's compressed transport) instead", name, compressed)
        return BagImageTopic(requested, compressed, COMPRESSED_IMAGE_TYPE)
    raise BagError(f"topic {name} (nor {compressed}) is not in bag '{path}'; its image topics: {_image_topics(types)}")


def _resolve_depth(reader: AnyReader, requested: str, path: Path, image_topics: Sequence[str]) -> str:
    """The depth topic to read for ``requested``: a sensor_msgs/Image topic of the bag of depth images (relative
    names from the root namespace, as `_resolve`'s), none of ``image_topics``."""
    if not isinstance(requested, str) or not requested.strip("/"):
        raise ValueError(f"a depth topic must be a non-empty name such as '/camera/depth/image_raw', got {requested!r}")
    name = requested if requested.startswith("/") else "/" + requested
    if name in image_topics:
        raise ValueError(
            f"depth topics must be distinct topics of their own, not image topics; got {name} among the image "
            f"topics {list(image_topics)}"
        )
    types = _topic_types(reader)
    if types.get(name) == (IMAGE_TYPE,):
        _check_depth_encoding(reader, name, path)
        return name
    if name.endswith(COMPRESSED_DEPTH_SUFFIX) or name + COMPRESSED_DEPTH_SUFFIX in types:
        raise BagError(
            f"depth topic {name} in bag '{path}': image_transport's compressedDepth transport is not read; record the "
            f"raw depth topic ({name.removesuffix(COMPRESSED_DEPTH_SUFFIX)}, sensor_msgs/Image 16UC1 or 32FC1)"
        )
    if name in types:
        raise BagError(
            f"depth topic {name} in bag '{path}' has type {', '.join(types[name])}, not {IMAGE_TYPE} (16UC1 or "
            f"32FC1); its image topics: {_image_topics(types)}"
        )
    raise BagError(f"depth topic {name} is not in bag '{path}'; its image topics: {_image_topics(types)}")


def _check_depth_encoding(reader: AnyReader, topic: str, path: Path) -> None:
    """Raise BagError where ``topic``'s first readable message is no depth image (a colour topic given as depth):
    every one of its images would be skipped, and the run would end saying only that no depth matched."""
    connections = _topic_connections(reader, [topic])
    try:
        for connection, _, raw in reader.messages(connections=connections):
            encoding = reader.deserialize(raw, connection.msgtype).encoding
            break
        else:
            return  # no message: named by the look-ups' index
    except Exception:  # noqa: BLE001 - a damaged storage or message: the look-ups skip and count it
        return
    if encoding not in SUPPORTED_DEPTH_ENCODINGS:
        raise BagError(
            f"depth topic {topic} in bag '{path}' carries {encoding} images, not depth "
            f"({', '.join(SUPPORTED_DEPTH_ENCODINGS)}, REP 118): is it a colour topic? Give each camera's depth "
            "registered to its colour image (a RealSense's aligned_depth_to_color/image_raw)"
        )


def _topic_connections(reader: AnyReader, topics: Sequence[str]) -> list[Connection]:
    """The bag's connections of ``topics`` (a topic recorded by several publishers has several)."""
    wanted = set(topics)
    return [connection for connection in reader.connections if connection.topic in wanted]


def _topic_types(reader: AnyReader) -> dict[str, tuple[str, ...]]:
    """Each topic of the bag and the types of its connections, sorted (several where publishers of different types
    were recorded on one topic)."""
    types: dict[str, set[str]] = {}
    for connection in reader.connections:
        types.setdefault(connection.topic, set()).add(connection.msgtype)
    return {topic: tuple(sorted(found)) for topic, found in types.items()}


def _image_topics(types: dict[str, tuple[str, ...]]) -> str:
    names = [
        f"{topic} ({' and '.join(msgtype.rsplit('/', 1)[-1] for msgtype in found)})"
        for topic, found in sorted(types.items())
        if set(found) & set(IMAGE_TYPES)
    ]
    return ", ".join(names) if names else "none (the bag holds no sensor_msgs/Image or CompressedImage)"


# The first bytes of every SQLite 3 file, and of every mcap file.
SQLITE_MAGIC = b"SQLite format 3\x00"
MCAP_MAGIC = b"\x89MCAP"


def _fix_for_unreadable(path: Path, err: Exception) -> str:
    """What to do about a bag the reader cannot open: a ROS 1 bag whose index is missing (a recorder stopped before
    writing it, at the end of the file) is mended by ROS 1's own tool; a damaged SQLite file is no wrong form, so
    asking for one misled; anything else, a form the reader takes."""
    text = str(err).lower()
    if path.suffix == ".bag" and "index" in text:
        return f"a ROS 1 bag cut off before its index was written can have it rebuilt: rosbag reindex {path}"
    for db3 in _db3_files([path]):
        not_sqlite = _not_sqlite(db3)
        if not_sqlite:
            return not_sqlite
    if "malformed" in text or "not a database" in text:
        return (
            "its SQLite storage file is damaged (cut off while recording or copying, or a disk that filled), and the "
            "reader cannot open it at all: copy the recording again from where it was made"
        )
    return f"pass {BAG_FORMS}"


def _not_sqlite(db3: Path) -> str:
    """Why the storage file ``db3`` is no SQLite file at all ("" when it begins as one, or cannot be read)."""
    try:
        with db3.open("rb") as file:
            head = file.read(len(SQLITE_MAGIC))
    except OSError:
        return ""
    if not head:
        return f"'{db3.name}' is empty (0 bytes): the recorder wrote nothing into it"
    if head.startswith(MCAP_MAGIC):
        return f"'{db3.name}' is an mcap file named .db3: rename it to .mcap"
    if head != SQLITE_MAGIC:
        return f"'{db3.name}' does not begin as an SQLite file does: it is no rosbag2 .db3, or its header is damaged"
    return ""


def _refuse_message_compressed_file(path: Path) -> None:
    """Raise BagError for a storage file of a bag that compresses each message (rosbag2's compression mode
    "message", as its folder's metadata.yaml says): only the folder says so, so read alone every message fails to
    deserialise (its bytes are a zstd frame)."""
    metadata = path.parent / "metadata.yaml"
    if path.suffix not in STORAGE_SUFFIXES or not metadata.is_file():
        return
    try:
        info = yaml.safe_load(metadata.read_text())["rosbag2_bagfile_information"]
        mode, files = str(info.get("compression_mode") or "").lower(), info.get("relative_file_paths") or []
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return  # no rosbag2 metadata: the file is read as it is
    if mode == "message" and path.name in {Path(str(name)).name for name in files}:
        raise BagError(
            f"'{path}' is a storage file of the bag '{path.parent}', which compresses each message "
            f"({info.get('compression_format')}, as its metadata.yaml says): read alone, its messages are compressed "
            f"bytes; pass the bag folder '{path.parent}' instead"
        )


def is_bag(path: Path) -> bool:
    """``path`` is given as a bag (`BAG_FORMS`), not as a folder of images."""
    return path.suffix in BAG_FILE_SUFFIXES or (path.is_dir() and (path / "metadata.yaml").is_file())


def _unmerged_wal(storage_paths: Sequence[Path]) -> list[Path]:
    """The non-empty SQLite write-ahead logs (``<file>.db3-wal``) beside the bag's .db3 files: a recorder in WAL mode
    (rosbag2's ``resilient`` preset) killed before it closed the bag leaves its newest messages there, and the
    storage reader opens the .db3 as it is on disk, without them."""
    wals = [db3.with_name(f"{db3.name}-wal") for db3 in _db3_files(storage_paths)]
    return [wal for wal in wals if wal.is_file() and wal.stat().st_size > 0]


def _db3_files(paths: Sequence[Path]) -> list[Path]:
    """The SQLite storage files among ``paths``: a .db3 itself, or a bag folder's."""
    return [
        db3
        for path in paths
        for db3 in ([path] if path.suffix == ".db3" else sorted(path.glob("*.db3")) if path.is_dir() else [])
    ]


def _wal_note(wal: Path) -> str:
    db3 = wal.with_name(wal.name.removesuffix("-wal"))
    return (
        f"'{wal}' holds messages not yet merged into '{db3.name}' (a recorder killed before it closed the bag), which "
        f"the reader does not read: merge them with  sqlite3 '{db3}' 'PRAGMA wal_checkpoint(TRUNCATE);'  and run again"
    )


def _storage_paths(path: Path) -> list[Path]:
    """``[path]``, or for a bag folder without metadata.yaml (a recording never closed) its storage files (several
    for a recording split by size or duration), which are read merged by log time."""
    if path.is_dir() and not (path / "metadata.yaml").exists():
        files = [p for p in sorted(path.iterdir()) if p.suffix in STORAGE_SUFFIXES]
        if files:
            log.warning(
                "'%s' has no metadata.yaml (the recorder never closed it): reading %s",
                path,
                ", ".join(p.name for p in files),
            )
            return files
    return [path]
