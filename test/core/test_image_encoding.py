# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""image_to_rgb against Pillow's own channel conversions of real photographs."""

import array

import numpy as np
import pytest
from PIL import Image

from conftest import IMAGES
from vggt_ros.image_encoding import SUPPORTED_ENCODINGS, ImageFormatError, image_to_rgb


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    # An odd width (451) catches row-length mistakes that even sizes hide.
    with Image.open(IMAGES / "chelsea.png") as image:
        return image.convert("RGB")


def _raw(photo: Image.Image, encoding: str) -> bytes:
    """The bytes a camera driver would send, produced by Pillow's packers (independent of our code)."""
    if encoding == "rgb8":
        return photo.tobytes("raw", "RGB")
    if encoding == "bgr8":
        return photo.tobytes("raw", "BGR")
    if encoding == "rgba8":
        return photo.convert("RGBA").tobytes("raw", "RGBA")
    if encoding == "bgra8":
        return photo.convert("RGBA").tobytes("raw", "BGRA")
    if encoding == "mono8":
        return photo.convert("L").tobytes()
    raise AssertionError(encoding)


def _expected(photo: Image.Image, encoding: str) -> np.ndarray:
    if encoding == "mono8":
        return np.asarray(photo.convert("L").convert("RGB"))
    return np.asarray(photo)


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
def test_each_encoding_gives_pillows_rgb_as_a_view(photo, encoding):
    width, height = photo.size
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}[encoding]
    data = _raw(photo, encoding)
    buffer = np.frombuffer(data, dtype=np.uint8)

    rgb = image_to_rgb(data, height, width, width * channels, encoding)

    assert rgb.shape == (height, width, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, _expected(photo, encoding))
    assert np.shares_memory(rgb, buffer), "conversion must not copy pixels"


@pytest.mark.parametrize("encoding", ["rgb8", "bgra8", "mono8"])
def test_padded_rows_are_skipped(photo, encoding):
    width, height = photo.size
    channels = {"rgb8": 3, "bgra8": 4, "mono8": 1}[encoding]
    rows = np.frombuffer(_raw(photo, encoding), dtype=np.uint8).reshape(height, width * channels)
    padding = np.full((height, 13), 0xAB, dtype=np.uint8)
    padded = np.concatenate((rows, padding), axis=1)

    rgb = image_to_rgb(padded.tobytes(), height, width, width * channels + 13, encoding)

    np.testing.assert_array_equal(rgb, _expected(photo, encoding))


def test_rclpy_style_array_buffer(photo):
    # rclpy hands uint8[] fields over as array.array('B').
    width, height = photo.size
    data = array.array("B", _raw(photo, "bgr8"))
    np.testing.assert_array_equal(image_to_rgb(data, height, width, width * 3, "bgr8"), np.asarray(photo))


def test_unknown_encoding_names_it_and_the_supported_ones():
    with pytest.raises(
        ImageFormatError, match=r"unsupported image encoding '16UC1'.*rgb8, bgr8, rgba8, bgra8, mono8"
    ) as err:
        image_to_rgb(bytes(8), 2, 2, 4, "16UC1")
    assert err.value.kind == "encoding"


@pytest.mark.parametrize("height, width", [(0, 4), (4, 0), (0, 0)])
def test_zero_size_is_rejected(height, width):
    with pytest.raises(ImageFormatError, match="image is empty") as err:
        image_to_rgb(b"", height, width, width * 3, "rgb8")
    assert err.value.kind == "size"


def test_step_smaller_than_a_row_is_rejected():
    with pytest.raises(
        ImageFormatError, match=r"step 10 is smaller than width 4 x 3 bytes per pixel \(rgb8\) = 12"
    ) as err:
        image_to_rgb(bytes(40), 4, 4, 10, "rgb8")
    assert err.value.kind == "step"


def test_data_length_not_matching_height_times_step_is_rejected():
    with pytest.raises(ImageFormatError, match=r"47 bytes but height 4 x step 12 = 48") as err:
        image_to_rgb(bytes(47), 4, 4, 12, "rgb8")
    assert err.value.kind == "length"
