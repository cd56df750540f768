# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Robust similarity (Sim(3)) estimation between corresponding 3-D point sets, and a robust depth-ratio scale.

`estimate_sim3(src, dst, weights)` finds scale s, rotation R and translation t with dst ≈ s * R @ src + t:

1. Initialisation that survives gross outliers: least-median-of-squares over a few dozen minimal samples
   (3 pairs, drawn with probability proportional to the weights), plus the all-pairs weighted solution. The
   median has a 50 % breakdown point, so 30 % gross outliers cannot pull the start point away.
2. Iteratively reweighted least squares: each step is a weighted Umeyama solve (rotation from the SVD of the
   weighted cross-covariance) with the Cauchy weight `w_i / (1 + (r_i / c)^2)`, where r_i is the 3-D residual
   norm and c = 3 * sigma. sigma is a MAD-style robust scale: the (weighted) median of the residual norms
   about zero, divided by 1.5382 (the median norm of a 3-D standard normal vector), so that sigma is the
   per-axis noise level of Gaussian inliers. Cauchy rather than Huber: a gross outlier's weight falls as
   (c / r)^2, so its pull on every weighted second moment (w r^2 -> c^2) stays bounded, which the symmetric
   scale below needs; Huber's c / r leaves w r^2 growing with r.
3. The scale of each step is the symmetric estimate sqrt(sum w |dst - mean|^2 / sum w |src - mean|^2)
   (Horn 1987) rather than Umeyama's trace(D S) / var(src): when src carries noise too (two VGGT windows both
   do, at the same relative level) Umeyama's scale shrinks by about sigma^2 / var(src) every time, and along a
   chain of windows that bias compounds into scale drift. The symmetric estimate is unbiased when both sides
   carry the same relative noise, and off by only sigma^2 / (2 var) when one side is exact.

`estimate_depth_scale(dst_depth, src_depth)` is the scale alone, from the depths two predictions give the
same pixels (IRLS on log-ratios); `estimate_sim3(..., fixed_scale=s)` then finds only R and t.

Errors, decided once for the whole module:
- Malformed input (shapes, N < 3, non-finite coordinates, negative or non-finite weights, all weights zero)
  raises `ValueError`: it is a bug in the caller, who should drop such rows first.
- Geometrically degenerate input (all points coincident or collinear, in src or dst, among the pairs with
  positive weight; or an iteration whose weights collapse onto such a set) raises `DegenerateAlignmentError`,
  a `ValueError` subclass, so a caller that feeds live data (the world chaining) can catch exactly this case
  and reject the window with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vggt_ros.numeric import MAD_TO_SIGMA

# Median of the norm of a 3-D standard normal vector (chi distribution, 3 dof): sigma = median(|r|) / this.
_CHI3_MEDIAN = 1.5381722
# Second-largest over largest eigenvalue of the point covariance below which the points count as collinear.
_COLLINEAR_RATIO = 1e-10
# Points further than this many median distances from the median are strays, not part of the bulk whose spread
# decides degeneracy (`_check_spread`); the robust fit itself gives such points no weight.
_BULK_RADIUS = 100.0
# Pairs on which the minimal-sample hypotheses are scored: plenty for a stable median.
_SCORE_POINTS = 1000


class DegenerateAlignmentError(ValueError):
    """The correspondences do not determine a similarity (coincident or collinear points)."""


@dataclass(frozen=True)
class Sim3Fit:
    """Diagnostics of `estimate_sim3`.

    residual: RMS of the residual norms |dst - (s R src + t)| of the inliers, in dst units.
    inlier_ratio: inliers / pairs with positive weight (unweighted count).
    sigma: robust per-axis residual scale (dst units) at the solution.
    inlier_threshold: residual norm up to which a pair counts as an inlier (dst units).
    inlier_mask: (N,) bool.
    iterations: IRLS iterations run; converged: whether the update fell below the tolerance.
    """

    residual: float
    inlier_ratio: float
    sigma: float
    inlier_threshold: float
    inlier_mask: np.ndarray
    iterations: int
    converged: bool
    num_points: int


def weighted_umeyama(src, dst, weights=None) -> tuple[float, np.ndarray, np.ndarray]:
    """Closed-form weighted least-squares similarity (Umeyama 1991), no robust loss.

    src, dst: (N, 3); weights: (N,) >= 0 or None (all ones). Returns (scale, R (3, 3), t (3,)) minimising
    sum_i w_i |dst_i - (scale R src_i + t)|^2. Raises ValueError / DegenerateAlignmentError as the module says.
    """
    src, dst, w = _validated(src, dst, weights)
    _check_spread(src, w, "src")
    _check_spread(dst, w, "dst")
    scale, rot, trans = _umeyama_batch(src[None], dst[None], w[None])
    return float(scale[0]), rot[0], trans[0]


def estimate_sim3(
    src,
    dst,
    weights=None,
    *,
    inlier_threshold: float | None = None,
    max_iterations: int = 50,
    tolerance: float = 1e-10,
    num_hypotheses: int = 64,
    seed: int = 0,
    fixed_scale: float | None = None,
) -> tuple[float, np.ndarray, np.ndarray, Sim3Fit]:
    """Robust Sim(3): returns (scale, R (3, 3), t (3,), Sim3Fit) with dst ≈ scale * R @ src + t.

    src, dst: (N, 3) corresponding points (numpy, or anything `np.asarray` takes; float64 inside).
    weights: optional (N,) non-negative confidences; pairs with weight 0 are ignored.
    inlier_threshold: residual norm (dst units) defining inliers for the diagnostics; default 3 * sigma.
        It does not change the estimate.
    tolerance: stop when the RMS displacement of the transformed points between two iterations falls below
        tolerance * (RMS spread of dst).
    num_hypotheses, seed: minimal-sample initialisation (deterministic for a given seed).
    fixed_scale: a scale known from elsewhere (e.g. `estimate_depth_scale`); only R and t are then estimated.
    """
    if fixed_scale is not None and not (np.isfinite(fixed_scale) and fixed_scale > 0):
        raise ValueError(f"fixed_scale must be a positive finite number or None, got {fixed_scale}")
    if max_iterations < 1 or num_hypotheses < 0:
        raise ValueError("max_iterations must be >= 1 and num_hypotheses >= 0")
    if inlier_threshold is not None and not (np.isfinite(inlier_threshold) and inlier_threshold > 0):
        raise ValueError(f"inlier_threshold must be a positive finite number or None, got {inlier_threshold}")
    src, dst, w0 = _validated(src, dst, weights)
    _check_spread(src, w0, "src")
    _check_spread(dst, w0, "dst")
    # Convergence is judged on the bulk: one stray point would set the spread (dst) or never settle (src).
    bulk = np.zeros(len(w0), dtype=bool)
    bulk[w0 > 0] = _bulk(src[w0 > 0]) & _bulk(dst[w0 > 0])
    spread = _rms_spread(dst[bulk], w0[bulk])
    sigma_floor = 1e-12 * spread

    scale, rot, trans = _lmeds_start(src, dst, w0, num_hypotheses, np.random.default_rng(seed), fixed_scale)
    moved = scale * src @ rot.T + trans
    converged = False
    iterations = 0
    for iterations in range(1, max_iterations + 1):  # noqa: B007 - the count is reported after the loop
        r = np.linalg.norm(dst - moved, axis=1)
        sigma = max(_weighted_median(r, w0) / _CHI3_MEDIAN, sigma_floor)
        w = w0 / (1.0 + (r / (3.0 * sigma)) ** 2)
        _check_spread(src, w, "src (after robust reweighting)")
        s_b, r_b, t_b = _umeyama_batch(src[None], dst[None], w[None], symmetric_scale=True, fixed_scale=fixed_scale)
        scale, rot, trans = float(s_b[0]), r_b[0], t_b[0]
        new_moved = scale * src @ rot.T + trans
        step = np.sqrt(np.mean(np.sum((new_moved[bulk] - moved[bulk]) ** 2, axis=1)))
        moved = new_moved
        if step <= tolerance * spread:
            converged = True
            break

    r = np.linalg.norm(dst - moved, axis=1)
    sigma = max(_weighted_median(r, w0) / _CHI3_MEDIAN, sigma_floor)
    threshold = 3.0 * sigma if inlier_threshold is None else float(inlier_threshold)
    used = w0 > 0
    inliers = used & (r <= threshold)
    residual = float(np.sqrt(np.mean(r[inliers] ** 2))) if inliers.any() else float("inf")
    info = Sim3Fit(
        residual=residual,
        inlier_ratio=float(inliers.sum() / used.sum()),
        sigma=float(sigma),
        inlier_threshold=threshold,
        inlier_mask=inliers,
        iterations=iterations,
        converged=converged,
        num_points=int(src.shape[0]),
    )
    return scale, rot, trans, info


def estimate_depth_scale(dst_depth, src_depth, weights=None, *, max_iterations: int = 50) -> float:
    """Robust s with dst_depth ≈ s * src_depth, for depths of the same pixels (N,) seen by two windows.

    The log-ratios log(dst / src) are averaged by IRLS with the Cauchy weight (c = 3 sigma, sigma from the
    MAD), weighted by ``weights``. Depth along a camera's own axis scales exactly with a similarity, and
    does not depend on the predicted poses or focal lengths, so this scale carries none of their noise.
    Raises ValueError when fewer than 3 pairs have finite positive depths and a positive weight.
    """
    dst_d = np.asarray(dst_depth, dtype=np.float64)
    src_d = np.asarray(src_depth, dtype=np.float64)
    w = np.ones(dst_d.shape) if weights is None else np.asarray(weights, dtype=np.float64)
    if dst_d.ndim != 1 or src_d.shape != dst_d.shape or w.shape != dst_d.shape:
        raise ValueError(
            f"dst_depth, src_depth and weights must all be (N,), got {dst_d.shape}, {src_d.shape}, {w.shape}"
        )
    usable = np.isfinite(dst_d) & np.isfinite(src_d) & (dst_d > 0) & (src_d > 0) & np.isfinite(w) & (w > 0)
    if usable.sum() < 3:
        raise ValueError(
            f"need at least 3 pixel pairs with finite positive depths and positive weight, got {int(usable.sum())}"
        )
    log_ratio = np.log(dst_d[usable] / src_d[usable])
    w0 = w[usable]
    estimate = _weighted_median(log_ratio, w0)
    for _ in range(max_iterations):
        r = np.abs(log_ratio - estimate)
        sigma = max(MAD_TO_SIGMA * _weighted_median(r, w0), 1e-12)
        weight = w0 / (1.0 + (r / (3.0 * sigma)) ** 2)
        new = float(weight @ log_ratio / weight.sum())
        if abs(new - estimate) < 1e-12:
            estimate = new
            break
        estimate = new
    return float(np.exp(estimate))


def _validated(src, dst, weights) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.ndim != 2 or src.shape[1] != 3 or dst.shape != src.shape:
        raise ValueError(
            f"src and dst must both be (N, 3) arrays of corresponding points, got {src.shape} and {dst.shape}"
        )
    n = src.shape[0]
    if n < 3:
        raise ValueError(f"a similarity needs at least 3 point pairs, got {n}")
    bad = ~(np.isfinite(src).all(axis=1) & np.isfinite(dst).all(axis=1))
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} of {n} point pairs contain NaN/Inf (first at row {int(np.argmax(bad))}); "
            "drop them before calling (keep rows where np.isfinite(src).all(1) & np.isfinite(dst).all(1))"
        )
    if weights is None:
        w = np.ones(n)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (n,):
            raise ValueError(f"weights must have shape ({n},), got {w.shape}")
        if not np.isfinite(w).all() or (w < 0).any():
            raise ValueError("weights must be finite and non-negative")
        if int((w > 0).sum()) < 3:
            raise ValueError(f"at least 3 pairs need a positive weight, got {int((w > 0).sum())}")
    return src, dst, w


def _rms_spread(points: np.ndarray, w: np.ndarray) -> float:
    mean = (w @ points) / w.sum()
    return float(np.sqrt((w @ np.sum((points - mean) ** 2, axis=1)) / w.sum()))


def _bulk(points: np.ndarray) -> np.ndarray:
    """``(N,)`` mask of the points within `_BULK_RADIUS` median distances of their coordinate-wise median (all of
    them where over half coincide)."""
    distance = np.linalg.norm(points - np.median(points, axis=0), axis=1)
    median_distance = float(np.median(distance))
    if median_distance == 0:
        return np.ones(len(points), dtype=bool)
    return distance <= _BULK_RADIUS * median_distance


def _check_spread(points: np.ndarray, w: np.ndarray, name: str) -> None:
    """Raise `DegenerateAlignmentError` where the weighted points' bulk is coincident or collinear.

    The bulk: points within `_BULK_RADIUS` median distances of the coordinate-wise median. A few gross strays
    (a point at 1e12 from a degenerate depth) would otherwise dominate the covariance, so that a full 3-D cloud
    read as collinear, and a line with two strays as a cloud whose rotation only the strays decide."""
    if w.sum() <= 0:
        raise DegenerateAlignmentError(f"{name}: every pair has zero weight")
    points, w = points[w > 0], w[w > 0]
    bulk = _bulk(points)
    points, w = points[bulk], w[bulk]
    mean = (w @ points) / w.sum()
    centred = points - mean
    cov = (centred * w[:, None]).T @ centred / w.sum()
    eig = np.linalg.eigvalsh(cov)  # ascending
    scale2 = float(np.max(np.abs(points))) ** 2
    if eig[2] <= 1e-24 * max(scale2, 1e-300):
        raise DegenerateAlignmentError(f"{name}: all weighted points coincide; a similarity is undetermined")
    if eig[1] <= _COLLINEAR_RATIO * eig[2]:
        raise DegenerateAlignmentError(
            f"{name}: the weighted points are collinear; rotation about their line is undetermined"
        )


def _umeyama_batch(src: np.ndarray, dst: np.ndarray, w: np.ndarray, symmetric_scale: bool = False, fixed_scale=None):
    """Weighted Umeyama for K problems at once: src, dst (K, M, 3), w (K, M) -> scale (K,), R (K,3,3), t (K,3).

    symmetric_scale: scale = sqrt(var_dst / var_src) (Horn 1987) instead of Umeyama's trace(D S) / var_src.
    """
    wsum = w.sum(axis=1)
    mu_s = np.einsum("km,kmi->ki", w, src) / wsum[:, None]
    mu_d = np.einsum("km,kmi->ki", w, dst) / wsum[:, None]
    xs = src - mu_s[:, None]
    xd = dst - mu_d[:, None]
    var_s = np.einsum("km,kmi,kmi->k", w, xs, xs) / wsum
    cov = np.einsum("km,kmi,kmj->kij", w, xd, xs) / wsum[:, None, None]
    u, d, vt = np.linalg.svd(cov)
    sign = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    sign[sign == 0] = 1.0
    fix = np.ones((len(w), 3))
    fix[:, 2] = sign
    rot = np.einsum("kij,kj,kjl->kil", u, fix, vt)
    with np.errstate(divide="ignore", invalid="ignore"):
        if fixed_scale is not None:
            scale = np.full(len(w), float(fixed_scale))
        elif symmetric_scale:
            scale = np.sqrt(np.einsum("km,kmi,kmi->k", w, xd, xd) / wsum / var_s)
        else:
            scale = np.sum(d * fix, axis=1) / var_s
    trans = mu_d - scale[:, None] * np.einsum("kij,kj->ki", rot, mu_s)
    return scale, rot, trans


def _lmeds_start(src, dst, w, num_hypotheses, rng, fixed_scale=None):
    """Best of {all-pairs weighted solution, minimal 3-pair solutions} by weighted median residual."""
    candidates = [_umeyama_batch(src[None], dst[None], w[None], fixed_scale=fixed_scale)]
    usable = np.flatnonzero(w > 0)
    if num_hypotheses > 0:
        # Weighted draws by inverting the cumulative weights; triples that repeat a pair are dropped below.
        cum = np.cumsum(w[usable])
        draws = np.searchsorted(cum, rng.random((num_hypotheses, 3)) * cum[-1], side="right")
        idx = usable[draws.clip(max=usable.size - 1)]
        tri_s, tri_d = src[idx], dst[idx]
        # A near-collinear (or repeated) triple gives an arbitrary rotation: keep triples whose area is not tiny.
        area = np.linalg.norm(np.cross(tri_s[:, 1] - tri_s[:, 0], tri_s[:, 2] - tri_s[:, 0]), axis=1)
        edge = np.max(np.linalg.norm(tri_s - tri_s[:, [1, 2, 0]], axis=2), axis=1)
        good = area > 1e-3 * edge**2
        if good.any():
            ones = np.ones((int(good.sum()), 3))
            candidates.append(_umeyama_batch(tri_s[good], tri_d[good], ones, fixed_scale=fixed_scale))
    scale = np.concatenate([c[0] for c in candidates])
    rot = np.concatenate([c[1] for c in candidates])
    trans = np.concatenate([c[2] for c in candidates])
    ok = np.isfinite(scale) & (scale > 0)
    scale, rot, trans = scale[ok], rot[ok], trans[ok]
    score_idx = usable if usable.size <= _SCORE_POINTS else rng.choice(usable, size=_SCORE_POINTS, replace=False)
    pred = scale[:, None, None] * np.einsum("kij,mj->kmi", rot, src[score_idx]) + trans[:, None]
    r = np.linalg.norm(dst[score_idx][None] - pred, axis=2)
    scores = np.array([_weighted_median(row, w[score_idx]) for row in r])
    best = int(np.argmin(scores))
    return float(scale[best]), rot[best], trans[best]


def _weighted_median(values: np.ndarray, w: np.ndarray) -> float:
    order = np.argsort(values)
    cum = np.cumsum(w[order])
    return float(values[order][np.searchsorted(cum, 0.5 * cum[-1])])
