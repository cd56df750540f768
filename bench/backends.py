# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Time each backend per stage and end to end, and report achieved TFLOP/s.

    python bench/backends.py --model tiny --backends torch onnxruntime --device cpu --json out.json
    python bench/backends.py --model full --backends torch --device cuda --precision fp16 bf16 --json gpu.json

`--model full` builds VGGT-1B with random weights (no download); `tiny` loads the fixture model.
`--sdpa flash` (or efficient, cudnn, math) runs the encoder and the aggregator under that attention backend
only (torch.nn.attention.sdpa_kernel): they run in the chosen precision, while the torch backend keeps the heads
in float32, which flash attention does not take. The default lets torch choose.
FLOPs are counted once per (S, H, W) with torch's FlopCounterMode on the stages (a matmul of
m x k by k x n counts 2mkn) on a meta-device model, so TFLOP/s is comparable across backends.
VGGT-1B at 350x518: 2.35 TFLOP for S = 1, 23.5 TFLOP for S = 8. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))
from conftest import TINY  # noqa: E402
from vggt_ros.model import VGGT, VGGTConfig  # noqa: E402
from vggt_ros.model.stages import STAGE_NAMES, build_stages, run_stages, torch_stage_runner  # noqa: E402
from vggt_ros.runtime import BACKENDS, Pipeline  # noqa: E402
from vggt_ros.runtime.io_contract import FramesProfile  # noqa: E402


def machine_description(device: str) -> str:
    cpu = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__}, CUDA {torch.version.cuda}); host {cpu}"
    return f"CPU: {cpu} (torch {torch.__version__})"


# The --sdpa choices, and the stages they apply to: those the torch backend runs in the chosen precision.
SDPA_BACKENDS = {
    "flash": "FLASH_ATTENTION",
    "efficient": "EFFICIENT_ATTENTION",
    "cudnn": "CUDNN_ATTENTION",
    "math": "MATH",
}
SDPA_STAGES = ("dinov2", "aggregator")


def with_sdpa_backend(run, sdpa: str | None):
    """``run`` with `SDPA_STAGES` under one attention backend (``sdpa``: a `SDPA_BACKENDS` key; None: unchanged)."""
    if sdpa is None:
        return run
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = getattr(SDPBackend, SDPA_BACKENDS[sdpa])

    def run_with_backend(name, inputs):
        if name not in SDPA_STAGES:
            return run(name, inputs)
        with sdpa_kernel(backend):
            return run(name, inputs)

    return run_with_backend


def stage_flops(config: VGGTConfig, num_frames: int, image_hw: tuple[int, int]) -> dict[str, float]:
    """FLOPs per stage for one sequence, counted on a meta-device model: no memory, no compute."""
    with torch.device("meta"):
        model = VGGT(config).eval()
    stages = build_stages(model, image_hw)
    run = torch_stage_runner(stages, config.tapped_layers)
    flops = {}

    def counting(name, inputs):
        with FlopCounterMode(display=False) as counter:
            outputs = run(name, inputs)
        flops[name] = float(counter.get_total_flops())
        return outputs

    with torch.inference_mode():
        run_stages(counting, torch.empty(num_frames, 3, *image_hw, device="meta"), config.tapped_layers)
    return flops


def timed_runner(run, device: torch.device, times: dict[str, list[float]]):
    def timed(name, inputs):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        outputs = run(name, inputs)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.setdefault(name, []).append(1e3 * (time.perf_counter() - start))
        return outputs

    return timed


def bench_pipeline(
    pipeline: Pipeline, num_frames: int, image_hw, warmup: int, repeats: int, tapped, sdpa: str | None = None
) -> dict:
    images = torch.rand(num_frames, 3, *image_hw)
    times: dict[str, list[float]] = {}
    total: list[float] = []
    run = timed_runner(with_sdpa_backend(pipeline.stage_runner(image_hw), sdpa), pipeline.device, times)
    images = images.to(pipeline.device)
    for i in range(warmup + repeats):
        if i == warmup:
            times.clear()
        start = time.perf_counter()
        run_stages(run, images, tapped)
        if i >= warmup:
            total.append(1e3 * (time.perf_counter() - start))
    return {"stages_ms": {k: statistics.median(v) for k, v in times.items()}, "total_ms": statistics.median(total)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--backends", nargs="+", default=["torch", "onnxruntime"], choices=BACKENDS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", nargs="+", default=["fp32"], help="torch backend precisions")
    parser.add_argument("--frames", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    parser.add_argument("--height", type=int, default=350)
    parser.add_argument("--width", type=int, default=518)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--sdpa",
        choices=("default", *SDPA_BACKENDS),
        default="default",
        help="attention backend of the encoder and the aggregator (torch backend; default: torch's)",
    )
    parser.add_argument(
        "--engine-dir", default=None, help="existing export for onnxruntime/tensorrt (else exported to a temp dir)"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    image_hw = (args.height, args.width)
    sdpa = None if args.sdpa == "default" else args.sdpa
    if args.model == "tiny":
        model = VGGT.from_pretrained(TINY)
    else:
        torch.manual_seed(0)
        model = VGGT(VGGTConfig()).eval()
    tapped = model.config.tapped_layers
    flops = {s: stage_flops(model.config, s, image_hw) for s in args.frames}

    rows = []
    for backend in args.backends:
        precisions = args.precision if backend == "torch" else ["fp16" if backend == "tensorrt" else "fp32"]
        for precision in precisions:
            if backend == "torch":
                pipeline = Pipeline.from_model(model, device=args.device, precision=precision)
            else:
                engine_dir = args.engine_dir or tempfile.mkdtemp(prefix="vggt_bench_")
                if args.engine_dir is None:
                    from vggt_ros.export import export_onnx

                    export_onnx(model.cpu(), engine_dir, image_hw, FramesProfile(1, 4, max(args.frames)))
                options = {"precision": precision} if backend == "tensorrt" else {}
                pipeline = Pipeline.from_engine_dir(engine_dir, backend=backend, **options)
            for s in args.frames:
                result = bench_pipeline(pipeline, s, image_hw, args.warmup, args.repeats, tapped, sdpa)
                total_flops = sum(flops[s].values())
                rows.append(
                    {
                        "backend": backend,
                        "precision": precision,
                        "frames": s,
                        **result,
                        "tflop": total_flops / 1e12,
                        "tflops_per_s": total_flops / 1e12 / (result["total_ms"] / 1e3),
                        "stage_tflops_per_s": {
                            k: flops[s][k] / 1e12 / (v / 1e3) for k, v in result["stages_ms"].items()
                        },
                    }
                )
                print(f"  {backend}/{precision} S={s}: {result['total_ms']:.1f} ms", file=sys.stderr)

    machine = machine_description(args.device)
    header = (
        f"{'backend':<12}{'prec':<6}{'S':>4}"
        + "".join(f"{n:>13}" for n in STAGE_NAMES)
        + f"{'total ms':>11}{'TFLOP':>9}{'TFLOP/s':>9}"
    )
    print(
        f"VGGT {args.model} at {args.height}x{args.width} on {machine} (ms per call, median of {args.repeats}; "
        f"attention: {args.sdpa})"
    )
    print(header)
    for r in rows:
        print(
            f"{r['backend']:<12}{r['precision']:<6}{r['frames']:>4}"
            + "".join(f"{r['stages_ms'][n]:>13.2f}" for n in STAGE_NAMES)
            + f"{r['total_ms']:>11.1f}{r['tflop']:>9.3f}{r['tflops_per_s']:>9.2f}"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"machine": machine, "model": args.model, "image_hw": image_hw, "sdpa": args.sdpa, "rows": rows},
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
