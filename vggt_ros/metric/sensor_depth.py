# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Depth-camera images (sensor_msgs/Image) -> metres, and onto the model's pixels.

`depth_to_metres` reads the two depth encodings of REP 118: ``16UC1`` (also published as ``mono16``) holds
millimetres as unsigned integers, 0 meaning no measurement; ``32FC1`` holds metres as floats, 0, NaN and +-inf
meaning no measurement (a negative depth is not a measurement either). Both become one float32 array in metres
with NaN wherever there is no measurement, so every later step has a single "no data" value that fails every
comparison. The buffer checks follow `vggt_ros.image_encoding.image_to_rgb` (same kinds of error, same
tolerance of padded rows), and `DepthFormatError` is an `ImageFormatError`, so a caller that already handles
colour-image errors handles these too.

`depth_to_model` moves a depth image onto the model image's pixels with `vggt_ros.preprocess.pixel_map`, the
same crop / pad and resize the colour image goes through. Each model pixel takes the depth of the camera pixel
nearest to its centre. Depth is never interpolated: between a foreground edge at 1 m and a wall at 4 m an
interpolated pixel would sit at 2.5 m, on no surface at all. The map is axis-aligned, so the nearest rows and
columns are found once per axis and the image is gathered with one index. Registration between the depth and
colour sensors is the driver's job: depth must arrive aligned to the colour image, pixel for pixel, which is
why a depth image of another size is refused rather than resized.
"""

from __future__ import annotations

import numpy as np

from vggt_ros.image_encoding import Buffer, ImageFormatError, pixel_rows
from vggt_ros.preprocess import PixelMap

# encoding -> (numpy type of one pixel without byte order, metres per stored unit)
_DEPTH_LAYOUTS: dict[str, tuple[str, float]] = {
    "16UC1": ("u2", 0.001),
    "mono16": ("u2", 0.001),
    "32FC1": ("f4", 1.0),
}

SUPPORTED_DEPTH_ENCODINGS = tuple(_DEPTH_LAYOUTS)


class DepthFormatError(ImageFormatError):
    """A depth image that cannot be used; ``kind`` is "encoding", "size", "step", "length" or "resolution"."""


def depth_to_metres(
    data: Buffer, height: int, width: int, step: int, encoding: str, is_bigendian: bool = False
) -> np.ndarray:
    """Decode a depth image buffer to metres.

    Args:
        data: the pixel bytes (bytes, bytearray, memoryview, array.array('B') as rclpy gives, or a uint8 array).
        height, width: image size in pixels.
        step: bytes per row, at least width * bytes per pixel (larger for padded rows).
        encoding: 16UC1 or mono16 (millimetres), or 32FC1 (metres).
        is_bigendian: the message's byte order flag.
    Returns:
        ``(H, W)`` float32 depth in metres, NaN where the sensor has no measurement (a new array).
    Raises:
        DepthFormatError (a ValueError): unknown encoding, empty image, step smaller than a row of pixels, or a
            buffer whose length is not height * step.
    """
    layout = _DEPTH_LAYOUTS.get(encoding)
    if layout is None:
        raise DepthFormatError(
            "encoding",
            f"unsupported depth encoding {encoding!r}; publish one of {', '.join(SUPPORTED_DEPTH_ENCODINGS)} "
            "(REP 118: 16UC1 in millimetres or 32FC1 in metres)",
        )
    pixel_type, metres_per_unit = layout
    pixel_dtype = np.dtype((">" if is_bigendian else "<") + pixel_type)
    rows = pixel_rows(
        data, height, width, step, pixel_dtype.itemsize, encoding, DepthFormatError, "depth image", "sensor"
    )
    # Without the padding (copied out only when rows are padded) the rows are contiguous: a view reinterprets them.
    stored = np.ascontiguousarray(rows).view(pixel_dtype)
    metres = stored.astype(np.float32)
    if metres_per_unit != 1.0:
        metres *= np.float32(metres_per_unit)
    # NaN and infinities fail both comparisons, so one mask catches every non-measurement.
    metres[~((metres > 0) & (metres < np.inf))] = np.nan
    return metres


def depth_to_model(depth_m: np.ndarray, pixel_map: PixelMap) -> np.ndarray:
    """The sensor depth at the model image's pixels (nearest camera pixel, never interpolated).

    Args:
        depth_m: ``(H, W)`` depth in metres of the camera image `pixel_map` was made for (NaN = none), registered
            to the colour image.
        pixel_map: the colour image's `vggt_ros.preprocess.PixelMap`.
    Returns:
        ``(h, w)`` float32 metres at the model pixels (``pixel_map.model_hw``); NaN in the padding, outside the
        image and where the sensor had no measurement.
    Raises:
        DepthFormatError: "size" for an array that is not one 2-D image, "resolution" for a depth image of
            another size than the colour image.
    """
    depth_m = np.asarray(depth_m)
    if depth_m.ndim != 2:
        raise DepthFormatError(
            "size",
            f"depth must be one (H, W) image in metres, got shape {depth_m.shape}; decode it with "
            "depth_to_metres first",
        )
    if tuple(depth_m.shape) != tuple(pixel_map.image_hw):
        raise DepthFormatError(
            "resolution",
            f"depth image is {depth_m.shape[1]}x{depth_m.shape[0]} (WxH) but the colour image is "
            f"{pixel_map.image_hw[1]}x{pixel_map.image_hw[0]}; publish depth registered to the colour image "
            "(for example the driver's aligned_depth_to_color topic)",
        )
    rows, row_inside = _nearest_pixels(pixel_map, axis=1)
    cols, col_inside = _nearest_pixels(pixel_map, axis=0)
    model = depth_m.astype(np.float32, copy=False)[rows[:, None], cols[None, :]]
    model[~(row_inside[:, None] & col_inside[None, :])] = np.nan
    return model


def _nearest_pixels(pixel_map: PixelMap, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Nearest camera pixel index of every model pixel centre along one axis (0 = x / columns, 1 = y / rows), and
    whether that centre lies on the camera image at all (not in the padding, not cropped away).

    Returns two ``(n,)`` arrays: int64 indices clipped into the image (usable as an index), and the bool mask.
    """
    model_side = pixel_map.model_hw[1 - axis]
    image_side = pixel_map.image_hw[1 - axis]
    centres = (np.arange(model_side, dtype=np.float64) - pixel_map.offset[axis]) / pixel_map.scale[axis]
    nearest = np.floor(centres + 0.5).astype(np.int64)
    inside = (nearest >= 0) & (nearest < image_side)
    return np.clip(nearest, 0, image_side - 1), inside
