# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""ApproximateTimeSynchronizer: message_filters' approximate-time rules, on hand-made and simulated streams."""

import random

import pytest

from vggt_ros.live.sync import ApproximateTimeSynchronizer, NearestStampQueue, SyncedSet, synchronize

MS = 1_000_000  # nanoseconds


def test_single_input_emits_every_item_at_once():
    sync = ApproximateTimeSynchronizer(1, queue_size=3, slop=0.01)
    assert sync.add(0, 5 * MS, "a") == SyncedSet(stamps_ns=(5 * MS,), items=("a",))
    assert sync.add(0, 7 * MS, "b") == SyncedSet(stamps_ns=(7 * MS,), items=("b",))
    assert sync.queued(0) == 0


def test_pair_within_slop_is_emitted_in_input_order_and_leaves_the_queues():
    sync = ApproximateTimeSynchronizer(2, queue_size=5, slop=0.02)
    assert sync.add(1, 100 * MS, "right") is None
    matched = sync.add(0, 110 * MS, "left")
    assert matched == SyncedSet(stamps_ns=(110 * MS, 100 * MS), items=("left", "right"))
    assert sync.queued(0) == 0 and sync.queued(1) == 0


def test_pair_beyond_slop_waits():
    sync = ApproximateTimeSynchronizer(2, queue_size=5, slop=0.02)
    assert sync.add(0, 100 * MS, "a") is None
    assert sync.add(1, 121 * MS, "b") is None
    assert sync.queued(0) == 1 and sync.queued(1) == 1


def test_spread_equal_to_slop_does_not_match():
    # message_filters keeps candidates with |dt| <= slop but requires the set's spread to be < slop.
    sync = ApproximateTimeSynchronizer(2, queue_size=5, slop=0.02)
    sync.add(0, 100 * MS, "a")
    assert sync.add(1, 120 * MS, "b") is None


def test_nearest_candidate_wins():
    sync = ApproximateTimeSynchronizer(2, queue_size=5, slop=0.05)
    sync.add(1, 0, "early")
    sync.add(1, 30 * MS, "late")
    matched = sync.add(0, 25 * MS, "new")
    assert matched.items == ("new", "late")
    assert sync.queued(1) == 1  # "early" stays queued until pushed out


def test_three_inputs_need_a_set_whose_spread_is_below_slop():
    sync = ApproximateTimeSynchronizer(3, queue_size=5, slop=0.03)
    sync.add(0, 0, "a0")
    sync.add(1, 25 * MS, "b")
    # c at 12 ms: each of a0 (12 ms) and b (13 ms) is within slop of c, and the spread 25 ms < 30 ms.
    assert sync.add(2, 12 * MS, "c").items == ("a0", "b", "c")
    sync.add(0, 100 * MS, "a1")
    sync.add(1, 129 * MS, "b1")
    # Both within slop of c1 at 114 ms, and together they span 29 ms < 30 ms.
    assert sync.add(2, 114 * MS, "c1").items == ("a1", "b1", "c1")
    sync.add(0, 200 * MS, "a2")
    sync.add(1, 231 * MS, "b2")
    # Each is within 30 ms of c2 at 215 ms, but the set spans 31 ms: no match.
    assert sync.add(2, 215 * MS, "c2") is None


def test_queue_is_bounded_and_drops_the_oldest_stamp():
    sync = ApproximateTimeSynchronizer(2, queue_size=3, slop=0.005)
    for k in range(6):
        assert sync.add(0, k * 100 * MS, k) is None
        assert sync.queued(0) <= 3
    assert sync.queued(0) == 3
    assert sync.add(1, 200 * MS, "x") is None  # stamp 200 ms was dropped from input 0
    assert sync.add(1, 300 * MS, "y").items == (3, "y")


def test_same_stamp_replaces_the_queued_item():
    sync = ApproximateTimeSynchronizer(2, queue_size=3, slop=0.01)
    sync.add(0, 10 * MS, "first")
    sync.add(0, 10 * MS, "second")
    assert sync.queued(0) == 1
    assert sync.add(1, 10 * MS, "b").items == ("second", "b")


def test_reset_forgets_everything():
    sync = ApproximateTimeSynchronizer(2, queue_size=3, slop=0.01)
    sync.add(0, 10 * MS, "a")
    sync.reset()
    assert sync.queued(0) == 0
    assert sync.add(1, 10 * MS, "b") is None


def test_offline_replay_of_jittered_streams_recovers_the_capture_ticks():
    """Three 10 Hz cameras with offsets, jitter, shuffled arrival and lost frames, as in a bag."""
    rng = random.Random(7)
    offsets_ms = (0.0, 3.0, -4.0)
    lost = {(1, 5), (2, 9), (0, 14)}
    stream = []
    for tick in range(20):
        for camera, offset in enumerate(offsets_ms):
            if (camera, tick) in lost:
                continue
            stamp = int((tick * 100 + offset + rng.uniform(-2.0, 2.0)) * MS)
            arrival = stamp + int(rng.uniform(0, 30) * MS)  # delivery delay
            stream.append((arrival, camera, stamp, (camera, tick)))
    stream.sort()

    sets = list(synchronize(((c, s, item) for _, c, s, item in stream), num_inputs=3, queue_size=5, slop=0.02))

    ticks = [s.items[0][1] for s in sets]
    for synced in sets:
        assert [item[0] for item in synced.items] == [0, 1, 2]
        assert len({item[1] for item in synced.items}) == 1, f"mixed ticks in {synced.items}"
        assert max(synced.stamps_ns) - min(synced.stamps_ns) < 20 * MS
    assert sorted(ticks) == [t for t in range(20) if t not in {5, 9, 14}]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_inputs=0, queue_size=3, slop=0.1), "num_inputs"),
        (dict(num_inputs=2, queue_size=0, slop=0.1), "queue_size"),
        (dict(num_inputs=2, queue_size=3, slop=0.0), "slop"),
        (dict(num_inputs=2, queue_size=3, slop=float("nan")), "slop"),
    ],
)
def test_bad_configuration_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ApproximateTimeSynchronizer(**kwargs)


def test_bad_input_index_and_stamp_are_rejected():
    sync = ApproximateTimeSynchronizer(2, queue_size=3, slop=0.1)
    with pytest.raises(ValueError, match=r"input_index must be an int in \[0, 2\)"):
        sync.add(2, 0, "x")
    with pytest.raises(TypeError, match="stamp_ns must be an int"):
        sync.add(0, 0.5, "x")


def test_nearest_stamp_queue_matches_like_the_synchronizer_and_stays_bounded():
    queue = NearestStampQueue(queue_size=3, slop=0.01)
    for stamp_ns in (0, 100_000_000, 200_000_000, 300_000_000):
        queue.add(stamp_ns, f"depth@{stamp_ns}")
    assert queue.nearest(0) is None  # the oldest left the bounded queue
    assert queue.nearest(205_000_000) == "depth@200000000"  # nearest within the slop
    assert queue.nearest(295_000_000) == "depth@300000000"
    assert queue.nearest(250_000_000) is None  # 50 ms from both: outside the slop
    queue.clear()
    assert queue.nearest(300_000_000) is None
    with pytest.raises(ValueError, match="slop"):
        NearestStampQueue(queue_size=3, slop=0.0)


def test_kept_stamps_hold_their_match_past_the_queue_however_it_arrives():
    """The keyframes' depth, looked up once the network has run on them: with queue_size 3 and 30 Hz depth, a
    network slower than 0.1 s found every keyframe's depth gone. A kept stamp holds its match (queued already, or
    the nearest that arrives later), for the newest ``kept`` stamps kept."""
    ms = 1_000_000
    queue = NearestStampQueue(queue_size=3, slop=0.01, kept=2)
    queue.add(0, "depth@0")
    queue.keep(2 * ms)  # its depth is queued already
    queue.keep(100 * ms)  # its depth comes later: first 8 ms away, then 3 ms away
    queue.add(92 * ms, "depth@92")
    queue.add(103 * ms, "depth@103")
    queue.add(109 * ms, "depth@109")  # further than the match it has
    for k in range(4, 40):
        queue.add(k * 33 * ms, f"depth@{k * 33}")
    assert queue.nearest(2 * ms) == "depth@0" and queue.nearest(100 * ms) == "depth@103"
    assert queue.nearest(35 * ms) is None  # not kept: gone with the queue
    queue.keep(1254 * ms)  # a third stamp kept: the oldest (2 ms) is let go
    assert queue.nearest(2 * ms) is None and queue.nearest(100 * ms) == "depth@103"
    assert queue.nearest(1254 * ms) == "depth@1254"
    queue.clear()
    assert queue.nearest(100 * ms) is None


@pytest.mark.parametrize("b_arrivals, expected_b", [((130, 70), 130), ((70, 130), 70)])
def test_equally_near_candidates_keep_arrival_order_like_message_filters(b_arrivals, expected_b):
    """message_filters' example: queue 10, slop 0.05 s; B at 130 ms then 70 ms, then A at 100 ms pairs A with the
    B that arrived first (both are 30 ms away), and the other way round when they arrive the other way round."""
    sync = ApproximateTimeSynchronizer(2, 10, 0.05)
    for stamp_ms in b_arrivals:
        assert sync.add(1, stamp_ms * MS, f"B{stamp_ms}") is None
    matched = sync.add(0, 100 * MS, "A100")
    assert matched is not None and matched.stamps_ns == (100 * MS, expected_b * MS)
    assert matched.items == ("A100", f"B{expected_b}")
