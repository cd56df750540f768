# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Cost per new keyframe of the streaming session: full recompute against the incremental path.

    python bench/streaming.py --json out.json                # FLOPs; CPU timings of the tiny and the full-size model
    python bench/streaming.py --no-timing --json out.json    # FLOPs only (a minute or two)
    python bench/streaming.py --device cuda --precision bf16 --sdpa flash --models full --full-hw 350x518 \\
        --window-sizes 8 --strides 1 --windows 5 --json gpu.json

For each window size S (--window-sizes) and stride (--strides) a real `ReconstructionSession` runs over a stream
of frames in both of its modes, each in its own session: `incremental=False` (the reference: all five stages on
all S frames of every window) and `incremental=True` (DINOv2 once per frame, cached; aggregator and camera head
on the S frames; depth head on the frames new to the world plus `overlap_frame_sets` frame sets it holds; no
point head). Every stage call the session makes is recorded with its frame count and time; the figures below
are per new keyframe, i.e. per window divided by the stride, over windows after the window has filled.

FLOPs (full_tflop, incremental_tflop): VGGT-1B at --flop-hw (350x518), counted with torch's FlopCounterMode on
a meta-device model (bench/backends.py `stage_flops`) for exactly the stage calls the session made. Those calls
come from a session run with a small random model on small images: which frames each stage runs on depends on
the session's rules only, not on the model or the image size.

Timings (--models): ms per new keyframe end to end (`add` of the new frame sets, `infer`, `integrate`), ms per
stage of the network, and ms per step of the session around it (its `seconds`: preprocess, encode = DINOv2 of
the new frames, network = aggregator and heads -- in the full recompute all five --, world, cloud, map). `tiny`
is the fixture model (fixtures/vggt_tiny) at --tiny-hw; `full` is VGGT-1B's configuration with random
weights (torch.manual_seed(0)) at --full-hw, reduced on a CPU. On CUDA the peak memory
(torch.cuda.max_memory_allocated) of each run is reported too.

The stream: the synthetic textured room of test/support/synthetic.py, along its "loop" path, every third frame
of 200 (about the keyframe spacing bench/world_chaining.py gets there with min_motion 0.07), each frame a
keyframe. The network runs on every stage call the session makes, and that is what is timed, but the session is
handed the synthetic oracle's cameras and depth for the window (`FakeVGGTForWorldTests`: ground truth in VGGT's
conventions, with noise) in place of the network's own: with random weights the predicted cameras are unusable,
every window would be rejected, the world would hold none of the window's frames, and the incremental path would
run the depth head on every frame, which is not its steady state. The oracle's answer is prepared outside the
timed span. While the window fills, the aggregator and the heads are skipped (the session still encodes and
integrates those windows); then --warmup full windows run untimed and --windows are measured. Without Open3D
the map step is skipped (reported).

Prints tables and writes JSON: one key per window size and stride, "window_{S}_stride_{stride}", holding
full_tflop, incremental_tflop, the per-stage breakdown and, unless --no-timing, the timings per model and mode,
and the machine and settings of the run.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))

from backends import SDPA_BACKENDS, TINY, machine_description, stage_flops, with_sdpa_backend  # noqa: E402
from support.synthetic import FakeVGGTForWorldTests, camera_path, render_poses  # noqa: E402
from vggt_ros.model import VGGT, VGGTConfig  # noqa: E402
from vggt_ros.model.config import AggregatorConfig, CameraHeadConfig, DPTHeadConfig, EncoderConfig  # noqa: E402
from vggt_ros.model.stages import OUTPUT_NAMES, STAGE_NAMES  # noqa: E402
from vggt_ros.runtime import PRECISIONS, Pipeline  # noqa: E402
from vggt_ros.session import ReconstructionSession, SessionConfig  # noqa: E402
from vggt_ros.window import FrameSet, WindowConfig  # noqa: E402
from vggt_ros.world import WorldConfig  # noqa: E402

MODES = ("full", "incremental")
SESSION_STEPS = ("preprocess", "encode", "network", "world", "cloud", "map")
PATH, PATH_FRAMES, PATH_STEP = "loop", 200, 3
# The model whose session run gives the stage calls the FLOPs are counted for: the fixture's shape, random weights.
COUNTING_MODEL = VGGTConfig(
    embed_dim=16,
    encoder=EncoderConfig(depth=2, num_heads=2),
    aggregator=AggregatorConfig(num_heads=2),
    camera_head=CameraHeadConfig(num_heads=2),
    dpt_head=DPTHeadConfig(features=16, out_channels=(8, 12, 16, 20)),
)
COUNTING_HW = (42, 56)


def image_size(text: str) -> tuple[int, int]:
    """'HxW' -> (H, W), both multiples of the patch size (crop preprocessing then keeps the rendered images)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 126x182, got {text!r}") from None
    patch = VGGTConfig.patch_size
    if height <= 0 or width <= 0 or height % patch or width % patch:
        raise argparse.ArgumentTypeError(f"H and W must be positive multiples of {patch}, got {text!r}")
    return height, width


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StageLog:
    """Records each stage call of a pipeline: (stage, frames, ms), synchronised on CUDA."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.calls: list[tuple[str, int, float]] = []

    def wrap(self, run):
        def logged(name, inputs):
            synchronize(self.device)
            start = time.perf_counter()
            outputs = run(name, inputs)
            synchronize(self.device)
            frames = next(iter(inputs.values())).shape[0]
            self.calls.append((name, int(frames), 1e3 * (time.perf_counter() - start)))
            return outputs

        return logged


class OracleAnswered:
    """The session's network (see the module docstring): ``pipeline`` runs every call the session makes (unless
    ``run_network`` is off), and the session gets ``answer`` (the oracle's pose_enc, depth and depth_conf of the
    whole window, on the device) for those outputs."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.device = pipeline.device
        self.frames, self.image_hw = pipeline.frames, pipeline.image_hw
        self.answer: dict[str, torch.Tensor] = {}
        self.run_network = True

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.pipeline.encode(images)

    def predict(self, patch_tokens, image_hw, outputs, dense_frames) -> dict[str, torch.Tensor]:
        network = self.pipeline.predict(patch_tokens, image_hw, outputs, dense_frames) if self.run_network else {}
        keep = dense_frames.to(self.device)
        return {**network, **{k: v if k == "pose_enc" else v.index_select(0, keep) for k, v in self.answer.items()}}

    def __call__(self, images: torch.Tensor, outputs=OUTPUT_NAMES) -> dict[str, torch.Tensor]:
        network = self.pipeline(images, outputs) if self.run_network else {}
        return {**network, **{k: v[None] for k, v in self.answer.items()}}


class NoMap:
    """Stands in for the session's map where Open3D (its voxel grid) is not installed: the map step does nothing."""

    def reset(self) -> None:
        pass

    def add(self, points, colors) -> int:
        return 0


@dataclass(frozen=True)
class WindowRecord:
    """One measured window: seconds end to end, the stage calls (stage, frames, ms), the session's seconds, status."""

    seconds: float
    calls: tuple[tuple[str, int, float], ...]
    steps: dict[str, float]
    status: str


def stream(image_hw: tuple[int, int], frames: int):
    """The synthetic stream (see the module docstring) at ``image_hw``, ``frames`` long."""
    poses = camera_path(PATH, max(PATH_FRAMES, PATH_STEP * frames))[::PATH_STEP][:frames]
    return render_poses(PATH, poses, image_hw)


def run_session(
    pipeline: Pipeline,
    image_hw,
    window: int,
    stride: int,
    incremental: bool,
    overlap: int,
    warmup: int,
    windows: int,
    sdpa: str | None,
) -> list[WindowRecord]:
    """Run one session over the stream; the records of the ``windows`` full windows after ``warmup`` untimed ones."""
    device = pipeline.device
    log = StageLog(device)
    instrumented = Pipeline(
        lambda hw: log.wrap(with_sdpa_backend(pipeline.stage_runner(hw), sdpa)),
        pipeline.tapped_layers,
        device,
        pipeline.backend,
        pipeline.patch_size,
    )
    network = OracleAnswered(instrumented)
    config = SessionConfig(
        window=WindowConfig(window, stride),
        world=WorldConfig(retained_frames=max(WorldConfig.retained_frames, window)),
        image_size=image_hw[1],
        overlap_frame_sets=overlap,
        incremental=incremental,
    )
    session = ReconstructionSession(network, config)
    if find_spec("open3d") is None:
        session.map = NoMap()
    # The first full window comes at most window + stride - 2 frames in, then one every stride frames.
    sequence = stream(image_hw, window + stride * (warmup + windows))
    oracle = FakeVGGTForWorldTests(sequence)
    frame_of_stamp = {int(s): i for i, s in enumerate(sequence.stamps_ns)}
    records: list[WindowRecord] = []
    full_windows = 0
    adding = 0.0
    for i, stamp in enumerate(sequence.stamps_ns):
        start = time.perf_counter()
        update = session.add(FrameSet((int(stamp),), (sequence.rgb[i],)))
        adding += time.perf_counter() - start
        if update.window is None:
            continue
        indices = [frame_of_stamp[s] for s in update.window.stamps_ns]
        answer = oracle.model_output(indices)
        network.answer = {k: torch.from_numpy(v[0]).to(device) for k, v in answer.items()}
        network.run_network = full = len(indices) == window
        log.calls.clear()
        synchronize(device)
        start = time.perf_counter()
        output = session.integrate(session.infer(update.window))
        synchronize(device)
        seconds, adding = adding + time.perf_counter() - start, 0.0
        if output.window.stamps_ns != update.window.stamps_ns:
            raise RuntimeError(
                f"the session re-anchored window {update.window.sequence} after a rejection "
                f"({output.reason}); the oracle answered for the window as emitted"
            )
        if not full:
            continue
        full_windows += 1
        if full_windows > warmup:
            records.append(WindowRecord(seconds, tuple(log.calls), dict(output.seconds), output.status.value))
            if len(records) == windows:
                return records
    raise RuntimeError(f"the stream gave {len(records)} measured windows, expected {windows}")


def stage_frames(records: list[WindowRecord]) -> dict[str, float]:
    """Frames each stage ran on per window (0: not run), mean over the records (the same in each unless a window
    was rejected: the statuses say)."""
    frames = Counter()
    for record in records:
        for name, n, _ in record.calls:
            frames[name] += n
    return {name: frames[name] / len(records) for name in STAGE_NAMES}


@functools.lru_cache(maxsize=None)
def flops_by_stage(config: VGGTConfig, frames: int, image_hw: tuple[int, int]) -> dict[str, float]:
    return stage_flops(config, frames, image_hw)


def flops_per_keyframe(records: list[WindowRecord], stride: int, config: VGGTConfig, image_hw) -> dict[str, float]:
    """Mean FLOPs per stage per new keyframe of the records' stage calls, for ``config`` at ``image_hw``."""
    total = Counter()
    for record in records:
        for name, frames, _ in record.calls:
            total[name] += flops_by_stage(config, frames, tuple(image_hw))[name]
    return {name: total[name] / len(records) / stride for name in STAGE_NAMES}


def count_flops(args) -> dict[str, dict]:
    """full/incremental TFLOP per new keyframe of VGGT-1B at --flop-hw, from the session's own stage calls."""
    torch.manual_seed(0)
    pipeline = Pipeline.from_model(VGGT(COUNTING_MODEL).eval(), device="cpu")
    results = {}
    for window in args.window_sizes:
        for stride in args.strides:
            entry = {}
            for mode in MODES:
                records = run_session(
                    pipeline,
                    COUNTING_HW,
                    window,
                    stride,
                    mode == "incremental",
                    args.overlap,
                    warmup=0,
                    windows=2,
                    sdpa=None,
                )
                flops = flops_per_keyframe(records, stride, VGGTConfig(), args.flop_hw)
                entry[f"{mode}_tflop"] = sum(flops.values()) / 1e12
                entry[f"{mode}_stage_tflop"] = {k: v / 1e12 for k, v in flops.items()}
                entry[f"{mode}_stage_frames"] = stage_frames(records)
            entry["incremental_over_full"] = entry["incremental_tflop"] / entry["full_tflop"]
            results[f"window_{window}_stride_{stride}"] = entry
            print(f"  FLOPs: window {window} stride {stride} counted", file=sys.stderr)
    return results


def summarise(records: list[WindowRecord], stride: int, flops: dict[str, float], device: torch.device) -> dict:
    """Medians per new keyframe over the measured windows."""
    ms = 1e3 * statistics.median(r.seconds for r in records) / stride
    stage_ms = {
        name: statistics.median(sum(t for n, _, t in r.calls if n == name) for r in records) / stride
        for name in STAGE_NAMES
    }
    session_ms = {
        step: 1e3 * statistics.median(r.steps.get(step, 0.0) for r in records) / stride for step in SESSION_STEPS
    }
    tflop = sum(flops.values()) / 1e12
    summary = {
        "ms_per_keyframe": ms,
        "stage_ms": stage_ms,
        "session_ms": session_ms,
        "stage_frames": stage_frames(records),
        "windows": len(records),
        "statuses": dict(Counter(r.status for r in records)),
        "tflop_per_keyframe": tflop,
        "tflops_per_s": tflop / (ms / 1e3),
    }
    if device.type == "cuda":
        summary["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return summary


def time_sessions(args, device: torch.device, results: dict) -> list[dict]:
    """Add the timings to ``results``; returns the table rows."""
    rows = []
    sdpa = None if args.sdpa == "default" else args.sdpa
    for name in args.models:
        if name == "tiny":
            model, image_hw = VGGT.from_pretrained(TINY), args.tiny_hw
        else:
            torch.manual_seed(0)
            model, image_hw = VGGT(VGGTConfig()).eval(), args.full_hw
        pipeline = Pipeline.from_model(model, device=device, precision=args.precision)
        for window in args.window_sizes:
            for stride in args.strides:
                entry = {"image_hw": list(image_hw)}
                for mode in MODES:
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats(device)
                    records = run_session(
                        pipeline,
                        image_hw,
                        window,
                        stride,
                        mode == "incremental",
                        args.overlap,
                        args.warmup,
                        args.windows,
                        sdpa,
                    )
                    flops = flops_per_keyframe(records, stride, model.config, image_hw)
                    entry[mode] = summarise(records, stride, flops, device)
                    print(
                        f"  {name} {image_hw[0]}x{image_hw[1]} window {window} stride {stride} {mode}: "
                        f"{entry[mode]['ms_per_keyframe']:.1f} ms per keyframe",
                        file=sys.stderr,
                    )
                entry["speedup"] = entry["full"]["ms_per_keyframe"] / entry["incremental"]["ms_per_keyframe"]
                rows += [
                    {
                        "model": name,
                        "image_hw": image_hw,
                        "window": window,
                        "stride": stride,
                        "mode": mode,
                        "speedup": entry["speedup"] if mode == "incremental" else None,
                        **entry[mode],
                    }
                    for mode in MODES
                ]
                results[f"window_{window}_stride_{stride}"].setdefault("timing", {})[f"{name}_model"] = entry
        del model, pipeline
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def frames_text(frames: dict[str, float]) -> str:
    return "/".join(f"{frames[name]:g}" for name in STAGE_NAMES)


def print_flops(results: dict, args) -> None:
    print(
        f"VGGT-1B at {args.flop_hw[0]}x{args.flop_hw[1]}: TFLOP per new keyframe (overlap_frame_sets "
        f"{args.overlap}); frames per window of {'/'.join(STAGE_NAMES)}"
    )
    print(f"{'window':>6}{'stride':>7}{'full':>9}{'incr.':>9}{'incr/full':>10}   {'full frames':<16}incremental frames")
    for key, entry in results.items():
        _, window, _, stride = key.split("_")
        print(
            f"{window:>6}{stride:>7}{entry['full_tflop']:>9.2f}{entry['incremental_tflop']:>9.2f}"
            f"{entry['incremental_over_full']:>10.2f}   "
            f"{frames_text(entry['full_stage_frames']):<16}{frames_text(entry['incremental_stage_frames'])}"
        )


def print_timings(rows: list[dict], args, machine: str) -> None:
    print(
        f"\nms per new keyframe on {machine}, {args.precision}, attention {args.sdpa}; median of {args.windows} "
        "windows after the window filled.\nNetwork stages | session steps (incremental: encode = DINOv2 of the new "
        "frames, network = the rest; full: all five stages in network). speedup = full / incremental"
    )
    short = {
        "dinov2": "dinov2",
        "aggregator": "aggr",
        "camera_head": "camera",
        "depth_head": "depth",
        "point_head": "point",
    }
    header = (
        f"{'model':<6}{'HxW':>9}{'win':>4}{'str':>4} {'mode':<12}{'total':>9}"
        + "".join(f"{short[s]:>8}" for s in STAGE_NAMES)
        + " |"
        + "".join(f"{s[:7]:>8}" for s in SESSION_STEPS)
        + f"{'TFLOP/s':>9}{'speedup':>8}"
        + "  statuses"
    )
    print(header)
    for r in rows:
        statuses = ",".join(f"{k} {v}" for k, v in r["statuses"].items())
        speedup = "" if r["speedup"] is None else f"{r['speedup']:.2f}"
        print(
            f"{r['model']:<6}{r['image_hw'][0]:>4}x{r['image_hw'][1]:<4}{r['window']:>4}{r['stride']:>4} "
            f"{r['mode']:<12}{r['ms_per_keyframe']:>9.1f}"
            + "".join(f"{r['stage_ms'][s]:>8.1f}" for s in STAGE_NAMES)
            + " |"
            + "".join(f"{r['session_ms'][s]:>8.1f}" for s in SESSION_STEPS)
            + f"{r['tflops_per_s']:>9.3g}{speedup:>8}  {statuses}"
            + (f", peak {r['peak_gib']:.1f} GiB" if "peak_gib" in r else "")
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None, help="where to write the results")
    parser.add_argument("--window-sizes", nargs="+", type=int, default=[4, 8, 16], help="keyframes per window")
    parser.add_argument("--strides", nargs="+", type=int, default=[1, 2], help="new keyframes between windows")
    parser.add_argument(
        "--overlap",
        type=int,
        default=SessionConfig.overlap_frame_sets,
        help="overlap_frame_sets: frame sets the world holds that get depth (incremental path)",
    )
    parser.add_argument("--flop-hw", type=image_size, default=(350, 518), help="image size of the FLOP count, HxW")
    parser.add_argument("--no-timing", action="store_true", help="count FLOPs only")
    parser.add_argument(
        "--models",
        nargs="+",
        choices=("tiny", "full"),
        default=["tiny", "full"],
        help="models to time: the tiny fixture, VGGT-1B's configuration with random weights",
    )
    parser.add_argument("--tiny-hw", type=image_size, default=(350, 518), help="image size of the tiny model, HxW")
    parser.add_argument(
        "--full-hw",
        type=image_size,
        default=(70, 98),
        help="image size of the full-size model, HxW (reduced for a CPU; 350x518 on a GPU)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (timings)")
    parser.add_argument(
        "--precision",
        choices=sorted(PRECISIONS),
        default="fp32",
        help="of the encoder and the aggregator (the heads run in float32)",
    )
    parser.add_argument(
        "--sdpa",
        choices=("default", *SDPA_BACKENDS),
        default="default",
        help="attention backend of the encoder and the aggregator (default: torch's choice)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice; 1 is steadier on a busy machine)",
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed full windows before the measured ones")
    parser.add_argument("--windows", type=int, default=2, help="measured windows per session")
    args = parser.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available here (torch {torch.__version__})")
    for window in args.window_sizes:
        if window < 2 or not 1 <= args.overlap < window:
            parser.error(f"window sizes must be >= 2 and exceed --overlap {args.overlap}, got {window}")
        if any(not 1 <= stride <= window for stride in args.strides):
            parser.error(f"strides must be in [1, window size {window}], got {args.strides}")
    if args.warmup < 0 or args.windows < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--warmup must be >= 0, --windows and --threads >= 1")

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    machine = machine_description(args.device)
    results = count_flops(args)
    rows = [] if args.no_timing else time_sessions(args, device, results)

    print_flops(results, args)
    if rows:
        print_timings(rows, args, machine)
        if find_spec("open3d") is None:
            print("Open3D is not installed: the map step was skipped (the session's map was a stand-in).")
    if args.json:
        settings = {
            "flop_hw": list(args.flop_hw),
            "overlap_frame_sets": args.overlap,
            "precision": args.precision,
            "sdpa": args.sdpa,
            "warmup": args.warmup,
            "windows": args.windows,
            "stream": f"test/support/synthetic.py {PATH!r} path, one frame in {PATH_STEP} of {PATH_FRAMES}; "
            "the session gets the oracle's cameras and depth",
            "map": "ran" if find_spec("open3d") else "skipped: Open3D not installed",
            "per": "new keyframe (per window / stride); *stage_frames: per window",
        }
        # Only window keys at the top level: each entry carries the machine and the settings it was measured with.
        entries = {key: {**entry, "machine": machine, "settings": settings} for key, entry in results.items()}
        args.json.write_text(json.dumps(entries, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
