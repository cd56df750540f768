"""`vggt-ros-reconstruct`: the node's reconstruction core run offline on a folder of images.

The images (sorted by name) are one camera's frames in time order. They go through the same keyframe window,
network pipeline, Sim(3) world chaining and map as in the node, with the exact (official) preprocessing, and
the run writes `map.ply`, `trajectory.tum` (TUM format, the first image's optical frame) and `summary.json`.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from .mapping import MapConfig
from .preprocess import MODES, decode_image_file, preprocess_images
from .products import CloudConfig
from .reconstruction import ReconstructionConfig, Reconstructor
from .runtime import RuntimeConfig, create_pipeline
from .window import FrameSet, KeyframePolicy, SlidingWindow, WindowConfig

log = logging.getLogger("vggt_ros.offline")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
FRAME_PERIOD_NS = 100_000_000  # images carry no time: they are stamped 10 Hz apart


def image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ValueError(f"--images {folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vggt-ros-reconstruct", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, required=True, help="folder of images, sorted by name = time order")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--weights", default="facebook/VGGT-1B", help="hub id, folder or weights file (torch backend)")
    parser.add_argument("--config", default=None, help="model config.json for a bare weights file")
    parser.add_argument("--backend", choices=("torch", "onnxruntime", "tensorrt"), default="torch")
    parser.add_argument("--engine-dir", default="engines", help="exported set (onnxruntime / tensorrt)")
    parser.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"))
    parser.add_argument("--mode", default="crop", choices=MODES, help="preprocessing mode")
    parser.add_argument("--window-size", type=int, default=8)
    parser.add_argument("--window-stride", type=int, default=1)
    parser.add_argument("--keyframe-min-motion", type=float, default=0.0, help="grey-level change 0..1 (0: every image)")
    parser.add_argument("--confidence-percentile", type=float, default=50.0)
    parser.add_argument("--point-decimation", type=int, default=2)
    parser.add_argument("--voxel-size", type=float, default=0.01, help="map voxel, world units")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    files = image_files(args.images)
    window = SlidingWindow(WindowConfig(args.window_size, args.window_stride, KeyframePolicy(min_motion=args.keyframe_min_motion)))
    reconstructor = Reconstructor(
        create_pipeline(RuntimeConfig(backend=args.backend, weights=args.weights, model_config=args.config,
                                      device=args.device, precision=args.precision, engine_dir=args.engine_dir)),
        ReconstructionConfig(
            cloud=CloudConfig(confidence_percentile=args.confidence_percentile, point_decimation=args.point_decimation),
            map=MapConfig(voxel_size=args.voxel_size),
        ),
    )
    windows = []
    start = time.perf_counter()
    for index, path in enumerate(files):
        update = window.add(FrameSet(stamps_ns=(index * FRAME_PERIOD_NS,), images=(decode_image_file(path),)))
        if update.window is None:
            continue
        batch = update.window
        images = preprocess_images(batch.images, mode=args.mode)
        ids = [(stamp, 0) for stamp in batch.stamps_ns]
        out = reconstructor.process(images, ids, [stamp * 1e-9 for stamp in batch.stamps_ns], batch.new_count)
        residual = out.result.residual if out.result is not None else float("nan")
        log.info("window %d (images up to %s): %s%s", batch.sequence, path.name, out.status.value,
                 "" if out.merged and not out.reason else f" - {out.reason}")
        windows.append({"window": batch.sequence, "last_image": path.name, "status": out.status.value,
                        "reason": out.reason, "residual": residual})
    if not windows:
        raise ValueError(f"{len(files)} images gave no window; lower --window-size or --keyframe-min-motion")
    map_path, trajectory_path = reconstructor.save(args.out)
    counters = reconstructor.world.counters
    summary = {
        "images": len(files),
        "windows": len(windows),
        "merged": sum(w["status"] != "rejected" for w in windows),
        "segments": counters.segments,
        "map_points": len(reconstructor.map),
        "seconds": time.perf_counter() - start,
        "map": str(map_path),
        "trajectory": str(trajectory_path),
        "per_window": windows,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    log.info("%d images, %d windows (%d merged), %d map points -> %s", summary["images"], summary["windows"],
             summary["merged"], summary["map_points"], args.out)
    return summary


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        run(parse_arguments(argv))
    except (ValueError, RuntimeError, OSError) as err:  # user-facing failures: the message, not a traceback
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def entry() -> None:
    sys.exit(main())
