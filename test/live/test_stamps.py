# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Per-camera stamp rules: zero, repeated, slightly late and jumping-back stamps."""

import pytest

from vggt_ros.live.stamps import CameraStamps, StampVerdict

MS = 1_000_000
S = 1_000_000_000


def test_increasing_stamps_are_accepted_per_camera():
    stamps = CameraStamps(cameras=2, reorder_tolerance_s=0.5)
    assert stamps.check(0, 100 * MS, arrival_ns=1).verdict is StampVerdict.ACCEPT
    assert stamps.check(1, 90 * MS, arrival_ns=1).verdict is StampVerdict.ACCEPT  # another camera's own order
    assert stamps.check(0, 101 * MS, arrival_ns=1).verdict is StampVerdict.ACCEPT
    assert stamps.newest(0) == 101 * MS and stamps.newest(1) == 90 * MS


def test_a_zero_stamp_takes_the_arrival_time():
    stamps = CameraStamps(cameras=1, reorder_tolerance_s=0.5)
    first = stamps.check(0, 0, arrival_ns=5_000 * MS)
    second = stamps.check(0, 0, arrival_ns=5_033 * MS)
    assert (first.verdict, first.stamp_ns, first.substituted) == (StampVerdict.ACCEPT, 5_000 * MS, True)
    assert (second.verdict, second.stamp_ns) == (StampVerdict.ACCEPT, 5_033 * MS)


SIM_LOG_NS = 1_700_000_000 * S  # wall-clock log times of a simulation recorded without --use-sim-time


def test_a_zero_stamp_before_a_camera_s_first_image_takes_its_given_clock():
    """A simulation's first image stamped 0.0, recorded in wall-clock log times: it took the log time (1.7e9 s), so
    the next image (0.1 s) was stale and the one after it started the reconstruction over."""
    stamps = CameraStamps(cameras=1, reorder_tolerance_s=0.0, leads_ns=[-SIM_LOG_NS])
    checks = [stamps.check(0, 100 * MS * i, arrival_ns=SIM_LOG_NS + 100 * MS * i) for i in range(4)]
    assert [check.verdict for check in checks] == [StampVerdict.ACCEPT] * 4
    assert [check.stamp_ns for check in checks] == [0, 100 * MS, 200 * MS, 300 * MS]
    assert [check.substituted for check in checks] == [True, False, False, False]


def test_a_lone_zero_stamp_takes_the_camera_s_clock_from_its_newest_image():
    """Mid-stream, the lead of the newest image places an unset image between its neighbours, in a camera clock
    far from the arrival's (it was 1.7e9 s ahead: dropped, as a clock glitch) as in the arrival's own."""
    for lead_ns in (5 * S - SIM_LOG_NS, -3 * MS):  # a simulation 5 s in; a wall clock, 3 ms delivery
        stamps = CameraStamps(cameras=1, reorder_tolerance_s=0.0, max_gap_s=5.0)
        arrivals = [SIM_LOG_NS + 100 * MS * i for i in range(4)]
        sent = [arrival + lead_ns for arrival in arrivals]
        sent[2] = 0
        checks = [stamps.check(0, stamp_ns, arrival) for stamp_ns, arrival in zip(sent, arrivals)]
        assert [check.verdict for check in checks] == [StampVerdict.ACCEPT] * 4
        assert checks[2].substituted and checks[2].stamp_ns == arrivals[2] + lead_ns


def test_the_camera_s_clock_outlasts_a_reset():
    stamps = CameraStamps(cameras=1, reorder_tolerance_s=0.5)
    stamps.check(0, 10 * S, arrival_ns=SIM_LOG_NS)
    stamps.reset()
    assert stamps.check(0, 0, arrival_ns=SIM_LOG_NS + S).stamp_ns == 11 * S


def test_a_repeated_stamp_is_a_duplicate():
    stamps = CameraStamps(cameras=1, reorder_tolerance_s=0.5)
    stamps.check(0, 100 * MS, arrival_ns=0)
    assert stamps.check(0, 100 * MS, arrival_ns=0).verdict is StampVerdict.DUPLICATE
    assert stamps.newest(0) == 100 * MS


@pytest.mark.parametrize(
    "back_ms, verdict",
    [(1, StampVerdict.LATE), (500, StampVerdict.LATE), (501, StampVerdict.STALE), (60_000, StampVerdict.STALE)],
)
def test_small_reordering_is_late_and_further_back_is_stale_until_the_next_image_says(back_ms, verdict):
    stamps = CameraStamps(cameras=1, reorder_tolerance_s=0.5)
    stamps.check(0, 100_000 * MS, arrival_ns=0)
    assert stamps.check(0, (100_000 - back_ms) * MS, arrival_ns=0).verdict is verdict
    assert stamps.newest(0) == 100_000 * MS  # neither starts the camera's time over


def test_the_next_image_from_the_earlier_time_confirms_a_jump_back():
    """A bag loop, a restarted driver: the second image after the stale one continues from the earlier time."""
    stamps = CameraStamps(cameras=1, reorder_tolerance_s=0.5)
    stamps.check(0, 100_000 * MS, arrival_ns=0)
    assert stamps.check(0, 40_000 * MS, arrival_ns=0).verdict is StampVerdict.STALE
    assert stamps.check(0, 40_033 * MS, arrival_ns=0).verdict is StampVerdict.JUMP_BACK
    assert stamps.newest(0) == 40_033 * MS
    assert stamps.check(0, 40_066 * MS, arrival_ns=0).verdict is StampVerdict.ACCEPT


def test_a_lone_stale_image_costs_nothing_else():
    """A resent or long-delayed frame: the next image carries on after the newest, and nothing starts over."""
    stamps = CameraStamps(cameras=1, reorder_tolerance_s=0.5)
    stamps.check(0, 100_000 * MS, arrival_ns=0)
    assert stamps.check(0, 99_000 * MS, arrival_ns=0).verdict is StampVerdict.STALE
    assert stamps.check(0, 100_033 * MS, arrival_ns=0).verdict is StampVerdict.ACCEPT
    # the candidate is forgotten: a later stale image is a candidate again, not a confirmation
    assert stamps.check(0, 99_500 * MS, arrival_ns=0).verdict is StampVerdict.STALE


def test_reset_forgets_the_newest_stamps():
    stamps = CameraStamps(cameras=1, reorder_tolerance_s=0.5)
    stamps.check(0, 100 * MS, arrival_ns=0)
    stamps.reset()
    assert stamps.check(0, 50 * MS, arrival_ns=0).verdict is StampVerdict.ACCEPT


@pytest.mark.parametrize(
    "after_stale_ms, verdict",
    [(100_000, StampVerdict.DUPLICATE), (99_900, StampVerdict.LATE), (60_000, StampVerdict.DUPLICATE)],
    ids=["the newest repeated", "slightly late", "the stale image repeated"],
)
def test_a_duplicate_or_slightly_late_image_after_a_stale_one_confirms_nothing(after_stale_ms, verdict):
    """A hiccup that resends or holds up one frame often repeats or reorders others: those are not the earlier
    time going on, and the stale candidate waits for an image that is."""
    stamps = CameraStamps(cameras=1, reorder_tolerance_s=0.5)
    stamps.check(0, 100_000 * MS, arrival_ns=0)
    assert stamps.check(0, 60_000 * MS, arrival_ns=0).verdict is StampVerdict.STALE
    assert stamps.check(0, after_stale_ms * MS, arrival_ns=0).verdict is verdict
    assert stamps.newest(0) == 100_000 * MS
    assert stamps.check(0, 60_033 * MS, arrival_ns=0).verdict is StampVerdict.JUMP_BACK


def test_a_lone_stamp_far_ahead_costs_only_itself():
    """One image stamped 1000 s ahead (a bad clock read) arriving on time was taken: the camera's next images were
    then stale, the second of them restarted the reconstruction, and the outputs stamped 1000 s ahead made tf2
    listeners refuse every later transform. It is held as the candidate of a jump forward, and the next image says
    it was not."""
    stamps = CameraStamps(cameras=1, reorder_tolerance_s=0.5, max_gap_s=5.0)
    arrival = 7_000 * MS  # the node's clock: 7 s behind the camera's
    stamps.check(0, 100_000 * MS, arrival_ns=93_000 * MS + arrival)
    assert stamps.check(0, 1_100_000 * MS, arrival_ns=93_033 * MS + arrival).verdict is StampVerdict.AHEAD
    assert stamps.newest(0) == 100_000 * MS
    for t in (100_066, 100_100, 100_133):
        assert stamps.check(0, t * MS, arrival_ns=(t - 7_000) * MS + arrival).verdict is StampVerdict.ACCEPT
    # the candidate is forgotten: a later glitch is a candidate again, not a confirmation
    assert stamps.check(0, 1_100_050 * MS, arrival_ns=93_166 * MS + arrival).verdict is StampVerdict.AHEAD


def test_the_next_image_with_the_candidates_lead_confirms_a_clock_jump():
    """A camera whose clock was stepped forward by a minute: the second image keeps the first one's lead over its
    arrival, and the reconstruction goes on from there (no restart: time went forward)."""
    stamps = CameraStamps(cameras=1, reorder_tolerance_s=0.5, max_gap_s=5.0)
    stamps.check(0, 100_000 * MS, arrival_ns=100_000 * MS)
    assert stamps.check(0, 160_000 * MS, arrival_ns=100_033 * MS).verdict is StampVerdict.AHEAD
    assert stamps.check(0, 160_000 * MS, arrival_ns=100_040 * MS).verdict is StampVerdict.DUPLICATE  # resent
    assert stamps.check(0, 160_066 * MS, arrival_ns=100_066 * MS).verdict is StampVerdict.ACCEPT
    assert stamps.newest(0) == 160_066 * MS
    assert stamps.check(0, 104_000 * MS, arrival_ns=100_100 * MS).verdict is StampVerdict.STALE  # the old time


def test_a_camera_played_faster_than_real_time_loses_two_images_at_its_start_at_most():
    """One image every 10 s played 3 times faster without simulated time (or a bag whose log times stand still):
    each stamp runs 6.7 s further ahead of its arrival than the one before. With the lead compared to the newest
    image's, every other image was dropped; its trend is expected now, once two changes agree on it."""
    stamps = CameraStamps(cameras=1, reorder_tolerance_s=0.5, max_gap_s=5.0)
    period_ns = 10 * S
    verdicts = [stamps.check(0, 100 * S + k * period_ns, arrival_ns=k * period_ns // 3).verdict for k in range(10)]
    assert verdicts.count(StampVerdict.AHEAD) <= 2 and verdicts[4:] == [StampVerdict.ACCEPT] * 6


def test_one_late_delivery_sets_no_trend_and_a_jump_is_no_trend():
    """The lead's last change as its trend: one image delivered 4 s late made the next sound one "ahead" and let a
    +8 s glitch after it through; and after a confirmed +60 s clock step, the step itself was the trend, so a +30 s
    glitch on the next image was taken (each then restarted the reconstruction)."""
    stamps = CameraStamps(cameras=1, reorder_tolerance_s=0.5, max_gap_s=5.0)
    period = 10 * S
    arrivals = [k * period + (4 * S if k == 5 else 0) for k in range(10)]  # image 5 arrives 4 s late
    verdicts = [stamps.check(0, 100 * S + k * period, arrival_ns=arrivals[k]).verdict for k in range(7)]
    assert verdicts == [StampVerdict.ACCEPT] * 7
    glitch = stamps.check(0, 100 * S + 7 * period + 8 * S, arrival_ns=7 * period)
    assert glitch.verdict is StampVerdict.AHEAD
    assert stamps.check(0, 100 * S + 8 * period, arrival_ns=8 * period).verdict is StampVerdict.ACCEPT

    stepped = CameraStamps(cameras=1, reorder_tolerance_s=0.5, max_gap_s=5.0)
    for k in range(3):
        stepped.check(0, 100 * S + k * S // 10, arrival_ns=k * S // 10)
    assert stepped.check(0, 160 * S + 3 * S // 10, arrival_ns=3 * S // 10).verdict is StampVerdict.AHEAD
    assert stepped.check(0, 160 * S + 4 * S // 10, arrival_ns=4 * S // 10).verdict is StampVerdict.ACCEPT
    assert stepped.check(0, 190 * S, arrival_ns=5 * S // 10).verdict is StampVerdict.AHEAD  # +30 s more
    assert stepped.check(0, 160 * S + 6 * S // 10, arrival_ns=6 * S // 10).verdict is StampVerdict.ACCEPT


def test_images_on_time_after_late_deliveries_in_a_row_are_accepted():
    """A bag played without simulated time, paused, stepped twice (8 s apart) and resumed: the two stepped images'
    leads shrank by 7.9 s each, and that shrinking taken for a trend made the next image, on time, 7.9 s "ahead":
    dropped as a clock glitch."""
    stamps = CameraStamps(cameras=1, reorder_tolerance_s=0.5, max_gap_s=5.0)
    arrivals = [0, 8 * S, 16 * S, 16 * S + S // 10, 16 * S + 2 * S // 10]
    verdicts = [
        stamps.check(0, 100 * S + k * S // 10, arrival_ns=arrival).verdict for k, arrival in enumerate(arrivals)
    ]
    assert verdicts == [StampVerdict.ACCEPT] * 5
    # A glitch after them is still caught: 8 s beyond the lead of the newest image.
    assert stamps.check(0, 108 * S, arrival_ns=16 * S + 3 * S // 10).verdict is StampVerdict.AHEAD


@pytest.mark.parametrize("period_s", [0.033, 6.0, 60.0])
def test_a_camera_that_pauses_or_sends_seldom_keeps_its_lead_and_loses_nothing(period_s):
    """A camera sending one image every 6 s (a throttled topic), or pausing for a minute, with a max_gap_s of 5 s:
    the rule on the stamp gap alone dropped every image after the first. Stamp and arrival move together."""
    stamps = CameraStamps(cameras=1, reorder_tolerance_s=0.5, max_gap_s=5.0)
    period_ns = int(period_s * 1e9)
    verdicts = [stamps.check(0, 100 * S + k * period_ns, arrival_ns=90 * S + k * period_ns).verdict for k in range(6)]
    assert verdicts == [StampVerdict.ACCEPT] * 6
