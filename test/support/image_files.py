# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Image files whose header claims a size their data does not have: what a hostile or broken source sends to
make a decoder allocate gigabytes. Real, readable headers (valid PNG CRCs, a real JPEG's frame header)."""

from __future__ import annotations

import struct
import zlib

import numpy as np

from support.bags import encode_image_file


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose IHDR (valid CRC) claims ``width`` x ``height`` 8-bit RGB pixels; its pixel data is a stub."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose baseline frame header (SOF0) is rewritten to claim ``width`` x ``height``."""
    data = bytearray(encode_image_file(np.full((16, 16, 3), 128, np.uint8), "jpeg"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)
