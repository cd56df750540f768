# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Robust Sim(3) estimation against known ground truth: exact data, noise, 30 % gross outliers, weights, errors."""

import numpy as np
import pytest

from vggt_ros.world.alignment import DegenerateAlignmentError, estimate_depth_scale, estimate_sim3, weighted_umeyama


def _random_rotation(rng):
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    x, y, z, w = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _problem(rng, n=2000, noise=0.0, outlier_fraction=0.0):
    """src, dst, (scale, R, t), outlier mask with dst = s R src + t (+ noise in dst units), outliers far off."""
    scale = 10 ** rng.uniform(-1, 1)
    rot = _random_rotation(rng)
    trans = rng.normal(size=3) * 5
    src = rng.normal(size=(n, 3)) * [3.0, 2.0, 1.0] + rng.normal(size=3)
    dst = scale * src @ rot.T + trans + rng.normal(size=(n, 3)) * noise * scale
    outliers = rng.random(n) < outlier_fraction
    # Gross outliers: anywhere in a box several times the cloud's extent.
    dst[outliers] = trans + rng.uniform(-15, 15, size=(int(outliers.sum()), 3)) * scale
    return src, dst, (scale, rot, trans), outliers


def _errors(estimate, truth):
    s, r, t = estimate[:3]
    s0, r0, t0 = truth
    # Rotation angle between r and r0 from the Frobenius distance (accurate near zero, unlike arccos).
    angle = np.degrees(2 * np.arcsin(min(1.0, np.linalg.norm(r - r0) / (2 * np.sqrt(2)))))
    return abs(s / s0 - 1), angle, np.linalg.norm(t - t0) / s0


@pytest.mark.parametrize("seed", range(10))
def test_exact_correspondences_give_the_exact_similarity(seed):
    src, dst, truth, _ = _problem(np.random.default_rng(seed), n=50)
    scale, rot, trans, info = estimate_sim3(src, dst)
    ds, angle, dt = _errors((scale, rot, trans), truth)
    assert ds < 1e-9 and angle < 1e-6 and dt < 1e-8
    assert np.allclose(scale * src @ rot.T + trans, dst, atol=1e-8 * truth[0])
    assert info.inlier_ratio == 1.0 and info.residual < 1e-8 * truth[0]
    assert np.linalg.det(rot) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(20))
def test_thirty_percent_gross_outliers_with_noise(seed):
    rng = np.random.default_rng(100 + seed)
    src, dst, truth, outliers = _problem(rng, n=2000, noise=0.01, outlier_fraction=0.3)
    scale, rot, trans, info = estimate_sim3(src, dst)
    ds, angle, dt = _errors((scale, rot, trans), truth)
    # 1400 inliers with 1 % noise (relative to the cloud's ~2-unit spread): errors of order 0.01 / sqrt(1400).
    assert ds < 2e-3 and angle < 0.1 and dt < 5e-3
    # The outliers are found: the inlier set is (almost exactly) the true one.
    assert 0.62 < info.inlier_ratio < 0.72
    assert (info.inlier_mask & outliers).sum() <= 5
    assert (~info.inlier_mask & ~outliers).sum() <= 0.05 * (~outliers).sum()


def test_the_outliers_do_break_plain_least_squares():
    src, dst, truth, _ = _problem(np.random.default_rng(7), n=2000, noise=0.01, outlier_fraction=0.3)
    ds, angle, dt = _errors(weighted_umeyama(src, dst), truth)
    assert ds > 0.05 or angle > 5 or dt > 0.5
    ds, angle, dt = _errors(estimate_sim3(src, dst), truth)
    assert ds < 2e-3 and angle < 0.1


def test_residual_is_the_inlier_rms_in_destination_units():
    rng = np.random.default_rng(3)
    n, sigma = 20000, 0.02
    src = rng.normal(size=(n, 3))
    dst = src + rng.normal(size=(n, 3)) * sigma
    _, _, _, info = estimate_sim3(src, dst)
    # Residual norms of 3-D Gaussian noise have RMS sqrt(3) sigma; the 3-sigma inlier cut trims a little.
    assert 1.4 * sigma < info.residual < np.sqrt(3) * sigma
    assert info.sigma == pytest.approx(sigma, rel=0.05)
    _, _, _, info_scaled = estimate_sim3(src, 10 * dst)
    assert info_scaled.residual == pytest.approx(10 * info.residual, rel=1e-6)
    # An explicit threshold defines the inliers (and leaves the estimate alone).
    s_a, r_a, t_a, tight = estimate_sim3(src, dst, inlier_threshold=sigma)
    s_b, r_b, t_b, _ = estimate_sim3(src, dst)
    assert tight.inlier_threshold == sigma and tight.inlier_ratio < 0.25
    assert s_a == s_b and np.array_equal(r_a, r_b) and np.array_equal(t_a, t_b)


def test_weights_select_the_pairs_that_count():
    # 60 % of the pairs are corrupted (beyond any robust loss), but their weight is zero.
    rng = np.random.default_rng(11)
    src, dst, truth, _ = _problem(rng, n=1000, noise=0.005)
    bad = rng.random(1000) < 0.6
    dst[bad] = rng.normal(size=(int(bad.sum()), 3)) * 50
    weights = np.where(bad, 0.0, rng.uniform(1.0, 5.0, size=1000))
    scale, rot, trans, info = estimate_sim3(src, dst, weights)
    ds, angle, _ = _errors((scale, rot, trans), truth)
    assert ds < 2e-3 and angle < 0.1
    assert not info.inlier_mask[bad].any()
    assert info.inlier_ratio > 0.95  # among the pairs with positive weight


def test_symmetric_scale_is_unbiased_when_both_sides_are_noisy():
    # Two noisy copies of one cloud (as two VGGT windows of the same frames): the true scale is 1.
    rng = np.random.default_rng(5)
    truth = rng.normal(size=(20000, 3))
    src = truth + rng.normal(size=truth.shape) * 0.1
    dst = truth + rng.normal(size=truth.shape) * 0.1
    scale, _, _, _ = estimate_sim3(src, dst)
    umeyama_scale, _, _ = weighted_umeyama(src, dst)
    assert abs(scale - 1) < 2e-3
    # Umeyama's scale shrinks by about sigma^2 / var = 0.01 / (1.01): the bias chaining must avoid.
    assert 0.985 < umeyama_scale < 0.995


def test_planar_points_are_not_degenerate_and_reflections_are_not_returned():
    rng = np.random.default_rng(2)
    src = np.column_stack((rng.normal(size=(100, 2)), np.zeros(100)))
    rot = _random_rotation(rng)
    scale, r, t, _ = estimate_sim3(src, 2.0 * src @ rot.T + 1.0)
    assert scale == pytest.approx(2.0) and np.allclose(r, rot, atol=1e-9)
    # dst mirrored: the best proper rotation is returned, never a reflection.
    mirrored = rng.normal(size=(100, 3)) * [3, 2, 1]
    _, r, _, _ = estimate_sim3(mirrored, mirrored * [1, 1, -1])
    assert np.linalg.det(r) == pytest.approx(1.0)


def test_same_seed_same_answer():
    src, dst, _, _ = _problem(np.random.default_rng(9), n=500, noise=0.01, outlier_fraction=0.3)
    a = estimate_sim3(src, dst, seed=4)
    b = estimate_sim3(src, dst, seed=4)
    assert a[0] == b[0] and np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])


def test_malformed_input_raises_value_error_saying_what_is_wrong():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(10, 3))
    with pytest.raises(ValueError, match="at least 3 point pairs"):
        estimate_sim3(src[:2], src[:2])
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        estimate_sim3(src, src[:, :2])
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        estimate_sim3(src, src[:9])
    nan = src.copy()
    nan[4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN/Inf.*row 4"):
        estimate_sim3(src, nan)
    inf = src.copy()
    inf[2, 0] = np.inf
    with pytest.raises(ValueError, match="NaN/Inf"):
        estimate_sim3(inf, src)
    with pytest.raises(ValueError, match="positive weight"):
        estimate_sim3(src, src, np.zeros(10))
    with pytest.raises(ValueError, match="non-negative"):
        estimate_sim3(src, src, -np.ones(10))
    with pytest.raises(ValueError, match="shape"):
        estimate_sim3(src, src, np.ones(9))


def test_degenerate_geometry_raises_its_own_value_error():
    rng = np.random.default_rng(0)
    line = np.outer(rng.normal(size=50), [1.0, 2.0, -1.0]) + [0.5, 0.0, 3.0]
    cloud = rng.normal(size=(50, 3))
    with pytest.raises(DegenerateAlignmentError, match="collinear"):
        estimate_sim3(line, cloud)
    with pytest.raises(DegenerateAlignmentError, match="collinear"):
        estimate_sim3(cloud, line)
    with pytest.raises(DegenerateAlignmentError, match="coincide"):
        estimate_sim3(cloud, np.tile([1.0, 2.0, 3.0], (50, 1)))
    # Only the weighted pairs count: three weighted points on a line are degenerate even in a full cloud.
    weights = np.zeros(50)
    weights[:3] = 1.0
    collinear_three = cloud.copy()
    collinear_three[:3] = [[0, 0, 0], [1, 1, 1], [2, 2, 2]]
    with pytest.raises(DegenerateAlignmentError):
        estimate_sim3(collinear_three, cloud, weights)
    assert issubclass(DegenerateAlignmentError, ValueError)


@pytest.mark.parametrize("side", ["src", "dst"])
def test_one_far_stray_point_neither_makes_the_cloud_degenerate_nor_moves_the_fit(side):
    """One pair at 1e12 (a degenerate depth with full confidence) dominated the point covariance, so a full 3-D
    cloud read as "collinear" and the whole window was refused. Degeneracy is the bulk's property."""
    src, dst, truth, _ = _problem(np.random.default_rng(5), n=2000, noise=0.01)
    stray = {"src": src, "dst": dst}[side]
    stray[17] = [1e12, -3e11, 2e12]
    scale, rot, trans, info = estimate_sim3(src, dst)
    ds, angle, dt = _errors((scale, rot, trans), truth)
    assert ds < 2e-3 and angle < 0.1 and dt < 5e-3
    assert not info.inlier_mask[17] and info.converged


def test_a_collinear_bulk_is_degenerate_whatever_a_few_far_points_span():
    """The converse: a line of points plus two far strays is no cloud; the strays alone would decide the
    rotation about the line."""
    rng = np.random.default_rng(1)
    line = np.outer(rng.normal(size=200), [1.0, 2.0, -1.0]) + [0.5, 0.0, 3.0]
    line[:2] = [[1e6, 0.0, 0.0], [0.0, 1e6, 0.0]]
    with pytest.raises(DegenerateAlignmentError, match="collinear"):
        estimate_sim3(line, rng.normal(size=(200, 3)))


def test_fixed_scale_estimates_only_rotation_and_translation():
    src, dst, (scale, rot, trans), _ = _problem(np.random.default_rng(21), n=2000, noise=0.01, outlier_fraction=0.3)
    s, r, t, info = estimate_sim3(src, dst, fixed_scale=scale)
    assert s == scale
    ds, angle, dt = _errors((s, r, t), (scale, rot, trans))
    assert angle < 0.1 and dt < 5e-3 and 0.62 < info.inlier_ratio < 0.72
    # A wrong fixed scale is kept as given (and shows up as a poor fit), not silently replaced.
    s, _, _, bad = estimate_sim3(src, dst, fixed_scale=1.2 * scale)
    assert s == 1.2 * scale and bad.residual > 3 * info.residual
    with pytest.raises(ValueError, match="fixed_scale"):
        estimate_sim3(src, dst, fixed_scale=0.0)


def test_depth_scale_from_log_ratios_survives_outliers_and_ignores_bad_pairs():
    rng = np.random.default_rng(8)
    src = rng.uniform(0.5, 5.0, size=5000)
    dst = 2.5 * src * np.exp(rng.normal(size=5000) * 0.015)
    wild = rng.random(5000) < 0.3
    dst[wild] *= np.exp(rng.normal(size=int(wild.sum())) * 1.0)
    dst[:10] = [np.nan, np.inf, -1.0, 0.0, 1e9, 1e-9, np.nan, 3.0, 3.0, 3.0]
    assert estimate_depth_scale(dst, src) == pytest.approx(2.5, rel=1e-3)
    # Weights pick the pairs: the same data with the wild pairs at zero weight gives a tighter answer.
    weights = np.where(wild, 0.0, 1.0)
    assert estimate_depth_scale(dst, src, weights) == pytest.approx(2.5, rel=5e-4)
    with pytest.raises(ValueError, match="at least 3 pixel pairs"):
        estimate_depth_scale(np.array([1.0, np.nan, -2.0, 4.0]), np.ones(4))
    with pytest.raises(ValueError, match=r"\(N,\)"):
        estimate_depth_scale(np.ones(4), np.ones(5))
