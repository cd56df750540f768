# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Loop detection and verification in the session (`ReconstructionSession.close_loops`).

On the synthetic room (`test/support/places.py`): the camera goes once around the loop path and comes back; the
world is chained by `FakePipelineForWorldTests` and the loop passes are answered by the same oracle, honestly or
altered on purpose. The descriptor there is a pose test double, so these tests are about the verification; the
real encoder's detection is tested on photographs with the tiny model (last test), and its precision and recall
on the rendered room are measured by bench/place_recognition.py.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from test_session import FRAMES, IMAGE_SIZE, PERMISSIVE

from conftest import IMAGES
from support.loop_synthetic import DriftingVGGTForTests
from support.places import LoopPassPipelineForTests, PosePlaceDescriptorForTests, revisit_sequence
from support.synthetic import FakeVGGTForWorldTests, chaining_session_config
from vggt_ros.geometry import invert_rigid
from vggt_ros.live.log_policy import LogPolicy
from vggt_ros.live.reconstruction import LiveReconstruction
from vggt_ros.live.saving import save_world
from vggt_ros.metric.config import MetricConfig
from vggt_ros.preprocess import preprocess_frames_u8, to_unit_float
from vggt_ros.session import ReconstructionSession, SessionConfig
from vggt_ros.window import FrameSet, KeyframePolicy, WindowConfig
from vggt_ros.world.alignment import weighted_umeyama
from vggt_ros.world.cloud import CloudConfig
from vggt_ros.world.loop_config import LoopConfig
from vggt_ros.world.loop_constraint import LoopConstraint
from vggt_ros.world.loop_verification import LoopVerificationConfig
from vggt_ros.world.place_recognition import PlaceDescriptor, PlaceIndex, PlaceRecognitionConfig

LAP, AGAIN = 80, 20
PLACE = PlaceRecognitionConfig(min_age_s=5.0, exclude_recent=10, min_score=0.95)


@pytest.fixture(scope="module")
def pipeline(tiny_model):
    from vggt_ros.runtime import Pipeline

    return Pipeline.from_model(tiny_model, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def sequence():
    return revisit_sequence(LAP, AGAIN)


def _synthetic_session(
    sequence, pipeline, loop: LoopConfig = LoopConfig(), cloud: CloudConfig | None = None, **loops
) -> ReconstructionSession:
    window = WindowConfig(8, 1, KeyframePolicy(min_motion=0.07))
    config = chaining_session_config(sequence, window, **({"cloud_config": cloud} if cloud else {}))
    config = dataclasses.replace(
        config,
        world=dataclasses.replace(config.world, loop=loop),
        loop_verification=LoopVerificationConfig(place=PLACE, **loops),
    )
    session = ReconstructionSession(pipeline, config)
    session.loop_verifier.describe = PosePlaceDescriptorForTests(sequence)
    return session


def _world_state(session: ReconstructionSession) -> tuple:
    """Everything of the world a loop pass could disturb, copied."""
    trajectory = session.world.trajectory()
    samples = {f: (s.points.copy(), s.depth.copy(), s.observations.copy()) for f, s in session.world.samples.items()}
    return trajectory.frame_ids, trajectory.world_from_camera.copy(), trajectory.depth_scale.copy(), samples


def _same_world(before: tuple, after: tuple) -> bool:
    ids, poses, scales, samples = before
    if ids != after[0] or not (np.array_equal(poses, after[1]) and np.array_equal(scales, after[2])):
        return False
    return samples.keys() == after[3].keys() and all(
        all(np.array_equal(a, b) for a, b in zip(samples[f], after[3][f])) for f in samples
    )


def _run(session: ReconstructionSession, sequence) -> list:
    """Push the sequence, closing loops after every window; checks the world is the same before and after."""
    reports = []
    for i in range(len(sequence.rgb)):
        out = session.push(FrameSet((int(sequence.stamps_ns[i]),), (sequence.rgb[i],)))
        if out is None:
            continue
        before = _world_state(session)
        reports.append(session.close_loops(out))
        assert _same_world(before, _world_state(session)), "a loop pass changed the world"
    return reports


def _index(sequence, frame_id) -> int:
    return int(np.flatnonzero(sequence.stamps_ns == frame_id[0])[0])


def test_a_revisit_gives_loop_constraints_with_the_true_relative_pose(sequence):
    pipeline = LoopPassPipelineForTests(FakeVGGTForWorldTests(sequence))
    session = _synthetic_session(sequence, pipeline)
    reports = _run(session, sequence)
    constraints = [c for r in reports for c in r.constraints]
    counters = session.loop_verifier.counters
    assert counters.accepted == len(constraints) >= 5, counters
    assert counters.rejections.total() == 0, counters.rejections
    # At most one loop pass per new keyframe, of at most 4 frames.
    assert len(pipeline.loop_passes) == counters.verified <= counters.keyframes
    assert all(len(frames) <= 4 for frames in pipeline.loop_passes)
    # World units per scene unit, from the keyframes' true and chained centres.
    trajectory = session.world.trajectory()
    rows = [_index(sequence, f) for f in trajectory.frame_ids]
    world_per_scene, _, _ = weighted_umeyama(sequence.centres[rows], trajectory.world_from_camera[:, :3, 3])
    for constraint in constraints:
        assert isinstance(constraint, LoopConstraint)
        query, match = _index(sequence, constraint.query), _index(sequence, constraint.match)
        # The place it really was: closer than a tenth of the lap, looking the same way.
        true_distance = np.linalg.norm(sequence.centres[query] - sequence.centres[match])
        assert true_distance < 0.1 * sequence.path_length * LAP / len(sequence.rgb) and query - match > LAP / 2
        true = sequence.extrinsics[match] @ np.vstack((invert_rigid(sequence.extrinsics[query]), [0, 0, 0, 1]))
        measured = constraint.match_from_query
        scale = np.cbrt(np.linalg.det(measured[:3, :3]))
        rotation = measured[:3, :3] / scale
        angle = math.degrees(math.acos(np.clip((np.trace(rotation.T @ true[:3, :3]) - 1) / 2, -1, 1)))
        assert abs(scale - 1.0) < 0.03 and angle < 1.0, (scale, angle)
        # Translation in world units: the true one times the world's scale, within 2 % of the scene depth (~2).
        np.testing.assert_allclose(measured[:3, 3], world_per_scene * true[:3, 3], atol=0.04 * world_per_scene)
        assert 0 < constraint.residual_ratio < PERMISSIVE.max_residual_ratio and constraint.score >= PLACE.min_score


def test_b_a_loop_whose_halves_do_not_align_is_rejected_counted_and_changes_nothing(sequence):
    pipeline = LoopPassPipelineForTests(FakeVGGTForWorldTests(sequence), misplace=True)
    session = _synthetic_session(sequence, pipeline)
    reports = _run(session, sequence)  # checks the world after every loop pass
    rejections = [r for report in reports for r in report.rejections]
    counters = session.loop_verifier.counters
    assert counters.accepted == 0 and not any(report.constraints for report in reports)
    assert len(rejections) == counters.verified == counters.rejections.total() >= 5
    assert all(r.cause.startswith("match_") for r in rejections), {r.cause for r in rejections}
    assert counters.last_rejection.endswith(rejections[-1].reason)
    logged = [line for report in reports for line in report.messages()]
    assert sum(line.startswith("loop rejected (match_") for line in logged) == len(rejections)
    assert sum(line.startswith("loop candidate: ") for line in logged) == counters.candidates


def test_c_a_correction_implausible_for_the_distance_travelled_is_rejected_by_the_world(sequence):
    """The loop pass verifies the halves; whether the correction they imply fits the path travelled is the world's
    one check (`World.close_loop`, against the pose graph): `apply_loops` hands it over and nothing moves."""
    offset = np.eye(4)
    offset[:3, 3] = (0.6, 0.0, 0.0)  # the query side moved by 0.6 window units: ~1.5 scene units, a ~10 m lap
    pipeline = LoopPassPipelineForTests(FakeVGGTForWorldTests(sequence), offset=offset)
    session = _synthetic_session(sequence, pipeline, loop=LoopConfig(max_drift_ratio=0.05))
    results = []
    for report in _run(session, sequence):
        before = _world_state(session)
        results += session.apply_loops(report)
        assert _same_world(before, _world_state(session)), "a rejected loop changed the world"
    assert len(results) >= 5 and not any(result.accepted for result in results)
    assert {result.cause for result in results} == {"implausible"} and "travelled" in results[0].reason
    assert session.world.loop_counters.rejections["implausible"] == len(results)


def test_the_constraint_scale_is_match_units_per_query_unit(sequence):
    """The loop pass sees the query side 4 % larger than the match side (in the window), so the world's units on
    the query side are 4 % too small: one query-side unit is 1.04 match-side units."""
    pipeline = LoopPassPipelineForTests(FakeVGGTForWorldTests(sequence), scale=1.04)
    session = _synthetic_session(sequence, pipeline)
    constraints = [c for report in _run(session, sequence) for c in report.constraints]
    assert len(constraints) >= 5, session.loop_verifier.counters
    scales = [np.cbrt(np.linalg.det(c.match_from_query[:3, :3])) for c in constraints]
    np.testing.assert_allclose(scales, 1.04, atol=0.012)


def _photographs() -> list[np.ndarray]:
    """Six different photographs at one size (300, 451, 3) uint8."""
    names = ("astronaut.png", "camera.png", "chelsea.png", "coffee_2to1.png", "logo.png", "rocket.jpg")
    frames = []
    for name in names:
        with PILImage.open(IMAGES / name) as image:
            frames.append(np.asarray(image.convert("RGB").resize((451, 300))))
    return frames


def test_the_real_descriptor_proposes_the_replayed_keyframe_and_nothing_for_unrelated_views(pipeline):
    """The tiny model's real DINOv2 tokens of a recording of six photographs, two views each (a few pixels
    apart), then the first two views again: only the replays get a candidate, and it is the keyframe replayed."""
    views = [np.ascontiguousarray(np.roll(photo, 4 * k, axis=1)) for photo in _photographs() for k in range(2)]
    recording = views + views[:2]
    pixels = preprocess_frames_u8(np.stack(recording), mode="crop", target_size=IMAGE_SIZE, device="cpu")
    descriptors = PlaceDescriptor()(pipeline.encode(to_unit_float(pixels)))
    index = PlaceIndex(PlaceRecognitionConfig(min_age_s=3.0, exclude_recent=2, min_score=0.95))
    found = {}
    for k, descriptor in enumerate(descriptors):
        found[k] = [c.match for c in index.search(descriptor, float(k), query=k).candidates]
        index.add(k, float(k), descriptor)
    assert all(not matches for k, matches in found.items() if k < len(views)), found
    assert found[len(views)][0] == 0 and found[len(views) + 1][0] == 1, found


def test_the_session_finds_the_old_keyframe_with_the_real_encoder_when_the_recording_comes_back(pipeline):
    """Through the session (windows merged by the tiny model, tokens from its cache): the chelsea views of
    test_session.py, then the first two again; each replay's best candidate is the keyframe it replays, and each
    candidate's loop pass ends in a constraint or a counted rejection."""
    recording = FRAMES[:6] + FRAMES[:2]
    config = SessionConfig(
        window=WindowConfig(3, 1),
        world=dataclasses.replace(PERMISSIVE, retained_frames=3),  # the world aligns to (excludes) the last 3 only
        cloud=CloudConfig(point_decimation=2),
        image_size=IMAGE_SIZE,
        loop_verification=LoopVerificationConfig(
            place=PlaceRecognitionConfig(min_age_s=3.0, exclude_recent=3, min_score=0.95)
        ),
    )
    session = ReconstructionSession(pipeline, config)
    candidates = {}
    for k, image in enumerate(recording):
        out = session.push(FrameSet((k * 1_000_000_000,), (image,)))
        if out is not None:
            assert out.merged, out.reason
            for search in session.close_loops(out).searches:
                candidates[search.query[0] // 1_000_000_000] = [c.match[0] // 1_000_000_000 for c in search.candidates]
    assert set(candidates) == set(range(len(recording)))  # every keyframe was stored and searched
    assert candidates[6][0] == 0 and candidates[7][0] == 1, candidates
    counters = session.loop_verifier.counters
    assert counters.verified == sum(1 for found in candidates.values() if found)
    assert counters.accepted + counters.rejections.total() == counters.verified


def test_after_a_loop_closes_the_next_keyframes_are_stored_but_not_searched(sequence):
    """A route driven again would close a loop at every keyframe (a graph solve and a map rebuild each): after an
    accepted loop, ``cooldown_keyframes`` new keyframes are not searched."""
    pipeline = LoopPassPipelineForTests(FakeVGGTForWorldTests(sequence))
    session = _synthetic_session(sequence, pipeline, cooldown_keyframes=4)
    searched_after_loop, accepted = [], 0
    since_loop = None
    for i in range(len(sequence.rgb)):
        out = session.push(FrameSet((int(sequence.stamps_ns[i]),), (sequence.rgb[i],)))
        if out is None:
            continue
        report = session.close_loops(out)
        if since_loop is not None and since_loop < 4:
            searched_after_loop.append(len(report.searches))
        since_loop = None if since_loop is None else since_loop + int(out.result.new_frames.sum())
        if any(result.accepted for result in session.apply_loops(report)):
            accepted += 1
            since_loop = 0
    assert accepted >= 2, "the revisit closes loops"
    assert searched_after_loop and not any(searched_after_loop), searched_after_loop


def test_the_map_a_loop_rebuilds_keeps_the_clouds_confidence_filter(sequence):
    """The map rebuilt after a loop came from the world's own store of each keyframe's points, filtered at its
    alignment threshold, not at the cloud's: with confidence_percentile 90 the map went from 44k points to 85k,
    the points the user had filtered out back in it. Each map keyframe now keeps the points the map took."""
    pipeline = LoopPassPipelineForTests(FakeVGGTForWorldTests(sequence))
    session = _synthetic_session(sequence, pipeline, cloud=CloudConfig(confidence_percentile=90.0))
    taken = {}  # map keyframe -> points the published cloud kept of it
    for i in range(len(sequence.rgb)):
        out = session.push(FrameSet((int(sequence.stamps_ns[i]),), (sequence.rgb[i],)))
        if out is None:
            continue
        for row, index in enumerate(out.result.placed.frames):
            if out.result.map_frames[index]:
                taken[out.result.frame_ids[index]] = int(np.count_nonzero(out.cloud.frames == row))
        before = len(session.map)
        if any(result.accepted for result in session.apply_loops(session.close_loops(out))):
            break
    else:
        pytest.fail("the revisit closes a loop")
    store = session.world.loops.map
    kept = {frame_id: len(store.points(frame_id)) for frame_id in taken if frame_id in store}
    assert kept and all(count == min(taken[f], store.points_per_keyframe) for f, count in kept.items())
    assert len(session.map) <= before


def test_the_place_index_forgets_the_keyframes_the_world_drops_so_old_places_still_close_loops(sequence):
    """The index and the bounded trajectory thinned out different keyframes: after long runs most candidates were
    keyframes the world no longer kept, each rejected as "forgotten", and revisits of old places closed no loop."""
    pipeline = LoopPassPipelineForTests(FakeVGGTForWorldTests(sequence))
    config = _synthetic_session(sequence, pipeline).config
    world = dataclasses.replace(config.world, trajectory_recent=16, trajectory_history=6)
    session = ReconstructionSession(pipeline, dataclasses.replace(config, world=world))
    session.loop_verifier.describe = PosePlaceDescriptorForTests(sequence)
    index = session.loop_verifier.index
    accepted = forgotten = 0
    for i in range(len(sequence.rgb)):
        out = session.push(FrameSet((int(sequence.stamps_ns[i]),), (sequence.rgb[i],)))
        if out is None:
            continue
        report = session.close_loops(out)
        kept = set(session.world.trajectory().frame_ids)
        assert set(index) <= kept, f"the index holds keyframes the world dropped: {sorted(set(index) - kept)}"
        forgotten += len(out.result.forgotten)
        accepted += sum(result.accepted for result in session.apply_loops(report))
    assert forgotten > 20, "the trajectory dropped keyframes"
    assert session.loop_verifier.counters.rejections["forgotten"] == 0
    assert accepted >= 1, "the revisit closes a loop to a keyframe the thinned trajectory kept"


def test_no_loop_closes_while_the_world_awaits_its_metric_scale_and_later_loops_correct_that_stretch(sequence):
    """A loop closed in the unit-less world corrects scale, and that correction stayed in the corrected world once
    it turned metric: the map, the path and the exports were off by it, in metres. The loops closed later, from the
    metric world into the first lap, must correct the scale drift the first lap was chained with (they kept only
    their rotation and translation: the first lap stayed 4 % off the metric keyframes' scale)."""
    # Windows whose scale drifts (0.3 % per frame in a window): the chained world's unit wanders, loops correct it.
    pipeline = LoopPassPipelineForTests(DriftingVGGTForTests(sequence, scale_bias=0.003))
    config = _synthetic_session(sequence, pipeline).config
    session = ReconstructionSession(pipeline, dataclasses.replace(config, metric=MetricConfig("depth")))
    session.loop_verifier.describe = PosePlaceDescriptorForTests(sequence)
    sensor_from = LAP - 2  # the depth camera starts as the first lap closes on itself

    def depth_for_tests(camera, stamp_ns):  # a test double of the depth camera: true metres, from sensor_from on
        index = int(np.flatnonzero(sequence.stamps_ns == stamp_ns)[0])
        return sequence.depth[index].astype(np.float32) if index >= sensor_from else None

    searched_waiting = stored_waiting = accepted = 0
    for i in range(len(sequence.rgb)):
        out = session.push(FrameSet((int(sequence.stamps_ns[i]),), (sequence.rgb[i],)), depth_for_tests)
        if out is None:
            continue
        stored = len(session.loop_verifier.index)
        report = session.close_loops(out)
        if out.waiting_for_scale:
            searched_waiting += len(report.searches)
            stored_waiting += len(session.loop_verifier.index) - stored
        accepted += sum(result.accepted for result in session.apply_loops(report))
    assert session.world.metric and stored_waiting > 20, "the first lap's keyframes are stored while it waits"
    assert searched_waiting == 0
    assert accepted >= 1, "the revisit, once metric, closes loops to the first lap"
    scale = np.cbrt(np.linalg.det(session.world.corrected_from_chained[:3, :3]))
    assert scale == pytest.approx(1.0, abs=1e-6), "the corrected world is in metres as the chained one is"
    # World units per metre of the corrected keyframes, fitted to the true centres: the first lap (chained before
    # the depth camera started) against the revisit (chained in metres). One world, one scale.
    trajectory = session.world.corrected_trajectory()
    rows = np.array([_index(sequence, f) for f in trajectory.frame_ids])
    centres = trajectory.world_from_camera[:, :3, 3]
    first_lap = rows < sensor_from
    per_metre = [weighted_umeyama(sequence.centres[rows[m]], centres[m])[0] for m in (first_lap, ~first_lap)]
    assert per_metre[0] == pytest.approx(per_metre[1], rel=0.015), per_metre


def test_after_a_reset_that_waits_for_the_scale_the_identity_correction_goes_out_with_the_first_metric_window(
    sequence,
):
    """A loop moved the correction; then ~/reset, and the new world waits for its metric scale. The identity was
    marked as sent while the node, publishing nothing in the unit-less world, dropped it: /tf_static kept the old
    world's correction, under which the new world's TF, path and map hung."""
    pipeline = LoopPassPipelineForTests(FakeVGGTForWorldTests(sequence))
    config = dataclasses.replace(_synthetic_session(sequence, pipeline).config, metric=MetricConfig("depth"))
    session = ReconstructionSession(pipeline, config)
    session.loop_verifier.describe = PosePlaceDescriptorForTests(sequence)
    live = LiveReconstruction(session, LogPolicy(logging.getLogger("test")), "vggt_world", 0, False)
    after_reset = None

    def depth_for_tests(camera, stamp_ns):  # a test double of the depth camera: none for a while after the reset
        index = int(np.flatnonzero(sequence.stamps_ns == stamp_ns)[0])
        waiting = after_reset is not None and index < after_reset + 12
        return None if waiting else sequence.depth[index].astype(np.float32)

    published = []  # (waiting, correction) of every update the node publishes
    for i in range(len(sequence.rgb)):
        if after_reset is None and session.world.loop_counters.accepted:
            assert not np.allclose(published[-1][1], np.eye(4)), "the loop moved the correction"
            live.request_reset()
            after_reset = i
        emitted = live.counters.windows_emitted
        live.offer(FrameSet((int(sequence.stamps_ns[i]),), (sequence.rgb[i],)))
        if live.counters.windows_emitted == emitted:
            continue  # no window yet (a keyframe short of the first, or none after the reset)
        out, _ = live.process(live.next_window(), depth_for_tests)
        update = live.close_loops(out) if out.merged else None
        if update is not None:
            published.append((out.waiting_for_scale, update.correction, after_reset is not None))
    assert after_reset is not None
    assert not any(waiting for waiting, _, _ in published), "nothing goes out while the world waits for its scale"
    first_after_reset = next((c for _, c, after in published if after), None)
    assert first_after_reset is not None and np.array_equal(first_after_reset, np.eye(4)), (
        "the new world hangs under the identity correction again"
    )


@pytest.fixture(scope="module")
def looped(sequence):
    """A session that closed loops on the revisit, and every frame it exported for ~/save (oldest first)."""
    pipeline = LoopPassPipelineForTests(FakeVGGTForWorldTests(sequence))
    session = _synthetic_session(sequence, pipeline)
    exported = []
    for i in range(len(sequence.rgb)):
        out = session.push(FrameSet((int(sequence.stamps_ns[i]),), (sequence.rgb[i],)))
        if out is None:
            continue
        exported += session.exported_frames(out)
        session.apply_loops(session.close_loops(out))
    assert session.world.loop_counters.accepted >= 1
    return session, exported


def _saved_poses(directory) -> tuple[dict[str, np.ndarray], dict]:
    """transforms.json's camera-to-world poses by frame name, back in OpenCV axes (nerfstudio's are OpenGL's), and
    the document."""
    document = json.loads((directory / "transforms.json").read_text())
    opengl_from_opencv = np.diag([1.0, -1.0, -1.0, 1.0])
    return {
        f["file_path"].removeprefix("images/"): np.asarray(f["transform_matrix"]) @ opengl_from_opencv
        for f in document["frames"]
    }, document


def test_saved_dataset_frames_take_the_loop_closed_poses(looped, tmp_path):
    """~/save writes its kept frames with the poses the map and the trajectories have, the corrected ones, and
    names the map as their point cloud; each frame's depth takes its loop's change of unit."""
    session, exported = looped
    corrected = session.world.corrected_trajectory()
    chained = session.world.trajectory()
    row = {frame_id: i for i, frame_id in enumerate(corrected.frame_ids)}
    live = LiveReconstruction(session, LogPolicy(logging.getLogger("test")), "vggt_world", len(exported), False)
    live.recent_frames.extend(exported[-20:])

    saved = save_world(live, tmp_path)
    assert saved.dataset_frames == 20 and not saved.dataset_poses_before_loops
    assert "no loop-corrected pose" not in saved.message()
    poses, document = _saved_poses(tmp_path)
    assert document["ply_file_path"] == "map.ply"
    moved = session.loop_corrected(exported[-20:])
    for (frame, _), (after, _) in zip(exported[-20:], moved):
        i = row[(frame.stamp_ns, frame.camera)]
        np.testing.assert_allclose(poses[frame.name], corrected.world_from_camera[i], atol=1e-6)
        np.testing.assert_allclose(after.world_from_camera, corrected.world_from_camera[i], atol=1e-9)
        unit = corrected.depth_scale[i] / chained.depth_scale[i]
        np.testing.assert_allclose(after.depth, frame.depth * unit, rtol=1e-6)
    assert any(not np.allclose(poses[frame.name], frame.world_from_camera, atol=1e-3) for frame, _ in exported[-20:]), (
        "the loops moved them"
    )


def test_a_saved_dataset_with_a_frame_the_world_no_longer_keeps_stays_as_integrated(looped, tmp_path):
    """One kept frame that the world no longer keeps (the keyframe store dropped it: stood in for by a stamp the
    world never had) has no loop-corrected pose. Moving only the others would put two worlds in one dataset, so
    ~/save keeps every frame's pose from before the loops, names no point cloud and says why (the offline
    exports' rule, `World.loop_corrections`)."""
    session, exported = looped
    unknown = dataclasses.replace(exported[-1][0], stamp_ns=exported[-1][0].stamp_ns + 1, name="unknown.png")
    frames = exported[-5:] + [(unknown, exported[-1][1])]
    assert session.loop_corrected(frames) is None
    live = LiveReconstruction(session, LogPolicy(logging.getLogger("test")), "vggt_world", len(frames), False)
    live.recent_frames.extend(frames)

    saved = save_world(live, tmp_path)
    assert saved.dataset_frames == 6 and saved.dataset_poses_before_loops
    assert "no loop-corrected pose" in saved.message()
    poses, document = _saved_poses(tmp_path)
    assert "ply_file_path" not in document
    for frame, _ in frames:
        np.testing.assert_allclose(poses[frame.name], frame.world_from_camera, atol=1e-6)
    assert (tmp_path / "map.ply").is_file() and (tmp_path / "trajectory.tum").is_file()


def test_the_loop_pass_masks_the_padding_of_padded_keyframes(pipeline, monkeypatch):
    """Frames padded to one model size (`SessionConfig.model_hw`, as the offline command pads a folder of mixed
    sizes): the loop pass decodes with each frame's image box, so its depth and confidence are NaN over the padding
    and its confidence percentile counts image pixels only, as in the session's own windows."""
    from vggt_ros.world import loop_verification

    decoded, real_decode = [], loop_verification.decode_window

    def recording_decode_for_tests(*args, **kwargs):  # test double: the real decode, its products recorded
        products = real_decode(*args, **kwargs)
        decoded.append(products)
        return products

    monkeypatch.setattr(loop_verification, "decode_window", recording_decode_for_tests)
    recording = FRAMES[:6] + FRAMES[:2]
    model_hw = (126, 182)  # the photographs' 98 x 154 model image, padded by 14 rows and columns on each side
    config = SessionConfig(
        window=WindowConfig(3, 1),
        world=dataclasses.replace(PERMISSIVE, retained_frames=3),
        cloud=CloudConfig(point_decimation=2),
        image_size=IMAGE_SIZE,
        preprocessing="exact",
        model_hw=model_hw,
        loop_verification=LoopVerificationConfig(
            place=PlaceRecognitionConfig(min_age_s=3.0, exclude_recent=3, min_score=0.95)
        ),
    )
    session = ReconstructionSession(pipeline, config)
    for k, image in enumerate(recording):
        out = session.push(FrameSet((k * 1_000_000_000,), (image,)))
        if out is not None:
            session.close_loops(out)
    assert decoded, "no loop pass ran"
    for products in decoded:
        assert tuple(products.depth.shape[1:]) == model_hw
        padding = torch.ones(model_hw, dtype=torch.bool)
        padding[14:112, 14:168] = False
        assert torch.isnan(products.depth[:, padding]).all() and torch.isnan(products.confidence[:, padding]).all()
        assert torch.isfinite(products.depth[:, ~padding]).all()


def test_the_world_correction_puts_the_newest_chained_camera_and_the_published_path_at_their_corrected_poses(looped):
    """REP 105's map -> odom: under ``parent_frame`` the newest camera the node publishes (a chained pose) sits at its
    loop-closed pose, by a rigid transform (TF has no scale; the loop's change of unit stays in the corrected
    poses); and the path published in the chained world is the corrected one there."""
    session, _ = looped
    correction = session.world_correction()
    corrected, chained = session.world.corrected_trajectory(), session.world.trajectory()
    assert not np.allclose(correction, np.eye(4), atol=1e-3), "the loops moved the world"
    assert corrected.depth_scale[-1] != pytest.approx(chained.depth_scale[-1], rel=1e-4), "and changed its unit"
    np.testing.assert_allclose(correction[:3, :3] @ correction[:3, :3].T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(correction[:3, :3]), 1.0, atol=1e-12)
    np.testing.assert_allclose(correction @ chained.world_from_camera[-1], corrected.world_from_camera[-1], atol=1e-9)
    pose_by_stamp = {f.stamp_ns: pose for f, pose in zip(corrected.frame_ids, corrected.world_from_camera)}
    path = session.camera_path()
    assert len(path) == len(pose_by_stamp)
    for stamp_ns, pose in path:
        np.testing.assert_allclose(correction @ pose, pose_by_stamp[stamp_ns], atol=1e-9)
