# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The node's own work per published 518x350 frame, outside the network, next to a plain memcpy of the same bytes.

Stages (medians over --repeats frames, one camera, window 8, stride 1, the node's own code paths):
  image_conversion  bgr8 sensor_msgs/Image -> RGB view (vggt_ros.image_encoding)
  windowing         approximate-time sync + the session's keyframe test (grey-level motion) and sliding window
  preprocessing     the fast torch route for the one new frame (the session caches every other frame's work)
  output_packing    network output -> `decode_window` (poses once, depth of the new and 2 overlap frames),
                    world poses, the new frame placed (depth scaled, unprojected once), the confidence-filtered
                    (50th percentile) packed cloud, and the newest depth / confidence copied to the host
  message_build     PointCloud2, 2 x 32FC1 Image, CameraInfo, TFMessage, Path
  publish           rclpy publish() of all of them, with a subscriber in the same process (DDS over loopback)
memcpy_ms is np.copyto of all those bytes (input image + cloud + depth + confidence): the floor.
The network output is synthetic (same shapes and ranges as VGGT's); the network, the world's alignment and the
map update are not timed here. Preprocessing and output packing run under `torch.inference_mode`, as the
session's `infer` and `integrate` run them.

Everything is measured twice: on an idle machine, then with a competing CPU-bound process pinned to one core
(started and stopped by this bench), as when other nodes share a robot's CPU. The CPU work runs with the node's
`cpu_threads` default (1 torch thread; --torch-threads to change).

Starts DDS, so run it in a loopback-only network namespace:
    unshare -n sh -c 'ip link set lo up && exec python bench/node_overhead.py --json out/node_overhead.json'
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))
from conftest import IMAGES  # noqa: E402
from support.netns import network_is_loopback_only  # noqa: E402

IMAGE = IMAGES / "chelsea.png"
HEIGHT, WIDTH = 350, 518
DENSE = 3  # the new frame and the node's default 2 overlap frames
# A busy loop pinned to one core: another process that competes for the CPU.
COMPETITOR = "import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True: pass"


def synthetic_outputs(frames: int, dense: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """`Pipeline.predict`-shaped outputs for a window of `frames` 350x518 images with depth on the last `dense`:
    smooth positive depth, confidence > 1, plausible cameras."""
    v, u = np.mgrid[0:HEIGHT, 0:WIDTH]
    depth = 2.0 + 0.5 * np.sin(u / 40.0) * np.cos(v / 30.0)
    fov_w, fov_h = 2 * math.atan((WIDTH / 2) / 400.0), 2 * math.atan((HEIGHT / 2) / 400.0)
    pose_enc = np.array([[0.1 * i, 0.0, 0.02 * i, 0.0, 0.01 * i, 0.0, 1.0, fov_h, fov_w] for i in range(frames)])
    return {
        "pose_enc": torch.tensor(pose_enc, dtype=torch.float32),
        "depth": torch.tensor(np.broadcast_to(depth, (dense, HEIGHT, WIDTH))[..., None].copy(), dtype=torch.float32),
        "depth_conf": torch.from_numpy(1.0 + rng.exponential(2.0, (dense, HEIGHT, WIDTH)).astype(np.float32)),
    }


class Competitor:
    """A CPU-bound process pinned to one core for the duration of a `with` block."""

    def __init__(self, core: int) -> None:
        self.core = core

    def __enter__(self) -> "Competitor":
        self.process = subprocess.Popen([sys.executable, "-c", COMPETITOR, str(self.core)])
        time.sleep(0.5)  # let it reach its loop
        return self

    def __exit__(self, *exc) -> None:
        self.process.kill()
        self.process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--window-size", type=int, default=8)
    parser.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads (the node's cpu_threads)")
    args = parser.parse_args()
    if not network_is_loopback_only():
        print(
            "node_overhead.py starts DDS: run it in a loopback-only namespace:\n"
            "  unshare -n sh -c 'ip link set lo up && exec python bench/node_overhead.py --json PATH'",
            file=sys.stderr,
        )
        return 2

    import rclpy
    from nav_msgs.msg import Path as PathMsg
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    from tf2_msgs.msg import TFMessage

    from vggt_ros.ros import messages, qos
    from vggt_ros.ros.outputs import OUTPUT_QOS

    torch.set_num_threads(args.torch_threads)
    rclpy.init()
    node = Node("vggt")
    subscriber = Node("overhead_subscriber")
    delivered = threading.Event()
    delivery_ms: list[float] = []
    sent_at = [0.0]

    def on_cloud(_msg) -> None:
        delivery_ms.append((time.perf_counter() - sent_at[0]) * 1e3)
        delivered.set()

    publishers = {
        "points": node.create_publisher(PointCloud2, "~/points", OUTPUT_QOS),
        "depth": node.create_publisher(Image, "~/depth/image", OUTPUT_QOS),
        "confidence": node.create_publisher(Image, "~/confidence", OUTPUT_QOS),
        "info": node.create_publisher(CameraInfo, "~/depth/camera_info", OUTPUT_QOS),
        "tf": node.create_publisher(TFMessage, "/tf", qos.TF),
        "path": node.create_publisher(PathMsg, "~/path", OUTPUT_QOS),
    }
    subscriber.create_subscription(PointCloud2, "/vggt/points", on_cloud, OUTPUT_QOS)
    for topic, msg_type in (
        ("/vggt/depth/image", Image),
        ("/vggt/confidence", Image),
        ("/vggt/depth/camera_info", CameraInfo),
        ("/tf", TFMessage),
        ("/vggt/path", PathMsg),
    ):
        subscriber.create_subscription(msg_type, topic, lambda _msg: None, OUTPUT_QOS)
    executor = SingleThreadedExecutor()
    executor.add_node(subscriber)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    deadline = time.monotonic() + 10.0
    while publishers["points"].get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)

    def publish(built) -> float:
        delivered.clear()
        start = sent_at[0] = time.perf_counter()
        for name, msg_out in built.items():
            publishers[name].publish(messages.publishable(msg_out))
        elapsed = time.perf_counter() - start
        delivered.wait(timeout=5.0)
        return elapsed

    load_before = os.getloadavg()  # the machine may be shared: the figures mean little without it
    idle = measure(args, messages, publish)
    with Competitor(core=os.cpu_count() - 1):
        contended = measure(args, messages, publish)

    load_after = os.getloadavg()
    executor.shutdown(timeout_sec=5.0)
    spinner.join(timeout=5.0)
    subscriber.destroy_node()
    node.destroy_node()
    rclpy.shutdown()

    result = {
        "per_frame_ms": idle["per_frame_ms"],
        "total_ms": idle["total_ms"],
        "contended_per_frame_ms": contended["per_frame_ms"],
        "contended_total_ms": contended["total_ms"],
        "memcpy_ms": idle["memcpy_ms"],
        "memcpy_bytes": idle["memcpy_bytes"],
        "cloud_points": idle["cloud_points"],
        "cloud_delivery_ms": float(np.median(delivery_ms[3:])) if len(delivery_ms) > 3 else None,
        "frame": f"{WIDTH}x{HEIGHT}",
        "window_size": args.window_size,
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "cpu_cores": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_after,
    }
    print(
        f"node overhead per published {WIDTH}x{HEIGHT} frame (median of {args.repeats}, window {args.window_size}, "
        f"{result['torch_threads']} torch thread(s), {result['cpu_cores']} cores, load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after):"
    )
    print(f"  {'stage':<18}{'idle ms':>9}{'1 core busy':>13}")
    for name, value in idle["per_frame_ms"].items():
        print(f"  {name:<18}{value:>9.2f}{contended['per_frame_ms'][name]:>13.2f}")
    print(f"  {'total':<18}{result['total_ms']:>9.2f}{result['contended_total_ms']:>13.2f}")
    print(
        f"  {'memcpy (floor)':<18}{result['memcpy_ms']:>9.2f}   "
        f"({result['memcpy_bytes'] / 1e6:.1f} MB: image, {result['cloud_points']} cloud points, depth, confidence)"
    )
    if result["cloud_delivery_ms"] is not None:
        print(
            f"  cloud publish -> subscriber callback, same process: {result['cloud_delivery_ms']:.2f} ms (not in total)"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def measure(args, messages, publish) -> dict:
    """Median ms per stage over ``args.repeats`` published frames (after 3 warm-up frames)."""
    from sensor_msgs.msg import Image

    from vggt_ros.image_encoding import image_to_rgb
    from vggt_ros.live.sync import ApproximateTimeSynchronizer
    from vggt_ros.preprocess import preprocess_frames_u8, to_unit_float
    from vggt_ros.products import decode_window
    from vggt_ros.window import FrameSet, KeyframePolicy, SlidingWindow, WindowConfig
    from vggt_ros.world.cloud import CloudConfig, build_cloud
    from vggt_ros.world.placement import cameras_in_world, place_in_world

    rng = np.random.default_rng(0)
    photo = PILImage.open(IMAGE).convert("RGB").resize((WIDTH, HEIGHT), PILImage.Resampling.BICUBIC)
    # Alternate the photograph and its mirror image so that every frame passes the motion test.
    raw_frames = [
        photo.tobytes("raw", "BGR"),
        photo.transpose(PILImage.Transpose.FLIP_LEFT_RIGHT).tobytes("raw", "BGR"),
    ]
    outputs = synthetic_outputs(args.window_size, DENSE, rng)
    cloud_config = CloudConfig(confidence_percentile=50.0, point_decimation=2)
    sync = ApproximateTimeSynchronizer(1, queue_size=10, slop=0.02)
    window = SlidingWindow(WindowConfig(args.window_size, 1, KeyframePolicy(min_motion=0.01)))
    world_from_window = np.eye(4)
    stages: dict[str, list[float]] = {
        k: [] for k in ("image_conversion", "windowing", "preprocessing", "output_packing", "message_build", "publish")
    }
    memcpy_ms: list[float] = []
    for i in range(args.repeats + 3):  # the first 3 warm up
        stamp_ns = 1_000_000_000 + i * 100_000_000
        msg = Image(height=HEIGHT, width=WIDTH, encoding="bgr8", step=3 * WIDTH)
        msg.data = raw_frames[i % 2]
        timings = {}

        t = time.perf_counter()
        rgb = image_to_rgb(msg.data, msg.height, msg.width, msg.step, msg.encoding)
        timings["image_conversion"] = time.perf_counter() - t

        t = time.perf_counter()
        synced = sync.add(0, stamp_ns, rgb)
        update = window.add(FrameSet(stamps_ns=synced.stamps_ns, images=synced.items))
        timings["windowing"] = time.perf_counter() - t
        assert update.window is not None

        t = time.perf_counter()
        with torch.inference_mode():  # as the session's infer runs it
            pixels = preprocess_frames_u8(rgb[None], mode="crop", target_size=WIDTH)
            to_unit_float(pixels)  # the model input the session hands the network (not timed here)
            colors = pixels.permute(0, 2, 3, 1)
        timings["preprocessing"] = time.perf_counter() - t

        t = time.perf_counter()
        with torch.inference_mode():  # as the session's integrate runs it
            frames = args.window_size
            ids = [(stamp_ns - (frames - 1 - k) * 100_000_000, 0) for k in range(frames)]
            dense = tuple(range(frames - DENSE, frames))
            products = decode_window(
                outputs, ids, [stamp * 1e-9 for stamp, _ in ids], dense, colors.expand(DENSE, -1, -1, -1)
            )
            world_from_camera = cameras_in_world(world_from_window, products.window_from_camera)
            placed = place_in_world(products, world_from_camera, 1.0, [frames - 1], cloud_config.point_decimation)
            cloud = build_cloud(placed, cloud_config)
            depth, confidence = placed.depth[0].numpy(), placed.confidence[0].numpy()
        timings["output_packing"] = time.perf_counter() - t

        t = time.perf_counter()
        pose = placed.world_from_camera[0]
        path_poses = list(zip((s for s, _ in ids), world_from_camera))
        rotations = messages.quaternions([pose] + [p for _, p in path_poses])  # as the node: one conversion
        built = {
            "points": messages.point_cloud2(cloud.points, cloud.height, cloud.width, stamp_ns, "vggt_world"),
            "depth": messages.float_image(depth, stamp_ns, "camera0_optical"),
            "confidence": messages.float_image(confidence, stamp_ns, "camera0_optical"),
            "info": messages.camera_info(placed.intrinsics[0], depth.shape, stamp_ns, "camera0_optical"),
            "tf": messages.tf_message(
                [messages.transform_stamped("vggt_world", "camera0_optical", stamp_ns, pose, rotations[0])]
            ),
            "path": messages.path(path_poses, stamp_ns, "vggt_world", rotations[1:]),
        }
        timings["message_build"] = time.perf_counter() - t
        timings["publish"] = publish(built)

        payload = [np.asarray(rgb), cloud.points, depth, confidence]
        source = np.concatenate([np.ascontiguousarray(a).reshape(-1).view(np.uint8) for a in payload])
        target = np.empty_like(source)
        t = time.perf_counter()
        np.copyto(target, source)
        memcpy = time.perf_counter() - t

        if i >= 3:
            for name, seconds in timings.items():
                stages[name].append(seconds * 1e3)
            memcpy_ms.append(memcpy * 1e3)
    per_frame = {name: float(np.median(values)) for name, values in stages.items()}
    return {
        "per_frame_ms": per_frame,
        "total_ms": float(sum(per_frame.values())),
        "memcpy_ms": float(np.median(memcpy_ms)),
        "memcpy_bytes": int(source.nbytes),
        "cloud_points": int(cloud.points.shape[0]),
    }


if __name__ == "__main__":
    sys.exit(main())
