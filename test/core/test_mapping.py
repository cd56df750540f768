# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""GrowingMap (world-fixed voxel lattice, budget, reset, PLY) and the TUM trajectory writer."""

import numpy as np
import pytest

from support.small_filesystem import digests, fill, small_filesystem
from vggt_ros.dataset.tum import write_tum_trajectory
from vggt_ros.geometry import quaternion_to_rotation_matrix
from vggt_ros.mapping import EmptyMapError, GrowingMap, MapConfig


def _voxel_means(points, colors, voxel):
    """Independent reference: per occupied lattice cell floor(p / voxel), the mean point and mean colour."""
    cells = np.floor(points / voxel).astype(np.int64)
    unique, inverse = np.unique(cells, axis=0, return_inverse=True)
    count = np.bincount(inverse)
    mean_p = np.stack([np.bincount(inverse, weights=points[:, k]) / count for k in range(3)], axis=1)
    mean_c = np.stack([np.bincount(inverse, weights=colors[:, k].astype(float)) / count for k in range(3)], axis=1)
    return unique, mean_p, mean_c


def _sorted_by_cell(points, voxel, *arrays):
    cells = np.floor(points / voxel).astype(np.int64)
    order = np.lexsort(cells.T[::-1])
    return (cells[order],) + tuple(a[order] for a in arrays)


def test_one_point_per_voxel_of_a_world_fixed_lattice_with_mean_position_and_colour():
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.73, 1.31, size=(20000, 3))
    colors = rng.integers(0, 256, size=(20000, 3), dtype=np.uint8)
    grid = GrowingMap(MapConfig(voxel_size=0.1))
    assert grid.add(points, colors) == len(grid)
    cells, mean_p, mean_c = _voxel_means(points, colors, 0.1)
    got_cells, got_p, got_c = _sorted_by_cell(grid.points.astype(float), 0.1, grid.points, grid.colors)
    ref_cells, ref_p, ref_c = _sorted_by_cell(mean_p, 0.1, mean_p, mean_c)
    assert np.array_equal(got_cells, cells[np.lexsort(cells.T[::-1])]) and np.array_equal(got_cells, ref_cells)
    assert np.allclose(got_p, ref_p, atol=1e-6)
    assert np.abs(got_c.astype(float) - ref_c).max() <= 0.5 + 1e-6


def test_batches_in_the_same_voxel_merge_and_each_counts_once():
    grid = GrowingMap(MapConfig(voxel_size=1.0))
    # First batch: two points in cell (0, 0, 0), the batch centroid is (0.2, 0.5, 0.5).
    grid.add(np.array([[0.1, 0.5, 0.5], [0.3, 0.5, 0.5]]), np.array([[0, 0, 0], [0, 0, 0]], dtype=np.uint8))
    # Second batch, another minimum bound (so Open3D's own grid would shift): same cell, and a new one.
    grid.add(np.array([[0.8, 0.5, 0.5], [-0.5, 0.5, 0.5]]), np.array([[200, 100, 50], [10, 20, 30]], dtype=np.uint8))
    assert len(grid) == 2
    order = np.argsort(grid.points[:, 0])
    assert np.allclose(grid.points[order], [[-0.5, 0.5, 0.5], [0.5, 0.5, 0.5]])
    assert np.array_equal(grid.colors[order], [[10, 20, 30], [100, 50, 25]])
    assert np.array_equal(grid.observations[order], [1, 2])


def test_many_batches_accumulate_like_a_plain_per_voxel_sum():
    """Tens of thousands of voxels over many batches (so new voxels are folded in several times) give, voxel for
    voxel, the mean of each batch's centroid in it: the same as a plain dictionary of sums."""
    voxel = 0.05
    rng = np.random.default_rng(3)
    grid = GrowingMap(MapConfig(voxel_size=voxel, max_points=10**6))
    sums: dict[tuple, list] = {}
    for batch in range(12):
        points = rng.uniform(-1.0, 1.0, size=(6000, 3)) + 0.3 * batch  # overlapping, drifting batches
        colors = rng.integers(0, 256, size=(6000, 3), dtype=np.uint8)
        grid.add(points, colors)
        cells, inverse = np.unique(np.floor(points / voxel).astype(np.int64), axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        size = np.bincount(inverse)
        centroid = np.stack([np.bincount(inverse, points[:, a]) for a in range(3)], axis=1) / size[:, None]
        for cell, mean in zip(map(tuple, cells), centroid):
            entry = sums.setdefault(cell, [np.zeros(3), 0])
            entry[0] += mean
            entry[1] += 1
    assert len(grid) == len(sums) > 20_000
    assert grid.nbytes == len(grid) * (8 + 24 + 24 + 8)  # key, position sum, colour sum, count per voxel
    expected_cells = np.array(list(sums))
    order = np.lexsort(expected_cells.T[::-1])
    mean_xyz = np.array([v[0] / v[1] for v in sums.values()])[order]
    found_cells = np.floor(grid.points.astype(np.float64) / voxel).astype(np.int64)
    found_order = np.lexsort(found_cells.T[::-1])
    assert np.array_equal(found_cells[found_order], expected_cells[order])
    np.testing.assert_allclose(grid.points[found_order], mean_xyz, atol=1e-6)
    counts = np.array([v[1] for v in sums.values()])[order]
    np.testing.assert_array_equal(grid.observations[found_order], counts)


def test_point_budget_coarsens_the_voxels_and_keeps_the_whole_map_covered():
    rng = np.random.default_rng(1)
    grid = GrowingMap(MapConfig(voxel_size=0.02, max_points=3000, coarsen_factor=1.5))
    regions = [np.array([x, 0.0, 0.0]) for x in range(0, 20, 2)]
    for centre in regions:
        grid.add(centre + rng.uniform(0, 1, size=(5000, 3)), rng.integers(0, 256, size=(5000, 3), dtype=np.uint8))
        assert len(grid) <= 3000
    assert grid.voxel_size > 0.02
    for centre in regions:  # nothing was dropped: every region still has points
        inside = np.all((grid.points >= centre - 1e-6) & (grid.points <= centre + 1 + 1e-6), axis=1)
        assert inside.sum() > 50


def test_coarsening_rebins_the_voxel_means():
    rng = np.random.default_rng(4)
    # Four points inside each of the 10 x 10 x 10 cells of 0.1.
    cells = np.stack(np.meshgrid(*[np.arange(10)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    points = (np.repeat(cells, 4, axis=0) + rng.uniform(0.05, 0.95, size=(4000, 3))) * 0.1
    colors = rng.integers(0, 256, size=(4000, 3), dtype=np.uint8)
    fine = GrowingMap(MapConfig(voxel_size=0.1))
    fine.add(points, colors)
    assert len(fine) == 1000
    budget = GrowingMap(MapConfig(voxel_size=0.1, max_points=999, coarsen_factor=2.0))
    budget.add(points, colors)
    assert budget.voxel_size == pytest.approx(0.2) and len(budget) == 125
    # Each coarse voxel holds the mean of the fine voxel means that fall into it (one batch: equal counts).
    _, ref_p, _ = _voxel_means(fine.points.astype(float), fine.colors, 0.2)
    _, got_p = _sorted_by_cell(budget.points.astype(float), 0.2, budget.points)
    _, ref_sorted = _sorted_by_cell(ref_p, 0.2, ref_p)
    assert np.allclose(got_p, ref_sorted, atol=1e-6)


def test_non_finite_points_are_skipped_and_bad_arguments_raise():
    grid = GrowingMap(MapConfig(voxel_size=0.5))
    points = np.array([[0.1, 0.1, 0.1], [np.nan, 0, 0], [np.inf, 1, 1], [3.0, 3.0, 3.0]])
    grid.add(points, np.full((4, 3), 0.5))  # float colours in [0, 1]
    assert len(grid) == 2 and np.isfinite(grid.points).all()
    assert np.array_equal(grid.colors, np.full((2, 3), 128))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        grid.add(np.zeros((4, 2)), np.zeros((4, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        grid.add(np.zeros((4, 3)), np.zeros((3, 3), dtype=np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        grid.add(np.zeros((4, 3)), np.zeros((4, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="voxel_size"):
        MapConfig(voxel_size=0.0)
    with pytest.raises(ValueError, match="max_points"):
        MapConfig(max_points=0)


def test_points_beyond_the_key_range_are_counted_not_wrapped():
    grid = GrowingMap(MapConfig(voxel_size=1e-3))
    grid.add(np.array([[0.0, 0.0, 0.0], [5e3, 0.0, 0.0]]), np.zeros((2, 3), dtype=np.uint8))
    assert len(grid) == 1 and grid.dropped_out_of_range == 1


def test_one_point_at_1e12_among_a_window_is_dropped_before_the_voxel_grid_sees_it():
    """A finite but huge depth (a degenerate focal, an exp activation on sky) spread one batch over 1e14 voxels:
    Open3D's down-sampling raised ("voxel_size is too small") after the world had merged the window."""
    grid = GrowingMap(MapConfig(voxel_size=0.01))
    rng = np.random.default_rng(0)
    room = rng.uniform(-2.0, 2.0, (500, 3))
    points = np.vstack((room, [[1e12, 0.0, 3.0]]))
    colours = np.full((len(points), 3), 128, np.uint8)
    grid.add(points, colours)
    assert grid.dropped_out_of_range == 1
    assert np.abs(grid.points).max() <= 2.0 + 0.01
    assert len(grid) == len(np.unique(np.floor(room / 0.01), axis=0))


def test_reset_empties_the_map_and_restores_the_voxel_size():
    grid = GrowingMap(MapConfig(voxel_size=0.01, max_points=100))
    grid.add(np.random.default_rng(0).uniform(size=(5000, 3)), np.zeros((5000, 3), dtype=np.uint8))
    assert grid.version == 1 and grid.voxel_size > 0.01
    grid.reset()
    assert len(grid) == 0 and grid.voxel_size == 0.01 and grid.points.shape == (0, 3)
    assert grid.version == 2  # a reset is a change a publisher must send


def test_save_ply_round_trips_points_and_colours(tmp_path):
    import open3d as o3d

    rng = np.random.default_rng(2)
    grid = GrowingMap(MapConfig(voxel_size=0.05))
    grid.add(rng.uniform(size=(3000, 3)), rng.integers(0, 256, size=(3000, 3), dtype=np.uint8))
    path = tmp_path / "map.ply"
    grid.save_ply(path)
    cloud = o3d.io.read_point_cloud(str(path))
    assert np.allclose(np.asarray(cloud.points), grid.points, atol=1e-6)
    assert np.array_equal(np.round(np.asarray(cloud.colors) * 255).astype(np.uint8), grid.colors)


def test_saving_an_empty_map_says_why_it_may_be_empty_and_writes_nothing(tmp_path):
    """Twenty windows whose every point was filtered out said "no window has been merged into it yet"."""
    grid = GrowingMap()
    for _ in range(20):
        grid.add(np.full((10, 3), np.nan), np.zeros((10, 3), np.uint8))
    with pytest.raises(EmptyMapError, match="the map is empty .* or every merged point was filtered out"):
        grid.save_ply(tmp_path / "map.ply")
    assert list(tmp_path.iterdir()) == []


def _ply_vertex_count_and_body(path) -> tuple[int, int]:
    """The vertex count the header promises and the bytes after the header (an independent reading of the file)."""
    data = path.read_bytes()
    header, _, body = data.partition(b"end_header\n")
    count = next(int(line.split()[2]) for line in header.decode().splitlines() if line.startswith("element vertex"))
    return count, len(body)


def test_a_save_on_a_full_disk_fails_naming_the_file_and_keeps_the_previous_files_whole(tmp_path, capfd):
    """The case of issue 19: Open3D's writer left a short map.ply on a full disk, said it succeeded, and printed
    "RPly: Failed writing" lines; the short file replaced the good one."""
    import open3d as o3d

    rng = np.random.default_rng(4)
    grid = GrowingMap(MapConfig(voxel_size=0.01))
    grid.add(rng.uniform(size=(500, 3)), rng.integers(0, 256, size=(500, 3), dtype=np.uint8))
    with small_filesystem(tmp_path / "disk", 400) as disk:
        map_path, trajectory_path = disk / "map.ply", disk / "trajectory.tum"
        grid.save_ply(map_path)
        write_tum_trajectory(trajectory_path, [0], np.eye(4)[None])
        fill(disk, leave_bytes=64 * 1024)
        saved = digests(disk)
        grid.add(rng.uniform(2.0, 3.0, size=(20000, 3)), rng.integers(0, 256, size=(20000, 3), dtype=np.uint8))
        with pytest.raises(OSError, match=f"could not write {map_path}: .*No space left on device"):
            grid.save_ply(map_path)
        stamps = np.arange(5000) * 10**9
        with pytest.raises(OSError, match=f"could not write {trajectory_path}: .*No space left on device"):
            write_tum_trajectory(trajectory_path, stamps, np.stack([np.eye(4)] * len(stamps)))
        assert digests(disk) == saved  # the previous files, and no temporary file
        assert len(o3d.io.read_point_cloud(str(map_path)).points) == 500
        (disk / "filler").unlink()
        grid.save_ply(map_path)  # with room again: the whole map, read back in full
        count, body = _ply_vertex_count_and_body(map_path)
        assert count == len(grid) > 20000 and body == count * 15
        assert len(o3d.io.read_point_cloud(str(map_path)).points) == len(grid)
    assert "RPly" not in capfd.readouterr().out


def test_tum_trajectory_lines_decode_to_the_written_poses(tmp_path):
    rng = np.random.default_rng(3)
    quats = rng.normal(size=(5, 4))
    rotations = quaternion_to_rotation_matrix(quats)
    poses = np.zeros((5, 4, 4))
    poses[:, :3, :3] = rotations
    poses[:, :3, 3] = rng.normal(size=(5, 3))
    poses[:, 3, 3] = 1
    stamps = 1_700_000_000_000_000_000 + np.array([0, 50_000_000, 100_000_000, 150_000_001, 10**9])
    path = tmp_path / "traj.tum"
    write_tum_trajectory(path, stamps, poses, segments=[0, 0, 0, 1, 1])
    lines = path.read_text().splitlines()
    comments = [line for line in lines if line.startswith("#")]
    assert any("optical frame of the first image" in c for c in comments)
    assert "# segment 0" in comments and "# segment 1" in comments
    rows = np.array([[float(v) for v in line.split()] for line in lines if not line.startswith("#")])
    assert rows.shape == (5, 8)
    # The stamps exactly as their integer nanoseconds (float seconds would give 1700000000.049999952).
    assert [line.split()[0] for line in lines if not line.startswith("#")] == [
        "1700000000.000000000",
        "1700000000.050000000",
        "1700000000.100000000",
        "1700000000.150000001",
        "1700000001.000000000",
    ]
    assert np.allclose(rows[:, 1:4], poses[:, :3, 3], atol=1e-8)
    assert np.allclose(quaternion_to_rotation_matrix(rows[:, 4:8]), rotations, atol=1e-7)
    assert np.allclose(np.linalg.norm(rows[:, 4:8], axis=1), 1.0)
    with pytest.raises(ValueError, match="world_from_camera"):
        write_tum_trajectory(path, stamps[:4], poses)
    with pytest.raises(ValueError, match="strictly increase"):  # two cameras' poses in one file: evo refuses it
        write_tum_trajectory(path, np.repeat(stamps[:2], 2), poses[:4])
    with pytest.raises(ValueError, match="integer nanoseconds"):
        write_tum_trajectory(path, stamps * 1e-9, poses)
