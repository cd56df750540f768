# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The node's parameters, each declared once: name, type, default, unit, bounds and help (ROS-free).

Every field of `NodeParameters` is a ROS parameter of the same name. Its metadata (`parameter`) holds the help text
(the parameter descriptor's description, so ``ros2 param describe /vggt <name>`` shows it), the unit and, for the
sizes, the bounds checked at start-up; enumerations are `Literal` types. Everything else is generated from here or
checked against it: `vggt_ros.ros.params` declares them on the node, the offline command builds its shared options
from them (`add_option`), ``docs/parameters.md`` is `markdown_table` (``tools/gen_docs.py``), and the tests compare
config/reconstruct.yaml and the launch file with them.

Validation lives in the core configurations (`SessionConfig`, `RuntimeConfig`, `MetricConfig`, `HealthThresholds`):
`NodeParameters` maps its names onto them and checks only what is the node's own (topics' presence, frames, the
bounds of its buffers, camera names).
"""

import argparse
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, Sequence, get_args, get_origin

import numpy as np

from vggt_ros.geometry import quaternion_to_rotation_matrix
from vggt_ros.image_limits import COMPRESSED_IMAGE_TYPE, DEFAULT_MAX_IMAGE_PIXELS, IMAGE_TYPE
from vggt_ros.live.health import HealthThresholds
from vggt_ros.live.input import CLOCK_AHEAD_TOLERANCE_S, InputConfig
from vggt_ros.live.sync import ApproximateTimeSynchronizer
from vggt_ros.mapping import MapConfig
from vggt_ros.metric.config import METRIC_SOURCES, MetricConfig
from vggt_ros.metric.sources import DepthScaleConfig
from vggt_ros.preprocess import MODES, PATCH_SIZE, check_image_size
from vggt_ros.runtime import BACKENDS, PRECISIONS, RuntimeConfig
from vggt_ros.runtime.config import AUTO, DEVICES
from vggt_ros.session import SessionConfig
from vggt_ros.window import KeyframePolicy, WindowConfig
from vggt_ros.world import WorldConfig
from vggt_ros.world.cloud import CloudConfig
from vggt_ros.world.loop_config import MAX_HELD_LOOPS, LoopConfig
from vggt_ros.world.loop_verification import LoopVerificationConfig
from vggt_ros.world.place_recognition import PlaceRecognitionConfig

# x y z qx qy qz qw of one rig transform (camera 0 -> camera j) in the rig_transforms parameter
RIG_TRANSFORM_VALUES = 7
# Parameters renamed to carry their unit: the old name is still read, with one warning at start-up.
RENAMED = {
    "keyframe_min_interval": "keyframe_min_interval_s",
    "slop": "slop_s",
    "input_timeout": "input_timeout_s",
    "map_publish_period": "map_publish_period_s",
    "depth_min_range": "depth_min_range_m",
    "depth_max_range": "depth_max_range_m",
    "odometry_min_translation": "odometry_min_translation_m",
    "diagnostics_window": "diagnostics_window_s",
    "diagnostics_latency_warn": "diagnostics_latency_warn_s",
    "diagnostics_latency_error": "diagnostics_latency_error_s",
}


def parameter(default: Any, help: str, unit: str = "", bounds: Optional[tuple[float, float]] = None) -> Any:
    """A `NodeParameters` field: ``bounds`` (inclusive) are checked at start-up and documented."""
    return field(default=default, metadata={"help": help, "unit": unit, "bounds": bounds})


@dataclass(frozen=True)
class NodeParameters:
    autostart: bool = parameter(
        True, "configure and activate at start-up (false: wait for a lifecycle manager's transitions)"
    )
    # --- cameras
    image_topics: tuple[str, ...] = parameter(
        ("/camera/image_raw",),
        "sensor_msgs/Image topics, one distinct topic per camera (1 to K); rgb8, bgr8, rgba8, bgra8, mono8, YUV 4:2:2 "
        "(yuv422 / uyvy, yuv422_yuy2 / yuyv) or 8-bit Bayer (bayer_rggb8, bayer_bggr8, bayer_gbrg8, bayer_grbg8)",
    )
    image_transport: Literal["raw", "compressed"] = parameter(
        "raw",
        "raw (sensor_msgs/Image) or compressed (sensor_msgs/CompressedImage on <topic>/compressed, jpeg or png, as "
        "image_transport's compressed plugin)",
    )
    camera_names: tuple[str, ...] = parameter(
        (),
        "one name per camera (frames <name>_optical; with several cameras also topics ~/<name>/...): letters, "
        "digits and '_', not starting with a digit; empty: camera0, camera1, ...",
    )
    camera_names_from_topics: bool = parameter(
        False,
        "with camera_names empty: name each camera after its topic's namespace, without what all topics share "
        "(/left/image_raw and /right/image_raw: left and right)",
    )
    queue_size: int = parameter(
        10, "approximate-time sync: images kept per camera while waiting for a match", "images", (1, 100)
    )
    slop_s: float = parameter(
        0.02,
        "approximate-time sync: the stamps of one synchronized set lie less than this apart (strictly, as in "
        "message_filters' ApproximateTimeSynchronizer)",
        "s",
    )
    input_timeout_s: float = parameter(
        5.0,
        "warn when an image topic has had no image for this long (naming the likely cause); an image whose stamp ran "
        "this much further ahead of its arrival than its camera's newest waits for the next to confirm the jump",
        "s",
        (0.1, 3600.0),  # checked every half timeout: at most 20 times a second; an hour is beyond any camera's pause
    )
    max_image_pixels: int = parameter(
        DEFAULT_MAX_IMAGE_PIXELS,
        "largest image accepted (width x height, read from the message or the JPEG / PNG header before decoding; "
        "the default holds 8K UHD): larger ones are dropped and counted, not decoded",
        "pixels",
        (1, 134_217_728),
    )
    # --- model and backend
    weights: str = parameter(
        "facebook/VGGT-1B", "VGGT weights: a Hugging Face id, a folder (config.json + weights) or a weights file"
    )
    model_config: str = parameter(
        "", "optional model config.json when weights is a bare file; empty: the checkpoint's own / VGGT-1B"
    )
    backend: Literal[BACKENDS] = parameter("torch", "inference backend")
    device: Literal[DEVICES] = parameter(
        AUTO, "torch device; auto: cuda when torch sees a GPU, else the CPU (with a warning)"
    )
    precision: Literal[(AUTO, *PRECISIONS)] = parameter(
        AUTO,
        "auto: fp16 on cuda, fp32 on the CPU and on onnxruntime, and an engine_dir's quantized export at its "
        "scheme; fp32, fp16 or bf16 (half precision is meant for "
        "cuda; onnxruntime runs float32 graphs, tensorrt takes fp16 or fp32); w4a16 (torch: "
        "engine_dir is the output of vggt-ros-quantize --scheme w4a16), int8 or fp8 (onnxruntime / tensorrt: "
        "engine_dir holds that quantized export)",
    )
    engine_dir: str = parameter(
        "engines", "exported set for onnxruntime / tensorrt (manifest.json, ONNX graphs; TensorRT engines cached there)"
    )
    cpu_threads: int = parameter(
        1,
        "torch intra-op threads for the node's CPU-side work (and CPU inference); keep it small when other processes "
        "share the cores",
        "threads",
        (1, 1024),
    )
    image_size: int = parameter(
        518,
        "model input width (crop) or longer side (pad), a multiple of 14 (518 for VGGT-1B)",
        "pixels",
        (PATCH_SIZE, 2 * 518),  # 2 x the size VGGT-1B was trained at: attention cost grows with its square
    )
    preprocess_mode: Literal[MODES] = parameter(
        "crop", "crop (width = image_size, centre-crop height) or pad (longer side = image_size, white padding)"
    )
    # --- sliding window and keyframes
    window_size: int = parameter(
        8,
        "keyframes per inference (per camera); the network sees window_size x cameras images",
        "keyframes",
        # one keyframe shares none with the window before; 64 x 8 cameras is beyond VGGT-1B in real time
        (2, 64),
    )
    window_stride: int = parameter(
        1, "new keyframes between inferences (1..window_size); points are published for those", "keyframes"
    )
    depth_overlap_frame_sets: int = parameter(
        2,
        "frame sets already in the world whose depth is computed for the alignment (the newest and spread back to "
        "the oldest; more: less scale drift, 0.2 TFLOP per image for VGGT-1B at 518x350); above window_size - 1 "
        "counts as window_size - 1",
        "frame sets",
        (1, 100_000),
    )
    keyframe_min_interval_s: float = parameter(0.0, "minimum time between keyframes (0.0: off)", "s")
    keyframe_min_motion: float = parameter(
        0.0, "minimum mean grey-level change to the last keyframe, 0..1 (0.0: off)", "fraction"
    )
    # --- point cloud
    confidence_percentile: float = parameter(
        50.0, "drop cloud points below this percentile of depth confidence, 0 <= p < 100 (0.0: off)", "percentile"
    )
    confidence_threshold: float = parameter(
        0.0, "drop cloud points whose depth confidence is below this (VGGT's is > 1; 0.0: off)"
    )
    point_decimation: int = parameter(
        2, "publish every n-th pixel's point in rows and columns (1: all)", "pixels", (1, 64)
    )
    # --- one world across windows and the map
    tracking_lost_after: int = parameter(
        3,
        "windows rejected in a row after which the next one that does not align starts a new segment",
        "windows",
    )
    alignment_min_inlier_ratio: float = parameter(
        0.6, "a window merges only if at least this fraction of its overlap correspondences agree", "fraction"
    )
    alignment_inlier_distance_ratio: float = parameter(
        0.08, "a correspondence agrees with the alignment if within this x the scene depth", "x scene depth"
    )
    alignment_max_residual_ratio: float = parameter(
        0.05, "a window merges only if its RMS alignment residual is below this x the scene depth", "x scene depth"
    )
    alignment_max_camera_offset_ratio: float = parameter(
        0.1, "a shared camera may move at most this x the scene depth between windows", "x scene depth"
    )
    alignment_max_camera_rotation_deg: float = parameter(
        5.0, "a shared camera may turn at most this much between windows", "degrees"
    )
    alignment_camera_weight: float = parameter(
        0.25, "weight of each shared camera pose in the alignment, relative to one frame's pixels"
    )
    trajectory_recent_keyframes: int = parameter(
        500,
        "newest keyframes kept in full for ~/path, ~/save and the world (memory bound); at least window_size x "
        "cameras, the frames the alignment still uses",
        "keyframes",
        (WorldConfig.retained_frames, 100_000),
    )
    trajectory_history_keyframes: int = parameter(
        500, "older keyframes kept, decimated to this many, spanning the whole run", "keyframes", (1, 100_000)
    )
    # --- one map for a whole run: loop closure
    loop_closure: bool = parameter(
        True,
        "close loops: recognise places seen before (DINOv2 descriptors), verify each with one network pass of at "
        "most 4 frames, optimise a Sim(3) pose graph (GTSAM) and move parent_frame -> world_frame, the path and the "
        "map; joins a lost track's segments at the first revisit (loop_join_min_loops). Needs gtsam (pip install "
        "gtsam)",
    )
    loop_min_score: float = parameter(
        0.9, "place recognition: cosine similarity of two keyframes' descriptors for a loop candidate", "", (0.0, 1.0)
    )
    loop_min_age_s: float = parameter(
        20.0, "place recognition: candidates are at least this much older than the new keyframe", "s", (0.0, 1e6)
    )
    loop_exclude_recent: int = parameter(
        30, "place recognition: the newest keyframes are never candidates", "keyframes", (0, 100_000)
    )
    loop_join_min_loops: int = parameter(
        LoopConfig.join_min_loops,
        "relocalisation: loops from different frame sets that must agree on where a lost track's segment goes "
        "before it joins the older map (1: the first loop joins it, and a lone look-alike place joins it wrongly)",
        "loops",
        (1, MAX_HELD_LOOPS),
    )
    map_voxel_size: float = parameter(
        0.01,
        "voxel size of ~/map (the first window's scale, metres once a metric scale is measured); grows when over "
        "map_max_points",
        "world units",
    )
    map_max_points: int = parameter(500_000, "point budget of ~/map (memory bound)", "points", (1, 50_000_000))
    map_publish_period_s: float = parameter(
        2.0,
        "time between ~/map publications (only when it changed)",
        "s",
        (0.01, 3600.0),  # the map timer's and the map thread's period: finite, so ROS timers and waits take it
    )
    save_directory: str = parameter(
        "vggt_map",
        "folder where the ~/save service writes map.ply, trajectory.tum (further cameras: trajectory_<name>.tum), "
        "the dataset exports (colmap/, transforms.json, images/, depth/, confidence/) and world_placement.yaml (the "
        "files' frame in its parent); a leading ~ is the home folder, a relative path is from the node's working "
        "directory",
    )
    save_dataset_frames: int = parameter(
        50,
        "newest keyframes kept (camera image, depth, confidence: about 3 MB each at 640x480, 100 MB at 8K) for "
        "~/save's COLMAP and nerfstudio exports, in whole frame sets (several cameras: rounded down to a multiple of "
        "them, at least one set); 0: ~/save writes the map and trajectory only",
        "keyframes",
        (0, 500),
    )
    # --- frames and outputs
    world_frame: str = parameter(
        "vggt_world", "frame of the cloud, path, map and camera TF: the very first image's optical frame"
    )
    parent_frame: str = parameter("map", "REP-103 frame above world_frame, joined by a static rotation (z up)")
    frame_prefix: str = parameter(
        "",
        "prefix of the frames the node names itself (world_frame and each camera's <name>_optical), as "
        "robot_state_publisher's: 'robot1/' for one robot of several, whose nodes share /tf (a namespace leaves "
        "frame ids as they are)",
    )
    publish_map: bool = parameter(True, "publish ~/map (latched: reliable, transient local)")
    publish_points: bool = parameter(True, "publish ~/points")
    publish_depth: bool = parameter(True, "publish the depth image(s)")
    publish_confidence: bool = parameter(True, "publish the confidence image(s)")
    publish_camera_info: bool = parameter(True, "publish the depth CameraInfo(s)")
    publish_tf: bool = parameter(
        True,
        "publish world_frame -> <camera>_optical on /tf and parent_frame -> world_frame on /tf_static (robot frames "
        "without loop closure: odom_frame -> world_frame; with it also parent_frame -> odom_frame on /tf)",
    )
    publish_path: bool = parameter(True, "publish ~/path")
    # --- metric scale
    metric_scale_source: Literal[METRIC_SOURCES] = parameter(
        "none",
        "what fixes the scale in metres: none (VGGT's unit-less scale), depth (depth_topics), rig (camera 0 -> j "
        "transforms from /tf_static or rig_transforms) or odometry (odom_frame -> camera TF)",
    )
    depth_topics: tuple[str, ...] = parameter(
        (),
        "with metric_scale_source depth (and only then): one depth image topic per camera, registered to its colour "
        "image (same size), 16UC1 millimetres or 32FC1 metres (REP 118)",
    )
    depth_min_range_m: float = parameter(0.2, "depth readings nearer than this are not used for the scale", "m")
    depth_max_range_m: float = parameter(10.0, "depth readings farther than this are not used for the scale", "m")
    rig_transforms: tuple[float, ...] = parameter(
        (),
        "with metric_scale_source rig: x y z qx qy qz qw (metres) of camera 0 -> camera j for each camera after the "
        "first; empty: looked up between the image headers' frame ids on /tf_static",
    )
    odometry_min_translation_m: float = parameter(
        0.1,
        "with metric_scale_source odometry: the cameras must travel this far within a window for its scale to count",
        "m",
    )
    # --- robot frames (REP 105)
    odom_frame: str = parameter(
        "",
        "REP 105 odometry frame: with robot_base_frame, the world is placed in it where the first camera was, and "
        "~/odometry is published; the odometry scale source measures the cameras' travel in it",
    )
    robot_base_frame: str = parameter(
        "", "REP 105 base frame of the robot (the camera mounting base -> camera on /tf_static)"
    )
    publish_odom_tf: bool = parameter(
        False,
        "publish odom_frame -> robot_base_frame on /tf (only for robots without other odometry; needs a depth or rig "
        "metric_scale_source)",
    )
    map_odom_period_s: float = parameter(
        0.05,
        "with robot frames and loop closure: time between parent_frame -> odom_frame transforms on /tf (map -> odom: "
        "the corrected base times the inverse of odom's own odom -> base)",
        "s",
        (0.001, 10.0),
    )
    map_odom_tolerance_s: float = parameter(
        0.2,
        "how far past the clock map -> odom is stamped, so that look-ups of the newest odometry in parent_frame "
        "find it (nav2's transform_tolerance)",
        "s",
        (0.0, 10.0),
    )
    # --- /diagnostics
    diagnostics_window_s: float = parameter(
        5.0, "/diagnostics: rates, ratios and latency percentiles cover this long", "s"
    )
    diagnostics_latency_warn_s: float = parameter(
        1.0, "/diagnostics: pipeline WARN when the p95 latency from image stamp to publication exceeds this", "s"
    )
    diagnostics_latency_error_s: float = parameter(
        5.0,
        "/diagnostics: pipeline ERROR when the p95 latency exceeds this, or a window has waited this long without "
        "any finishing (above diagnostics_latency_warn_s)",
        "s",
    )
    diagnostics_dropped_warn_ratio: float = parameter(
        0.5,
        "/diagnostics: pipeline WARN when more than this fraction of the keyframes was dropped (inference slower "
        "than the cameras)",
        "fraction",
    )
    diagnostics_missed_warn_ratio: float = parameter(
        0.01,
        "/diagnostics: camera WARN when more than this fraction of its images never reached the node (lost by DDS "
        "or overwritten in the subscription queue)",
        "fraction",
    )
    diagnostics_images_dropped_warn_ratio: float = parameter(
        0.1,
        "/diagnostics: camera WARN when more than this fraction of its images reached the node but was dropped "
        "(undecodable, too large, too elongated, in one of the node's own frames, a repeated, late, stale or far-ahead "
        "stamp, unstamped before the clock started); ERROR when every one was",
        "fraction",
    )
    diagnostics_gpu_memory_warn_ratio: float = parameter(
        0.9,
        "/diagnostics: backend WARN when more than this fraction of the GPU's memory is in use (every process)",
        "fraction",
    )

    def __post_init__(self) -> None:
        if not self.image_topics or any(not topic for topic in self.image_topics):
            raise ValueError(f"image_topics must list 1 or more non-empty topics, got {list(self.image_topics)}")
        repeated = sorted({topic for topic in self.image_topics if self.image_topics.count(topic) > 1})
        if repeated:
            raise ValueError(
                f"image_topics lists {', '.join(map(repr, repeated))} more than once, got {list(self.image_topics)}: "
                "give each camera its own topic"
            )
        for spec in dataclasses.fields(self):
            bounds, value = spec.metadata["bounds"], getattr(self, spec.name)
            if bounds is not None and not bounds[0] <= value <= bounds[1]:
                unit = f" {spec.metadata['unit']}" if spec.metadata["unit"] else ""
                raise ValueError(f"{spec.name} must be in [{bounds[0]}, {bounds[1]}]{unit}, got {value!r}")
        aligned = self.window_size * len(self.image_topics)
        if self.trajectory_recent_keyframes < aligned:
            raise ValueError(
                f"trajectory_recent_keyframes must be >= window_size x cameras = {aligned} (the frames the alignment "
                f"still uses must be known as merged), got {self.trajectory_recent_keyframes}"
            )
        if self.image_transport not in IMAGE_TRANSPORTS:
            raise ValueError(f"image_transport must be one of {IMAGE_TRANSPORTS}, got {self.image_transport!r}")
        frames = {
            name: getattr(self, name)
            for name in ("world_frame", "parent_frame", "odom_frame", "robot_base_frame", "frame_prefix")
        }
        for name, frame in frames.items():
            if frame.startswith("/") or any(c.isspace() for c in frame):
                raise ValueError(f"{name} {frame!r}: tf2 frame ids have no leading '/' and no spaces")
        if not self.save_directory.strip():
            raise ValueError("save_directory must name a folder (it is empty)")
        check_image_size("image_size", self.image_size)
        if self.camera_names and self.camera_names_from_topics:
            raise ValueError("camera_names and camera_names_from_topics: give the names or take them from the topics")
        if self.camera_names and len(self.camera_names) != len(self.image_topics):
            raise ValueError(
                f"camera_names has {len(self.camera_names)} names for {len(self.image_topics)} image_topics; give one "
                "name per topic or leave it empty for camera0, camera1, ..."
            )
        if self.camera_names_from_topics:
            check_camera_names(self.names, "the names taken from image_topics", "; set camera_names instead")
        else:
            check_camera_names(self.names, "camera_names")
        if not self.world_frame or not self.parent_frame:
            raise ValueError(
                f"world_frame and parent_frame must be non-empty frame ids, got {self.world_frame!r} and "
                f"{self.parent_frame!r}"
            )
        self._check_frames_are_distinct()
        if self.depth_topics and self.metric_scale_source != "depth":
            raise ValueError(
                f"depth_topics {list(self.depth_topics)} are read only with metric_scale_source 'depth', got "
                f"{self.metric_scale_source!r}: set metric_scale_source to 'depth' or leave depth_topics empty"
            )
        if self.rig_transforms and self.metric_scale_source != "rig":
            raise ValueError(
                f"rig_transforms are read only with metric_scale_source 'rig', got {self.metric_scale_source!r}: set "
                "metric_scale_source to 'rig' or leave rig_transforms empty"
            )
        if self.metric_scale_source == "depth" and len(self.depth_topics) != len(self.image_topics):
            raise ValueError(
                f"metric_scale_source 'depth' needs one depth topic per image topic (registered to it, e.g. "
                f"aligned_depth_to_color/image_raw); got depth_topics {list(self.depth_topics)} for "
                f"{len(self.image_topics)} image topics"
            )
        if self.metric_scale_source == "rig" and len(self.image_topics) < 2:
            raise ValueError(
                f"metric_scale_source 'rig' needs 2 or more image_topics (it measures the baseline between camera 0 "
                f"and the others), got {list(self.image_topics)}: add the rig's other cameras, or use 'depth' or "
                "'odometry' with one camera"
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
        if self.publish_odom_tf and self.metric_scale_source == "none":
            raise ValueError(
                "publish_odom_tf needs a metric scale source: the node's odometry (~/odometry, odom -> base) is in "
                "metres, so without one odom -> base is never published and the base hangs nowhere; set "
                "metric_scale_source to depth or rig, or publish_odom_tf to false"
            )
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
        # The core configurations validate their own fields, under their own names: the error names the parameter.
        try:
            ApproximateTimeSynchronizer(len(self.image_topics), self.queue_size, self.slop_s)
            self.runtime_config()
            self.session_config()
        except ValueError as err:
            raise ValueError(renamed(str(err), _PARAMETER_OF)) from None
        self.health_thresholds()

    def _check_frames_are_distinct(self) -> None:
        """Every frame the node publishes or hangs its world under has its own id: one shared by two of them would
        give that frame two parents or make it its own parent, a TF tree tf2 cannot use."""
        frames = {"world_frame": self.world_frame_id}
        frames.update({name: getattr(self, name) for name in ("parent_frame", "odom_frame", "robot_base_frame")})
        frames.update(
            {f"the optical frame of camera {name!r}": self.optical_frame(i) for i, name in enumerate(self.names)}
        )
        owner: dict[str, str] = {}
        for source, frame in frames.items():
            if frame in owner:
                raise ValueError(
                    f"{owner[frame]} and {source} are both {frame!r}: each frame the node publishes or hangs its world "
                    "under needs its own id; rename one (world_frame, parent_frame, odom_frame, robot_base_frame or "
                    "camera_names)"
                )
            if frame:  # odom_frame and robot_base_frame are empty when the robot frames are not used
                owner[frame] = source

    @property
    def names(self) -> tuple[str, ...]:
        """Camera names, one per image topic (camera0, camera1, ... unless camera_names or the topics say)."""
        if self.camera_names_from_topics:
            return names_from_topics(self.image_topics)
        return self.camera_names or tuple(f"camera{i}" for i in range(len(self.image_topics)))

    @property
    def save_folder(self) -> Path:
        """save_directory as an absolute path, ~ expanded (a YAML file or a launch argument does not expand it)."""
        return Path(self.save_directory).expanduser().absolute()

    @property
    def world_frame_id(self) -> str:
        """The world's frame id on TF and in the headers: world_frame after frame_prefix."""
        return f"{self.frame_prefix}{self.world_frame}"

    def optical_frame(self, camera_index: int) -> str:
        """The frame id of the node's estimate of camera ``camera_index``: ``<frame_prefix><name>_optical``."""
        return f"{self.frame_prefix}{self.names[camera_index]}_optical"

    @property
    def robot_frames(self) -> bool:
        """The world is placed among the robot's frames (REP 105), where odom had the first camera."""
        return bool(self.odom_frame and self.robot_base_frame)

    @property
    def publishes_map_odom(self) -> bool:
        """The node owns map -> odom (REP 105): robot frames, loop closure and TF on."""
        return self.robot_frames and self.loop_closure and self.publish_tf

    @property
    def start_up_warnings(self) -> tuple[str, ...]:
        """Combinations that run but do not give what a robot's user likely expects: one warning each at start-up."""
        warnings = []
        if self.robot_frames and self.metric_scale_source == "none":
            warnings.append(
                f"robot frames ('{self.odom_frame}', '{self.robot_base_frame}') without a metric scale source: the "
                "world's poses stay in VGGT's unit under frames in metres, so the base's path in "
                f"'{self.parent_frame}' differs from the robot's odometry by an unknown scale. Fix: set "
                "metric_scale_source to odometry (the robot's own odometry in odom_frame), depth or rig"
            )
        if self.frame_prefix and not self.frame_prefix.endswith("/"):
            warnings.append(
                f"frame_prefix {self.frame_prefix!r} does not end in '/': the node's frames are "
                f"'{self.world_frame_id}' and '{self.optical_frame(0)}'. Fix: frame_prefix '{self.frame_prefix}/', "
                "as robot_state_publisher's"
            )
        return tuple(warnings)

    @property
    def looked_up_cameras(self) -> frozenset[int]:
        """The cameras whose images' frames the node looks up in TF: every camera for the rig from /tf_static and
        the odometry scale, camera 0 for the robot frames' placement (and map -> odom)."""
        if (self.metric_scale_source == "rig" and not self.rig_transforms) or self.metric_scale_source == "odometry":
            return frozenset(range(len(self.image_topics)))
        return frozenset({0}) if self.robot_frames else frozenset()

    @property
    def reads_transforms(self) -> bool:
        """The node looks images' frames up in TF: the rig without rig_transforms, the odometry scale, the robot
        frames."""
        return bool(self.looked_up_cameras)

    def input_config(self, topics: tuple[str, ...], max_reorder_s: float) -> InputConfig:
        """The input assembly's settings: ``topics``, the resolved colour then depth topics; ``max_reorder_s``, the
        session window's line between a late image and time going back. ``own_frames``: the frames the node
        publishes on TF (publish_tf); images in them are dropped where the node also looks the images' frames up
        there, and warned about elsewhere."""
        own_frames = {self.world_frame_id: "the node's world frame (world_frame)"}
        own_frames.update(
            {self.optical_frame(i): f"the node's estimate of camera {name!r}" for i, name in enumerate(self.names)}
        )
        return InputConfig(
            names=self.names,
            queue_size=self.queue_size,
            slop_s=self.slop_s,
            max_reorder_s=max_reorder_s,
            topics=topics,
            topic_types=tuple(
                COMPRESSED_IMAGE_TYPE if self.image_transport == "compressed" else IMAGE_TYPE for _ in self.image_topics
            )
            + (IMAGE_TYPE,) * len(self.depth_topics),
            depth_cameras=len(self.depth_topics),
            depth_keyframes=self.window_size,
            input_timeout_s=self.input_timeout_s,
            max_image_pixels=self.max_image_pixels,
            preprocess_mode=self.preprocess_mode,
            image_size=self.image_size,
            own_frames=own_frames if self.publish_tf else {},
            looked_up_cameras=self.looked_up_cameras,
            clock_ahead_tolerance_s=CLOCK_AHEAD_TOLERANCE_S,
        )

    def runtime_config(self) -> RuntimeConfig:
        return RuntimeConfig(
            backend=self.backend,
            weights=self.weights,
            model_config=self.model_config or None,
            device=self.device,
            precision=self.precision,
            engine_dir=self.engine_dir,
        )

    def metric_config(self) -> MetricConfig:
        rig = []
        for j in range(len(self.rig_transforms) // RIG_TRANSFORM_VALUES):
            x, y, z, qx, qy, qz, qw = self.rig_transforms[j * RIG_TRANSFORM_VALUES : (j + 1) * RIG_TRANSFORM_VALUES]
            transform = np.eye(4)
            try:
                transform[:3, :3] = quaternion_to_rotation_matrix(np.array([qx, qy, qz, qw], dtype=np.float64))
            except ValueError:
                raise ValueError(
                    f"rig_transforms: camera {j + 1}'s rotation quaternion (qx qy qz qw) is zero; the identity is "
                    "0 0 0 1 (x y z qx qy qz qw)"
                ) from None
            transform[:3, 3] = (x, y, z)
            rig.append((j + 1, transform))
        return MetricConfig(
            source=self.metric_scale_source,
            depth=DepthScaleConfig(min_range_m=self.depth_min_range_m, max_range_m=self.depth_max_range_m),
            rig_transforms=tuple(rig),
            odom_frame=self.odom_frame or "odom",
            min_translation_m=self.odometry_min_translation_m,
        )

    def health_thresholds(self) -> HealthThresholds:
        """When /diagnostics reports WARN or ERROR (see vggt_ros.live.health)."""
        try:
            return HealthThresholds(**{core: getattr(self, name) for core, name in _HEALTH_PARAMETERS.items()})
        except ValueError as err:  # the core names its own fields: name the parameters
            text = str(err)
            core = next((core for core in _HEALTH_PARAMETERS if text.startswith(f"{core} ")), None)
            raise ValueError(
                _HEALTH_PARAMETERS[core] + text[len(core) :] if core else f"diagnostics_* parameters: {text}"
            ) from None

    def session_config(self) -> SessionConfig:
        cameras = len(self.image_topics)
        return SessionConfig(
            window=WindowConfig(
                window_size=self.window_size,
                window_stride=self.window_stride,
                keyframes=KeyframePolicy(
                    min_interval_s=self.keyframe_min_interval_s, min_motion=self.keyframe_min_motion
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
                loop=LoopConfig(enabled=self.loop_closure, join_min_loops=self.loop_join_min_loops),
            ),
            loop_verification=LoopVerificationConfig(
                place=PlaceRecognitionConfig(
                    min_score=self.loop_min_score,
                    min_age_s=self.loop_min_age_s,
                    exclude_recent=self.loop_exclude_recent,
                )
            ),
            map=MapConfig(voxel_size=self.map_voxel_size, max_points=self.map_max_points),
            cameras=cameras,
            camera_names=self.names,
            image_size=self.image_size,
            preprocess_mode=self.preprocess_mode,
            overlap_frame_sets=min(self.depth_overlap_frame_sets, max(1, self.window_size - 1)),
            metric=self.metric_config(),
        )


# HealthThresholds' fields and the parameters that set them: the diagnostics_* ones carry the prefix.
_HEALTH_PARAMETERS = {
    spec.name: spec.name if spec.name == "input_timeout_s" else f"diagnostics_{spec.name}"
    for spec in dataclasses.fields(HealthThresholds)
}
# The core configurations' names for what a parameter sets, where they differ (their errors name them).
_PARAMETER_OF = {
    "slop": "slop_s",
    "overlap_frame_sets": "depth_overlap_frame_sets",
    "keyframe min_interval_s": "keyframe_min_interval_s",
    "keyframe min_motion": "keyframe_min_motion",
    "WorldConfig.max_consecutive_rejections": "tracking_lost_after",
    "WorldConfig.min_inlier_ratio": "alignment_min_inlier_ratio",
    "WorldConfig.inlier_distance_ratio": "alignment_inlier_distance_ratio",
    "WorldConfig.max_residual_ratio": "alignment_max_residual_ratio",
    "WorldConfig.max_camera_offset_ratio": "alignment_max_camera_offset_ratio",
    "WorldConfig.max_camera_rotation_deg": "alignment_max_camera_rotation_deg",
    "WorldConfig.camera_weight": "alignment_camera_weight",
    "WorldConfig.trajectory_recent": "trajectory_recent_keyframes",
    "WorldConfig.trajectory_history": "trajectory_history_keyframes",
    "MapConfig.voxel_size": "map_voxel_size",
    "MapConfig.max_points": "map_max_points",
    "min_range_m": "depth_min_range_m",
    "max_range_m": "depth_max_range_m",
    "min_translation_m": "odometry_min_translation_m",
}
IMAGE_TRANSPORTS = get_args(NodeParameters.__dataclass_fields__["image_transport"].type)
# A ROS 2 name token (rcl's topic and node name rules): camera names become topic tokens and frame ids.
_CAMERA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def renamed(message: str, names: Mapping[str, str]) -> str:
    """An error ``message`` with each name in ``names`` replaced by its value (a core config's field by the node's
    parameter, a parameter by the offline command's option). A name with an underscore is replaced wherever it
    stands whole; one without only before " must", since elsewhere it is a plain word ("the torch backend")."""
    pattern = re.compile(r"(?<![\w.-])(" + "|".join(map(re.escape, names)) + r")\b( must)?")

    def replace(match: re.Match) -> str:
        name, must = match.group(1), match.group(2) or ""
        return names[name] + must if "_" in name or must else match.group(0)

    return pattern.sub(replace, message)


def check_camera_names(names: Sequence[str], source: str, fix: str = "") -> None:
    """Raise ValueError, naming ``source`` (the parameter or option) and ending with ``fix``, unless ``names`` are
    distinct ROS name tokens: each names the node's topics ``~/<name>/...``, the frame ``<name>_optical``, and the
    offline exports' folder ``<name>/`` and trajectory file."""
    if len(set(names)) != len(names) or any(not _CAMERA_NAME.fullmatch(name) for name in names):
        raise ValueError(
            f"{source} must be distinct ROS name tokens (letters, digits and '_', not starting with a digit: each "
            f"names the topics ~/<name>/... and the frame <name>_optical), got {list(names)}{fix}"
        )


def names_from_topics(topics: tuple[str, ...]) -> tuple[str, ...]:
    """Camera names from the topics' namespaces: the last token dropped (the image's own name), then the leading
    tokens every topic shares when there are several (``/stereo/left/image_raw``, ``/stereo/right/image_raw``:
    left, right; one ``/front/color/image_raw``: front_color), joined by '_'. Empty where a topic has no namespace."""
    namespaces = [[t for t in topic.split("/") if t and t != "~"][:-1] for topic in topics]
    shared = 0
    if len(namespaces) > 1:
        while all(len(ns) > shared + 1 for ns in namespaces) and len({ns[shared] for ns in namespaces}) == 1:
            shared += 1
    return tuple("_".join(ns[shared:]) for ns in namespaces)


# ------------------------------------------------------------------------------------- generated descriptions
def fields() -> tuple[dataclasses.Field, ...]:
    return dataclasses.fields(NodeParameters)


def choices(spec: dataclasses.Field) -> tuple[str, ...]:
    """The values of an enumeration (a `Literal` field), else ()."""
    return get_args(spec.type) if get_origin(spec.type) is Literal else ()


def describe(spec: dataclasses.Field) -> str:
    """One line: the help, the choices, the unit and the bounds (the ROS descriptor's and the launch file's text)."""
    text = spec.metadata["help"]
    if choices(spec):
        text = f"{' | '.join(choices(spec))}: {text}"
    extras = []
    if spec.metadata["unit"]:
        extras.append(spec.metadata["unit"])
    if spec.metadata["bounds"] is not None:
        extras.append(f"{spec.metadata['bounds'][0]}..{spec.metadata['bounds'][1]}")
    return f"{text} [{', '.join(extras)}]" if extras else text


def _type_name(spec: dataclasses.Field) -> str:
    if choices(spec):
        return "string"
    if get_origin(spec.type) is tuple:
        return f"{get_args(spec.type)[0].__name__}[]"
    return spec.type.__name__


def _yaml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    return repr(value)


def _markdown(text: str) -> str:
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def markdown_table() -> str:
    """docs/parameters.md: every parameter with its type, default, unit, bounds and help."""
    lines = [
        "<!-- Generated from vggt_ros/live/parameters.py by tools/gen_docs.py: edit the fields there. -->",
        "# Node parameters",
        "",
        "Every parameter of the `vggt` node, read once at start-up (all are read-only). Floating-point values need a "
        "decimal point (`0.0`, not `0`): ROS 2 parameters are strictly typed. The bounds below are also the "
        "descriptors' ranges (`ros2 param describe`). config/reconstruct.yaml holds them all with their defaults. "
        "The offline command `vggt-ros-reconstruct` takes the shared ones as options with the same defaults "
        "(`--help`).",
        "",
        "| name | type | default | unit | bounds | description |",
        "|---|---|---|---|---|---|",
    ]
    for spec in fields():
        bounds = spec.metadata["bounds"]
        kind = " \\| ".join(choices(spec)) if choices(spec) else _type_name(spec)
        lines.append(
            f"| `{spec.name}` | {kind} | `{_yaml_value(spec.default)}` | {spec.metadata['unit']} | "
            f"{f'{bounds[0]} .. {bounds[1]}' if bounds else ''} | {_markdown(spec.metadata['help'])} |"
        )
    lines += [
        "",
        "## Renamed parameters",
        "",
        "These names now carry their unit. The old name is still read, with one warning at start-up, where the new "
        "name is not given too: both given is a start-up error naming the two. The shipped `config/reconstruct.yaml` "
        "gives every new name, so with it an old name (`-p slop:=0.03`) is that error: give the new name instead.",
        "",
        "| old name | new name |",
        "|---|---|",
        *(f"| `{old}` | `{new}` |" for old, new in RENAMED.items()),
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ the offline command
def default(name: str) -> Any:
    return NodeParameters.__dataclass_fields__[name].default


def add_option(parser: argparse.ArgumentParser, name: str, flag: str, **overrides: Any) -> None:
    """Add the node parameter ``name`` to the offline command as ``flag``: the same type, default, choices and help.
    A list parameter is comma separated on the command line."""
    spec = NodeParameters.__dataclass_fields__[name]
    options: dict[str, Any] = {"default": spec.default, "help": describe(spec)}
    if choices(spec):
        options["choices"] = choices(spec)
    elif get_origin(spec.type) is tuple:
        item = get_args(spec.type)[0]
        options["type"] = lambda text: tuple(item(v) for v in text.split(",") if v)
        options["default"] = ",".join(str(v) for v in spec.default)
        options["help"] += " (comma separated)"
    elif spec.type is bool:
        options["action"] = argparse.BooleanOptionalAction
    else:
        options["type"] = spec.type
    parser.add_argument(flag, **{**options, **overrides})
