# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Eager execution against CUDA-graph replay for a window of fixed size (CUDA only).

    python bench/cuda_graphs.py --json graphs.json [--frames 8] [--depth-frames 3] [--precision bf16] [--sdpa flash]

A stream with a fixed window size calls the network with the same shapes every window, so each call can be one
captured `torch.cuda.CUDAGraph` replayed (no per-kernel launch cost, no Python). This builds VGGT-1B with random
weights (torch.manual_seed(0); no download) and, at --height x --width, times two parts of such a window eagerly
and as a replayed graph:

- aggregator: the aggregator stage on S = --frames frames (the dominant stage);
- window: what the incremental session runs per window after DINOv2 (`run_heads`): the aggregator and the camera
  head on S frames, the depth head on --depth-frames of them (3 = stride 1 + the default overlap_frame_sets 2).

It reports ms per call (median of --repeats, CUDA events), the speed-up, the largest difference between the
replayed and the eager outputs, TFLOP/s (FLOPs counted on the meta device), and the peak GPU memory
(torch.cuda.max_memory_allocated). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from backends import SDPA_BACKENDS, machine_description, stage_flops, with_sdpa_backend
from vggt_ros.model import VGGT, VGGTConfig
from vggt_ros.model.stages import run_heads
from vggt_ros.runtime import PRECISIONS, Pipeline
from vggt_ros.session import DEPTH_OUTPUTS


def time_ms(call, warmup: int, repeats: int) -> float:
    """Median ms of ``call`` over ``repeats`` runs after ``warmup``, timed with CUDA events."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def capture(call):
    """A CUDA graph of ``call`` (after warm-up runs on a side stream, as capture requires) and its static outputs."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            call()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outputs = call()
    return graph, outputs


def compare(name: str, call, flops: float, args) -> dict:
    """Time ``call`` (returning a dict of tensors) eagerly and as a replayed graph; check the outputs agree."""
    eager_ms = time_ms(call, args.warmup, args.repeats)
    eager = call()
    graph, static = capture(call)
    graph_ms = time_ms(graph.replay, args.warmup, args.repeats)
    difference = max(float((static[k].float() - eager[k].float()).abs().max()) for k in eager)
    print(f"  {name}: eager {eager_ms:.2f} ms, graph {graph_ms:.2f} ms", file=sys.stderr)
    return {
        "eager_ms": eager_ms,
        "graph_ms": graph_ms,
        "speedup": eager_ms / graph_ms,
        "max_abs_difference": difference,
        "tflop": flops / 1e12,
        "eager_tflops_per_s": flops / 1e9 / eager_ms,
        "graph_tflops_per_s": flops / 1e9 / graph_ms,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None, help="where to write the results")
    parser.add_argument("--frames", type=int, default=8, help="window size S")
    parser.add_argument("--depth-frames", type=int, default=3, help="frames of the window the depth head runs on")
    parser.add_argument("--height", type=int, default=350)
    parser.add_argument("--width", type=int, default=518)
    parser.add_argument(
        "--precision",
        choices=sorted(PRECISIONS),
        default="bf16",
        help="of the encoder and the aggregator (the heads run in float32)",
    )
    parser.add_argument(
        "--sdpa",
        choices=("default", *SDPA_BACKENDS),
        default="flash",
        help="attention backend of the encoder and the aggregator",
    )
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error(f"CUDA graphs need a CUDA device; none is available here (torch {torch.__version__})")
    if not 1 <= args.depth_frames <= args.frames:
        parser.error(f"--depth-frames must be in [1, --frames = {args.frames}]")

    image_hw = (args.height, args.width)
    torch.manual_seed(0)
    model = VGGT(VGGTConfig()).eval()
    pipeline = Pipeline.from_model(model, device="cuda", precision=args.precision)
    run = with_sdpa_backend(pipeline.stage_runner(image_hw), None if args.sdpa == "default" else args.sdpa)
    tokens = pipeline.encode(torch.rand(args.frames, 3, *image_hw, device="cuda"))
    dense = torch.arange(args.frames - args.depth_frames, args.frames, device="cuda")
    flops = stage_flops(model.config, args.frames, image_hw)
    depth_flops = stage_flops(model.config, args.depth_frames, image_hw)["depth_head"]
    results = {
        "aggregator": compare(
            "aggregator", lambda: run("aggregator", {"patch_tokens": tokens}), flops["aggregator"], args
        ),
        "window": compare(
            "window",
            lambda: run_heads(run, tokens, model.config.tapped_layers, DEPTH_OUTPUTS, dense),
            flops["aggregator"] + flops["camera_head"] + depth_flops,
            args,
        ),
    }
    peak_gib = torch.cuda.max_memory_allocated() / 2**30

    machine = machine_description("cuda")
    print(
        f"VGGT-1B (random weights) at {args.height}x{args.width}, S = {args.frames}, depth head on "
        f"{args.depth_frames} frames, {args.precision}, attention {args.sdpa}, on {machine}; "
        f"median of {args.repeats}; peak {peak_gib:.1f} GiB"
    )
    print(
        f"{'part':<12}{'eager ms':>10}{'graph ms':>10}{'speedup':>9}{'TFLOP':>8}{'TFLOP/s eager':>15}"
        f"{'graph':>8}{'max |diff|':>12}"
    )
    for name, r in results.items():
        print(
            f"{name:<12}{r['eager_ms']:>10.2f}{r['graph_ms']:>10.2f}{r['speedup']:>9.2f}{r['tflop']:>8.2f}"
            f"{r['eager_tflops_per_s']:>15.1f}{r['graph_tflops_per_s']:>8.1f}{r['max_abs_difference']:>12.2e}"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine,
                    "image_hw": image_hw,
                    "frames": args.frames,
                    "depth_frames": args.depth_frames,
                    "precision": args.precision,
                    "sdpa": args.sdpa,
                    "peak_gib": peak_gib,
                    **results,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
