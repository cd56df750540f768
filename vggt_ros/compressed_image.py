# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""sensor_msgs/CompressedImage payloads (JPEG, PNG) -> (H, W, 3) uint8 RGB, without cv_bridge and without rclpy.

The messages are those of image_transport's "compressed" plugin, whose ``format`` reads
"<camera encoding>; <codec> compressed <encoding inside the file>", e.g. "rgb8; jpeg compressed bgr8" or
"mono8; png compressed mono8" (older publishers write just "jpeg" or "png", some leave it empty). The plugin
converts the image to the inner encoding and hands it to OpenCV's encoder, and the file stores colours, not
channel order, so a decoded file is true RGB (or grey) whatever the prefix says: no channel swap is needed.

The codec is detected from the file's signature (JPEG: FF D8 FF, PNG: 89 'PNG' 0D 0A 1A 0A), as OpenCV and
image_transport's subscriber do; the format string is checked against it, so a payload it names wrongly or a
transport this module does not read (compressedDepth, whose PNG or RVL payload carries depth quantisation
parameters) fails with a clear reason instead of giving wrong pixels.

JPEG decoder, chosen by measurement (bench/jpeg_decoders.py; figures in docs/benchmarks.md, JPEG decoders).

simplejpeg is the fastest, decodes straight to RGB (greyscale JPEGs included) and, in its default strict mode,
raises on truncated data, which OpenCV reports only as a missing image; its wheel bundles libjpeg-turbo and
needs only numpy. It is the one hard JPEG dependency (requirements.txt), with no fallback: two code paths would
mean two behaviours on bad data. PNG, which cameras rarely send and which no JPEG library reads, goes through
Pillow, already a dependency (preprocessing).

What can and cannot be detected: a truncated file (a message cut short) is rejected, by simplejpeg and by
Pillow alike; bytes damaged inside a JPEG's entropy-coded data usually decode without complaint into a visibly
wrong image, as any JPEG viewer shows it, and are not detectable here.

Errors are `ImageFormatError` (a ValueError) as for raw images, with ``kind`` "format" (a codec or transport
that is not supported, or a format string that contradicts the data), "corrupt" (truncated or unreadable data;
the message gives the byte count) or "encoding" (a PNG of more than 8 bits per channel), so a bag reader can
skip such a message and count it.
"""

from __future__ import annotations

import io

import numpy as np
import simplejpeg
from PIL import Image

from vggt_ros.image_encoding import Buffer, ImageFormatError

_JPEG_SIGNATURE = b"\xff\xd8\xff"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Pillow modes of PNGs with more than 8 bits per channel (16-bit grey, as "mono16; png compressed mono16").
_WIDE_PNG_MODES = ("I", "I;16", "I;16B", "I;16L", "F")


def decode_compressed(data: Buffer, format: str) -> np.ndarray:
    """Decode a CompressedImage payload.

    Args:
        data: the file bytes (bytes, bytearray, memoryview, array.array('B') as rclpy gives, or a uint8 array
            as rosbags gives).
        format: the message's ``format`` field, e.g. "rgb8; jpeg compressed bgr8", "png" or "".
    Returns:
        ``(H, W, 3)`` uint8 RGB. Greyscale becomes three equal channels (for a PNG a read-only broadcast view,
        as `vggt_ros.image_encoding.image_to_rgb` gives for mono8); alpha is dropped.
    Raises:
        ImageFormatError (a ValueError) with ``kind`` "format", "corrupt" or "encoding" (see the module docstring).
    """
    buffer = np.frombuffer(data, dtype=np.uint8)
    declared = _declared_codec(format)
    if buffer.size == 0:
        raise ImageFormatError("corrupt", f"compressed image (format {format!r}) has 0 bytes: the message is empty")
    head = buffer[: len(_PNG_SIGNATURE)].tobytes()
    detected = "jpeg" if head.startswith(_JPEG_SIGNATURE) else "png" if head.startswith(_PNG_SIGNATURE) else None
    if detected is None:
        if declared is None:
            raise ImageFormatError(
                "format",
                f"compressed image format {format!r} with {buffer.size} bytes that are neither JPEG nor PNG is not "
                "supported; republish the camera as raw sensor_msgs/Image or with image_transport's compressed "
                "(jpeg or png) transport",
            )
        raise ImageFormatError(
            "corrupt",
            f"compressed image of {buffer.size} bytes does not start with a {declared.upper()} signature although "
            f"its format is {format!r}: the data is corrupt",
        )
    if declared is not None and declared != detected:
        raise ImageFormatError(
            "format",
            f"compressed image format {format!r} says {declared.upper()} but its {buffer.size} bytes are a "
            f"{detected.upper()} file; the publisher labels its images wrongly",
        )
    return _decode_jpeg(buffer) if detected == "jpeg" else _decode_png(buffer)


def _declared_codec(format: str) -> str | None:
    """ "jpeg", "png" or None (an empty format names no codec) from a CompressedImage ``format``."""
    text = format.lower()
    if "compresseddepth" in text:
        raise ImageFormatError(
            "format",
            f"compressed image format {format!r} is image_transport's compressedDepth (a depth map), not a camera "
            "image; record the camera's colour or grey image topic (raw or .../compressed) instead",
        )
    if "jpeg" in text or "jpg" in text:
        return "jpeg"
    if "png" in text:
        return "png"
    if text.strip():
        raise ImageFormatError(
            "format",
            f"compressed image format {format!r} is not supported; this reader decodes image_transport's "
            "compressed transport (jpeg or png)",
        )
    return None


def _decode_jpeg(buffer: np.ndarray) -> np.ndarray:
    try:
        # strict (the default): libjpeg's recoverable warnings, such as a premature end of data, raise.
        return simplejpeg.decode_jpeg(buffer, colorspace="RGB", strict=True)
    except ValueError as err:
        raise ImageFormatError(
            "corrupt", f"JPEG image of {buffer.size} bytes is corrupt or truncated ({err})"
        ) from None


def _decode_png(buffer: np.ndarray) -> np.ndarray:
    try:
        image = Image.open(io.BytesIO(buffer))
        image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        # Pillow reports a truncated or damaged PNG as OSError ("image file is truncated"), SyntaxError ("broken
        # PNG file") or ValueError, and an implausibly large one as DecompressionBombError.
        raise ImageFormatError("corrupt", f"PNG image of {buffer.size} bytes is corrupt or truncated ({err})") from None
    with image:
        if image.mode in _WIDE_PNG_MODES:
            raise ImageFormatError(
                "encoding",
                f"PNG image of {buffer.size} bytes has more than 8 bits per channel (Pillow mode {image.mode}); "
                "only 8-bit colour or grey images are supported (mono16 and depth images are not camera input)",
            )
        if image.mode == "L":
            grey = np.asarray(image)
            return np.broadcast_to(grey[:, :, None], (*grey.shape, 3))
        if image.mode == "RGBA":
            return np.asarray(image)[:, :, :3]
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
