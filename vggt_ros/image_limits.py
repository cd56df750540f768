# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The largest image that is decoded, checked from the file's header before any pixel is decoded. No ROS here.

A small file can claim a huge image: a 2 MB JPEG that decodes to 12000 x 12000 costs over 2 GB, and a PNG whose
header claims 30000 x 30000 makes Pillow refuse with a DecompressionBombError. The model sees at most
``image_size`` pixels across, so nothing is gained from more than a camera's few megapixels. Images above
``max_image_pixels`` (width x height, default `DEFAULT_MAX_IMAGE_PIXELS`, 50 MP: more than any camera a robot
carries, 2.5 times an 8K frame's 33 MP) are refused with `ImageFormatError` of kind `TOO_LARGE`, so a reader can
skip the image and count or name it as it does other unreadable images.

* `check_image_pixels`: the rule, for any (H, W) known without decoding (a raw sensor_msgs/Image's fields).
* `compressed_image_hw`: (H, W) from a JPEG's or PNG's header bytes (a CompressedImage payload).
* `message_hw`: (H, W) of an Image or CompressedImage message, from its fields or its payload's header.
* `image_file_hw`: (H, W) of an image file of any format Pillow reads, from its header.
"""

from __future__ import annotations

import os
import struct
from typing import Optional, Union

import numpy as np
import simplejpeg
from PIL import Image

from vggt_ros.image_encoding import Buffer, ImageFormatError

DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
# The two image message types (a bag connection's, a topic's): `message_hw` reads either.
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
TOO_LARGE = "too_large"
_JPEG_SIGNATURE = b"\xff\xd8\xff"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_max_image_pixels(max_image_pixels: int) -> None:
    """Refuse a bound that is not a positive int (ValueError naming ``max_image_pixels``)."""
    if isinstance(max_image_pixels, bool) or not isinstance(max_image_pixels, int) or max_image_pixels < 1:
        raise ValueError(f"max_image_pixels must be an int >= 1 (width x height), got {max_image_pixels!r}")


# How to raise the bound, in both places it is set.
RAISE_THE_BOUND = "raise max_image_pixels (the node's parameter; --max-image-pixels of vggt-ros-reconstruct)"


def check_image_pixels(height: int, width: int, max_image_pixels: int, what: str = "image") -> None:
    """Raise `ImageFormatError` (kind `TOO_LARGE`) when ``height * width`` exceeds ``max_image_pixels``."""
    if height * width > max_image_pixels:
        raise ImageFormatError(
            TOO_LARGE,
            f"{what} is {width}x{height} (WxH, {height * width / 1e6:.1f} MP), over max_image_pixels "
            f"{max_image_pixels} ({max_image_pixels / 1e6:.1f} MP): not decoded; scale it down upstream or "
            f"{RAISE_THE_BOUND}",
        )


def compressed_image_hw(data: Buffer) -> Optional[tuple[int, int]]:
    """(H, W) of a JPEG or PNG payload read from its header, or None when the header is not one (left to the
    decoder, which says what is wrong)."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    head = buffer[:24].tobytes()
    if head.startswith(_PNG_SIGNATURE) and len(head) == 24 and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])  # IHDR, the first chunk of every PNG
        return height, width
    if head.startswith(_JPEG_SIGNATURE):
        try:
            height, width, _, _ = simplejpeg.decode_jpeg_header(buffer)
        except ValueError:
            return None
        return height, width
    return None


def message_hw(msg, compressed: bool) -> Optional[tuple[int, int]]:
    """(H, W) of a sensor_msgs/Image from its fields, or of a CompressedImage from its JPEG / PNG header (None when
    the header is not one); nothing decoded. rclpy's messages or rosbags'."""
    return compressed_image_hw(msg.data) if compressed else (int(msg.height), int(msg.width))


def image_file_hw(path: Union[str, "os.PathLike[str]"], max_image_pixels: int) -> tuple[int, int]:
    """(H, W) of an image file, from its header (no pixel decoded).

    Raises:
        ImageFormatError: kind `TOO_LARGE` over ``max_image_pixels`` (also when Pillow itself refuses the size).
        OSError, ValueError: the file cannot be read as an image (Pillow's own message).
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Image.DecompressionBombError as err:  # over Pillow's own bound, far above ours: same verdict
        raise ImageFormatError(
            TOO_LARGE,
            f"{err}; over max_image_pixels {max_image_pixels}: not decoded; scale it down or {RAISE_THE_BOUND}",
        ) from None
    check_image_pixels(height, width, max_image_pixels, f"image file '{os.fspath(path)}'")
    return height, width
