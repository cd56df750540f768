# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""`vggt_ros.image_limits`: image sizes from file headers (checked against what Pillow decodes) and the
``max_image_pixels`` rule, before any pixel is decoded."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import IMAGES
from support.bags import encode_image_file
from support.image_files import png_claiming
from vggt_ros.image_encoding import ImageFormatError
from vggt_ros.image_limits import (
    DEFAULT_MAX_IMAGE_PIXELS,
    TOO_LARGE,
    check_image_pixels,
    compressed_image_hw,
    image_file_hw,
)


@pytest.mark.parametrize("codec", ["jpeg", "png"])
@pytest.mark.parametrize("shape", [(120, 160, 3), (77, 33), (1, 1, 3)])
def test_the_header_size_is_the_decoded_size(codec, shape):
    image = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    data = encode_image_file(image, codec)
    assert compressed_image_hw(data) == shape[:2]
    assert compressed_image_hw(np.frombuffer(data, np.uint8)) == shape[:2]  # as rosbags gives message data


def test_a_claimed_size_is_read_without_decoding():
    assert compressed_image_hw(png_claiming(30000, 20000)) == (20000, 30000)
    with pytest.raises(ImageFormatError) as caught:
        check_image_pixels(*compressed_image_hw(png_claiming(30000, 20000)), DEFAULT_MAX_IMAGE_PIXELS)
    assert caught.value.kind == TOO_LARGE and "30000x20000" in str(caught.value)


@pytest.mark.parametrize("data", [b"", b"not an image", b"\xff\xd8\xff\xe0 cut", b"\x89PNG\r\n\x1a\n"])
def test_bytes_that_are_no_known_header_are_left_to_the_decoder(data):
    assert compressed_image_hw(data) is None


def test_image_files_are_measured_from_their_header_and_bounded(tmp_path):
    for path in sorted(IMAGES.iterdir()):
        width, height = Image.open(path).size
        assert image_file_hw(path, DEFAULT_MAX_IMAGE_PIXELS) == (height, width)
        with pytest.raises(ImageFormatError) as caught:
            image_file_hw(path, width * height - 1)
        assert caught.value.kind == TOO_LARGE and path.name in str(caught.value)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(30000, 30000))  # beyond Pillow's own DecompressionBombError bound
    with pytest.raises(ImageFormatError) as caught:
        image_file_hw(bomb, DEFAULT_MAX_IMAGE_PIXELS)
    assert caught.value.kind == TOO_LARGE


def test_the_bound_is_inclusive():
    check_image_pixels(100, 100, 10_000)
    with pytest.raises(ImageFormatError):
        check_image_pixels(100, 101, 10_000)
