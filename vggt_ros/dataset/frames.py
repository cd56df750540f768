# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The input of a dataset export: one reconstructed image as `ExportFrame`, and its model-image <-> camera-image
pixel geometry.

A frame carries what the dataset writers need as host numpy arrays (the caller copies device tensors once), so
the exporters never touch the pipeline. Everything is validated once, here, so the writers can trust shapes and
conventions:

* depth, confidence and colours are at the MODEL image's resolution (what VGGT predicted), and ``pixel_map``
  says where those pixels sit in the camera image (crop or pad, then resize);
* intrinsics are the model image's, in VGGT's pixel-index convention (integer = pixel centre). Dataset formats
  (COLMAP, nerfstudio) describe the CAMERA image in the pixel-corner convention (the top-left corner of the
  top-left pixel is (0, 0), so a pixel centre is at index + 0.5); `ExportFrame.corner_intrinsics` and
  `ExportFrame.corner_pixels` are the only places that conversion happens;
* ``world_from_camera`` is the OpenCV optical frame (x right, y down, z forward) in the world.

`resample_to_image` and `model_pixels_in_image` are the two pixel-grid relations the writers need: which model
pixel is nearest to each camera-image pixel (depth files at the image's resolution), and which model pixels show
the camera image at all (pad mode adds white borders that show nothing).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from vggt_ros.preprocess import PixelMap

# A rotation block further than this from orthonormal (max |R^T R - I|) is not a camera pose.
_ROTATION_TOLERANCE = 1e-5


@dataclass(frozen=True, eq=False)
class ExportFrame:
    """One reconstructed image, ready to export.

    Attributes:
        name: the image file's name relative to the dataset's ``images/`` folder, e.g. "000012.jpg" or
            "cam0/000012.jpg" (POSIX separators; no spaces, which COLMAP's text format cannot hold).
        camera: index of the camera that took it (0 for a single camera).
        stamp_ns: capture time, nanoseconds.
        pixel_map: where the model image's pixels lie in the camera image (`vggt_ros.preprocess.pixel_map`).
        world_from_camera: ``(4, 4)`` float64 rigid pose of the OpenCV optical frame in the world (metres when the
            run is metric, else VGGT world units).
        intrinsics: ``(3, 3)`` pinhole matrix of the MODEL image, pixel-index convention, no skew.
        depth: ``(h, w)`` float32 depth along the optical axis at the model pixels, world units, NaN where unusable.
        confidence: ``(h, w)`` float32 depth confidence (VGGT's: > 1, larger is surer).
        colors: ``(h, w, 3)`` uint8 RGB model image.
    """

    name: str
    camera: int
    stamp_ns: int
    pixel_map: PixelMap
    world_from_camera: np.ndarray
    intrinsics: np.ndarray
    depth: np.ndarray
    confidence: np.ndarray
    colors: np.ndarray

    def __post_init__(self) -> None:
        check_relative_name(self.name, "frame name")
        where = f"frame {self.name!r}"
        for field_name in ("camera", "stamp_ns"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise ValueError(f"{where}: {field_name} must be an int >= 0, got {value!r}")
        if not isinstance(self.pixel_map, PixelMap):
            raise ValueError(
                f"{where}: pixel_map must be a vggt_ros.preprocess.PixelMap (from preprocess.pixel_map), "
                f"got {type(self.pixel_map).__name__}"
            )
        _check_pose(self.world_from_camera, where)
        _check_intrinsics(self.intrinsics, where)
        model_hw = tuple(self.pixel_map.model_hw)
        for field_name, expected, dtype_kind in (
            ("depth", model_hw, "f"),
            ("confidence", model_hw, "f"),
            ("colors", (*model_hw, 3), "u1"),
        ):
            array = getattr(self, field_name)
            if not isinstance(array, np.ndarray):
                raise ValueError(f"{where}: {field_name} must be a numpy array, got {type(array).__name__}")
            if array.shape != expected:
                raise ValueError(
                    f"{where}: {field_name} has shape {array.shape} but its pixel_map's model image is "
                    f"{model_hw[0]}x{model_hw[1]} (HxW), so {field_name} must be {expected}; pass the model-resolution "
                    f"prediction with the pixel_map of the preprocessing that produced it"
                )
            if (dtype_kind == "f" and array.dtype.kind != "f") or (dtype_kind == "u1" and array.dtype != np.uint8):
                wanted = "a floating-point" if dtype_kind == "f" else "uint8"
                raise ValueError(f"{where}: {field_name} must be {wanted} array, got dtype {array.dtype}")

    @property
    def image_hw(self) -> tuple[int, int]:
        """(H, W) of the camera image, pixels."""
        return int(self.pixel_map.image_hw[0]), int(self.pixel_map.image_hw[1])

    @property
    def stem(self) -> str:
        """`frame_stem` of the name: per-frame files are named after it."""
        return frame_stem(self.name)

    def corner_intrinsics(self) -> np.ndarray:
        """``(3, 3)`` pinhole matrix of the CAMERA image in the pixel-corner convention (COLMAP, nerfstudio):
        the model intrinsics mapped back through the resize and crop / pad, principal point + 0.5 pixel."""
        intrinsics = self.pixel_map.intrinsics_to_image(self.intrinsics)
        intrinsics[:2, 2] += 0.5
        return intrinsics

    def corner_pixels(self, model_uv: np.ndarray) -> np.ndarray:
        """``(N, 2)`` model pixel coordinates (u, v; index convention) -> the camera image's pixel-corner
        coordinates, where `corner_intrinsics` projects the same rays."""
        return self.pixel_map.to_image(model_uv) + 0.5


def frame_stem(name: str) -> str:
    """A frame name without its suffix ("cam0/000012.jpg" -> "cam0/000012"): its depth and confidence files are
    named after it, so two frames of a dataset must not share one."""
    return PurePosixPath(name).with_suffix("").as_posix()


def check_relative_name(name: str, what: str) -> None:
    """Raise ValueError unless ``name`` is a relative POSIX path of printable, space-free parts, none "." or "..".

    Such a name stays inside the dataset folder and survives COLMAP's space-separated text format.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what} must be a non-empty string, got {name!r}")
    bad = [ch for ch in name if ch.isspace() or not ch.isprintable() or ch == "\\"]
    if bad:
        raise ValueError(
            f"{what} {name!r} contains {sorted(set(bad))!r}; use a name without spaces, control characters or "
            f"backslashes (COLMAP's text format splits names at spaces; separate folders with '/')"
        )
    parts = name.split("/")
    if name.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError(
            f"{what} {name!r} must be a relative path inside the dataset folder (no leading '/', no empty, '.' or "
            f"'..' parts), e.g. '000012.jpg' or 'cam0/000012.jpg'"
        )


def _check_pose(pose: np.ndarray, where: str) -> None:
    if not isinstance(pose, np.ndarray) or pose.shape != (4, 4) or not np.isfinite(pose).all():
        raise ValueError(
            f"{where}: world_from_camera must be a finite (4, 4) numpy array, got "
            f"{getattr(pose, 'shape', type(pose).__name__)}"
        )
    rotation = pose[:3, :3].astype(np.float64)
    orthonormal_error = float(np.abs(rotation.T @ rotation - np.eye(3)).max())
    if orthonormal_error > _ROTATION_TOLERANCE or np.linalg.det(rotation) < 0 or not np.allclose(pose[3], (0, 0, 0, 1)):
        raise ValueError(
            f"{where}: world_from_camera is not a rigid pose (rotation off orthonormal by {orthonormal_error:.2g}, "
            f"det {np.linalg.det(rotation):.6g}, last row {pose[3].tolist()}); pass [[R, t], [0, 0, 0, 1]] with a "
            f"proper rotation R (a similarity's scale belongs in the depth, see vggt_ros.geometry.moved_pose)"
        )


def _check_intrinsics(intrinsics: np.ndarray, where: str) -> None:
    if not isinstance(intrinsics, np.ndarray) or intrinsics.shape != (3, 3) or not np.isfinite(intrinsics).all():
        raise ValueError(
            f"{where}: intrinsics must be a finite (3, 3) numpy array, got "
            f"{getattr(intrinsics, 'shape', type(intrinsics).__name__)}"
        )
    fx, fy = float(intrinsics[0, 0]), float(intrinsics[1, 1])
    is_pinhole = intrinsics[0, 1] == 0 and intrinsics[1, 0] == 0 and np.array_equal(intrinsics[2], (0.0, 0.0, 1.0))
    if not (fx > 0 and fy > 0 and is_pinhole):
        raise ValueError(
            f"{where}: intrinsics must be a pinhole matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0 "
            f"(COLMAP's PINHOLE model has no skew), got {intrinsics.tolist()}"
        )


def nearest_model_pixels(pixel_map: PixelMap) -> tuple[np.ndarray, np.ndarray]:
    """For every camera-image row and column, the nearest model-image row and column, -1 where none.

    The map is axis-aligned, so the pixel grid factorises: ``(H,)`` rows and ``(W,)`` columns, int64. A
    camera pixel has no model pixel when the crop cut it away: its centre maps outside the model image, and it
    holds no model pixel's centre either. One whose centre maps just outside but that holds the edge model pixel's
    centre (an image enlarged to the model size: a camera pixel spans several model pixels) takes that one, where
    the exports' observations of it land (`ExportFrame.corner_pixels`).
    """
    nearest = []
    for axis, image_side, model_side in (
        (1, pixel_map.image_hw[0], pixel_map.model_hw[0]),
        (0, pixel_map.image_hw[1], pixel_map.model_hw[1]),
    ):
        scale = pixel_map.scale[axis]
        model_coordinate = scale * np.arange(image_side) + pixel_map.offset[axis]
        index = np.floor(model_coordinate + 0.5).astype(np.int64)
        # Camera pixel c holds model centre k where k - m(c) lies in [-scale / 2, scale / 2): floor(corner) = c.
        index[(index >= model_side) & (model_coordinate - (model_side - 1) <= scale / 2)] = model_side - 1
        index[(index < 0) & (-model_coordinate < scale / 2)] = 0
        nearest.append(np.where((index >= 0) & (index < model_side), index, -1))
    return nearest[0], nearest[1]


def resample_to_image(pixel_map: PixelMap, model_values: np.ndarray, fill) -> np.ndarray:
    """``(h, w, ...)`` values at the model pixels -> ``(H, W, ...)`` at the camera pixels, nearest neighbour.

    Nearest neighbour keeps every value a real prediction: interpolating depth would invent surfaces between
    a foreground edge and the background. Camera pixels the crop removed get ``fill``.
    """
    rows, columns = nearest_model_pixels(pixel_map)
    resampled = model_values[np.ix_(np.maximum(rows, 0), np.maximum(columns, 0))]
    outside = (rows < 0)[:, None] | (columns < 0)[None, :]
    resampled[outside] = fill
    return resampled


def model_pixels_in_image(pixel_map: PixelMap) -> np.ndarray:
    """``(h, w)`` bool: model pixels whose centre lies inside the camera image (False on pad mode's borders)."""
    top, bottom, left, right = pixel_map.image_box()
    inside = np.zeros(pixel_map.model_hw, dtype=bool)
    inside[top:bottom, left:right] = True
    return inside


def resampled_model_pixels(pixel_map: PixelMap, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``(h, w)`` bool: model pixels that `resample_to_image` gives some camera pixel, the values the per-frame
    files show (``rows``, ``columns``: `nearest_model_pixels` of ``pixel_map``). All of them where the camera image
    is at least the model's size; about one in (model / camera size) where the model image enlarges it."""
    shown = np.zeros(pixel_map.model_hw, dtype=bool)
    shown[np.ix_(rows[rows >= 0], columns[columns >= 0])] = True
    return shown
