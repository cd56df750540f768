# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The streaming session on the tiny model: incremental inference is exact, does only the new work, and owns the
reset rules and the engine-fit check.

The reference for every window is the model's own forward pass (`VGGT.forward`, matched against the official
implementation in test_model.py) on the window's images, and the session's full-recompute path.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from PIL import Image as PILImage

from conftest import IMAGES
from support.rotations import quaternion_matrix, yaw_pose
from tolerances import DENSE_REL, POSE_ABS, max_abs, relative_to_max
from vggt_ros.live.log_policy import LogPolicy
from vggt_ros.live.reconstruction import LiveReconstruction
from vggt_ros.live.saving import PLACEMENT_FILE, WorldPlacement, save_world, write_placement
from vggt_ros.preprocess import output_size, preprocess_frames
from vggt_ros.runtime import Pipeline
from vggt_ros.runtime.io_contract import FramesProfile
from vggt_ros.session import FrameSetError, ReconstructionSession, SessionConfig, check_engines_fit
from vggt_ros.window import FrameSet, WindowConfig
from vggt_ros.world import WindowStatus, WorldConfig
from vggt_ros.world.cloud import CloudConfig
from vggt_ros.world.loop_config import LoopConfig

IMAGE_SIZE = 154  # 98 x 154 model input for these photographs: fast, and usable fields of view (test_node.py)
PERMISSIVE = WorldConfig(  # the tiny model's random windows do not agree geometrically: let every window in
    min_inlier_ratio=0.0,
    inlier_distance_ratio=1e6,
    max_residual_ratio=1e6,
    max_camera_offset_ratio=1e6,
    max_camera_rotation_deg=180.0,
)


def _photo_frames(count: int) -> list[np.ndarray]:
    """``count`` different (300, 451, 3) uint8 views: the chelsea photograph shifted by a few pixels each time."""
    with PILImage.open(IMAGES / "chelsea.png") as image:
        photo = np.asarray(image.convert("RGB"))
    return [np.ascontiguousarray(np.roll(photo, 3 * i, axis=1)) for i in range(count)]


FRAMES = _photo_frames(8)


class CountingPipelineForSessionTests:
    """Test double wrapping a real `Pipeline`: records how many frames each call ran on, changes nothing."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.device, self.frames, self.image_hw = pipeline.device, pipeline.frames, pipeline.image_hw
        self.encoded: list[int] = []
        self.predicted: list[tuple[int, int, tuple[str, ...]]] = []  # (S, dense frames, outputs)

    def encode(self, images):
        self.encoded.append(len(images))
        return self.pipeline.encode(images)

    def predict(self, tokens, image_hw, outputs, dense_frames):
        self.predicted.append((len(tokens), len(dense_frames), tuple(outputs)))
        return self.pipeline.predict(tokens, image_hw, outputs, dense_frames)

    def __call__(self, images, outputs=None):
        return self.pipeline(images)


@pytest.fixture(scope="module")
def pipeline(tiny_model):
    return Pipeline.from_model(tiny_model, device="cpu", precision="fp32")


def _config(window_size=3, stride=1, cameras=1, **overrides) -> SessionConfig:
    return SessionConfig(
        window=WindowConfig(window_size, stride),
        world=PERMISSIVE,
        cloud=CloudConfig(point_decimation=2),
        cameras=cameras,
        image_size=IMAGE_SIZE,
        **overrides,
    )


def _frame_sets(cameras: int, count: int, start_ns: int = 0) -> list[FrameSet]:
    """Frame sets 100 ms apart; camera c of set i shows frame (i + 2 c) of FRAMES, so cameras differ."""
    return [
        FrameSet(
            tuple(start_ns + i * 100_000_000 + c for c in range(cameras)),
            tuple(FRAMES[(i + 2 * c) % len(FRAMES)] for c in range(cameras)),
        )
        for i in range(count)
    ]


def _run(session: ReconstructionSession, frame_sets) -> list:
    return [out for out in (session.push(s) for s in frame_sets) if out is not None]


@pytest.mark.slow
@pytest.mark.parametrize("stride, cameras", [(1, 1), (2, 1), (1, 2)])
def test_incremental_windows_equal_the_model_and_the_full_recompute(tiny_model, pipeline, stride, cameras):
    incremental = ReconstructionSession(pipeline, _config(stride=stride, cameras=cameras))
    full = ReconstructionSession(pipeline, _config(stride=stride, cameras=cameras, incremental=False))
    sets = _frame_sets(cameras, 7)
    outputs, references = _run(incremental, sets), _run(full, sets)
    assert len(outputs) == len(references) >= 3
    for out, ref in zip(outputs, references):
        images = torch.stack([model_input(image) for image in out.window.images])
        with torch.inference_mode():
            model = tiny_model(images)  # the model itself on the window's images
        dense = list(out.dense)
        assert max_abs(out.predictions["pose_enc"], model["pose_enc"][0]) <= POSE_ABS
        for key in ("depth", "depth_conf"):
            assert relative_to_max(out.predictions[key], model[key][0][dense]) <= DENSE_REL
        # Same frames, verdicts and products as the full recompute.
        assert out.dense == ref.dense and out.status == ref.status and out.window.stamps_ns == ref.window.stamps_ns
        assert max_abs(out.predictions["pose_enc"], ref.predictions["pose_enc"]) <= POSE_ABS
        assert relative_to_max(out.predictions["depth"], ref.predictions["depth"]) <= DENSE_REL
        if out.merged:
            np.testing.assert_allclose(out.result.world_from_camera, ref.result.world_from_camera, atol=1e-4)
            assert out.cloud.points.shape == ref.cloud.points.shape
            np.testing.assert_allclose(out.cloud.points[:, :3], ref.cloud.points[:, :3], rtol=1e-3, atol=1e-4)
            assert np.array_equal(out.cloud.colors, ref.cloud.colors)
    assert any(out.merged for out in outputs[1:]), "at least one window after the first was chained"


def model_input(image: np.ndarray) -> torch.Tensor:
    """(3, H, W): the node's (fast) preprocessing of one camera image, as the session does it."""
    return preprocess_frames(image[None], mode="crop", target_size=IMAGE_SIZE)[0]


def test_dinov2_runs_only_on_new_frames_and_the_depth_head_on_new_and_overlap_frames(pipeline):
    counting = CountingPipelineForSessionTests(pipeline)
    session = ReconstructionSession(counting, _config(window_size=4, stride=1, overlap_frame_sets=2))
    outputs = _run(session, _frame_sets(1, 7))
    assert counting.encoded == [1] * 7, "each frame is encoded once, when it first enters a window"
    assert [s for s, _, _ in counting.predicted] == [1, 2, 3, 4, 4, 4, 4], "aggregator and camera head: the window"
    # depth: the new frame plus min(2, frames the world holds) overlap frames (every window merges here)
    assert all(out.merged for out in outputs)
    assert [d for _, d, _ in counting.predicted] == [1, 2, 3, 3, 3, 3, 3]
    assert all(o == ("pose_enc", "depth", "depth_conf") for _, _, o in counting.predicted), "no point head"
    assert session.cached_frames == 4, "the cache holds the current window's frames only"


def test_the_point_head_runs_when_asked_and_matches_the_model(tiny_model, pipeline):
    session = ReconstructionSession(pipeline, _config(point_head=True))
    out = _run(session, _frame_sets(1, 2))[-1]
    images = torch.stack([model_input(image) for image in out.window.images])
    with torch.inference_mode():
        model = tiny_model(images)
    for key in ("world_points", "world_points_conf"):
        assert relative_to_max(out.predictions[key], model[key][0][list(out.dense)]) <= DENSE_REL


def test_time_going_back_a_size_change_and_a_requested_reset_start_a_new_world(pipeline):
    session = ReconstructionSession(pipeline, _config())
    first = _run(session, _frame_sets(1, 3, start_ns=10_000_000_000))
    assert first[0].status is WindowStatus.INITIALIZED and first[-1].status is WindowStatus.MERGED

    update = session.add(_frame_sets(1, 1, start_ns=1_000_000_000)[0])  # a bag loop
    assert "time went backwards" in update.reset
    out = session.integrate(session.infer(update.window))
    assert out.status is WindowStatus.INITIALIZED and out.map_reset and len(out.window.frame_sets) == 1

    # A new image size: its first set is dropped (a lone one costs itself only), the second starts over.
    smaller = [
        FrameSet((s,), (np.ascontiguousarray(FRAMES[k][:280, :420]),))
        for k, s in ((0, 2_000_000_000), (1, 2_100_000_000))
    ]
    with pytest.raises(FrameSetError, match=r"image size changed from 451x300 to 420x280 \(WxH\): set dropped") as err:
        session.add(smaller[0])
    assert err.value.kind == "size_change"
    update = session.add(smaller[1])
    assert "image size changed from 451x300 to 420x280 (WxH): reconstruction starts over" in update.reset
    assert session.integrate(session.infer(update.window)).status is WindowStatus.INITIALIZED

    session.request_reset()
    out = session.push(FrameSet((3_000_000_000,), (np.ascontiguousarray(FRAMES[1][:280, :420]),)))
    assert out.status is WindowStatus.INITIALIZED and len(session.trajectory().frame_ids) == 1


def test_a_lone_image_of_another_size_costs_itself_only(pipeline):
    """One odd-sized image (a glitch, or a second publisher on the topic) reset the world at once, and the next
    image of the old size reset it again: six merged windows gone. Alternating sizes restarted it at every image."""
    session = ReconstructionSession(pipeline, _config())
    outputs = _run(session, _frame_sets(1, 3, start_ns=1_000_000_000))
    assert outputs[-1].status is WindowStatus.MERGED
    keyframes = len(session.trajectory().frame_ids)
    odd = np.ascontiguousarray(FRAMES[0][:280, :420])
    stamps = iter(range(2_000_000_000, 3_000_000_000, 100_000_000))
    for frame_set in _frame_sets(1, 3, start_ns=2_000_000_000):  # odd-sized sets between the old size's
        with pytest.raises(FrameSetError, match="set dropped"):
            session.add(FrameSet((next(stamps),), (odd,)))
        update = session.add(dataclasses.replace(frame_set, stamps_ns=(next(stamps),)))
        assert update.reset == ""
        if update.window is not None:
            out = session.integrate(session.infer(update.window))
            assert out.status is WindowStatus.MERGED and not out.map_reset
    assert len(session.trajectory().frame_ids) > keyframes  # one world all along


def test_a_reset_drops_the_window_formed_before_it_that_waits_for_the_worker(pipeline):
    """Inference lagging behind: a window of frames from before ~/reset still waited in the hand-off, the worker
    took it after the reset, it started the new world, and the first window after the reset was rejected."""
    session = ReconstructionSession(pipeline, _config())
    live = LiveReconstruction(session, LogPolicy(logging.getLogger("test")), "vggt_world", 0, False)
    for frame_set in _frame_sets(1, 3, start_ns=1_000_000_000):
        live.offer(frame_set)  # the worker is busy: the newest window waits
    live.request_reset()  # ~/reset
    taken = []
    worker = threading.Thread(target=lambda: taken.append(live.next_window()))
    worker.start()  # the worker is free again
    worker.join(timeout=0.5)
    assert not taken, "a window formed before the reset was handed to the worker"
    after = _frame_sets(1, 3, start_ns=5_000_000_000)
    live.offer(after[0])
    worker.join()
    outputs = [live.process(taken[0], None)[0]]
    for frame_set in after[1:]:
        live.offer(frame_set)
        outputs.append(live.process(live.next_window(), None)[0])
    assert [out.status for out in outputs] == [WindowStatus.INITIALIZED] + [WindowStatus.MERGED] * 2
    assert {f.stamp_ns for f in session.trajectory().frame_ids} == {s.stamps_ns[0] for s in after}


def test_a_reset_served_after_the_worker_took_a_window_starts_the_world_at_the_next_one(pipeline, tmp_path):
    """~/reset served between the worker taking window W (formed before it) and running it: W's frames from before
    the reset started the new world, the windows after it chained onto that world with keyframes out of time order,
    and every ~/save then failed ("stamps must strictly increase") until the next reset."""
    session = ReconstructionSession(pipeline, _config())
    live = LiveReconstruction(session, LogPolicy(logging.getLogger("test")), "vggt_world", 0, False)
    before = _frame_sets(1, 5, start_ns=1_000_000_000)
    outputs = []
    for frame_set in before[:-1]:
        live.offer(frame_set)
        outputs.append(live.process(live.next_window(), None)[0])
    live.offer(before[-1])
    taken = live.next_window()  # the worker took W
    live.request_reset()  # the executor serves ~/reset
    outputs.append(live.process(taken, None)[0])
    after = _frame_sets(1, 3, start_ns=5_000_000_000)
    for frame_set in after:
        live.offer(frame_set)
        outputs.append(live.process(live.next_window(), None)[0])
    statuses = [out.status for out in outputs]
    assert statuses[4] is WindowStatus.MERGED  # W's frames belong to the world before the reset
    assert statuses[5] is WindowStatus.INITIALIZED and outputs[5].map_reset  # the first window formed after it
    assert [f.stamp_ns for f in session.trajectory().frame_ids] == [s.stamps_ns[0] for s in after]
    save_world(live, tmp_path)  # stamps increase: the save works
    rows = [line for line in (tmp_path / "trajectory.tum").read_text().splitlines() if not line.startswith("#")]
    assert len(rows) == len(after)


def test_no_map_is_handed_out_before_the_first_window_and_each_change_once(pipeline):
    """The map thread published an empty map stamped 0 before any image: the version it had sent started below the
    new map's."""
    session = ReconstructionSession(pipeline, _config())
    live = LiveReconstruction(session, LogPolicy(logging.getLogger("test")), "vggt_world", 0, False)
    assert live.map_if_changed() is None
    frame_sets = _frame_sets(1, 2, start_ns=1_000_000_000)
    for frame_set in frame_sets:
        live.offer(frame_set)
        live.process(live.next_window(), None)
    points, _, stamp_ns = live.map_if_changed()
    assert len(points) > 0 and stamp_ns == frame_sets[-1].stamps_ns[0]
    assert live.map_if_changed() is None


def test_save_keeps_whole_frame_sets_so_every_camera_covers_the_same_time(pipeline, tmp_path):
    """save_dataset_frames 5 with two cameras kept 5 single frames: the oldest set lost its first camera's frame,
    so each camera's dataset covered another time span. It keeps 2 whole sets now (4 frames)."""
    session = ReconstructionSession(pipeline, _config(cameras=2, camera_names=("left", "right")))
    live = LiveReconstruction(session, LogPolicy(logging.getLogger("test")), "vggt_world", 5, False)
    merged = 0
    for frame_set in _frame_sets(2, 6, start_ns=1_000_000_000):
        live.offer(frame_set)
        window = live.next_window()
        if window is not None:
            merged += live.process(window, None)[0].merged
    assert merged >= 3
    save_world(live, tmp_path)
    names = [frame["file_path"] for frame in json.loads((tmp_path / "transforms.json").read_text())["frames"]]
    sets = {}
    for name in names:  # images/<camera>/<stamp>.png; camera c of a set is stamped c ns after camera 0
        camera, stamp = Path(name).parent.name, int(Path(name).stem)
        sets.setdefault(stamp - ("left", "right").index(camera), []).append(camera)
    assert len(names) == 4 and all(sorted(cameras) == ["left", "right"] for cameras in sets.values()), names


def test_save_writes_where_the_world_sits_only_for_the_world_it_was_made_for(pipeline, tmp_path):
    """world_placement.yaml ties the saved files to the robot's frames. The worker places a new world only after
    integrating its first window, so a save in between holds the last world's placement: it must not be written
    for the new one (and the last save's file goes with the files it described)."""
    session = ReconstructionSession(pipeline, _config())
    live = LiveReconstruction(session, LogPolicy(logging.getLogger("test")), "vggt_world", 0, False)
    frame_sets = _frame_sets(1, 3, start_ns=1_000_000_000)
    for frame_set in frame_sets:
        live.offer(frame_set)
        live.process(live.next_window(), None)
    odom_from_world = yaw_pose(90.0, (1.0, 2.0, 3.0))
    placed = WorldPlacement("odom", "vggt_world", odom_from_world, origin_stamp_ns=frame_sets[0].stamps_ns[0])

    saved = save_world(live, tmp_path, placement=placed)
    assert saved.placement == (tmp_path / PLACEMENT_FILE, placed) and "'vggt_world' in 'odom'" in saved.message()
    text = yaml.safe_load((tmp_path / PLACEMENT_FILE).read_text())
    assert text["header"] == {"stamp": {"sec": 1, "nanosec": 0}, "frame_id": "odom"}
    assert text["child_frame_id"] == "vggt_world"
    assert text["transform"]["translation"] == {"x": 1.0, "y": 2.0, "z": 3.0}
    rotation = quaternion_matrix(SimpleNamespace(**text["transform"]["rotation"]))
    np.testing.assert_allclose(rotation, odom_from_world[:3, :3], atol=1e-12)

    last_world = dataclasses.replace(placed, origin_stamp_ns=frame_sets[0].stamps_ns[0] - 1)
    saved = save_world(live, tmp_path, placement=last_world)
    assert saved.placement is None and not (tmp_path / PLACEMENT_FILE).exists()
    assert f"no {PLACEMENT_FILE}: the world is not placed" in saved.message()
    assert (tmp_path / "trajectory.tum").is_file()

    # YAML 1.1 reads 1e-05 as a string, and yes / null as a bool and None (pass K): numbers and names read back.
    odd = WorldPlacement("yes", "null", yaw_pose(0.0, (1e-05, -2.5e-17, 1e16)))
    write_placement(tmp_path / "odd.yaml", odd, 1)
    text = yaml.safe_load((tmp_path / "odd.yaml").read_text())
    assert text["header"]["frame_id"] == "yes" and text["child_frame_id"] == "null"
    assert text["transform"]["translation"] == {"x": 1e-05, "y": -2.5e-17, "z": 1e16}


def test_frame_sets_the_session_cannot_use_are_refused_with_the_reason(pipeline):
    session = ReconstructionSession(pipeline, _config(cameras=2, camera_names=("left", "right")))
    with pytest.raises(FrameSetError, match="left 451x300, right 420x280") as err:
        session.add(FrameSet((0, 0), (FRAMES[0], np.ascontiguousarray(FRAMES[0][:280, :420]))))
    assert err.value.kind == "resolution"
    with pytest.raises(FrameSetError, match="1 images, the session runs 2 cameras"):
        session.add(FrameSet((0,), (FRAMES[0],)))


def test_cameras_of_different_sizes_share_windows_when_padded_to_one_model_size(pipeline):
    small = [np.ascontiguousarray(frame[:200, :420]) for frame in FRAMES[:2]]
    sizes = {output_size(*image.shape[:2], "crop", IMAGE_SIZE) for image in (FRAMES[0], small[0])}
    assert len(sizes) == 2  # the two cameras' model sizes differ: one is padded
    model_hw = (max(h for h, _ in sizes), max(w for _, w in sizes))
    config = _config(window_size=2, cameras=2, preprocessing="exact", model_hw=model_hw, overlap_frame_sets=1)
    session = ReconstructionSession(pipeline, config)
    sets = [FrameSet((i, i), (FRAMES[i], small[i])) for i in range(2)]
    for frame_set in sets:
        update = session.add(frame_set)  # before model_hw: FrameSetError "resolution"
        assert not update.reset and update.window is not None
        out = session.integrate(session.infer(update.window))
        assert out.result is not None and tuple(out.predictions["depth"].shape[-3:-1]) == model_hw
    assert len(out.window.images) == 4


class EngineShapeStandIn:
    """Test double: only the shape limits of an exported engine set (what `check_engines_fit` reads)."""

    device = torch.device("cpu")

    def __init__(self, frames: FramesProfile, image_hw: tuple[int, int]) -> None:
        self.frames, self.image_hw = frames, image_hw


def test_engines_must_fit_the_windows_and_the_image_size():
    config = _config(window_size=4, cameras=2)
    check_engines_fit(EngineShapeStandIn(FramesProfile(1, 4, 8), (98, 154)), config)
    with pytest.raises(ValueError, match="the engines accept 1..6 frames, but this session runs 1..8 images"):
        check_engines_fit(EngineShapeStandIn(FramesProfile(1, 4, 6), (98, 154)), config)
    with pytest.raises(ValueError, match="the engines accept 3..8 frames"):
        check_engines_fit(EngineShapeStandIn(FramesProfile(3, 4, 8), (98, 154)), config)
    # Engines from 2 frames on, for this 2-camera rig: the loop pass's 1-frame encode failed every loop, mid-run.
    rig = EngineShapeStandIn(FramesProfile(2, 4, 8), (98, 154))
    with pytest.raises(ValueError, match=r"accept 2..8 frames, but this session runs 1..8 images .* loop closure off"):
        check_engines_fit(rig, config)
    check_engines_fit(rig, dataclasses.replace(config, world=dataclasses.replace(config.world, loop=LoopConfig(False))))
    with pytest.raises(ValueError, match="the engines take 98x182 images"):
        check_engines_fit(EngineShapeStandIn(FramesProfile(1, 4, 8), (98, 182)), config)
    # A loop pass runs up to 4 frames: engines for windows of 2 failed every loop, mid-run.
    small = EngineShapeStandIn(FramesProfile(1, 2, 2), (98, 154))
    for enabled in (True, False):
        world = dataclasses.replace(PERMISSIVE, loop=LoopConfig(enabled=enabled))
        config = dataclasses.replace(_config(window_size=2, overlap_frame_sets=1), world=world)
        if not enabled:
            check_engines_fit(small, config)
            continue
        with pytest.raises(ValueError, match=r"accept 1..2 frames, but this session runs 1..4 images .* loop closure"):
            check_engines_fit(small, config)


@pytest.mark.parametrize("change", ["size", "time"])
def test_a_window_formed_before_a_reset_and_run_after_it_does_not_stall_the_next(pipeline, change):
    # The node's worker may take (or find in its hand-off slot) a window formed before the executor saw a size
    # change or time going back: that stale window takes the reset, and the windows after it must still chain
    # (before, they kept failing against the stale window's frames: mixed image sizes, or time running backwards).
    session = ReconstructionSession(pipeline, _config())
    windows = [u.window for u in map(session.add, _frame_sets(1, 4, start_ns=10_000_000_000)) if u.window]
    out = session.integrate(session.infer(windows[0]))
    assert out.status is WindowStatus.INITIALIZED
    stale = windows[-1]  # formed, not yet run
    if change == "size":
        smaller = [np.ascontiguousarray(frame[:280, :420]) for frame in FRAMES[:5]]
        later = [FrameSet((11_000_000_000 + i * 100_000_000,), (image,)) for i, image in enumerate(smaller)]
        with pytest.raises(FrameSetError, match="set dropped"):  # the new size's first set
            session.add(later.pop(0))
    else:
        later = _frame_sets(1, 4, start_ns=1_000_000_000)
    updates = [session.add(s) for s in later]
    assert updates[0].reset  # the executor saw the change
    assert session.integrate(session.infer(stale)).merged  # the worker runs the stale window: it takes the reset
    fresh = [u.window for u in updates if u.window]
    outs = [session.integrate(session.infer(w)) for w in fresh]  # no window raises (before: mixed image sizes)
    assert outs[0].status is WindowStatus.INITIALIZED, outs[0].reason
    # The world holds the frames from the change on only (the random-weight model rejects some windows by itself).
    assert all(f.stamp_ns >= later[0].stamps_ns[0] for f in session.trajectory().frame_ids)


class FailingOncePipelineForTests(CountingPipelineForSessionTests):
    """Test double: the next `predict` after `fail_next` raises (a transient error, e.g. CUDA out of memory)."""

    failing = False

    def predict(self, tokens, image_hw, outputs, dense_frames):
        if self.failing:
            self.failing = False
            raise RuntimeError("CUDA out of memory (a test double's transient failure)")
        return super().predict(tokens, image_hw, outputs, dense_frames)


def test_a_reset_survives_a_window_whose_inference_fails(pipeline):
    failing = FailingOncePipelineForTests(pipeline)
    session = ReconstructionSession(failing, _config())
    before = _run(session, _frame_sets(1, 4, start_ns=1_000_000_000))
    assert before[0].status is WindowStatus.INITIALIZED and len(session.trajectory().frame_ids) > 1
    session.request_reset()  # ~/reset
    failing.failing = True
    first, *later = _frame_sets(1, 3, start_ns=2_000_000_000)
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        session.push(first)  # the node's worker logs it and goes on
    out = session.push(later[0])
    assert out.status is WindowStatus.INITIALIZED and out.map_reset
    assert all(f.stamp_ns >= 2_000_000_000 for f in session.trajectory().frame_ids)
