# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""MetricScaleFilter on simulated observation streams whose truth is known: noise and outliers, a single wild
window, an ultra-confident window, a slow drift, and the caller's loop of correction and rebase."""

import math

import numpy as np
import pytest

from vggt_ros.metric.scale_filter import MetricScaleFilter, ScaleFilterConfig


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


def test_an_ultra_confident_window_does_not_outvote_the_others():
    scale_filter = MetricScaleFilter()
    for ratio in np.linspace(0.99, 1.01, 14):
        scale_filter.update(ratio, 0.03)

    scale_filter.update(1.06, 1e-7)  # inside the gate, and claims to be a million times surer

    assert scale_filter.estimate == pytest.approx(1.0, abs=0.003)


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

    # A median of the last 15 windows lags about 7 windows of drift (7 x 0.074 % = 0.5 %) behind, plus its noise;
    # over 200 seeds the worst was 1.2 %.
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

    assert scale_filter.estimate == pytest.approx(1.0)
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


def test_history_is_bounded_and_the_estimate_forgets_old_windows():
    scale_filter = MetricScaleFilter(ScaleFilterConfig(history=5))
    ratios = np.exp(np.linspace(0.0, 0.5, 40))  # each within the gate of the last
    for ratio in ratios:
        assert scale_filter.update(ratio, 0.01).accepted
        assert len(scale_filter) <= 5

    assert len(scale_filter) == 5
    assert scale_filter.estimate == pytest.approx(float(np.median(ratios[-5:])))


def test_an_even_count_of_equal_weights_takes_the_midpoint():
    scale_filter = MetricScaleFilter()
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
        dict(history=0),
        dict(history=2.0),
        dict(min_observations=0),
        dict(history=3, min_observations=4),
        dict(gate=0.0),
        dict(gate_sigmas=-1.0),
        dict(max_step=math.inf),
        dict(max_step=math.nan),
    ],
)
def test_config_rejects_bad_settings(settings):
    with pytest.raises(ValueError):
        ScaleFilterConfig(**settings)
