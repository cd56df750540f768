# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""BagImageSource on real rosbag2 recordings (mcap and sqlite3) written with rosbags by test/support/bags.py."""

import logging
import shutil
import sqlite3
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from conftest import IMAGES
from support.bags import (
    NANOSECONDS,
    STORAGES,
    damage_first_record_of_chunk,
    write_image_bag,
    write_raw_bag,
    write_ros1_image_bag,
)
from support.camera_encodings import bayer_mosaic
from vggt_ros.live.sync import synchronize
from vggt_ros.recording.bag_reader import BagError, BagImageSource

EPOCH_NS = 1_700_000_000 * NANOSECONDS
PERIOD_NS = 100_000_000  # 10 Hz cameras
# JPEG at quality 90 keeps these crops at 36-42 dB; a channel swap gives 15-25 dB, a neighbouring frame at most 29 dB.
MIN_JPEG_PSNR_DB = 33.0
LOGGER = "vggt_ros.recording.bag_reader"


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """Ten different 48x64 RGB crops of a photograph, like consecutive camera frames."""
    with Image.open(IMAGES / "astronaut.png") as image:
        photo = np.asarray(image.convert("RGB"))
    return [np.ascontiguousarray(photo[40 + 11 * i : 88 + 11 * i, 30 + 17 * i : 94 + 17 * i]) for i in range(10)]


def _stamps(count: int, offset_ns: int = 0) -> list[int]:
    return [EPOCH_NS + offset_ns + i * PERIOD_NS for i in range(count)]


def _psnr_db(decoded: np.ndarray, original: np.ndarray) -> float:
    mse = np.mean((decoded.astype(np.float64) - original.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("transport", ["raw", "jpeg", "png"])
def test_one_camera_reads_back_every_image_with_its_stamp(tmp_path, frames, storage, transport):
    stamps = _stamps(len(frames))
    bag = write_image_bag(
        tmp_path / "bag",
        storage,
        [("/cam/image_raw", list(zip(stamps, frames)))],
        compressed=transport != "raw",
        codec="png" if transport == "png" else "jpeg",
    )

    source = BagImageSource(bag, ["/cam/image_raw"])
    items = list(source)

    assert source.message_count == len(frames)
    assert [camera for camera, _, _ in items] == [0] * len(frames)
    assert [stamp for _, stamp, _ in items] == stamps
    for (_, _, rgb), original in zip(items, frames):
        assert rgb.shape == original.shape and rgb.dtype == np.uint8
        if transport == "jpeg":
            assert _psnr_db(rgb, original) > MIN_JPEG_PSNR_DB
        else:
            np.testing.assert_array_equal(rgb, original)
    assert source.skipped == {}


def test_grey_camera_gives_three_equal_channels(tmp_path, frames):
    grey = [np.asarray(Image.fromarray(frame).convert("L")) for frame in frames[:3]]
    bag = write_image_bag(tmp_path / "bag", "mcap", [("/mono/image_raw", list(zip(_stamps(3), grey)))])

    images = [rgb for _, _, rgb in BagImageSource(bag, ["/mono/image_raw"])]

    for rgb, original in zip(images, grey):
        for channel in range(3):
            np.testing.assert_array_equal(rgb[..., channel], original)


def test_a_bayer_camera_recorded_before_image_proc_is_read_in_colour(tmp_path, frames):
    """A machine-vision camera's raw topic (image_raw, a Bayer mosaic) was skipped as an unsupported encoding: a
    bag recorded before image_proc gave no image. Each pixel keeps its own colour's sample, the rest interpolated."""
    stamps = _stamps(2)
    mosaics = [bayer_mosaic(frame, "bayer_grbg8") for frame in frames[:2]]
    records = [("/cam/image_raw", stamp, stamp, mosaic) for stamp, mosaic in zip(stamps, mosaics)]
    bag = write_raw_bag(tmp_path / "bag", records, encodings={"/cam/image_raw": "bayer_grbg8"})

    source = BagImageSource(bag, ["/cam/image_raw"])
    images = [rgb for _, _, rgb in source]

    assert len(images) == 2 and source.skipped == {}
    for rgb, frame in zip(images, frames):
        np.testing.assert_array_equal(rgb[0::2, 1::2, 0], frame[0::2, 1::2, 0])  # G R / B G: red at (even, odd)
        np.testing.assert_array_equal(rgb[1::2, 0::2, 2], frame[1::2, 0::2, 2])
        assert np.abs(rgb.astype(int) - frame).mean() < 6.0


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_two_cameras_pair_up_through_the_nodes_synchroniser(tmp_path, frames, storage):
    # Camera 1 is triggered 3 ms after camera 0 and lost its frame 4: that frame set cannot form.
    left = list(zip(_stamps(5), frames[:5]))
    right = [(stamp, frame) for i, (stamp, frame) in enumerate(zip(_stamps(5, 3_000_000), frames[5:])) if i != 4]
    bag = write_image_bag(
        tmp_path / "bag",
        storage,
        [("/left/image_raw", left), ("/right/image_raw", right)],
        compressed=True,
        codec="png",
        receive_delay_ns=20_000_000,
    )
    source = BagImageSource(bag, ["/left/image_raw", "/right/image_raw"])

    stream = list(source)
    synced = list(synchronize(iter(stream), num_inputs=2, queue_size=5, slop=0.02))

    # The recorder received them in time order: camera 0 then camera 1 of each frame set (3 ms later).
    assert [camera for camera, _, _ in stream] == [0, 1] * 4 + [0]
    assert source.message_count == 9
    assert [s.stamps_ns for s in synced] == [(left[i][0], right[i][0]) for i in range(4)]
    for i, frame_set in enumerate(synced):
        np.testing.assert_array_equal(frame_set.items[0], left[i][1])
        np.testing.assert_array_equal(frame_set.items[1], right[i][1])


@pytest.mark.parametrize("transport", ["jpeg", "raw"])
def test_damaged_messages_are_skipped_counted_and_warned_once(tmp_path, frames, caplog, transport):
    topic = "/cam/image_raw/compressed" if transport == "jpeg" else "/cam/image_raw"
    bag = write_image_bag(
        tmp_path / "bag",
        "mcap",
        [(topic, list(zip(_stamps(6), frames[:6])))],
        compressed=transport == "jpeg",
        corrupt={(0, 1), (0, 4)},
    )
    source = BagImageSource(bag, [topic])

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        stamps = [stamp for _, stamp, _ in source]

    assert stamps == [s for i, s in enumerate(_stamps(6)) if i not in (1, 4)]
    # A truncated JPEG is "corrupt"; raw data one row short fails image_to_rgb's "length" check.
    kind = "corrupt" if transport == "jpeg" else "length"
    assert source.skipped == {topic: {kind: 2}}
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and topic in warnings[0].getMessage() and kind in warnings[0].getMessage()
    assert source.message_count == 6


def test_an_empty_image_is_left_out_of_the_sizes_and_skipped_as_empty(tmp_path, frames):
    # Some drivers publish a 0x0 image at start-up.
    images = [np.zeros((0, 0, 3), np.uint8), *frames[:3]]
    bag = write_image_bag(tmp_path / "bag", "mcap", [("/cam", list(zip(_stamps(4), images)))])
    source = BagImageSource(bag, ["/cam"])

    assert source.image_sizes() == {(48, 64)}
    assert [stamp for _, stamp, _ in source] == _stamps(4)[1:]
    assert source.skipped == {"/cam": {"size": 1}}


def test_undeserialisable_message_is_skipped(tmp_path, frames):
    typestore = get_typestore(Stores.ROS2_KILTED)
    bag = tmp_path / "bag"
    with Writer(bag, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=typestore)
        image = typestore.types["sensor_msgs/msg/Image"](
            header=typestore.types["std_msgs/msg/Header"](
                stamp=typestore.types["builtin_interfaces/msg/Time"](sec=5, nanosec=0), frame_id="cam"
            ),
            height=48,
            width=64,
            encoding="rgb8",
            is_bigendian=0,
            step=192,
            data=frames[0].reshape(-1),
        )
        writer.write(connection, 1, bytes(16))  # a CDR header and zeros: no Image
        writer.write(connection, 2, typestore.serialize_cdr(image, "sensor_msgs/msg/Image"))
    source = BagImageSource(bag, ["/cam/image_raw"])

    items = list(source)

    assert [stamp for _, stamp, _ in items] == [5 * NANOSECONDS]
    np.testing.assert_array_equal(items[0][2], frames[0])
    assert source.skipped == {"/cam/image_raw": {"message": 1}}


def test_time_range_is_seconds_of_log_time_after_the_bag_start(tmp_path, frames):
    # Header stamps lag the log time by 30 ms; the range applies to the log time, the stamps come out unchanged.
    stamps = _stamps(10)
    bag = write_image_bag(
        tmp_path / "bag", "sqlite3", [("/cam/image_raw", list(zip(stamps, frames)))], receive_delay_ns=30_000_000
    )

    source = BagImageSource(bag, ["/cam/image_raw"], start_s=0.25, stop_s=0.55)

    # Log times are 0, 0.1, ... 0.9 s after the first: [0.25, 0.55) holds frames 3, 4 and 5.
    assert [stamp for _, stamp, _ in source] == stamps[3:6]
    assert source.message_count == 3
    assert [stamp for _, stamp, _ in BagImageSource(bag, ["/cam/image_raw"], start_s=0.65)] == stamps[7:]
    assert [stamp for _, stamp, _ in BagImageSource(bag, ["/cam/image_raw"], stop_s=0.1)] == stamps[:1]


def test_base_topic_reads_its_compressed_transport(tmp_path, frames, caplog):
    bag = write_image_bag(
        tmp_path / "bag", "mcap", [("/cam/image_raw/compressed", [(_stamps(1)[0], frames[0])])], compressed=True
    )

    with caplog.at_level(logging.INFO, logger=LOGGER):
        source = BagImageSource(bag, ["cam/image_raw"])

    assert source.topics[0].topic == "/cam/image_raw/compressed"
    assert source.topics[0].msgtype == "sensor_msgs/msg/CompressedImage"
    assert "/cam/image_raw/compressed" in caplog.text
    assert len(list(source)) == 1


@pytest.mark.parametrize("storage, suffix", [("mcap", ".mcap"), ("sqlite3", ".db3")])
def test_a_single_storage_file_reads_like_its_folder(tmp_path, frames, storage, suffix):
    bag = write_image_bag(tmp_path / "bag", storage, [("/cam/image_raw", list(zip(_stamps(3), frames[:3])))])
    (storage_file,) = bag.glob(f"*{suffix}")

    assert [stamp for _, stamp, _ in BagImageSource(storage_file, ["/cam/image_raw"])] == _stamps(3)


def test_iterating_again_reads_again_and_recounts_skips(tmp_path, frames):
    bag = write_image_bag(
        tmp_path / "bag", "mcap", [("/cam/image_raw", list(zip(_stamps(4), frames[:4])))], corrupt={(0, 2)}
    )
    source = BagImageSource(bag, ["/cam/image_raw"])

    first = [stamp for _, stamp, _ in source]
    second = [stamp for _, stamp, _ in source]

    assert first == second == [s for i, s in enumerate(_stamps(4)) if i != 2]
    assert source.skipped == {"/cam/image_raw": {"length": 1}}


def test_unknown_topic_error_lists_the_bags_image_topics(tmp_path, frames):
    bag = write_image_bag(
        tmp_path / "bag",
        "mcap",
        [("/front/image_raw", [(_stamps(1)[0], frames[0])]), ("/rear/image_raw", [(_stamps(1)[0], frames[1])])],
        other_topics=["/imu/data"],
    )

    with pytest.raises(BagError) as caught:
        BagImageSource(bag, ["/front/image_raw", "/side/image_raw"])

    message = str(caught.value)
    assert "/side/image_raw" in message and "/front/image_raw" in message and "/rear/image_raw" in message
    assert "/imu/data" not in message


def test_a_topic_of_another_type_is_refused(tmp_path, frames):
    bag = write_image_bag(
        tmp_path / "bag", "mcap", [("/cam/image_raw", [(_stamps(1)[0], frames[0])])], other_topics=["/imu/data"]
    )

    with pytest.raises(BagError, match="std_msgs/msg/String"):
        BagImageSource(bag, ["/imu/data"])


def test_a_topic_recorded_with_two_image_types_names_both(tmp_path, frames):
    """One Image and one CompressedImage connection on one topic: the error said it "has type mixed types" and that
    the bag held no image topics."""
    typestore = get_typestore(Stores.ROS2_KILTED)
    types = typestore.types
    with Writer(tmp_path / "bag", version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP) as writer:
        raw = writer.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=typestore)
        compressed = writer.add_connection("/cam/image_raw", "sensor_msgs/msg/CompressedImage", typestore=typestore)
        header = types["std_msgs/msg/Header"](
            stamp=types["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="c"
        )
        image = types["sensor_msgs/msg/Image"](header, 48, 64, "rgb8", 0, 192, frames[0].reshape(-1))
        jpeg = types["sensor_msgs/msg/CompressedImage"](header, "jpeg", np.frombuffer(b"\xff\xd8", np.uint8))
        writer.write(raw, 1, typestore.serialize_cdr(image, "sensor_msgs/msg/Image"))
        writer.write(compressed, 2, typestore.serialize_cdr(jpeg, "sensor_msgs/msg/CompressedImage"))

    with pytest.raises(BagError) as caught:
        BagImageSource(tmp_path / "bag", ["/cam/image_raw"])

    message = str(caught.value)
    assert "sensor_msgs/msg/CompressedImage, sensor_msgs/msg/Image" in message and "a topic of its own" in message
    assert "its image topics: /cam/image_raw (CompressedImage and Image)" in message
    assert "mixed" not in message and "none" not in message


def test_missing_bag_path_says_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError) as caught:
        BagImageSource(tmp_path / "no_such_bag", ["/cam/image_raw"])

    assert "no_such_bag" in str(caught.value) and "metadata.yaml" in str(caught.value)


def test_a_folder_that_is_not_a_bag_is_refused(tmp_path):
    (tmp_path / "photos").mkdir()

    with pytest.raises(BagError, match="photos"):
        BagImageSource(tmp_path / "photos", ["/cam/image_raw"])


@pytest.mark.parametrize(
    "topics, start_s, stop_s, problem",
    [
        ([], None, None, "non-empty"),
        ("/cam/image_raw", None, None, "non-empty list"),
        (["/cam/image_raw", "cam/image_raw"], None, None, "distinct"),
        (["/cam/image_raw"], -1.0, None, "start_s"),
        (["/cam/image_raw"], None, float("nan"), "stop_s"),
        (["/cam/image_raw"], 2.0, 1.0, "empty"),
        (["/cam/image_raw"], None, 0.0, "empty"),
    ],
)
def test_bad_arguments_are_refused(tmp_path, frames, topics, start_s, stop_s, problem):
    bag = write_image_bag(tmp_path / "bag", "mcap", [("/cam/image_raw", [(_stamps(1)[0], frames[0])])])

    with pytest.raises(ValueError, match=problem):
        BagImageSource(bag, topics, start_s=start_s, stop_s=stop_s)


@pytest.mark.parametrize("metadata", ["kept", "never written"])
def test_a_recording_cut_off_mid_chunk_reads_its_complete_chunks(tmp_path, caplog, metadata):
    images = [np.full((240, 320, 3), 10 * i, np.uint8) for i in range(12)]  # 230 kB raw: 1 MiB chunks hold 4 or 5
    bag = write_image_bag(tmp_path / "bag", "mcap", [("/cam", list(zip(_stamps(12), images)))])
    (mcap,) = bag.glob("*.mcap")
    whole = mcap.read_bytes()
    mcap.write_bytes(whole[: len(whole) * 6 // 10])  # a crash: no summary, no footer, the last chunk half written
    if metadata == "never written":
        (bag / "metadata.yaml").unlink()
    with caplog.at_level(logging.WARNING):
        source = BagImageSource(bag, ["/cam"])
        read = list(source)
    assert 0 < len(read) < 12 and source.truncated and "cut off" in source.truncated[0]
    for (_, stamp_ns, rgb), image, expected_ns in zip(read, images, _stamps(12)):  # the first ones, intact
        assert stamp_ns == expected_ns and np.array_equal(rgb, image)
    assert any("cut off" in record.message for record in caplog.records)


def _zstd_chunked_bag(path, images) -> Path:
    """An mcap bag whose chunks are zstd-compressed (rosbag2's usual mcap compression)."""
    from rosbags.rosbag2 import CompressionFormat, CompressionMode

    typestore = get_typestore(Stores.ROS2_KILTED)
    writer = Writer(path, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP)
    writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    image_type = typestore.types["sensor_msgs/msg/Image"]
    with writer:
        connection = writer.add_connection("/cam", "sensor_msgs/msg/Image", typestore=typestore)
        for stamp_ns, image in zip(_stamps(len(images)), images):
            header = typestore.types["std_msgs/msg/Header"](
                stamp=typestore.types["builtin_interfaces/msg/Time"](
                    sec=stamp_ns // NANOSECONDS, nanosec=stamp_ns % NANOSECONDS
                ),
                frame_id="camera0",
            )
            height, width = image.shape[:2]
            message = image_type(header, height, width, "rgb8", 0, width * 3, image.reshape(-1))
            writer.write(connection, stamp_ns, typestore.serialize_cdr(message, "sensor_msgs/msg/Image"))
    return path


def _chunk_data_offsets(mcap: bytes) -> list[int]:
    """Where each chunk record's compressed records start (mcap: opcode, u64 length; a chunk's body holds three u64
    and a u32, its compression as a u32-prefixed string, then the u64-prefixed records)."""
    offsets, position = [], 8  # past the magic
    while position + 9 <= len(mcap):
        opcode, length = struct.unpack_from("<BQ", mcap, position)
        if opcode == 0x06:
            name_length = struct.unpack_from("<I", mcap, position + 9 + 28)[0]
            offsets.append(position + 9 + 32 + name_length + 8)
        if opcode == 0x0F:  # the footer
            break
        position += 9 + length
    return offsets


def test_a_damaged_zstd_chunk_ends_the_images_with_a_bag_error_not_zstds_own(tmp_path):
    """zstd's own error (ZstdError) escaped the reader, which caught rosbags' errors only: a traceback instead of
    "read up to the damage". The images before the damaged chunk are read, then BagError names the cause."""
    images = [np.full((240, 320, 3), 10 * i, np.uint8) for i in range(12)]  # 230 kB raw: several chunks
    bag = _zstd_chunked_bag(tmp_path / "bag", images)
    (mcap,) = bag.glob("*.mcap")
    data = bytearray(mcap.read_bytes())
    offsets = _chunk_data_offsets(bytes(data))
    assert len(offsets) >= 3
    middle = offsets[len(offsets) // 2]
    data[middle : middle + 16] = b"\xff" * 16  # the middle chunk's zstd frame header
    mcap.write_bytes(bytes(data))

    source = BagImageSource(bag, ["/cam"])
    assert source.image_sizes() == {(240, 320)}, "the sizes up to the damage"
    read = []
    with pytest.raises(BagError, match=r"past this point: ZstdError"):
        for item in source:
            read.append(item)
    assert 0 < len(read) < 12
    assert all(np.array_equal(rgb, images[k]) for k, (_, _, rgb) in enumerate(read))


@pytest.mark.parametrize("storage, suffix", [("mcap", ".mcap"), ("sqlite3", ".db3")])
def test_the_storage_file_of_a_bag_that_compresses_each_message_says_to_pass_the_folder(tmp_path, storage, suffix):
    """Given alone, every message of such a file failed to deserialise ("Invalid or unsupported CDR encapsulation")."""
    from rosbags.rosbag2 import CompressionFormat, CompressionMode

    typestore = get_typestore(Stores.ROS2_KILTED)
    types = typestore.types
    writer = Writer(tmp_path / "bag", version=Writer.VERSION_LATEST, storage_plugin=STORAGES[storage])
    writer.set_compression(CompressionMode.MESSAGE, CompressionFormat.ZSTD)
    with writer:
        connection = writer.add_connection("/cam", "sensor_msgs/msg/Image", typestore=typestore)
        header = types["std_msgs/msg/Header"](
            stamp=types["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="c"
        )
        image = types["sensor_msgs/msg/Image"](header, 2, 2, "rgb8", 0, 6, np.zeros(12, np.uint8))
        writer.write(connection, 1, typestore.serialize_cdr(image, "sensor_msgs/msg/Image"))
    (storage_file,) = (tmp_path / "bag").glob(f"*{suffix}")
    assert len(list(BagImageSource(tmp_path / "bag", ["/cam"]))) == 1  # the folder reads

    with pytest.raises(BagError) as caught:
        BagImageSource(storage_file, ["/cam"])

    message = str(caught.value)
    assert "compresses each message" in message and f"pass the bag folder '{tmp_path / 'bag'}'" in message


def test_a_split_recording_never_closed_reads_every_storage_file(tmp_path, frames, caplog):
    """A recording split by size or duration that was never closed (no metadata.yaml) was refused, naming the
    folder as its missing metadata file; a single file was read. Every file is read, merged by time."""
    folder = tmp_path / "recording"
    folder.mkdir()
    stamps = _stamps(6)
    for part, (begin, end) in enumerate(((0, 3), (3, 6))):
        bag = write_image_bag(tmp_path / f"part{part}", "mcap", [("/cam", list(zip(stamps[begin:end], frames)))])
        (bag / f"part{part}.mcap").rename(folder / f"recording_{part}.mcap")
    with caplog.at_level(logging.WARNING):
        read = list(BagImageSource(folder, ["/cam"]))
    assert [stamp_ns for _, stamp_ns, _ in read] == stamps
    assert any("recording_0.mcap, recording_1.mcap" in record.message for record in caplog.records)


def test_a_folder_without_metadata_is_warned_about_once(tmp_path, frames, caplog):
    """The warning came with each opening of the bag: three times in a run."""
    bag = write_image_bag(tmp_path / "bag", "mcap", [("/cam", list(zip(_stamps(3), frames)))])
    (bag / "metadata.yaml").unlink()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        source = BagImageSource(bag, ["/cam"])
        source.image_sizes()
        assert len(list(source)) == 3
    assert sum("has no metadata.yaml" in record.message for record in caplog.records) == 1


def test_a_ros1_bag_is_read(tmp_path, frames):
    """A ROS 1 bag (rosbags reads them) stopped in the mcap repair with AttributeError: 'Reader' object has no
    attribute 'storage'."""
    stamps = _stamps(3)
    path = write_ros1_image_bag(tmp_path / "camera.bag", "/cam", list(zip(stamps, frames)))
    read = list(BagImageSource(path, ["/cam"]))
    assert [stamp_ns for _, stamp_ns, _ in read] == stamps
    assert all(np.array_equal(rgb, image) for (_, _, rgb), image in zip(read, frames))


def test_a_damaged_sqlite_page_ends_the_images_with_a_bag_error(tmp_path):
    """sqlite's own error (apsw.CorruptError) escaped the reader as a traceback."""
    images = [np.full((96, 128, 3), 10 * i, np.uint8) for i in range(20)]
    bag = write_image_bag(tmp_path / "bag", "sqlite3", [("/cam", list(zip(_stamps(20), images)))])
    (db,) = bag.glob("*.db3")
    data = bytearray(db.read_bytes())
    middle = len(data) // 2 // 4096 * 4096  # 4 KiB pages: three in the middle of the file overwritten
    data[middle : middle + 3 * 4096] = b"\x5a" * (3 * 4096)
    db.write_bytes(bytes(data))
    with pytest.raises(BagError, match=r"past this point: CorruptError"):
        list(BagImageSource(bag, ["/cam"]))


def test_a_damaged_ros1_bag_ends_with_a_bag_error_whatever_the_damage(tmp_path, frames):
    """Bytes flipped in a ROS 1 bag's records: its reader fails with AssertionError, KeyError, UnicodeDecodeError as
    well as its ReaderError, and any of them escaping the reader cost the whole run. Every one is a BagError after
    the images before the damage."""
    # Small images: the damage lands in the records' structure.
    small = [frames[index % len(frames)][:2, :2] for index in range(200)]
    path = write_ros1_image_bag(tmp_path / "camera.bag", "/cam", list(zip(_stamps(200), small)))
    whole = path.read_bytes()
    outcomes = set()
    for seed in range(40):
        rng = np.random.default_rng(seed)
        damaged = bytearray(whole)
        for offset in rng.integers(len(whole) // 4, len(whole) * 3 // 4, size=8):
            damaged[offset] = int(rng.integers(256))
        path.write_bytes(bytes(damaged))
        try:
            list(BagImageSource(path, ["/cam"]))
            outcomes.add("read")
        except BagError:
            outcomes.add("bag error")
    assert "bag error" in outcomes


def test_a_ros1_bag_cut_off_before_its_index_names_the_tool_that_rebuilds_it(tmp_path, frames):
    """A ROS 1 recorder stopped by a crash leaves no index (it is written at the end): the error said only "Bag index
    looks damaged" and to pass a ROS 1 .bag, which the user had done."""
    path = write_ros1_image_bag(tmp_path / "camera.bag", "/cam", list(zip(_stamps(6), frames)))
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    with pytest.raises(BagError) as caught:
        BagImageSource(path, ["/cam"])
    assert str(caught.value).startswith(f"cannot read bag '{path}': Bag index looks damaged")
    assert str(caught.value).endswith(f"can have it rebuilt: rosbag reindex {path}")


@pytest.mark.parametrize("as_folder", [True, False])
def test_a_cut_off_sqlite_bag_is_called_damaged_not_the_wrong_form(tmp_path, frames, as_folder):
    """A .db3 cut in half: the error told the user to pass a rosbag2 folder or its .db3 file, which they had done."""
    bag = write_image_bag(tmp_path / "bag", "sqlite3", [("/cam", list(zip(_stamps(6), frames)))])
    (db3,) = bag.glob("*.db3")
    db3.write_bytes(db3.read_bytes()[: db3.stat().st_size // 2])
    path = bag if as_folder else db3
    with pytest.raises(BagError) as caught:
        BagImageSource(path, ["/cam"])
    message = str(caught.value)
    assert message.startswith(f"cannot read bag '{path}'") and "malformed" in message
    assert "storage file is damaged" in message and "pass a rosbag2 folder" not in message


@pytest.mark.parametrize(
    "content, fix",
    [
        (b"", "'camera.db3' is empty (0 bytes)"),
        (b"\x89MCAP0\r\n" + bytes(64), "'camera.db3' is an mcap file named .db3: rename it to .mcap"),
        (b"notes about the run\n", "'camera.db3' does not begin as an SQLite file does"),
    ],
)
def test_a_db3_that_is_no_sqlite_file_says_what_it_is(tmp_path, content, fix):
    """An mcap renamed .db3 or a text file was called a damaged SQLite file to be copied again, and an empty one got
    the advice to pass a .db3 file, which the user had done (pass K)."""
    path = tmp_path / "camera.db3"
    path.write_bytes(content)
    with pytest.raises(BagError) as caught:
        BagImageSource(path, ["/cam"])
    assert fix in str(caught.value) and "pass a rosbag2 folder" not in str(caught.value)


@pytest.mark.parametrize("kept", [0.1, 0.5, 0.99])
def test_a_recording_cut_off_before_its_first_complete_chunk_says_so(tmp_path, kept):
    """rosbag2's mcap plugin writes the schemas and channels into the chunks: cut before the first chunk closed, the
    bag has no topic, and the error said the topic was not in the bag, which held no image topics."""
    images = [np.full((120, 160, 3), 10 * i, np.uint8) for i in range(8)]  # 58 kB raw: all in the first 1 MiB chunk
    bag = write_image_bag(tmp_path / "bag", "mcap", [("/cam", list(zip(_stamps(8), images)))])
    (mcap,) = bag.glob("*.mcap")
    whole = mcap.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(whole[: int(len(whole) * kept)])

    with pytest.raises(BagError) as caught:
        BagImageSource(cut, ["/cam"])

    message = str(caught.value)
    assert "cut.mcap" in message and "cut off" in message and "no complete chunk survived" in message
    assert "not in bag" not in message


def test_a_message_lost_to_a_damaged_record_inside_a_chunk_is_counted_and_warned(tmp_path, caplog):
    """The storage passed over the record and the image was gone, counted nowhere."""
    images = [np.full((480, 640, 3), 10 * i, np.uint8) for i in range(8)]  # 920 kB raw: chunks of 2
    bag = write_image_bag(tmp_path / "bag", "mcap", [("/cam", list(zip(_stamps(8), images)))])
    (mcap,) = bag.glob("*.mcap")
    damage_first_record_of_chunk(mcap, 1)
    source = BagImageSource(bag, ["/cam"])

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        read = [stamp_ns for _, stamp_ns, _ in source]

    assert len(read) == 7 and source.message_count == 8
    assert source.skipped == {"/cam": {"lost": 1}}
    assert any("counts 8 messages, but its storage gave 7" in record.message for record in caplog.records)


class CountingOpenForTests:
    """Test double around the bag reader's `open_reader`: the real reader, counting how often the bag is opened."""

    def __init__(self, open_reader) -> None:
        self.open_reader, self.calls = open_reader, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.open_reader(*args, **kwargs)


def test_depth_look_ups_while_the_images_are_read_open_the_bag_once(tmp_path, monkeypatch):
    """Each depth look-up opened the bag anew: 14 ms a frame on a 2-core CPU (200 frames of 320x240). One reader
    now serves them while the images are iterated; a look-up after that still answers, from a reader of its own."""
    import vggt_ros.recording.bag_reader as bag_reader

    records = []
    for k in range(20):
        stamp = 1_700_000_000 * NANOSECONDS + k * 33_000_000
        records.append(("/cam/color", stamp, stamp, np.full((24, 32, 3), 10 * k, np.uint8)))
        records.append(("/cam/depth", stamp + 1000, stamp, np.full((24, 32), 1000 + k, np.uint16)))
    bag = write_raw_bag(tmp_path / "bag", records)
    source = BagImageSource(bag, ["/cam/color"], depth_topics=["/cam/depth"])
    counting = CountingOpenForTests(bag_reader.open_reader)
    monkeypatch.setattr(bag_reader, "open_reader", counting)

    depths = [(stamp, source.depth_lookup(camera, stamp)) for camera, stamp, _ in source]
    assert [float(depth[0, 0]) for _, depth in depths] == pytest.approx([1.0 + k / 1000 for k in range(20)])
    # The images, the cameras' clock leads, the depth stamps' index and the depth images (20 more before).
    assert counting.calls == 4
    first_stamp = depths[0][0]
    assert float(source.depth_lookup(0, first_stamp)[0, 0]) == pytest.approx(1.0)
    assert counting.calls == 5


def test_messages_in_a_write_ahead_log_are_named_with_the_command_that_merges_them(tmp_path, caplog):
    """A recorder in WAL mode (rosbag2's resilient preset) killed before it closed the bag leaves its newest
    messages in <file>.db3-wal, which the storage reader does not read: 30 of 60 were missing and blamed on damage
    inside the file (pass K). The warning names the log and the merge; after it every message is read."""
    frames = [np.full((24, 32, 3), 4 * k, np.uint8) for k in range(60)]
    bag = write_image_bag(tmp_path / "bag", "sqlite3", [("/cam", list(zip(_stamps(60), frames)))])
    (db3,) = bag.glob("*.db3")
    writer = sqlite3.connect(db3)  # the recorder: the last 30 messages written after the switch to WAL
    rows = writer.execute("SELECT id, topic_id, timestamp, data FROM messages ORDER BY id").fetchall()
    writer.execute("DELETE FROM messages WHERE id > 30")
    writer.commit()
    writer.execute("VACUUM")
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.executemany("INSERT INTO messages (id, topic_id, timestamp, data) VALUES (?, ?, ?, ?)", rows[30:])
    writer.commit()
    killed = tmp_path / "killed"
    shutil.copytree(bag, killed)  # as the killed recorder left them (the writer merges its log when it closes)
    writer.close()

    with caplog.at_level(logging.WARNING):
        source = BagImageSource(killed, ["/cam"])
        assert sum(1 for _ in source) == 30 and source.skipped == {"/cam": {"lost": 30}}
    wal = killed / f"{db3.name}-wal"
    merge = f"sqlite3 '{killed / db3.name}' 'PRAGMA wal_checkpoint(TRUNCATE);'"
    assert any(str(wal) in r.getMessage() and merge in r.getMessage() for r in caplog.records)
    assert not any("damage inside the file" in r.getMessage() for r in caplog.records)

    merged = sqlite3.connect(killed / db3.name)  # what the warning says to run
    merged.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    merged.close()
    source = BagImageSource(killed, ["/cam"])
    assert sum(1 for _ in source) == 60 and source.skipped == {}
