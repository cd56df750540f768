# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The node's ROS parameters: one typed dataclass, declared (with descriptions) and read in one place.

Every field of `NodeParameters` is a parameter of the same name; `PARAMETER_DESCRIPTIONS` documents each one
(it is also the parameter descriptor's description, so `ros2 param describe /vggt <name>` shows it).
All parameters are read-only: they are read once at start-up.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import InvalidTopicNameException, ParameterException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.validate_topic_name import validate_topic_name

from vggt_ros.geometry import quaternion_to_rotation_matrix
from vggt_ros.mapping import MapConfig
from vggt_ros.metric.config import METRIC_SOURCES, MetricConfig
from vggt_ros.metric.sources import DepthScaleConfig
from vggt_ros.node_health import HealthThresholds
from vggt_ros.preprocess import MODES, PATCH_SIZE
from vggt_ros.products import CloudConfig
from vggt_ros.runtime import BACKENDS, PRECISIONS
from vggt_ros.session import SessionConfig
from vggt_ros.window import KeyframePolicy, WindowConfig
from vggt_ros.world import WorldConfig

IMAGE_TRANSPORTS = ("raw", "compressed")
# Upper bounds that catch typos (window_size 10000) before they allocate: 64 keyframes x 8 cameras is far beyond
# what VGGT-1B runs in real time, and 1036 = 2 x the 518 it was trained at (attention cost grows with its square).
MAX_WINDOW_SIZE = 64
MAX_IMAGE_SIZE = 1036
# x y z qx qy qz qw of one rig transform (camera 0 -> camera j) in the rig_transforms parameter
RIG_TRANSFORM_VALUES = 7


@dataclass(frozen=True)
class NodeParameters:
    autostart: bool = True
    image_topics: tuple[str, ...] = ("/camera/image_raw",)
    image_transport: str = "raw"
    camera_names: tuple[str, ...] = ()
    weights: str = "facebook/VGGT-1B"
    model_config: str = ""
    backend: str = "torch"
    device: str = "cuda"
    precision: str = "fp16"
    engine_dir: str = "engines"
    cpu_threads: int = 1
    image_size: int = 518
    preprocess_mode: str = "crop"
    window_size: int = 8
    window_stride: int = 1
    depth_overlap_frame_sets: int = 2
    keyframe_min_interval: float = 0.0
    keyframe_min_motion: float = 0.0
    queue_size: int = 10
    slop: float = 0.02
    input_timeout: float = 5.0
    confidence_percentile: float = 50.0
    confidence_threshold: float = 0.0
    point_decimation: int = 2
    tracking_lost_after: int = 3
    alignment_min_inlier_ratio: float = 0.6
    alignment_inlier_distance_ratio: float = 0.08
    alignment_max_residual_ratio: float = 0.05
    alignment_max_camera_offset_ratio: float = 0.1
    alignment_max_camera_rotation_deg: float = 5.0
    alignment_camera_weight: float = 0.25
    trajectory_recent_keyframes: int = 500
    trajectory_history_keyframes: int = 500
    map_voxel_size: float = 0.01
    map_max_points: int = 500_000
    map_publish_period: float = 2.0
    save_directory: str = "vggt_map"
    save_dataset_frames: int = 50
    world_frame: str = "vggt_world"
    parent_frame: str = "map"
    publish_map: bool = True
    publish_points: bool = True
    publish_depth: bool = True
    publish_confidence: bool = True
    publish_camera_info: bool = True
    publish_tf: bool = True
    publish_path: bool = True
    metric_scale_source: str = "none"
    depth_topics: tuple[str, ...] = ()
    depth_min_range: float = 0.2
    depth_max_range: float = 10.0
    rig_transforms: tuple[float, ...] = ()
    odometry_min_translation: float = 0.1
    odom_frame: str = ""
    robot_base_frame: str = ""
    publish_odom_tf: bool = False
    diagnostics_window: float = 5.0
    diagnostics_latency_warn: float = 1.0
    diagnostics_latency_error: float = 5.0
    diagnostics_dropped_warn_ratio: float = 0.5
    diagnostics_missed_warn_ratio: float = 0.01
    diagnostics_gpu_memory_warn_ratio: float = 0.9

    def __post_init__(self) -> None:
        if not self.image_topics or any(not topic for topic in self.image_topics):
            raise ValueError(f"image_topics must list 1 or more non-empty topics, got {list(self.image_topics)}")
        for name in ("image_topics", "depth_topics"):
            for topic in getattr(self, name):
                try:
                    validate_topic_name(topic)
                except InvalidTopicNameException as err:
                    raise ValueError(
                        f"{name}: {topic!r} is not a valid ROS topic name ({str(err).splitlines()[0]})"
                    ) from None
        frames = {
            name: getattr(self, name) for name in ("world_frame", "parent_frame", "odom_frame", "robot_base_frame")
        }
        for name, frame in frames.items():
            if frame.startswith("/") or any(c.isspace() for c in frame):
                raise ValueError(f"{name} {frame!r}: tf2 frame ids have no leading '/' and no spaces")
        if isinstance(self.queue_size, bool) or self.queue_size < 1:
            raise ValueError(f"queue_size must be an int >= 1 (images kept per camera), got {self.queue_size!r}")
        if not (math.isfinite(self.slop) and self.slop > 0):
            raise ValueError(f"slop must be a finite number of seconds > 0, got {self.slop!r}")
        if not self.save_directory.strip():
            raise ValueError("save_directory must name a folder (it is empty)")
        if not 1 <= self.window_size <= MAX_WINDOW_SIZE:
            raise ValueError(f"window_size must be in [1, {MAX_WINDOW_SIZE}] keyframes, got {self.window_size}")
        if not PATCH_SIZE <= self.image_size <= MAX_IMAGE_SIZE:
            raise ValueError(
                f"image_size must be in [{PATCH_SIZE}, {MAX_IMAGE_SIZE}] pixels (518 for VGGT-1B), "
                f"got {self.image_size}"
            )
        if self.camera_names and len(self.camera_names) != len(self.image_topics):
            raise ValueError(
                f"camera_names has {len(self.camera_names)} names for {len(self.image_topics)} image_topics; give one "
                "name per topic or leave it empty for camera0, camera1, ..."
            )
        if len(set(self.names)) != len(self.names) or any(not name or "/" in name for name in self.names):
            raise ValueError(f"camera_names must be distinct, non-empty and without '/', got {list(self.names)}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.save_dataset_frames < 0:
            raise ValueError(f"save_dataset_frames must be >= 0, got {self.save_dataset_frames}")
        if self.cpu_threads < 1:
            raise ValueError(f"cpu_threads must be >= 1, got {self.cpu_threads}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu or cuda, got {self.device!r}")
        if self.preprocess_mode not in MODES:
            raise ValueError(f"preprocess_mode must be one of {MODES}, got {self.preprocess_mode!r}")
        if self.image_size <= 0 or self.image_size % PATCH_SIZE:
            raise ValueError(
                f"image_size must be a positive multiple of {PATCH_SIZE} (518 for VGGT-1B), got {self.image_size}"
            )
        if not self.world_frame or not self.parent_frame or self.world_frame == self.parent_frame:
            raise ValueError(
                f"world_frame and parent_frame must be two different non-empty frame ids, got {self.world_frame!r} "
                f"and {self.parent_frame!r}"
            )
        if not 0.0 < self.input_timeout < float("inf"):
            raise ValueError(f"input_timeout must be a finite number of seconds > 0, got {self.input_timeout!r}")
        if not self.map_publish_period > 0.0:
            raise ValueError(f"map_publish_period must be > 0 seconds, got {self.map_publish_period!r}")
        if self.image_transport not in IMAGE_TRANSPORTS:
            raise ValueError(f"image_transport must be one of {IMAGE_TRANSPORTS}, got {self.image_transport!r}")
        if self.metric_scale_source not in METRIC_SOURCES:
            raise ValueError(f"metric_scale_source must be one of {METRIC_SOURCES}, got {self.metric_scale_source!r}")
        if self.metric_scale_source == "depth" and len(self.depth_topics) != len(self.image_topics):
            raise ValueError(
                f"metric_scale_source 'depth' needs one depth topic per image topic (registered to it, e.g. "
                f"aligned_depth_to_color/image_raw); got depth_topics {list(self.depth_topics)} for "
                f"{len(self.image_topics)} image topics"
            )
        if self.metric_scale_source == "odometry" and not self.odom_frame:
            raise ValueError("metric_scale_source 'odometry' needs odom_frame (the frame of the robot's odometry)")
        if bool(self.odom_frame) != bool(self.robot_base_frame) and self.metric_scale_source != "odometry":
            raise ValueError(
                "robot frames need both odom_frame and robot_base_frame (REP 105), or neither; got "
                f"{self.odom_frame!r} and {self.robot_base_frame!r}"
            )
        if self.publish_odom_tf and not self.robot_base_frame:
            raise ValueError("publish_odom_tf needs odom_frame and robot_base_frame")
        if self.publish_odom_tf and self.metric_scale_source == "odometry":
            raise ValueError(
                "publish_odom_tf with metric_scale_source 'odometry' would measure the scale against the node's own "
                "odom -> base: use one or the other"
            )
        if len(self.rig_transforms) not in (0, RIG_TRANSFORM_VALUES * (len(self.image_topics) - 1)):
            raise ValueError(
                f"rig_transforms must hold {RIG_TRANSFORM_VALUES} numbers (x y z qx qy qz qw, camera 0 -> camera j, "
                f"metres) per camera after the first: {RIG_TRANSFORM_VALUES * (len(self.image_topics) - 1)} for "
                f"{len(self.image_topics)} cameras, got {len(self.rig_transforms)}; leave it empty to read the rig "
                "from /tf_static"
            )
        # The core configurations validate their own fields.
        self.session_config()
        self.health_thresholds()

    @property
    def names(self) -> tuple[str, ...]:
        """Camera names, one per image topic (camera0, camera1, ... unless camera_names says otherwise)."""
        return self.camera_names or tuple(f"camera{i}" for i in range(len(self.image_topics)))

    def optical_frame(self, camera_index: int) -> str:
        return f"{self.names[camera_index]}_optical"

    @property
    def robot_frames(self) -> bool:
        """The world hangs under odom_frame, placed where the first camera was (REP 105)."""
        return bool(self.odom_frame and self.robot_base_frame)

    def metric_config(self) -> MetricConfig:
        rig = []
        for j in range(len(self.rig_transforms) // RIG_TRANSFORM_VALUES):
            x, y, z, qx, qy, qz, qw = self.rig_transforms[j * RIG_TRANSFORM_VALUES : (j + 1) * RIG_TRANSFORM_VALUES]
            transform = np.eye(4)
            transform[:3, :3] = quaternion_to_rotation_matrix(np.array([qx, qy, qz, qw], dtype=np.float64))
            transform[:3, 3] = (x, y, z)
            rig.append((j + 1, transform))
        return MetricConfig(
            source=self.metric_scale_source,
            depth=DepthScaleConfig(min_range_m=self.depth_min_range, max_range_m=self.depth_max_range),
            rig_transforms=tuple(rig),
            odom_frame=self.odom_frame or "odom",
            min_translation_m=self.odometry_min_translation,
        )

    def health_thresholds(self) -> HealthThresholds:
        """When /diagnostics reports WARN or ERROR (see vggt_ros.node_health)."""
        try:
            return HealthThresholds(
                window_s=self.diagnostics_window,
                input_timeout_s=self.input_timeout,
                latency_warn_s=self.diagnostics_latency_warn,
                latency_error_s=self.diagnostics_latency_error,
                dropped_warn_ratio=self.diagnostics_dropped_warn_ratio,
                missed_warn_ratio=self.diagnostics_missed_warn_ratio,
                gpu_memory_warn_ratio=self.diagnostics_gpu_memory_warn_ratio,
            )
        except ValueError as err:  # the core names its own fields: point at the parameters
            raise ValueError(f"diagnostics_* parameters: {err}") from None

    def session_config(self) -> SessionConfig:
        cameras = len(self.image_topics)
        return SessionConfig(
            window=WindowConfig(
                window_size=self.window_size,
                window_stride=self.window_stride,
                keyframes=KeyframePolicy(
                    min_interval_s=self.keyframe_min_interval, min_motion=self.keyframe_min_motion
                ),
            ),
            cloud=CloudConfig(
                confidence_percentile=self.confidence_percentile,
                confidence_threshold=self.confidence_threshold,
                point_decimation=self.point_decimation,
            ),
            world=WorldConfig(
                # the world must remember at least one whole window to find the frames the next one shares
                retained_frames=max(WorldConfig.retained_frames, self.window_size * cameras),
                min_inlier_ratio=self.alignment_min_inlier_ratio,
                inlier_distance_ratio=self.alignment_inlier_distance_ratio,
                max_residual_ratio=self.alignment_max_residual_ratio,
                max_camera_offset_ratio=self.alignment_max_camera_offset_ratio,
                max_camera_rotation_deg=self.alignment_max_camera_rotation_deg,
                camera_weight=self.alignment_camera_weight,
                max_consecutive_rejections=self.tracking_lost_after,
                trajectory_recent=self.trajectory_recent_keyframes,
                trajectory_history=self.trajectory_history_keyframes,
            ),
            map=MapConfig(voxel_size=self.map_voxel_size, max_points=self.map_max_points),
            cameras=cameras,
            camera_names=self.names,
            image_size=self.image_size,
            preprocess_mode=self.preprocess_mode,
            overlap_frame_sets=min(self.depth_overlap_frame_sets, max(1, self.window_size - 1)),
            metric=self.metric_config(),
        )


PARAMETER_DESCRIPTIONS: dict[str, str] = {
    "autostart": "configure and activate at start-up (false: wait for a lifecycle manager's transitions)",
    "image_topics": "sensor_msgs/Image topics, one per camera (1 to K); rgb8, bgr8, rgba8, bgra8 or mono8",
    "image_transport": "raw (sensor_msgs/Image) or compressed (sensor_msgs/CompressedImage on <topic>/compressed, "
    "jpeg or png, as image_transport's compressed plugin)",
    "camera_names": "one name per camera (frames <name>_optical, topics ~/<name>/...); empty: camera0, camera1, ...",
    "weights": "VGGT weights: a Hugging Face id, a folder (config.json + weights) or a weights file",
    "model_config": "optional model config.json when weights is a bare file; empty: the checkpoint's own / VGGT-1B",
    "backend": "inference backend: torch, onnxruntime or tensorrt",
    "device": "cpu or cuda",
    "precision": "fp32, fp16 or bf16 (half precision is meant for cuda); w4a16 (torch: engine_dir is the output of "
    "vggt-ros-quantize --scheme w4a16), int8 or fp8 (onnxruntime / tensorrt: engine_dir holds that quantized export)",
    "cpu_threads": "torch intra-op threads for the node's CPU-side work (and CPU inference); keep it small when other "
    "processes share the cores",
    "engine_dir": "exported set for onnxruntime / tensorrt (manifest.json, ONNX graphs; TensorRT engines cached there)",
    "image_size": "model input width (crop) or longer side (pad), pixels, multiple of 14",
    "preprocess_mode": "crop (width = image_size, centre-crop height) or pad (longer side = image_size, white padding)",
    "window_size": "keyframes per inference (per camera); the network sees window_size x cameras images",
    "window_stride": "new keyframes between inferences (1..window_size); points are published for those",
    "depth_overlap_frame_sets": "frame sets already in the world whose depth is computed for the alignment "
    "(the newest and spread back to the oldest; more: less scale drift, 0.2 TFLOP per image for VGGT-1B at 518x350)",
    "keyframe_min_interval": "minimum seconds between keyframes (0.0: off)",
    "keyframe_min_motion": "minimum mean grey-level change to the last keyframe, 0..1 (0.0: off)",
    "queue_size": "approximate-time sync: images kept per camera while waiting for a match",
    "slop": "approximate-time sync: largest stamp spread of one synchronized set, seconds",
    "input_timeout": "warn when an image topic has had no image for this many seconds (naming the likely cause)",
    "confidence_percentile": "drop cloud points below this percentile of depth confidence, 0..100 (0.0: off)",
    "confidence_threshold": "drop cloud points whose depth confidence is below this (VGGT's is > 1; 0.0: off)",
    "point_decimation": "publish every n-th pixel's point in rows and columns (1: all)",
    "tracking_lost_after": "windows rejected in a row after which the next one that does not align starts a new "
    "segment",
    "alignment_min_inlier_ratio": "a window merges only if at least this fraction of its overlap correspondences agree",
    "alignment_inlier_distance_ratio": "a correspondence agrees with the alignment if within this x the scene depth",
    "alignment_max_residual_ratio": "a window merges only if its RMS alignment residual is below this x the scene "
    "depth",
    "alignment_max_camera_offset_ratio": "a shared camera may move at most this x the scene depth between windows",
    "alignment_max_camera_rotation_deg": "a shared camera may turn at most this many degrees between windows",
    "alignment_camera_weight": "weight of each shared camera pose in the alignment, relative to one frame's pixels",
    "trajectory_recent_keyframes": "newest keyframes kept in full for ~/path, ~/save and the world (memory bound)",
    "trajectory_history_keyframes": "older keyframes kept, decimated to this many, spanning the whole run",
    "map_voxel_size": "voxel size of ~/map, world units (the first window's scale); grows when over map_max_points",
    "map_max_points": "point budget of ~/map (memory bound)",
    "map_publish_period": "seconds between ~/map publications (only when it changed)",
    "save_directory": "folder where the ~/save service writes map.ply, trajectory.tum (further cameras: "
    "trajectory_<name>.tum) and the dataset exports (colmap/, transforms.json, images/, depth/)",
    "save_dataset_frames": "newest keyframes kept (camera image, depth, confidence: about 3 MB each at 640x480) for "
    "~/save's COLMAP and nerfstudio exports; 0: ~/save writes the map and trajectory only",
    "world_frame": "frame of the cloud, path, map and camera TF: the very first image's optical frame",
    "parent_frame": "REP-103 frame above world_frame, joined by a static rotation (z up)",
    "publish_map": "publish ~/map (latched: reliable, transient local)",
    "publish_points": "publish ~/points",
    "publish_depth": "publish the depth image(s)",
    "publish_confidence": "publish the confidence image(s)",
    "publish_camera_info": "publish the depth CameraInfo(s)",
    "publish_tf": "publish world_frame -> <camera>_optical on /tf and parent_frame -> world_frame on /tf_static",
    "publish_path": "publish ~/path",
    "metric_scale_source": "what fixes the scale in metres: none (VGGT's unit-less scale), depth (depth_topics), "
    "rig (camera 0 -> j transforms from /tf_static or rig_transforms) or odometry (odom_frame -> camera TF)",
    "depth_topics": "with metric_scale_source depth: one depth image topic per camera, registered to its colour "
    "image (same size), 16UC1 millimetres or 32FC1 metres (REP 118)",
    "depth_min_range": "depth readings nearer than this many metres are not used for the scale",
    "depth_max_range": "depth readings farther than this many metres are not used for the scale",
    "rig_transforms": "with metric_scale_source rig: x y z qx qy qz qw (metres) of camera 0 -> camera j for each "
    "camera after the first; empty: looked up between the image headers' frame ids on /tf_static",
    "odometry_min_translation": "with metric_scale_source odometry: the cameras must travel this many metres within a "
    "window for its scale to count",
    "odom_frame": "REP 105 odometry frame: with robot_base_frame, the world is placed in it where the first camera "
    "was, and ~/odometry is published; the odometry scale source measures the cameras' travel in it",
    "robot_base_frame": "REP 105 base frame of the robot (the camera mounting base -> camera on /tf_static)",
    "publish_odom_tf": "publish odom_frame -> robot_base_frame on /tf (only for robots without other odometry)",
    "diagnostics_window": "/diagnostics: rates, ratios and latency percentiles cover this many seconds",
    "diagnostics_latency_warn": "/diagnostics: pipeline WARN when the p95 latency from image stamp to publication "
    "exceeds this many seconds",
    "diagnostics_latency_error": "/diagnostics: pipeline ERROR when the p95 latency exceeds this many seconds, or "
    "a window has waited this long without any finishing (above diagnostics_latency_warn)",
    "diagnostics_dropped_warn_ratio": "/diagnostics: pipeline WARN when more than this fraction of the keyframes "
    "was dropped (inference slower than the cameras), 0..1",
    "diagnostics_missed_warn_ratio": "/diagnostics: camera WARN when more than this fraction of its images never "
    "reached the node (lost by DDS or overwritten in the subscription queue), 0..1",
    "diagnostics_gpu_memory_warn_ratio": "/diagnostics: backend WARN when more than this fraction of the GPU's "
    "memory is in use (every process), 0..1",
}


# Parameters every rclpy node declares itself.
_ROS_OWN_PARAMETERS = ("use_sim_time", "start_type_description_service")
_EMPTY_ARRAY_TYPES = {"tuple[str, ...]": Parameter.Type.STRING_ARRAY, "tuple[float, ...]": Parameter.Type.DOUBLE_ARRAY}


def declare_and_read(node: Node) -> NodeParameters:
    """Declare every parameter on ``node`` and return their values.

    Raises:
        ValueError: a value of the wrong type or out of range, naming the parameter and what it accepts.
    """
    # What the parameter file and the command line gave (rclpy keeps it in a private attribute; no public API).
    given = dict(getattr(node, "_parameter_overrides", {}))
    known = {field.name for field in dataclasses.fields(NodeParameters)} | set(_ROS_OWN_PARAMETERS)
    unknown = sorted(set(given) - known)
    if unknown:
        hints = [
            f"'{name}'"
            + (f" (did you mean '{close[0]}'?)" if (close := difflib.get_close_matches(name, known, 1)) else "")
            for name in unknown
        ]
        raise ValueError(f"unknown parameter {', '.join(hints)}; every parameter is listed in the README")
    values: dict[str, Any] = {}
    for field in dataclasses.fields(NodeParameters):
        default = field.default
        descriptor = ParameterDescriptor(description=PARAMETER_DESCRIPTIONS[field.name], read_only=True)
        # rclpy infers a type from the default; an empty list would become a byte array, so declare the type.
        declared = (
            _EMPTY_ARRAY_TYPES[field.type]
            if default == ()
            else (list(default) if isinstance(default, tuple) else default)
        )
        try:
            value = node.declare_parameter(field.name, declared, descriptor).value
        except ParameterException as err:
            raise ValueError(
                f"parameter '{field.name}': {err}. Expected a {type(default).__name__} "
                f"(write floats with a decimal point, e.g. 1.0)"
            ) from None
        if value is None:  # declared by type only and not given, or given as an empty list (YAML [] has no type)
            value = () if field.name in given and isinstance(default, tuple) else default
        values[field.name] = tuple(value) if isinstance(default, tuple) else value
    return NodeParameters(**values)
