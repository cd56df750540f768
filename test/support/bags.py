# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Real rosbag2 recordings of camera images for tests, written with rosbags (no ROS install, no rclpy).

`write_image_bag` writes what a camera driver and `ros2 bag record` would leave: sensor_msgs/Image (rgb8 or
mono8) or sensor_msgs/CompressedImage as image_transport's compressed plugin publishes it (format
"rgb8; jpeg compressed bgr8" or "mono8; png compressed mono8"; the files are encoded by Pillow), in mcap or
sqlite3 storage, with the message definitions stored in the bag (as rosbag2 since Iron does). Chosen messages
can be damaged the way real recordings are: a compressed image cut to half its bytes (a truncated file) or a
raw image whose data is one row short of ``height * step``; `damage_first_record_of_chunk` damages a record inside
a written mcap's chunk.

Each message's log time (when the recorder received it) is its header stamp plus ``receive_delay_ns``, so a
test can tell the two apart; with ``zero_header_stamps`` the header stamps are written as 0 (a driver that
never sets them) while the log times stay as given. Messages are written in log-time order across cameras.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Collection, Literal, Optional, Sequence

import numpy as np
from PIL import Image
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

NANOSECONDS = 1_000_000_000
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
# (topic, [(header stamp in nanoseconds, (H, W, 3) RGB or (H, W) grey uint8 image), ...]) per camera.
CameraRecording = tuple[str, Sequence[tuple[int, np.ndarray]]]


def encode_image_file(image: np.ndarray, codec: Literal["jpeg", "png"], quality: int = 90) -> bytes:
    """A JPEG (at ``quality``) or PNG file of an ``(H, W, 3)`` RGB or ``(H, W)`` grey uint8 image."""
    buffer = io.BytesIO()
    options = {"quality": quality} if codec == "jpeg" else {}
    Image.fromarray(image).save(buffer, format=codec.upper(), **options)
    return buffer.getvalue()


def write_image_bag(
    path: Path,
    storage: Literal["mcap", "sqlite3"],
    cameras: Sequence[CameraRecording],
    compressed: bool = False,
    codec: Literal["jpeg", "png"] = "jpeg",
    corrupt: Collection[tuple[int, int]] = (),
    receive_delay_ns: int = 0,
    other_topics: Sequence[str] = (),
    zero_header_stamps: bool = False,
) -> Path:
    """Write a rosbag2 folder at ``path`` (which must not exist) and return ``path``.

    Args:
        storage: "mcap" or "sqlite3".
        cameras: per camera its topic and its (header stamp ns, image) pairs; an ``(H, W)`` image is mono8.
        compressed: CompressedImage in ``codec`` ("jpeg" at quality 90, or "png") instead of raw Image.
        corrupt: (camera index, image index) of the messages to damage: a compressed file is cut to half its
            bytes, raw data loses its last row.
        receive_delay_ns: log time minus header stamp of every message.
        other_topics: topics that get one std_msgs/msg/String each (a bag never holds only cameras).
        zero_header_stamps: write every header stamp as 0; the log times still follow the given stamps.
    """
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
    if codec not in ("jpeg", "png"):
        raise ValueError(f"codec must be 'jpeg' or 'png', got {codec!r}")
    typestore = get_typestore(Stores.ROS2_KILTED)
    msgtype = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"

    records = []  # (log time ns, topic, msgtype, serialised message)
    for camera_index, (topic, images) in enumerate(cameras):
        for image_index, (stamp_ns, image) in enumerate(images):
            damaged = (camera_index, image_index) in corrupt
            header_ns = 0 if zero_header_stamps else stamp_ns
            message = _image_message(typestore, image, header_ns, f"camera{camera_index}", compressed, codec, damaged)
            records.append((stamp_ns + receive_delay_ns, topic, msgtype, typestore.serialize_cdr(message, msgtype)))
    first_log_ns = min((record[0] for record in records), default=0)
    for topic in other_topics:
        text = typestore.types["std_msgs/msg/String"](data=f"not an image: {topic}")
        serialised = typestore.serialize_cdr(text, "std_msgs/msg/String")
        records.append((first_log_ns, topic, "std_msgs/msg/String", serialised))

    with Writer(path, version=Writer.VERSION_LATEST, storage_plugin=STORAGES[storage]) as writer:
        connections = {}
        for topic, topic_msgtype in dict.fromkeys((record[1], record[2]) for record in records):
            connections[topic] = writer.add_connection(topic, topic_msgtype, typestore=typestore)
        for log_ns, topic, _, data in sorted(records, key=lambda record: record[0]):
            writer.write(connections[topic], log_ns, data)
    return path


def _image_message(
    typestore: Typestore, image: np.ndarray, stamp_ns: int, frame_id: str, compressed: bool, codec: str, damaged: bool
) -> object:
    """A rosbags sensor_msgs Image or CompressedImage of ``image``."""
    types = typestore.types
    header = types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=stamp_ns // NANOSECONDS, nanosec=stamp_ns % NANOSECONDS),
        frame_id=frame_id,
    )
    grey = image.ndim == 2
    if compressed:
        data = encode_image_file(image, codec)
        if damaged:
            data = data[: len(data) // 2]
        # As image_transport's compressed plugin: "<camera encoding>; <codec> compressed <encoding in the file>".
        file_encoding = "mono8" if grey else "bgr8"
        return types["sensor_msgs/msg/CompressedImage"](
            header=header,
            format=f"{'mono8' if grey else 'rgb8'}; {codec} compressed {file_encoding}",
            data=np.frombuffer(data, dtype=np.uint8),
        )
    height, width = image.shape[:2]
    step = width * (1 if grey else 3)
    data = np.ascontiguousarray(image).reshape(-1)
    if damaged:
        data = data[:-step]
    return types["sensor_msgs/msg/Image"](
        header=header,
        height=height,
        width=width,
        encoding="mono8" if grey else "rgb8",
        is_bigendian=0,
        step=step,
        data=data,
    )


# Raw image encodings by the array's element type and channels: colour, and depth as REP 118 gives it.
RAW_ENCODINGS = {(np.dtype(np.uint8), 3): "rgb8", (np.dtype(np.uint16), 1): "16UC1", (np.dtype(np.float32), 1): "32FC1"}


def write_raw_bag(
    path: Path, records: list[tuple[str, int, int, np.ndarray]], encodings: Optional[dict[str, str]] = None
) -> Path:
    """A bag of sensor_msgs/Image: (topic, log time ns, header stamp ns, image) in log-time order; ``(H, W, 3)``
    uint8 images as rgb8, ``(H, W)`` uint16 as 16UC1 (millimetres) and float32 as 32FC1 (metres); ``encodings``:
    topic -> the encoding of its ``(H, W)`` uint8 images (a Bayer mosaic), one byte a pixel."""
    typestore = get_typestore(Stores.ROS2_KILTED)
    types = typestore.types
    msgtype = "sensor_msgs/msg/Image"
    with Writer(path, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {}
        for topic, log_ns, stamp_ns, image in records:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=typestore)
            stamp = types["builtin_interfaces/msg/Time"](sec=stamp_ns // NANOSECONDS, nanosec=stamp_ns % NANOSECONDS)
            channels = image.shape[2] if image.ndim == 3 else 1
            message = types[msgtype](
                header=types["std_msgs/msg/Header"](stamp=stamp, frame_id=topic.strip("/")),
                height=image.shape[0],
                width=image.shape[1],
                encoding=(encodings or {}).get(topic) or RAW_ENCODINGS[(image.dtype, channels)],
                is_bigendian=0,
                step=image.shape[1] * channels * image.dtype.itemsize,
                data=np.frombuffer(np.ascontiguousarray(image).tobytes(), dtype=np.uint8),
            )
            writer.write(connections[topic], log_ns, typestore.serialize_cdr(message, msgtype))
    return path


def write_ros1_image_bag(path: Path, topic: str, frames: Sequence[tuple[int, np.ndarray]]) -> Path:
    """A ROS 1 bag at ``path`` of rgb8 sensor_msgs/Image messages on ``topic``: ``(header stamp ns, (H, W, 3) uint8
    image)`` each, logged at its stamp (what `rosbag record` leaves on ROS 1)."""
    from rosbags.rosbag1 import Writer as Ros1Writer

    typestore = get_typestore(Stores.ROS1_NOETIC)
    types = typestore.types
    with Ros1Writer(path) as writer:
        connection = writer.add_connection(topic, "sensor_msgs/msg/Image", typestore=typestore)
        for index, (stamp_ns, image) in enumerate(frames):
            stamp = types["builtin_interfaces/msg/Time"](sec=stamp_ns // NANOSECONDS, nanosec=stamp_ns % NANOSECONDS)
            header = types["std_msgs/msg/Header"](seq=index, stamp=stamp, frame_id="camera0")
            height, width = image.shape[:2]
            message = types["sensor_msgs/msg/Image"](
                header, height, width, "rgb8", 0, width * 3, np.ascontiguousarray(image).reshape(-1)
            )
            writer.write(connection, stamp_ns, typestore.serialize_ros1(message, "sensor_msgs/msg/Image"))
    return path


def damage_first_record_of_chunk(mcap: Path, chunk: int) -> None:
    """Give the first record inside the ``chunk``-th (uncompressed) chunk an opcode mcap does not define: the
    storage reader passes over the record, a message, without a word."""
    data = bytearray(mcap.read_bytes())
    chunks, position = [], 8  # past the magic
    while True:
        opcode, length = struct.unpack_from("<BQ", data, position)
        if opcode == 0x06:
            chunks.append(position)
        if opcode == 0x0F:  # the data end
            break
        position += 9 + length
    start = chunks[chunk] + 9
    name_length = struct.unpack_from("<I", data, start + 28)[0]  # three u64 and a u32, then the compression
    assert data[start + 32 : start + 32 + name_length] == b"", "an uncompressed chunk"
    first_record = start + 32 + name_length + 8  # past the records' u64 length
    assert data[first_record] == 0x05  # a message
    data[first_record] = 0x55
    mcap.write_bytes(bytes(data))
