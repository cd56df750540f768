# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Benchmark: absolute trajectory error (ATE) of `vggt-ros-reconstruct` on a TUM RGB-D sequence (issue #16).

    python bench/tum_rgbd.py --sequence data/rgbd_dataset_freiburg1_desk --weights facebook/VGGT-1B \\
        --device cuda --json /tmp/fr1_desk.json [--metric-depth] [--sliding-window] [--max-frames 64] [--out DIR]

The sequence folder is used as published (https://cvg.cit.tum.de/data/datasets/rgbd-dataset/download): rgb.txt,
depth.txt and groundtruth.txt with their comment headers, the colour images at their six-decimal stamps, the
16-bit depth PNGs at 5000 units per metre, the ground truth at 100 Hz with four-decimal stamps. The offline
command runs in this process (`vggt_ros.offline`, ``--tum``) and writes its usual output folder; its
``trajectory.tum`` carries the images' own stamps.

Scoring is evo's, as the TUM benchmark's tools do it (`support.tum_rgbd.trajectory_ate`): the estimate's poses are
associated with the ground truth's nearest stamps within ``--max-diff`` (0.02 s), the estimate is aligned onto the
ground truth with Umeyama's method, Sim(3) for a monocular run (VGGT's unit is arbitrary) and SE(3) with
``--metric-depth`` (the depth images put the world in metres, so its scale error counts), and the ATE is the
translation error of each associated pose after the alignment, in metres: rmse, mean, median and max.

JSON: ``{"sequence", "settings", "alignment", "ate_m": {"rmse", "mean", "median", "max"}, "associated_poses",
"images", "estimated_poses", "merged_windows", "windows", "units", "scale", "seconds" (with loading the model),
"frames_per_second" (the reconstruction alone), "machine"}``.
A run that reconstructs nothing writes "ate_m": null, the windows' reasons and the command's "no_result". Prints
a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))
from backends import machine_description  # noqa: E402
from support.tum_rgbd import trajectory_ate  # noqa: E402
from vggt_ros import offline  # noqa: E402
from vggt_ros.runtime import PRECISIONS  # noqa: E402


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequence", type=Path, required=True, help="TUM RGB-D sequence folder")
    parser.add_argument("--weights", default="facebook/VGGT-1B", help="hub id, folder or weights file")
    parser.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    parser.add_argument("--json", type=Path, required=True, help="where to write the figures")
    parser.add_argument("--out", type=Path, default=None, help="the offline command's output folder (default: temp)")
    parser.add_argument("--metric-depth", action="store_true", help="depth.txt sets the metric scale; SE(3) fit")
    parser.add_argument("--sliding-window", action="store_true", help="the node's streaming mode")
    parser.add_argument("--max-frames", type=int, default=64, help="images per forward pass (chunks beyond)")
    parser.add_argument("--window-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=518)
    parser.add_argument("--precision", default="fp32", choices=tuple(PRECISIONS))
    parser.add_argument("--max-diff", type=float, default=0.02, help="association: largest stamp difference, s")
    return parser.parse_args()


def offline_arguments(args: argparse.Namespace, out: Path) -> list[str]:
    argv = [
        *("--tum", str(args.sequence), "--out", str(out), "--weights", str(args.weights)),
        *("--device", args.device, "--precision", args.precision, "--image-size", str(args.image_size)),
        *("--max-frames", str(args.max_frames), "--window-size", str(args.window_size)),
    ]
    return argv + ["--metric-depth"] * args.metric_depth + ["--sliding-window"] * args.sliding_window


def run(args: argparse.Namespace, out: Path) -> dict:
    argv = offline_arguments(args, out)
    started = time.perf_counter()
    status = offline.main(argv)
    seconds = time.perf_counter() - started
    summary_path = out / "summary.json"
    # Exit status 1 with a summary that says why nothing was reconstructed is a result (ate_m null), not a failure.
    summary = json.loads(summary_path.read_text()) if status in (0, 1) and summary_path.is_file() else None
    if summary is None or (status != 0 and not summary["no_result"]):
        raise SystemExit(f"vggt-ros-reconstruct {' '.join(argv)} failed with exit status {status}")
    result = {
        "sequence": args.sequence.name,
        "settings": {
            "offline_arguments": argv,
            "mode": summary["mode"],
            "metric_depth": args.metric_depth,
            "max_diff_s": args.max_diff,
        },
        "alignment": "SE(3)" if args.metric_depth else "Sim(3)",
        "images": summary["images"],
        "windows": summary["windows"],
        "merged_windows": summary["merged"],
        "units": summary["units"],
        "seconds": seconds,
        "frames_per_second": summary["images"] / max(summary["seconds"], 1e-9),
        "machine": machine_description(args.device),
    }
    if summary["trajectory"] is None:
        reasons = sorted({w["reason"] for w in summary["per_window"] if w["status"] != "merged"})
        no_result = {"no_result": summary["no_result"]}
        return {**result, "ate_m": None, "associated_poses": 0, "estimated_poses": 0, "reasons": reasons, **no_result}
    estimate = Path(summary["trajectory"])
    ate = trajectory_ate(args.sequence / "groundtruth.txt", estimate, args.max_diff, not args.metric_depth)
    estimated_poses = sum(1 for line in estimate.read_text().splitlines() if not line.startswith("#"))
    return {
        **result,
        "ate_m": {key: ate[f"{key}_m"] for key in ("rmse", "mean", "median", "max")},
        "associated_poses": ate["associated_poses"],
        "estimated_poses": estimated_poses,
        "scale": ate["scale"],
    }


def print_table(result: dict) -> None:
    ate = result["ate_m"]
    print(f"{'sequence':<32}{'mode':<16}{'fit':<8}{'poses':>12}{'rmse m':>10}{'mean m':>10}{'median m':>10}{'fps':>8}")
    poses = f"{result['associated_poses']}/{result['images']}"
    figures = "".join(f"{ate[k]:>10.4f}" for k in ("rmse", "mean", "median")) if ate else f"{'no trajectory':>30}"
    mode = result["settings"]["mode"]
    print(
        f"{result['sequence']:<32}{mode:<16}{result['alignment']:<8}{poses:>12}{figures}"
        f"{result['frames_per_second']:>8.2f}"
    )
    print(f"machine: {result['machine']}")


def main() -> None:
    args = parse_arguments()
    if args.out is not None:
        result = run(args, args.out)
    else:
        with tempfile.TemporaryDirectory(prefix="tum_rgbd_") as temporary:
            result = run(args, Path(temporary) / "out")
    print_table(result)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
