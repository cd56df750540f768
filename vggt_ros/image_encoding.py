# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""sensor_msgs/Image-style buffers -> (H, W, 3) uint8 RGB numpy views, without cv_bridge and without rclpy.

The caller passes the message fields as plain values (`data`, `height`, `width`, `step`, `encoding`), so bag
readers and tests use the same code as the node. The result is a view on `data` whenever the layout allows
(always, for the encodings supported here): no pixel is copied. bgr8 / bgra8 become channel-reversed views
(negative stride), rgba8 / bgra8 drop alpha by slicing, mono8 is broadcast to three equal channels (a
read-only view). `step` may exceed `width * bytes_per_pixel` (padded rows, allowed by sensor_msgs/Image).
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

SUPPORTED_ENCODINGS = tuple(_LAYOUTS)


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
        encoding: one of rgb8, bgr8, rgba8, bgra8, mono8.
    Returns:
        ``(H, W, 3)`` uint8 RGB, a view on ``data`` (read-only when ``data`` is immutable or for mono8).
    Raises:
        ImageFormatError (a ValueError): unknown encoding, zero-size image, step smaller than a row of
            pixels, or a buffer whose length is not height * step.
    """
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
