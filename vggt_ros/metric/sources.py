# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Per-window metric scale observations: how many metres one window unit is, from three independent sources.

VGGT normalises every window's scene, so its depths and camera translations are in an arbitrary window unit.
Each function here measures that unit in metres from one source and answers a `ScaleObservation` (the factor,
its relative standard error and how many measurements it rests on) or a `ScaleUnavailable` (a kind and a
reason a person can act on). Bad values (holes, NaN poses, a robot standing still) are answers, never
exceptions; only arguments of the wrong structure (shapes that disagree, unknown cameras, invalid settings)
raise ValueError, since those are the caller's bugs, not the scene's.

All three work in log space: a scale is a ratio, and log makes "twice" and "half" equally far from the truth,
so medians and spreads are symmetric. relative_sigma is the standard error of the log estimate, which is the
relative standard error of the factor.

* `depth_scale` (a depth camera registered to the colour image): the median over pixels of
  log(sensor depth / predicted depth). The median ignores holes that slipped through, flying pixels on
  object edges and any minority of wrong predictions, and does not let the far pixels, whose sensor noise
  grows with the square of the distance, pull harder than near ones. Only confident predictions
  (`DepthScaleConfig.confidence_percentile` of the window) and sensor depths inside the sensor's working
  range count. It runs in torch on the prediction's device and moves only scalars to the host.
* `rig_scale` (several cameras with a calibrated transform): the known baseline in metres over the offset the
  window predicts between the two camera centres along it, for every frame set and known pair. It is the first
  estimate: `vggt_ros.metric.stereo` refines it from the images where the window has them, about twenty times
  more precisely per frame set on the synthetic rig, and it stands where they have no texture. The pose noise
  enters each predicted offset additively, so the window's estimate is the mean of the offsets (in window units
  per metre of baseline) over the pairs that are not outliers (within 5 robust standard deviations of their
  median): the mean is unbiased and uses every pair fully, where a median of n normal errors scatters as a mean
  of 2n / pi, and a 12 cm rig window has only a handful of pairs, each ~7 - 10 % noisy.
* `odometry_scale` (TF odometry of the camera frames): distances travelled. The odometry frame and the window
  frame are not aligned (nor is either gravity-aligned for VGGT), so only displacement lengths are compared,
  each frame against the window's first frame with odometry. The estimate is sum |d_odom| / sum |d_window|
  over the pairs that moved at least ``min_translation_m``: both odometry drift and the predicted poses'
  errors are roughly absolute (metres, units), so a long displacement measures the ratio better than a short
  one, and the ratio of sums weights each pair by its length where a median of per-pair ratios would weight the
  noisiest short pairs equally. The sum is not robust to a jump in the odometry (a relocalisation, a wheel
  slip), so every pair's own ratio is checked against it and the window is refused as "inconsistent" when one
  disagrees by more than ``max_ratio_spread``; a jump shifts all later positions by the same vector, which
  changes the ratio of short and long displacements differently and is caught.

relative_sigma is the standard error of a median, sqrt(pi / 2) x 1.4826 x MAD / sqrt(n): 1.4826 x MAD (the median
absolute deviation of the n log ratios) estimates their standard deviation robustly, and a median of n normal
samples scatters sqrt(pi / 2) times more than their mean. (Odometry's ratio of sums uses the same formula on the
deviations from it; the rig's mean that of a mean, 1.4826 x MAD / sqrt(n), relative to the mean.) It measures the
scatter of this window's measurements, not a bias they share (a wrong depth prediction over a whole frame, a
miscalibrated rig): `vggt_ros.metric.scale_filter` therefore gives no window a sigma below its ``min_sigma``. A
handful of measurements do not measure their own scatter (one has none, two of three may coincide), so below eight
the sigma is at least `SINGLE_MEASUREMENT_RELATIVE_SIGMA` / sqrt(n). The rig's sigma is held at that floor for any
number of pairs: a window has only about eight, whose scatter errs by +-40 %, so a window whose pairs agree by
chance would get several times the weight of the others and pull the filter with its own error (on
bench/metric_scale.py, 24 cm rig, the worst error after 10 windows went from 2.04 % to 0.96 % with the floor, and
the RMS over runs from 1.03 % to 0.59 %); with the floor the filter weighs rig windows by their pairs, as their
common pose noise warrants, and a window with more scatter than the floor still counts less.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence, Union

import numpy as np
import torch

from vggt_ros.numeric import MAD_TO_SIGMA, percentile, usable_pixels

# The median of n samples of a normal distribution has a standard error of sqrt(pi / 2) sigma / sqrt(n) (a mean:
# sigma / sqrt(n)); `MAD_TO_SIGMA` turns their median absolute deviation into sigma.
_MEDIAN_STANDARD_ERROR = math.sqrt(math.pi / 2.0)
# The median absolute deviation of fewer measurements is itself too uncertain (of three, two may coincide). In 400
# simulated rig windows (12 cm baseline, 2 mm pose noise) the error exceeded 4 such sigmas in 5 % of windows of 5
# frame sets, and in 2 % of windows of 8 (t-like tails) and none of 30. (Depth and odometry; the rig's sigma is
# floored at any count, see the module docstring.)
_MIN_SCATTER_MEASUREMENTS = 8
# One camera displacement of a few centimetres, predicted by VGGT to about 1 % of a scene a few metres deep, is
# known to roughly 10 %: the relative error assumed for a rig or odometry ratio measured only once.
SINGLE_MEASUREMENT_RELATIVE_SIGMA = 0.1
# A rig pair further than this many robust standard deviations from the window's median is a broken pose, not noise
# (the deviation of a handful of pairs is itself uncertain: in a window of 11, 3.2 occurred).
_OUTLIER_SIGMAS = 5.0
# A camera rig's cameras are centimetres to a metre or two apart: a longer baseline is a transform in other units
# (millimetres give 1000 times the metres, and the images then lock onto that unit as well).
MAX_RIG_BASELINE_M = 10.0
# Longer baselines than this are rare (stereo cameras are 5 - 30 cm wide, a car's rig a metre or so): one passes every
# other check in centimetres (a 6 cm stereo camera given as 6.0 makes every output 100 times too large, and the
# images agree with any baseline's unit), so each window it measures says so (`long_baseline_note`).
SUSPECT_RIG_BASELINE_M = 2.0
# Below this a baseline is too short to measure a scale against the predicted poses' noise (and a zero one is two
# cameras given one pose).
MIN_RIG_BASELINE_M = 0.01
# The rig's cameras measure one scale: their window units per metre further apart than this (ratio - 1) mean their
# transforms do not match the images (given in another camera order, or a wrong baseline). The scatter of one pair
# is about 10 % from the predicted offsets and 1 % from the images, so this is several sigmas of either.
MAX_RIG_DISAGREEMENT = 0.5
# Depth cameras measure one scale: their metres per window unit further apart than this (ratio - 1) mean one of them
# is in another unit or miscalibrated (a window's depth scale errs by well under 1 % per camera).
MAX_DEPTH_DISAGREEMENT = 0.1
# Below this predicted distance (window units, ~1 = the scene's size) two camera centres coincide.
_MIN_PREDICTED_DISTANCE = 1e-9


@dataclass(frozen=True)
class ScaleObservation:
    """One window's metric scale.

    Attributes:
        metres_per_unit: metres per window unit (> 0).
        relative_sigma: relative standard error of ``metres_per_unit`` (= standard error of its log).
        samples: measurements it rests on (pixels, camera pairs, displacements).
        source: "depth", "rig" or "odometry".
        note: why the source measured this window less well than it usually does, for people ("" when it did not):
            a rig whose images did not align, so its scale rests on the predicted camera offsets; a depth camera
            without depth, so the others measured alone.
    """

    metres_per_unit: float
    relative_sigma: float
    samples: int
    source: str
    note: str = ""


@dataclass(frozen=True)
class ScaleUnavailable:
    """Why a window has no metric scale from a source: ``kind`` for code, ``reason`` for people."""

    kind: str
    reason: str


ScaleMeasurement = Union[ScaleObservation, ScaleUnavailable]


@dataclass(frozen=True)
class DepthScaleConfig:
    """Which pixels `depth_scale` compares.

    Attributes:
        min_range_m, max_range_m: the depth sensor's trustworthy range, metres; other sensor depths are ignored.
        confidence_percentile: only predictions at or above this percentile of the window's usable predicted
            confidence count, 0..100 (0 = every usable prediction).
        min_pixels: fewest pixels a window needs to have a scale.
    """

    min_range_m: float = 0.2
    max_range_m: float = 10.0
    confidence_percentile: float = 50.0
    min_pixels: int = 500

    def __post_init__(self) -> None:
        if not (math.isfinite(self.min_range_m) and self.min_range_m > 0.0):
            raise ValueError(
                f"min_range_m must be a positive number of metres (a depth of 0 is no measurement), got "
                f"{self.min_range_m!r}; use the depth sensor's specified minimum range"
            )
        if not (math.isfinite(self.max_range_m) and self.max_range_m > self.min_range_m):
            raise ValueError(
                f"max_range_m must be a finite number of metres above min_range_m ({self.min_range_m}), got "
                f"{self.max_range_m!r}; use the depth sensor's specified maximum range"
            )
        if not 0.0 <= self.confidence_percentile < 100.0:
            raise ValueError(f"confidence_percentile must be in [0, 100), got {self.confidence_percentile!r}")
        if isinstance(self.min_pixels, bool) or not isinstance(self.min_pixels, int) or self.min_pixels < 1:
            raise ValueError(f"min_pixels must be an int >= 1, got {self.min_pixels!r}")


def depth_scale(
    predicted_depth: torch.Tensor,
    confidence: torch.Tensor,
    sensor_depth: Union[torch.Tensor, np.ndarray],
    config: DepthScaleConfig = DepthScaleConfig(),
) -> ScaleMeasurement:
    """Metres per window unit from a depth sensor (see the module docstring).

    Args:
        predicted_depth: ``(D, h, w)`` predicted depth, window units, any device.
        confidence: ``(D, h, w)`` its confidence (VGGT's: > 1, larger is surer).
        sensor_depth: ``(D, h, w)`` metres at the same model pixels (`vggt_ros.metric.sensor_depth.depth_to_model`
            of each frame), NaN where the sensor has none; numpy or torch.
    Returns:
        `ScaleObservation` (source "depth", samples = pixels used) or `ScaleUnavailable` "no_valid_depth" with the
        counts of each test in its reason.
    Raises:
        ValueError: the three arrays differ in shape.

    The cost grows with D h w: 0.3 to 0.6 s for 8 frames of 392 x 518 on a busy 2-core CPU, where everything runs
    element by element; every n-th row and column of all three (views) thins it.
    """
    device = predicted_depth.device
    predicted = predicted_depth.detach().float()
    surety = confidence.detach().to(device, torch.float32)
    sensor = torch.as_tensor(sensor_depth, dtype=torch.float32, device=device)
    if predicted.ndim != 3 or surety.shape != predicted.shape or sensor.shape != predicted.shape:
        raise ValueError(
            f"predicted depth {tuple(predicted.shape)}, confidence {tuple(surety.shape)} and sensor depth "
            f"{tuple(sensor.shape)} must all be (D, h, w) on the same model pixels; map sensor depth with "
            "depth_to_model"
        )
    predicted_ok = usable_pixels(predicted, surety)
    in_range = (sensor >= config.min_range_m) & (sensor <= config.max_range_m)  # NaN fails both
    usable = predicted_ok & in_range
    threshold = 0.0
    if config.confidence_percentile > 0.0 and bool(predicted_ok.any()):
        threshold = percentile(surety[predicted_ok], config.confidence_percentile)
    used = usable & (surety >= threshold)
    count = int(used.sum())
    if count < config.min_pixels:
        return ScaleUnavailable(
            "no_valid_depth",
            f"{count} pixels usable for the depth scale, need {config.min_pixels}: of {predicted.numel()} pixels, "
            f"{int(predicted_ok.sum())} have a usable prediction, {int(in_range.sum())} a sensor depth inside "
            f"[{config.min_range_m}, {config.max_range_m}] m, {int(usable.sum())} both, and {count} of those "
            f"reach the confidence percentile {config.confidence_percentile}{_out_of_range(sensor, config)}",
        )
    log_ratio = torch.log(sensor[used]) - torch.log(predicted[used])
    centre, sigma = _median_and_sigma(log_ratio)
    return ScaleObservation(math.exp(centre), sigma, count, "depth")


def _out_of_range(sensor: torch.Tensor, config: DepthScaleConfig) -> str:
    """What the sensor's readings say when most lie outside the range: their median, and the unit it suggests."""
    readings = sensor[torch.isfinite(sensor) & (sensor > 0.0)]
    if readings.numel() == 0:
        return ""
    median = percentile(readings, 50.0)
    if config.min_range_m <= median <= config.max_range_m:
        return ""
    if median > 100.0:
        cause = "millimetres in a 32FC1 image? (REP 118: 32FC1 is metres, 16UC1 millimetres)"
    elif median > config.max_range_m:
        cause = "a scene beyond the sensor's range, or depth in a finer unit than REP 118's (16UC1 in 0.1 mm)?"
    else:
        cause = "a scene nearer than the sensor's range, or depth in a coarser unit than REP 118's?"
    return f"; the sensor's readings have a median of {median:.4g} m: {cause}"


def rig_scale(
    window_from_camera: np.ndarray,
    cameras: int,
    camera_from_camera: Mapping[int, np.ndarray],
    min_baseline_m: float = MIN_RIG_BASELINE_M,
) -> ScaleMeasurement:
    """Metres per window unit from a calibrated camera rig (see the module docstring).

    Args:
        window_from_camera: ``(S, 4, 4)`` the window's predicted poses, frame-set major (index = set * K + camera).
        cameras: K, the cameras per frame set.
        camera_from_camera: camera j -> camera0_from_cameraj, the known rigid transform ``(4, 4)`` in metres (as
            TF's lookup_transform(camera 0's frame, camera j's frame) gives it): its translation is camera j's
            position in camera 0's frame, the baseline.
        min_baseline_m: shortest baseline that measures a scale.
    Returns:
        `ScaleObservation` (source "rig", samples = camera pairs used) or `ScaleUnavailable`: "no_rig" (one camera
        or no known pair), "degenerate" (every known baseline is shorter than ``min_baseline_m``, or the window
        predicts no usable distance between the cameras), "implausible_rig" (a baseline over `MAX_RIG_BASELINE_M`),
        "reversed_rig" (a camera predicted on the other side of camera 0 than its transform puts it, in most frame
        sets: the transform's inverse was given), "inconsistent_rig" (`rig_disagreement`).
    Raises:
        ValueError: poses not (S, 4, 4) with S a multiple of ``cameras``, a camera index outside [1, K), a transform
            that is not a finite (4, 4) matrix, or a ``min_baseline_m`` that is not a positive number.
    """
    poses = np.asarray(window_from_camera, dtype=np.float64)
    if isinstance(cameras, bool) or not isinstance(cameras, (int, np.integer)) or cameras < 1:
        raise ValueError(f"cameras must be an int >= 1 (cameras per frame set), got {cameras!r}")
    if poses.ndim != 3 or poses.shape[1:] != (4, 4) or poses.shape[0] % cameras:
        raise ValueError(
            f"window_from_camera must be (S, 4, 4) with S a multiple of the {cameras} cameras, got {poses.shape}"
        )
    if not (math.isfinite(min_baseline_m) and min_baseline_m > 0.0):
        raise ValueError(f"min_baseline_m must be a positive number of metres, got {min_baseline_m!r}")
    baselines = {}
    for camera, transform in camera_from_camera.items():
        transform = np.asarray(transform, dtype=np.float64)
        if isinstance(camera, bool) or not (isinstance(camera, (int, np.integer)) and 1 <= camera < cameras):
            raise ValueError(
                f"camera_from_camera has camera {camera!r}, but the window's cameras are 0..{cameras - 1} and "
                "camera 0 is the reference: key each transform by a camera index in [1, K)"
            )
        if transform.shape != (4, 4) or not np.isfinite(transform).all():
            raise ValueError(f"camera_from_camera[{camera}] must be a finite (4, 4) rigid transform in metres")
        baselines[camera] = transform[:3, 3]
    if cameras < 2 or not baselines:
        return ScaleUnavailable(
            "no_rig",
            f"no known camera pair: {cameras} camera(s) per frame set and known transforms for cameras "
            f"{sorted(baselines)}; give the rig's calibrated transforms from camera 0",
        )
    baseline_m = {camera: float(np.linalg.norm(t)) for camera, t in baselines.items()}
    too_long = {camera: round(length, 3) for camera, length in baseline_m.items()}
    too_long = {camera: length for camera, length in too_long.items() if length > MAX_RIG_BASELINE_M}
    if too_long:
        return ScaleUnavailable("implausible_rig", implausible_baselines(too_long))
    long_enough = {camera: t for camera, t in baselines.items() if baseline_m[camera] >= min_baseline_m}
    if not long_enough:
        rounded = {camera: round(length, 4) for camera, length in baseline_m.items()}
        return ScaleUnavailable(
            "degenerate",
            f"every known baseline is shorter than {min_baseline_m} m ({rounded}); a rig this small measures no scale",
        )
    sets = poses.reshape(-1, cameras, 4, 4)
    units_per_metre, lengths, reversed_cameras = [], [], []
    for camera, baseline in long_enough.items():
        length = baseline_m[camera]
        # The predicted offset of camera j in camera 0's frame, along the known baseline: pose noise across the
        # baseline would lengthen a plain distance (|b + n| > |b| on average) and bias the scale low.
        offset = np.einsum("sji,sj->si", sets[:, 0, :3, :3], sets[:, camera, :3, 3] - sets[:, 0, :3, 3])
        predicted = offset @ (baseline / length)  # (sets,) window units
        usable = np.isfinite(predicted) & (predicted > _MIN_PREDICTED_DISTANCE)
        # A transform given as its inverse: most sets predict camera j within 60 degrees of the opposite direction
        # (a broken pose puts a few there; transforms of another camera, across the baseline, about none).
        backwards = np.isfinite(predicted) & (predicted < -0.5 * np.linalg.norm(offset, axis=1))
        if np.count_nonzero(backwards) > predicted.size / 2:
            reversed_cameras.append(camera)
        units_per_metre.append(predicted[usable] / length)
        lengths.append(np.full(int(usable.sum()), length))
    if reversed_cameras:
        return ScaleUnavailable(
            "reversed_rig",
            f"the window predicts camera(s) {reversed_cameras} on the other side of camera 0 than their transforms "
            "put them, in most frame sets: each transform must be camera0_from_cameraj (camera j's position in "
            "camera 0's frame, as TF's lookup_transform(camera 0's frame, camera j's frame) gives it), not its "
            "inverse",
        )
    disagreement = rig_disagreement(
        {camera: float(np.median(k)) for camera, k in zip(long_enough, units_per_metre) if k.size}
    )
    if disagreement:
        return ScaleUnavailable("inconsistent_rig", disagreement)
    measured, length = np.concatenate(units_per_metre), np.concatenate(lengths)
    if measured.size == 0:
        return ScaleUnavailable(
            "degenerate",
            f"the window predicts no usable distance between the rig's cameras in any of its "
            f"{sets.shape[0]} frame sets (non-finite or coincident camera centres, or camera j not on the known side)",
        )
    # The mean of the pairs' window units per metre (each an offset plus the poses' noise, so the mean is unbiased
    # and, unlike a median, uses every pair fully: a median of normal errors needs pi / 2 times the pairs), weighted
    # by the squared baseline (the same pose noise is a smaller part of a longer one), over the pairs within
    # _OUTLIER_SIGMAS robust standard deviations of their median (a broken pose is dropped). In units of one
    # metre of baseline, a pair's deviation times its baseline is the pose noise, alike for every pair.
    centre = float(np.median(measured))
    spread = MAD_TO_SIGMA * float(np.median(np.abs(measured - centre) * length))
    keep = np.abs(measured - centre) * length <= _OUTLIER_SIGMAS * spread if spread > 0.0 else np.isfinite(measured)
    kept, weight = measured[keep], length[keep] ** 2
    mean = float(np.average(kept, weights=weight))
    count = kept.size
    noise = MAD_TO_SIGMA * float(np.median(np.abs(kept - mean) * length[keep]))  # window units, per pair
    sigma = noise / math.sqrt(float(weight.sum())) / mean
    sigma = max(sigma, SINGLE_MEASUREMENT_RELATIVE_SIGMA / math.sqrt(count))
    return ScaleObservation(1.0 / mean, sigma, int(count), "rig")


def implausible_baselines(lengths: Mapping[int, float]) -> str:
    """Why baselines (camera -> metres) longer than `MAX_RIG_BASELINE_M` measure no scale, with the likely fix."""
    listed = ", ".join(f"camera {camera}: {length:g} m" for camera, length in sorted(lengths.items()))
    return (
        f"the rig's baselines are implausibly long ({listed}; a rig's cameras are centimetres to a metre or two "
        f"apart, at most {MAX_RIG_BASELINE_M:g} m here): are its transforms in millimetres or centimetres? ROS "
        "transforms are in metres (REP 103)"
    )


def long_baseline_note(camera_from_camera: Mapping[int, np.ndarray]) -> str:
    """A note naming the rig's baselines longer than `SUSPECT_RIG_BASELINE_M` (``camera_from_camera`` as
    `rig_scale` takes it), "" if none."""
    lengths = {camera: float(np.linalg.norm(np.asarray(t)[:3, 3])) for camera, t in camera_from_camera.items()}
    long = {camera: length for camera, length in sorted(lengths.items()) if length > SUSPECT_RIG_BASELINE_M}
    if not long:
        return ""
    listed = ", ".join(f"camera {camera}: {length:.3g} m" for camera, length in long.items())
    return (
        f"the rig's baselines are longer than most rigs' ({listed}; over {SUSPECT_RIG_BASELINE_M:g} m): if its "
        "transforms are in centimetres, every output is 100 times too large; ROS transforms are in metres (REP 103)"
    )


def spread_ratio(values: Mapping[int, float]) -> float:
    """How far apart the cameras' measurements of one scale are: the largest over the smallest (1.0 for fewer than
    two)."""
    return max(values.values()) / min(values.values()) if len(values) >= 2 else 1.0


def camera_label(camera: int, camera_frames: Sequence[str]) -> str:
    """A camera as a scale message names it: its index and its image frame id ("" where unknown)."""
    frame = camera_frames[camera] if camera < len(camera_frames) else ""
    return f"camera {camera} ('{frame}')"


def depth_disagreement(metres_per_unit: Mapping[int, float], camera_frames: Sequence[str]) -> str:
    """Why the depth cameras (camera -> metres per window unit from its own depth) disagree on the scale by more
    than `MAX_DEPTH_DISAGREEMENT`, or "" when they agree (or only one measured)."""
    ratio = spread_ratio(metres_per_unit)
    if ratio <= 1.0 + MAX_DEPTH_DISAGREEMENT:
        return ""
    listed = ", ".join(
        f"{camera_label(camera, camera_frames)} {value:.4g}" for camera, value in sorted(metres_per_unit.items())
    )
    return (
        f"the depth cameras disagree on the scale by {ratio:.2f}x (metres per window unit from each one's depth: "
        f"{listed}): one is in another unit or miscalibrated; check each camera's depth encoding (REP 118: 16UC1 "
        "millimetres, 32FC1 metres) and its depth scale"
    )


def rig_disagreement(units_per_metre: Mapping[int, float]) -> str:
    """Why the rig's cameras (camera -> window units per metre of its baseline) disagree on the scale by more than
    `MAX_RIG_DISAGREEMENT`, or "" when they agree (or only one measured)."""
    ratio = spread_ratio(units_per_metre)
    if ratio <= 1.0 + MAX_RIG_DISAGREEMENT:
        return ""
    listed = ", ".join(f"camera {camera} {value:.3g}" for camera, value in sorted(units_per_metre.items()))
    return (
        f"the rig's cameras disagree on the scale by {ratio:.2f}x (window units per metre of baseline: {listed}): "
        "their transforms from camera 0 do not match the images; check that the transforms (rig_transforms or "
        "/tf_static) follow the cameras' order and their baselines"
    )


def odometry_scale(
    window_from_camera: np.ndarray,
    odom_positions: np.ndarray,
    min_translation_m: float = 0.1,
    max_ratio_spread: float = 1.5,
) -> ScaleMeasurement:
    """Metres per window unit from odometry (see the module docstring).

    Args:
        window_from_camera: ``(S, 4, 4)`` the window's predicted poses.
        odom_positions: ``(S, 3)`` metres, the same frames' camera positions in the odometry frame (NaN rows where
            TF had no answer).
        min_translation_m: shortest odometry displacement (metres) from the first frame that is used; it should be
            several times the odometry's and the predicted poses' noise over one window.
        max_ratio_spread: largest factor by which one displacement's own ratio may differ from the window's.
    Returns:
        `ScaleObservation` (source "odometry", samples = displacements used) or `ScaleUnavailable`:
        "single_frame" (a window of one frame: no displacement yet), "missing_odometry" (fewer than two frames with
        odometry and a finite pose), "still" (the robot did not
        move ``min_translation_m`` during the window), "inconsistent" (a displacement's ratio disagrees by more
        than ``max_ratio_spread``: the odometry jumped, or the window's poses are wrong).
    Raises:
        ValueError: shapes that are not (S, 4, 4) and (S, 3) for the same S, or settings that are not positive
            numbers (``max_ratio_spread`` > 1).
    """
    poses = np.asarray(window_from_camera, dtype=np.float64)
    odom = np.asarray(odom_positions, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4) or odom.shape != (poses.shape[0], 3):
        raise ValueError(
            f"window_from_camera must be (S, 4, 4) and odom_positions (S, 3) for the same S frames, got "
            f"{poses.shape} and {odom.shape}"
        )
    if not (math.isfinite(min_translation_m) and min_translation_m > 0.0):
        raise ValueError(f"min_translation_m must be a positive number of metres, got {min_translation_m!r}")
    if not (math.isfinite(max_ratio_spread) and max_ratio_spread > 1.0):
        raise ValueError(f"max_ratio_spread must be a number > 1, got {max_ratio_spread!r}")
    if poses.shape[0] < 2:
        return ScaleUnavailable("single_frame", "the window has one frame so far: no displacement to measure yet")
    centres = poses[:, :3, 3]
    known = np.flatnonzero(np.isfinite(odom).all(axis=1) & np.isfinite(centres).all(axis=1))
    if known.size < 2:
        return ScaleUnavailable(
            "missing_odometry",
            f"{known.size} of the window's {poses.shape[0]} frames have odometry and a finite pose, need 2; "
            "check that TF can transform the camera frames into the odometry frame at the images' stamps",
        )
    reference, others = known[0], known[1:]
    odom_moved = np.linalg.norm(odom[others] - odom[reference], axis=1)  # metres
    window_moved = np.linalg.norm(centres[others] - centres[reference], axis=1)  # window units
    moving = odom_moved >= min_translation_m
    if not moving.any():
        return ScaleUnavailable(
            "still",
            f"the camera moved at most {odom_moved.max():.3f} m (odometry) during the window, less than "
            f"{min_translation_m} m: metres per window unit are undefined without a displacement",
        )
    odom_moved, window_moved = odom_moved[moving], window_moved[moving]
    ratio = float(odom_moved.sum() / window_moved.sum()) if window_moved.sum() > 0.0 else math.inf
    # Division only where the window moved: a displacement odometry sees and the window does not disagrees
    # infinitely.
    pair_ratios = np.full(odom_moved.shape, math.inf)
    np.divide(odom_moved, window_moved, out=pair_ratios, where=window_moved > 0.0)
    worst = float(np.max(np.maximum(pair_ratios / ratio, ratio / pair_ratios))) if math.isfinite(ratio) else math.inf
    if not worst <= max_ratio_spread:
        return ScaleUnavailable(
            "inconsistent",
            f"the displacements disagree: their metres per window unit range from {pair_ratios.min():.4g} to "
            f"{pair_ratios.max():.4g} around the window's {ratio:.4g}, a factor {worst:.3g} > {max_ratio_spread}; "
            "the odometry jumped or the window's poses are wrong",
        )
    deviation = np.abs(np.log(pair_ratios) - math.log(ratio))
    sigma = _sigma_from_deviations(torch.from_numpy(deviation))
    return ScaleObservation(ratio, sigma, int(odom_moved.size), "odometry")


def _median_and_sigma(log_ratio: torch.Tensor) -> tuple[float, float]:
    """Median of ``(n,)`` log ratios and the robust standard error of the log estimate (see the module docstring)."""
    centre = percentile(log_ratio, 50.0)
    return centre, _sigma_from_deviations((log_ratio - centre).abs())


def _sigma_from_deviations(deviation: torch.Tensor) -> float:
    """Standard error of a median from the ``(n,)`` absolute deviations of its measurements (see the module
    docstring), at least ``SINGLE_MEASUREMENT_RELATIVE_SIGMA / sqrt(n)`` below `_MIN_SCATTER_MEASUREMENTS`.

    Medians here are the midpoint of the two middle values for an even count: torch's `median` takes the lower
    one, which for two measurements is a deviation of exactly 0.
    """
    count = deviation.numel()
    scatter = _MEDIAN_STANDARD_ERROR * MAD_TO_SIGMA * percentile(deviation, 50.0) / math.sqrt(count)
    if count < _MIN_SCATTER_MEASUREMENTS:
        return max(scatter, SINGLE_MEASUREMENT_RELATIVE_SIGMA / math.sqrt(count))
    return scatter
