# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Benchmark: raw sensor_msgs/Image encodings to RGB (`vggt_ros.image_encoding.image_to_rgb`), per encoding.

    python bench/raw_encodings.py --json /tmp/raw_encodings.json [--runs 50]

Input: a fixture photograph (chelsea) resized with Pillow to 640x480 and 1280x720, sent as a driver would in each
encoding: rgb8, bgr8 and mono8 by Pillow's packers; YUV 4:2:2 (yuyv, uyvy) by BT.601's forward transform and Bayer
(bayer_rggb8) by sampling the photograph's sites (`test/support/camera_encodings.py`). rgb8, bgr8 and mono8 come out
as views on the message (no pixel copied); YUV 4:2:2 and Bayer are converted into a new array.

Speed: median ms per image over --runs rounds; in each round every encoding is converted once, so a change in the
machine's load reaches all alike. One thread (numpy). Prints a table and writes JSON: the machine (with its
1-minute load average before and after the run), the settings and ms per encoding and size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "test"))

from machine import describe_machine  # noqa: E402

from conftest import IMAGES  # noqa: E402
from support.camera_encodings import sensor_bytes  # noqa: E402
from vggt_ros.image_encoding import image_to_rgb  # noqa: E402

SIZES = ((640, 480), (1280, 720))
ENCODINGS = ("rgb8", "bgr8", "mono8", "yuyv", "uyvy", "bayer_rggb8")


def camera_message(rgb: np.ndarray, encoding: str) -> tuple[bytes, int]:
    """(data, step) of ``rgb`` ``(H, W, 3)`` in ``encoding``."""
    if encoding in ("yuyv", "uyvy") or encoding.startswith("bayer_"):
        return sensor_bytes(rgb, encoding)
    image, width = Image.fromarray(rgb), rgb.shape[1]
    if encoding == "mono8":
        return image.convert("L").tobytes(), width
    return image.tobytes("raw", "RGB" if encoding == "rgb8" else "BGR"), 3 * width


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50, help="rounds (each converts every encoding once)")
    parser.add_argument("--json", type=Path, help="where to write the results")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with Image.open(IMAGES / "chelsea.png") as photo:
        photo = photo.convert("RGB")
    ms: dict[str, dict[str, float]] = {encoding: {} for encoding in ENCODINGS}
    for width, height in SIZES:
        rgb = np.asarray(photo.resize((width, height), Image.Resampling.LANCZOS))
        messages = {encoding: camera_message(rgb, encoding) for encoding in ENCODINGS}
        times: dict[str, list[float]] = {encoding: [] for encoding in ENCODINGS}
        for _ in range(args.runs + 2):  # the first two rounds warm up
            for encoding, (data, step) in messages.items():
                start = time.perf_counter()
                image_to_rgb(data, height, width, step, encoding)
                times[encoding].append(time.perf_counter() - start)
        for encoding in ENCODINGS:
            ms[encoding][f"{width}x{height}"] = 1000.0 * statistics.median(times[encoding][2:])
    load = {"before": load_before, "after": os.getloadavg()[0]}

    sizes = [f"{w}x{h}" for w, h in SIZES]
    print(
        f"raw image to RGB, median ms per image ({args.runs} rounds, one thread; {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}, 1-min load {load['before']:.1f} before, "
        f"{load['after']:.1f} after)"
    )
    print(f"{'encoding':<14}" + "".join(f"{size:>11}" for size in sizes))
    for encoding in ENCODINGS:
        print(f"{encoding:<14}" + "".join(f"{ms[encoding][size]:>11.2f}" for size in sizes))
    if args.json:
        result = {
            "machine": describe_machine(load_before),
            "settings": {"sizes": sizes, "runs": args.runs, "source": "chelsea.png, Lanczos-resized"},
            "ms": ms,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
