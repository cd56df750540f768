# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Holding the world's scale in metres: a robust filter over per-window scale observations.

Two measurements of the same quantity with opposite faults meet here. The world's chaining of windows
(`vggt_ros.world`) carries the scale from window to window smoothly, but each link adds a little noise, so the
scale random-walks (drifts) over a long run. A metric source (`vggt_ros.metric.sources`: depth sensor, camera
rig, odometry) measures each window's scale without memory, so it cannot drift, but any one window can be noisy
or plainly wrong (a wrong depth prediction, a wheel slip). Like a complementary filter, the world follows the
chaining at short range and the source at long range: each window the caller feeds the observed metres per world
unit ``r`` (~1 once the world is metric) to `MetricScaleFilter.update`, and rescales the world by the small,
bounded `correction` towards the filter's estimate.

Decisions, each with its reason:
- Log ratios: a scale is a ratio, and log makes 10 % too large and 10 % too small equally far from the truth.
- The estimate is the weighted median of the last ``history`` accepted log ratios, weights 1 / sigma^2. A median
  ignores a minority of wrong windows that passed the gate, and a bounded history forgets old windows, so a
  slowly drifting ratio is followed with a lag of about half the history.
- Weights are capped: a window's sigma counts as at least ``gate / gate_sigmas``. A source's sigma measures the
  scatter inside one window (thousands of depth pixels give a tiny one) but not the error the whole window shares
  (a depth prediction off by 2 % everywhere), so without a cap one such window would outvote all others. Below
  that floor a smaller sigma changes neither the gate nor the weight, so the cap adds no setting of its own.
- The gate: once ``min_observations`` observations are held, one whose log ratio is more than
  max(``gate``, ``gate_sigmas`` x its sigma) from the estimate is rejected and not stored. ``gate`` is the
  largest believable disagreement between the chaining and a sound observation; a noisier source widens it.
  The first ``min_observations`` observations are taken on trust, so a wild first window would lock the filter
  out of the truth: where the first windows may be wild, raise ``min_observations`` so the median of several
  decides.
- The correction is the estimate clamped to exp(+-``max_step``): the published scale never jumps by more than
  ``max_step`` (relative) per window, so trajectories and maps stay smooth while the world converges.
- `rebase`: after the caller rescales the world by a factor, the stored ratios (metres per world unit) are divided
  by it, since future observations of the same scene will be; the filter state stays in the world's current unit.
- State: at most ``history`` (log ratio, weight) pairs.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class ScaleFilterConfig:
    """How `MetricScaleFilter` weighs, gates and applies scale observations.

    Attributes:
        history: accepted observations kept (the estimate's memory, in windows).
        gate: smallest rejection distance, in log ratio (0.1 is about 10 %).
        gate_sigmas: an observation is also kept within this many of its own relative sigmas.
        max_step: largest correction per window, in log (0.01 is about 1 %).
        min_observations: observations accepted without gating before the gate applies (at most ``history``).
    """

    history: int = 15
    gate: float = 0.1
    gate_sigmas: float = 4.0
    max_step: float = 0.01
    min_observations: int = 1

    def __post_init__(self) -> None:
        for name in ("history", "min_observations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.min_observations > self.history:
            raise ValueError(
                f"min_observations ({self.min_observations}) must not exceed history ({self.history}): the filter "
                "never holds more than history observations, so the gate would never apply"
            )
        for name in ("gate", "gate_sigmas", "max_step"):
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
    """Robust estimate of the observed metres per world unit over the last windows (see the module docstring)."""

    def __init__(self, config: ScaleFilterConfig = ScaleFilterConfig()) -> None:
        self.config = config
        self._observations: deque[tuple[float, float]] = deque(maxlen=config.history)  # (log ratio, weight)
        self._log_estimate: Optional[float] = None

    @property
    def estimate(self) -> Optional[float]:
        """Metres per world unit the held observations agree on; None before any was accepted."""
        return None if self._log_estimate is None else math.exp(self._log_estimate)

    def __len__(self) -> int:
        """Observations held (at most ``config.history``)."""
        return len(self._observations)

    def update(self, ratio: float, relative_sigma: float) -> ScaleVerdict:
        """Offer one window's observation.

        Args:
            ratio: observed metres per world unit for the window (> 0).
            relative_sigma: its relative standard error (>= 0).
        Returns:
            The verdict; only an accepted observation changes the estimate.
        """
        ratio, relative_sigma = float(ratio), float(relative_sigma)
        if not (math.isfinite(ratio) and ratio > 0.0 and math.isfinite(relative_sigma) and relative_sigma >= 0.0):
            return ScaleVerdict(
                False,
                "invalid",
                f"scale observation {ratio!r} metres per world unit with relative sigma {relative_sigma!r} is not "
                "usable: the ratio must be a positive number and the sigma a number >= 0",
            )
        log_ratio = math.log(ratio)
        config = self.config
        if len(self._observations) >= config.min_observations:
            distance = abs(log_ratio - self._log_estimate)
            allowed = max(config.gate, config.gate_sigmas * relative_sigma)
            if distance > allowed:
                return ScaleVerdict(
                    False,
                    "outlier",
                    f"scale observation {ratio:.5g} metres per world unit is {distance:.3f} in log from the "
                    f"estimate {math.exp(self._log_estimate):.5g}, beyond the gate {allowed:.3f} "
                    f"(max of {config.gate} and {config.gate_sigmas} x relative sigma {relative_sigma:.3g})",
                )
        sigma = max(relative_sigma, config.gate / config.gate_sigmas)
        self._observations.append((log_ratio, 1.0 / sigma**2))
        self._log_estimate = self._weighted_median()
        return ScaleVerdict(
            True,
            "accepted",
            f"scale observation {ratio:.5g} metres per world unit accepted; estimate {self.estimate:.5g} from "
            f"{len(self._observations)} observations",
        )

    def correction(self) -> float:
        """The factor to rescale the world by for this window: the estimate, clamped to exp(+-max_step); 1.0 while
        there is no estimate."""
        if self._log_estimate is None:
            return 1.0
        step = self.config.max_step
        return math.exp(min(max(self._log_estimate, -step), step))

    def rebase(self, factor: float) -> None:
        """The caller rescaled the world by ``factor`` (world coordinates multiplied by it): the held ratios, in
        metres per world unit, are divided by it.

        Raises:
            ValueError: ``factor`` is not a positive number.
        """
        factor = float(factor)
        if not (math.isfinite(factor) and factor > 0.0):
            raise ValueError(f"rebase factor must be a positive number (the world's rescale factor), got {factor!r}")
        shift = math.log(factor)
        self._observations = deque(
            ((log_ratio - shift, weight) for log_ratio, weight in self._observations), maxlen=self.config.history
        )
        if self._log_estimate is not None:
            self._log_estimate -= shift

    def _weighted_median(self) -> float:
        """Weighted median of the held log ratios; where the cumulative weight reaches exactly half (equal
        weights, even count) the midpoint of the two middle values, so equal weights give no downward bias."""
        values, weights = (np.array(column) for column in zip(*self._observations))
        order = np.argsort(values)
        values, cumulative = values[order], np.cumsum(weights[order])
        half, tolerance = 0.5 * cumulative[-1], 1e-12 * cumulative[-1]  # the tolerance absorbs summation rounding
        middle = int(np.searchsorted(cumulative, half - tolerance))
        if middle + 1 < values.size and abs(cumulative[middle] - half) <= tolerance:
            return float(0.5 * (values[middle] + values[middle + 1]))
        return float(values[middle])
