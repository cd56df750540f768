# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The growing map: merged windows' world points accumulated into a bounded, voxel-downsampled coloured cloud,
plus PLY and TUM-trajectory export.

`GrowingMap.add(points, colors)` takes world-frame points of newly merged frames, already confidence-filtered
(the session adds the published cloud's points of the frames with parallax). Each batch is
voxel-downsampled with Open3D on a lattice fixed in the world (voxel corners at integer multiples of the voxel
size, so repeated additions never shift the grid), then merged into a table holding one point per voxel: the
mean position and colour of the batch centroids that fell into it (each window counts once per voxel).

Memory is bounded by ``max_points``: when a merge exceeds it, the voxel size grows by ``coarsen_factor`` and the
table is re-binned (counts-weighted, so means stay exact) until it fits. The whole map therefore stays
covered, at a coarser resolution; `voxel_size` says the current one. Points farther than about a million
voxels from the origin along an axis cannot be keyed and are dropped (counted in ``dropped_out_of_range``):
in VGGT's units (first window's mean point distance = 1) they are far outside any real scene.

Open3D is imported on first use (it takes about a second).

Frame of everything here: the chained world of `vggt_ros.world.World`, i.e. the OpenCV optical frame
(x right, y down, z forward) of the first image, at the first window's VGGT scale (not metres).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vggt_ros.dataset.ply import write_ply

# Voxel coordinates are packed into one int64 key, 21 bits per axis (signed range +-2**20).
_KEY_BITS = 21
_KEY_HALF = 1 << (_KEY_BITS - 1)
# The recent-voxel table is folded into the main one beyond max(this, an eighth of the main one).
_MIN_RECENT_VOXELS = 4096


@dataclass(frozen=True)
class MapConfig:
    """Attributes: voxel_size (world units, initial), max_points (budget), coarsen_factor (> 1)."""

    voxel_size: float = 0.01
    max_points: int = 500_000
    coarsen_factor: float = 1.5

    def __post_init__(self) -> None:
        if not (math.isfinite(self.voxel_size) and self.voxel_size > 0):
            raise ValueError(f"MapConfig.voxel_size must be a positive number of world units, got {self.voxel_size!r}")
        if isinstance(self.max_points, bool) or not isinstance(self.max_points, int) or self.max_points < 1:
            raise ValueError(f"MapConfig.max_points must be an int >= 1, got {self.max_points!r}")
        if not (math.isfinite(self.coarsen_factor) and self.coarsen_factor > 1.0):
            raise ValueError(f"MapConfig.coarsen_factor must be > 1, got {self.coarsen_factor!r}")


@dataclass
class _VoxelTable:
    """Voxels sorted by key: per voxel the sums of its batch centroids' positions and colours, and their count."""

    keys: np.ndarray
    sum_xyz: np.ndarray
    sum_rgb: np.ndarray
    count: np.ndarray

    @classmethod
    def empty(cls) -> "_VoxelTable":
        return cls(np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return int(self.keys.size)

    def accumulate(self, keys: np.ndarray, xyz: np.ndarray, rgb: np.ndarray) -> np.ndarray:
        """Add the rows whose key the table holds; returns the mask of the others."""
        pos = np.searchsorted(self.keys, keys)
        hit = pos < self.keys.size
        hit[hit] = self.keys[pos[hit]] == keys[hit]
        self.sum_xyz[pos[hit]] += xyz[hit]
        self.sum_rgb[pos[hit]] += rgb[hit]
        self.count[pos[hit]] += 1
        return ~hit

    def union(self, other: "_VoxelTable") -> "_VoxelTable":
        """Both tables (disjoint keys) as one sorted table."""
        order = np.argsort(np.concatenate((self.keys, other.keys)), kind="stable")
        return _VoxelTable(*(np.concatenate((a, b))[order] for a, b in zip(self.fields(), other.fields())))

    def fields(self) -> tuple[np.ndarray, ...]:
        return self.keys, self.sum_xyz, self.sum_rgb, self.count


class EmptyMapError(ValueError):
    """The map has no point yet, so there is nothing to save."""


def require_open3d() -> None:
    """Fail now, with the fix, when Open3D is missing: the map cannot be built without it.

    Raises:
        RuntimeError: Open3D cannot be imported.
    """
    try:
        import open3d  # noqa: F401
    except ImportError as err:
        raise RuntimeError(
            f"Open3D cannot be imported ({err}); the map needs it. Fix: pip install open3d "
            "(or open3d-cpu on a machine without a GPU)"
        ) from None


class GrowingMap:
    """See the module docstring. Not thread-safe: call from one thread (or hold a lock).

    New voxels first go to a small sorted table that is folded into the main one when it reaches an eighth of
    it: inserting into one large sorted table would copy all of it for every window, so a window would cost
    more the larger the map.
    """

    def __init__(self, config: MapConfig = MapConfig()) -> None:
        self.config = config
        # Bumped by every change (add, reset): a publisher republishes when it differs from what it sent.
        self.version = 0
        self._clear()

    def reset(self) -> None:
        """Empty map at the configured voxel size."""
        self._clear()
        self.version += 1

    def _clear(self) -> None:
        self.voxel_size = float(self.config.voxel_size)
        self._main = _VoxelTable.empty()
        self._recent = _VoxelTable.empty()
        self.dropped_out_of_range = 0

    def __len__(self) -> int:
        return len(self._main) + len(self._recent)

    def _table(self) -> _VoxelTable:
        """Every voxel in one sorted table (folds the recent voxels in)."""
        if len(self._recent):
            self._main, self._recent = self._main.union(self._recent), _VoxelTable.empty()
        return self._main

    @property
    def nbytes(self) -> int:
        """Bytes the map's tables hold."""
        return sum(a.nbytes for table in (self._main, self._recent) for a in table.fields())

    @property
    def points(self) -> np.ndarray:
        """``(N, 3)`` float32 world points, one per occupied voxel."""
        table = self._table()
        return (table.sum_xyz / table.count[:, None]).astype(np.float32)

    @property
    def observations(self) -> np.ndarray:
        """``(N,)`` float32: how many batches (merged windows) contributed to each point."""
        return self._table().count.astype(np.float32)

    @property
    def colors(self) -> np.ndarray:
        """``(N, 3)`` uint8 RGB of `points`."""
        table = self._table()
        return np.clip(np.round(table.sum_rgb / table.count[:, None]), 0, 255).astype(np.uint8)

    def add(self, points, colors) -> int:
        """Merge a batch; returns the number of map points afterwards.

        Args:
            points: ``(N, 3)`` world points (rows with NaN/Inf are skipped).
            colors: ``(N, 3)`` uint8 RGB, or float in [0, 1].
        """
        pts = np.asarray(points, dtype=np.float64)
        col = np.asarray(colors)
        if pts.ndim != 2 or pts.shape[1] != 3 or col.shape != pts.shape:
            raise ValueError(f"points and colors must both be (N, 3), got {pts.shape} and {col.shape}")
        if col.dtype == np.uint8:
            col = col.astype(np.float64)
        elif np.issubdtype(col.dtype, np.floating):
            col = np.clip(col.astype(np.float64), 0.0, 1.0) * 255.0
        else:
            raise TypeError(f"colors must be uint8 RGB or float RGB in [0, 1], got dtype {col.dtype}")
        finite = np.isfinite(pts).all(axis=1)
        pts, col = pts[finite], col[finite]
        # Before Open3D sees them: a batch spanning more than 2^31 voxels (one point at 1e12, a degenerate focal)
        # makes its down-sampling raise, after the world has merged the window.
        in_range = _in_key_range(pts, self.voxel_size)
        self.dropped_out_of_range += int((~in_range).sum())
        pts, col = pts[in_range], col[in_range]
        if len(pts) == 0:
            return len(self)
        centroids, centroid_rgb = _voxel_down_sample(pts, col, self.voxel_size)
        keys, in_range = _voxel_keys(centroids, self.voxel_size)
        assert in_range.all()  # centroids of in-range points stay in range
        self._merge(keys, centroids, centroid_rgb)
        while len(self) > self.config.max_points:
            self._coarsen()
        self.version += 1
        return len(self)

    def save_ply(self, path) -> None:
        """Write the map as a binary PLY with colours, atomically (`vggt_ros.dataset.ply.write_ply`).

        Raises:
            EmptyMapError: the map has no point yet. OSError: the file could not be written (naming it; the
            previous file is kept).
        """
        if len(self) == 0:
            raise EmptyMapError(
                "the map is empty (no window has been merged into it yet, or every merged point was filtered out: "
                "low confidence, not finite, or beyond the voxel keys' range); there is nothing to save"
            )
        write_ply(path, self.points, self.colors, comments=(f"vggt_ros map, voxel size {self.voxel_size!r}",))

    def _merge(self, keys: np.ndarray, xyz: np.ndarray, rgb: np.ndarray) -> None:
        """Add one batch's voxel centroids (keys unique within the batch), one count each."""
        fresh = self._main.accumulate(keys, xyz, rgb)
        if not fresh.any():
            return
        keys, xyz, rgb = keys[fresh], xyz[fresh], rgb[fresh]
        fresh = self._recent.accumulate(keys, xyz, rgb)
        if fresh.any():
            added = _VoxelTable(keys[fresh], xyz[fresh], rgb[fresh], np.ones(int(fresh.sum()), np.int64))
            self._recent = self._recent.union(added)
        if len(self._recent) > max(_MIN_RECENT_VOXELS, len(self._main) // 8):
            self._table()

    def _coarsen(self) -> None:
        table = self._table()
        self.voxel_size *= self.config.coarsen_factor
        mean_xyz = table.sum_xyz / table.count[:, None]
        keys, in_range = _voxel_keys(mean_xyz, self.voxel_size)
        unique, inverse = np.unique(keys, return_inverse=True)
        sum_xyz = np.zeros((unique.size, 3))
        sum_rgb = np.zeros((unique.size, 3))
        for axis in range(3):
            sum_xyz[:, axis] = np.bincount(inverse, weights=table.sum_xyz[:, axis], minlength=unique.size)
            sum_rgb[:, axis] = np.bincount(inverse, weights=table.sum_rgb[:, axis], minlength=unique.size)
        count = np.bincount(inverse, weights=table.count, minlength=unique.size).astype(np.int64)
        # Coarser keys only shrink in magnitude, so every voxel stays in range.
        assert in_range.all()
        self._main = _VoxelTable(unique, sum_xyz, sum_rgb, count)


def _in_key_range(points: np.ndarray, voxel: float) -> np.ndarray:
    """``(N,)`` bool: the points whose voxel has a key (within 2^20 voxels of the origin on every axis)."""
    return (np.abs(np.floor(points / voxel)) < _KEY_HALF).all(axis=1)


def _voxel_keys(points: np.ndarray, voxel: float) -> tuple[np.ndarray, np.ndarray]:
    cell = np.floor(points / voxel)
    in_range = _in_key_range(points, voxel)
    cell = np.where(in_range[:, None], cell, 0).astype(np.int64) + _KEY_HALF
    keys = (cell[:, 0] << (2 * _KEY_BITS)) | (cell[:, 1] << _KEY_BITS) | cell[:, 2]
    return keys, in_range


def _voxel_down_sample(points: np.ndarray, rgb: np.ndarray, voxel: float) -> tuple[np.ndarray, np.ndarray]:
    """Open3D voxel averaging on the world-fixed lattice; returns centroids ``(M, 3)`` and their RGB 0..255."""
    import open3d as o3d

    # Open3D anchors its grid at the cloud's minimum bound (corners at min - voxel / 2 + k * voxel). A sentinel
    # point half a voxel above a lattice corner, one cell below everything, pins the grid to the world lattice;
    # the sentinel sits alone in its voxel and is removed from the result.
    floor_cell = np.floor(points.min(axis=0) / voxel) - 1.0
    sentinel = (floor_cell + 0.5) * voxel
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.vstack((sentinel, points))))
    cloud.colors = o3d.utility.Vector3dVector(np.vstack((np.zeros(3), rgb / 255.0)))
    down = cloud.voxel_down_sample(voxel)
    centroids = np.asarray(down.points)
    keep = ~(centroids < (floor_cell + 1.0) * voxel).all(axis=1)
    return centroids[keep], np.asarray(down.colors)[keep] * 255.0
