# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The node under camera load: where every image goes, and how late the outputs come.

The node runs as `ros2 run` runs it (`python -m vggt_ros.ros.node`, its own process) with the tiny fixture model on
the CPU (image_size 154; window size and every other parameter the node's defaults unless --param says otherwise,
the world thresholds permissive so every window is published: the tiny random model's windows do not agree). This
process is the camera and the viewer: it publishes rgb8 images of a photograph (alternately mirrored) at --rate Hz
for --duration s, stamped with the system clock at publication, from the main thread, on a reliable publisher as
camera drivers use; an executor thread receives the node's ~/points and /diagnostics.

Where the images went, from the node's /diagnostics after the run (its counters since it started):
  sent          images published here
  received      images that reached the node's subscription callback
  missed        images that never reached it, from the gaps in the publication sequence numbers: lost by the
                transport or overwritten in the subscription queue while the node's executor was busy
  DDS-lost      of those, the ones DDS reported lost (the message-lost event)
  unaccounted   sent - received - missed: images neither received nor counted (e.g. before discovery completed)
  dropped       received frame sets the node skipped on purpose: their window was replaced by a newer one while
                the network was busy (the newest frames win)
Latency: from an image's stamp to the arrival here of the ~/points message stamped with it (so it includes the
delivery to this process, at most a few milliseconds on loopback); p50 and p95 over all clouds. Output gaps: the
times between consecutive clouds. Executor stall: the longest the node's diagnostics timer came late.

With --robot-frames the camera also stands for a robot driving straight on at --speed m/s: it publishes the
camera's mounting (base_link -> camera, /tf_static) and its wheel odometry (odom -> base_link on /tf, stamped like
each image), and the node runs with robot frames, the odometry scale source and loop closure (its default), so it
also reads /tf and publishes map -> odom every map_odom_period_s. The map -> odom rate counts those samples here;
the gaps between their stamps, which the node's timer takes from its clock when it fires, sample the node's
executor 20 times a second (the diagnostics' stall, once).

Images over about 512 kB need Fast DDS' LARGE_DATA transport on both sides (see the README): --transports
LARGE_DATA (the default, with 640x480 images) sets FASTDDS_BUILTIN_TRANSPORTS for this process and the node;
--transports default leaves it unset (use 448x336 images then).

Starts DDS, so run it in a loopback-only network namespace; the short default is for trying, the issue's run is
30 Hz for 60 s:
    unshare -n sh -c 'ip link set lo up && exec .venv/bin/python bench/node_load.py --duration 60 --json out/load.json'
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))
from conftest import IMAGES, PERMISSIVE_WORLD, TINY  # noqa: E402
from support.netns import network_is_loopback_only  # noqa: E402

TOPIC = "/camera/image_raw"
CAMERA_FRAME = "camera"
# With --robot-frames: the camera 0.3 m up and 0.1 m ahead of the base, looking forward (REP 103's optical frame:
# z forward, x right, y down; quaternion x, y, z, w of base_link -> camera).
MOUNTING_XYZ = (0.1, 0.0, 0.3)
MOUNTING_XYZW = (-0.5, 0.5, -0.5, 0.5)
ROBOT_PARAMS = {"odom_frame": "odom", "robot_base_frame": "base_link", "metric_scale_source": "odometry"}
TRANSPORTS_VARIABLE = "FASTDDS_BUILTIN_TRANSPORTS"
STARTUP_TIMEOUT_S = 120.0
# Wait this long after the camera matched the node before publishing: the node's side of the match (best effort
# has no retransmission, so an image sent before it is simply gone).
SETTLE_S = 3.0
# After the last image: the last window's inference and the next diagnostics.
DRAIN_S = 5.0


def camera_image(width: int, height: int, mirrored: bool) -> bytes:
    with PILImage.open(IMAGES / "chelsea.png") as photo:
        image = photo.convert("RGB").resize((width, height), PILImage.Resampling.BILINEAR)
    return (image.transpose(PILImage.Transpose.FLIP_LEFT_RIGHT) if mirrored else image).tobytes()


def start_node(args, environment: dict[str, str]) -> tuple[subprocess.Popen, list[str]]:
    """The node process and the list its output lines are appended to (by a reader thread)."""
    params = {
        "weights": str(TINY),
        "device": "cpu",
        "precision": "fp32",
        "image_size": args.image_size,
        "image_topics": f"['{TOPIC}']",
        **PERMISSIVE_WORLD,
        **(ROBOT_PARAMS if args.robot_frames else {}),
    }
    ros_args = [f"{key}:={value}" for key, value in params.items()] + args.param
    command = [sys.executable, "-m", "vggt_ros.ros.node", "--ros-args"]
    for assignment in ros_args:
        command += ["-p", assignment]
    process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()
    return process, lines


def transform(parent: str, child: str, stamp_ns: int, xyz, xyzw):
    """A geometry_msgs/TransformStamped ``parent -> child``."""
    from geometry_msgs.msg import TransformStamped

    msg = TransformStamped()
    msg.header.frame_id, msg.child_frame_id = parent, child
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    t, q = msg.transform.translation, msg.transform.rotation
    t.x, t.y, t.z = (float(v) for v in xyz)
    q.x, q.y, q.z, q.w = (float(v) for v in xyzw)
    return msg


class Viewer:
    """This process's subscriptions: ~/points (arrival time per stamp), /diagnostics (the newest, and the longest
    executor stall seen) and, with robot frames, the arrival times of the node's map -> odom samples on /tf."""

    def __init__(self, node, robot_frames: bool) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import PointCloud2
        from tf2_msgs.msg import TFMessage

        self._lock = threading.Lock()
        self.cloud_arrivals_ns: dict[int, int] = {}
        self.map_odom_arrivals_ns: list[int] = []
        self.map_odom_stamps_ns: list[int] = []  # the node's clock when its timer sent them (plus the tolerance)
        self.diagnostics: dict[str, dict[str, str]] = {}
        self.longest_stall_s = 0.0
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(PointCloud2, "/vggt/points", self._on_cloud, reliable)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        if robot_frames:
            node.create_subscription(TFMessage, "/tf", self._on_tf, reliable)

    def _on_tf(self, msg) -> None:
        arrived_ns = time.time_ns()
        for t in msg.transforms:
            if t.child_frame_id == ROBOT_PARAMS["odom_frame"]:
                with self._lock:
                    self.map_odom_arrivals_ns.append(arrived_ns)
                    self.map_odom_stamps_ns.append(t.header.stamp.sec * 1_000_000_000 + t.header.stamp.nanosec)

    def _on_cloud(self, msg) -> None:
        arrived_ns = time.time_ns()
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self._lock:
            self.cloud_arrivals_ns.setdefault(stamp_ns, arrived_ns)

    def _on_diagnostics(self, msg) -> None:
        statuses = {status.name: {kv.key: kv.value for kv in status.values} for status in msg.status}
        with self._lock:
            self.diagnostics = statuses
            stall = statuses.get("vggt: pipeline", {}).get("longest executor stall (s)")
            if stall is not None:
                self.longest_stall_s = max(self.longest_stall_s, float(stall))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of publishing")
    parser.add_argument("--rate", type=float, default=30.0, help="images per second")
    parser.add_argument("--size", default="640x480", help="WxH of the camera images")
    parser.add_argument("--transports", choices=("LARGE_DATA", "default"), default="LARGE_DATA")
    parser.add_argument("--image-size", type=int, default=154, help="the node's image_size (model input width)")
    parser.add_argument("--param", action="append", default=[], help="extra node parameter, e.g. publish_map:=false")
    parser.add_argument(
        "--robot-frames", action="store_true", help="a robot's odometry and mounting on TF, the node in its frames"
    )
    parser.add_argument("--speed", type=float, default=0.5, help="with --robot-frames: the base's speed, m/s")
    parser.add_argument("--json", type=Path, default=None, help="where to write the results")
    args = parser.parse_args()
    if not network_is_loopback_only():
        print(
            "node_load.py starts DDS: run it in a loopback-only namespace:\n"
            "  unshare -n sh -c 'ip link set lo up && exec .venv/bin/python bench/node_load.py --json PATH'",
            file=sys.stderr,
        )
        return 2
    width, height = (int(value) for value in args.size.split("x"))
    # Fast DDS reads it when rclpy.init creates a process's participant: here and in the node (its environment).
    os.environ.pop(TRANSPORTS_VARIABLE, None)
    if args.transports == "LARGE_DATA":
        os.environ[TRANSPORTS_VARIABLE] = "LARGE_DATA"

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image
    from tf2_msgs.msg import TFMessage

    from vggt_ros.ros.qos import LATCHED, TF

    load_before = os.getloadavg()
    node_process, node_lines = start_node(args, dict(os.environ))
    rclpy.init()
    camera = rclpy.create_node("load_camera")
    viewer = Viewer(camera, args.robot_frames)
    publisher = camera.create_publisher(Image, TOPIC, 10)
    if args.robot_frames:
        odometry = camera.create_publisher(TFMessage, "/tf", TF)  # tf2's QoS profiles, as the node's
        mounting = transform("base_link", CAMERA_FRAME, time.time_ns(), MOUNTING_XYZ, MOUNTING_XYZW)
        mounting_publisher = camera.create_publisher(TFMessage, "/tf_static", LATCHED)  # kept: late joiners read it
        mounting_publisher.publish(TFMessage(transforms=[mounting]))
    executor = SingleThreadedExecutor()
    executor.add_node(camera)
    threading.Thread(target=executor.spin, daemon=True).start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not (publisher.get_subscription_count() and viewer.diagnostics):
            if node_process.poll() is not None or time.monotonic() > deadline:
                print("the node did not start:\n" + "".join(node_lines), file=sys.stderr)
                return 1
            time.sleep(0.1)
        time.sleep(SETTLE_S)

        frames = [camera_image(width, height, mirrored) for mirrored in (False, True)]
        messages = []
        for data in frames:
            msg = Image(height=height, width=width, encoding="rgb8", step=3 * width, data=data)
            msg.header.frame_id = CAMERA_FRAME
            messages.append(msg)
        count = int(args.duration * args.rate)
        stamps_ns = []
        started = time.perf_counter()
        for index in range(count):
            delay = started + index / args.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            msg = messages[index % 2]
            stamp_ns = time.time_ns()
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
            if args.robot_frames:  # the wheels before the image, so the node's look-up at its stamp finds them
                base = (args.speed * index / args.rate, 0.0, 0.0)
                odometry.publish(TFMessage(transforms=[transform("odom", "base_link", stamp_ns, base, (0, 0, 0, 1))]))
            publisher.publish(msg)
            stamps_ns.append(stamp_ns)
        sending_s = time.perf_counter() - started
        time.sleep(DRAIN_S)
    finally:
        executor.shutdown(timeout_sec=5.0)
        camera.destroy_node()
        rclpy.try_shutdown()
        node_process.send_signal(signal.SIGINT)  # the node's clean stop
        try:
            node_process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            node_process.kill()
    load_after = os.getloadavg()

    camera_values = viewer.diagnostics["vggt: camera camera0"]
    pipeline = viewer.diagnostics["vggt: pipeline"]
    received = int(camera_values["images received"])
    missed = int(camera_values["images missed"])
    lost = int(camera_values["images lost by DDS"])
    sent_set = set(stamps_ns)
    latencies_s = np.array(
        [(arrived - stamp) / 1e9 for stamp, arrived in viewer.cloud_arrivals_ns.items() if stamp in sent_set]
    )
    arrivals_s = np.sort(np.array(list(viewer.cloud_arrivals_ns.values()))) / 1e9
    gaps_s = np.diff(arrivals_s) if len(arrivals_s) > 1 else np.array([np.nan])
    warnings = [line.strip() for line in node_lines if "[WARN]" in line or "[ERROR]" in line]
    # map -> odom samples (the timer runs from the world's placement on): the gaps between their arrivals here, and
    # between their stamps, which the node's timer took from its clock when it fired (the node's side alone). The
    # first placement's extra sample, stamped at the world's first image, is left out of the stamps' gaps.
    map_odom_s = np.array(viewer.map_odom_arrivals_ns) / 1e9
    stamp_gaps_s = np.diff(np.array(viewer.map_odom_stamps_ns[1:]) / 1e9)
    result = {
        "sent": count,
        "send_rate_hz": count / sending_s,
        "received": received,
        "missed": missed,
        "dds_lost": lost,
        "overwritten": missed - lost,
        "unaccounted": count - received - missed,
        "dropped_frame_sets": int(pipeline["frame sets dropped"]),
        "windows_published": int(pipeline["windows published"]),
        "clouds_received": len(latencies_s),
        "latency_p50_s": float(np.percentile(latencies_s, 50)) if len(latencies_s) else None,
        "latency_p95_s": float(np.percentile(latencies_s, 95)) if len(latencies_s) else None,
        "output_gap_max_s": float(np.max(gaps_s)),
        "output_gap_p95_s": float(np.percentile(gaps_s, 95)),
        "longest_executor_stall_s": viewer.longest_stall_s,
        "robot_frames": args.robot_frames,
        "map_odom_samples": len(map_odom_s),
        "map_odom_rate_hz": (len(map_odom_s) - 1) / float(np.ptp(map_odom_s)) if len(map_odom_s) > 1 else None,
        "map_odom_arrival_gap_max_s": float(np.max(np.diff(map_odom_s))) if len(map_odom_s) > 1 else None,
        "map_odom_stamp_gap_max_s": float(np.max(stamp_gaps_s)) if len(stamp_gaps_s) else None,
        "map_odom_stamp_gap_p99_s": float(np.percentile(stamp_gaps_s, 99)) if len(stamp_gaps_s) else None,
        "node_warnings": list(dict.fromkeys(line.split("]: ", 1)[-1] for line in warnings))[:10],
        "size": f"{width}x{height}",
        "rate_hz": args.rate,
        "duration_s": args.duration,
        "transports": args.transports,
        "image_size": args.image_size,
        "params": args.param,
        "cpu_cores": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_after,
    }
    percent = 100.0 / count
    print(
        f"node under load: {width}x{height} rgb8 at {args.rate:g} Hz for {args.duration:g} s "
        f"({result['send_rate_hz']:.1f} Hz achieved; transports {args.transports}), tiny model on the CPU "
        f"(image_size {args.image_size}{', robot frames' if args.robot_frames else ''}"
        f"{', ' + ' '.join(args.param) if args.param else ''}); {os.cpu_count()} cores, "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    )
    rows = [
        ("sent", count, ""),
        ("received by the callback", received, f"{received * percent:.1f} %"),
        ("missed (sequence gaps)", missed, f"{missed * percent:.1f} %"),
        ("  of which DDS-lost", lost, f"{lost * percent:.1f} %"),
        ("unaccounted", result["unaccounted"], f"{result['unaccounted'] * percent:.1f} %"),
        (
            "dropped frame sets (received)",
            result["dropped_frame_sets"],
            f"{result['dropped_frame_sets'] * percent:.1f} %",
        ),
        ("windows published", result["windows_published"], f"{result['clouds_received']} clouds received"),
    ]
    for name, value, note in rows:
        print(f"  {name:<32}{value:>8}  {note}")
    if len(latencies_s):
        print(
            f"  {'latency stamp -> output':<32}p50 {result['latency_p50_s']:.3f} s, p95 {result['latency_p95_s']:.3f} s"
        )
    print(f"  {'output gaps':<32}max {result['output_gap_max_s']:.3f} s, p95 {result['output_gap_p95_s']:.3f} s")
    print(f"  {'longest executor stall':<32}{result['longest_executor_stall_s']:.3f} s")
    if args.robot_frames:
        rate = result["map_odom_rate_hz"]
        print(
            f"  {'map -> odom samples':<32}{len(map_odom_s):>8}  "
            + (
                f"{rate:.1f} Hz; longest gap: {result['map_odom_arrival_gap_max_s']:.3f} s between arrivals, "
                f"{result['map_odom_stamp_gap_max_s']:.3f} s between stamps "
                f"(p99 {result['map_odom_stamp_gap_p99_s']:.3f})"
                if rate
                else ""
            )
        )
    for line in result["node_warnings"]:
        print(f"  node: {line[:150]}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
