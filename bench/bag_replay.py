# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Time per frame of `vggt-ros-reconstruct --bag`: reading and decoding the bag, and the whole run.

    python bench/bag_replay.py --json out.json
    python bench/bag_replay.py --frames 60 --size 1280x720 --json out.json

A bag of --frames camera-like frames (one photograph of fixtures panned across, --size, as
CompressedImage JPEG at quality 90 like image_transport's compressed plugin, and as raw rgb8 Image) is written to a
temporary folder with rosbags (mcap). For each it measures:

* read: `BagImageSource` over the bag (deserialisation and decoding), ms per frame;
* replay: the offline command end to end (`vggt_ros.offline.run`: reading, preprocessing, the network, the world,
  the map, the dataset exports), s per frame, with the tiny fixture model on the CPU at --image-size (154: the
  node tests' size), in the node's streaming mode (--sliding-window, window 8) and in chunks of 8 frames
  (--max-frames 8; joint passes over more frames grow quadratically in the global attention).

The network of the tiny model is far cheaper than VGGT-1B's, so the replay figure is the command's own overhead
plus a small network; bench/backends.py and bench/gpu.sh give the network's cost for the real model.

Prints a table and writes JSON with the machine and settings.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))

from backends import TINY, machine_description  # noqa: E402
from conftest import IMAGES  # noqa: E402
from support.bags import write_image_bag  # noqa: E402
from vggt_ros.offline import parse_arguments, run  # noqa: E402
from vggt_ros.recording.bag_reader import BagImageSource  # noqa: E402


def panned_frames(count: int, height: int, width: int) -> list[np.ndarray]:
    step = 4
    photo = Image.open(IMAGES / "chelsea.png").convert("RGB").resize((width + step * count, height))
    pixels = np.asarray(photo)
    return [np.ascontiguousarray(pixels[:, step * i : step * i + width]) for i in range(count)]


def time_reading(bag: Path) -> float:
    source = BagImageSource(bag, ["/camera/image_raw"])
    start = time.perf_counter()
    count = sum(1 for _ in source)
    return 1000.0 * (time.perf_counter() - start) / count


def time_replay(bag: Path, out: Path, image_size: int, extra: list[str]) -> tuple[float, int, int]:
    """(s per frame set, windows, merged windows) of one offline run."""
    args = parse_arguments(
        [
            "--bag",
            str(bag),
            "--topics",
            "/camera/image_raw",
            "--out",
            str(out),
            "--weights",
            str(TINY),
            "--device",
            "cpu",
            "--image-size",
            str(image_size),
            *extra,
        ]
    )
    summary = run(args)
    return summary["seconds_per_frame_set"], summary["windows"], summary["merged"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--size", default="640x480", help="WxH of the camera images")
    parser.add_argument(
        "--image-size",
        type=int,
        default=154,
        help="model input width (the tiny model's random weights give usable cameras at 154 here)",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    frames = panned_frames(args.frames, height, width)
    stamps = [1_000_000_000 + 33_333_333 * i for i in range(args.frames)]
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for label, compressed in (("jpeg", True), ("raw", False)):
            bag = write_image_bag(
                Path(scratch) / f"bag_{label}",
                "mcap",
                [("/camera/image_raw", list(zip(stamps, frames)))],
                compressed=compressed,
            )
            read_ms = time_reading(bag)
            window_s, windows, merged = time_replay(
                bag, Path(scratch) / f"out_{label}_window", args.image_size, ["--sliding-window"]
            )
            chunks_s, chunks, chunks_merged = time_replay(
                bag, Path(scratch) / f"out_{label}_chunks", args.image_size, ["--max-frames", "8"]
            )
            results[label] = {
                "read_ms_per_frame": read_ms,
                "replay_s_per_frame_sliding_window": window_s,
                "sliding_window_merged": f"{merged}/{windows}",
                "replay_s_per_frame_chunks_of_8": chunks_s,
                "chunks_merged": f"{chunks_merged}/{chunks}",
            }
    machine = machine_description("cpu")
    print(f"\nbag replay, {args.frames} frames of {width}x{height}, tiny model on the CPU ({machine})")
    print(
        f"{'bag':<6} {'read + decode ms/frame':>24} {'replay s/frame (window 8, merged)':>35} "
        f"{'replay s/frame (chunks of 8, merged)':>38}"
    )
    for label, row in results.items():
        window = f"{row['replay_s_per_frame_sliding_window']:.3f} ({row['sliding_window_merged']})"
        chunks = f"{row['replay_s_per_frame_chunks_of_8']:.3f} ({row['chunks_merged']})"
        print(f"{label:<6} {row['read_ms_per_frame']:>24.2f} {window:>35} {chunks:>38}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine,
                    "frames": args.frames,
                    "size": [width, height],
                    "image_size": args.image_size,
                    "results": results,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
