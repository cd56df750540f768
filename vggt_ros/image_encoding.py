# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""sensor_msgs/Image-style buffers -> (H, W, 3) uint8 RGB numpy arrays, without cv_bridge and without rclpy.

The caller passes the message fields as plain values (`data`, `height`, `width`, `step`, `encoding`), so bag
readers and tests use the same code as the node. For the RGB and grey layouts the result is a view on `data`: no
pixel is copied. bgr8 / bgra8 become channel-reversed views (negative stride), rgba8 / bgra8 drop alpha by slicing,
mono8 is broadcast to three equal channels (a read-only view). `step` may exceed `width * bytes_per_pixel` (padded
rows, allowed by sensor_msgs/Image).

Two families are converted into a new array, as cv_bridge's conversion to rgb8 converts them:
- YUV 4:2:2, what USB (UVC) cameras send: ``yuv422`` / ``uyvy`` (U Y0 V Y1) and ``yuv422_yuy2`` / ``yuyv``
  (Y0 U Y1 V), BT.601 with the video range (Y 16..235), each U / V pair shared by its two pixels;
- 8-bit Bayer mosaics, what machine-vision cameras send before image_proc: ``bayer_rggb8``, ``bayer_bggr8``,
  ``bayer_gbrg8``, ``bayer_grbg8`` (the colours of the top-left 2x2 block, row by row), by bilinear interpolation
  of each colour's neighbours (the sampled colour of each pixel is kept as it is).
"""

from __future__ import annotations

import array
from typing import Union

import numpy as np

# encoding -> (bytes per pixel, whether the colour channels are stored blue first)
_LAYOUTS: dict[str, tuple[int, bool]] = {
    "rgb8": (3, False),
    "bgr8": (3, True),
    "rgba8": (4, False),
    "bgra8": (4, True),
    "mono8": (1, False),
}

# YUV 4:2:2 encoding -> byte offsets of (Y0, U, Y1, V) in each 4-byte pair of pixels.
_YUV422: dict[str, tuple[int, int, int, int]] = {
    "yuv422": (1, 0, 3, 2),
    "uyvy": (1, 0, 3, 2),
    "yuv422_yuy2": (0, 1, 2, 3),
    "yuyv": (0, 1, 2, 3),
}
# Bayer encoding -> the colour (0 red, 1 green, 2 blue) at (even row, even column), (even, odd), (odd, even) and
# (odd, odd).
_BAYER: dict[str, tuple[int, int, int, int]] = {
    "bayer_rggb8": (0, 1, 1, 2),
    "bayer_bggr8": (2, 1, 1, 0),
    "bayer_gbrg8": (1, 2, 0, 1),
    "bayer_grbg8": (1, 0, 2, 1),
}

SUPPORTED_ENCODINGS = (*_LAYOUTS, *_YUV422, *_BAYER)
BAYER_ENCODINGS = tuple(_BAYER)


class ImageFormatError(ValueError):
    """An image that cannot be read or used; ``kind`` names the problem, the key under which readers count it.

    "encoding", "size", "step" or "length" here; "format" and "corrupt" (`vggt_ros.compressed_image`), "too_large"
    (`vggt_ros.image_limits`) and "too_elongated" (`vggt_ros.preprocess`, no model input can be made of it).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


Buffer = Union[bytes, bytearray, memoryview, np.ndarray, array.array]


def pixel_rows(
    data: Buffer,
    height: int,
    width: int,
    step: int,
    bytes_per_pixel: int,
    encoding: str,
    error: type[ImageFormatError] = ImageFormatError,
    what: str = "image",
    source: str = "camera",
) -> np.ndarray:
    """``(H, width * bytes_per_pixel)`` uint8 view of an image buffer's pixel bytes, row padding left out.

    The checks every sensor_msgs/Image-style buffer needs, for colour images and depth images alike; ``error``,
    ``what`` and ``source`` name them in the messages ("depth image", "sensor").

    Raises:
        ``error`` (kind "size", "step" or "length"): zero-size image, step smaller than a row of pixels, or a
            buffer whose length is not height * step.
    """
    if height <= 0 or width <= 0:
        raise error("size", f"{what} is empty ({width}x{height} pixels, WxH); the {source} sent no pixels")
    row_bytes = width * bytes_per_pixel
    if step < row_bytes:
        raise error(
            "step",
            f"{what} step {step} is smaller than width {width} x {bytes_per_pixel} bytes per pixel ({encoding}) "
            f"= {row_bytes}; the message header does not describe its pixels",
        )
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size != height * step:
        raise error(
            "length",
            f"{what} data has {buffer.size} bytes but height {height} x step {step} = {height * step}; "
            "the message is truncated or its step is wrong",
        )
    return buffer.reshape(height, step)[:, :row_bytes]


def image_to_rgb(data: Buffer, height: int, width: int, step: int, encoding: str) -> np.ndarray:
    """View a raw image buffer as RGB.

    Args:
        data: the pixel bytes (bytes, bytearray, memoryview, array.array('B') as rclpy gives, or a uint8 array).
        height, width: image size in pixels.
        step: bytes per row, at least width * bytes_per_pixel.
        encoding: one of `SUPPORTED_ENCODINGS` (see the module docstring).
    Returns:
        ``(H, W, 3)`` uint8 RGB: for rgb8, bgr8, rgba8, bgra8 and mono8 a view on ``data`` (read-only when ``data``
        is immutable or for mono8), for YUV 4:2:2 and Bayer a new array.
    Raises:
        ImageFormatError (a ValueError): unknown encoding, zero-size image, step smaller than a row of
            pixels, a buffer whose length is not height * step, or a YUV 4:2:2 image of odd width (kind "size").
    """
    if encoding in _YUV422:
        if width % 2:
            raise ImageFormatError("size", f"{encoding} image of odd width {width}: its pixels come in pairs")
        pairs = pixel_rows(data, height, width, step, 2, encoding).reshape(height, width // 2, 4)
        return _yuv422_to_rgb(pairs, _YUV422[encoding])
    if encoding in _BAYER:
        return demosaic(pixel_rows(data, height, width, step, 1, encoding), encoding)
    layout = _LAYOUTS.get(encoding)
    if layout is None:
        raise ImageFormatError(
            "encoding",
            f"unsupported image encoding {encoding!r}; publish one of {', '.join(SUPPORTED_ENCODINGS)} "
            "(for example with image_proc or a republish node)",
        )
    bytes_per_pixel, blue_first = layout
    rows = pixel_rows(data, height, width, step, bytes_per_pixel, encoding).reshape(height, width, bytes_per_pixel)
    if bytes_per_pixel == 1:
        return np.broadcast_to(rows, (height, width, 3))
    # Slicing (not fancy indexing) keeps the result a view; a reversed slice turns BGR(A) into RGB.
    return rows[:, :, 2::-1] if blue_first else rows[:, :, 0:3]


def _yuv_tables() -> tuple[np.ndarray, np.ndarray]:
    """Red and blue of BT.601 video-range YUV in 8-bit fixed point, as look-up tables indexed by 256 * Y + V (red)
    and 256 * Y + U (blue): a look-up costs a fraction of the arithmetic (about 2 ms for a 640x480 image instead of
    12). Y below video black (16, a sensor's footroom) counts as black, as OpenCV (and so cv_bridge) takes it."""
    scaled_luma = 298 * (np.maximum(np.arange(256, dtype=np.int32)[:, None], 16) - 16) + 128
    chroma = np.arange(256, dtype=np.int32)[None, :] - 128
    tables = []
    for gain in (409, 516):
        table = np.clip((scaled_luma + gain * chroma) >> 8, 0, 255).astype(np.uint8).ravel()
        table.flags.writeable = False
        tables.append(table)
    return tables[0], tables[1]


_RED_OF_YV, _BLUE_OF_YU = _yuv_tables()


def _yuv422_to_rgb(pairs: np.ndarray, order: tuple[int, int, int, int]) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of YUV 4:2:2 pixel pairs ``(H, W / 2, 4)`` whose bytes hold (Y0, U, Y1, V) at
    ``order``: BT.601, video range, in 8-bit fixed point (R = 1.164 (Y - 16) + 1.596 (V - 128), G = 1.164 (Y - 16)
    - 0.391 (U - 128) - 0.813 (V - 128), B = 1.164 (Y - 16) + 2.018 (U - 128), times 256); a pair's two pixels
    share its U and V."""
    y0, u, y1, v = (pairs[:, :, k] for k in order)
    green_of_uv = 128 - 100 * (u.astype(np.int32) - 128) - 208 * (v.astype(np.int32) - 128)
    u16, v16 = u.astype(np.uint16), v.astype(np.uint16)
    rgb = np.empty((*pairs.shape[:2], 2, 3), dtype=np.uint8)
    for first, luma in ((0, y0), (1, y1)):
        high = luma.astype(np.uint16) << 8
        rgb[:, :, first, 0] = _RED_OF_YV.take(high | v16)
        rgb[:, :, first, 1] = np.clip((298 * (np.maximum(luma, 16).astype(np.int32) - 16) + green_of_uv) >> 8, 0, 255)
        rgb[:, :, first, 2] = _BLUE_OF_YU.take(high | u16)
    return rgb.reshape(pairs.shape[0], 2 * pairs.shape[1], 3)


def demosaic(mosaic: np.ndarray, encoding: str) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of a Bayer ``mosaic`` ``(H, W)`` uint8 in ``encoding`` (one of `BAYER_ENCODINGS`,
    which names the colours of the top-left 2x2 block, row by row), by bilinear interpolation: at each pixel its
    own colour is its sample; green elsewhere is the mean of the 4 direct neighbours (all green, on a
    checkerboard); at a green pixel the other two colours are the mean of its left and right or of its upper and
    lower neighbours, and at a red or blue one the other is the mean of the 4 diagonal ones. The borders mirror the
    mosaic, which keeps the pattern's phase."""
    pattern = _BAYER[encoding]
    height, width = mosaic.shape
    if min(height, width) < 2:  # nothing to interpolate from across it: grey
        return np.repeat(mosaic[:, :, None], 3, axis=2)
    padded = np.pad(mosaic, 1, mode="reflect").astype(np.uint16)
    centre = padded[1:-1, 1:-1]
    sideways = padded[1:-1, :-2] + padded[1:-1, 2:]
    upright = padded[:-2, 1:-1] + padded[2:, 1:-1]
    diagonal = padded[:-2, :-2] + padded[:-2, 2:] + padded[2:, :-2] + padded[2:, 2:]
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    for row in range(2):
        for column in range(2):
            at = (slice(row, None, 2), slice(column, None, 2))
            colour = pattern[2 * row + column]
            rgb[(*at, colour)] = centre[at]
            if colour == 1:  # green: the row's other colour left and right, the column's above and below
                rgb[(*at, pattern[2 * row + 1 - column])] = (sideways[at] + 1) >> 1
                rgb[(*at, pattern[2 * (1 - row) + column])] = (upright[at] + 1) >> 1
            else:
                rgb[(*at, 1)] = (sideways[at] + upright[at] + 2) >> 2
                rgb[(*at, 2 - colour)] = (diagonal[at] + 2) >> 2
    return rgb
