# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Benchmark: streaming preprocessing (`preprocess_frames`) against the exact route (`preprocess_images`).

Accuracy: for every single-image case of the official fixtures, the max and mean absolute difference from the
official tensor in units of 1/255. It is measured for both resize kernels: the one `preprocess_frames` uses on
this machine, and the float32 kernel it uses on devices without a uint8 kernel (run here on the CPU).
Speed: median and best wall time of a batch of S same-size frames through each route, for camera-like sizes made by
resizing the rocket fixture.

    python bench/preprocess_fast.py --json /tmp/preprocess_fast.json [--frames 4] [--repeats 7] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))
from conftest import FIXTURES as REPO_FIXTURES  # noqa: E402
from vggt_ros.preprocess import (  # noqa: E402
    _fit_centred,
    _resize_like_pillow_float,
    _resized_size,
    decode_image_file,
    output_size,
    preprocess_frames,
    preprocess_images,
    to_unit_float,
)

FIXTURES = REPO_FIXTURES / "preprocess"
# Every image of the fixture folder, by the name its expected tensors are stored under (file stem).
SINGLE_IMAGE_FILES = {path.stem: path.name for path in sorted((FIXTURES / "images").iterdir())}
CAMERA_SIZES = ((640, 480), (1280, 720), (1920, 1080))  # (W, H)


def _float_kernel_route(frames: np.ndarray, mode: str) -> torch.Tensor:
    """`preprocess_frames` as it runs on a GPU (float32 kernel), forced onto the CPU."""
    batch = torch.from_numpy(frames.copy()).permute(0, 3, 1, 2)
    height, width = frames.shape[1:3]
    resized = _resize_like_pillow_float(batch, _resized_size(height, width, mode, 518))
    return to_unit_float(_fit_centred(resized, *output_size(height, width, mode)))


def _diff_255(actual: torch.Tensor, expected: torch.Tensor) -> tuple[float, float]:
    diff = (actual.cpu().double() - expected.double()).abs() * 255
    return diff.max().item(), diff.mean().item()


def measure_accuracy(device: str) -> list[dict]:
    expected = load_file(str(FIXTURES / "preprocess_expected.safetensors"))
    rows = []
    for key in sorted(expected):
        name, mode = key.split("__")
        if name not in SINGLE_IMAGE_FILES:
            continue  # the mixed-size batch cannot be one same-size frame batch
        official = expected[key].float() / 255
        frames = decode_image_file(FIXTURES / "images" / SINGLE_IMAGE_FILES[name])[None]
        fast_max, fast_mean = _diff_255(preprocess_frames(frames, mode, device=device), official)
        float_max, float_mean = _diff_255(_float_kernel_route(frames, mode), official)
        rows.append(
            {
                "case": key,
                "shape": list(official.shape),
                "fast_max_abs_255": fast_max,
                "fast_mean_abs_255": fast_mean,
                "float_kernel_max_abs_255": float_max,
                "float_kernel_mean_abs_255": float_mean,
            }
        )
    return rows


def _time_ms(fn, repeats: int) -> tuple[float, float]:
    """(median, best) wall time in ms; the best is the least disturbed by other work on a shared machine."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times), 1000 * min(times)


def measure_speed(device: str, num_frames: int, repeats: int) -> list[dict]:
    rocket = Image.open(FIXTURES / "images" / "rocket.jpg").convert("RGB")
    rows = []
    for width, height in CAMERA_SIZES:
        frames = np.stack([np.asarray(rocket.resize((width, height), Image.Resampling.BICUBIC))] * num_frames)
        frame_list = list(frames)
        for mode in ("crop", "pad"):
            exact_ms, exact_best_ms = _time_ms(partial(preprocess_images, frame_list, mode), repeats)
            fast_ms, fast_best_ms = _time_ms(partial(preprocess_frames, frames, mode, device=device), repeats)
            float_ms, float_best_ms = _time_ms(partial(_float_kernel_route, frames, mode), repeats)
            rows.append(
                {
                    "frames": num_frames,
                    "width": width,
                    "height": height,
                    "mode": mode,
                    "exact_median_ms": exact_ms,
                    "exact_best_ms": exact_best_ms,
                    "fast_median_ms": fast_ms,
                    "fast_best_ms": fast_best_ms,
                    "float_kernel_cpu_median_ms": float_ms,
                    "float_kernel_cpu_best_ms": float_best_ms,
                    "speedup_median": exact_ms / fast_ms,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True, help="where to write the results")
    parser.add_argument("--frames", type=int, default=4, help="frames per batch in the speed test")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per measurement (median reported)")
    parser.add_argument("--device", default="cpu", help="torch device for preprocess_frames")
    args = parser.parse_args()

    accuracy = measure_accuracy(args.device)
    speed = measure_speed(args.device, args.frames, args.repeats)

    print(f"fast route vs official tensors, |diff| in 1/255 (device {args.device}; float kernel on cpu)")
    print(f"{'case':<24}{'shape':<18}{'fast max':>9}{'fast mean':>11}{'float max':>10}{'float mean':>11}")
    for row in accuracy:
        print(
            f"{row['case']:<24}{str(tuple(row['shape'])):<18}{row['fast_max_abs_255']:>9.3f}"
            f"{row['fast_mean_abs_255']:>11.5f}{row['float_kernel_max_abs_255']:>10.3f}"
            f"{row['float_kernel_mean_abs_255']:>11.5f}"
        )
    print()
    print(f"speed, ms per batch, median / best (torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs)")
    print(f"{'frames x WxH':<18}{'mode':<6}{'exact':>14}{'fast':>14}{'speedup':>9}{'float cpu':>14}")
    for row in speed:
        size = f"{row['frames']} x {row['width']}x{row['height']}"
        print(
            f"{size:<18}{row['mode']:<6}{row['exact_median_ms']:>7.1f} /{row['exact_best_ms']:>5.1f}"
            f"{row['fast_median_ms']:>7.1f} /{row['fast_best_ms']:>5.1f}{row['speedup_median']:>8.1f}x"
            f"{row['float_kernel_cpu_median_ms']:>7.1f} /{row['float_kernel_cpu_best_ms']:>5.1f}"
        )

    result = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "pillow": Image.__version__,
            "device": args.device,
        },
        "accuracy": accuracy,
        "speed": speed,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
