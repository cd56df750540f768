# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Holding the world's scale in metres: a robust Kalman filter over per-window scale observations.

Two measurements of the same quantity with opposite faults meet here. The world's chaining of windows
(`vggt_ros.world`) carries the scale from window to window smoothly, but each link adds a little noise, so the
scale random-walks (drifts) slowly over a long run. A metric source (`vggt_ros.metric.sources`: depth sensor,
camera rig, odometry) measures each window's scale without memory, so it cannot drift, but any one window can be
noisy or plainly wrong (a wrong depth prediction, a wheel slip). Each window the caller feeds the observed metres
per world unit ``r`` (~1 once the world is metric) to `MetricScaleFilter.update`, and rescales the world by the
small, bounded `correction` towards the filter's estimate.

The state is the log of metres per world unit and its variance. What it tracks changes only by the chaining's
drift (a rigid rig's baseline, the wheels' metre and the depth sensor's metre are constants), so every
observation ever accepted counts, each weighted by its noise, and only the drift makes old ones count less: a
1-D Kalman filter whose process noise is ``drift`` per window. Against a constant truth it is the
inverse-variance weighted mean of all observations, whose error shrinks as 1 / sqrt(windows); a window median of
the last 15 windows (this filter's first design) stayed at the error of a 15-window median and lagged its
corrections. With ``drift`` small against a source's noise the estimate's memory is long (about
sigma / drift windows) and its steady error about sqrt(sigma x drift).

Decisions, each with its reason:
- Log ratios: a scale is a ratio, and log makes 10 % too large and 10 % too small equally far from the truth.
- Each window counts with its relative sigma, at least ``min_sigma``. A source's sigma measures the scatter
  inside one window (thousands of depth pixels give a tiny one) but not the error the whole window shares (a
  depth prediction off by 0.3 % everywhere, the window's own alignment to the world), so without a floor one such
  window would outvote all others.
- Robust update: the innovation (observation - estimate) is clipped to `HUBER_SIGMAS` standard deviations of
  its expected spread (estimate and observation variance together) before it moves the estimate (a Huber
  M-estimate): a wrong window that passed the gate moves the estimate by a bounded amount, sound windows (almost
  all inside the clip) are combined as by the plain filter. But when `PERSISTENCE` windows in a row are clipped
  on the same side, the estimate is what is wrong (a wrong start, a miscalibrated first reading): it restarts from
  those windows' weighted mean. The same holds for windows in a row beyond the gate on the same side that agree
  with each other (within ``gate`` of their mean), once at least `PERSISTENCE` of them outweigh the estimate, or
  `MAX_PERSISTENCE` of them overturn it whatever it rests on. Weight is counted in independent windows: each window
  adds the share of its frames no earlier window held (``new_share``), since windows that share frames share their
  errors too. So a first reading 25 % off, which used to gate out every sound window after it (the world stayed
  25 % off for good), is dropped as soon as the sound windows outweigh it; three bad frame sets at start-up at a
  window of 4 (four windows, but 2.1 independent ones) are dropped after 9 sound windows (counted in windows they
  stood for 32); and a wheel slip of 4 windows at stride 1 (half an independent window at the default window of
  8) never overturns an estimate of a dozen windows (counting both in windows, a bad start stuck, or, counting
  only the estimate's support in independent windows, a 4-window glitch flipped an estimate 18 windows supported).
  A restarted estimate rests on the run it restarted from; where the world's unit may have jumped (`reopen`: a
  segment re-anchored on a guessed depth), on no window. (The clipped run stays at `PERSISTENCE` windows: it is
  what follows the chained world's drift within the gate; at 32, the late-metric scene of bench/loop_closure.py
  ended 1.94 % off in metres per unit instead of 1.44 %.)
- The gate: an observation whose log ratio is more than max(``gate``, ``gate_sigmas`` x the innovation's standard
  deviation) from the estimate is rejected and changes nothing but the drift allowance. ``gate`` is the largest
  believable disagreement between the chaining and a sound observation; noisier observations, and an estimate
  still uncertain, widen it.
- The start: the first ``min_observations`` observations are taken on trust and their weighted median starts the
  estimate (variance: that of their weighted mean). With 1, the first window decides; where the first windows may
  be wild, raise it so the median of several decides.
- The correction is the estimate clamped to exp(+-``max_step``): the published scale never jumps by more than
  ``max_step`` (relative) per window, so trajectories and maps stay smooth while the world converges.
- `rebase`: after the caller rescales the world by a factor, the estimate (metres per world unit) is divided by
  it, since future observations of the same scene will be; its variance is unchanged (the factor is known).
- The drift is added once per window offered: windows without an observation (a still robot) add none, which
  understates the drift over long gaps by the chaining's slow random walk only.
- State: the estimate, its variance, the count, the support, at most ``min_observations`` starting observations
  and at most `PERSISTENCE` clipped and `MAX_PERSISTENCE` rejected ones.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Optional

import numpy as np

# The innovation is clipped at this many of its standard deviations: a normal innovation exceeds it in 5 % of
# windows, where clipping costs little; a wrong window that passed the gate moves the estimate at most this much
# (times the gain).
HUBER_SIGMAS = 2.0
# This many consecutive innovations clipped on the same side mean the estimate, not the windows, is wrong: with
# normal errors it happens once in 2 million windows.
PERSISTENCE = 4
# Windows in a row beyond the gate that overturn any estimate, whatever it rests on: four runs of windows that share
# no frames, at the node's default window of 8 keyframes and stride 1 (a lasting jump of the world's unit is
# followed, and two sources do not flip the estimate back and forth).
MAX_PERSISTENCE = 32


@dataclass(frozen=True)
class ScaleFilterConfig:
    """How `MetricScaleFilter` weighs, gates and applies scale observations.

    Attributes:
        drift: standard deviation of the chained world's scale random walk per window, in log (0.001 is about
            0.1 %; `bench/world_chaining.py` measures 0.05 % or less): how soon old observations stop counting.
        min_sigma: smallest relative sigma a window counts with (the error a whole window shares, which its own
            scatter does not show).
        gate: smallest rejection distance, in log ratio (0.1 is about 10 %).
        gate_sigmas: an observation is also kept within this many standard deviations of its innovation (its own
            sigma and the estimate's together).
        max_step: largest correction per window, in log (0.01 is about 1 %).
        min_observations: observations accepted without gating, whose weighted median starts the estimate.
    """

    drift: float = 0.001
    min_sigma: float = 0.005
    gate: float = 0.1
    gate_sigmas: float = 4.0
    max_step: float = 0.01
    min_observations: int = 1

    def __post_init__(self) -> None:
        value = self.min_observations
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"min_observations must be an int >= 1, got {value!r}")
        if isinstance(self.drift, bool) or not (
            isinstance(self.drift, (int, float)) and math.isfinite(self.drift) and self.drift >= 0
        ):
            raise ValueError(f"drift must be a number >= 0 (log scale per window), got {self.drift!r}")
        for name in ("min_sigma", "gate", "gate_sigmas", "max_step"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class ScaleVerdict:
    """What `MetricScaleFilter.update` did with an observation: ``kind`` "accepted", "outlier" or "invalid"."""

    accepted: bool
    kind: str
    reason: str


class MetricScaleFilter:
    """Robust estimate of the observed metres per world unit over all windows (see the module docstring)."""

    def __init__(self, config: ScaleFilterConfig = ScaleFilterConfig()) -> None:
        self.config = config
        self._starting: list[tuple[float, float]] = []  # (log ratio, variance) until min_observations
        self._log_estimate: Optional[float] = None
        self._variance = math.inf
        self._accepted = 0
        self._support = 0.0  # independent windows accepted since the estimate (re)started or was reopened
        self._clipped = _SameSideRun(PERSISTENCE)  # observations clipped in a row on one side
        self._rejected = _SameSideRun(MAX_PERSISTENCE)  # observations beyond the gate in a row on one side

    @property
    def estimate(self) -> Optional[float]:
        """Metres per world unit the accepted observations agree on; None before any was accepted."""
        return None if self._log_estimate is None else math.exp(self._log_estimate)

    @property
    def relative_sigma(self) -> float:
        """The estimate's relative standard error (inf before any observation was accepted)."""
        return math.sqrt(self._variance)

    def __len__(self) -> int:
        """Observations accepted so far."""
        return self._accepted

    def update(self, ratio: float, relative_sigma: float, new_share: float = 1.0) -> ScaleVerdict:
        """Offer one window's observation.

        Args:
            ratio: observed metres per world unit for the window (> 0).
            relative_sigma: its relative standard error (>= 0).
            new_share: the share of the window's frames no earlier window held, 0..1: what it adds to the support
                in independent windows (1 for windows that share no frames).
        Returns:
            The verdict; only an accepted observation changes the estimate.
        """
        ratio, relative_sigma, new_share = float(ratio), float(relative_sigma), float(new_share)
        if not (math.isfinite(ratio) and ratio > 0.0 and math.isfinite(relative_sigma) and relative_sigma >= 0.0):
            return ScaleVerdict(
                False,
                "invalid",
                f"scale observation {ratio!r} metres per world unit with relative sigma {relative_sigma!r} is not "
                "usable: the ratio must be a positive number and the sigma a number >= 0",
            )
        if not 0.0 <= new_share <= 1.0:
            raise ValueError(f"new_share must be a share of the window's frames in 0..1, got {new_share!r}")
        log_ratio = math.log(ratio)
        config = self.config
        variance = max(relative_sigma, config.min_sigma) ** 2
        self._variance += config.drift**2  # one window of the chaining's drift
        if self._accepted < config.min_observations:
            self._start(log_ratio, variance)
        else:
            innovation = log_ratio - self._log_estimate
            spread = math.sqrt(self._variance + variance)
            allowed = max(config.gate, config.gate_sigmas * spread)
            if abs(innovation) > allowed:
                run = self._rejected
                run.add(log_ratio, variance, new_share, innovation > 0)
                outweighs = len(run) >= PERSISTENCE and run.support() > self._support
                if not ((outweighs or len(run) >= MAX_PERSISTENCE) and run.agree(config.gate)):
                    return ScaleVerdict(
                        False,
                        "outlier",
                        f"scale observation {ratio:.5g} metres per world unit is {abs(innovation):.3f} in log from "
                        f"the estimate {math.exp(self._log_estimate):.5g}, beyond the gate {allowed:.3f} (max of "
                        f"{config.gate} and {config.gate_sigmas} x {spread:.3g}, the relative sigma of the "
                        "observation and the estimate together)",
                    )
                # Windows that agree with each other, not with the estimate: the estimate is wrong (a wrong start).
                self._restart(self._rejected)
            else:
                self._rejected.clear()
                if abs(innovation) > HUBER_SIGMAS * spread:
                    self._clipped.add(log_ratio, variance, new_share, innovation > 0)
                else:
                    self._clipped.clear()
                if len(self._clipped) >= PERSISTENCE:
                    # Not wrong windows but a wrong estimate (a wrong start): restart from the windows that disagree.
                    self._restart(self._clipped)
                else:
                    gain = self._variance / (self._variance + variance)
                    clip = HUBER_SIGMAS * spread
                    self._log_estimate += gain * min(max(innovation, -clip), clip)
                    self._variance *= 1.0 - gain
        self._accepted += 1
        self._support += new_share
        return ScaleVerdict(
            True,
            "accepted",
            f"scale observation {ratio:.5g} metres per world unit accepted; estimate {self.estimate:.5g} "
            f"(+-{100 * self.relative_sigma:.2g} %) from {self._accepted} observations",
        )

    def correction(self) -> float:
        """The factor to rescale the world by for this window: the estimate, clamped to exp(+-max_step); 1.0 while
        there is no estimate."""
        if self._log_estimate is None:
            return 1.0
        step = self.config.max_step
        return math.exp(min(max(self._log_estimate, -step), step))

    def rebase(self, factor: float) -> None:
        """The caller rescaled the world by ``factor`` (world coordinates multiplied by it): the estimate, in
        metres per world unit, is divided by it.

        Raises:
            ValueError: ``factor`` is not a positive number.
        """
        factor = float(factor)
        if not (math.isfinite(factor) and factor > 0.0):
            raise ValueError(f"rebase factor must be a positive number (the world's rescale factor), got {factor!r}")
        shift = math.log(factor)
        self._starting = [(log_ratio - shift, variance) for log_ratio, variance in self._starting]
        self._clipped.rebase(shift)
        self._rejected.rebase(shift)
        if self._log_estimate is not None:
            self._log_estimate -= shift

    def reopen(self) -> None:
        """The world's unit may have jumped (a segment re-anchored on a guessed depth): the estimate rests on no
        window, and `PERSISTENCE` windows in a row that agree restart it; those before the jump count for nothing."""
        self._support = 0.0
        self._clipped.clear()
        self._rejected.clear()

    def _restart(self, run: "_SameSideRun") -> None:
        """Start the estimate afresh from ``run``'s observations (their weighted mean), which support it; forget
        both runs."""
        self._log_estimate, self._variance = run.weighted_mean()
        self._support = run.support() - run.newest_share()  # the window that restarts it is counted as accepted
        self._clipped.clear()
        self._rejected.clear()

    def _start(self, log_ratio: float, variance: float) -> None:
        """Take a starting observation on trust: the estimate is the weighted median of those held, its variance
        that of their weighted mean; the held ones are dropped once ``min_observations`` were taken."""
        self._starting.append((log_ratio, variance))
        values, weights = (np.array(column) for column in zip(*self._starting))
        weights = 1.0 / weights
        self._log_estimate = _weighted_median(values, weights)
        self._variance = 1.0 / float(weights.sum())
        if len(self._starting) >= self.config.min_observations:
            self._starting = []


class _SameSideRun:
    """Observations ``(log ratio, variance, new share)`` in a row on one side of the estimate, the newest
    ``capacity``."""

    def __init__(self, capacity: int) -> None:
        self._items: deque[tuple[float, float, float]] = deque(maxlen=capacity)
        self._above = False

    def __len__(self) -> int:
        return len(self._items)

    def add(self, log_ratio: float, variance: float, new_share: float, above: bool) -> None:
        """One more observation, ``above`` the estimate or below it; one on the other side starts the run anew."""
        if above != self._above:
            self._items.clear()
        self._above = above
        self._items.append((log_ratio, variance, new_share))

    def clear(self) -> None:
        self._items.clear()

    def weighted_mean(self) -> tuple[float, float]:
        """The observations' inverse-variance weighted mean and its variance."""
        values, variances, _ = (np.array(column) for column in zip(*self._items))
        weights = 1.0 / variances
        return float(np.average(values, weights=weights)), 1.0 / float(weights.sum())

    def support(self) -> float:
        """The independent windows the observations amount to (the sum of their new shares)."""
        return float(sum(new_share for _, _, new_share in self._items))

    def newest_share(self) -> float:
        return self._items[-1][2]

    def agree(self, tolerance: float) -> bool:
        """Whether every observation lies within ``tolerance`` (log) of their weighted mean."""
        mean = self.weighted_mean()[0]
        return all(abs(log_ratio - mean) <= tolerance for log_ratio, _, _ in self._items)

    def rebase(self, shift: float) -> None:
        """The world was rescaled: the observations, in metres per world unit, shift by ``-shift`` in log."""
        self._items = deque(
            ((log_ratio - shift, variance, new_share) for log_ratio, variance, new_share in self._items),
            self._items.maxlen,
        )


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """Weighted median of ``(n,)`` values; where the cumulative weight reaches exactly half (equal weights, even
    count) the midpoint of the two middle values, so equal weights give no downward bias."""
    order = np.argsort(values)
    values, cumulative = values[order], np.cumsum(weights[order])
    half, tolerance = 0.5 * cumulative[-1], 1e-12 * cumulative[-1]  # the tolerance absorbs summation rounding
    middle = int(np.searchsorted(cumulative, half - tolerance))
    if middle + 1 < values.size and abs(cumulative[middle] - half) <= tolerance:
        return float(0.5 * (values[middle] + values[middle + 1]))
    return float(values[middle])
