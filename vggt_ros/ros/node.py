"""The `vggt` node: synchronised camera images -> sliding window -> VGGT -> one chained world -> cloud, depth,
CameraInfo, TF, path and map.

A thin layer over the core: `vggt_ros.image_encoding` (message -> RGB view), `vggt_ros.sync` (approximate
time), and `vggt_ros.session` (keyframes, window, reset rules, incremental network, Sim(3) chaining into the
world of the very first image, the map). This file only moves data between ROS and those.

Threads: the executor thread runs the subscription callbacks (conversion, sync, `session.add`: cheap), the map
timer and the services; one worker thread runs `session.infer` (preprocessing and the network), then
`session.integrate` (the world and the map) and publishing. They meet in a `LatestSlot`, so when the network is
slower than the cameras the newest window wins and the frame sets of replaced windows are counted as dropped.
The world and the map are shared under one lock, held only while a window is integrated (never during
inference), so the map timer and the services answer while the network runs.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Callable, Optional

import numpy as np
import rclpy
from nav_msgs.msg import Path
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage

import torch

from vggt_ros.image_encoding import ImageFormatError, image_to_rgb
from vggt_ros.input_watchdog import InputWatchdog
from vggt_ros.mapping import EmptyMapError
from vggt_ros.products import pack_rgb
from vggt_ros.ros import messages
from vggt_ros.ros.params import NodeParameters, declare_and_read
from vggt_ros.runtime import RuntimeConfig, create_pipeline
from vggt_ros.session import FrameSetError, ReconstructionSession, WindowOutput
from vggt_ros.sync import ApproximateTimeSynchronizer, SyncedSet
from vggt_ros.window import FrameSet, LatestSlot, Window
from vggt_ros.world import WindowStatus

NODE_NAME = "vggt"
# Fast DDS' transports: images over about 512 kB need LARGE_DATA (or a larger shared-memory segment) on both sides
# of a best-effort subscription, and processes with different transports do not discover each other.
TRANSPORTS_VARIABLE = "FASTDDS_BUILTIN_TRANSPORTS"
MAP_FIELDS = ("x", "y", "z", "rgb")
# Repeated complaints about the same problem are logged at most this often.
LOG_PERIOD_S = 5.0
# tf2_ros' QoS: TransformBroadcaster (keep last 100, reliable, volatile) and StaticTransformBroadcaster
# (keep last 1, reliable, transient local, so late listeners still get the static frames).
TF_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
TF_STATIC_QOS = QoSProfile(
    depth=1,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
OUTPUT_QOS = 5
# ~/map is latched: a late subscriber (RViz started later) still gets the current map.
MAP_QOS = QoSProfile(
    depth=1,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)


class StartupError(RuntimeError):
    """The node cannot start; the message says what to change."""


class _Throttle:
    """Per-key rate limit for log lines, so each kind of problem is reported, but not once per frame."""

    def __init__(self, period_s: float) -> None:
        self._period_s = period_s
        self._last: dict[tuple, float] = {}
        self._lock = threading.Lock()

    def allow(self, key: tuple) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -float("inf")) < self._period_s:
                return False
            self._last[key] = now
            return True


class _CameraOutputs:
    """Per-camera publishers (depth, confidence, CameraInfo), each None when switched off."""

    def __init__(self, node: Node, prefix: str, params: NodeParameters) -> None:
        def maybe(enabled: bool, msg_type: type, topic: str):
            return node.create_publisher(msg_type, prefix + topic, OUTPUT_QOS) if enabled else None

        self.depth = maybe(params.publish_depth, Image, "depth/image")
        self.camera_info = maybe(params.publish_camera_info, CameraInfo, "depth/camera_info")
        self.confidence = maybe(params.publish_confidence, Image, "confidence")


class ReconstructionNode(Node):
    """Subscribes to ``image_topics`` and publishes VGGT's reconstruction of each window (see the README)."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self._slot: LatestSlot[Window] = LatestSlot()
        self._worker: Optional[threading.Thread] = None
        try:
            self.params = declare_and_read(self)
        except ValueError as err:
            super().destroy_node()
            raise StartupError(f"bad parameter: {err}") from None
        # The CPU-side work (preprocessing and products on a CPU device, the world, message packing) uses this
        # many intra-op threads: OpenMP threads spin-wait on a sibling that another process descheduled.
        torch.set_num_threads(self.params.cpu_threads)
        try:
            self._session = self._load_session(self.params)
        except StartupError:
            super().destroy_node()
            raise
        # World and map: changed by the worker, read by the map timer and the services, all under this lock.
        self._world_lock = threading.Lock()
        self._map_version_sent = -1
        self._newest_stamp_ns = 0
        self._throttle = _Throttle(LOG_PERIOD_S)

        names = self.params.names
        single = len(names) == 1
        self._camera_outputs = [_CameraOutputs(self, "~/" if single else f"~/{name}/", self.params) for name in names]
        self._points_pub = (
            self.create_publisher(PointCloud2, "~/points", OUTPUT_QOS) if self.params.publish_points else None
        )
        self._path_pub = self.create_publisher(Path, "~/path", OUTPUT_QOS) if self.params.publish_path else None
        if self.params.publish_map:
            self._map_pub = self.create_publisher(PointCloud2, "~/map", MAP_QOS)
            self.create_timer(self.params.map_publish_period, self._publish_map)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_service(Trigger, "~/save", self._on_save)
        self._tf_pub = self.create_publisher(TFMessage, "/tf", TF_QOS) if self.params.publish_tf else None
        self._tf_static_pub = None
        if self.params.publish_tf:
            self._tf_static_pub = self.create_publisher(TFMessage, "/tf_static", TF_STATIC_QOS)
            self._publish_static_frame()

        # Executor-thread state.
        self._sync: ApproximateTimeSynchronizer[np.ndarray] = ApproximateTimeSynchronizer(
            len(names), self.params.queue_size, self.params.slop
        )
        self._last_stamp_ns: list[Optional[int]] = [None] * len(names)
        # Counters (each written by one thread only).
        self.windows_emitted = 0
        self.windows_dropped = 0
        self.frame_sets_dropped = 0
        self.windows_published = 0
        self.windows_rejected = 0
        self.windows_failed = 0
        self.images_received = 0
        self.map_checks = 0  # map timer runs that got the world lock

        self._worker = threading.Thread(target=self._work, name="vggt-inference", daemon=True)
        self._worker.start()

        subscriptions = [
            self.create_subscription(Image, topic, self._image_callback(index), qos_profile_sensor_data)
            for index, topic in enumerate(self.params.image_topics)
        ]
        # Images can be lost silently (sensor-data QoS, see TRANSPORTS_VARIABLE): check that they arrive. The
        # resolved names (namespace, remapping) are the ones the ROS graph and the user's tools show.
        self._input_topics = [subscription.topic_name for subscription in subscriptions]
        self._input_watchdog = InputWatchdog(self._input_topics, self.params.input_timeout, time.monotonic())
        # Checking twice per timeout reports a quiet topic between 1 and 1.5 timeouts after it went quiet.
        self.create_timer(self.params.input_timeout / 2, self._check_inputs)
        self.get_logger().info(
            f"listening to {list(self.params.image_topics)} as {list(names)}; backend {self.params.backend} on "
            f"{self.params.device}, window {self.params.window_size} (stride {self.params.window_stride}), "
            f"publishing in '{self.params.world_frame}' under '{self.params.parent_frame}'"
        )

    # ----------------------------------------------------------------------------------------- start-up
    @staticmethod
    def _load_session(params: NodeParameters) -> ReconstructionSession:
        """The session over the inference pipeline, or a StartupError that says what to change."""
        window_frames = params.window_size * len(params.image_topics)
        if params.backend == "torch":
            fix = (
                "set 'weights' to a Hugging Face id (facebook/VGGT-1B), a folder with config.json and the weights, "
                "or a weights file (plus 'model_config' for a non-default model); use device cpu without a CUDA GPU"
            )
        else:
            fix = (
                f"export the engines first: vggt-ros-build-engines --backend {params.backend} --weights <weights> "
                f"--height <model input height> --width {params.image_size} --max-frames {window_frames} "
                f"--out {params.engine_dir} (see the README), or point 'engine_dir' at such a folder"
            )
        try:
            pipeline = create_pipeline(
                RuntimeConfig(
                    backend=params.backend,
                    weights=params.weights,
                    model_config=params.model_config or None,
                    device=params.device,
                    precision=params.precision,
                    engine_dir=params.engine_dir,
                )
            )
            return ReconstructionSession(pipeline, params.session_config())
        except Exception as err:  # noqa: BLE001 - any loader failure becomes one clear start-up error
            where = f"weights '{params.weights}'" if params.backend == "torch" else f"engine_dir '{params.engine_dir}'"
            raise StartupError(
                f"cannot load the {params.backend} pipeline ({where}, device {params.device}): {err}\nFix: {fix}."
            ) from None

    def _publish_static_frame(self) -> None:
        parent_from_world = np.zeros((3, 4))
        parent_from_world[:, :3] = messages.PARENT_FROM_OPTICAL_WORLD
        transform = messages.transform_stamped(
            self.params.parent_frame, self.params.world_frame, self.get_clock().now().nanoseconds, parent_from_world
        )
        self._tf_static_pub.publish(messages.tf_message([transform]))

    # ------------------------------------------------------------------------------- executor thread
    def _error(self, key: tuple, text: str) -> None:
        if self._throttle.allow(key):
            self.get_logger().error(text)

    def _check_inputs(self) -> None:
        """Warn, per image topic, when no image has arrived for input_timeout: the likely cause and its fix."""
        counts = {topic: self.count_publishers(topic) for topic in self._input_topics}
        ours = os.environ.get(TRANSPORTS_VARIABLE, "(unset)")
        fix = f"set {TRANSPORTS_VARIABLE}=LARGE_DATA in the camera driver's environment too (this node's value: {ours})"
        for quiet in self._input_watchdog.quiet_topics(counts, time.monotonic()):
            if not self._throttle.allow(("input", quiet.topic, quiet.publishers > 0)):
                continue
            if quiet.publishers:
                self.get_logger().warning(
                    f"no image on '{quiet.topic}' for {quiet.quiet_s:.1f} s although {quiet.publishers} publisher(s) "
                    "are matched: with Fast DDS' default transports, images over about 512 kB are lost on this "
                    f"best-effort (sensor-data QoS) subscription. Fix: {fix}; or check the driver's QoS and that it "
                    f"publishes (ros2 topic hz {quiet.topic})"
                )
            else:
                self.get_logger().warning(
                    f"no publisher on '{quiet.topic}' for {quiet.quiet_s:.1f} s: is the camera driver running, on this "
                    f"topic? If it is, it is not discovered: Fast DDS processes with different {TRANSPORTS_VARIABLE} "
                    f"do not see each other. Fix: {fix}"
                )

    def _image_callback(self, camera_index: int) -> Callable[[Image], None]:
        return lambda msg: self._on_image(camera_index, msg)

    def _on_image(self, camera_index: int, msg: Image) -> None:
        self.images_received += 1
        self._input_watchdog.image_arrived(self._input_topics[camera_index], time.monotonic())
        name = self.params.names[camera_index]
        try:
            rgb = image_to_rgb(msg.data, msg.height, msg.width, msg.step, msg.encoding)
        except ImageFormatError as err:
            self._error(("image", camera_index, err.kind), f"camera '{name}': {err}; image dropped")
            return
        stamp_ns = messages.ns_from_stamp(msg.header.stamp)
        last = self._last_stamp_ns[camera_index]
        if last is not None and stamp_ns < last:
            self._error(
                ("time", camera_index),
                f"camera '{name}': time went backwards ({last / 1e9:.3f} s -> {stamp_ns / 1e9:.3f} s; a bag loop or "
                "a restarted driver?): window reset, reconstruction starts over",
            )
            self._restart()
        self._last_stamp_ns[camera_index] = stamp_ns
        synced = self._sync.add(camera_index, stamp_ns, rgb)
        if synced is not None:
            self._on_synced(synced)

    def _restart(self) -> None:
        """Start over from the next images: window, synchronizer and (before the next window) the world."""
        self._sync.reset()
        self._session.request_reset()
        self._last_stamp_ns = [None] * len(self._last_stamp_ns)

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._restart()
        self.get_logger().info("reset requested: the next window starts a new world and an empty map")
        response.success, response.message = True, "the next window starts a new world"
        return response

    def _on_save(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            with self._world_lock:
                map_path, trajectory_path = self._session.save(self.params.save_directory)
                points = len(self._session.map)
        except (OSError, EmptyMapError) as err:
            response.success, response.message = False, f"could not save to '{self.params.save_directory}': {err}"
            self.get_logger().error(response.message)
            return response
        response.success = True
        response.message = f"saved {points} map points to {map_path} and the trajectory to {trajectory_path}"
        self.get_logger().info(response.message)
        return response

    def _publish_map(self) -> None:
        with self._world_lock:
            self.map_checks += 1
            growing_map = self._session.map
            if growing_map.version == self._map_version_sent:
                return
            self._map_version_sent = growing_map.version
            points, colors = growing_map.points, growing_map.colors
            stamp_ns = self._newest_stamp_ns
        rows = np.column_stack((points, pack_rgb(torch.from_numpy(colors)).numpy()))
        self._map_pub.publish(
            messages.point_cloud2(rows, 1, len(rows), stamp_ns, self.params.world_frame, MAP_FIELDS)
        )

    def _on_synced(self, synced: SyncedSet[np.ndarray]) -> None:
        try:
            update = self._session.add(FrameSet(stamps_ns=synced.stamps_ns, images=synced.items))
        except FrameSetError as err:
            self._error(("frame_set", err.kind), str(err))
            return
        if update.reset:
            self.get_logger().warning(update.reset)
        if update.window is None:
            return
        self.windows_emitted += 1
        replaced = self._slot.put(update.window)
        if replaced is not None:
            self.windows_dropped += 1
            self.frame_sets_dropped += replaced.new_count
            if self._throttle.allow(("dropped",)):
                self.get_logger().warning(
                    f"inference is slower than the cameras: {self.frame_sets_dropped} frame sets dropped so far "
                    "(the newest frames win); raise window_stride or keyframe_min_interval, or use a faster backend"
                )

    # --------------------------------------------------------------------------------- worker thread
    def _work(self) -> None:
        while True:
            window = self._slot.take()
            if window is None:
                return
            try:
                self._infer_and_publish(window)
            except Exception as err:  # noqa: BLE001 - one bad window must not stop the node
                self.windows_failed += 1
                self._error(("inference", type(err).__name__), f"window {window.sequence} failed: {err}")

    def _infer_and_publish(self, window: Window) -> None:
        inference = self._session.infer(window)
        with self._world_lock:
            out = self._session.integrate(inference)
            self._newest_stamp_ns = out.window.frame_sets[-1].stamps_ns[0]
            path = self._session.camera_path() if out.merged and self._path_pub is not None else []
        self._report(out.window, out)
        if out.merged:
            self._publish_window(out, path)

    def _report(self, window: Window, out: WindowOutput) -> None:
        if out.status is WindowStatus.REJECTED:
            self.windows_rejected += 1
            cause = out.result.cause if out.result is not None else "undecodable"
            self._error(("rejected", cause), f"window {window.sequence} not merged into the world: {out.reason}")
        elif out.status is WindowStatus.NEW_SEGMENT:
            self.get_logger().warning(
                f"tracking lost: window {window.sequence} starts segment {out.result.segment} ({out.reason}); "
                "the map was cleared"
            )
        elif out.status is WindowStatus.INITIALIZED:
            self.get_logger().info(f"window {window.sequence} defines the world frame '{self.params.world_frame}'")

    def _publish_window(self, out: WindowOutput, path: list[tuple[int, np.ndarray]]) -> None:
        params = self.params
        newest_stamp_ns = out.window.frame_sets[-1].stamps_ns[0]
        for frame in out.newest:
            optical = params.optical_frame(frame.camera)
            publishers = self._camera_outputs[frame.camera]
            if publishers.depth is not None:
                publishers.depth.publish(messages.float_image(frame.depth, frame.stamp_ns, optical))
            if publishers.confidence is not None:
                publishers.confidence.publish(messages.float_image(frame.confidence, frame.stamp_ns, optical))
            if publishers.camera_info is not None:
                publishers.camera_info.publish(
                    messages.camera_info(frame.intrinsics, frame.depth.shape, frame.stamp_ns, optical)
                )
        if self._tf_pub is not None:
            transforms = [
                messages.transform_stamped(
                    params.world_frame, params.optical_frame(frame.camera), frame.stamp_ns, frame.world_from_camera
                )
                for frame in out.newest
            ]
            self._tf_pub.publish(messages.tf_message(transforms))
        if self._points_pub is not None and out.cloud is not None:
            cloud = out.cloud
            self._points_pub.publish(
                messages.point_cloud2(cloud.points, cloud.height, cloud.width, newest_stamp_ns, params.world_frame)
            )
        if self._path_pub is not None:
            self._path_pub.publish(messages.path(path, newest_stamp_ns, params.world_frame))
        self.windows_published += 1

    # ------------------------------------------------------------------------------------- shutdown
    def destroy_node(self) -> None:
        self._slot.close()
        if self._worker is not None:
            self._worker.join(timeout=30.0)
        super().destroy_node()


def main(args: Optional[list[str]] = None) -> int:
    """Entry point of ``ros2 run vggt_ros reconstruct_node``: spin until Ctrl-C; exit 1 on a start-up error."""
    rclpy.init(args=args)
    # Built before the node, so a Ctrl-C right after start-up cannot land inside the executor's constructor.
    executor = SingleThreadedExecutor()
    node = None
    try:
        node = ReconstructionNode()
        executor.add_node(node)
        executor.spin()
    except StartupError as err:
        rclpy.logging.get_logger(NODE_NAME).fatal(str(err))
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # Ctrl-C, also while still starting up
    finally:
        executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()  # also destroys a node whose constructor was interrupted
    return 0


if __name__ == "__main__":
    sys.exit(main())
