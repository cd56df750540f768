"""`vggt-ros-reconstruct`: the node's reconstruction core run offline on a folder of images.

The images (sorted by name) are one camera's frames in time order. They go through the node's streaming
session (`vggt_ros.session`: keyframes, window, incremental network, Sim(3) world chaining, map), with the exact
(official) preprocessing, and the run writes `map.ply`, `trajectory.tum` (TUM format, the first image's optical frame) and `summary.json`.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from PIL import Image as PILImage

from .mapping import MapConfig
from .preprocess import MODES, decode_image_file, output_size
from .products import CloudConfig
from .runtime import BACKENDS, PRECISIONS, RuntimeConfig, create_pipeline
from .session import ReconstructionSession, SessionConfig
from .window import FrameSet, KeyframePolicy, WindowConfig
from .world import WorldConfig

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
    parser.add_argument("--backend", choices=BACKENDS, default="torch")
    parser.add_argument("--engine-dir", default="engines", help="exported set (onnxruntime / tensorrt)")
    parser.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    parser.add_argument("--precision", default="fp32", choices=tuple(PRECISIONS))
    parser.add_argument("--mode", default="crop", choices=MODES, help="preprocessing mode")
    parser.add_argument("--window-size", type=int, default=8)
    parser.add_argument("--window-stride", type=int, default=1)
    parser.add_argument("--keyframe-min-motion", type=float, default=0.0, help="grey-level change 0..1 (0: every image)")
    parser.add_argument("--confidence-percentile", type=float, default=50.0)
    parser.add_argument("--point-decimation", type=int, default=2)
    parser.add_argument("--voxel-size", type=float, default=0.01, help="map voxel, world units")
    parser.add_argument("--full-recompute", action="store_true",
                        help="run every network stage on every image of every window (slower; the reference the "
                        "incremental default is tested against)")
    return parser.parse_args(argv)


def model_input_size(files: list[Path], mode: str) -> tuple[int, int] | None:
    """Read every image's size (headers only) before any work: an unreadable file stops the run here. Returns the
    largest model input (H, W) when the images' model sizes differ (each frame is then padded to it, as the
    official loader pads a batch), else None."""
    sizes = set()
    for path in files:
        try:
            with PILImage.open(path) as image:
                width, height = image.size
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot read image file {path}: {err}") from None
        sizes.add(output_size(height, width, mode))
    if len(sizes) == 1:
        return None
    padded = max(h for h, _ in sizes), max(w for _, w in sizes)
    log.warning("images have different model input sizes %s; every image is padded with white to %dx%d (HxW)",
                sorted(sizes), *padded)
    return padded


def session_config(args: argparse.Namespace, model_hw: tuple[int, int] | None) -> SessionConfig:
    return SessionConfig(
        window=WindowConfig(args.window_size, args.window_stride, KeyframePolicy(min_motion=args.keyframe_min_motion)),
        cloud=CloudConfig(confidence_percentile=args.confidence_percentile, point_decimation=args.point_decimation),
        world=WorldConfig(retained_frames=max(WorldConfig.retained_frames, args.window_size)),
        map=MapConfig(voxel_size=args.voxel_size),
        preprocess_mode=args.mode,
        preprocessing="exact",
        model_hw=model_hw,
        incremental=not args.full_recompute,
    )


def run(args: argparse.Namespace) -> dict:
    files = image_files(args.images)
    model_hw = model_input_size(files, args.mode)
    session = ReconstructionSession(
        create_pipeline(RuntimeConfig(backend=args.backend, weights=args.weights, model_config=args.config,
                                      device=args.device, precision=args.precision, engine_dir=args.engine_dir)),
        session_config(args, model_hw),
    )
    windows = []
    start = time.perf_counter()
    for index, path in enumerate(files):
        out = session.push(FrameSet(stamps_ns=(index * FRAME_PERIOD_NS,), images=(decode_image_file(path),)))
        if out is None:
            continue
        residual = out.result.residual if out.result is not None else float("nan")
        log.info("window %d (images up to %s): %s%s", out.window.sequence, path.name, out.status.value,
                 "" if out.merged and not out.reason else f" - {out.reason}")
        windows.append({"window": out.window.sequence, "last_image": path.name, "status": out.status.value,
                        "reason": out.reason, "residual": residual})
    if not windows:
        raise ValueError(f"{len(files)} images gave no window; lower --window-size or --keyframe-min-motion")
    map_path, trajectory_path = session.save(args.out)
    counters = session.world.counters
    summary = {
        "images": len(files),
        "windows": len(windows),
        "merged": sum(w["status"] != "rejected" for w in windows),
        "segments": counters.segments,
        "map_points": len(session.map),
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
