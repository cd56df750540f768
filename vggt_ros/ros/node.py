"""The `vggt` node: synchronised camera images -> sliding window -> VGGT -> cloud, depth, CameraInfo, TF, path.

A thin layer over the core: `vggt_ros.image_encoding` (message -> RGB view), `vggt_ros.sync` (approximate
time), `vggt_ros.window` (keyframes, window, latest-only hand-off), `vggt_ros.preprocess`, `vggt_ros.runtime`
(the network) and `vggt_ros.products` (numpy products). This file only moves data between ROS and those.

Threads: the executor thread runs the subscription callbacks (conversion, sync, windowing: cheap); one worker
thread runs preprocessing, the network, products and publishing. They meet in a `LatestSlot`, so when the
network is slower than the cameras the newest window wins and the frame sets of replaced windows are
counted as dropped.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable, Optional

import numpy as np
import rclpy
import torch
from nav_msgs.msg import Path
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from tf2_msgs.msg import TFMessage

from vggt_ros.image_encoding import ImageFormatError, image_to_rgb
from vggt_ros.preprocess import preprocess_frames
from vggt_ros.products import build_cloud, decode_frames, express_in_world
from vggt_ros.ros import messages
from vggt_ros.ros.params import NodeParameters, declare_and_read
from vggt_ros.runtime import RuntimeConfig, create_pipeline
from vggt_ros.runtime.io_contract import ExportManifest
from vggt_ros.sync import ApproximateTimeSynchronizer, SyncedSet
from vggt_ros.window import FrameSet, LatestSlot, SlidingWindow, Window

NODE_NAME = "vggt"
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


class StartupError(RuntimeError):
    """The node cannot start; the message says what to change."""


def _check_engines_fit(manifest: ExportManifest, params: NodeParameters) -> None:
    """Exported engines have a fixed image size and frame range: check they can run this node's windows."""
    cameras = len(params.image_topics)
    needed = (cameras, params.window_size * cameras)  # the first window has one frame set, a full one window_size
    if manifest.frames.min > needed[0] or manifest.frames.max < needed[1]:
        raise ValueError(
            f"the engines accept {manifest.frames.min}..{manifest.frames.max} frames, but windows hold {needed[0]}.."
            f"{needed[1]} images (window_size x cameras)"
        )
    square = params.preprocess_mode == "pad"
    if manifest.width != params.image_size or (square and manifest.height != params.image_size):
        raise ValueError(
            f"the engines take {manifest.height}x{manifest.width} images (HxW), but image_size {params.image_size} in "
            f"{params.preprocess_mode} mode gives width {params.image_size}" + (" and height too" if square else "")
        )


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
        try:
            self._pipeline = self._load_pipeline(self.params)
        except StartupError:
            super().destroy_node()
            raise
        self._world_from_window = np.eye(4)  # each window is its own world until windows are chained
        self._throttle = _Throttle(LOG_PERIOD_S)

        names = self.params.names
        single = len(names) == 1
        self._camera_outputs = [_CameraOutputs(self, "~/" if single else f"~/{name}/", self.params) for name in names]
        self._points_pub = (
            self.create_publisher(PointCloud2, "~/points", OUTPUT_QOS) if self.params.publish_points else None
        )
        self._path_pub = self.create_publisher(Path, "~/path", OUTPUT_QOS) if self.params.publish_path else None
        self._tf_pub = self.create_publisher(TFMessage, "/tf", TF_QOS) if self.params.publish_tf else None
        self._tf_static_pub = None
        if self.params.publish_tf:
            self._tf_static_pub = self.create_publisher(TFMessage, "/tf_static", TF_STATIC_QOS)
            self._publish_static_frame()

        # Executor-thread state.
        self._sync: ApproximateTimeSynchronizer[np.ndarray] = ApproximateTimeSynchronizer(
            len(names), self.params.queue_size, self.params.slop
        )
        self._window = SlidingWindow(self.params.window_config())
        self._last_stamp_ns: list[Optional[int]] = [None] * len(names)
        self._resolution: Optional[tuple[int, int]] = None
        # Counters (each written by one thread only).
        self.windows_emitted = 0
        self.windows_dropped = 0
        self.frame_sets_dropped = 0
        self.windows_published = 0
        self.windows_failed = 0

        self._worker = threading.Thread(target=self._work, name="vggt-inference", daemon=True)
        self._worker.start()

        for index, topic in enumerate(self.params.image_topics):
            self.create_subscription(Image, topic, self._image_callback(index), qos_profile_sensor_data)
        self.get_logger().info(
            f"listening to {list(self.params.image_topics)} as {list(names)}; backend {self.params.backend} on "
            f"{self.params.device}, window {self.params.window_size} (stride {self.params.window_stride}), "
            f"publishing in '{self.params.world_frame}' under '{self.params.parent_frame}'"
        )

    # ----------------------------------------------------------------------------------------- start-up
    @staticmethod
    def _load_pipeline(params: NodeParameters):
        """The inference pipeline, or a StartupError that says what to change."""
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
            if params.backend != "torch":
                _check_engines_fit(ExportManifest.load(params.engine_dir), params)
        except Exception as err:  # noqa: BLE001 - any loader failure becomes one clear start-up error
            where = f"weights '{params.weights}'" if params.backend == "torch" else f"engine_dir '{params.engine_dir}'"
            raise StartupError(
                f"cannot load the {params.backend} pipeline ({where}, device {params.device}): {err}\nFix: {fix}."
            ) from None
        return pipeline

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

    def _image_callback(self, camera_index: int) -> Callable[[Image], None]:
        return lambda msg: self._on_image(camera_index, msg)

    def _on_image(self, camera_index: int, msg: Image) -> None:
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
        self._sync.reset()
        self._window.reset()
        self._last_stamp_ns = [None] * len(self._last_stamp_ns)

    def _on_synced(self, synced: SyncedSet[np.ndarray]) -> None:
        shapes = [image.shape[:2] for image in synced.items]
        if len(set(shapes)) > 1:
            sizes = ", ".join(f"{name} {w}x{h}" for name, (h, w) in zip(self.params.names, shapes))
            self._error(
                ("resolution",),
                f"cameras have different resolutions ({sizes}, WxH); they must match: set dropped "
                "(resize them upstream, e.g. with image_proc)",
            )
            return
        if self._resolution is not None and shapes[0] != self._resolution:
            self.get_logger().warning(
                f"image size changed from {self._resolution[1]}x{self._resolution[0]} to {shapes[0][1]}x{shapes[0][0]} "
                "(WxH): window reset"
            )
            self._window.reset()
        self._resolution = shapes[0]

        update = self._window.add(FrameSet(stamps_ns=synced.stamps_ns, images=synced.items))
        if update.reset:
            self._error(("time", "set"), "synchronized frame sets went back in time: window reset")
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
        params = self.params
        images = preprocess_frames(
            np.stack(window.images),
            mode=params.preprocess_mode,
            target_size=params.image_size,
            device=self._pipeline.device,
        )
        outputs = self._pipeline(images)
        frames = express_in_world(decode_frames(outputs), self._world_from_window)
        cameras = window.num_cameras
        newest = window.frame_sets[-1]

        for camera_index in range(cameras):
            frame = frames[len(frames) - cameras + camera_index]
            stamp_ns = newest.stamps_ns[camera_index]
            optical = params.optical_frame(camera_index)
            out = self._camera_outputs[camera_index]
            if out.depth is not None:
                out.depth.publish(messages.float_image(frame.depth, stamp_ns, optical))
            if out.confidence is not None:
                out.confidence.publish(messages.float_image(frame.confidence, stamp_ns, optical))
            if out.camera_info is not None:
                out.camera_info.publish(messages.camera_info(frame.intrinsics, frame.image_hw, stamp_ns, optical))

        if self._tf_pub is not None:
            transforms = [
                messages.transform_stamped(
                    params.world_frame,
                    params.optical_frame(camera_index),
                    newest.stamps_ns[camera_index],
                    frames[len(frames) - cameras + camera_index].world_from_camera,
                )
                for camera_index in range(cameras)
            ]
            self._tf_pub.publish(messages.tf_message(transforms))

        if self._points_pub is not None:
            first_new = len(frames) - window.new_count * cameras
            colors = (images[first_new:] * 255).round_().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            cloud = build_cloud(frames[first_new:], list(colors), params.cloud_config())
            self._points_pub.publish(messages.point_cloud2(cloud, newest.stamps_ns[0], params.world_frame))

        if self._path_pub is not None:
            poses = [(fs.stamps_ns[0], frames[i * cameras].world_from_camera) for i, fs in enumerate(window.frame_sets)]
            self._path_pub.publish(messages.path(poses, newest.stamps_ns[0], params.world_frame))
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
