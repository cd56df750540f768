# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""What cameras send before image_proc, made from RGB images by the standards' own formulas (independent of
`vggt_ros.image_encoding`): YUV 4:2:2 as UVC cameras send it, and Bayer mosaics as machine-vision sensors record
them."""

import numpy as np

# sensor_msgs/Image Bayer encoding -> the colours of the mosaic's top-left 2x2 block, row by row.
BAYER_SITES = {"bayer_rggb8": "RGGB", "bayer_bggr8": "BGGR", "bayer_gbrg8": "GBRG", "bayer_grbg8": "GRBG"}


def bt601_yuv422(rgb: np.ndarray, encoding: str) -> bytes:
    """The bytes of ``rgb`` ``(H, W, 3)`` uint8 (W even) in ``encoding`` (yuv422 / uyvy: U Y0 V Y1; yuv422_yuy2 /
    yuyv: Y0 U Y1 V): BT.601's forward transform, video range (Y 16..235, U and V 16..240 about 128), U and V of each
    pixel pair averaged."""
    r, g, b = (rgb[..., k].astype(np.float64) / 255.0 for k in range(3))
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    y = 16.0 + 219.0 * luma
    u = 128.0 + 224.0 * (b - luma) / 1.772
    v = 128.0 + 224.0 * (r - luma) / 1.402
    u, v = ((c[:, 0::2] + c[:, 1::2]) / 2.0 for c in (u, v))
    y0, y1 = y[:, 0::2], y[:, 1::2]
    order = (u, y0, v, y1) if encoding in ("yuv422", "uyvy") else (y0, u, y1, v)
    return np.clip(np.rint(np.stack(order, axis=-1)), 0, 255).astype(np.uint8).tobytes()


def bayer_mosaic(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """The mosaic ``(H, W)`` uint8 a sensor with ``encoding``'s colour sites records of ``rgb`` ``(H, W, 3)``."""
    mosaic = np.empty(rgb.shape[:2], np.uint8)
    for k, site in enumerate(BAYER_SITES[encoding]):
        row, column = divmod(k, 2)
        mosaic[row::2, column::2] = rgb[row::2, column::2, "RGB".index(site)]
    return mosaic


def sensor_bytes(rgb: np.ndarray, encoding: str) -> tuple[bytes, int]:
    """``(data, step)`` of a sensor_msgs/Image of ``rgb`` ``(H, W, 3)`` uint8 in a YUV 4:2:2 or Bayer ``encoding``."""
    if encoding in BAYER_SITES:
        return bayer_mosaic(rgb, encoding).tobytes(), rgb.shape[1]
    return bt601_yuv422(rgb, encoding), 2 * rgb.shape[1]
