# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
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

Health: both threads count what they do (images per camera, images DDS lost or that never arrived, keyframes,
windows and their outcomes, latency at publication); a 1 Hz timer hands a snapshot of the counters to
`vggt_ros.node_health`, which judges it, and publishes the verdict on /diagnostics (`vggt_ros.ros.diagnostics`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import deque
from typing import Callable, Optional

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry, Path
from rclpy.event_handler import QoSMessageLostInfo, SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from rclpy.subscription import MessageInfo
from rclpy.task import Future
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage

from vggt_ros.compressed_image import decode_compressed
from vggt_ros.dataset.writer import DatasetWriter
from vggt_ros.image_encoding import ImageFormatError, image_to_rgb
from vggt_ros.input_watchdog import InputWatchdog
from vggt_ros.mapping import require_open3d
from vggt_ros.metric.robot_frames import RobotPlacement, odometry_sigmas, pose_covariance
from vggt_ros.metric.sensor_depth import DepthFormatError, depth_to_metres
from vggt_ros.metric.sources import ScaleUnavailable
from vggt_ros.metric.tf_buffer import TransformLookupError
from vggt_ros.node_health import CameraCounts, HealthMonitor, HealthSnapshot, ScaleState, SequenceGaps, gpu_memory
from vggt_ros.ros import diagnostics, messages, qos
from vggt_ros.ros.outputs import Output, map_message, topic, window_messages, world_frame_message
from vggt_ros.ros.params import NodeParameters, declare_and_read
from vggt_ros.ros.tf_listener import make_transform_buffer
from vggt_ros.runtime import RuntimeConfig, create_pipeline
from vggt_ros.session import FrameSetError, ReconstructionSession, WindowOutput
from vggt_ros.stamps import CameraStamps, StampVerdict
from vggt_ros.sync import ApproximateTimeSynchronizer, NearestStampQueue, SyncedSet
from vggt_ros.window import FrameSet, LatestSlot, Window
from vggt_ros.world import WindowStatus

NODE_NAME = "vggt"
# Fast DDS' transports: images over about 512 kB need LARGE_DATA (or a larger shared-memory segment) on both sides
# of a best-effort subscription, and processes with different transports do not discover each other.
TRANSPORTS_VARIABLE = "FASTDDS_BUILTIN_TRANSPORTS"
# Repeated complaints about the same problem are logged at most this often.
LOG_PERIOD_S = 5.0
OUTPUT_QOS = 5
DIAGNOSTICS_QOS = 10
# Publication latencies kept for /diagnostics' percentiles: more than diagnostics_window's worth at any real rate.
LATENCY_SAMPLES = 1024


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


class ReconstructionNode(LifecycleNode):
    """Subscribes to ``image_topics`` and publishes VGGT's reconstruction of each window (see the README).

    A lifecycle node: configure loads the weights or engines and creates the outputs and services (the world
    starts empty); activate subscribes to the cameras; deactivate unsubscribes, keeping the world and the map;
    cleanup stops the worker and frees the pipeline (and the GPU memory torch cached). With ``autostart`` (the
    default) the constructor configures and activates, as a plain node would start.
    """

    def __init__(self, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self._worker: Optional[threading.Thread] = None
        self._configured = False
        self._image_subscriptions: list = []
        self._configure_error = ""
        try:
            self.params = declare_and_read(self)
        except ValueError as err:
            self._destroy()
            raise StartupError(f"bad parameter: {err}") from None
        # The CPU-side work (preprocessing and products on a CPU device, the world, message packing) uses this
        # many intra-op threads: OpenMP threads spin-wait on a sibling that another process descheduled.
        torch.set_num_threads(self.params.cpu_threads)
        params = self.params
        # TF look-ups: the rig without configured transforms, the odometry scale, the robot's frames. They listen
        # from construction, whatever the state: a robot's /tf_static was published long before.
        needs_transforms = (
            (params.metric_scale_source == "rig" and not params.rig_transforms)
            or params.metric_scale_source == "odometry"
            or params.robot_frames
        )
        self._transforms = make_transform_buffer(self) if needs_transforms else None
        self._robot = (
            RobotPlacement(self._transforms, params.odom_frame, params.robot_base_frame)
            if params.robot_frames
            else None
        )
        if not params.autostart:
            self.get_logger().info("waiting to be configured and activated (autostart is false)")
            return
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            self._destroy()
            raise StartupError(self._configure_error)
        self.trigger_activate()

    # ------------------------------------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except StartupError as err:
            self._configure_error = str(err)
            self.get_logger().error(self._configure_error)
            self._release()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._subscribe()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe()
        self.get_logger().info("deactivated: not listening; the world and the map are kept")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info("cleaned up: the pipeline and the world are released")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        """Load the pipeline and create everything but the camera subscriptions. Raises StartupError."""
        params = self.params
        try:
            require_open3d()
        except RuntimeError as err:
            raise StartupError(str(err)) from None
        self._session = self._load_session(self.params, self._transforms)
        self._configured = True
        # Made here and destroyed by _release (the outputs' publishers are in _output_publishers).
        self._owned_timers: list = []
        self._owned_services: list = []
        self._slot: LatestSlot[Window] = LatestSlot()
        # World and map: changed by the worker, read by the map timer and the services, all under this lock.
        self._world_lock = threading.Lock()
        self._map_version_sent = -1
        # The newest keyframes with their camera images, for ~/save's dataset exports (bounded).
        self._recent_frames: deque = deque(maxlen=self.params.save_dataset_frames)
        self._newest_stamp_ns = 0
        self._throttle = _Throttle(LOG_PERIOD_S)
        # Metric scale problems already logged, each set cleared when its problem went away: the worker's (scale
        # kinds) when a scale is measured again, the executor's (per depth camera) when a usable depth image arrives.
        self._scale_problems_logged: set[str] = set()
        self._depth_problems_logged: list[set[str]] = [set() for _ in params.depth_topics]

        names = self.params.names
        # One publisher per output the window builder can produce (vggt_ros.ros.outputs), keyed like its messages.
        self._output_publishers: dict[Output, object] = {}
        per_camera = (
            ("depth", Image, self.params.publish_depth),
            ("confidence", Image, self.params.publish_confidence),
            ("camera_info", CameraInfo, self.params.publish_camera_info),
        )
        for kind, msg_type, enabled in per_camera:
            for camera in range(len(names)) if enabled else ():
                self._add_publisher(Output(kind, camera), msg_type, OUTPUT_QOS)
        if self.params.publish_points:
            self._add_publisher(Output("points"), PointCloud2, OUTPUT_QOS)
        if self.params.publish_path:
            self._add_publisher(Output("path"), Path, OUTPUT_QOS)
        if self.params.publish_tf or self.params.publish_odom_tf:
            self._add_publisher(Output("tf"), TFMessage, qos.TF)
            self._add_publisher(Output("tf_static"), TFMessage, qos.LATCHED)
        if self.params.publish_tf and self._robot is None:  # with robot frames, odom -> world once it is placed
            self._output_publishers[Output("tf_static")].publish(
                world_frame_message(self.params, self.get_clock().now().nanoseconds)
            )
        if self._robot is not None:
            self._add_publisher(Output("odometry"), Odometry, OUTPUT_QOS)
        if self.params.publish_map:
            self._add_publisher(Output("map"), PointCloud2, qos.LATCHED)  # RViz started later still gets it
            self._owned_timers.append(self.create_timer(self.params.map_publish_period, self._publish_map))
        self._owned_services += [
            self.create_service(Trigger, "~/reset", self._on_reset),
            self.create_service(Trigger, "~/save", self._on_save),
        ]

        # Executor-thread state.
        self._sync: ApproximateTimeSynchronizer[np.ndarray] = ApproximateTimeSynchronizer(
            len(names), self.params.queue_size, self.params.slop
        )
        # An image a little older than its camera's newest arrived out of order (dropped); further back, time jumped
        # back and the reconstruction starts over: the session's window draws the same line for frame sets.
        self._stamps = CameraStamps(len(names), self._session.config.window.max_reorder_s)
        self._zero_stamps_reported: set[int] = set()
        self._last_synced = time.monotonic()  # when the cameras last formed a frame set
        self._camera_frames: list[str] = [""] * len(names)  # each camera's image frame id (its newest header's)
        # Counters (each written by one thread only).
        self.windows_emitted = 0
        self.windows_dropped = 0
        self.frame_sets_dropped = 0
        self.windows_published = 0
        self.windows_rejected = 0
        self.windows_failed = 0
        self.images_received = 0
        self.map_checks = 0  # map timer runs that got the world lock
        self.keyframes = 0
        self.windows_inferred = 0  # the network finished them (then published, held back or rejected)
        # For /diagnostics. Executor thread: per camera.
        self._camera_images = [0] * len(names)
        self._camera_last_image_s: list[Optional[float]] = [None] * len(names)
        self._camera_lost_by_dds = [0] * len(names)  # DDS' message-lost event (cumulative)
        self._camera_gaps = [SequenceGaps() for _ in names]  # images that never reached the callback
        # Worker thread: the newest window's outcome, and the latencies (read by the diagnostics timer: a lock).
        self._last_rejection = ""
        self._segment = 0
        self._metric = False
        self._last_scale_problem = ""  # why the newest window measured no metric scale ("" if it did)
        self._latencies: deque[tuple[float, float]] = deque(maxlen=LATENCY_SAMPLES)
        self._latencies_lock = threading.Lock()

        self._worker = threading.Thread(target=self._work, name="vggt-inference", daemon=True)
        self._worker.start()

        # Depth images wait here for the colour frame sets of their stamps (a frame set never waits for depth).
        self._depth_queues = [NearestStampQueue(params.queue_size, params.slop) for _ in params.depth_topics]
        compressed = params.image_transport == "compressed"
        # The resolved names (namespace, remapping) are the ones the ROS graph and the user's tools show.
        self._input_topics = [
            self.resolve_topic_name(f"{t}/compressed" if compressed else t) for t in params.image_topics
        ]
        self._input_topics += [self.resolve_topic_name(t) for t in params.depth_topics]
        self._input_watchdog = InputWatchdog(self._input_topics, self.params.input_timeout, time.monotonic())
        self._health = HealthMonitor(params.health_thresholds(), diagnostics.PERIOD_S, self._health_snapshot())
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, diagnostics.TOPIC, DIAGNOSTICS_QOS)
        self._owned_timers += [
            # Checking twice per timeout reports a quiet topic between 1 and 1.5 timeouts after it went quiet.
            self.create_timer(self.params.input_timeout / 2, self._check_inputs),
            self.create_timer(diagnostics.PERIOD_S, self._publish_diagnostics),
        ]

    def _subscribe(self) -> None:
        """Listen to the cameras (and depth): the active state."""
        params = self.params
        compressed = params.image_transport == "compressed"
        self._image_subscriptions = [
            self.create_subscription(
                CompressedImage if compressed else Image,
                f"{topic}/compressed" if compressed else topic,
                self._image_callback(index),
                qos_profile_sensor_data,
                event_callbacks=SubscriptionEventCallbacks(message_lost=self._lost_callback(index)),
            )
            for index, topic in enumerate(params.image_topics)
        ]
        self._image_subscriptions += [
            self.create_subscription(Image, topic, self._depth_callback(index), qos_profile_sensor_data)
            for index, topic in enumerate(params.depth_topics)
        ]
        # Images can be lost silently (sensor-data QoS, see TRANSPORTS_VARIABLE): check that they arrive, from now.
        self._input_watchdog = InputWatchdog(self._input_topics, self.params.input_timeout, time.monotonic())
        self._last_synced = time.monotonic()
        self.get_logger().info(
            f"listening to {list(params.image_topics)} as {list(params.names)}; backend {params.backend} on "
            f"{params.device}, window {params.window_size} (stride {params.window_stride}), "
            f"publishing in '{params.world_frame}' under '{params.parent_frame}'"
        )

    def _unsubscribe(self) -> None:
        """Stop listening (inactive): images in flight are dropped, a window being inferred still finishes."""
        for subscription in self._image_subscriptions:
            self.destroy_subscription(subscription)
        self._image_subscriptions = []
        if self._configured:
            self._sync.reset()

    def _release(self) -> None:
        """Stop the worker and free what configure made (the pipeline with it: torch frees its GPU memory)."""
        if not self._configured:
            return
        self._configured = False
        self._slot.close()
        if self._worker is not None:
            self._worker.join(timeout=30.0)
            self._worker = None
        for timer in self._owned_timers:
            self.destroy_timer(timer)
        for service in self._owned_services:
            self.destroy_service(service)
        for publisher in [*self._output_publishers.values(), self._diagnostics_publisher]:
            self.destroy_publisher(publisher)
        self._owned_timers, self._owned_services, self._output_publishers = [], [], {}
        self._session = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ----------------------------------------------------------------------------------------- start-up
    @staticmethod
    def _load_session(params: NodeParameters, transforms) -> ReconstructionSession:
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
            return ReconstructionSession(pipeline, params.session_config(), transforms)
        except Exception as err:  # noqa: BLE001 - any loader failure becomes one clear start-up error
            where = f"weights '{params.weights}'" if params.backend == "torch" else f"engine_dir '{params.engine_dir}'"
            raise StartupError(
                f"cannot load the {params.backend} pipeline ({where}, device {params.device}): {err}\nFix: {fix}."
            ) from None

    def _add_publisher(self, output: Output, msg_type: type, qos) -> None:
        self._output_publishers[output] = self.create_publisher(msg_type, topic(self.params, output), qos)

    # ------------------------------------------------------------------------------- executor thread
    def _error(self, key: tuple, text: str) -> None:
        if self._throttle.allow(key):
            self.get_logger().error(text)

    def _check_inputs(self) -> None:
        """Warn, per image topic, when no image has arrived for input_timeout: the likely cause and its fix."""
        if not self._image_subscriptions:  # inactive: not listening, nothing to miss
            return
        counts = {topic: self.count_publishers(topic) for topic in self._input_topics}
        ours = os.environ.get(TRANSPORTS_VARIABLE, "(unset)")
        fix = f"set {TRANSPORTS_VARIABLE}=LARGE_DATA in the camera driver's environment too (this node's value: {ours})"
        self._check_pairing()
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

    def _publish_diagnostics(self) -> None:
        components = self._health.update(self._health_snapshot())
        stamp_ns = self.get_clock().now().nanoseconds
        self._diagnostics_publisher.publish(diagnostics.diagnostic_array(self.get_name(), components, stamp_ns))

    def _health_snapshot(self) -> HealthSnapshot:
        params = self.params
        cameras = tuple(
            CameraCounts(name, topic, received, gaps.missed, lost, last_s)
            for name, topic, received, gaps, lost, last_s in zip(
                params.names,
                self._input_topics,
                self._camera_images,
                self._camera_gaps,
                self._camera_lost_by_dds,
                self._camera_last_image_s,
            )
        )
        with self._latencies_lock:
            latencies = tuple(self._latencies)
        return HealthSnapshot(
            time_s=time.monotonic(),
            cameras=cameras,
            keyframes=self.keyframes,
            frame_sets_dropped=self.frame_sets_dropped,
            windows_emitted=self.windows_emitted,
            windows_dropped=self.windows_dropped,
            windows_inferred=self.windows_inferred,
            windows_published=self.windows_published,
            windows_rejected=self.windows_rejected,
            windows_failed=self.windows_failed,
            last_rejection=self._last_rejection,
            segment=self._segment,
            latencies=latencies,
            backend=params.backend,
            device=params.device,
            precision=params.precision,
            gpu_memory=gpu_memory(params.device),
            scale=ScaleState(params.metric_scale_source, self._metric, self._last_scale_problem),
        )

    def _check_pairing(self) -> None:
        """Warn when every camera sends images but they never form a frame set: their stamps are further apart
        than the slop (unsynchronised clocks, a camera far behind)."""
        names = self.params.names
        newest = [self._stamps.newest(camera) for camera in range(len(names))]
        if len(names) < 2 or None in newest or time.monotonic() - self._last_synced < self.params.input_timeout:
            return
        if not self._throttle.allow(("pairing",)):
            return
        reference = newest[0]
        offsets = ", ".join(f"'{name}' {(stamp - reference) / 1e6:+.1f} ms" for name, stamp in zip(names, newest))
        self.get_logger().warning(
            f"the cameras' images have not formed a frame set for {self.params.input_timeout:.1f} s: their newest "
            f"stamps, relative to '{names[0]}': {offsets}; they must lie within slop {self.params.slop * 1e3:.0f} ms "
            "of each other. Fix: synchronise the cameras' clocks or triggers, or raise slop"
        )

    def _image_callback(self, camera_index: int) -> Callable[[Image, MessageInfo], None]:
        def on_image(msg, info: MessageInfo) -> None:
            self._count_missed(camera_index, info)
            self._on_image(camera_index, msg)

        return on_image

    def _lost_callback(self, camera_index: int) -> Callable[[QoSMessageLostInfo], None]:
        return lambda info: self._on_images_lost(camera_index, info)

    def _on_images_lost(self, camera_index: int, info: QoSMessageLostInfo) -> None:
        """DDS' message-lost event: images the transport lost (never delivered whole)."""
        self._camera_lost_by_dds[camera_index] = info.total_count
        if self._throttle.allow(("lost", camera_index)):
            self.get_logger().warning(
                f"DDS lost {info.total_count_change} image(s) on '{self._input_topics[camera_index]}' "
                f"({info.total_count} so far): with Fast DDS' default transports, images over about 512 kB are lost "
                f"on this best-effort subscription. Fix: set {TRANSPORTS_VARIABLE}=LARGE_DATA in the camera driver's "
                f"environment and this node's (this node's value: {os.environ.get(TRANSPORTS_VARIABLE, '(unset)')})"
            )

    def _count_missed(self, camera_index: int, info: MessageInfo) -> None:
        """Count the images this camera's publishers sent before this one that never arrived (a gap in their
        publication sequence numbers): lost by DDS, or overwritten in the subscription queue while the executor
        was busy, which DDS does not report."""
        gid = info.get("publisher_gid")
        gaps = self._camera_gaps[camera_index]
        missed = gaps.observe(gid["data"] if gid else None, info.get("publication_sequence_number"))
        if missed and self._throttle.allow(("missed", camera_index)):
            self.get_logger().warning(
                f"camera '{self.params.names[camera_index]}': {gaps.missed} images sent on "
                f"'{self._input_topics[camera_index]}' never reached this node so far "
                f"({self._camera_lost_by_dds[camera_index]} of them reported lost by DDS, the rest overwritten in the "
                "subscription queue while the node was busy); the newest images are used. Fix: a lower camera rate, "
                "or less work for the node (a longer map_publish_period, fewer publish_* outputs)"
            )

    def _depth_callback(self, camera_index: int) -> Callable[[Image], None]:
        return lambda msg: self._on_depth(camera_index, msg)

    def _on_depth(self, camera_index: int, msg: Image) -> None:
        self._input_watchdog.image_arrived(
            self._input_topics[len(self.params.image_topics) + camera_index], time.monotonic()
        )
        logged, name = self._depth_problems_logged[camera_index], self.params.names[camera_index]
        try:
            depth_m = depth_to_metres(msg.data, msg.height, msg.width, msg.step, msg.encoding, bool(msg.is_bigendian))
        except DepthFormatError as err:
            self._scale_problem(logged, err.kind, f"depth of camera '{name}': {err}; depth image dropped")
            return
        if not np.isfinite(depth_m).any():
            self._scale_problem(
                logged,
                "no_reading",
                f"depth of camera '{name}': the image has no valid reading "
                "(every pixel 0, NaN or infinite: is the sensor covered, blinded, or is everything out "
                "of its range?); depth image dropped",
            )
            return
        logged.clear()  # a usable image: report the next problem anew
        self._depth_queues[camera_index].add(messages.ns_from_stamp(msg.header.stamp), depth_m)

    def _depth_of(self, camera_index: int, stamp_ns: int) -> Optional[np.ndarray]:
        """The depth image (metres) matched to a colour image of camera ``camera_index``: the session's look-up."""
        return self._depth_queues[camera_index].nearest(stamp_ns)

    def _on_image(self, camera_index: int, msg) -> None:
        now_s = time.monotonic()
        self.images_received += 1
        self._camera_images[camera_index] += 1
        self._camera_last_image_s[camera_index] = now_s
        self._input_watchdog.image_arrived(self._input_topics[camera_index], now_s)
        name = self.params.names[camera_index]
        try:
            if isinstance(msg, CompressedImage):
                rgb = decode_compressed(msg.data, msg.format)
            else:
                rgb = image_to_rgb(msg.data, msg.height, msg.width, msg.step, msg.encoding)
        except ImageFormatError as err:
            # Per kind and value: a second, different bad encoding is news even within the throttle period.
            self._error(("image", camera_index, err.kind, str(err)), f"camera '{name}': {err}; image dropped")
            return
        newest = self._stamps.newest(camera_index)
        check = self._stamps.check(
            camera_index, messages.ns_from_stamp(msg.header.stamp), self.get_clock().now().nanoseconds
        )
        stamp_ns = check.stamp_ns
        if check.substituted and camera_index not in self._zero_stamps_reported:
            self._zero_stamps_reported.add(camera_index)
            self.get_logger().warning(
                f"camera '{name}' stamps its images 0: using each image's arrival time instead "
                "(fix the driver: stamp images with their capture time)"
            )
        if check.verdict is StampVerdict.DUPLICATE:
            self._error(
                ("stamp", camera_index, "duplicate"),
                f"camera '{name}': stamp {stamp_ns / 1e9:.3f} s repeated (the same capture sent twice?): image dropped",
            )
            return
        if check.verdict is StampVerdict.LATE:
            self._error(
                ("stamp", camera_index, "late"),
                f"camera '{name}': image stamped {(newest - stamp_ns) / 1e6:.1f} "
                "ms before the newest arrived out of order: image dropped, the reconstruction goes on",
            )
            return
        if check.verdict is StampVerdict.JUMP_BACK:
            self._error(
                ("time", camera_index),
                f"camera '{name}': time went backwards ({newest / 1e9:.3f} s -> {stamp_ns / 1e9:.3f} s; a bag loop or "
                "a restarted driver?): window reset, reconstruction starts over",
            )
            self._restart()
            self._stamps.check(camera_index, stamp_ns, stamp_ns)
        self._camera_frames[camera_index] = msg.header.frame_id
        synced = self._sync.add(camera_index, stamp_ns, rgb)
        if synced is not None:
            self._on_synced(synced)

    def _restart(self) -> None:
        """Start over from the next images: window, synchronizer and (before the next window) the world."""
        self._sync.reset()
        for queue in self._depth_queues:
            queue.clear()
        self._session.request_reset()
        self._stamps.reset()

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._restart()
        self.get_logger().info("reset requested: the next window starts a new world and an empty map")
        response.success, response.message = True, "the next window starts a new world"
        return response

    def _on_save(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        directory = self.params.save_directory
        try:
            with self._world_lock:
                map_path, trajectories = self._session.save(directory)
                points = len(self._session.map)
                recent = list(self._recent_frames)
                metric = self._session.world.metric
            dataset = ""
            if recent:  # written outside the lock: the worker keeps integrating meanwhile
                with DatasetWriter(directory, metric=metric) as writer:
                    for frame, image in recent:
                        writer.add(frame, image)
                    written = writer.finish(ply_path=map_path.name)
                dataset = (
                    f", and {written.num_frames} keyframes as a COLMAP model and nerfstudio's "
                    f"{written.transforms_json.name}"
                )
        except (OSError, ValueError) as err:  # EmptyMapError is a ValueError
            response.success, response.message = False, f"could not save to '{directory}': {err}"
            self.get_logger().error(response.message)
            return response
        response.success = True
        written = ", ".join(str(path) for path in trajectories.values() if path is not None)
        response.message = f"saved {points} map points to {map_path}, the trajectories to {written}{dataset}"
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
        self._output_publishers[Output("map")].publish(map_message(self.params, points, colors, stamp_ns))

    def _on_synced(self, synced: SyncedSet[np.ndarray]) -> None:
        self._last_synced = time.monotonic()
        try:
            update = self._session.add(
                FrameSet(stamps_ns=synced.stamps_ns, images=synced.items, camera_frames=tuple(self._camera_frames))
            )
        except FrameSetError as err:
            self._error(("frame_set", err.kind), str(err))
            return
        if update.is_keyframe:
            self.keyframes += 1
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
        inference = self._session.infer(window, self._depth_of if self._depth_queues else None)
        with self._world_lock:
            out = self._session.integrate(inference)
            self.windows_inferred += 1
            self._newest_stamp_ns = out.window.frame_sets[-1].stamps_ns[0]
            if out.map_reset:  # a new world or segment: the kept frames belong to the old one
                self._recent_frames.clear()
            if self._recent_frames.maxlen:
                self._recent_frames.extend(self._session.exported_frames(out))
            path = self._session.camera_path() if out.merged and self.params.publish_path else []
        self._report(out.window, out)
        if out.merged:
            self._publish_window(out, path)

    def _scale_problem(self, logged: set[str], kind: str, text: str) -> None:
        """Log a metric scale problem once per kind: until ``logged`` (the kinds reported) is cleared."""
        if kind not in logged:
            logged.add(kind)
            self.get_logger().warning(text)

    def _report(self, window: Window, out: WindowOutput) -> None:
        if isinstance(out.scale, ScaleUnavailable):
            source = self.params.metric_scale_source
            logged = self._scale_problems_logged
            if not out.metric:  # held back, or rejected before the first scale: there is no last scale to keep
                self._scale_problem(
                    logged,
                    f"waiting:{out.scale.kind}",
                    f"waiting for the first metric scale from "
                    f"the {source} source ({out.scale.reason}); nothing is published until then",
                )
            else:
                self._scale_problem(
                    logged,
                    out.scale.kind,
                    f"metric scale not updated by window {window.sequence} "
                    f"({source} source: {out.scale.reason}); keeping the last scale",
                )
        elif out.scale is not None:
            self._scale_problems_logged.clear()  # measured again: report the next problem anew
        self._metric = out.metric
        self._last_scale_problem = out.scale.reason if isinstance(out.scale, ScaleUnavailable) else ""
        if out.result is not None:
            self._segment = out.result.segment
        if out.status is WindowStatus.REJECTED:
            self.windows_rejected += 1
            self._last_rejection = out.reason
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
        if self._robot is not None:
            self._place_robot(out)
        if out.waiting_for_scale:
            return
        for output, message in window_messages(self.params, out, path):
            self._output_publishers[output].publish(message)
        if self._robot is not None:
            self._publish_robot(out)
        self.windows_published += 1
        latency_s = (self.get_clock().now().nanoseconds - out.window.frame_sets[-1].stamps_ns[0]) / 1e9
        with self._latencies_lock:
            self._latencies.append((time.monotonic(), latency_s))

    def _place_robot(self, out: WindowOutput) -> None:
        """REP 105: place each new world in odom (odom -> world on /tf_static) as soon as the transforms answer.

        Also while the scale is unknown: the placement is the camera's pose in odom at the world's first image, in
        metres whatever VGGT's scale, and TF keeps that stamp's odometry only for its cache time (10 s), which a
        robot standing still at start-up outlasts.
        """
        params = self.params
        if out.status is WindowStatus.INITIALIZED:
            self._robot.start(out.window.frame_sets[0].camera_frames[0], out.result.frame_ids[0][0])
        if self._robot.odom_from_world is not None:
            return
        try:
            self._robot.place()
        except TransformLookupError as err:
            self._error(("robot", type(err).__name__), f"cannot place the world in '{params.odom_frame}' yet: {err}")
            return
        if params.publish_tf:
            placement = messages.transform_stamped(
                params.odom_frame, params.world_frame, out.result.frame_ids[0][0], self._robot.odom_from_world
            )
            self._output_publishers[Output("tf_static")].publish(messages.tf_message([placement]))
        self.get_logger().info(
            f"world '{params.world_frame}' placed in '{params.odom_frame}' where camera "
            f"'{params.names[0]}' was at its first image"
        )

    def _publish_robot(self, out: WindowOutput) -> None:
        """~/odometry (and odom -> base) of camera 0's pose, once the world is placed."""
        params = self.params
        newest = next((frame for frame in out.newest if frame.camera == 0), None)
        if newest is None or not out.metric or self._robot.odom_from_world is None:
            return
        odom_from_base = self._robot.base_pose(newest.world_from_camera)
        # The residual is in the world's unit at alignment time, which for the window that made the world metric
        # is not yet the metre; its ratio to the scene depth has no unit, and the newest depth is in metres.
        residual_ratio = out.result.residual_ratio if np.isfinite(out.result.residual_ratio) else 0.0
        scene_depth_m = float(np.nanmedian(newest.depth))
        covariance = pose_covariance(*odometry_sigmas(residual_ratio * scene_depth_m, scene_depth_m))
        self._output_publishers[Output("odometry")].publish(
            messages.odometry(newest.stamp_ns, params.odom_frame, params.robot_base_frame, odom_from_base, covariance)
        )
        if params.publish_odom_tf:
            transform = messages.transform_stamped(
                params.odom_frame, params.robot_base_frame, newest.stamp_ns, odom_from_base
            )
            self._output_publishers[Output("tf")].publish(messages.tf_message([transform]))

    # ------------------------------------------------------------------------------------- shutdown
    def destroy_node(self) -> None:
        self._release()  # the worker finishes its window while the context is still valid
        self._destroy()

    def _destroy(self) -> None:
        # rclpy's LifecycleNode keeps its state machine, which holds the node's handle, past destroy_node: the node
        # (and its /rosout publisher) would outlive it, and a later node of the same name would log into the void.
        self._state_machine.destroy_when_not_in_use()
        super().destroy_node()


def main(args: Optional[list[str]] = None) -> int:
    """Entry point of ``ros2 run vggt_ros reconstruct_node``: spin until Ctrl-C (SIGINT) or SIGTERM; exit 1 on a
    start-up error.

    Stopping is ordered so nothing runs on a dead ROS context: the signal stops the executor, which lets a callback
    in flight (a ``~/save``) finish; then the node closes its worker, which finishes and publishes the window it is
    on; only then does rclpy shut down. (rclpy's own signal handler would shut the context down at once, under the
    worker's feet.) A signal during start-up (loading the weights) stops it at once.
    """
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except RuntimeError as err:  # rcl's argument parser: a missing or malformed --params-file, a bad --ros-args
        reason = str(err).split(", at ")[0]  # without rcl's C source locations
        print(
            f"[FATAL] [{NODE_NAME}]: cannot start: {reason}. Fix: check the file exists and is valid YAML "
            "(see config/reconstruct.yaml)",
            file=sys.stderr,
        )
        return 1
    executor = SingleThreadedExecutor()
    spinning = threading.Event()
    stopped: Future = Future()

    def stop(signum, frame) -> None:
        if not spinning.is_set():
            raise KeyboardInterrupt  # still starting up
        # Completing the future wakes the executor, which returns once the callback in flight is done. From another
        # thread: this handler may interrupt the main thread inside the future's own lock.
        threading.Thread(target=lambda: stopped.done() or stopped.set_result(signum), daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    node = None
    try:
        node = ReconstructionNode()
        executor.add_node(node)
        spinning.set()
        executor.spin_until_future_complete(stopped)
    except StartupError as err:
        rclpy.logging.get_logger(NODE_NAME).fatal(str(err))
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # a signal while still starting up
    finally:
        executor.shutdown()
        if node is not None:
            node.destroy_node()  # joins the worker while the context is still valid
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
