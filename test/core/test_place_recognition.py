# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Place recognition (`vggt_ros.world.place_recognition`): the descriptor, the search's exclusions, threshold,
non-maximum suppression and bound, and the memory a keyframe's compact copy takes (`loop_verification`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from support.places import VGGT_HW, stored_keyframes_at_vggt_size
from vggt_ros.world.loop_verification import LoopVerificationConfig
from vggt_ros.world.place_recognition import PlaceDescriptor, PlaceIndex, PlaceRecognitionConfig


def _unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    return vector / np.linalg.norm(vector)


def test_the_descriptor_is_the_mean_of_normalised_tokens_with_cosines_kept_by_the_projection():
    tokens = torch.from_numpy(np.random.default_rng(0).normal(size=(3, 50, 16))).float()
    tokens[0, :5] *= 100.0  # a few high-norm tokens weigh no more than the others
    expected = [_unit((t / np.linalg.norm(t, axis=1, keepdims=True)).mean(axis=0)) for t in tokens.numpy()]
    descriptors = PlaceDescriptor(dim=64)(tokens)
    assert descriptors.shape == (3, 64) and descriptors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(descriptors, axis=1), 1.0, atol=1e-6)
    # 16 -> 64 with orthonormal columns: every cosine is the pooled tokens' own.
    np.testing.assert_allclose(descriptors @ descriptors.T, np.array(expected) @ np.array(expected).T, atol=1e-5)
    # The same width without projection is the pooled vector itself; the projection is fixed by the seed.
    np.testing.assert_allclose(PlaceDescriptor(dim=16)(tokens), expected, atol=1e-5)
    np.testing.assert_array_equal(PlaceDescriptor(dim=64)(tokens), descriptors)


def _index(**overrides) -> PlaceIndex:
    config = dict(descriptor_dim=4, min_score=0.9, top_k=3, min_age_s=10.0, exclude_recent=3, nms_s=2.0)
    return PlaceIndex(PlaceRecognitionConfig(**{**config, **overrides}))


def test_recent_keyframes_are_excluded_by_time_by_recency_and_by_covisibility():
    index = _index()
    same = _unit([1, 0, 0, 0])
    for k in range(30):  # one keyframe a second, all looking alike
        index.add(k, float(k), same)
    search = index.search(same, 30.0, query=None, covisible={0, 1, 2})
    matches = {c.match for c in search.candidates}
    # Time: captured more than 10 s before (<= 20); recency: not among the last 3 stored (27..29, already by
    # time); covisibility: 0..2 named by the caller. What is left is 3..20, three kept, 2 s apart at least.
    assert matches and matches <= set(range(3, 21)), matches
    assert search.searched == 18 and search.excluded == 12
    stamps = sorted(c.timestamp for c in search.candidates)
    assert len(stamps) == 3 and min(np.diff(stamps)) > 2.0
    # Recency on its own: with no time exclusion the last 3 stored are still left out.
    index = _index(min_age_s=0.0)
    for k in range(10):
        index.add(k, float(k), same)
    found = {c.match for c in index.search(same, 10.0).candidates}
    assert found and found <= set(range(7)), found


def test_a_lost_segments_keyframes_are_candidates_at_any_age_but_never_when_covisible():
    """The time and recency exclusions keep the path just travelled out. A lost segment's keyframes are no such path:
    after a 3 s loss, places seen seconds before it gave no candidate until 20 s had passed (pass J)."""
    index = _index()
    same = _unit([1, 0, 0, 0])
    for k in range(30):
        index.add(k, float(k), same)
    lost = range(22, 30)  # the segment tracking lost: too recent by time and by recency
    search = index.search(same, 30.0, query=None, covisible={29}, any_age=lost)
    assert {c.match for c in index.search(same, 30.0).candidates} <= set(range(21))
    assert search.searched == 21 + 7 and 29 not in {c.match for c in search.candidates}


def test_the_search_ranks_thresholds_and_suppresses_non_maxima():
    index = _index(min_age_s=0.0, exclude_recent=0)
    query = _unit([1, 0, 0, 0])
    scores = {0: 0.95, 1: 0.97, 2: 0.5, 10: 0.99, 11: 0.93, 20: 0.92}
    for stamp, score in scores.items():
        index.add(stamp, float(stamp), _unit([score, np.sqrt(1 - score**2), 0, 0]))
    search = index.search(query, 100.0)
    # 1 beats 0 (within 2 s), 10 beats 11, 2 is under the threshold; top 3 of what is left, best first.
    assert [c.match for c in search.candidates] == [10, 1, 20]
    np.testing.assert_allclose([c.score for c in search.candidates], [0.99, 0.97, 0.92], atol=2e-3)
    assert search.best_score == pytest.approx(0.99, abs=2e-3)
    assert _index(min_score=0.999).search(query, 100.0).candidates == ()


def test_a_descriptor_with_a_nan_gives_no_candidate_and_is_never_proposed():
    # One NaN in one patch token makes the whole descriptor NaN; NaN < min_score is False, so it passed the gate.
    tokens = torch.rand(1, 6, 8)
    tokens[0, 2, 3] = float("nan")
    broken = PlaceDescriptor(dim=4)(tokens)[0]
    assert not np.isfinite(broken).any()
    index = _index(min_age_s=0.0, exclude_recent=0)
    same = _unit([1, 0, 0, 0])
    for k in range(3):
        index.add(k, float(k), same)
    assert index.search(broken, 10.0).candidates == ()
    index.add(3, 3.0, broken)  # stored as it came: a later query never gets it as a candidate
    assert [c.match for c in index.search(same, 10.0).candidates] == [0]  # the others within nms_s of it


def test_the_store_stays_bounded_and_keeps_spanning_the_run():
    index = _index(capacity=20, exclude_recent=3)
    for k in range(200):
        index.add(k, float(k), _unit(np.random.default_rng(k).normal(size=4)))
        assert len(index) <= 20
    assert 0 in index and 199 in index and 198 in index  # the start of the run and the recent keyframes
    assert index.nbytes == (20 + 1) * 4 * 4  # float32 descriptors, allocated once


def test_the_store_thins_whole_frame_sets_so_every_camera_keeps_its_history():
    """Two cameras, ids (stamp, camera): thinned keyframe by keyframe, the older part kept camera 0's only, so old
    places were no longer found from camera 1's views. Each camera keeps the stamps of the other."""
    index = _index(capacity=40, exclude_recent=3)
    for k in range(200):
        for camera in (0, 1):
            index.add((k, camera), float(k), _unit(np.random.default_rng([k, camera]).normal(size=4)))
    stamps = [sorted(stamp for stamp, c in index if c == camera) for camera in (0, 1)]
    assert stamps[0] == stamps[1] and stamps[0][0] == 0 and len(stamps[0]) > 10


def test_a_removed_keyframe_is_never_proposed_and_the_others_keep_their_descriptors():
    index = _index(min_age_s=0.0, exclude_recent=0, nms_s=0.0)
    for k in range(5):
        index.add(k, 10.0 * k, _unit(np.eye(4)[k % 4]), payload=f"keyframe {k}")
    index.remove(1)
    index.remove(7)  # never stored: nothing happens
    assert list(index) == [0, 2, 3, 4] and 1 not in index
    for k in (0, 2, 3, 4):
        assert index.payload(k) == f"keyframe {k}" and index.timestamp(k) == 10.0 * k
        np.testing.assert_array_equal(index.descriptor(k), _unit(np.eye(4)[k % 4]))
    assert [c.match for c in index.search(_unit(np.eye(4)[1]), 100.0).candidates] == []
    assert [c.match for c in index.search(_unit(np.eye(4)[0]), 100.0).candidates] == [0, 4]


def test_the_payload_bytes_are_those_of_the_kept_payloads():
    """Keyframe k's payload is k + 1 bytes (one without a payload counts 0): the sum over the ids still kept."""
    index = _index(capacity=10, exclude_recent=3)
    for k in range(40):
        index.add(
            k, float(k), _unit(np.random.default_rng(k).normal(size=4)), np.zeros(k + 1, np.uint8) if k % 3 else None
        )
    kept = [k for k in range(40) if k in index]
    assert len(kept) == len(index) and 39 in index
    assert index.payload_bytes == sum(k + 1 for k in kept if k % 3)


@pytest.mark.parametrize(
    "config, field, value",
    [
        (PlaceRecognitionConfig, "descriptor_dim", 0),
        (PlaceRecognitionConfig, "capacity", 1.5),
        (PlaceRecognitionConfig, "min_score", 2.0),
        (PlaceRecognitionConfig, "min_age_s", -1.0),
        (PlaceRecognitionConfig, "exclude_recent", -1),
        (LoopVerificationConfig, "jpeg_quality", 100),
        (LoopVerificationConfig, "keyframe_pixels", 2),
        (LoopVerificationConfig, "neighbour_max_gap_s", float("nan")),
    ],
)
def test_bad_settings_name_the_setting(config, field, value):
    with pytest.raises(ValueError, match=f"{config.__name__}.{field}"):
        config(**{field: value})


def test_a_keyframe_compact_copy_at_vggt_resolution_stays_within_the_documented_bound():
    """At VGGT's 518 x 392 model size, with a real photograph as the image: image + samples + descriptor <=
    `LoopVerificationConfig.max_keyframe_bytes`, and the image comes back close to the original."""
    config = LoopVerificationConfig()
    closer, frame_ids, colors = stored_keyframes_at_vggt_size(config)
    assert closer.counters.keyframes == 3
    for frame_id in frame_ids:
        stored = closer.index.payload(frame_id)
        total = closer.keyframe_bytes(frame_id)
        assert len(stored.pixel_index) == config.keyframe_pixels and stored.image_hw == VGGT_HW
        assert 10_000 < total <= config.max_keyframe_bytes, total
        decoded = stored.image()
        assert decoded.shape == (*VGGT_HW, 3) and np.abs(decoded.astype(int) - colors.numpy()).mean() < 4
    # A tighter bound is kept by storing fewer samples, never more bytes.
    tight = LoopVerificationConfig(max_keyframe_bytes=total - 1200)
    closer, frame_ids, _ = stored_keyframes_at_vggt_size(tight)
    assert all(closer.keyframe_bytes(f) <= tight.max_keyframe_bytes for f in frame_ids)
    assert all(len(closer.index.payload(f).pixel_index) < config.keyframe_pixels for f in frame_ids)
