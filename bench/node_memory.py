# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The node's memory against over-large inputs and parameters (issue 19 item 9): every size is bounded.

Cases (each node case in its own fresh process, so no case reuses memory another one freed):
  huge_jpeg   one camera on image_transport compressed; a real JPEG of 12000 x 12000 pixels (about 2 MB, made
              once in a child process) published --jpeg-count times. The node reads the size from the JPEG header
              and drops the image before decoding (max_image_pixels, default 50 MP); its RSS must not grow by the
              hundreds of MB a decode costs (432 MB per image; issue 19 measured 433 -> 2,512 MB before the bound).
  startup     the node's entry point (`python -m vggt_ros.ros.node`) with queue_size:=100000000, with
              save_dataset_frames:=100000, and with both: refused at start-up with one FATAL line and exit code 1.
  queue_N     two cameras, the second silent, queue_size N (100, the maximum; and 10, the default): 640x480 rgb8
              images at --rate Hz for --duration s on the first. Nothing pairs, so the approximate-time queue
              fills to queue_size images (921,600 B each) and must then stay there: RSS flat over the second half.
              Issue 19 measured 424 -> 851 MB in 43 s with queue_size 100000000.

The node runs in-process (as test/ros/test_node.py runs it: ReconstructionNode spun by its own executor thread)
with the tiny fixture model on the CPU; the camera is a second rclpy node of the same process. RSS is this
process's resident set (VmRSS), sampled after each JPEG and every second while the queue cases publish; peak is
the kernel's high-water mark (VmHWM), which also catches memory allocated and freed between samples. Dropped
images are the node's own counters per camera and kind (`InputAssembly.dropped`); its log lines come from /rosout.

Starts DDS, so run it in a loopback-only network namespace (about 80 s on a 2-core machine):
    unshare -n sh -c 'ip link set lo up && exec .venv/bin/python bench/node_memory.py --json out/node_memory.json'
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from PIL import Image as PILImage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))
from conftest import IMAGES, PERMISSIVE_WORLD, TINY  # noqa: E402
from support.netns import network_is_loopback_only  # noqa: E402

MB = 1e6
HUGE_SIDE = 12000
SETTLE_S = 2.0  # after the camera matched the node: the node's side of the match
# Writes a real 12000x12000 JPEG (smooth content, so it compresses to about 2 MB) to argv[1]; in a child process
# so the 576 MB Pillow holds while encoding never counts against this process.
MAKE_HUGE_JPEG = (
    "import sys; from PIL import Image\n"
    "side = int(sys.argv[2])\n"
    "Image.linear_gradient('L').resize((side, side)).convert('RGB').save(sys.argv[1], quality=75)"
)
# Each alone, then both (the first bad one is reported).
STARTUP_CASES = (
    ("queue_size:=100000000",),
    ("save_dataset_frames:=100000",),
    ("queue_size:=100000000", "save_dataset_frames:=100000"),
)


def memory_mb(field: str) -> float:
    """``VmRSS`` (resident set now) or ``VmHWM`` (its high-water mark) of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024 / MB
    raise RuntimeError(f"no {field} in /proc/self/status")


class Harness:
    """The node under test spinning in its own executor thread, a camera node with one publisher per topic, and the
    node's /rosout lines."""

    def __init__(self, params: dict, message_type, topics: list[str]) -> None:
        import rclpy
        from rcl_interfaces.msg import Log
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.parameter import Parameter
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        from vggt_ros.ros.node import ReconstructionNode

        rclpy.init()
        base = {"weights": str(TINY), "device": "cpu", "precision": "fp32", "image_size": 154, **PERMISSIVE_WORLD}
        self.node = ReconstructionNode(
            parameter_overrides=[Parameter(k, value=v) for k, v in {**base, **params}.items()]
        )
        self.camera = rclpy.create_node("memory_camera")
        self.logs: list[str] = []
        self.camera.create_subscription(Log, "/rosout", self._on_log, QoSProfile(depth=100))
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.publishers = {topic: self.camera.create_publisher(message_type, topic, reliable) for topic in topics}
        self.executors = []
        for node in (self.node, self.camera):
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            threading.Thread(target=executor.spin, daemon=True).start()
            self.executors.append(executor)
        deadline = time.monotonic() + 60.0
        while not all(publisher.get_subscription_count() for publisher in self.publishers.values()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the node never subscribed to {topics}")
            time.sleep(0.1)
        time.sleep(SETTLE_S)

    def _on_log(self, msg) -> None:
        if msg.name.endswith("vggt"):
            self.logs.append(f"[{msg.level}] {msg.msg}")

    @property
    def inputs(self):
        return self.node._input  # the node's InputAssembly: its counters are what this bench reports

    def close(self) -> None:
        import rclpy

        for executor in self.executors:
            executor.shutdown(timeout_sec=5.0)
        self.camera.destroy_node()
        self.node.destroy_node()
        rclpy.try_shutdown()


def stamp(msg, stamp_ns: int) -> None:
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)


def case_huge_jpeg(args) -> dict:
    from sensor_msgs.msg import CompressedImage

    path = Path(f"/tmp/node_memory_{HUGE_SIDE}.jpg")
    if not path.exists():
        subprocess.run([sys.executable, "-c", MAKE_HUGE_JPEG, str(path), str(HUGE_SIDE)], check=True)
    with PILImage.open(path) as image:
        assert image.size == (HUGE_SIDE, HUGE_SIDE), image.size  # what the JPEG header says
    msg = CompressedImage(format="jpeg", data=path.read_bytes())
    msg.header.frame_id = "camera"
    topic = "/cam/image/compressed"
    harness = Harness({"image_topics": ["/cam/image"], "image_transport": "compressed"}, CompressedImage, [topic])
    try:
        rss_before, peak_before = memory_mb("VmRSS"), memory_mb("VmHWM")
        samples: list[float] = []  # RSS MB 0.5 s after each image
        started_ns = time.time_ns()
        for index in range(args.jpeg_count):
            stamp(msg, started_ns + index * 500_000_000)
            harness.publishers[topic].publish(msg)
            time.sleep(0.5)
            samples.append(memory_mb("VmRSS"))
        deadline = time.monotonic() + 20.0
        while harness.inputs.images_received < args.jpeg_count and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        rss_after, peak_after = memory_mb("VmRSS"), memory_mb("VmHWM")
        received = harness.inputs.images_received
        dropped = {kind: count for (_, kind), count in harness.inputs.dropped.items()}
    finally:
        harness.close()
    return {
        "jpeg_bytes": len(msg.data),
        "jpeg_pixels": f"{HUGE_SIDE}x{HUGE_SIDE}",
        "decoded_bytes_each": HUGE_SIDE * HUGE_SIDE * 3,
        "sent": args.jpeg_count,
        "received": received,
        "dropped": dropped,
        "rss_before_mb": rss_before,
        "rss_after_mb": rss_after,
        "peak_before_mb": peak_before,
        "peak_after_mb": peak_after,
        "rss_after_first_mb": samples[0],
        "rss_growth_after_first_mb": samples[-1] - samples[0],
        "rss_samples": samples,
        "node_log": list(dict.fromkeys(harness.logs))[:5],
    }


def case_queue(args) -> dict:
    from sensor_msgs.msg import Image

    width, height = 640, 480
    with PILImage.open(IMAGES / "chelsea.png") as photo:
        pixels = photo.convert("RGB").resize((width, height), PILImage.Resampling.BILINEAR).tobytes()
    msg = Image(height=height, width=width, encoding="rgb8", step=3 * width, data=pixels)
    msg.header.frame_id = "left"
    topics = ["/left/image", "/right/image"]  # /right/image stays silent
    harness = Harness({"image_topics": topics, "queue_size": args.queue_size}, Image, topics[:1])
    try:
        rss_before, peak_before = memory_mb("VmRSS"), memory_mb("VmHWM")
        samples: list[tuple[float, float]] = []  # (s since the first image, RSS MB)
        count = int(args.duration * args.rate)
        started = time.perf_counter()
        next_sample = 0.0
        for index in range(count):
            delay = started + index / args.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            stamp(msg, time.time_ns())
            harness.publishers[topics[0]].publish(msg)
            elapsed = time.perf_counter() - started
            if elapsed >= next_sample:
                samples.append((elapsed, memory_mb("VmRSS")))
                next_sample += 1.0
        sending_s = time.perf_counter() - started
        time.sleep(1.0)
        samples.append((time.perf_counter() - started, memory_mb("VmRSS")))
        rss_after, peak_after = memory_mb("VmRSS"), memory_mb("VmHWM")
        received = harness.inputs.images_received
        queued = harness.inputs._sync.queued(0)  # images of the sending camera waiting for a partner
    finally:
        harness.close()
    half = [rss for elapsed, rss in samples if elapsed >= args.duration / 2]
    return {
        "queue_size": args.queue_size,
        "size": f"{width}x{height}",
        "rate_hz": args.rate,
        "send_rate_hz": count / sending_s,
        "duration_s": args.duration,
        "sent": count,
        "received": received,
        "queued_at_end": queued,
        "queue_bound_mb": args.queue_size * len(pixels) / MB,
        "rss_before_mb": rss_before,
        "rss_after_mb": rss_after,
        "rss_second_half_growth_mb": half[-1] - half[0],
        "peak_before_mb": peak_before,
        "peak_after_mb": peak_after,
        "rss_samples": samples,
        "node_log": list(dict.fromkeys(harness.logs))[:5],
    }


def case_startup(params: tuple[str, ...]) -> dict:
    command = [sys.executable, "-m", "vggt_ros.ros.node", "--ros-args", "-p", f"weights:={TINY}", "-p", "device:=cpu"]
    for assignment in params:
        command += ["-p", assignment]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    lines = (result.stdout + result.stderr).splitlines()
    return {
        "params": list(params),
        "exit_code": result.returncode,
        "seconds": time.perf_counter() - started,
        "fatal_lines": [line for line in lines if "FATAL" in line],
        "output_lines": len(lines),
    }


def run_case(name: str, extra: list[str]) -> dict:
    """One node case in a fresh process (this script with --case), its result read from its last stdout line."""
    command = [sys.executable, __file__, "--case", name, *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"case {name} failed ({result.returncode}):\n{result.stdout}{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of publishing in the queue cases")
    parser.add_argument("--rate", type=float, default=30.0, help="images per second in the queue cases")
    parser.add_argument("--jpeg-count", type=int, default=10, help="12000x12000 JPEGs published")
    parser.add_argument("--json", type=Path, default=None, help="where to write the results")
    parser.add_argument("--case", choices=("huge_jpeg", "queue"), help=argparse.SUPPRESS)  # a child's one case
    parser.add_argument("--queue-size", type=int, default=100, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not network_is_loopback_only():
        print(
            "node_memory.py starts DDS: run it in a loopback-only namespace:\n"
            "  unshare -n sh -c 'ip link set lo up && exec .venv/bin/python bench/node_memory.py --json PATH'",
            file=sys.stderr,
        )
        return 2
    if args.case:
        os.environ["FASTDDS_BUILTIN_TRANSPORTS"] = "LARGE_DATA"  # as the launch file sets it, for 640x480 and up
        print(json.dumps(case_huge_jpeg(args) if args.case == "huge_jpeg" else case_queue(args)))
        return 0

    load_before = os.getloadavg()
    timing = ["--duration", str(args.duration), "--rate", str(args.rate)]
    result = {
        "huge_jpeg": run_case("huge_jpeg", ["--jpeg-count", str(args.jpeg_count)]),
        "startup": [case_startup(params) for params in STARTUP_CASES],
        "queue_100": run_case("queue", [*timing, "--queue-size", "100"]),
        "queue_10": run_case("queue", [*timing, "--queue-size", "10"]),
        "cpu_cores": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }
    print(
        f"node memory, tiny model on the CPU; {os.cpu_count()} cores, load average {load_before[0]:.1f} before, "
        f"{result['load_average_after'][0]:.1f} after"
    )
    jpeg = result["huge_jpeg"]
    print(
        f"  huge JPEG: {jpeg['sent']} x {jpeg['jpeg_bytes'] / MB:.2f} MB JPEG of {jpeg['jpeg_pixels']} "
        f"({jpeg['decoded_bytes_each'] / MB:.0f} MB decoded): received {jpeg['received']}, dropped {jpeg['dropped']}; "
        f"RSS {jpeg['rss_before_mb']:.0f} -> {jpeg['rss_after_first_mb']:.0f} MB after the first (transport "
        f"buffers), {jpeg['rss_growth_after_first_mb']:+.1f} MB over the other {jpeg['sent'] - 1}, "
        f"peak {jpeg['peak_before_mb']:.0f} -> {jpeg['peak_after_mb']:.0f} MB"
    )
    for line in jpeg["node_log"]:
        print(f"    node: {line[:160]}")
    for startup in result["startup"]:
        print(
            f"  start-up with {' '.join(startup['params'])}: exit {startup['exit_code']} after "
            f"{startup['seconds']:.1f} s, {len(startup['fatal_lines'])} FATAL line(s) of {startup['output_lines']}"
        )
        for line in startup["fatal_lines"]:
            print(f"    {line.split(']: ', 1)[-1][:200]}")
    print(
        f"  {'two cameras, one silent':<26}{'sent':>6}{'recv':>6}{'queued':>7}{'bound MB':>9}{'RSS before':>11}"
        f"{'RSS after':>10}{'2nd half':>9}{'peak':>7}"
    )
    for key in ("queue_100", "queue_10"):
        queue = result[key]
        label = f"queue_size {queue['queue_size']} ({queue['send_rate_hz']:.0f} Hz)"
        print(
            f"  {label:<26}"
            f"{queue['sent']:>6}{queue['received']:>6}{queue['queued_at_end']:>7}{queue['queue_bound_mb']:>9.0f}"
            f"{queue['rss_before_mb']:>11.0f}{queue['rss_after_mb']:>10.0f}"
            f"{queue['rss_second_half_growth_mb']:>+9.0f}{queue['peak_after_mb']:>7.0f}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
