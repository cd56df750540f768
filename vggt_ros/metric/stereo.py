# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The scale of one frame set of a calibrated rig from its images: direct stereo alignment along the baseline.

Camera 0's predicted depth (window units) places each of its pixels in its optical frame. Camera j sits at
``k * b`` there, with ``b`` the calibrated baseline in metres (camera0_from_cameraj's translation) and ``k`` the
unknown window units per metre. Projected into camera j's image at the right ``k``, every pixel lands on the same
surface point, so the brightness difference is smallest there: Gauss-Newton over ``k``, with a gain and an offset
for camera j's exposure, from the estimate of the predicted camera offsets (`vggt_ros.metric.sources.rig_scale`),
first on blurred images (a wider basin), then on sharper ones. Residuals are Huber-weighted, which lets the pixels
occluded in camera j and the depth's outliers count little.

Why: the predicted camera offsets carry VGGT's pose noise, about 10 % of a 12 cm baseline per pair, while this rests
on thousands of pixels. What remains is the error a whole depth map shares (its scale, the focal length), which
the caller's sigma floor stands for. The disparity is ``f b / z`` pixels whatever the window's unit, so the
alignment measures the unit through camera 0's predicted depth, as the depth source does with a depth sensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Mapping, Optional

import numpy as np
import torch
import torch.nn.functional as F

from vggt_ros.geometry import depth_to_camera_points
from vggt_ros.metric.sources import ScaleMeasurement, ScaleObservation, ScaleUnavailable, rig_disagreement
from vggt_ros.numeric import MAD_TO_SIGMA, percentile, usable_pixels
from vggt_ros.products import WindowProducts

# Blur (Gaussian sigma, pixels) of the two stages, and Gauss-Newton steps in each.
_STAGES = ((2.0, 6), (0.8, 6))
# A step smaller than this (relative) ends a stage.
_CONVERGED = 1e-5
# Huber's threshold in robust standard deviations of the residuals (95 % efficiency for normal residuals).
_HUBER = 1.345
# A frame set's alignment shares the errors of camera 0's whole depth map (its scale, the focal lengths), which no
# residual shows: 0.4 - 0.7 % per set on the synthetic rig of bench/metric_scale.py, whose test double of the network
# errs by 0.2 % in each; taken as 1 % for VGGT on real scenes. A window's sigma is at least this over sqrt(pairs).
STEREO_SET_RELATIVE_SIGMA = 0.01
# An alignment further than this many of the pose estimate's sigmas from it (and at least _MIN_GATE in log) fell
# into another minimum (a repeating texture): the frame set is left out.
_GATE_SIGMAS = 4.0
_MIN_GATE = 0.1


@dataclass(frozen=True)
class StereoAlignment:
    """One frame set's direct stereo alignment.

    Attributes:
        units_per_metre: window units per metre of baseline (k).
        pixels: camera 0 pixels that landed inside camera j's image at the end.
        relative_sigma: relative standard error of k from the residuals and the image gradients alone (the depth
            map's shared errors come on top).
    """

    units_per_metre: float
    pixels: int
    relative_sigma: float


def stereo_rig_scale(
    products: WindowProducts,
    cameras: int,
    camera_from_camera: Mapping[int, np.ndarray],
    from_poses: ScaleObservation,
) -> ScaleMeasurement:
    """Metres per window unit of a calibrated rig's window from its images (see the module docstring).

    Args:
        products: the decoded window (frame-set major: index = set * K + camera).
        cameras: K, the cameras per frame set.
        camera_from_camera: camera j -> camera0_from_cameraj ``(4, 4)`` in metres, the known pairs.
        from_poses: the window's estimate from the predicted camera offsets (`rig_scale`), where the alignment starts.
    Returns:
        The mean of the aligned window units per metre over the camera pairs (camera 0 and a known camera j of one
        frame set) that both have depth and colours (the dense frames), as metres per unit (source "rig", samples =
        pixels aligned); its sigma is the pairs' scatter, at least `STEREO_SET_RELATIVE_SIGMA` / sqrt(pairs).
        ``from_poses`` with a ``note`` saying why where no pair aligns (no dense pair, a textureless view, views
        that do not overlap, or every alignment far from it); `ScaleUnavailable` "inconsistent_rig" where the
        cameras disagree (`rig_disagreement`).
    """
    start = 1.0 / from_poses.metres_per_unit
    gate = max(_GATE_SIGMAS * from_poses.relative_sigma, _MIN_GATE)
    intrinsics = torch.from_numpy(products.intrinsics)
    dense = set(products.dense)
    estimates, pixels = [], 0
    by_camera: dict[int, list[float]] = {}
    pairs = unaligned = far = 0
    for first in range(0, len(products.frame_ids), cameras):
        if first not in dense:
            continue
        slot0 = products.slot(first)
        grey0 = grey(products.colors[slot0])
        for camera, transform in camera_from_camera.items():
            if first + camera not in dense:
                continue
            pairs += 1
            slot1 = products.slot(first + camera)
            aligned = align_stereo_pair(
                products.depth[slot0],
                products.confidence[slot0],
                grey0,
                grey(products.colors[slot1]),
                torch.isfinite(products.depth[slot1]),
                intrinsics[first],
                intrinsics[first + camera],
                torch.from_numpy(np.asarray(transform, dtype=np.float64)),
                start,
            )
            if aligned is None:
                unaligned += 1
            elif abs(math.log(aligned.units_per_metre / start)) > gate:
                far += 1
            else:
                estimates.append(aligned.units_per_metre)
                by_camera.setdefault(camera, []).append(aligned.units_per_metre)
                pixels += aligned.pixels
    if not estimates:
        why = (
            f"{unaligned} found too little texture or overlap, {far} settled more than {gate:.0%} from the offsets' "
            "estimate (a repeating texture, or a calibration that does not match the images)"
            if pairs
            else "the window has no frame set with the images of both cameras"
        )
        return replace(
            from_poses,
            note=f"no frame set of the rig aligned along its baseline ({pairs} camera pairs: {why}); the scale rests "
            f"on the predicted camera offsets, {from_poses.relative_sigma:.1%} per window instead of about "
            f"{STEREO_SET_RELATIVE_SIGMA:.0%} per frame set",
        )
    disagreement = rig_disagreement({camera: float(np.median(k)) for camera, k in by_camera.items()})
    if disagreement:
        return ScaleUnavailable("inconsistent_rig", disagreement)
    units_per_metre = float(np.mean(estimates))
    count = len(estimates)
    scatter = float(np.std(estimates, ddof=1)) / math.sqrt(count) / units_per_metre if count > 1 else 0.0
    sigma = max(scatter, STEREO_SET_RELATIVE_SIGMA / math.sqrt(count))
    return ScaleObservation(1.0 / units_per_metre, sigma, pixels, "rig")


def grey(colors: torch.Tensor) -> torch.Tensor:
    """``(H, W)`` float32 luminance in [0, 1] of ``(H, W, 3)`` uint8 RGB (ITU-R BT.601 weights)."""
    weights = torch.tensor([0.299, 0.587, 0.114], device=colors.device)
    return (colors.float() @ weights) / 255.0


def align_stereo_pair(
    depth0: torch.Tensor,
    confidence0: torch.Tensor,
    grey0: torch.Tensor,
    grey1: torch.Tensor,
    inside1: torch.Tensor,
    intrinsics0: torch.Tensor,
    intrinsics1: torch.Tensor,
    camera0_from_camera1: torch.Tensor,
    initial_units_per_metre: float,
    min_pixels: int = 200,
    max_pixels: int = 8_000,
    max_relative_sigma: float = 0.02,
) -> Optional[StereoAlignment]:
    """Window units per metre of one camera pair of a frame set (see the module docstring), or None where the
    images do not pin it: fewer than ``min_pixels`` usable pixels project into camera j, a step diverges, or the
    residuals and gradients leave k's relative standard error above ``max_relative_sigma`` (a textureless view).

    Args:
        depth0, confidence0: ``(H, W)`` camera 0's predicted depth (window units, NaN on padding) and confidence.
        grey0, grey1: ``(H, W)`` float32 luminance of camera 0's and camera j's model images (`grey`).
        inside1: ``(H, W)`` bool, camera j's pixels that show its image (False on padding).
        intrinsics0, intrinsics1: ``(3, 3)`` the two cameras' predicted pinhole matrices (model pixels).
        camera0_from_camera1: ``(4, 4)`` the calibrated rigid transform, metres.
        initial_units_per_metre: the starting k (> 0).
    """
    device = depth0.device
    usable = usable_pixels(depth0, confidence0).to(device)
    if int(usable.sum()) < min_pixels:
        return None
    # The surer half of the predictions (the depth's own errors are what the alignment cannot see through), on every
    # n-th row and column: a model image's thousands of pixels pin one number, and each step costs per pixel.
    usable &= confidence0 >= percentile(confidence0[usable], 50.0)
    stride = max(1, math.isqrt(int(usable.sum()) // max_pixels))
    if stride > 1:
        thinned = torch.zeros_like(usable)
        thinned[::stride, ::stride] = True
        usable &= thinned
    points0 = depth_to_camera_points(depth0.float(), intrinsics0.to(device, torch.float32))[usable]  # (P, 3)
    transform = camera0_from_camera1.to(device, torch.float32)
    rotation, baseline = transform[:3, :3], transform[:3, 3]
    # Camera j's coordinates of a point are R^T (X0 - k b) = static - k * direction.
    static = points0 @ rotation
    direction = baseline @ rotation
    k, gain, offset = float(initial_units_per_metre), 1.0, 0.0
    for blur, steps in _STAGES:
        maps = _image_and_gradients(grey1, inside1, blur)  # (1, 4, H, W)
        reference = _blurred(grey0, blur)[usable]
        for _ in range(steps):
            values, d_value_d_k, keep = _project_and_sample(maps, static - k * direction, intrinsics1, direction)
            pixels = int(keep.sum())
            if pixels < min_pixels:
                return None
            values, d_value_d_k = values[keep], d_value_d_k[keep]
            residual = gain * values + offset - reference[keep]
            spread = max(MAD_TO_SIGMA * float(residual.abs().median()), 1e-12)
            weight = torch.clamp(_HUBER * spread / residual.abs().clamp_min(1e-12), max=1.0)
            # The 3 x 3 normal equations sum thousands of terms: in float64.
            jacobian = torch.stack((gain * d_value_d_k, values, torch.ones_like(values)), dim=1).double()  # (P, 3)
            weighted = jacobian * weight.double()[:, None]
            normal = weighted.T @ jacobian
            step = torch.linalg.lstsq(normal, -(weighted.T @ residual.double())).solution
            k, gain, offset = k + float(step[0]), gain + float(step[1]), offset + float(step[2])
            if not (math.isfinite(k) and k > 0.0):
                return None
            if abs(float(step[0])) < _CONVERGED * k:
                break
    # The standard error of k the residuals and the image gradients support: Gauss-Newton's information on k with
    # the gain and the offset free (a Schur complement). A textureless view has none, however many pixels it has.
    cross = normal[0, 1:]
    information = float(normal[0, 0] - cross @ torch.linalg.pinv(normal[1:, 1:]) @ cross)
    relative_sigma = spread / math.sqrt(information) / k if information > 0.0 else math.inf
    if not relative_sigma <= max_relative_sigma:
        return None
    return StereoAlignment(k, pixels, relative_sigma)


def _blurred(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """``(H, W)`` image convolved with a separable Gaussian of ``sigma`` pixels (edges replicated)."""
    radius = max(1, math.ceil(2.5 * sigma))  # 99 % of the kernel's weight
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32, device=image.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    padded = F.pad(image[None, None].float(), (radius, radius, radius, radius), mode="replicate")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1))
    return F.conv2d(rows, kernel.view(1, 1, -1, 1))[0, 0]


def _image_and_gradients(image: torch.Tensor, inside: torch.Tensor, sigma: float) -> torch.Tensor:
    """``(1, 4, H, W)``: the blurred image, its x and y central differences, and where it shows the camera image."""
    smooth = _blurred(image, sigma)
    gx = torch.zeros_like(smooth)
    gy = torch.zeros_like(smooth)
    gx[:, 1:-1] = 0.5 * (smooth[:, 2:] - smooth[:, :-2])
    gy[1:-1] = 0.5 * (smooth[2:] - smooth[:-2])
    return torch.stack((smooth, gx, gy, inside.float()))[None]


def _project_and_sample(maps: torch.Tensor, points1: torch.Tensor, intrinsics1: torch.Tensor, direction: torch.Tensor):
    """Brightness at the projections of ``points1`` ``(P, 3)`` (camera j's frame), its derivative in k (the points
    move by ``-direction`` per unit of k), and which fall among camera j's image pixels (``maps``' last channel;
    beyond the image border the sampled channel is 0, like padding)."""
    fx, fy = float(intrinsics1[0, 0]), float(intrinsics1[1, 1])
    cx, cy = float(intrinsics1[0, 2]), float(intrinsics1[1, 2])
    height, width = maps.shape[-2:]
    x, y, z = points1.unbind(1)
    in_front = z > 1e-9
    z = torch.where(in_front, z, torch.ones_like(z))
    u = fx * x / z + cx
    v = fy * y / z + cy
    grid = torch.stack((2.0 * u / (width - 1) - 1.0, 2.0 * v / (height - 1) - 1.0), dim=1)
    sampled = F.grid_sample(maps, grid[None, None], mode="bilinear", padding_mode="zeros", align_corners=True)
    value, gx, gy, inside = sampled[0, :, 0]
    # d(u, v)/dk by the quotient rule, with d(x, y, z)/dk = -direction.
    dx, dy, dz = (-direction).unbind(0)
    du = fx * (dx * z - x * dz) / z**2
    dv = fy * (dy * z - y * dz) / z**2
    keep = in_front & (inside > 0.999)
    return value, gx * du + gy * dv, keep
