# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""decode_compressed against Pillow's decoding of real photographs, and its errors on damaged or foreign data."""

import array
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import IMAGES
from support.bags import encode_image_file
from support.camera_encodings import bayer_mosaic
from vggt_ros.compressed_image import decode_compressed
from vggt_ros.image_encoding import ImageFormatError, image_to_rgb

# Different IDCT / upsampling implementations may differ by a level or two; simplejpeg and Pillow both use
# libjpeg-turbo's accurate defaults, so in practice they agree exactly.
DECODER_TOLERANCE = 2


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    # An odd width (451) catches row-length mistakes that even sizes hide.
    with Image.open(IMAGES / "chelsea.png") as image:
        return np.asarray(image.convert("RGB"))


def _pillow_rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def _max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


@pytest.mark.parametrize(
    "format_string", ["rgb8; jpeg compressed bgr8", "bgr8; jpeg compressed bgr8", "jpeg", "JPEG", ""]
)
def test_jpeg_gives_pillows_rgb_whatever_the_encoding_prefix(photo, format_string):
    data = encode_image_file(photo, "jpeg")

    rgb = decode_compressed(data, format_string)

    assert rgb.shape == photo.shape and rgb.dtype == np.uint8
    assert _max_diff(rgb, _pillow_rgb(data)) <= DECODER_TOLERANCE


def test_jpeg_channels_are_red_green_blue():
    # Flat 16x16 blocks (whole JPEG blocks, so no chroma bleeding in their centres) of pure colours.
    image = np.zeros((16, 48, 3), dtype=np.uint8)
    image[:, 0:16, 0] = 255
    image[:, 16:32, 1] = 255
    image[:, 32:48, 2] = 255

    rgb = decode_compressed(encode_image_file(image, "jpeg", quality=95), "rgb8; jpeg compressed bgr8")

    for channel in range(3):
        centre = rgb[8, 16 * channel + 8].astype(int)
        assert centre[channel] > 200 and np.delete(centre, channel).max() < 60, (channel, centre)


def test_grey_jpeg_gives_three_equal_channels(photo):
    grey = np.asarray(Image.fromarray(photo).convert("L"))
    data = encode_image_file(grey, "jpeg")

    rgb = decode_compressed(data, "mono8; jpeg compressed mono8")

    assert rgb.shape == (*grey.shape, 3)
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 1])
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])
    with Image.open(io.BytesIO(data)) as image:
        assert _max_diff(rgb[..., 0], np.asarray(image)) <= DECODER_TOLERANCE


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P"])
def test_png_is_lossless_in_every_8_bit_mode(photo, mode):
    source = Image.fromarray(photo).convert(mode)
    buffer = io.BytesIO()
    source.save(buffer, format="PNG")

    rgb = decode_compressed(buffer.getvalue(), "rgb8; png compressed bgr8")

    # Alpha is dropped (as image_to_rgb does for rgba8); grey and palette images become their RGB colours.
    np.testing.assert_array_equal(rgb, np.asarray(source.convert("RGB")))


@pytest.mark.parametrize(
    "wrap",
    [bytearray, memoryview, lambda d: array.array("B", d), lambda d: np.frombuffer(d, dtype=np.uint8)],
    ids=["bytearray", "memoryview", "array.array (rclpy)", "numpy (rosbags)"],
)
def test_message_buffer_types_decode_like_bytes(photo, wrap):
    data = encode_image_file(photo[:64, :80], "jpeg")

    np.testing.assert_array_equal(decode_compressed(wrap(data), "jpeg"), decode_compressed(data, "jpeg"))


@pytest.mark.parametrize("kept", ["all but the end marker", "half", "the first 600 bytes"])
def test_truncated_jpeg_is_corrupt_and_says_its_size(photo, kept):
    data = encode_image_file(photo, "jpeg")
    cut = {"all but the end marker": len(data) - 2, "half": len(data) // 2, "the first 600 bytes": 600}[kept]

    with pytest.raises(ImageFormatError) as caught:
        decode_compressed(data[:cut], "rgb8; jpeg compressed bgr8")

    assert caught.value.kind == "corrupt"
    assert f"{cut} bytes" in str(caught.value)


def test_truncated_png_is_corrupt(photo):
    data = encode_image_file(photo, "png")[:5000]

    with pytest.raises(ImageFormatError) as caught:
        decode_compressed(data, "png")

    assert caught.value.kind == "corrupt" and "5000 bytes" in str(caught.value)


@pytest.mark.parametrize("format_string", ["jpeg", ""])
def test_empty_data_is_corrupt(format_string):
    with pytest.raises(ImageFormatError) as caught:
        decode_compressed(b"", format_string)

    assert caught.value.kind == "corrupt" and "0 bytes" in str(caught.value)


def test_data_without_the_declared_signature_is_corrupt():
    with pytest.raises(ImageFormatError) as caught:
        decode_compressed(b"\x00" * 100, "rgb8; jpeg compressed bgr8")

    assert caught.value.kind == "corrupt" and "100 bytes" in str(caught.value)


def test_sixteen_bit_png_is_an_encoding_error():
    buffer = io.BytesIO()
    Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).save(buffer, format="PNG")

    with pytest.raises(ImageFormatError) as caught:
        decode_compressed(buffer.getvalue(), "mono16; png compressed mono16")

    assert caught.value.kind == "encoding" and "8 bits" in str(caught.value)


@pytest.mark.parametrize("channels, encoding", [(3, "bgr16"), (4, "bgra16")])
def test_sixteen_bit_colour_png_is_an_encoding_error_not_reduced_to_8_bits(channels, encoding):
    # OpenCV's encoder (image_transport's png transport) writes a uint16 colour image as a 16-bit PNG.
    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    ok, encoded = cv2.imencode(".png", np.dstack([ramp, ramp.T, 65535 - ramp, ramp][:channels]))
    data = encoded.tobytes()
    assert ok and data[12:16] == b"IHDR" and data[24] == 16  # IHDR: bit depth 16
    assert data[25] == (2 if channels == 3 else 6)  # colour type: RGB, RGBA

    with pytest.raises(ImageFormatError) as caught:
        decode_compressed(data, f"{encoding}; png compressed {encoding}")

    assert caught.value.kind == "encoding" and "8 bits" in str(caught.value)


@pytest.mark.parametrize(
    "format_string, codec",
    [("16UC1; compressedDepth png", "png"), ("32FC1; compressedDepth rvl", None), ("theora", None), ("", None)],
)
def test_unsupported_transports_are_format_errors(photo, format_string, codec):
    # compressedDepth's PNG payload starts with a 12-byte quantisation header, like the zeros here.
    payload = bytes(12) + encode_image_file(photo[:8, :8], "png") if codec else b"\x01\x02not an image file"

    with pytest.raises(ImageFormatError) as caught:
        decode_compressed(payload, format_string)

    assert caught.value.kind == "format"
    assert repr(format_string) in str(caught.value)


def test_format_contradicting_the_data_is_a_format_error(photo):
    with pytest.raises(ImageFormatError) as caught:
        decode_compressed(encode_image_file(photo[:16, :16], "jpeg"), "rgb8; png compressed bgr8")

    assert caught.value.kind == "format" and "JPEG" in str(caught.value)


@pytest.mark.parametrize("codec, inside", [("png", ""), ("jpeg", ""), ("png", "bayer_grbg8"), ("jpeg", "mono8")])
def test_a_bayer_cameras_compressed_mosaic_is_demosaiced_as_its_raw_image_is(photo, codec, inside):
    """image_transport's compressed plugin compresses a Bayer image as it comes, the mosaic as a grey file
    ("bayer_rggb8; png compressed "); it came out as a grey checkerboard, with no error (pass O: 25 grey levels off
    the photograph on average, against 2.3 for the same mosaic sent raw)."""
    mosaic = bayer_mosaic(photo, "bayer_grbg8")
    data = encode_image_file(mosaic, codec)

    rgb = decode_compressed(data, f"bayer_grbg8; {codec} compressed {inside}")

    raw = image_to_rgb(mosaic.tobytes(), *mosaic.shape, mosaic.shape[1], "bayer_grbg8")
    if codec == "png":  # lossless: exactly what the raw image gives
        np.testing.assert_array_equal(rgb, raw)
    assert np.abs(rgb.astype(int) - photo).mean() < (3.0 if codec == "png" else 4.0)


def test_a_bayer_camera_converted_to_colour_before_compression_is_left_as_decoded(photo):
    data = encode_image_file(photo, "jpeg")
    assert _max_diff(decode_compressed(data, "bayer_rggb8; jpeg compressed bgr8"), _pillow_rgb(data)) <= 2
