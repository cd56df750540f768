"""The node's own work per published 518x350 frame, outside the network, next to a plain memcpy of the same bytes.

Stages (medians over --repeats frames, one camera, the node's own code paths):
  image_conversion  bgr8 sensor_msgs/Image -> RGB view (image_vggt_ros.image_encoding) + the copy into the batch
  windowing         approximate-time sync + keyframe test (grey-level motion) + sliding window
  preprocessing     the fast torch route to the (1, 3, 350, 518) model input (no resize needed at 518x350)
  output_packing    network output -> depth, confidence, cameras, unprojected, filtered (50th percentile), packed cloud
  message_build     PointCloud2, 2 x 32FC1 Image, CameraInfo, TFMessage, Path
  publish           rclpy publish() of all of them, with a subscriber in the same process (DDS over loopback)
memcpy_ms is np.copyto of all those bytes (input image + cloud + depth + confidence): the floor.
The network output is synthetic (same shapes and ranges as VGGT's); the network itself is not timed here.

Starts DDS, so run it in a loopback-only network namespace:
    unshare -n sh -c 'ip link set lo up && exec python bench/node_overhead.py --json out/node_overhead.json'
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage

from vggt_ros.ros import network_is_loopback_only

IMAGE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "preprocess" / "images" / "chelsea.png"
HEIGHT, WIDTH = 350, 518


def synthetic_outputs(frames: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """VGGT-shaped outputs for `frames` 350x518 images: smooth positive depth, confidence > 1, plausible cameras."""
    v, u = np.mgrid[0:HEIGHT, 0:WIDTH]
    depth = 2.0 + 0.5 * np.sin(u / 40.0) * np.cos(v / 30.0)
    fov_w, fov_h = 2 * math.atan((WIDTH / 2) / 400.0), 2 * math.atan((HEIGHT / 2) / 400.0)
    pose_enc = np.array([[0.1 * i, 0.0, 0.02 * i, 0.0, 0.01 * i, 0.0, 1.0, fov_h, fov_w] for i in range(frames)])
    return {
        "pose_enc": torch.tensor(pose_enc, dtype=torch.float32)[None],
        "depth": torch.tensor(
            np.broadcast_to(depth, (1, frames, HEIGHT, WIDTH))[..., None].copy(), dtype=torch.float32
        ),
        "depth_conf": torch.from_numpy(1.0 + rng.exponential(2.0, (1, frames, HEIGHT, WIDTH)).astype(np.float32)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--window-size", type=int, default=8)
    parser.add_argument(
        "--torch-threads", type=int, default=0, help="torch intra-op threads for the CPU stages (0: torch's default)"
    )
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

    from vggt_ros.image_encoding import image_to_rgb
    from vggt_ros.preprocess import preprocess_frames
    from vggt_ros.products import CloudConfig, build_cloud, decode_frames, express_in_world
    from vggt_ros.ros import messages
    from vggt_ros.ros.node import OUTPUT_QOS, TF_QOS
    from vggt_ros.sync import ApproximateTimeSynchronizer
    from vggt_ros.window import FrameSet, KeyframePolicy, SlidingWindow, WindowConfig

    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    rng = np.random.default_rng(0)
    photo = PILImage.open(IMAGE).convert("RGB").resize((WIDTH, HEIGHT), PILImage.Resampling.BICUBIC)
    # Alternate the photograph and its mirror image so that every frame passes the motion test.
    raw_frames = [
        photo.tobytes("raw", "BGR"),
        photo.transpose(PILImage.Transpose.FLIP_LEFT_RIGHT).tobytes("raw", "BGR"),
    ]
    outputs = synthetic_outputs(args.window_size, rng)
    cloud_config = CloudConfig(confidence_percentile=50.0)

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
        "tf": node.create_publisher(TFMessage, "/tf", TF_QOS),
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

    sync = ApproximateTimeSynchronizer(1, queue_size=10, slop=0.02)
    window = SlidingWindow(WindowConfig(args.window_size, 1, KeyframePolicy(min_motion=0.01)))
    stages: dict[str, list[float]] = {
        k: [] for k in ("image_conversion", "windowing", "preprocessing", "output_packing", "message_build", "publish")
    }
    memcpy_ms: list[float] = []
    points = 0
    total_bytes = 0
    for i in range(args.repeats + 3):  # the first 3 warm up
        stamp_ns = 1_000_000_000 + i * 100_000_000
        msg = Image(height=HEIGHT, width=WIDTH, encoding="bgr8", step=3 * WIDTH)
        msg.data = raw_frames[i % 2]
        timings = {}

        t = time.perf_counter()
        rgb = image_to_rgb(msg.data, msg.height, msg.width, msg.step, msg.encoding)
        batch = np.stack([rgb])
        timings["image_conversion"] = time.perf_counter() - t

        t = time.perf_counter()
        synced = sync.add(0, stamp_ns, rgb)
        update = window.add(FrameSet(stamps_ns=synced.stamps_ns, images=synced.items))
        timings["windowing"] = time.perf_counter() - t
        assert update.window is not None

        t = time.perf_counter()
        images = preprocess_frames(batch, mode="crop", target_size=WIDTH)
        timings["preprocessing"] = time.perf_counter() - t

        t = time.perf_counter()
        frames = express_in_world(decode_frames(outputs), np.eye(4))
        colors = (images * 255).round_().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        cloud = build_cloud(frames[-1:], list(colors), cloud_config)
        timings["output_packing"] = time.perf_counter() - t
        newest = frames[-1]

        t = time.perf_counter()
        built = {
            "points": messages.point_cloud2(cloud, stamp_ns, "vggt_world"),
            "depth": messages.float_image(newest.depth, stamp_ns, "camera0_optical"),
            "confidence": messages.float_image(newest.confidence, stamp_ns, "camera0_optical"),
            "info": messages.camera_info(newest.intrinsics, newest.image_hw, stamp_ns, "camera0_optical"),
            "tf": messages.tf_message(
                [messages.transform_stamped("vggt_world", "camera0_optical", stamp_ns, newest.world_from_camera)]
            ),
            "path": messages.path([(stamp_ns, f.world_from_camera) for f in frames], stamp_ns, "vggt_world"),
        }
        timings["message_build"] = time.perf_counter() - t

        delivered.clear()
        t = time.perf_counter()
        sent_at[0] = t
        for name, msg_out in built.items():
            publishers[name].publish(msg_out)
        timings["publish"] = time.perf_counter() - t
        delivered.wait(timeout=5.0)

        payload = [batch, cloud.points, newest.depth, newest.confidence]
        total_bytes = sum(a.nbytes for a in payload)
        source = np.frombuffer(
            np.concatenate([a.reshape(-1).view(np.uint8) for a in payload]).tobytes(), dtype=np.uint8
        )
        target = np.empty_like(source)
        t = time.perf_counter()
        np.copyto(target, source)
        memcpy = time.perf_counter() - t

        if i >= 3:
            for name, seconds in timings.items():
                stages[name].append(seconds * 1e3)
            memcpy_ms.append(memcpy * 1e3)
            points = cloud.points.shape[0]

    executor.shutdown(timeout_sec=5.0)
    spinner.join(timeout=5.0)
    subscriber.destroy_node()
    node.destroy_node()
    rclpy.shutdown()

    per_frame = {name: float(np.median(values)) for name, values in stages.items()}
    result = {
        "per_frame_ms": per_frame,
        "total_ms": float(sum(per_frame.values())),
        "memcpy_ms": float(np.median(memcpy_ms)),
        "memcpy_bytes": int(total_bytes),
        "cloud_points": int(points),
        "cloud_delivery_ms": float(np.median(delivery_ms[3:])) if len(delivery_ms) > 3 else None,
        "frame": f"{WIDTH}x{HEIGHT}",
        "window_size": args.window_size,
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
    }
    print(f"node overhead per published {WIDTH}x{HEIGHT} frame (median of {args.repeats}, window {args.window_size}):")
    print(f"  {'stage':<18}{'ms':>9}")
    for name, value in per_frame.items():
        print(f"  {name:<18}{value:>9.2f}")
    print(f"  {'total':<18}{result['total_ms']:>9.2f}")
    print(
        f"  {'memcpy (floor)':<18}{result['memcpy_ms']:>9.2f}   "
        f"({total_bytes / 1e6:.1f} MB: image, {points} cloud points, depth, confidence)"
    )
    if result["cloud_delivery_ms"] is not None:
        print(
            f"  cloud publish -> subscriber callback, same process: {result['cloud_delivery_ms']:.2f} ms (not in total)"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
