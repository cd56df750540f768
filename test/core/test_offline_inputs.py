# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The offline command's inputs (`vggt_ros.recording.inputs`) on the images a real folder or bag holds: damaged,
16-bit, float, empty and over-elongated images are skipped and named while the rest of the run goes on; file names
the dataset export would refuse fail before any work; a bag whose stamps go back marks the frame set that starts
over. Folders are written with Pillow (and OpenCV for 16-bit colour), bags with rosbags; runs go through the
command with the tiny model, their summaries read back as strict JSON."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from rosbags.highlevel import AnyReader

from conftest import TINY
from support.bags import NANOSECONDS, write_image_bag, write_raw_bag
from support.photos import panned_photographs
from vggt_ros.dataset.frames import frame_stem
from vggt_ros.files import replace_atomically
from vggt_ros.image_encoding import ImageFormatError
from vggt_ros.offline import main
from vggt_ros.preprocess import output_size
from vggt_ros.recording.bag_reader import BagImageSource
from vggt_ros.recording.inputs import (
    FolderInput,
    bag_frame_sets,
    check_export_names,
    common_model_hw,
    image_files,
    needs_padding,
)

FAST = ["--weights", str(TINY), "--device", "cpu", "--image-size", "154", "--no-loop-closure"]
START_NS = 1_700_000_000 * NANOSECONDS
PERIOD_NS = 100_000_000
# 2000x50 (WxH): at --image-size 154 (crop) its height rounds to 0 model pixels: round(50 * 154 / 2000 / 14) = 0.
ELONGATED_HW = (50, 2000)


def _strict_json(path: Path) -> dict:
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def _photo_folder(folder: Path, count: int = 4) -> list[str]:
    """``count`` frames of a panned photograph as frame_000.png ... (names returned)."""
    folder.mkdir()
    names = []
    for index, frame in enumerate(panned_photographs(count)):
        names.append(f"frame_{index:03d}.png")
        Image.fromarray(frame).save(folder / names[-1])
    return names


def _run_folder(tmp_path: Path, folder: Path, *extra: str) -> tuple[int, Path]:
    out = tmp_path / "out"
    return main(["--images", str(folder), "--out", str(out), *FAST, *extra]), out


def _damage_second_idat(path: Path) -> None:
    """Overwrite the type of the PNG's second IDAT chunk: Pillow reads the header, then raises SyntaxError ("broken
    PNG file") while decoding."""
    data = bytearray(path.read_bytes())
    position, idats = 8, []
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        if data[position + 4 : position + 8] == b"IDAT":
            idats.append(position)
        position += 12 + length
    assert len(idats) >= 2, "the test image must span several IDAT chunks"
    data[idats[1] + 4 : idats[1] + 8] = b"\x00\x01\x02\x03"
    path.write_bytes(bytes(data))


# ----------------------------------------------------------------------------------- undecodable files
def test_a_png_with_a_damaged_chunk_is_skipped_and_named_and_the_run_finishes(tmp_path):
    folder = tmp_path / "images"
    _photo_folder(folder)
    noise = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)  # 360 kB: several IDAT chunks
    Image.fromarray(noise).save(folder / "frame_001b.png")
    _damage_second_idat(folder / "frame_001b.png")
    with pytest.raises(SyntaxError):  # what the file does to Pillow
        Image.open(folder / "frame_001b.png").load()

    status, out = _run_folder(tmp_path, folder)

    summary = _strict_json(out / "summary.json")
    assert list(summary["skipped_inputs"]) == ["frame_001b.png"]
    assert "broken PNG file" in summary["skipped_inputs"]["frame_001b.png"]
    assert summary["images"] == 4 and summary["exported_frames"] == 4 and summary["merged"] >= 1
    assert status == 0


def _wide_files(folder: Path) -> dict[str, str]:
    """Files of more than 8 bits per channel, as depth cameras and scientific pipelines write them: name -> Pillow
    mode it opens as. 16-bit colour comes from OpenCV (Pillow writes no 16-bit colour PNG or TIFF)."""
    ramp = (np.arange(120 * 160, dtype=np.uint32).reshape(120, 160) * 3).astype(np.uint16)
    Image.fromarray(ramp).save(folder / "depth_mm.png")  # I;16
    Image.fromarray(ramp.astype(np.float32) / 65535).save(folder / "depth_m.tiff")  # F
    colour = np.stack([ramp, ramp[::-1], 65535 - ramp], axis=2)
    assert cv2.imwrite(str(folder / "colour16.png"), colour)
    assert cv2.imwrite(str(folder / "colour16_tiff.tif"), colour)
    names = ("depth_mm.png", "depth_m.tiff", "colour16.png", "colour16_tiff.tif")
    return {name: Image.open(folder / name).mode for name in names}


def test_16_bit_and_float_files_are_skipped_with_the_reason_not_decoded_to_garbage(tmp_path):
    folder = tmp_path / "images"
    _photo_folder(folder)
    modes = _wide_files(folder)
    assert modes == {"depth_mm.png": "I;16", "depth_m.tiff": "F", "colour16.png": "RGB", "colour16_tiff.tif": "RGB"}
    # What the official loader's convert("RGB") makes of the grey ones: clipped to white, or to black.
    assert (np.asarray(Image.open(folder / "depth_mm.png").convert("RGB")) == 255).mean() > 0.99
    assert (np.asarray(Image.open(folder / "depth_m.tiff").convert("RGB")) <= 1).all()

    status, out = _run_folder(tmp_path, folder)

    summary = _strict_json(out / "summary.json")
    assert sorted(summary["skipped_inputs"]) == sorted(modes)
    for name, reason in summary["skipped_inputs"].items():
        assert "more than 8 bits per channel" in reason and name in reason
    assert summary["images"] == 4 and summary["exported_frames"] == 4
    assert status == 0


# ----------------------------------------------------------------------------------- images no model input fits
def test_a_file_too_elongated_for_the_image_size_is_skipped_and_the_model_size_comes_from_the_others(tmp_path):
    folder = tmp_path / "images"
    _photo_folder(folder)
    Image.fromarray(np.full((*ELONGATED_HW, 3), 90, np.uint8)).save(folder / "frame_001b.png")

    status, out = _run_folder(tmp_path, folder)

    summary = _strict_json(out / "summary.json")
    assert list(summary["skipped_inputs"]) == ["frame_001b.png"]
    assert "too elongated" in summary["skipped_inputs"]["frame_001b.png"]
    assert summary["model_hw"] == list(output_size(120, 160, "crop", 154)) == [112, 154]
    assert summary["images"] == 4 and summary["exported_frames"] == 4
    assert status == 0


def test_one_empty_image_message_is_skipped_and_counted_and_the_run_goes_on(tmp_path):
    # Some drivers publish a 0x0 image at start-up.
    frames = [(START_NS - 50_000_000, np.zeros((0, 0, 3), np.uint8))]
    frames += [(START_NS + PERIOD_NS * i, frame) for i, frame in enumerate(panned_photographs(4))]
    bag = write_image_bag(tmp_path / "bag", "mcap", [("/cam/image_raw", frames)])
    out = tmp_path / "out"

    status = main(["--bag", str(bag), "--topics", "/cam/image_raw", "--out", str(out), *FAST])

    summary = _strict_json(out / "summary.json")
    assert summary["skipped_inputs"] == {"/cam/image_raw": {"size": 1}}
    assert summary["frame_sets"] == 4 and summary["exported_frames"] == 4
    assert summary["model_hw"] == [112, 154]
    assert status == 0


def test_the_common_model_size_comes_from_the_usable_image_sizes_only():
    usable = {(120, 160), (300, 451)}
    expected = (max(output_size(h, w, "crop", 154)[0] for h, w in usable), 154)
    assert common_model_hw(usable | {ELONGATED_HW, (0, 0), (0, 640)}, "crop", 154) == expected == (112, 154)
    assert not needs_padding({(120, 160), ELONGATED_HW, (0, 0)}, "crop", 154)
    assert common_model_hw({ELONGATED_HW, (0, 0)}, "crop", 154) is None


def test_a_file_whose_header_reads_but_whose_pixels_do_not_sets_no_model_size(tmp_path, caplog):
    """A portrait PNG cut to half its bytes (its header reads) among landscape photographs: skipped when decoded,
    but its size had already made the common model size square, so every usable frame was padded with white."""
    folder = tmp_path / "images"
    _photo_folder(folder)
    portrait = np.random.default_rng(0).integers(0, 256, (160, 120, 3), dtype=np.uint8)
    Image.fromarray(portrait).save(folder / "frame_001b.png")
    data = (folder / "frame_001b.png").read_bytes()
    (folder / "frame_001b.png").write_bytes(data[: len(data) // 2])

    source = FolderInput(folder, "crop", 154)

    assert source.model_hw == output_size(120, 160, "crop", 154) == (112, 154)
    assert [path.name for path in source.files] == [f"frame_{i:03d}.png" for i in range(4)]
    assert list(source.skipped) == ["frame_001b.png"] and "truncated" in source.skipped["frame_001b.png"]


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "jpeg"])
def test_a_bag_message_whose_size_reads_but_whose_pixels_do_not_sets_no_model_size(tmp_path, compressed):
    """A portrait message that cannot be decoded (a JPEG cut to half its bytes, raw data a row short) among
    landscape frames: its size, read from the fields or the JPEG header, padded every usable frame to a square."""
    frames = [(START_NS + PERIOD_NS * i, frame) for i, frame in enumerate(panned_photographs(4))]
    portrait = np.random.default_rng(0).integers(0, 256, (160, 120, 3), dtype=np.uint8)  # its header is in the half
    frames.insert(2, (START_NS + PERIOD_NS + PERIOD_NS // 2, portrait))
    bag = write_image_bag(tmp_path / "bag", "mcap", [("/cam", frames)], compressed=compressed, corrupt=[(0, 2)])
    source = BagImageSource(bag, ["/cam"])

    assert source.image_sizes() == {(120, 160)}
    assert common_model_hw(source.image_sizes(), "crop", 154) == (112, 154)


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "jpeg"])
def test_a_bag_image_too_elongated_is_skipped_and_counted_by_the_assembly(tmp_path, compressed):
    photos = panned_photographs(4)
    frames = [(START_NS + PERIOD_NS * i, frame) for i, frame in enumerate(photos)]
    frames.insert(2, (START_NS + PERIOD_NS + PERIOD_NS // 2, np.full((*ELONGATED_HW, 3), 90, np.uint8)))
    bag = write_image_bag(tmp_path / "bag", "mcap", [("/cam", frames)], compressed=compressed)
    source = BagImageSource(bag, ["/cam"])

    items = list(bag_frame_sets(source, ("camera0",), 10, 0.02, "crop", 154))

    assert [item.frame_set.stamps_ns[0] for item in items] == [START_NS + PERIOD_NS * i for i in range(4)]
    assert source.skipped == {"/cam": {"too_elongated": 1}}
    assert common_model_hw(source.image_sizes(), "crop", 154) == (112, 154)


def test_a_bag_of_one_image_every_ten_seconds_keeps_every_image(tmp_path):
    """A throttled topic (one image every 10 s): the forward-jump rule, on the stamp gap alone, dropped every image
    after the first as "ahead". Stamps and log times move together: nothing is ahead."""
    photos = panned_photographs(5)
    records = [
        ("/cam", START_NS + 10 * NANOSECONDS * n, START_NS + 10 * NANOSECONDS * n, p) for n, p in enumerate(photos)
    ]
    source = BagImageSource(write_raw_bag(tmp_path / "bag", records), ["/cam"])
    assert len(list(bag_frame_sets(source, ("camera0",), 10, 0.02, "crop", 154))) == 5 and not source.skipped


def test_whether_a_bag_image_is_too_elongated_follows_the_image_size(tmp_path):
    """The node's check, run offline, took the node's default 518: at --image-size 1036 a 2000 x 20 image (a row of
    patches there, none at 518) was dropped as too elongated."""
    frames = [(START_NS, np.full((20, 2000, 3), 90, np.uint8))]
    source = BagImageSource(write_image_bag(tmp_path / "bag", "mcap", [("/cam", frames)]), ["/cam"])
    assert output_size(20, 2000, "crop", 1036) == (14, 1036)
    with pytest.raises(ImageFormatError):
        output_size(20, 2000, "crop", 518)
    assert len(list(bag_frame_sets(source, ("camera0",), 10, 0.02, "crop", 1036))) == 1 and not source.skipped


# ----------------------------------------------------------------------------------- names the export refuses
@pytest.mark.parametrize(
    "names, offending, rule",
    [
        (["frame_000.png", "frame 001.png", "frame_002.png"], ["'frame 001.png'"], "without spaces"),
        (["frame_000.png", "frame_001.png", "frame_001.jpg"], ["'frame_001.jpg'", "'frame_001.png'"], "stem"),
        (["frame_000.png", f"{'x' * 237}.png"], [f"'{'x' * 237}.png'"], "too long"),  # it fits; its temporary not
    ],
    ids=["space", "same stem", "long"],
)
def test_a_file_name_the_export_refuses_fails_before_the_model_loads(tmp_path, capsys, names, offending, rule):
    folder = tmp_path / "images"
    folder.mkdir()
    for name, frame in zip(names, panned_photographs(len(names))):
        Image.fromarray(frame).save(folder / name)
    out = tmp_path / "out"

    # Weights that do not exist: a run that got as far as loading the model would fail on them instead.
    status = main(["--images", str(folder), "--out", str(out), "--weights", str(tmp_path / "no_weights.pt")])

    error = capsys.readouterr().err
    assert status == 1
    assert all(name in error for name in offending) and rule in error
    assert "no_weights" not in error and not (out / "summary.json").exists()


def test_the_longest_name_the_export_takes_is_written_through_its_temporaries(tmp_path):
    """A 247-byte name (ext4 takes 255) passed every check, then the export failed after the inference with "File
    name too long": the atomic writer's temporary name is 18 bytes longer."""
    fits, too_long = f"{'x' * 233}.png", f"{'x' * 233}.jpeg"
    check_export_names([fits], "the folder")
    with pytest.raises(ValueError, match=f"image name '{too_long}' is too long: .* shorten it by 1 bytes or more"):
        check_export_names([too_long], "the folder")
    for name in (fits, f"{frame_stem(fits)}.npy"):  # the image, and its depth file
        replace_atomically(tmp_path / name, lambda temporary: temporary.write_bytes(b"x"))
        assert (tmp_path / name).read_bytes() == b"x"


def test_an_image_listed_twice_is_named_as_such_not_as_a_shared_stem():
    """rgb.txt listing one file twice was told to "give them different stems"."""
    with pytest.raises(ValueError) as err:
        check_export_names(["a.png", "b.png", "a.png"], "rgb.txt")
    assert str(err.value) == (
        "image names in rgb.txt that the dataset export cannot write: 2 images are named 'a.png' (one file listed "
        "again, or files of that name in other folders), and the export writes one file of each name; list each "
        "image once, under a name of its own"
    )


def test_every_offending_name_is_named_in_one_error(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name, frame in zip(["a b.png", "c.png", "c.jpg", "d.png"], panned_photographs(4)):
        Image.fromarray(frame).save(folder / name)

    with pytest.raises(ValueError) as caught:
        FolderInput(folder, "crop", 154)

    message = str(caught.value)
    assert "'a b.png'" in message and "'c.jpg', 'c.png'" in message and "'d.png'" not in message


# ----------------------------------------------------------------------------------- stamps going back in a bag
def _one_camera_restarts(tmp_path: Path, stamp_offsets_ns: list[int]) -> tuple[list[bool], dict, list[str]]:
    """The restart flags of the frame sets of a one-camera bag whose n-th image is stamped START_NS + offset n
    (received 100 ms apart), what was skipped, and the images' names."""
    photos = panned_photographs(len(stamp_offsets_ns))
    records = [
        ("/cam", START_NS + PERIOD_NS * index, START_NS + offset, photo)
        for index, (offset, photo) in enumerate(zip(stamp_offsets_ns, photos))
    ]
    source = BagImageSource(write_raw_bag(tmp_path / "bag", records), ["/cam"])
    items = list(bag_frame_sets(source, ("camera0",), 10, 0.02, "crop", 154))
    return [item.restart for item in items], source.skipped, [item.names[0] for item in items]


def test_images_left_unpaired_when_one_cameras_clock_went_back_name_the_clocks_not_the_slop(tmp_path, caplog):
    """A two-camera bag in which camera b's driver restarted alone at its 5th image (its stamps start over from the
    recording's first, camera a's go on): the images after it can never pair. The warning and summary.json said
    only "no image of every other camera within --slop", and the advice was to raise --slop."""
    photos = panned_photographs(10)
    records = []
    for index, photo in enumerate(photos):
        received = START_NS + PERIOD_NS * index
        records.append(("/a", received, received, photo))
        b_stamp = received if index < 5 else START_NS + PERIOD_NS * (index - 5)
        records.append(("/b", received + 1_000, b_stamp + 1_000, np.ascontiguousarray(photo[:, ::-1])))
    bag = write_raw_bag(tmp_path / "bag", records)
    out = tmp_path / "out"
    assert main(["--bag", str(bag), "--topics", "/a,/b", "--out", str(out), *FAST]) == 0
    summary = json.loads((out / "summary.json").read_text())
    # Frame sets 0-4 paired; after the jump b's clock is 0.5 s behind a's: its images from there never pair.
    assert summary["frame_sets"] == 5 and summary["skipped_inputs"]["/b"]["unpaired"] == 4
    reason = summary["unpaired_reason"]
    assert reason.startswith("no image of every other camera within --slop 0.02 s; ")
    assert "since their last frame set the cameras' clocks moved apart" in reason
    assert "'camera0' +0.0 ms, 'camera1' -500.0 ms): one went back or jumped" in reason
    warnings = [r.getMessage() for r in caplog.records if "formed no frame set" in r.getMessage()]
    assert warnings and all(reason in warning for warning in warnings)


def test_unpaired_images_of_cameras_whose_clocks_agree_name_the_slop_alone(tmp_path):
    """Camera b lost one image: camera a's image of that instant has no partner, and the cameras' clocks agree,
    though b's images reach the recorder 40 ms later (b's stamps 40 ms behind their log times were taken for a clock
    off by more than --slop)."""
    photos = panned_photographs(4)
    records = [("/a", START_NS + PERIOD_NS * i, START_NS + PERIOD_NS * i, p) for i, p in enumerate(photos)]
    records += [
        ("/b", START_NS + PERIOD_NS * i + 40_000_000, START_NS + PERIOD_NS * i, p)
        for i, p in enumerate(photos)
        if i != 1
    ]
    source = BagImageSource(write_raw_bag(tmp_path / "bag", records), ["/a", "/b"])
    assert len(list(bag_frame_sets(source, ("a", "b"), 10, 0.02, "crop", 154))) == 3
    assert source.skipped == {"/a": {"unpaired": 1}}
    assert source.unpaired_reason == "no image of every other camera within --slop 0.02 s"


@pytest.mark.parametrize(
    "offsets, stale, expected",
    [
        # A restarted driver or simulation: 10 s into its clock, then from 0 again.
        ([10 * NANOSECONDS + PERIOD_NS * i for i in range(3)] + [PERIOD_NS * i for i in range(3)], [3], [3]),
        # The same stamps recorded twice (a replay recorded with --loop).
        ([PERIOD_NS * i for i in range(3)] * 2, [3], [3]),
        # Twice back.
        ([PERIOD_NS * i for i in range(3)] * 3, [3, 6], [3, 5]),
    ],
    ids=["stamps jump back", "stamps repeat", "twice"],
)
def test_the_frame_set_after_stamps_go_back_is_marked_restart(tmp_path, offsets, stale, expected):
    """The first image back is stale (dropped and counted); the next one from the earlier time confirms the jump
    (`vggt_ros.live.stamps`), and its frame set is marked."""
    restarts, skipped, names = _one_camera_restarts(tmp_path, offsets)
    kept = [offset for index, offset in enumerate(offsets) if index not in stale]
    assert len(restarts) == len(kept) and skipped == {"/cam": {"stale": len(stale)}}
    assert [index for index, restart in enumerate(restarts) if restart] == expected
    # Every image keeps a name of its own (the exports refuse a name twice): after the k-th restart "_k" follows
    # the stamp.
    restarts_before = np.cumsum(restarts)
    assert names == [
        f"camera0/{START_NS + offset}{f'_{k}' if k else ''}.png" for offset, k in zip(kept, restarts_before)
    ]


@pytest.mark.parametrize(
    "offsets",
    [[PERIOD_NS * i for i in range(5)], [0, PERIOD_NS, PERIOD_NS, 2 * PERIOD_NS, 3 * PERIOD_NS]],
    ids=["increasing", "one stamp sent twice"],
)
def test_no_frame_set_is_marked_restart_while_stamps_do_not_go_back(tmp_path, offsets):
    restarts, skipped, _ = _one_camera_restarts(tmp_path, offsets)
    assert not any(restarts)
    assert len(restarts) == len(set(offsets))
    assert skipped == ({"/cam": {"duplicate_stamp": 1}} if len(set(offsets)) < len(offsets) else {})


def test_two_cameras_mark_only_the_first_frame_set_after_the_jump(tmp_path):
    photos = panned_photographs(6)
    records = []
    log_ns = START_NS
    for index, stamp_ns in enumerate(
        [START_NS + 10 * NANOSECONDS + PERIOD_NS * i for i in range(3)] + [START_NS + PERIOD_NS * i for i in range(3)]
    ):
        for camera, topic in enumerate(("/left", "/right")):
            records.append((topic, log_ns, stamp_ns + camera * 1_000_000, photos[index]))
            log_ns += PERIOD_NS // 2
    source = BagImageSource(write_raw_bag(tmp_path / "bag", records), ["/left", "/right"])

    items = list(bag_frame_sets(source, ("left", "right"), 10, 0.02, "crop", 154))

    # Each camera's first image back is stale; the left's second confirms the jump, and its frame set is marked.
    assert [item.restart for item in items] == [False, False, False, True, False]
    assert [item.frame_set.stamps_ns[0] for item in items][3] == START_NS + PERIOD_NS
    assert source.skipped == {"/left": {"stale": 1}, "/right": {"stale": 1}}


@pytest.mark.parametrize("mode", [[], ["--sliding-window", "--window-size", "3"]], ids=["joint", "sliding window"])
def test_a_bag_recorded_twice_starts_a_new_world_and_writes_every_output(tmp_path, mode):
    # The same stamps twice (a replay recorded with --loop): the run restarts as the node does, instead of one
    # window holding a stamp twice (joint: the window failed; sliding: a later one did) or a trajectory going back.
    offsets = [PERIOD_NS * i for i in range(4)] * 2
    photos = panned_photographs(len(offsets))
    records = [("/cam", START_NS + PERIOD_NS * n, START_NS + offset, photos[n]) for n, offset in enumerate(offsets)]
    bag = write_raw_bag(tmp_path / "bag", records)
    out = tmp_path / "out"
    assert main(["--bag", str(bag), "--topics", "/cam", "--out", str(out), *FAST, *mode]) == 0
    summary = _strict_json(out / "summary.json")
    statuses = [window["status"] for window in summary["per_window"]]
    assert statuses.count("initialized") == 2 and "failed" not in statuses, statuses
    assert summary["output_errors"] == [] and summary["dataset_parts"] == 2
    # The trajectory holds the second recording only: its stamps, once each.
    lines = (out / "trajectory.tum").read_text().splitlines()
    stamps = [line.split()[0] for line in lines if not line.startswith("#")]
    assert stamps and len(stamps) == len(set(stamps)) and all(s.startswith("1700000000.") for s in stamps)
    # Both recordings' images are exported, under names of their own.
    names = sorted(frame["file_path"] for frame in _strict_json(out / "transforms.json")["frames"])
    assert any(name.endswith("_1.png") for name in names) and any(not name.endswith("_1.png") for name in names)


def _replay_of_a_recording_made_twice(tmp_path: Path, frames: int, topic: str, *mode: str) -> list[tuple[int, object]]:
    """--out-bag's (log time, message) on ``topic`` for a bag of ``frames`` images whose stamps were recorded twice."""
    offsets = [PERIOD_NS * i for i in range(frames)] * 2
    photos = panned_photographs(len(offsets))
    records = [("/cam", START_NS + PERIOD_NS * n, START_NS + offset, photos[n]) for n, offset in enumerate(offsets)]
    bag = write_raw_bag(tmp_path / "bag", records)
    out_bag = tmp_path / "replay"
    arguments = ["--bag", str(bag), "--topics", "/cam", "--out", str(tmp_path / "out"), "--out-bag", str(out_bag)]
    assert main([*arguments, *FAST, *mode]) == 0
    with AnyReader([out_bag]) as reader:
        return [
            (log_ns, reader.deserialize(raw, connection.msgtype))
            for connection, log_ns, raw in reader.messages()
            if connection.topic == topic
        ]


def test_the_out_bag_of_a_recording_that_starts_over_plays_in_the_order_the_node_published(tmp_path):
    """--out-bag logged each message at its header stamp: the second world's outputs (stamps from the start again)
    played between the first world's, so the path, the /tf and the map of two worlds interleaved. Log times now
    never go back; the header stamps stay the images' own."""
    played = _replay_of_a_recording_made_twice(tmp_path, 8, "/vggt/path", "--sliding-window", "--window-size", "3")
    log_times = [log_ns for log_ns, _ in played]
    stamps = [message.header.stamp.sec * NANOSECONDS + message.header.stamp.nanosec for _, message in played]
    assert log_times == sorted(log_times)
    going_back = [k for k in range(1, len(stamps)) if stamps[k] < stamps[k - 1]]
    # In play order: the first world's paths, then the second's, whose header stamps start again (once), played at
    # their own pace.
    assert len(going_back) == 1, stamps
    second = going_back[0]
    assert len(stamps) - second >= 2 and np.diff(log_times[second:]).tolist() == np.diff(stamps[second:]).tolist()


def test_the_out_bag_of_a_recording_made_twice_plays_the_second_world_after_the_first(tmp_path):
    """Joint windows of the same stamps recorded twice both end at the last stamp: the second world's messages were
    logged at the first's log time, with its stamps and other transforms (a repeat, which tf2 drops)."""
    tf = [(log_ns, message.transforms[0]) for log_ns, message in _replay_of_a_recording_made_twice(tmp_path, 4, "/tf")]
    # Every merged frame's camera pose, at its stamp: the first world's 4 images, then the second's 3 (its first
    # image back is stale: dropped, the next confirms the jump).
    stamps = [t.header.stamp.sec * NANOSECONDS + t.header.stamp.nanosec for _, t in tf]
    assert stamps == [START_NS + PERIOD_NS * i for i in range(4)] + [START_NS + PERIOD_NS * i for i in range(1, 4)]
    log_times = [log_ns for log_ns, _ in tf]
    assert all(earlier < later for earlier, later in zip(log_times, log_times[1:]))
    # The first world's messages are logged at their stamps (the latched /tf_static, written first at the newest
    # stamp, shifted them all by the window's length: a replay's clock ran 0.3 s ahead of every header stamp).
    assert log_times[:4] == stamps[:4]


def test_a_folder_s_frames_are_in_the_natural_order_of_their_names(tmp_path):
    """frame_1 .. frame_12 ran as frame_1, frame_10, frame_11, frame_12, frame_2, ...: time order scrambled, and the
    stamps with it."""
    folder = tmp_path / "photos"
    folder.mkdir()
    names = [f"frame_{k}.png" for k in range(1, 13)] + ["Zoom_13.PNG"]
    for name in names:
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / name)
    assert [p.name for p in image_files(folder)] == names
    stamps = {item.names[0]: item.frame_set.stamp_ns for item in FolderInput(folder, "crop", 14).frame_sets()}
    assert stamps["frame_2.png"] < stamps["frame_10.png"]


def test_folder_entries_of_no_image_suffix_are_named_not_left_out_unseen(tmp_path, caplog):
    folder = tmp_path / "photos"
    names = _photo_folder(folder, 2)
    Image.fromarray(panned_photographs(1)[0]).save(folder / "frame_002.gif")  # a frame of a format we do not read
    (folder / "times.txt").write_text("0.0\n0.1\n")
    (folder / ".DS_Store").write_bytes(b"")
    caplog.set_level("INFO", logger="vggt_ros.recording.inputs")
    assert [p.name for p in image_files(folder)] == names
    lines = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(lines) == 1 and "2 other entries: frame_002.gif, times.txt" in lines[0], lines
    for name in names:
        (folder / name).unlink()
    with pytest.raises(ValueError, match=r"no images .* it holds 2 other entries: frame_002.gif, times.txt$"):
        image_files(folder)


def test_a_link_to_an_image_that_is_gone_is_skipped_as_unreadable_and_named(tmp_path, caplog):
    """A link into an unmounted drive was left out as "not image files", at INFO, and summary.json said nothing."""
    folder = tmp_path / "photos"
    names = _photo_folder(folder, 2)
    (folder / "frame_002.png").symlink_to(tmp_path / "usb" / "frame_002.png")
    (folder / "frame_003.png").symlink_to(folder / names[0])  # a link to an image: read as the image
    caplog.set_level("INFO", logger="vggt_ros.recording.inputs")

    source = FolderInput(folder, "crop", 154)

    assert [path.name for path in source.files] == [*names, "frame_003.png"]
    assert dict(source.skipped) == {
        "frame_002.png": f"cannot read image file: it is a link to {tmp_path / 'usb' / 'frame_002.png'}, which does "
        "not exist"
    }
    assert "skipping" in caplog.text and "left out" not in caplog.text


def test_images_of_a_two_camera_bag_that_never_pair_are_counted_and_named(tmp_path, caplog):
    """They aged out of the synchroniser's queues, or waited at the end of the bag, and the summary never said."""
    photos = panned_photographs(5)
    records = []
    for index in range(5):
        stamp_ns = START_NS + PERIOD_NS * index
        records.append(("/left", stamp_ns, stamp_ns, photos[index]))
        if index < 4:  # the right camera's last image is missing: the left's last waits for it in vain
            records.append(("/right", stamp_ns, stamp_ns + 1_000_000, photos[index]))
        if index in (1, 2):  # two extra right images 50 ms off, beyond the 20 ms slop of everything on the left
            records.append(("/right", stamp_ns + 1, stamp_ns + PERIOD_NS // 2, photos[index]))
    source = BagImageSource(write_raw_bag(tmp_path / "bag", records), ["/left", "/right"])

    items = list(bag_frame_sets(source, ("left", "right"), 10, 0.02, "crop", 154))

    assert len(items) == 4
    assert source.skipped == {"/left": {"unpaired": 1}, "/right": {"unpaired": 2}}
    warnings = [r.getMessage() for r in caplog.records if "formed no frame set" in r.getMessage()]
    assert warnings == [
        "/left: 1 of its 5 images formed no frame set (no image of every other camera within --slop 0.02 s); they "
        "are counted in summary.json's skipped_inputs as 'unpaired'",
        "/right: 2 of its 6 images formed no frame set (no image of every other camera within --slop 0.02 s); they "
        "are counted in summary.json's skipped_inputs as 'unpaired'",
    ]


def test_a_bag_of_repeated_messages_is_counted_by_its_images_for_the_mode(tmp_path):
    """Six images each recorded three times, --max-frames 10: the run chose chunks ("18 images exceed
    --max-frames 10") for what is one joint pass of 6 images, and summary.json said "chunks"."""
    photos = panned_photographs(6)
    records = [
        ("/cam", START_NS + PERIOD_NS * n + copy, START_NS + PERIOD_NS * n, photo)
        for n, photo in enumerate(photos)
        for copy in range(3)
    ]
    out = tmp_path / "out"
    arguments = ["--bag", str(write_raw_bag(tmp_path / "bag", records)), "--topics", "/cam", "--out", str(out)]
    assert main([*arguments, *FAST, "--max-frames", "10"]) == 0
    summary = _strict_json(out / "summary.json")
    assert summary["mode"] == "joint" and summary["frame_sets"] == 6
    assert summary["skipped_inputs"] == {"/cam": {"duplicate_stamp": 12}}
