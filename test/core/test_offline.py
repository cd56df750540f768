# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""`vggt-ros-reconstruct`: folders and bags through the node's session with the tiny model, its three modes, its
exports (read back by pycolmap, rosbags, Pillow, strict JSON) and what it does with bad input."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import open3d as o3d
import pycolmap
import pytest
from evo.tools import file_interface
from PIL import Image
from rosbags.highlevel import AnyReader

from conftest import IMAGES, TINY
from support.bags import write_image_bag
from support.photos import panned_photographs
from support.pycolmap_poses import cam_from_world
from vggt_ros import session as session_module
from vggt_ros.offline import main
from vggt_ros.preprocess import preprocess_images

FAST = ["--weights", str(TINY), "--device", "cpu", "--image-size", "154"]


def _strict_json(path):
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture
def photo_folder(tmp_path):
    """Six same-size frames of a panned photograph as PNG files (the tiny model answers them with usable cameras
    at --image-size 154; its random weights give some other inputs an unusable field of view)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, frame in enumerate(panned_photographs(6)):
        Image.fromarray(frame).save(folder / f"frame_{index:03d}.png")
    return folder


def test_a_folder_that_fits_runs_in_one_joint_pass_and_writes_every_export(tmp_path, photo_folder):
    out = tmp_path / "out"
    assert main(["--images", str(photo_folder), "--out", str(out), *FAST]) == 0
    summary = _strict_json(out / "summary.json")
    files = sorted(p.name for p in photo_folder.iterdir())
    assert summary["mode"] == "joint" and summary["windows"] == 1 and summary["images"] == len(files)
    assert summary["per_window"][0]["images"] == len(files)
    assert summary["runtime"] == {"backend": "torch", "device": "cpu", "precision": "fp32", "weights": str(TINY)}
    assert summary["per_window"][0]["residual"] is None  # NaN became null
    assert summary["merged"] == 1 and summary["exported_frames"] == len(files)

    model = pycolmap.Reconstruction(str(out / "colmap" / "sparse" / "0"))
    assert sorted(image.name for image in model.images.values()) == files
    for name in files:  # the exports name the input files, copied as they are
        assert (out / "images" / name).read_bytes() == (photo_folder / name).read_bytes()
    for camera in model.cameras.values():  # PINHOLE at the photographs' own resolution
        assert (camera.width, camera.height) == (160, 120)
    transforms = _strict_json(out / "transforms.json")
    assert sorted(frame["file_path"] for frame in transforms["frames"]) == [f"images/{n}" for n in files]
    for frame in transforms["frames"]:
        depth = np.load(out / frame["depth_file_path"])
        assert depth.shape == (frame["h"], frame["w"])
    trajectory = np.loadtxt(out / "trajectory.tum", comments="#", ndmin=2)
    assert len(trajectory) == len(files)
    np.testing.assert_allclose(trajectory[0, 1:], [0, 0, 0, 0, 0, 0, 1], atol=1e-9)  # the first image is the origin


@pytest.mark.slow
def test_beyond_the_frame_budget_chunks_overlap_and_chain(tmp_path, photo_folder):
    out = tmp_path / "out"
    assert main(["--images", str(photo_folder), "--out", str(out), "--max-frames", "3", *FAST]) == 0
    summary = _strict_json(out / "summary.json")
    assert summary["mode"] == "chunks"
    # 6 images, chunks of 3 sharing 1: [0 1 2] [2 3 4] [4 5]
    assert [w["images"] for w in summary["per_window"]] == [3, 3, 2]
    assert summary["exported_frames"] == len(np.loadtxt(out / "trajectory.tum", comments="#", ndmin=2))


@pytest.mark.slow
def test_the_sliding_window_incremental_run_writes_what_the_full_recompute_writes(tmp_path, photo_folder):
    common = ["--images", str(photo_folder), *FAST, "--sliding-window", "--window-size", "3"]
    assert main([*common, "--out", str(tmp_path / "incremental")]) == 0
    assert main([*common, "--out", str(tmp_path / "full"), "--full-recompute"]) == 0
    summaries = [_strict_json(tmp_path / run / "summary.json") for run in ("incremental", "full")]
    assert summaries[0]["mode"] == "sliding window" and summaries[0]["windows"] == 6  # stride 1
    assert [w["status"] for w in summaries[0]["per_window"]] == [w["status"] for w in summaries[1]["per_window"]]
    assert summaries[0]["map_points"] == summaries[1]["map_points"] > 0
    trajectories = [
        np.loadtxt(tmp_path / run / "trajectory.tum", comments="#", ndmin=2) for run in ("incremental", "full")
    ]
    assert trajectories[0].shape == trajectories[1].shape
    np.testing.assert_allclose(trajectories[0], trajectories[1], atol=1e-4)


@pytest.mark.parametrize("storage, compressed", [("mcap", True), ("sqlite3", False)])
def test_a_two_camera_bag_is_paired_reconstructed_and_exported_with_its_images(tmp_path, storage, compressed):
    frames = panned_photographs(6)
    stamps = [1_000_000_000 + 100_000_000 * i for i in range(6)]
    cameras = [
        ("/left/image_raw", list(zip(stamps, frames))),
        ("/right/image_raw", [(s + 3_000_000, np.ascontiguousarray(f[:, ::-1])) for s, f in zip(stamps, frames)]),
    ]
    bag = write_image_bag(tmp_path / "bag", storage, cameras, compressed=compressed)
    out, out_bag = tmp_path / "out", tmp_path / "replay"
    assert (
        main(
            [
                "--bag",
                str(bag),
                "--topics",
                "/left/image_raw,/right/image_raw",
                "--camera-names",
                "left,right",
                "--out",
                str(out),
                "--out-bag",
                str(out_bag),
                *FAST,
            ]
        )
        == 0
    )
    summary = _strict_json(out / "summary.json")
    assert summary["mode"] == "joint" and summary["frame_sets"] == 6 and summary["images"] == 12
    # The replayed messages carry their camera's stamps, and those in the world frame camera 0's, as the node's do
    # (the map took the newest image's).
    per_camera_stamps, transforms = {}, {}
    with AnyReader([out_bag]) as reader:
        for connection, _, raw in reader.messages():
            message = reader.deserialize(raw, connection.msgtype)
            header = getattr(message, "header", None)
            if header is not None:
                stamp_ns = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
                offset = 3_000_000 if "/right/" in connection.topic else 0
                assert stamp_ns - offset in stamps, (connection.topic, stamp_ns)
                if "/left/" in connection.topic or "/right/" in connection.topic:
                    per_camera_stamps.setdefault(connection.topic, []).append(stamp_ns)
            if connection.topic == "/tf":
                for t in message.transforms:
                    stamp_ns = t.header.stamp.sec * 1_000_000_000 + t.header.stamp.nanosec
                    transforms[(t.child_frame_id, stamp_ns)] = t.transform
    # A joint run has no newest frame set: every frame's depth, confidence, CameraInfo and TF is in the bag, at its
    # stamp, in order (a bag held the last frame set's alone), and its TF is its pose in the trajectory files.
    for camera, offset in (("left", 0), ("right", 3_000_000)):
        for kind in ("depth/image", "depth/camera_info", "confidence"):
            assert per_camera_stamps[f"/vggt/{camera}/{kind}"] == [s + offset for s in stamps], (camera, kind)
        tum = "trajectory.tum" if camera == "left" else f"trajectory_{camera}.tum"
        for row in np.loadtxt(out / tum, comments="#", ndmin=2):
            stamp_ns = stamps[np.argmin(np.abs(np.array(stamps) + offset - row[0] * 1e9))] + offset
            moved = transforms.pop((f"{camera}_optical", stamp_ns))
            translation = [moved.translation.x, moved.translation.y, moved.translation.z]
            rotation = [moved.rotation.x, moved.rotation.y, moved.rotation.z, moved.rotation.w]
            np.testing.assert_allclose(translation, row[1:4], atol=1e-6)
            np.testing.assert_allclose(np.abs(np.dot(rotation, row[4:8])), 1.0, atol=1e-6)
    assert not transforms  # no other transform on /tf
    assert summary["cameras"] == ["left", "right"]
    model = pycolmap.Reconstruction(str(out / "colmap" / "sparse" / "0"))
    names = sorted(image.name for image in model.images.values())
    assert names == sorted([f"left/{s}.png" for s in stamps] + [f"right/{s + 3_000_000}.png" for s in stamps])
    for name in names:  # the bag's images are written beside the exports, decoded as the session used them
        written = np.asarray(Image.open(out / "images" / name))
        camera, stamp = name[:-4].split("/")
        index = stamps.index(int(stamp) - (3_000_000 if camera == "right" else 0))
        original = frames[index] if camera == "left" else frames[index][:, ::-1]
        tolerance = 40 if compressed else 0  # JPEG in the bag
        assert written.shape == original.shape and np.abs(written.astype(int) - original).mean() <= tolerance / 8


def test_a_synchronised_pair_gets_one_trajectory_per_camera_that_evo_reads(tmp_path, caplog):
    # A hardware-synchronised pair: both cameras stamp each frame set alike, at stamps a float cannot hold exactly.
    caplog.set_level(logging.INFO, logger="vggt_ros.offline")
    frames = panned_photographs(4)
    stamps = [1_700_000_000_050_000_000 + 100_000_000 * i for i in range(4)]
    cameras = [
        ("/left/image_raw", list(zip(stamps, frames))),
        ("/right/image_raw", [(s, np.ascontiguousarray(f[:, ::-1])) for s, f in zip(stamps, frames)]),
    ]
    bag = write_image_bag(tmp_path / "bag", "mcap", cameras, compressed=False)
    out = tmp_path / "out"
    topics = "/left/image_raw,/right/image_raw"
    assert main(["--bag", str(bag), "--topics", topics, "--camera-names", "left,right", "--out", str(out), *FAST]) == 0
    summary = _strict_json(out / "summary.json")
    assert summary["merged"] == 1 and summary["exported_frames"] == 8
    files = {"left": out / "trajectory.tum", "right": out / "trajectory_right.tum"}
    expected_stamps = [f"{s // 10**9}.{s % 10**9:09d}" for s in stamps]  # 1700000000.050000000, ...
    for name, path in files.items():
        trajectory = file_interface.read_tum_trajectory_file(path)
        valid, details = trajectory.check()
        assert valid, (name, details)
        rows = [line.split() for line in path.read_text().splitlines() if not line.startswith("#")]
        assert [row[0] for row in rows] == expected_stamps
    first = file_interface.read_tum_trajectory_file(files["left"]).poses_se3[0]
    np.testing.assert_allclose(first, np.eye(4), atol=1e-9)  # camera 0's first image is the world's origin
    assert summary["trajectory"] == str(files["left"])
    assert summary["trajectories"] == {name: str(path) for name, path in files.items()}
    # Each window's log line names both cameras' images, not camera 0's alone (issue 18 item 10).
    window_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("window ")]
    assert window_lines and all(f"left/{stamps[-1]}.png, right/{stamps[-1]}.png" in line for line in window_lines)
    assert summary["per_window"][-1]["last_image"] == f"left/{stamps[-1]}.png, right/{stamps[-1]}.png"


def test_out_bag_holds_what_the_node_publishes(tmp_path):
    frames = panned_photographs(5)
    bag = write_image_bag(
        tmp_path / "in",
        "mcap",
        [("/cam/image_raw", [(10**9 * (i + 1), f) for i, f in enumerate(frames)])],
        compressed=True,
    )
    out_bag = tmp_path / "replay"
    assert (
        main(
            [
                "--bag",
                str(bag),
                "--topics",
                "/cam/image_raw",
                "--out",
                str(tmp_path / "out"),
                "--out-bag",
                str(out_bag),
                "--sliding-window",
                "--window-size",
                "3",
                *FAST,
            ]
        )
        == 0
    )
    with AnyReader([out_bag]) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        frames_of = {}
        for connection, _, raw in reader.messages():
            message = reader.deserialize(raw, connection.msgtype)
            if connection.topic == "/tf_static" or connection.topic == "/tf":
                frames_of.setdefault(connection.topic, set()).update(
                    (t.header.frame_id, t.child_frame_id) for t in message.transforms
                )
            elif hasattr(message, "header"):
                frames_of.setdefault(connection.topic, set()).add(message.header.frame_id)
    assert types == {
        "/tf_static": "tf2_msgs/msg/TFMessage",
        "/tf": "tf2_msgs/msg/TFMessage",
        "/vggt/depth/image": "sensor_msgs/msg/Image",
        "/vggt/confidence": "sensor_msgs/msg/Image",
        "/vggt/depth/camera_info": "sensor_msgs/msg/CameraInfo",
        "/vggt/points": "sensor_msgs/msg/PointCloud2",
        "/vggt/path": "nav_msgs/msg/Path",
        "/vggt/map": "sensor_msgs/msg/PointCloud2",
    }
    assert frames_of["/tf_static"] == {("map", "vggt_world")}
    assert frames_of["/tf"] == {("vggt_world", "camera0_optical")}
    assert frames_of["/vggt/depth/image"] == frames_of["/vggt/depth/camera_info"] == {"camera0_optical"}
    assert frames_of["/vggt/points"] == frames_of["/vggt/map"] == frames_of["/vggt/path"] == {"vggt_world"}


def _bag_images(path, topic):
    """``[(height, width, (H, W) float32 values)]`` of a bag topic's 32FC1 images, and its CameraInfo sizes."""
    images, infos = [], []
    with AnyReader([path]) as reader:
        for connection, _, raw in reader.messages([c for c in reader.connections if c.topic.startswith(topic)]):
            message = reader.deserialize(raw, connection.msgtype)
            if connection.msgtype == "sensor_msgs/msg/CameraInfo":
                infos.append((message.height, message.width))
            else:
                values = np.frombuffer(bytes(message.data), dtype=np.float32).reshape(message.height, message.width)
                images.append(values)
    return images, infos


def test_white_padding_is_no_observation_in_the_map_the_published_depth_or_the_exports(tmp_path):
    """Landscape photographs and one portrait: the folder is padded with white to one model size (the official
    loader's batch rule), and the padding must not become geometry anywhere (issue 18 item 2)."""
    frames = panned_photographs(7)
    # The portrait first: the tiny random-weight model answers this order with usable cameras.
    photographs = [np.ascontiguousarray(np.rot90(frames[6])), *frames[:6]]
    folder = tmp_path / "photos"
    folder.mkdir()
    paths = [folder / f"frame_{index:03d}.png" for index in range(len(photographs))]
    for path, photograph in zip(paths, photographs):
        Image.fromarray(photograph).save(path)
    # No input pixel is pure white, so a pure-white map point can only come from the padding.
    assert not any((photograph == 255).all(axis=-1).any() for photograph in photographs)
    out, out_bag = tmp_path / "out", tmp_path / "replay"
    assert main(["--images", str(folder), "--out", str(out), "--out-bag", str(out_bag), *FAST]) == 0
    summary = _strict_json(out / "summary.json")
    assert summary["merged"] == 1 and summary["exported_frames"] == len(photographs)

    # The map: no point has the padding's colour, and every point lies in front of some camera, inside its image
    # (the COLMAP cameras: the photographs' own size and intrinsics, read back by pycolmap).
    cloud = o3d.io.read_point_cloud(str(out / "map.ply"))
    points, colours = np.asarray(cloud.points), np.round(np.asarray(cloud.colors) * 255)
    assert len(points) > 1000
    white = (colours == 255).all(axis=1)
    assert not white.any(), f"{white.mean():.1%} of the map's points are the padding's white"
    model = pycolmap.Reconstruction(str(out / "colmap" / "sparse" / "0"))
    seen = np.zeros(len(points), dtype=bool)
    for image in model.images.values():
        camera = model.cameras[image.camera_id]
        camera_from_world = cam_from_world(image)
        in_camera = points @ camera_from_world[:, :3].T + camera_from_world[:, 3]
        with np.errstate(divide="ignore", invalid="ignore"):
            pixels = (in_camera @ camera.calibration_matrix().T)[:, :2] / in_camera[:, 2:]
        seen |= (
            (in_camera[:, 2] > 0)
            & (pixels[:, 0] >= 0)
            & (pixels[:, 0] <= camera.width)
            & (pixels[:, 1] >= 0)
            & (pixels[:, 1] <= camera.height)
        )
    assert seen.all(), f"{(~seen).mean():.1%} of the map's points lie outside every camera's image"
    # COLMAP's points are observed inside the images they are observed in.
    assert len(model.points3D) > 0
    for image in model.images.values():
        camera = model.cameras[image.camera_id]
        observed = np.array([p.xy for p in image.points2D if p.has_point3D()]).reshape(-1, 2)
        assert ((observed >= 0) & (observed <= (camera.width, camera.height))).all()

    # The depth and confidence files describe the photographs' own pixels.
    transforms = _strict_json(out / "transforms.json")
    for frame in transforms["frames"]:
        for key in ("depth_file_path", "confidence_file_path"):
            assert np.load(out / frame[key]).shape == (frame["h"], frame["w"])

    # The published depth and confidence of every image (the bag has each frame of a joint run): NaN on the rows
    # or columns the official preprocessing filled with white, a prediction elsewhere; CameraInfo of the same size.
    model_images = preprocess_images([str(p) for p in paths], mode="crop", target_size=154).numpy()
    white = (model_images == 1.0).all(axis=1)  # (S, H, W)
    padding = white.all(axis=2)[:, :, None] | white.all(axis=1)[:, None, :]
    assert all(0 < p.sum() < p.size for p in padding[1:])  # the landscape photographs' rows
    for topic in ("/vggt/depth", "/vggt/confidence"):
        images, infos = _bag_images(out_bag, topic)
        assert len(images) == len(paths)
        for values, padded in zip(images, padding):
            assert values.shape == padded.shape
            assert np.isnan(values[padded]).all(), f"{topic} has values on the padding"
            assert np.isfinite(values[~padded]).mean() > 0.9
        if topic == "/vggt/depth":
            assert infos == [values.shape] * len(paths)


def test_a_corrupt_or_empty_file_is_skipped_and_the_run_finishes(tmp_path, caplog):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("a.png", "c.png", "e.png"):
        shutil.copy(IMAGES / "chelsea.png", folder / name)
    (folder / "b.png").write_bytes(b"")  # zero bytes: the header check catches it before any work
    truncated = (IMAGES / "rocket.jpg").read_bytes()
    (folder / "d.jpg").write_bytes(truncated[: len(truncated) // 2])  # a readable header, a truncated body
    out = tmp_path / "out"
    assert main(["--images", str(folder), "--out", str(out), *FAST]) == 0
    summary = _strict_json(out / "summary.json")
    assert sorted(summary["skipped_inputs"]) == ["b.png", "d.jpg"]
    assert summary["images"] == 3 and summary["exported_frames"] == 3
    assert sum("skipping" in r.message for r in caplog.records) == 2


def test_an_unwritable_output_fails_before_any_work(tmp_path, capsys):
    target = tmp_path / "a_file"
    target.write_text("not a folder")
    assert main(["--images", str(IMAGES), "--out", str(target), "--weights", "/nonexistent/weights.pt"]) == 1
    assert "exists and is not a folder" in capsys.readouterr().err  # before the weights are even looked at


def test_ctrl_c_writes_what_was_reconstructed_and_exits_130(tmp_path, monkeypatch, photo_folder):
    integrate = session_module.ReconstructionSession.integrate
    calls = []

    def interrupted_on_the_third_window(self, inference):  # a test double of the user's Ctrl-C
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return integrate(self, inference)

    monkeypatch.setattr(session_module.ReconstructionSession, "integrate", interrupted_on_the_third_window)
    out = tmp_path / "out"
    assert (
        main(["--images", str(photo_folder), "--out", str(out), "--sliding-window", "--window-size", "3", *FAST]) == 130
    )
    summary = _strict_json(out / "summary.json")
    assert summary["interrupted"] and summary["windows"] == 2
    assert len(np.loadtxt(out / "trajectory.tum", comments="#", ndmin=2)) == summary["exported_frames"] >= 1
    assert (out / "map.ply").is_file() and (out / "transforms.json").is_file()


def test_a_run_where_no_window_merges_writes_no_trajectory_and_the_reasons(tmp_path, monkeypatch, photo_folder, capsys):
    def unusable_cameras_for_tests(*args, **kwargs):  # a test double: every window's cameras are unusable
        raise ValueError("predicted field of view outside (0, pi)")

    monkeypatch.setattr(session_module, "decode_window", unusable_cameras_for_tests)
    out = tmp_path / "out"
    # Nothing reconstructed is a failure (exit 1), said as such, with the summary written.
    assert main(["--images", str(photo_folder), "--out", str(out), "--max-frames", "4", *FAST]) == 1
    assert "nothing was reconstructed: no window merged" in capsys.readouterr().err
    summary = _strict_json(out / "summary.json")
    assert summary["merged"] == 0 and summary["map"] is None and summary["exported_frames"] == 0
    assert all("field of view" in w["reason"] for w in summary["per_window"])
    # No pose: no file (a TUM file without a pose is no trajectory to evo), and the summary says so.
    assert summary["trajectory"] is None and summary["trajectories"] == {"camera0": None}
    assert not list(out.glob("trajectory*.tum"))


def test_bad_inputs_fail_with_a_clear_message(tmp_path, capsys):
    assert main(["--images", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--weights", str(TINY)]) == 1
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["--images", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--weights", str(TINY)]) == 1
    assert "no images" in capsys.readouterr().err
    few = tmp_path / "few"
    few.mkdir()
    shutil.copy(IMAGES / "chelsea.png", few)
    assert (
        main(
            [
                "--images",
                str(few),
                "--out",
                str(tmp_path / "o"),
                "--weights",
                "/nonexistent/weights.pt",
                "--device",
                "cpu",
            ]
        )
        == 1
    )
    assert "weights not found" in capsys.readouterr().err
    assert main(["--bag", str(tmp_path / "no_bag"), "--topics", "/a", "--out", str(tmp_path / "o")]) == 1
    assert "bag not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: --bag without --topics
        main(["--bag", str(tmp_path / "no_bag"), "--out", str(tmp_path / "o")])


@pytest.mark.parametrize(
    "option, message",
    [
        (
            ("--image-size", "500"),
            "--image-size must be a positive multiple of the patch size 14 (518 for VGGT-1B), got 500",
        ),
        (("--image-size", "2000"), "--image-size must be in [14, 1036] pixels, got 2000"),
        (("--window-size", "0", "--sliding-window"), "--window-size must be in [2, 64] keyframes, got 0"),
        # one-keyframe windows share none with the one before: only the first ever joined the world
        (("--window-size", "1", "--sliding-window"), "--window-size must be in [2, 64] keyframes, got 1"),
        (("--voxel-size", "0"), "--voxel-size must be a positive number of world units, got 0.0"),
        (("--loop-min-score", "2"), "--loop-min-score must be in [0.0, 1.0], got 2.0"),
        # the plain words 'backend' and 'precision' stay words
        (("--precision", "int8", "--backend", "torch"), "precision 'int8' cannot run on the torch backend"),
        (("--window-stride", "9", "--sliding-window"), "--window-stride must be in [1, --window-size=8]"),
    ],
)
def test_options_shared_with_the_node_are_checked_as_its_parameters_under_their_own_names(
    option, message, tmp_path, capsys
):
    """--image-size 500 said 'target_size must be a positive int multiple of the patch size', after the weights
    had loaded; the node's checks run before anything, each naming the option."""
    with pytest.raises(SystemExit) as exit_status:
        main(["--images", str(tmp_path), "--out", str(tmp_path / "o"), *option])
    assert exit_status.value.code == 2 and f"error: {message}" in capsys.readouterr().err


def test_the_slop_help_says_the_spread_must_be_less_than_it(capsys):
    """The help said "largest stamp spread", but a spread equal to --slop never pairs (the strict test of
    message_filters' ApproximateTimeSynchronizer)."""
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--slop SLOP approximate-time sync: the stamps of one synchronized set lie less than this apart" in help_text


def test_window_options_the_joint_mode_does_not_read_are_not_checked_there(tmp_path, capsys):
    assert main(["--images", str(tmp_path / "none"), "--out", str(tmp_path / "o"), "--window-stride", "9"]) == 1
    assert "is not a folder" in capsys.readouterr().err  # past the option checks
