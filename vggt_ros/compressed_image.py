# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""sensor_msgs/CompressedImage payloads (JPEG, PNG) -> (H, W, 3) uint8 RGB, without cv_bridge and without rclpy.

The messages are those of image_transport's "compressed" plugin, whose ``format`` reads
"<camera encoding>; <codec> compressed <encoding inside the file>", e.g. "rgb8; jpeg compressed bgr8" or
"mono8; png compressed mono8" (older publishers write just "jpeg" or "png", some leave it empty). The plugin
converts the image to the inner encoding and hands it to OpenCV's encoder, and the file stores colours, not
channel order, so a decoded file is true RGB (or grey) whatever the prefix says: no channel swap is needed. A Bayer
camera's image is compressed as it comes, its mosaic as a grey file ("bayer_rggb8; jpeg compressed "): it is
demosaiced after decoding, as the raw image is (`vggt_ros.image_encoding.demosaic`).

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
the message gives the byte count) or "encoding" (a PNG of more than 8 bits per channel, grey or colour), so a bag
reader can skip such a message and count it.

More than 8 bits per channel is refused, not reduced: Pillow opens 16-bit grey as mode I;16 (and 32-bit integer or
float TIFFs as I or F), which ``convert("RGB")`` clips to white or black, and it silently drops the low byte of
16-bit colour. `check_8_bits` is that rule; image files (`vggt_ros.preprocess.decode_image_file`) follow it too, so
a folder of files and a bag of PNG messages accept the same images.
"""

from __future__ import annotations

import io
import re

import numpy as np
import simplejpeg
from PIL import Image

from vggt_ros.image_encoding import BAYER_ENCODINGS, Buffer, ImageFormatError, demosaic

_JPEG_SIGNATURE = b"\xff\xd8\xff"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Pillow modes of more than 8 bits per channel: 16-bit grey (PNG, TIFF: "mono16; png compressed mono16"), 32-bit
# integer and float (TIFF).
_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
# Pillow's raw modes (how a file stores its pixels) of 16 or 32 bits per channel, e.g. "RGB;16B" (16-bit RGB PNG,
# opened as mode RGB), "LA;16B" (opened as RGBA), "RGBA;16L", "F;32F". The formats that store such raw modes: the
# other suffixes a folder may hold (JPEG, BMP, WebP) are 8 bits per channel in Pillow, and BMP's "BGR;16" is a
# packed 5-6-5 pixel, not 16 bits per channel.
_WIDE_RAW_MODE = re.compile(r";(16|32)")
_WIDE_FORMATS = ("PNG", "TIFF")
# What Pillow raises for a file it cannot read: OSError ("image file is truncated", UnidentifiedImageError),
# SyntaxError ("broken PNG file": a damaged chunk), ValueError, and DecompressionBombError for an implausibly large one.
PILLOW_READ_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


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
    rgb = _decode_jpeg(buffer) if detected == "jpeg" else _decode_png(buffer)
    mosaic = _mosaic_encoding(format)
    return demosaic(rgb[:, :, 0], mosaic) if mosaic is not None else rgb


def _mosaic_encoding(format: str) -> str | None:
    """The Bayer encoding of a file that holds the camera's mosaic as grey: image_transport's compressed plugin
    compresses a Bayer image as it comes ("bayer_rggb8; jpeg compressed ", or naming the mosaic or mono8 inside),
    and its subscriber hands the mosaic on to be demosaiced. None for any other format (a file converted to colour
    before it was compressed, "bayer_rggb8; jpeg compressed bgr8", holds true colours)."""
    camera, _, inner = format.partition(";")
    camera, inner = camera.strip().lower(), inner.lower().split("compressed", 1)[-1].strip()
    return camera if camera in BAYER_ENCODINGS and inner in ("", "mono8", camera) else None


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


def check_8_bits(image: Image.Image, what: str) -> None:
    """Refuse an opened (not yet loaded) Pillow image of more than 8 bits per channel.

    Raises:
        ImageFormatError: kind "encoding", naming ``what`` (e.g. "PNG image of 1234 bytes") and how it is stored.
    """
    raw_mode = _raw_mode(image)
    wide_raw = image.format in _WIDE_FORMATS and raw_mode is not None and _WIDE_RAW_MODE.search(raw_mode)
    if image.mode in _WIDE_MODES or wide_raw:
        stored = f", stored as {raw_mode}" if raw_mode and raw_mode != image.mode else ""
        raise ImageFormatError(
            "encoding",
            f"{what} has more than 8 bits per channel (Pillow mode {image.mode}{stored}); only 8-bit colour or grey "
            "images are supported (16-bit, float and depth images are not camera input)",
        )


def _raw_mode(image: Image.Image) -> str | None:
    """How the file stores the pixels (Pillow's raw mode of its first tile), or None once loaded or when unknown."""
    if not image.tile:
        return None
    args = image.tile[0].args
    raw_mode = args[0] if isinstance(args, tuple) and args else args
    return raw_mode if isinstance(raw_mode, str) else None


def _decode_png(buffer: np.ndarray) -> np.ndarray:
    what = f"PNG image of {buffer.size} bytes"
    try:
        image = Image.open(io.BytesIO(buffer))
    except PILLOW_READ_ERRORS as err:
        raise ImageFormatError("corrupt", f"{what} is corrupt or truncated ({err})") from None
    with image:
        check_8_bits(image, what)  # from the header, before decoding
        try:
            image.load()
        except PILLOW_READ_ERRORS as err:
            raise ImageFormatError("corrupt", f"{what} is corrupt or truncated ({err})") from None
        if image.mode == "L":
            grey = np.asarray(image)
            return np.broadcast_to(grey[:, :, None], (*grey.shape, 3))
        if image.mode == "RGBA":
            return np.asarray(image)[:, :, :3]
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
