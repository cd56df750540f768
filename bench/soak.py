# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Soak test: a long run through the streaming session; memory and time per window must not grow.

`vggt_ros.session.ReconstructionSession` runs with the node's defaults (`vggt_ros.live.parameters.NodeParameters`:
window size and stride, keyframe policy, world and trajectory bounds, map budget, cloud filter, cpu_threads)
except image_size, set to the width of the small rendered images (84x56, so the run is fast). The network is the
test double `FakePipelineForWorldTests` (test/support/synthetic.py). One camera path of the synthetic room
(--path, 200 frames) is traversed back and forth (ping-pong) at 10 Hz with ever-increasing stamps, so the camera
keeps moving, every frame set is a keyframe (the node's keyframe_min_motion is 0.0) and every frame runs a window
that merges into one growing world. The test double's noise seed changes with every traversal, so each pass sees
fresh noise as a real camera would (with one seed every pass repeats the same errors, and the world drifts by the
same offset on every round trip). The test double also records every answer for evaluation; the soak empties
that record after each window, so that only the session's memory is measured.

Every --sample-every frames the script records
  - RSS: VmRSS of /proc/self/status after gc.collect() and malloc_trim(0) (so it counts the memory in use, not
    what the allocator keeps cached), and the same without the map's arrays;
  - the mean time per window over the frames since the last sample: wall-clock (`push`), CPU (process time, all
    threads), and CPU without the map step (`GrowingMap.add`).
The first --warmup frames are excluded (first imports, allocator growth, the world's keyframe store filling up
(1,000 frames), and the map filling up to its point budget for the first time, at about 1,700 frames with these
settings): RSS "start" is the sample at the end of the warm-up, and the slopes are least-squares fits over the
samples from there on.
  - RSS does not grow when its slope is below --rss-tolerance MB per 10k frames (default 5);
  - time does not grow when the slope of the per-interval means is below --ms-tolerance (default 10 %) of their
    mean, per 10k frames.
A falling slope passes: a soak looks for what grows without bound (a leak, state that is never dropped), and
memory handed back or windows getting cheaper (the map coarsening) are neither; the slope is printed either way.
At the end, the bounded structures are reported against their limits: keyframes the world keeps (recent +
decimated history), alignment samples, map points, the session's per-frame cache, the sliding window.

Loop closure is on, as in the node (--no-loop-closure turns it off): after each window the session's loop pass and
pose graph run as `vggt_ros.live.reconstruction.LiveReconstruction.close_loops` runs them (`close_loops`, then
`apply_loops`). The test double's token is a frame index, so the place descriptor is the pose test double
`PosePlaceDescriptorForTests` (test/support/places.py): every traversal revisits the path, loops are found and
verified by the fake network, and the loop memory fills up. Each sample also records that memory: the keyframe
map (`vggt_ros.world.loop_closure.KeyframeMap.nbytes`, per-keyframe point sets) and the place store (compact
keyframes `LoopKeyframe.nbytes` and their descriptors), against their documented bounds: the keyframe map at most
``map_points_per_keyframe`` x 15 bytes per map keyframe and no more map keyframes than the world keeps; the place
store at most ``capacity`` keyframes of at most ``max_keyframe_bytes`` + one descriptor each.

The map is bounded by its point budget, not by the scene: on a revisited scene depth noise and drift keep landing
points in new voxels until the budget is reached, then the map coarsens (`vggt_ros.mapping`) and grows again; the
frames where the voxel size changed are reported. Its merge time does not grow with its size (new voxels are
folded into the sorted table in batches), but its memory follows that bounded saw-tooth, whose phase at the
start and end of a run tilts a memory slope: the exit status is 0 when neither RSS without the map's arrays nor
CPU time per window (map step included) grows and every structure, the map included, is within its bound, else 1. The
raw RSS slope is printed and written too.

    python bench/soak.py --frames 20000 --json /tmp/soak.json [--path loop] [--sample-every N] [--warmup N]
        [--no-loop-closure]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))

from support.places import PosePlaceDescriptorForTests  # noqa: E402
from support.synthetic import (  # noqa: E402
    PATHS,
    FakePipelineForWorldTests,
    FakeVGGTForWorldTests,
    render_sequence,
)
from vggt_ros.live.parameters import NodeParameters  # noqa: E402
from vggt_ros.mapping import GrowingMap  # noqa: E402
from vggt_ros.session import ReconstructionSession  # noqa: E402
from vggt_ros.window import FrameSet  # noqa: E402

IMAGE_HW = (56, 84)  # rendered (H, W); the model input width (crop mode) is W, a multiple of 14
PATH_FRAMES = 200
FRAME_PERIOD_NS = 100_000_000  # 10 Hz
LIBC = ctypes.CDLL("libc.so.6")


def rss_mb() -> float:
    """Resident set size of this process in MB (VmRSS), after collecting garbage and trimming the malloc heap."""
    gc.collect()
    LIBC.malloc_trim(0)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS line in /proc/self/status")


def map_mb(growing_map: GrowingMap) -> float:
    """MB held by the map's arrays (its voxel table)."""
    return growing_map.nbytes / 2**20


def ping_pong(frame: int, length: int) -> int:
    """Index into a path of ``length`` frames at step ``frame`` when walking it back and forth: 0 .. L-1 .. 1, 0 .."""
    period = 2 * (length - 1)
    k = frame % period
    return k if k < length else period - k


def slope_per_10k(frames: list[int], values: list[float]) -> float:
    """Least-squares slope of ``values`` against ``frames``, per 10,000 frames."""
    return float(np.polyfit(np.asarray(frames, dtype=np.float64), np.asarray(values, dtype=np.float64), 1)[0] * 1e4)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20_000, help="frame sets to run (one window each)")
    parser.add_argument("--json", type=Path, required=True, help="where to write the results")
    parser.add_argument("--path", choices=PATHS, default="loop", help="camera path walked back and forth")
    parser.add_argument("--sample-every", type=int, help="frames between samples (default: min(1000, frames / 20))")
    parser.add_argument(
        "--warmup",
        type=int,
        help="frames before RSS start and the fitted samples (default: min(2000, frames / 4), a multiple of "
        "--sample-every)",
    )
    parser.add_argument(
        "--rss-tolerance", type=float, default=5.0, help="largest RSS growth counted as none, MB per 10k frames"
    )
    parser.add_argument(
        "--ms-tolerance",
        type=float,
        default=10.0,
        help="largest time growth counted as none, %% of the mean per 10k frames",
    )
    parser.add_argument(
        "--no-loop-closure", action="store_true", help="run without loop closure (the node's loop_closure false)"
    )
    args = parser.parse_args()
    if args.sample_every is None:
        args.sample_every = max(1, min(1000, args.frames // 20))
    if args.warmup is None:
        args.warmup = max(args.sample_every, min(2000, args.frames // 4) // args.sample_every * args.sample_every)
    if args.sample_every < 1 or args.warmup < args.sample_every or args.warmup % args.sample_every:
        parser.error("--sample-every must be >= 1 and --warmup a positive multiple of it")
    if args.frames < args.warmup + 2 * args.sample_every:
        parser.error("--frames must leave at least two samples after --warmup to fit a slope")

    params = NodeParameters(image_size=IMAGE_HW[1], loop_closure=not args.no_loop_closure)
    torch.set_num_threads(params.cpu_threads)
    config = params.session_config()
    sequence = render_sequence(args.path, PATH_FRAMES, IMAGE_HW)
    oracle = FakeVGGTForWorldTests(sequence)
    session = ReconstructionSession(FakePipelineForWorldTests(oracle), config)
    loops = session.world.loops
    session.loop_verifier.describe = PosePlaceDescriptorForTests(sequence)
    place = config.loop_verification.place
    bounds = {
        "keyframes_kept": config.world.trajectory_recent + config.world.trajectory_history,
        "samples_kept": config.world.retained_frames,
        "map_points": config.map.max_points,
        "frame_cache_entries": config.window.window_size * config.cameras,
    }
    if loops is not None:
        bounds["loop_map_keyframes"] = bounds["keyframes_kept"]
        bounds["place_keyframes"] = place.capacity

    def loop_memory() -> dict[str, float]:
        """The loop closure's memory (see the module docstring) and its documented bound, KB."""
        if loops is None:
            return {}
        index = session.loop_verifier.index
        per_place_keyframe = config.loop_verification.max_keyframe_bytes + index.descriptor_bytes
        return {
            "loop_map_kb": loops.map.nbytes / 1024,
            "loop_map_bound_kb": len(loops.map) * config.world.loop.map_points_per_keyframe * 15 / 1024,
            "place_store_kb": (index.payload_bytes + len(index) * index.descriptor_bytes) / 1024,
            "place_store_bound_kb": len(index) * per_place_keyframe / 1024,
            "place_descriptors_allocated_kb": index.nbytes / 1024,
            "loops_accepted": session.world.loop_counters.accepted,
            "loop_candidates": session.loop_verifier.counters.candidates,
            "last_optimise_ms": session.world.loop_counters.last_optimise_ms,
        }

    def sizes() -> dict[str, int]:
        return {
            "keyframes_kept": len(session.world.keyframes),
            "samples_kept": len(session.world.samples),
            "map_points": len(session.map),
            "frame_cache_entries": session.cached_frames,
            **(
                {
                    "loop_map_keyframes": len(loops.map),
                    "place_keyframes": len(session.loop_verifier.index),
                    "loop_edges": len(loops.graph.loops),
                }
                if loops is not None
                else {}
            ),
        }

    # CPU time of the map step: GrowingMap.add is the session's only map work per window (reset aside).
    map_cpu_seconds = [0.0]
    map_add = session.map.add

    def timed_map_add(points, colors) -> int:
        start = time.process_time()
        try:
            return map_add(points, colors)
        finally:
            map_cpu_seconds[0] += time.process_time() - start

    session.map.add = timed_map_add

    print(
        f"soak: {args.frames} frames, '{args.path}' path ({PATH_FRAMES} frames) walked back and forth at 10 Hz, "
        f"rendered {IMAGE_HW[1]}x{IMAGE_HW[0]} and image_size={config.image_size} (the node's default is "
        f"{NodeParameters.image_size}); every other setting is the node's default: window {config.window.window_size} "
        f"stride {config.window.window_stride}, keyframe min_motion {config.window.keyframes.min_motion}, map budget "
        f"{config.map.max_points} points, torch threads {params.cpu_threads}, loop closure "
        f"{'on' if loops is not None else 'off'}"
    )
    print(f"bounds: {bounds}")
    print(f"RSS start is taken after the first {args.warmup} frames (warm-up); slopes are fitted from there on")
    print(
        f"{'frames':>7}{'RSS MB':>9}{'map MB':>8}{'ms/win':>8}{'cpu ms':>8}{'map cpu':>8}{'map pts':>9}{'voxel':>8}"
        f"{'keyfr':>7}{'samples':>8}{'cache':>6}{'merged':>8}{'reject':>7}{'segm':>5}"
        + (f"{'loopKB':>8}{'placeKB':>8}{'loops':>6}{'edges':>6}{'opt ms':>8}" if loops is not None else "")
    )

    samples: list[dict] = []
    interval: dict[str, list[float]] = {"ms_per_window": [], "cpu_ms_per_window": [], "map_cpu_ms_per_window": []}
    voxel_changes: list[tuple[int, float]] = []  # (frame, new voxel size): the map coarsened (or was reset)
    run_start = time.perf_counter()
    for frame in range(args.frames):
        index = ping_pong(frame, PATH_FRAMES)
        frame_set = FrameSet((frame * FRAME_PERIOD_NS,), (sequence.rgb[index],))
        oracle.seed = frame // (PATH_FRAMES - 1)  # fresh noise on every traversal
        map_cpu_seconds[0] = 0.0
        wall, cpu = time.perf_counter(), time.process_time()
        output = session.push(frame_set)
        if output is not None and loops is not None:
            session.apply_loops(session.close_loops(output))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        oracle.answers.clear()
        if session.map.voxel_size != (voxel_changes[-1][1] if voxel_changes else config.map.voxel_size):
            voxel_changes.append((frame + 1, session.map.voxel_size))
        if output is not None:
            interval["ms_per_window"].append(1e3 * wall)
            interval["cpu_ms_per_window"].append(1e3 * cpu)
            interval["map_cpu_ms_per_window"].append(1e3 * map_cpu_seconds[0])
        if (frame + 1) % args.sample_every:
            continue
        means = {name: float(np.mean(values)) for name, values in interval.items()}
        rss, in_map = rss_mb(), map_mb(session.map)
        counters = session.world.counters
        sample = {
            "frames": frame + 1,
            "warmup": frame + 1 <= args.warmup,
            "rss_mb": rss,
            "map_mb": in_map,
            "rss_mb_excluding_map": rss - in_map,
            "windows": len(interval["ms_per_window"]),
            **means,
            "cpu_ms_per_window_excluding_map": means["cpu_ms_per_window"] - means["map_cpu_ms_per_window"],
            "map_voxel_size": session.map.voxel_size,
            "merged": counters.merged,
            "rejected": counters.rejected,
            "segments": counters.segments,
            **sizes(),
            **loop_memory(),
        }
        samples.append(sample)
        for values in interval.values():
            values.clear()
        print(
            f"{sample['frames']:>7}{sample['rss_mb']:>9.1f}{sample['map_mb']:>8.1f}{sample['ms_per_window']:>8.2f}"
            f"{sample['cpu_ms_per_window']:>8.2f}{sample['map_cpu_ms_per_window']:>8.2f}{sample['map_points']:>9}"
            f"{sample['map_voxel_size']:>8.4f}{sample['keyframes_kept']:>7}{sample['samples_kept']:>8}"
            f"{sample['frame_cache_entries']:>6}{sample['merged']:>8}{sample['rejected']:>7}{sample['segments']:>5}"
            + (
                f"{sample['loop_map_kb']:>8.0f}{sample['place_store_kb']:>8.0f}{sample['loops_accepted']:>6}"
                f"{sample['loop_edges']:>6}{sample['last_optimise_ms']:>8.1f}"
                if loops is not None
                else ""
            )
            + ("  (warm-up)" if sample["warmup"] else "")
        )
    seconds = time.perf_counter() - run_start

    # RSS is fitted from the warm-up's last sample (RSS start); times from the intervals after it.
    rss_fit = [s for s in samples if s["frames"] >= args.warmup]
    time_fit = [s for s in samples if not s["warmup"]]
    trends = {}
    for name, label in (("rss_mb", "RSS"), ("rss_mb_excluding_map", "RSS without the map's arrays")):
        slope = slope_per_10k([s["frames"] for s in rss_fit], [s[name] for s in rss_fit])
        not_growing = slope < args.rss_tolerance
        trends.update(
            {
                f"{name}_start": rss_fit[0][name],
                f"{name}_end": samples[-1][name],
                f"{name}_slope_per_10k_frames": slope,
                f"{name}_not_growing": not_growing,
            }
        )
        print(
            f"{label}: {rss_fit[0][name]:.1f} MB after warm-up -> {samples[-1][name]:.1f} MB at the end, slope "
            f"{slope:+.2f} MB per 10k frames: {'not growing' if not_growing else 'GROWING'} "
            f"(tolerance {args.rss_tolerance:g})"
        )
    time_series = (
        ("ms_per_window", "wall-clock time per window"),
        ("cpu_ms_per_window", "CPU time per window"),
        ("cpu_ms_per_window_excluding_map", "CPU time per window without the map step"),
    )
    for name, label in time_series:
        mean = float(np.mean([s[name] for s in time_fit]))
        slope = slope_per_10k([s["frames"] for s in time_fit], [s[name] for s in time_fit])
        not_growing = slope < args.ms_tolerance / 100.0 * mean
        trends.update({f"{name}_mean": mean, f"{name}_slope_per_10k_frames": slope, f"{name}_not_growing": not_growing})
        print(
            f"{label}: {mean:.2f} ms (mean after warm-up), slope {slope:+.3f} ms per 10k frames "
            f"= {100 * slope / mean:+.1f} % of the mean: {'not growing' if not_growing else 'GROWING'} "
            f"(tolerance {args.ms_tolerance:g} %)"
        )
    final = sizes()
    bounded = all(final[name] <= limit for name, limit in bounds.items())
    print(
        "sizes at the end (limit): "
        + ", ".join(f"{name} {final[name]} ({limit})" for name, limit in bounds.items())
        + f"; keyframes ever added {session.world.keyframes.total}: {'bounded' if bounded else 'NOT bounded'}"
    )
    print(
        f"map voxel {config.map.voxel_size:g} at the start"
        + "".join(f", {voxel:.4g} from frame {frame}" for frame, voxel in voxel_changes)
        + (" (the map reached its point budget and coarsened)" if voxel_changes else "")
    )
    counters = session.world.counters
    print(
        f"windows {counters.windows}, merged {counters.merged}, rejected {counters.rejected} "
        f"{dict(counters.rejections)}, segments {counters.segments}; {seconds:.0f} s in all, "
        f"{1000 * seconds / args.frames:.1f} s per 1000 frames"
    )
    memory = loop_memory()
    loop_within_bound = not memory or (
        memory["loop_map_kb"] <= memory["loop_map_bound_kb"]
        and memory["place_store_kb"] <= memory["place_store_bound_kb"]
    )
    if memory:
        print(
            f"loop closure: {memory['loops_accepted']} loops accepted of {memory['loop_candidates']} candidates; "
            f"keyframe map {memory['loop_map_kb']:.0f} KB for {final['loop_map_keyframes']} keyframes "
            f"({memory['loop_map_kb'] / max(1, final['loop_map_keyframes']):.1f} KB each; bound "
            f"{memory['loop_map_bound_kb']:.0f} KB), place store {memory['place_store_kb']:.0f} KB for "
            f"{final['place_keyframes']} keyframes ({memory['place_store_kb'] / max(1, final['place_keyframes']):.1f} "
            f"KB each; bound {memory['place_store_bound_kb']:.0f} KB) + {memory['place_descriptors_allocated_kb']:.0f} "
            f"KB of descriptors allocated: {'within' if loop_within_bound else 'NOT within'} the bounds"
        )
    bounded = bounded and loop_within_bound
    passed = trends["rss_mb_excluding_map_not_growing"] and trends["cpu_ms_per_window_not_growing"] and bounded
    print(
        f"soak {'passed' if passed else 'FAILED'} (neither RSS without the map's arrays nor CPU time per window grows, "
        "every structure, the map included, within its bound)"
    )

    results = {
        "frames": args.frames,
        **trends,
        "rss_tolerance_mb_per_10k_frames": args.rss_tolerance,
        "ms_tolerance_pct_of_mean_per_10k_frames": args.ms_tolerance,
        "bounded": bounded,
        "passed": passed,
        "sizes": final,
        "loop_closure": memory,
        "bounds": bounds,
        "keyframes_ever_added": session.world.keyframes.total,
        "counters": {**asdict(counters), "rejections": dict(counters.rejections)},
        "map_voxel_changes": [{"frame": frame, "voxel_size": voxel} for frame, voxel in voxel_changes],
        "warmup_frames": args.warmup,
        "sample_every": args.sample_every,
        "path": args.path,
        "rendered_hw": list(IMAGE_HW),
        "image_size": config.image_size,
        "seconds": seconds,
        "seconds_per_1000_frames": 1000 * seconds / args.frames,
        "samples": samples,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.json}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
