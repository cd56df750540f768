# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Depth images: REP 118 buffers packed by Pillow and numpy read back in metres, and depth placed on the model's
pixels exactly where the real colour preprocessing puts the same edge."""

import array

import numpy as np
import pytest
from PIL import Image

from vggt_ros.image_encoding import ImageFormatError
from vggt_ros.metric.sensor_depth import SUPPORTED_DEPTH_ENCODINGS, DepthFormatError, depth_to_metres, depth_to_model
from vggt_ros.preprocess import pixel_map, preprocess_images_u8

HEIGHT, WIDTH = 37, 53  # odd sizes catch row-length mistakes that even ones hide


@pytest.fixture(scope="module")
def depth_m() -> np.ndarray:
    """``(H, W)`` metres on a millimetre grid (so 16UC1 holds it exactly), with holes marked NaN."""
    rng = np.random.default_rng(3)
    depth = np.round(rng.uniform(0.3, 9.0, (HEIGHT, WIDTH)), 3)
    depth[rng.random((HEIGHT, WIDTH)) < 0.1] = np.nan
    return depth


def _millimetres(depth_m: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(depth_m), 0, np.round(depth_m * 1000)).astype(np.uint16)


@pytest.mark.parametrize("encoding", ["16UC1", "mono16"])
def test_millimetres_packed_by_pillow_read_back_in_metres(depth_m, encoding):
    data = Image.fromarray(_millimetres(depth_m)).tobytes()  # Pillow's little-endian 16-bit ("I;16") packer

    metres = depth_to_metres(data, HEIGHT, WIDTH, WIDTH * 2, encoding)

    assert metres.dtype == np.float32 and metres.shape == (HEIGHT, WIDTH)
    np.testing.assert_array_equal(np.isnan(metres), np.isnan(depth_m))  # 0 = no measurement
    np.testing.assert_allclose(metres, depth_m, atol=1e-6, equal_nan=True)


def test_16uc1_and_32fc1_of_the_same_depth_agree_to_a_millimetre(depth_m):
    float_metres = depth_m.astype(np.float32)
    float_metres[np.isnan(depth_m)] = 0.0  # the driver's "no measurement" in 32FC1 may be 0 as well as NaN
    from_mm = depth_to_metres(_millimetres(depth_m).tobytes(), HEIGHT, WIDTH, WIDTH * 2, "16UC1")
    from_m = depth_to_metres(Image.fromarray(float_metres).tobytes(), HEIGHT, WIDTH, WIDTH * 4, "32FC1")

    np.testing.assert_array_equal(np.isnan(from_mm), np.isnan(from_m))
    assert np.nanmax(np.abs(from_mm - from_m)) <= 1e-3


def test_no_measurement_values_of_32fc1_become_nan():
    values = np.array([[1.5, 0.0, np.nan, np.inf], [-np.inf, -2.0, 0.25, 7.0]], dtype=np.float32)

    metres = depth_to_metres(values.tobytes(), 2, 4, 16, "32FC1")

    np.testing.assert_array_equal(metres, [[1.5, np.nan, np.nan, np.nan], [np.nan, np.nan, 0.25, 7.0]])


def test_big_endian_buffers(depth_m):
    big_endian_mm = Image.fromarray(_millimetres(depth_m)).tobytes("raw", "I;16B")  # Pillow's big-endian packer
    big_endian_m = depth_m.astype(">f4").tobytes()

    from_mm = depth_to_metres(big_endian_mm, HEIGHT, WIDTH, WIDTH * 2, "16UC1", is_bigendian=True)
    from_m = depth_to_metres(big_endian_m, HEIGHT, WIDTH, WIDTH * 4, "32FC1", is_bigendian=True)

    np.testing.assert_allclose(from_mm, depth_m, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(from_m, depth_m, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("encoding, bytes_per_pixel", [("16UC1", 2), ("32FC1", 4)])
def test_padded_rows_are_skipped(depth_m, encoding, bytes_per_pixel):
    stored = _millimetres(depth_m) if encoding == "16UC1" else depth_m.astype(np.float32)
    rows = np.frombuffer(stored.tobytes(), dtype=np.uint8).reshape(HEIGHT, WIDTH * bytes_per_pixel)
    padding = np.full((HEIGHT, 7), 0xAB, dtype=np.uint8)  # an odd pad also misaligns every row after the first
    padded = np.concatenate((rows, padding), axis=1)
    step = padded.shape[1]

    metres = depth_to_metres(array.array("B", padded.tobytes()), HEIGHT, WIDTH, step, encoding)

    np.testing.assert_allclose(metres, depth_m, atol=1e-6, equal_nan=True)


def test_unsupported_encoding_names_the_accepted_ones():
    with pytest.raises(DepthFormatError) as error:
        depth_to_metres(bytes(12), 2, 2, 6, "rgb8")
    assert error.value.kind == "encoding"
    assert all(encoding in str(error.value) for encoding in SUPPORTED_DEPTH_ENCODINGS)
    assert isinstance(error.value, ImageFormatError)  # one handler catches colour and depth format errors


@pytest.mark.parametrize(
    "height, width, step, size, kind",
    [(0, 4, 8, 0, "size"), (2, 4, 6, 12, "step"), (2, 4, 8, 15, "length")],
)
def test_buffers_that_do_not_match_their_header(height, width, step, size, kind):
    with pytest.raises(DepthFormatError) as error:
        depth_to_metres(bytes(size), height, width, step, "16UC1")
    assert error.value.kind == kind


def _first_step(values: np.ndarray, low, high) -> int:
    """Index of the first ``high`` value after the first ``low`` one along a 1-D profile (skips the padding)."""
    start = int(np.argmax(low(values)))
    return start + int(np.argmax(high(values[start:])))


@pytest.mark.parametrize(
    "height, width, mode",
    [(480, 640, "crop"), (480, 640, "pad"), (640, 480, "crop"), (640, 480, "pad"), (75, 100, "crop")],
)
def test_depth_edges_land_where_preprocessing_puts_the_colour_edges(height, width, mode):
    # A near box in the top-left of a far wall, its edges at a column and a row that no resize factor maps to a
    # whole model pixel; the colour image has the same edges (dark box, white wall).
    edge_col, edge_row = width // 3 + 1, height // 2 + 1
    rgb = np.full((height, width, 3), 255, dtype=np.uint8)
    rgb[:edge_row, :edge_col] = 0
    depth = np.full((height, width), 4.0, dtype=np.float32)
    depth[:edge_row, :edge_col] = 1.0
    grey = preprocess_images_u8([rgb], mode)[0, 0].numpy().astype(np.float64)

    model = depth_to_model(depth, pixel_map(height, width, mode))

    assert model.shape == grey.shape
    # Nearest neighbour: every model pixel holds a sensor value, never a mixture across the edge.
    assert set(np.unique(model[np.isfinite(model)])) <= {1.0, 4.0}
    dark_rows, dark_cols = np.nonzero(grey < 127.5)
    row, col = int(np.median(dark_rows)), int(np.median(dark_cols))  # a model row and column through the box
    is_dark, is_bright = (lambda g: g < 127.5), (lambda g: g >= 127.5)
    is_near, is_far = (lambda d: d == 1.0), (lambda d: d == 4.0)
    assert _first_step(model[row], is_near, is_far) == _first_step(grey[row], is_dark, is_bright)
    assert _first_step(model[:, col], is_near, is_far) == _first_step(grey[:, col], is_dark, is_bright)


@pytest.mark.parametrize("height, width", [(480, 640), (640, 480)])
def test_padding_has_no_depth(height, width):
    black = np.zeros((height, width, 3), dtype=np.uint8)
    padding = preprocess_images_u8([black], "pad")[0, 0].numpy() == 255  # the official white padding

    model = depth_to_model(np.full((height, width), 2.0, dtype=np.float32), pixel_map(height, width, "pad"))

    assert padding.any()
    np.testing.assert_array_equal(np.isnan(model), padding)
    assert np.all(model[~padding] == 2.0)


def test_sensor_holes_stay_holes():
    depth = np.full((480, 640), 3.0, dtype=np.float32)
    depth[100:300, 200:400] = np.nan  # a 200 x 200 pixel hole
    mapping = pixel_map(480, 640, "crop")

    model = depth_to_model(depth, mapping)

    # The hole's outline (pixel edges at -0.5 and +0.5 of its first and last centres) in model pixels.
    (left, top), (right, bottom) = mapping.to_model(np.array([[199.5, 99.5], [399.5, 299.5]]))
    rows, cols = np.nonzero(np.isnan(model))
    assert rows.min() >= top and rows.max() <= bottom and cols.min() >= left and cols.max() <= right
    assert abs(rows.size - (right - left) * (bottom - top)) <= 2 * ((right - left) + (bottom - top))
    assert np.all(model[np.isfinite(model)] == 3.0)


def test_depth_of_another_resolution_is_refused_with_the_fix():
    with pytest.raises(DepthFormatError) as error:
        depth_to_model(np.ones((240, 320), dtype=np.float32), pixel_map(480, 640, "crop"))
    assert error.value.kind == "resolution"
    message = str(error.value)
    assert "320x240" in message and "640x480" in message and "aligned_depth_to_color" in message


def test_a_stack_of_images_is_refused():
    with pytest.raises(DepthFormatError) as error:
        depth_to_model(np.ones((2, 480, 640), dtype=np.float32), pixel_map(480, 640, "crop"))
    assert error.value.kind == "size"
