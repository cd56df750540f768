# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Benchmark: JPEG decoders for sensor_msgs/CompressedImage, to choose the one `vggt_ros.compressed_image` uses.

    python bench/jpeg_decoders.py --json /tmp/jpeg_decoders.json [--runs 200]

Candidates: Pillow (`Image.open` + `np.asarray`), OpenCV (`cv2.imdecode` straight to RGB, one OpenCV thread),
simplejpeg (`decode_jpeg`, RGB, its default accurate DCT and upsampling) and PyTurboJPEG (`TurboJPEG.decode`,
RGB). A decoder that cannot be loaded (PyTurboJPEG without a libjpeg-turbo >= 3 C library, a missing package)
gets a row saying why, and is left out of the rest.

Input: camera-like JPEGs, the photos of the preprocessing fixtures (fixtures/preprocess/images, the
logo excepted) centre-cropped to each size's aspect ratio, resized with Pillow's Lanczos filter to 640x480 and
1280x720 and encoded by Pillow at quality 90 (4:2:0 chroma subsampling, as OpenCV's imencode in
image_transport's compressed plugin). Every decode runs on one thread.

Speed: median ms per decode over --runs rounds; in each round every decoder decodes every image once, so a
change in the machine's load reaches all decoders alike. Sizes run in the order above. Pillow's 1280x720 figure
depends on the process's history: about 3.8 ms when it is the first size a fresh process decodes, 8-13 ms after
the 640x480 rounds (on the dev box; Pillow allocates and copies more per image than the others, whose figures do
not move): the figure printed is the second, what a process that has decoded other sizes before sees.
Agreement: max and mean absolute difference from Pillow's RGB, in 0-255 levels (decoders differ in IDCT and
chroma upsampling, so small differences are expected), over all images and sizes.
Truncation: what each decoder does with the first half of a JPEG: raise, return None (OpenCV: no reason
given), or return an image silently (whose missing rows the decoder fills in).

Prints a table and writes JSON: the machine (with its 1-minute load average before and after the run, as other
jobs on a shared machine slow every decoder), the settings, and per decoder its version, ms per size, the
differences from Pillow and the truncation behaviour (or why it was skipped).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))
from machine import describe_machine  # noqa: E402

from conftest import IMAGES  # noqa: E402

SIZES = ((640, 480), (1280, 720))  # (W, H)
QUALITY = 90
WARMUP_ROUNDS = 5
Decoder = Callable[[bytes], np.ndarray]


def _pillow() -> tuple[Decoder, str]:
    import PIL

    def decode(data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as image:
            # convert() copies even an RGB image: only non-RGB JPEGs (greyscale, CMYK) pay for it.
            return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))

    return decode, PIL.__version__


def _opencv() -> tuple[Decoder, str]:
    import cv2

    cv2.setNumThreads(1)

    def decode(data: bytes) -> np.ndarray:
        return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR_RGB)

    return decode, cv2.__version__


def _simplejpeg() -> tuple[Decoder, str]:
    import simplejpeg

    def decode(data: bytes) -> np.ndarray:
        return simplejpeg.decode_jpeg(data, colorspace="RGB")

    return decode, simplejpeg.__version__


def _turbojpeg() -> tuple[Decoder, str]:
    import turbojpeg

    # Raises when the libjpeg-turbo C library is missing or older than this binding needs.
    jpeg = turbojpeg.TurboJPEG()

    def decode(data: bytes) -> np.ndarray:
        return jpeg.decode(data, pixel_format=turbojpeg.TJPF_RGB)

    return decode, getattr(turbojpeg, "__version__", "unknown")


LOADERS: dict[str, Callable[[], tuple[Decoder, str]]] = {
    "pillow": _pillow,
    "opencv": _opencv,
    "simplejpeg": _simplejpeg,
    "turbojpeg": _turbojpeg,
}


def load_decoders() -> tuple[dict[str, Decoder], dict[str, dict]]:
    """The decoders that load, and for every candidate its version or why it was skipped."""
    decoders: dict[str, Decoder] = {}
    info: dict[str, dict] = {}
    for name, loader in LOADERS.items():
        try:
            decoders[name], version = loader()
            info[name] = {"available": True, "version": version}
        except Exception as err:  # any failure to load is reported, not fatal: that is the point of the table
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            info[name] = {"available": False, "skipped": f"{type(err).__name__}: {first_line}"}
    return decoders, info


def camera_jpegs(width: int, height: int) -> list[bytes]:
    """The fixture photos, centre-cropped to ``width / height``, resized and JPEG-encoded at `QUALITY`."""
    jpegs = []
    for path in sorted(IMAGES.iterdir()):
        if path.stem == "logo":  # a graphic with flat colours, not a camera image
            continue
        with Image.open(path) as image:
            photo = image.convert("RGB")
        crop_width = min(photo.width, round(photo.height * width / height))
        crop_height = min(photo.height, round(photo.width * height / width))
        left, top = (photo.width - crop_width) // 2, (photo.height - crop_height) // 2
        photo = photo.crop((left, top, left + crop_width, top + crop_height)).resize((width, height), Image.LANCZOS)
        buffer = io.BytesIO()
        photo.save(buffer, format="JPEG", quality=QUALITY)
        jpegs.append(buffer.getvalue())
    return jpegs


def measure_speed(decoders: dict[str, Decoder], jpegs: list[bytes], runs: int) -> dict[str, float]:
    """Median ms per decode of each decoder, decoders interleaved round by round."""
    times: dict[str, list[float]] = {name: [] for name in decoders}
    for round_index in range(WARMUP_ROUNDS + runs):
        for name, decode in decoders.items():
            for data in jpegs:
                start = time.perf_counter()
                decode(data)
                elapsed_ms = 1e3 * (time.perf_counter() - start)
                if round_index >= WARMUP_ROUNDS:
                    times[name].append(elapsed_ms)
    return {name: statistics.median(values) for name, values in times.items()}


def measure_agreement(decode: Decoder, reference: Decoder, jpegs: list[bytes]) -> tuple[float, float]:
    """(max, mean) absolute difference from ``reference`` in 0-255 levels over ``jpegs``."""
    diffs = [np.abs(decode(data).astype(np.int16) - reference(data).astype(np.int16)) for data in jpegs]
    return float(max(d.max() for d in diffs)), float(np.mean([d.mean() for d in diffs]))


def truncation_behaviour(decode: Decoder, data: bytes) -> str:
    """What ``decode`` does with the first half of ``data``."""
    try:
        image = decode(data[: len(data) // 2])
    except Exception as err:
        return f"raises {type(err).__name__}"
    if image is None:
        return "returns None"
    return f"returns a {image.shape[1]}x{image.shape[0]} image silently"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None, help="where to write the results")
    parser.add_argument("--runs", type=int, default=200, help="timed rounds (every decoder, every image) per size")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs must be >= 1, got {args.runs}")

    load_before = os.getloadavg()[0]
    decoders, info = load_decoders()
    reference = decoders["pillow"]
    jpegs_by_size = {f"{w}x{h}": camera_jpegs(w, h) for w, h in SIZES}
    all_jpegs = [data for jpegs in jpegs_by_size.values() for data in jpegs]
    speed = {size: measure_speed(decoders, jpegs, args.runs) for size, jpegs in jpegs_by_size.items()}
    for name, decode in decoders.items():
        max_diff, mean_diff = measure_agreement(decode, reference, all_jpegs)
        info[name].update(
            ms={size: speed[size][name] for size in jpegs_by_size},
            max_abs_diff_vs_pillow=max_diff,
            mean_abs_diff_vs_pillow=mean_diff,
            truncated=truncation_behaviour(decode, all_jpegs[0]),
        )

    # On a shared machine other jobs slow every decoder: the load average tells how quiet the run was.
    load = {"before": load_before, "after": os.getloadavg()[0]}
    images_per_size = len(next(iter(jpegs_by_size.values())))
    print(
        f"JPEG decode, median ms per image ({images_per_size} photos per size, quality {QUALITY}, one thread, "
        f"{args.runs} rounds; {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"1-min load {load['before']:.1f} before, {load['after']:.1f} after)"
    )
    size_header = "".join(f"{size:>11}" for size in jpegs_by_size)
    print(f"{'decoder':<12}{'version':<10}{size_header}{'max|d|':>8}{'mean|d|':>9}   truncated input")
    for name, entry in info.items():
        if not entry["available"]:
            print(f"{name:<12}skipped: {entry['skipped']}")
            continue
        times = "".join(f"{entry['ms'][size]:>11.2f}" for size in jpegs_by_size)
        print(
            f"{name:<12}{entry['version']:<10}{times}{entry['max_abs_diff_vs_pillow']:>8.0f}"
            f"{entry['mean_abs_diff_vs_pillow']:>9.3f}   {entry['truncated']}"
        )
    print("|d|: absolute difference from Pillow's RGB in 0-255 levels, over all images")

    if args.json:
        result = {
            "machine": describe_machine(load_before),
            "settings": {
                "sizes": list(jpegs_by_size),
                "images_per_size": images_per_size,
                "quality": QUALITY,
                "runs": args.runs,
                "warmup_rounds": WARMUP_ROUNDS,
                "threads": 1,
                "source": "fixtures/preprocess/images (logo excepted), centre-cropped, Lanczos-resized",
            },
            "decoders": info,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
