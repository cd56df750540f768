# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""MetricScaleFilter on simulated observation streams whose truth is known: a constant scale combined over all
windows, noise and outliers, a single wild window, an ultra-confident window, a slow drift and a random walk, and the
caller's loop of correction and rebase."""

import math

import numpy as np
import pytest

from vggt_ros.metric.scale_filter import (
    HUBER_SIGMAS,
    MAX_PERSISTENCE,
    PERSISTENCE,
    MetricScaleFilter,
    ScaleFilterConfig,
)


def test_constant_truth_with_noise_and_20_percent_outliers_stays_within_half_a_percent():
    rng = np.random.default_rng(0)
    truth, noise = 1.37, 0.003
    scale_filter = MetricScaleFilter(ScaleFilterConfig(min_observations=5))
    outlier = rng.random(300) < 0.2
    outlier[:5] = False  # the first min_observations windows are trusted (see the module docstring)
    kinds, errors = [], []
    for wild in outlier:
        if wild:  # 15 % to 3x too large or too small: a wrong depth prediction, a wheel slip
            ratio = truth * math.exp(rng.choice([-1.0, 1.0]) * rng.uniform(0.15, 1.1))
        else:
            ratio = truth * math.exp(rng.normal() * noise)
        kinds.append(scale_filter.update(ratio, noise).kind)
        errors.append(abs(scale_filter.estimate / truth - 1.0))

    assert kinds == ["outlier" if wild else "accepted" for wild in outlier]
    # Once the history is full (a median of 15: 0.1 % standard error); over 200 seeds the worst was 0.4 %.
    assert max(errors[15:]) < 0.005


def test_a_single_wild_window_leaves_the_estimate_unchanged():
    rng = np.random.default_rng(1)
    scale_filter = MetricScaleFilter()
    for _ in range(20):
        scale_filter.update(math.exp(rng.normal() * 0.01), 0.01)
    before = scale_filter.estimate

    verdict = scale_filter.update(3.0, 0.001)

    assert not verdict.accepted and verdict.kind == "outlier"
    assert "observation 3 metres per world unit" in verdict.reason and f"estimate {before:.5g}" in verdict.reason
    assert scale_filter.estimate == before


def test_an_ultra_confident_window_counts_as_min_sigma():
    """A window's own scatter does not show the error it shares, so a claimed sigma below min_sigma counts as
    min_sigma: a window claiming to be a million times surer moves the estimate exactly as one at min_sigma."""
    ultra, floor = MetricScaleFilter(), MetricScaleFilter()
    for scale_filter in (ultra, floor):
        for ratio in np.linspace(0.99, 1.01, 14):
            scale_filter.update(ratio, 0.03)

    ultra.update(1.06, 1e-7)  # inside the gate
    floor.update(1.06, ultra.config.min_sigma)

    assert ultra.estimate == floor.estimate
    # Its pull is bounded too: the innovation is clipped at HUBER_SIGMAS of its spread.
    assert 1.0 < ultra.estimate < 1.0 + HUBER_SIGMAS * math.sqrt(0.03**2 / 14 + ultra.config.min_sigma**2)


def test_a_noisy_window_gets_a_wider_gate():
    scale_filter = MetricScaleFilter()
    scale_filter.update(1.0, 0.01)
    assert scale_filter.update(1.3, 0.01).kind == "outlier"  # 0.26 in log > gate 0.1
    assert scale_filter.update(1.3, 0.1).kind == "accepted"  # within 4 of its own sigmas


def test_a_slowly_drifting_ratio_is_tracked():
    rng = np.random.default_rng(2)
    scale_filter = MetricScaleFilter()
    truths = np.exp(np.linspace(0.0, math.log(1.25), 300))  # the chaining's drift: 25 % over 300 windows
    lags = []
    for truth in truths:
        verdict = scale_filter.update(truth * math.exp(rng.normal() * 0.005), 0.005)
        assert verdict.accepted
        lags.append(abs(math.log(scale_filter.estimate / truth)))

    # The filter lags a steady drift by slope x (1 - gain) / gain: about 4 windows here (0.3 %), plus its noise.
    assert max(lags[15:]) < 0.015


@pytest.mark.parametrize("ratio", [3.0, 0.5])
def test_correction_is_clamped_to_max_step(ratio):
    scale_filter = MetricScaleFilter(ScaleFilterConfig(max_step=0.02))
    assert scale_filter.correction() == 1.0  # nothing known yet
    scale_filter.update(ratio, 0.01)
    assert scale_filter.correction() == pytest.approx(math.exp(math.copysign(0.02, math.log(ratio))))


def test_small_corrections_are_applied_whole():
    scale_filter = MetricScaleFilter()
    scale_filter.update(1.004, 0.01)
    assert scale_filter.correction() == pytest.approx(1.004)


def test_rebase_moves_the_held_ratios_into_the_new_unit():
    scale_filter = MetricScaleFilter()
    for ratio in (2.0, 2.02, 1.98):
        scale_filter.update(ratio, 0.01)

    scale_filter.rebase(2.0)  # the caller made the world twice as large: its unit is now a metre

    assert scale_filter.estimate == pytest.approx(1.0, abs=1e-4)
    assert scale_filter.update(1.01, 0.01).accepted
    assert scale_filter.update(2.0, 0.01).kind == "outlier"
    with pytest.raises(ValueError, match="positive"):
        scale_filter.rebase(0.0)


def test_correction_and_rebase_bring_the_world_to_metres_in_bounded_steps():
    rng = np.random.default_rng(3)
    scale_filter = MetricScaleFilter()
    metres_per_world_unit = 1.08  # after the first window the world's unit is 8 % off
    steps = []
    for _ in range(60):
        observed = metres_per_world_unit * math.exp(rng.normal() * 0.003)
        scale_filter.update(observed, 0.003)
        factor = scale_filter.correction()
        metres_per_world_unit /= factor  # the caller scales the world by the factor
        scale_filter.rebase(factor)
        steps.append(math.log(factor))

    # log(1.08) = 0.077: seven full steps of 0.01, then small ones; over 200 seeds the end was within 0.35 %.
    assert steps[:7] == pytest.approx([0.01] * 7) and max(np.abs(steps)) <= 0.01 + 1e-12
    assert metres_per_world_unit == pytest.approx(1.0, rel=0.005)


@pytest.mark.parametrize("windows", [40, 100])
def test_a_constant_scale_is_measured_by_all_windows_together(windows):
    """Against a constant truth (a rigid rig's baseline) and no chaining drift, every window counts: the error
    shrinks as sigma / sqrt(windows), that of the inverse-variance mean of them all. (A median of the last 15
    windows stays at about 1.25 sigma / sqrt(15): 0.32 sigma, against 0.16 sigma at 40 and 0.1 sigma at 100.)"""
    sigma = 0.03  # one 12 cm rig window of 8 camera pairs
    errors = []
    for seed in range(400):
        rng = np.random.default_rng(seed)
        scale_filter = MetricScaleFilter(ScaleFilterConfig(drift=0.0))
        for _ in range(windows):
            scale_filter.update(1.2 * math.exp(rng.normal() * sigma), sigma)
        errors.append(math.log(scale_filter.estimate / 1.2))

    rms = math.sqrt(np.mean(np.square(errors)))
    # 400 streams know their RMS to about 3.5 %; the robust clipping costs a few % of efficiency.
    assert sigma / math.sqrt(windows) * 0.9 < rms < sigma / math.sqrt(windows) * 1.15


def test_a_random_walk_of_the_chaining_is_tracked_within_the_estimate_s_own_sigma():
    """The chained world's scale random-walks by ``drift`` a window: the filter follows it, and its error is what
    its own relative_sigma says (the Kalman filter's steady state, about sqrt(sigma x drift))."""
    sigma, drift = 0.03, 0.001
    errors, claimed = [], []
    for seed in range(100):
        rng = np.random.default_rng(seed)
        scale_filter = MetricScaleFilter(ScaleFilterConfig(drift=drift))
        log_truth = 0.0
        for window in range(300):
            log_truth += rng.normal() * drift
            scale_filter.update(math.exp(log_truth + rng.normal() * sigma), sigma)
            if window >= 100:  # the steady state
                errors.append(math.log(scale_filter.estimate) - log_truth)
                claimed.append(scale_filter.relative_sigma)

    rms = math.sqrt(np.mean(np.square(errors)))
    assert 0.85 < rms / np.mean(claimed) < 1.15
    assert np.mean(claimed) == pytest.approx(math.sqrt(sigma * drift), rel=0.15)
    assert max(np.abs(errors)) < 5.0 * rms  # no window far behind the walk


def test_a_wrong_start_is_abandoned_when_the_windows_keep_disagreeing():
    """Sure but wrong first windows (a depth sensor miscalibrated at start): every later window disagrees on the same
    side, beyond the clip, so after PERSISTENCE of them the filter restarts from those."""
    rng = np.random.default_rng(4)
    scale_filter = MetricScaleFilter()
    for _ in range(3):
        scale_filter.update(1.05 * math.exp(rng.normal() * 0.002), 0.005)
    estimates = []
    for _ in range(PERSISTENCE + 5):
        assert scale_filter.update(math.exp(rng.normal() * 0.002), 0.005).accepted
        estimates.append(scale_filter.estimate)

    assert all(estimate > 1.03 for estimate in estimates[: PERSISTENCE - 1])  # clipped: a bounded pull each
    assert all(estimate == pytest.approx(1.0, abs=0.005) for estimate in estimates[PERSISTENCE - 1 :])


@pytest.mark.parametrize("first", [1.25, 0.8])
def test_a_first_reading_beyond_the_gate_is_abandoned_when_the_windows_agree_on_another_scale(first):
    """One first reading 25 % off (min_observations 1): every sound window after it fell beyond the gate and was
    rejected, so the world stayed 25 % off for good, though the docs promised a restart. PERSISTENCE windows in a
    row beyond the gate on one side that agree with each other restart the estimate from them."""
    rng = np.random.default_rng(5)
    scale_filter = MetricScaleFilter()
    scale_filter.update(first, 0.005)
    verdicts = [scale_filter.update(math.exp(rng.normal() * 0.003), 0.005) for _ in range(PERSISTENCE + 5)]

    assert [v.kind for v in verdicts[: PERSISTENCE - 1]] == ["outlier"] * (PERSISTENCE - 1)
    assert all(v.accepted for v in verdicts[PERSISTENCE - 1 :])
    assert scale_filter.estimate == pytest.approx(1.0, abs=0.005)


def test_an_estimate_many_windows_support_is_not_overturned_by_four_that_agree():
    """Four windows in a row 30 % off that agree (a second of wheel slip; with stride 1 they share most frames)
    restarted an estimate 1000 windows supported. A restart needs the run to weigh more than the estimate."""
    rng = np.random.default_rng(7)
    scale_filter = MetricScaleFilter()
    for _ in range(1000):
        scale_filter.update(math.exp(rng.normal() * 0.005), 0.005)
    before = scale_filter.estimate
    for ratio in (1.30, 1.28, 1.33, 1.31, 1.30):
        assert scale_filter.update(ratio, 0.005).kind == "outlier"
    assert scale_filter.estimate == before


def test_an_established_estimate_follows_a_jump_that_lasts_and_a_wrong_restart_is_undone():
    """After the first review's fix, a restart could not be undone and a lasting jump (a segment re-anchored on a
    guessed depth) was never followed: 1952 and 1111 sound windows rejected. MAX_PERSISTENCE agreeing windows beyond
    the gate now restart any estimate, and a restarted one rests on the run it restarted from."""
    scale_filter = MetricScaleFilter()
    for _ in range(100):
        scale_filter.update(1.0, 0.005)
    verdicts = [scale_filter.update(1.15, 0.005).kind for _ in range(MAX_PERSISTENCE)]
    assert verdicts == ["outlier"] * (MAX_PERSISTENCE - 1) + ["accepted"]
    assert scale_filter.estimate == pytest.approx(1.15)

    # Glass early on: 2 windows of 8 frames at stride 1 (1 + 1/2 independent windows), then 12 windows that see it
    # (1.5 independent windows) outweigh them; the sound windows after them outweigh those in turn.
    glass = MetricScaleFilter()
    for share in (1.0, 0.5):
        glass.update(1.0, 0.005, new_share=share)
    verdicts = [glass.update(1.2, 0.005, new_share=0.125).kind for _ in range(13)]
    assert verdicts == ["outlier"] * 12 + ["accepted"]  # 13 x 1/8 > 1.5
    assert glass.estimate == pytest.approx(1.2)
    verdicts = [glass.update(1.0, 0.005, new_share=0.125).kind for _ in range(14)]
    assert verdicts == ["outlier"] * 13 + ["accepted"]  # 14 x 1/8 > 13 x 1/8, the run the glass restarted from
    assert glass.estimate == pytest.approx(1.0)


def test_two_sources_in_blocks_of_four_beyond_the_gate_do_not_flip_the_estimate():
    """Blocks of four windows from two sources 30 % apart: after one restart the estimate was young for good, and
    each block flipped it."""
    scale_filter = MetricScaleFilter()
    for _ in range(200):
        scale_filter.update(1.0, 0.005)
    for _ in range(MAX_PERSISTENCE):
        scale_filter.update(1.3, 0.005)  # a lasting jump: followed
    assert scale_filter.estimate == pytest.approx(1.3)
    estimates = []
    for _ in range(10):
        for ratio in (1.0, 1.3):
            for _ in range(PERSISTENCE):
                scale_filter.update(ratio, 0.005)
                estimates.append(scale_filter.estimate)
    assert estimates == pytest.approx([1.3] * len(estimates))


def test_windows_beyond_the_gate_overturn_the_estimate_once_they_outweigh_it_in_independent_windows():
    """Windows that share frames share their errors: each weighs the share of its frames that are new. Three bad
    frame sets at start-up at a window of 4 sliding by 1 made 4 windows (1 + 1/2 + 1/3 + 1/4 independent ones) that
    counted as 4 and stood for 32 sound windows; they are overturned by the 9 sound windows that outweigh them. A
    wheel slip of 4 windows at the default window of 8 (half an independent window) overturns no estimate of 4
    windows or more; counting only the estimate's support in independent windows, it flipped one of 18 windows."""
    bad_start = MetricScaleFilter()
    for share in (1.0, 1 / 2, 1 / 3, 1 / 4):
        bad_start.update(1.25, 0.005, new_share=share)
    verdicts = [bad_start.update(1.0, 0.005, new_share=0.25).kind for _ in range(9)]
    assert verdicts == ["outlier"] * 8 + ["accepted"]  # 9 x 1/4 = 2.25 > 2.08
    assert bad_start.estimate == pytest.approx(1.0)

    for windows in (4, 18):
        sound = MetricScaleFilter()
        for k in range(windows):
            sound.update(1.0, 0.005, new_share=1 / min(k + 1, 8))
        slip = [sound.update(1.3, 0.005, new_share=1 / 8).kind for _ in range(4)]
        assert slip == ["outlier"] * 4 and sound.estimate == pytest.approx(1.0)


def test_a_restarted_estimate_rests_on_the_independent_windows_of_its_run():
    """A restart from four windows sharing frames (1/4 new each) leaves an estimate resting on one independent window:
    five windows that agree on the old scale (1.25 independent windows) restart it again."""
    scale_filter = MetricScaleFilter()
    for _ in range(100):
        scale_filter.update(1.0, 0.005)
    scale_filter.reopen()
    for _ in range(PERSISTENCE):
        scale_filter.update(1.2, 0.005, new_share=0.25)
    assert scale_filter.estimate == pytest.approx(1.2)
    verdicts = [scale_filter.update(1.0, 0.005, new_share=0.25).kind for _ in range(5)]
    assert verdicts == ["outlier"] * 4 + ["accepted"]
    assert scale_filter.estimate == pytest.approx(1.0)


@pytest.mark.parametrize("share", [-0.1, 1.5, math.nan])
def test_a_new_share_outside_zero_to_one_is_refused(share):
    with pytest.raises(ValueError, match="new_share"):
        MetricScaleFilter().update(1.0, 0.005, new_share=share)


def test_a_reopened_estimate_is_restarted_by_four_windows_that_agree():
    scale_filter = MetricScaleFilter()
    for _ in range(100):
        scale_filter.update(1.0, 0.005)
    scale_filter.reopen()  # the world re-anchored a segment on a guessed depth
    assert [scale_filter.update(1.2, 0.005).kind for _ in range(PERSISTENCE)][-1] == "accepted"
    assert scale_filter.estimate == pytest.approx(1.2)


def test_wild_windows_that_do_not_agree_never_restart_the_estimate():
    """Windows beyond the gate that scatter among themselves (a broken sensor) are no scale to restart from."""
    rng = np.random.default_rng(6)
    scale_filter = MetricScaleFilter()
    for _ in range(10):
        scale_filter.update(math.exp(rng.normal() * 0.003), 0.005)
    before = scale_filter.estimate
    for ratio in (1.3, 1.6, 1.2, 1.9, 1.35, 1.7, 1.25, 2.0):
        assert scale_filter.update(ratio, 0.005).kind == "outlier"
    assert scale_filter.estimate == before


def test_the_start_is_the_median_of_min_observations_and_an_even_count_takes_the_midpoint():
    scale_filter = MetricScaleFilter(ScaleFilterConfig(min_observations=2))
    scale_filter.update(1.0, 0.01)
    scale_filter.update(1.05, 0.01)
    assert scale_filter.estimate == pytest.approx(math.sqrt(1.05))  # the midpoint in log


@pytest.mark.parametrize(
    "ratio, sigma", [(math.nan, 0.01), (0.0, 0.01), (-1.0, 0.01), (math.inf, 0.01), (1.0, -0.1), (1.0, math.nan)]
)
def test_invalid_observations_are_rejected_and_change_nothing(ratio, sigma):
    scale_filter = MetricScaleFilter()
    scale_filter.update(1.2, 0.01)

    verdict = scale_filter.update(ratio, sigma)

    assert not verdict.accepted and verdict.kind == "invalid"
    assert scale_filter.estimate == pytest.approx(1.2) and len(scale_filter) == 1


@pytest.mark.parametrize(
    "settings",
    [
        dict(drift=-0.001),
        dict(drift=math.inf),
        dict(min_sigma=0.0),
        dict(min_observations=0),
        dict(min_observations=2.0),
        dict(gate=0.0),
        dict(gate_sigmas=-1.0),
        dict(max_step=math.inf),
        dict(max_step=math.nan),
    ],
)
def test_config_rejects_bad_settings(settings):
    with pytest.raises(ValueError):
        ScaleFilterConfig(**settings)
