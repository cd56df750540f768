# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Benchmark: loop detection from the network's own encoder (`vggt_ros.world.place_recognition`).

The camera goes ``--laps`` times around the "loop" path of `test/support/synthetic.py` (``--lap-frames`` frames a
lap, 10 Hz, rendered through the textured room). Every frame is a keyframe: its descriptor is queried against the
earlier ones (with the default exclusions: ``min_age_s``, ``exclude_recent``) and then stored. A proposal (the
first candidate) is true when its camera centre is within ``--max-distance`` scene units of the query's and
their optical axes differ by less than ``--max-angle`` degrees (`detection_precision_recall`).

- precision: true proposals / proposals; recall: queries whose proposal is true / queries that had a true match.
  Twice: with the tiny test model's real DINOv2 encoder (random weights: a floor, not VGGT's figure) and with the
  pose test double `PosePlaceDescriptorForTests` (test/support/places.py).
- descriptor_ms: the descriptor of one keyframe from cached tokens at VGGT's size (1036 tokens x 1024, 518 x 392);
  search_ms_1000: one query against 1000 stored keyframes.
- keyframe_bytes: a keyframe's compact copy for the loop pass (JPEG image of a photograph at 518 x 392, point
  samples, descriptor), against `LoopVerificationConfig.max_keyframe_bytes`.

    python bench/place_recognition.py --json /tmp/place_recognition.json [--laps 2] [--lap-frames 300]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one query is a small matrix-vector product: threads only cost
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))

from conftest import TINY  # noqa: E402
from support.places import PosePlaceDescriptorForTests, stored_keyframes_at_vggt_size  # noqa: E402
from support.synthetic import camera_path, render_poses  # noqa: E402
from vggt_ros.geometry import invert_rigid  # noqa: E402
from vggt_ros.model import VGGT  # noqa: E402
from vggt_ros.runtime import Pipeline  # noqa: E402
from vggt_ros.world.loop_verification import LoopVerificationConfig  # noqa: E402
from vggt_ros.world.place_recognition import (  # noqa: E402
    PlaceDescriptor,
    PlaceIndex,
    PlaceRecognitionConfig,
    describe_images,
    detection_precision_recall,
)

IMAGE_HW = (98, 126)


def detection_scores(
    laps: int, lap_frames: int, config: PlaceRecognitionConfig, max_distance: float = 0.5, max_angle: float = 30.0
) -> dict:
    """Detection precision and recall on the synthetic room's loop path rendered ``laps`` times, twice: with the
    tiny model's real encoder (random weights: a floor, not VGGT's figure) and with the pose test double."""
    lap = camera_path("loop", lap_frames)
    sequence = render_poses("loop", np.concatenate([lap] * laps), IMAGE_HW)
    poses, stamps = invert_rigid(sequence.extrinsics), sequence.stamps_ns * 1e-9
    score = dict(config=config, max_distance=max_distance, max_angle_deg=max_angle)
    pipeline = Pipeline.from_model(VGGT.from_pretrained(TINY), device="cpu", precision="fp32")
    real = describe_images(pipeline, sequence.rgb, IMAGE_HW[1])
    indices = torch.arange(len(sequence.rgb), dtype=torch.float32)[:, None, None]
    double = PosePlaceDescriptorForTests(sequence)(indices)
    return {
        "frames": len(sequence.rgb),
        "real_encoder": asdict(detection_precision_recall(real, poses, stamps, **score)),
        "pose_test_double": asdict(detection_precision_recall(double, poses, stamps, **score)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True, help="where to write the results")
    parser.add_argument("--laps", type=int, default=2, help="times around the loop path")
    parser.add_argument("--lap-frames", type=int, default=300, help="frames per lap (10 Hz)")
    parser.add_argument("--max-distance", type=float, default=0.5, help="true revisit: centres closer (scene units)")
    parser.add_argument("--max-angle", type=float, default=30.0, help="true revisit: optical axes closer (deg)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    config = PlaceRecognitionConfig()
    results = detection_scores(args.laps, args.lap_frames, config, args.max_distance, args.max_angle)

    describe = PlaceDescriptor()
    tokens = torch.randn(1, 37 * 28, 1024)
    describe(tokens)
    start = time.perf_counter()
    for _ in range(20):
        describe(tokens)
    results["descriptor_ms"] = 1000 * (time.perf_counter() - start) / 20
    index = PlaceIndex(replace(config, capacity=1000))
    unit = np.random.default_rng(0).normal(size=(1001, 1024)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    for k in range(1000):
        index.add(k, float(k), unit[k])
    start = time.perf_counter()
    for _ in range(20):
        index.search(unit[1000], 2000.0)
    results["search_ms_1000"] = 1000 * (time.perf_counter() - start) / 20
    loops = LoopVerificationConfig()
    closer, frame_ids, _ = stored_keyframes_at_vggt_size(loops)
    results["keyframe_bytes"] = max(closer.keyframe_bytes(f) for f in frame_ids)
    results["keyframe_bytes_limit"] = loops.max_keyframe_bytes

    print(f"{'descriptor':18} {'precision':>9} {'recall':>7} {'proposed':>8} {'revisits':>8}")
    for name in ("real_encoder", "pose_test_double"):
        r = results[name]
        print(f"{name:18} {r['precision']:9.3f} {r['recall']:7.3f} {r['proposed']:8d} {r['revisits']:8d}")
    print(
        f"descriptor {results['descriptor_ms']:.2f} ms/keyframe, search {results['search_ms_1000']:.2f} ms over 1000, "
        f"compact keyframe {results['keyframe_bytes']} bytes (limit {loops.max_keyframe_bytes})"
    )
    args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
