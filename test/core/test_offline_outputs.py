# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""`vggt-ros-reconstruct` checks every output path and name before any work (an unwritable --out-bag, an input
inside --out, a camera name the exports cannot take), and a failing output never costs the others."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import IMAGES, TINY
from support.bags import write_image_bag
from support.photos import panned_photographs
from vggt_ros.dataset import tum as tum_module
from vggt_ros.dataset.frame_files import why_not_copied
from vggt_ros.offline import main
from vggt_ros.preprocess import decode_image_file

FAST = ["--weights", str(TINY), "--device", "cpu", "--image-size", "154", "--no-loop-closure"]


@pytest.mark.parametrize("bag", ["/proc/vggt-ros-offline-test/run", "a-file/run"])
def test_an_unwritable_out_bag_is_named_before_any_work(bag, tmp_path, capsys):
    (tmp_path / "a-file").write_text("not a folder")
    bag = bag if bag.startswith("/") else str(tmp_path / bag)
    arguments = ["--images", str(IMAGES), "--out", str(tmp_path / "out"), "--out-bag", bag]
    assert main([*arguments, "--weights", str(tmp_path / "no-weights")]) == 1  # the weights are never looked at
    error = capsys.readouterr().err
    assert error.startswith(f"error: --out-bag {bag} ") and "Traceback" not in error


def test_an_out_bag_holding_out_is_refused_before_any_work(tmp_path, capsys):
    """The run created --out's parent, the bag's folder, and then refused the bag as existing, after the model
    loaded."""
    bag = tmp_path / "replay"
    arguments = ["--images", str(IMAGES), "--out", str(bag / "out"), "--out-bag", str(bag)]
    assert main([*arguments, "--weights", str(tmp_path / "no-weights")]) == 1  # the weights are never looked at
    error = capsys.readouterr().err
    assert error.startswith(f"error: --out-bag {bag} holds --out") and "Traceback" not in error
    assert not bag.exists()


@pytest.mark.parametrize("name", ["x.mcap", "x.db3", "x.bag"])
def test_an_out_bag_named_as_a_bag_file_is_refused_before_any_work(name, tmp_path, capsys):
    """--out-bag x.mcap made a folder x.mcap holding x.mcap.mcap."""
    bag = tmp_path / name
    arguments = ["--images", str(IMAGES), "--out", str(tmp_path / "out"), "--out-bag", str(bag)]
    assert main([*arguments, "--weights", str(tmp_path / "no-weights")]) == 1  # the weights are never looked at
    error = capsys.readouterr().err
    assert error.startswith(f"error: --out-bag {bag} names a bag file") and "rosbag2 folder" in error
    assert f"such as {tmp_path / 'x'}" in error
    assert not bag.exists() and not (tmp_path / "out").exists()


def test_a_run_that_reconstructs_nothing_leaves_no_out_bag(tmp_path, capsys):
    """An empty bag was left at --out-bag, and the next run was refused because it existed."""
    frames = [(10**9 + 10**8 * i, np.full((48, 64, 3), 40 * i, np.uint8)) for i in range(3)]
    bag = write_image_bag(
        tmp_path / "bag", "mcap", [("/cam", frames)], compressed=True, corrupt={(0, 0), (0, 1), (0, 2)}
    )
    out, out_bag = tmp_path / "out", tmp_path / "out_bag"
    arguments = ["--bag", str(bag), "--topics", "/cam", "--out", str(out), "--out-bag", str(out_bag), *FAST]
    assert main(arguments) == 1
    assert "nothing was reconstructed" in capsys.readouterr().err
    assert not out_bag.exists() and json.loads((out / "summary.json").read_text())["bag"] is None


@pytest.mark.parametrize("option", ["--images", "--tum"])
@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_an_input_inside_out_is_refused_and_nothing_is_removed(option, overwrite, tmp_path, capsys):
    # A nerfstudio-style project: --images project/images with --out project; a TUM sequence's own depth/ folder.
    project = tmp_path / "project"
    shutil.copytree(IMAGES, project / "images")
    (project / "depth").mkdir()
    (project / "depth" / "1305031102.160407.png").write_bytes(b"the sensor's depth")
    given = project / "images" if option == "--images" else project
    before = sorted(p.relative_to(project) for p in project.rglob("*"))
    assert main([option, str(given), "--out", str(project), *overwrite, "--weights", str(tmp_path / "none")]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"error: {option} {given} lies inside --out {project}") and "Traceback" not in error
    assert sorted(p.relative_to(project) for p in project.rglob("*")) == before
    assert (project / "depth" / "1305031102.160407.png").read_bytes() == b"the sensor's depth"


@pytest.mark.parametrize("name", ["front cam", "..", ".", "left-cam", "1left"])
def test_a_camera_name_the_exports_or_the_bag_cannot_take_is_refused_before_any_work(name, tmp_path, capsys):
    # Each name becomes a folder of the exports, a trajectory file and, with --out-bag, the node's topics.
    out = tmp_path / "out"
    arguments = ["--images", str(IMAGES), "--out", str(out), "--camera-names", name]
    assert main([*arguments, "--weights", str(tmp_path / "no-weights")]) == 1  # the weights are never looked at
    error = capsys.readouterr().err
    assert error.startswith("error: --camera-names must be distinct ROS name tokens") and repr(name) in error
    assert "Traceback" not in error
    assert not out.exists() or not any(out.iterdir())


def test_a_trajectory_that_cannot_be_written_costs_no_other_output(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, frame in enumerate(panned_photographs(3)):
        Image.fromarray(frame).save(folder / f"frame_{index:03d}.png")

    def refusing_writer_for_tests(*args, **kwargs):
        raise ValueError("trajectory.tum: stamps must strictly increase (a test double's refusal)")

    monkeypatch.setattr(tum_module, "write_tum_trajectory", refusing_writer_for_tests)
    out = tmp_path / "out"
    assert main(["--images", str(folder), "--out", str(out), *FAST]) == 1  # an output failed: said at the end
    assert capsys.readouterr().err.startswith("error: trajectory: trajectory.tum: stamps must strictly increase")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["merged"] >= 1 and summary["trajectory"] is None
    assert any("stamps must strictly increase" in problem for problem in summary["output_errors"])
    assert (out / "map.ply").is_file() and (out / "transforms.json").is_file()


def test_a_dataset_of_two_unrelated_segments_says_so_and_names_no_point_cloud(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, frame in enumerate(panned_photographs(8)):
        Image.fromarray(frame).save(folder / f"frame_{index:03d}.png")
    # The tiny model's random weights align few windows: with windows of 3 the sliding window loses tracking.
    sliding = ["--sliding-window", "--window-size", "3"]
    runs = {}
    for mode, extra in (("joint", []), ("sliding", sliding)):
        out = tmp_path / mode
        assert main(["--images", str(folder), "--out", str(out), *FAST, *extra]) == 0
        runs[mode] = (json.loads((out / "summary.json").read_text()), json.loads((out / "transforms.json").read_text()))
    summary, transforms = runs["sliding"]
    new_segment = next(w for w in summary["per_window"] if w["status"] == "new_segment")["last_image"]
    exported = sorted(frame["file_path"] for frame in transforms["frames"])
    assert exported[0] < f"images/{new_segment}" <= exported[-1], exported  # frames of both segments
    assert summary["dataset_parts"] == 2
    assert "ply_file_path" not in transforms  # map.ply holds the new segment only
    summary, transforms = runs["joint"]  # one forward pass: one world, one part
    assert summary["dataset_parts"] == 1 and transforms["ply_file_path"] == "map.ply"


@pytest.mark.parametrize("write_fails_first", [False, True])
def test_an_out_bag_the_disk_cannot_finish_says_readers_refuse_it_until_recovered(
    write_fails_first, tmp_path, monkeypatch, capsys
):
    """A full disk while the bag's summary is written: the error said only "messages written so far are kept",
    while readers refuse an mcap without its summary."""
    from vggt_ros.ros import bag_writer

    def disk_full(self, *args, **kwargs):  # a test double of a full disk
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bag_writer.BagWriter, "close", disk_full)
    if write_fails_first:
        monkeypatch.setattr(bag_writer.BagWriter, "write", disk_full)
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, frame in enumerate(panned_photographs(3)):
        Image.fromarray(frame).save(folder / f"frame_{index:03d}.png")
    out, bag = tmp_path / "out", tmp_path / "bag"
    assert main(["--images", str(folder), "--out", str(out), "--out-bag", str(bag), *FAST]) == 1
    errors = json.loads((out / "summary.json").read_text())["output_errors"]
    assert len(errors) == 1 and errors[0].startswith(f"--out-bag {bag}: ")
    assert "could not be finished" in errors[0] and "readers refuse it until it is recovered" in errors[0]
    assert ("messages written so far are kept" in errors[0]) is write_fails_first
    assert (out / "map.ply").is_file()  # the other outputs are whole


def _as_nerfstudio_reads(path):
    """An image file as nerfstudio's InputDataset.get_numpy_image reads it (its documented convention, written
    down here): numpy's array of the Pillow image as uint8, grey (H, W) repeated to 3 channels, then it must be
    (H, W, 3 | 4), and get_image keeps the first 3 as RGB."""
    with Image.open(path) as image:
        pixels = np.array(image, dtype="uint8")
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    assert pixels.ndim == 3 and pixels.shape[2] in (3, 4), f"nerfstudio refuses {path.name}: shape {pixels.shape}"
    return pixels[:, :, :3]


def test_images_whose_colour_mode_reads_wrong_in_nerfstudio_are_written_as_the_pixels_the_model_saw(tmp_path):
    """A palette PNG read as its palette indices and a CMYK JPEG as RGBA: copied as they were, the dataset's
    images showed nerfstudio other colours than the model saw."""
    folder = tmp_path / "photos"
    folder.mkdir()
    # Colour frames only: the tiny model's random weights answer a grey frame with an unusable camera.
    modes = ["RGB", "P", "RGB", "CMYK", "RGB", "RGB"]
    for index, (frame, mode) in enumerate(zip(panned_photographs(6), modes)):
        suffix = "jpg" if mode == "CMYK" else "png"
        Image.fromarray(frame).convert(mode).save(folder / f"frame_{index:03d}.{suffix}")
    out = tmp_path / "out"
    assert main(["--images", str(folder), "--out", str(out), *FAST]) == 0
    frames = json.loads((out / "transforms.json").read_text())["frames"]
    assert len(frames) == 6
    for frame in frames:
        written = out / frame["file_path"]
        seen = decode_image_file(folder / written.name)
        error = np.abs(_as_nerfstudio_reads(written).astype(int) - seen).mean()
        # A JPEG name is written as a JPEG again (quality 95); the CMYK one read as RGBA was 70 levels off.
        assert error <= (3.0 if written.suffix == ".jpg" else 0.0), (written.name, error)
    assert (out / "images" / "frame_000.png").read_bytes() == (folder / "frame_000.png").read_bytes()  # a copy
    assert json.loads((out / "summary.json").read_text())["converted_images"] == 2


def test_a_photo_with_an_exif_orientation_is_written_as_the_pixels_the_model_saw(tmp_path):
    """A phone's portrait JPEG, stored sideways with Orientation 6, was copied as it was: transforms.json and
    cameras.txt gave its stored size, 160 x 120, while OpenCV (which turns it upright) read it as 120 x 160."""
    import cv2

    path = tmp_path / "portrait.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to show
    Image.fromarray(panned_photographs(1)[0]).save(path, exif=exif)
    assert why_not_copied(path) == (
        "its EXIF orientation 6 would turn it in OpenCV's reader, not in the model's or COLMAP's"
    )
    plain = tmp_path / "plain.jpg"
    Image.fromarray(panned_photographs(1)[0]).save(plain)
    assert why_not_copied(plain) is None
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, frame in enumerate(panned_photographs(3)):
        Image.fromarray(frame).save(folder / f"frame_{index:03d}.jpg", exif=exif)
    out = tmp_path / "out"
    assert main(["--images", str(folder), "--out", str(out), *FAST]) == 0
    for frame in json.loads((out / "transforms.json").read_text())["frames"]:
        read_by_opencv = cv2.imread(str(out / frame["file_path"]))
        assert read_by_opencv.shape[:2] == (frame["h"], frame["w"])  # the size the exports describe
        assert (frame["h"], frame["w"]) == decode_image_file(folder / Path(frame["file_path"]).name).shape[:2]


def test_a_rotated_webp_is_written_as_the_pixels_the_model_saw_without_loss_and_says_why(tmp_path, caplog):
    """An EXIF-rotated lossless WebP was re-encoded at Pillow's default lossy quality (max |diff| 96 against what the
    model saw), and the log blamed its colour mode."""
    exif = Image.Exif()
    exif[0x0112] = 6
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, frame in enumerate(panned_photographs(3)):
        Image.fromarray(frame).save(folder / f"frame_{index:03d}.webp", lossless=True, exif=exif)
    out = tmp_path / "out"
    with caplog.at_level("INFO", logger="vggt_ros.offline"):
        assert main(["--images", str(folder), "--out", str(out), *FAST]) == 0
    for path in sorted(folder.iterdir()):
        written = np.asarray(Image.open(out / "images" / path.name).convert("RGB"))
        np.testing.assert_array_equal(written, decode_image_file(path))
    assert "not copied: its EXIF orientation 6 would turn it in OpenCV's reader" in caplog.text


@pytest.mark.parametrize(
    ("mode", "readable"),
    [("RGB", True), ("RGBA", True), ("L", True), ("P", False), ("LA", False), ("CMYK", False), ("1", False)],
)
def test_only_modes_nerfstudio_reads_as_they_are_are_copied(mode, readable, tmp_path):
    path = tmp_path / ("image.jpg" if mode == "CMYK" else "image.png")
    Image.new(mode, (8, 6), color=(10, 20, 30, 255) if mode == "RGBA" else None).save(path)  # opaque RGBA
    assert (why_not_copied(path) is None) is readable


def test_a_transparent_rgba_image_is_written_as_the_white_composite_the_model_saw(tmp_path, caplog):
    """A background-removed photo (black under alpha 0) was copied as it was: the model saw white there, so the
    map's colours and the depth described a white backdrop that COLMAP and OpenCV, reading the stored black, do not
    see in the dataset's image."""
    import cv2

    folder = tmp_path / "photos"
    folder.mkdir()
    frames = panned_photographs(3)
    for index, frame in enumerate(frames):
        rgba = np.dstack([frame, np.full(frame.shape[:2], 255, np.uint8)])
        if index == 1:
            rgba[:, : frame.shape[1] // 3] = 0  # the left third transparent, black underneath
        Image.fromarray(rgba, "RGBA").save(folder / f"frame_{index:03d}.png")
    out = tmp_path / "out"
    with caplog.at_level("INFO", logger="vggt_ros.offline"):
        assert main(["--images", str(folder), "--out", str(out), *FAST]) == 0
    transparent = out / "images" / "frame_001.png"
    read_by_opencv = cv2.imread(str(transparent), cv2.IMREAD_COLOR)[:, :, ::-1]
    np.testing.assert_array_equal(read_by_opencv[:, : frames[1].shape[1] // 3], 255)  # white, as the model saw
    np.testing.assert_array_equal(read_by_opencv, decode_image_file(folder / "frame_001.png"))
    assert "frame_001.png" in caplog.text and "its transparent pixels are white to the model" in caplog.text
    for opaque in ("frame_000.png", "frame_002.png"):  # opaque RGBA reads alike everywhere: copied
        assert (out / "images" / opaque).read_bytes() == (folder / opaque).read_bytes()
    assert json.loads((out / "summary.json").read_text())["converted_images"] == 1


@pytest.mark.parametrize("option", ["--out", "--out-bag", "--images"])
def test_an_empty_path_is_refused_at_parsing_not_taken_for_the_current_folder(tmp_path, capsys, option):
    """``--out ""`` (an unset shell variable) was the current folder: refused only when an input happened to lie
    in it, else the run wrote into wherever the command was started."""
    given = {"--images": str(tmp_path), "--out": str(tmp_path / "out"), option: ""}
    with pytest.raises(SystemExit):
        main([*(part for pair in given.items() for part in pair), *FAST])
    assert f"argument {option}: is empty; give a path" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
