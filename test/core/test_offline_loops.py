# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Loop closure through the offline command with the tiny model's real encoder (issue 16): a recording that comes
back to frames it has seen proposes the right old keyframe, and every proposal is verified or counted as rejected."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import open3d as o3d
import pycolmap
import pytest
from PIL import Image

from conftest import TINY
from support.photos import panned_photographs
from support.pycolmap_poses import cam_from_world
from support.rotations import quaternion_matrix
from vggt_ros.offline import main

FRAME_PERIOD_NS = 100_000_000  # a folder's images are stamped 10 Hz apart


@pytest.mark.slow
def test_a_recording_that_comes_back_proposes_the_frames_it_has_seen(tmp_path):
    frames = panned_photographs(8)
    replayed = [0, 1]  # the first two views again, at the end
    folder = tmp_path / "images"
    folder.mkdir()
    for index, frame in enumerate(frames + [frames[i] for i in replayed]):
        Image.fromarray(frame).save(folder / f"frame_{index:03d}.png")
    out = tmp_path / "out"
    arguments = ["--images", str(folder), "--out", str(out), "--weights", str(TINY), "--device", "cpu"]
    arguments += ["--image-size", "154", "--sliding-window", "--window-size", "2"]
    arguments += ["--loop-min-age", "0.3", "--loop-exclude-recent", "2"]  # a short recording
    main(arguments)  # the tiny model's windows rarely agree: the exit code says whether anything merged
    loops = json.loads((out / "summary.json").read_text())["loops"]

    candidates = loops["candidates"]
    assert candidates, loops
    replay_of = {(len(frames) + k) * FRAME_PERIOD_NS: original * FRAME_PERIOD_NS for k, original in enumerate(replayed)}
    for candidate in candidates:  # only the replays look like an old keyframe, and like the one they replay
        query_ns, match_ns = candidate["query"][0], candidate["match"][0]
        assert query_ns in replay_of and match_ns == replay_of[query_ns], candidate
        assert candidate["score"] > 0.99  # the same image: the same tokens
    # Each proposal ended in a verified loop or a counted rejection (random weights: the halves rarely align).
    assert loops["verified"] + sum(loops["rejected"].values()) >= 1


def test_without_loop_closure_the_summary_says_so(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for index, frame in enumerate(panned_photographs(2)):
        Image.fromarray(frame).save(folder / f"frame_{index:03d}.png")
    out = tmp_path / "out"
    main(["--images", str(folder), "--out", str(out), "--weights", str(TINY), "--device", "cpu", "--image-size", "154"])
    assert json.loads((out / "summary.json").read_text())["loops"] is not None
    out_off = tmp_path / "off"
    arguments = ["--images", str(folder), "--out", str(out_off), "--weights", str(TINY), "--device", "cpu"]
    main([*arguments, "--image-size", "154", "--no-loop-closure"])
    assert json.loads((out_off / "summary.json").read_text())["loops"] is None


def _run_revisit(tmp_path, monkeypatch, *extra: str) -> Path:
    """The synthetic room's loop path driven once and partly again, through the offline command (with ``extra``
    arguments), the network answered by `LoopPassPipelineForTests` and places by `PosePlaceDescriptorForTests`;
    the output folder."""
    from support.places import LoopPassPipelineForTests, PosePlaceDescriptorForTests, revisit_sequence
    from support.synthetic import FakeVGGTForWorldTests
    from vggt_ros import offline
    from vggt_ros.world import loop_verification

    sequence = revisit_sequence(80, 20)
    folder = tmp_path / "images"
    folder.mkdir()
    for index, image in enumerate(sequence.rgb):
        Image.fromarray(image).save(folder / f"frame_{index:03d}.png")
    network = LoopPassPipelineForTests(FakeVGGTForWorldTests(sequence))
    monkeypatch.setattr(offline, "create_pipeline", lambda config: network)
    monkeypatch.setattr(loop_verification, "PlaceDescriptor", lambda *args: PosePlaceDescriptorForTests(sequence))
    out = tmp_path / "out"
    arguments = ["--images", str(folder), "--out", str(out), "--weights", str(TINY), "--device", "cpu"]
    arguments += ["--image-size", str(sequence.rgb.shape[2]), "--sliding-window", "--keyframe-min-motion", "0.07"]
    arguments += ["--loop-min-age", "5", "--loop-exclude-recent", "10", "--loop-min-score", "0.95", *extra]
    main(arguments)
    assert network.loop_passes
    return out


def test_after_a_loop_the_dataset_follows_the_loop_corrected_world(tmp_path, monkeypatch):
    """The revisit run (`_run_revisit`): loops are accepted and move the world. The streamed COLMAP model,
    transforms.json and the depth files then follow the loops: every camera sits where the loop-corrected trajectory
    (trajectory.tum) has it, pycolmap's points still project onto their observations and lie at the depth the
    (rescaled) depth file gives, and transforms.json names the map."""
    out = _run_revisit(tmp_path, monkeypatch)
    summary = json.loads((out / "summary.json").read_text())

    assert summary["loops"]["accepted"] >= 1, summary["loops"]
    assert summary["map"] and summary["exported_frames"] > 0
    assert summary["dataset_moved_by_loops"] is True and summary["dataset_poses_before_loops"] is False
    transforms = json.loads((out / "transforms.json").read_text())
    assert transforms["ply_file_path"] == "map.ply"

    # The loop-corrected camera centres, by stamp (TUM: stamp tx ty tz qx qy qz qw).
    rows = [line.split() for line in (out / "trajectory.tum").read_text().splitlines() if not line.startswith("#")]
    corrected = {round(float(row[0]) * 1e9): np.array([float(v) for v in row[1:4]]) for row in rows}
    frames = {frame["file_path"].removeprefix("images/"): frame for frame in transforms["frames"]}
    assert set(frames) and all(frame["stamp_ns"] in corrected for frame in frames.values())
    for frame in frames.values():
        centre = np.asarray(frame["transform_matrix"])[:3, 3]
        np.testing.assert_allclose(centre, corrected[frame["stamp_ns"]], atol=1e-6)
    model = pycolmap.Reconstruction()
    model.read_binary(str(out / "colmap" / "sparse" / "0"))
    assert len(model.images) == len(frames)
    for image in model.images.values():
        pose = cam_from_world(image)
        np.testing.assert_allclose(-pose[:, :3].T @ pose[:, 3], corrected[frames[image.name]["stamp_ns"]], atol=1e-6)
    first_errors, errors, depth_ratios = [], [], []
    for point in model.points3D.values():
        distances = []
        for k, element in enumerate(point.track.elements):
            image = model.images[element.image_id]
            observed = image.points2D[element.point2D_idx].xy
            distances.append(float(np.linalg.norm(image.project_point(point.xyz) - observed)))
            if k == 0:  # the image the point was sampled in: its depth file has the point's depth there
                pose = cam_from_world(image)
                z = (pose[:, :3] @ point.xyz + pose[:, 3])[2]
                depth = np.load(out / frames[image.name]["depth_file_path"])
                u, v = (int(c) for c in np.floor(observed))
                depth_ratios.append(depth[v, u] / z)
        first_errors.append(distances[0])
        errors += distances
        assert point.error == pytest.approx(np.mean(distances), abs=1e-9)  # the model says how far off it is
    # Where a point was sampled it projects exactly; in its track's other images it is as far off as their
    # corrections differ from its own (median 0.006 px, at most 0.16 px on these 56 x 42 images).
    assert max(first_errors) < 1e-9 and 0 < max(errors) < 0.2
    # The depth files were scaled with the loops' similarities (this world is not metric): the points agree.
    np.testing.assert_allclose(depth_ratios, 1.0, atol=1e-5)


def test_the_out_bag_replays_the_map_where_map_ply_has_it(tmp_path, monkeypatch):
    """--out-bag wrote parent_frame -> world_frame only when a loop closed, while the node republishes it whenever
    the correction moves (each window after a loop moves it a little: it is rigid at the newest keyframe). The bag's
    map, under its last /tf_static, sat 2 % of the path's extent off the map the run built. Replayed, it lies
    where map.ply has it (both in parent_frame)."""
    from rosbags.highlevel import AnyReader

    from vggt_ros.ros.messages import PARENT_FROM_OPTICAL_WORLD

    out_bag = tmp_path / "replay"
    out = _run_revisit(tmp_path, monkeypatch, "--out-bag", str(out_bag))
    assert json.loads((out / "summary.json").read_text())["loops"]["accepted"] >= 1
    parent_from_world, corrections, bag_map = None, 0, None
    with AnyReader([out_bag]) as reader:
        for connection, _, raw in reader.messages():
            message = reader.deserialize(raw, connection.msgtype)
            if connection.topic == "/tf_static":
                transform = message.transforms[0].transform
                t = transform.translation
                parent_from_world = np.eye(4)
                parent_from_world[:3, :3] = quaternion_matrix(transform.rotation)
                parent_from_world[:3, 3] = (t.x, t.y, t.z)
                corrections += 1
            elif connection.topic == "/vggt/map":
                xyz = np.frombuffer(bytes(message.data), dtype=np.float32).reshape(-1, message.point_step // 4)
                bag_map = xyz[:, :3].astype(np.float64)
    assert corrections > 2, "the correction moves with the windows after a loop"
    replayed = bag_map @ parent_from_world[:3, :3].T + parent_from_world[:3, 3]
    built = np.asarray(o3d.io.read_point_cloud(str(out / "map.ply")).points) @ PARENT_FROM_OPTICAL_WORLD[:, :3].T
    assert len(replayed) == len(built)
    # float32 in both files (points ~1 unit from the origin): agreement to their precision
    np.testing.assert_allclose(np.sort(replayed, axis=0), np.sort(built, axis=0), atol=1e-5)


def test_after_a_loop_frames_without_a_corrected_pose_keep_the_dataset_as_integrated(tmp_path, monkeypatch):
    """A world whose keyframe store dropped an exported frame (stood in for by `World.loop_corrections` answering
    None, as it does then): the dataset keeps the poses from before the loops, transforms.json names no point cloud
    (map.ply would not match its cameras), and the summary says why."""
    from vggt_ros.world import World

    monkeypatch.setattr(World, "loop_corrections", lambda self, frame_ids: None)
    out = _run_revisit(tmp_path, monkeypatch)
    summary = json.loads((out / "summary.json").read_text())

    assert summary["loops"]["accepted"] >= 1 and summary["exported_frames"] > 0
    assert summary["dataset_poses_before_loops"] is True and summary["dataset_moved_by_loops"] is False
    assert "ply_file_path" not in json.loads((out / "transforms.json").read_text())


def test_a_loop_pass_that_fails_costs_the_loops_not_the_run(tmp_path, monkeypatch):
    """An error in the loop pass (out of memory, engines too small for it) escaped the window's handling and ended
    the run before anything was written."""
    from vggt_ros import session as session_module

    def out_of_memory_for_tests(self, out):  # a test double of a loop pass the device cannot run
        raise RuntimeError("CUDA out of memory (test double)")

    monkeypatch.setattr(session_module.ReconstructionSession, "close_loops", out_of_memory_for_tests)
    folder = tmp_path / "images"
    folder.mkdir()
    for index, frame in enumerate(panned_photographs(4)):
        Image.fromarray(frame).save(folder / f"frame_{index:03d}.png")
    out = tmp_path / "out"
    arguments = ["--images", str(folder), "--out", str(out), "--weights", str(TINY), "--device", "cpu"]
    assert main([*arguments, "--image-size", "154"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["merged"] == 1 and (out / "map.ply").is_file()
    assert summary["loops"]["failed"] == ["window 0: CUDA out of memory (test double)"]
