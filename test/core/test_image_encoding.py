# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""image_to_rgb against Pillow's own channel conversions of real photographs, and against the standards' own
formulas for what cameras send before image_proc: YUV 4:2:2 (BT.601's forward transform, written here) and Bayer
mosaics (a bilinear demosaic written here as masked convolutions with SciPy)."""

import array

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from conftest import IMAGES
from support.camera_encodings import BAYER_SITES, bayer_mosaic, bt601_yuv422
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


VIEW_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")


def test_every_encoding_a_driver_of_colour_images_sends_is_read():
    assert set(SUPPORTED_ENCODINGS) == {*VIEW_ENCODINGS, "yuv422", "uyvy", "yuv422_yuy2", "yuyv", *BAYER_SITES}


@pytest.mark.parametrize("encoding", VIEW_ENCODINGS)
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


@pytest.mark.parametrize("encoding", ["yuv422", "uyvy", "yuv422_yuy2", "yuyv"])
def test_yuv422_gives_the_photograph_back_within_the_rounding(photo, encoding):
    """A photograph whose pixel pairs share their colour (4:2:2 then loses nothing), sent as the camera would."""
    width = photo.width // 2 * 2
    pairs = np.asarray(photo)[:, :width:2].repeat(2, axis=1)  # (H, W, 3), each pixel pair one colour
    data = bt601_yuv422(pairs, encoding)

    rgb = image_to_rgb(data, pairs.shape[0], width, width * 2, encoding)

    assert rgb.shape == pairs.shape and rgb.dtype == np.uint8
    assert np.abs(rgb.astype(int) - pairs).max() <= 2  # 8-bit Y, U and V, then 8-bit fixed point


def test_yuv422_of_the_standards_primaries_and_padded_rows():
    # BT.601 video range: black (16, 128, 128), white (235, 128, 128), red (81, 90, 240), blue (41, 240, 110).
    yuyv = np.array([[16, 128, 235, 128, 81, 90, 81, 240, 41, 240, 41, 110, 0xAB, 0xAB]], np.uint8)
    rgb = image_to_rgb(yuyv.tobytes(), 1, 6, 14, "yuyv")
    np.testing.assert_allclose(
        rgb[0], [[0, 0, 0], [255, 255, 255], [255, 0, 0], [255, 0, 0], [0, 0, 255], [0, 0, 255]], atol=2
    )


def test_yuv422_of_odd_width_names_the_pairs():
    with pytest.raises(ImageFormatError, match="odd width 5: its pixels come in pairs") as err:
        image_to_rgb(bytes(20), 2, 5, 10, "yuyv")
    assert err.value.kind == "size"


def _bilinear_demosaic(mosaic: np.ndarray, sites: str) -> np.ndarray:
    """Reference: each colour's samples convolved with the bilinear kernels, the borders mirrored (SciPy)."""
    height, width = mosaic.shape
    rows, columns = np.indices((height, width)) % 2
    out = np.empty((height, width, 3), np.uint8)
    kernels = {
        "G": np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]]) / 4.0,
        "R": np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 4.0,
    }
    kernels["B"] = kernels["R"]
    for channel, colour in enumerate("RGB"):
        mask = np.zeros((height, width))
        for k, site in enumerate(sites):
            if site == colour:
                mask[(rows == k // 2) & (columns == k % 2)] = 1.0
        filtered = ndimage.convolve(mosaic * mask, kernels[colour], mode="mirror")
        out[..., channel] = np.floor(filtered + 0.5)
    return out


@pytest.mark.parametrize("encoding", list(BAYER_SITES))
def test_bayer_is_the_bilinear_demosaic_and_keeps_each_sample(photo, encoding):
    rgb_in = np.asarray(photo)  # 451 wide: odd, so the right border ends mid-pattern
    mosaic = bayer_mosaic(rgb_in, encoding)

    rgb = image_to_rgb(mosaic.tobytes(), *mosaic.shape, mosaic.shape[1], encoding)

    np.testing.assert_array_equal(rgb, _bilinear_demosaic(mosaic, BAYER_SITES[encoding]))
    for k, site in enumerate(BAYER_SITES[encoding]):  # each pixel's own colour is its sample
        row, column = divmod(k, 2)
        np.testing.assert_array_equal(rgb[row::2, column::2, "RGB".index(site)], mosaic[row::2, column::2])
    assert np.abs(rgb.astype(int) - rgb_in).mean() < 4.0  # the photograph, up to interpolation at edges


@pytest.mark.parametrize("encoding", list(BAYER_SITES))
def test_bayer_of_one_colour_is_that_colour_for_each_pattern(encoding):
    """A swapped pattern turns orange into blue: each pattern must read its own sites."""
    orange = np.broadcast_to(np.array([200, 90, 10], np.uint8), (7, 9, 3))
    mosaic = bayer_mosaic(orange, encoding)
    rgb = image_to_rgb(mosaic.tobytes(), 7, 9, 9, encoding)
    assert (rgb == [200, 90, 10]).all()


# OpenCV's conversion codes as cv_bridge uses them (OpenCV names a Bayer pattern by its second row's sites).
OPENCV_CODES = {
    "yuyv": cv2.COLOR_YUV2RGB_YUY2,
    "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "bayer_rggb8": cv2.COLOR_BayerBG2RGB,
    "bayer_bggr8": cv2.COLOR_BayerRG2RGB,
    "bayer_gbrg8": cv2.COLOR_BayerGR2RGB,
    "bayer_grbg8": cv2.COLOR_BayerGB2RGB,
}


@pytest.mark.parametrize("encoding", list(OPENCV_CODES))
def test_what_cv_bridge_gives_for_any_bytes(encoding):
    """Random bytes, Y below video black included (a sensor's footroom, which came out up to 19 levels darker
    than OpenCV's: pass P): within OpenCV's fixed-point rounding, and the Bayer interior exactly (OpenCV fills
    its border its own way)."""
    height, width = 40, 64
    pixel_bytes = 2 if encoding in ("yuyv", "uyvy") else 1
    data = np.random.default_rng(0).integers(0, 256, size=(height, width * pixel_bytes), dtype=np.uint8)
    ours = image_to_rgb(data.tobytes(), height, width, width * pixel_bytes, encoding).astype(int)
    theirs = cv2.cvtColor(data.reshape(height, width, pixel_bytes).squeeze(), OPENCV_CODES[encoding]).astype(int)
    if pixel_bytes == 2:
        assert np.abs(ours - theirs).max() <= 1
    else:
        np.testing.assert_array_equal(ours[1:-1, 1:-1], theirs[1:-1, 1:-1])
