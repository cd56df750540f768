# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The node's parameters have one source (vggt_ros.live.parameters): the shipped parameter file, the launch
arguments, docs/parameters.md and the offline command's options are checked against it here, without ROS."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vggt_ros.live.parameters import (
    RENAMED,
    NodeParameters,
    choices,
    default,
    describe,
    fields,
    markdown_table,
    names_from_topics,
)
from vggt_ros.offline import SHARED_OPTIONS, parse_arguments
from vggt_ros.runtime import PRECISIONS, RuntimeConfig

ROOT = Path(__file__).resolve().parents[2]
NAMES = {spec.name for spec in fields()}


def test_docs_parameter_table_is_the_generated_one():
    assert (ROOT / "docs" / "parameters.md").read_text() == markdown_table(), "run python tools/gen_docs.py"
    result = subprocess.run([sys.executable, "tools/gen_docs.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_shipped_parameter_file_holds_every_parameter_with_its_default():
    text = (ROOT / "config" / "reconstruct.yaml").read_text()
    shipped = yaml.safe_load(text)["/**"]["ros__parameters"]
    assert set(shipped) <= NAMES, f"not parameters: {set(shipped) - NAMES}"
    for name, value in shipped.items():
        expected = default(name)
        assert (tuple(value) if isinstance(value, list) else value) == expected, name
    # A parameter left out of the file is there as a commented example.
    commented = {line.strip().lstrip("#").split(":")[0].strip() for line in text.splitlines() if ":" in line}
    assert NAMES - set(shipped) <= commented, f"missing from config/reconstruct.yaml: {NAMES - set(shipped)}"


def test_launch_file_overrides_name_parameters_and_take_their_descriptions():
    tree = ast.parse((ROOT / "launch" / "reconstruct.launch.py").read_text())
    overrides = {
        target.id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name) and target.id in ("_STRING_OVERRIDES", "_LIST_OVERRIDES")
    }
    assert set(overrides) == {"_STRING_OVERRIDES", "_LIST_OVERRIDES"}
    for name in (*overrides["_STRING_OVERRIDES"], *overrides["_LIST_OVERRIDES"]):
        assert name in NAMES, name
    # Descriptions come from describe(), not from text of their own.
    assert "describe(fields[name])" in ast.unparse(tree)


def test_every_precision_the_runtime_takes_is_documented_once_and_auto_is_the_default():
    precision = NodeParameters.__dataclass_fields__["precision"]
    assert set(choices(precision)) == {"auto", *PRECISIONS}
    for name in PRECISIONS:  # w4a16, int8 and fp8 too, which the old launch file and README left out
        assert name in describe(precision)
        assert f"| {name}" in markdown_table() or f"\\| {name}" in markdown_table()
    with pytest.raises(ValueError, match="unknown precision 'fp64'"):
        NodeParameters(precision="fp64")  # the runtime's own check, not a copy


def test_auto_device_and_precision_follow_the_gpu_and_explicit_values_are_kept():
    on_gpu = RuntimeConfig().resolve(cuda_available=True)
    assert (on_gpu.config.device, on_gpu.config.precision, on_gpu.warning) == ("cuda", "fp16", None)
    on_cpu = RuntimeConfig().resolve(cuda_available=False)
    assert (on_cpu.config.device, on_cpu.config.precision) == ("cpu", "fp32")
    assert "torch sees no CUDA GPU" in on_cpu.warning
    assert on_cpu.chosen == "device auto -> cpu, precision auto -> fp32"
    explicit = RuntimeConfig(device="cuda", precision="bf16").resolve(cuda_available=False)
    assert (explicit.config.device, explicit.config.precision, explicit.chosen) == ("cuda", "bf16", "")
    mixed = RuntimeConfig(precision="bf16").resolve(cuda_available=True)
    assert (mixed.config.device, mixed.config.precision) == ("cuda", "bf16")


def test_precisions_an_engine_backend_does_not_apply_are_named():
    """ONNX Runtime ran fp16 as float32 without a word (auto chose fp16 on a GPU machine), and tensorrt with bf16
    stopped with a bare "precision must be one of (...)" naming neither the parameter's backend nor the choices."""
    auto = RuntimeConfig(backend="onnxruntime").resolve(cuda_available=True)
    assert (auto.config.precision, auto.warning) == ("fp32", None)
    half = RuntimeConfig(backend="onnxruntime", precision="fp16").resolve(cuda_available=False)
    # What runs, as the run's records (summary.json, /diagnostics) give it: they said fp16 (pass Q).
    assert half.config.device == "cpu" and half.config.precision == "fp32"
    assert half.warning.startswith(
        "precision fp16: the onnxruntime backend runs the export as it is (float32 graphs), so it runs at fp32"
    )
    # A quantized export: the precision asked for stays, for the export's own refusal to name (it named fp32).
    quantized = RuntimeConfig(backend="onnxruntime", precision="fp16")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RuntimeConfig, "_export_scheme", lambda self: "int8")  # test double of an int8 export's manifest
        assert quantized.resolve(cuda_available=False).config.precision == "fp16"
    with pytest.raises(ValueError, match=r"precision 'bf16' is not one the tensorrt backend builds; choose one of "):
        RuntimeConfig(backend="tensorrt", precision="bf16")


def test_weights_an_export_replaces_are_named_as_unused():
    """--weights given with an engine backend (or w4a16's folder) ran the export without a word about them."""
    for given in (
        RuntimeConfig(backend="onnxruntime", weights="my/weights", engine_dir="e", precision="fp32"),
        RuntimeConfig(backend="onnxruntime", model_config="config.json", engine_dir="e", precision="fp32"),
        RuntimeConfig(weights="my/weights", precision="w4a16", engine_dir="e", device="cpu"),
    ):
        warning = given.resolve(cuda_available=False).warning
        assert warning.startswith("weights and model_config are not used with backend ") and "engine_dir e" in warning
    for quiet in (RuntimeConfig(backend="onnxruntime", precision="fp32"), RuntimeConfig(weights="my", device="cpu")):
        assert quiet.resolve(cuda_available=False).warning is None


def test_renamed_parameters_carry_their_unit_and_the_old_names_are_gone():
    for old, new in RENAMED.items():
        assert new in NAMES and old not in NAMES
        assert new.endswith(("_s", "_m"))
        unit = NodeParameters.__dataclass_fields__[new].metadata["unit"]
        assert unit == new.rsplit("_", 1)[1]


@pytest.mark.parametrize(
    "name, value",
    [
        ("queue_size", 100_000_000),
        ("save_dataset_frames", 100_000),
        ("max_image_pixels", 10**12),
        ("queue_size", 0),
        # Periods too long for a ROS timer (int64 nanoseconds) or a threading wait: start-up used to end in an
        # empty FATAL line.
        ("input_timeout_s", 1e11),
        ("map_publish_period_s", float("inf")),
        ("map_publish_period_s", 1e12),
        ("map_publish_period_s", 0.0),
        # Beyond the model image the grid is its first pixel alone: a frame whose pixel there is padding was
        # rejected as having no usable depth.
        ("point_decimation", 100_000),
    ],
)
def test_every_size_has_a_documented_upper_bound(name, value):
    bounds = NodeParameters.__dataclass_fields__[name].metadata["bounds"]
    assert f"| {bounds[0]} .. {bounds[1]} |" in next(
        line for line in markdown_table().splitlines() if line.startswith(f"| `{name}`")
    )
    with pytest.raises(ValueError, match=rf"{name} must be in \[{bounds[0]}, {bounds[1]}\]"):
        NodeParameters(**{name: value})


@pytest.mark.parametrize(
    "topics, names",
    [
        (("/left/image_raw", "/right/image_raw"), ("left", "right")),
        (("/stereo/left/image_raw", "/stereo/right/image_raw"), ("left", "right")),
        (("/front/color/image_raw",), ("front_color",)),
        (("left/image", "~/right/image"), ("left", "right")),
    ],
)
def test_camera_names_from_the_topics(topics, names):
    assert names_from_topics(topics) == names
    assert NodeParameters(image_topics=topics, camera_names_from_topics=True).names == names


def test_camera_names_from_topics_without_a_namespace_say_what_to_set():
    with pytest.raises(ValueError, match="the names taken from image_topics must be distinct.*set camera_names"):
        NodeParameters(image_topics=("/image",), camera_names_from_topics=True)


def test_offline_options_have_the_node_defaults_and_help_shows_them(capsys):
    args = parse_arguments(["--images", "photos", "--out", "out"])
    for name, flag in SHARED_OPTIONS.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        assert value == default(name), flag
    assert (args.slop, args.queue_size, args.camera_names) == (default("slop_s"), default("queue_size"), ())
    with pytest.raises(SystemExit):
        parse_arguments(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--precision {auto,fp32,fp16,bf16,w4a16,int8,fp8}" in help_text
    assert "(default: auto)" in help_text and "(default: 518)" in help_text and "(default: 0.02)" in help_text


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--queue-size", "1000", "--queue-size must be in [1, 100] images, got 1000"),
        ("--queue-size", "0", "--queue-size must be in [1, 100] images, got 0"),
        ("--slop", "-1", "--slop must be a finite number of seconds > 0, got -1.0"),
    ],
)
def test_the_offline_sync_options_are_checked_at_parsing_under_their_own_names(capsys, option, value, message):
    """--queue-size 1000 ran although the help says 1..100; a bad --slop surfaced once the bag was read, as 'slop'."""
    with pytest.raises(SystemExit):
        parse_arguments(["--bag", "bag", "--topics", "/cam", "--out", "out", option, value])
    assert message in capsys.readouterr().err


def test_the_offline_command_imports_the_parameters_without_ros():
    code = "import sys, vggt_ros.offline, vggt_ros.live.parameters; print('rclpy' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr


@pytest.mark.parametrize(
    "values, message",
    [
        ({"slop_s": 0.0}, "slop_s must be a finite number of seconds > 0"),  # checked by the synchroniser
        ({"diagnostics_window_s": 0.0}, "diagnostics_window_s must be a finite number of seconds > 0"),
        ({"diagnostics_missed_warn_ratio": 2.0}, "diagnostics_missed_warn_ratio must be a fraction in [0, 1]"),
        ({"preprocess_mode": "stretch"}, "preprocess_mode must be one of ('crop', 'pad')"),  # SessionConfig's
        ({"backend": "jax"}, "unknown backend 'jax'"),  # RuntimeConfig's
        # WorldConfig's, MapConfig's, SessionConfig's, the keyframe policy's and the metric sources' own names
        ({"tracking_lost_after": 0}, "tracking_lost_after must be an int >= 1, got 0"),
        ({"alignment_min_inlier_ratio": 1.5}, "alignment_min_inlier_ratio must be in [0, 1], got 1.5"),
        ({"alignment_camera_weight": -1.0}, "alignment_camera_weight must be a number >= 0"),
        ({"map_voxel_size": 0.0}, "map_voxel_size must be a positive number of world units"),
        ({"keyframe_min_motion": 2.0}, "keyframe_min_motion must be in [0, 1]"),
        ({"odometry_min_translation_m": 0.0}, "odometry_min_translation_m must be a positive number of metres"),
        (
            {"depth_min_range_m": 0.5, "depth_max_range_m": 0.4},
            "depth_max_range_m must be a finite number of metres above depth_min_range_m (0.5), got 0.4",
        ),
    ],
)
def test_the_core_configs_check_the_values_under_the_parameters_names(values, message):
    with pytest.raises(ValueError) as err:
        NodeParameters(**values)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "values",
    [
        {"image_topics": ("/cam/image",), "depth_topics": ("/d0", "/d1")},  # one more than the cameras
        {"image_topics": ("/cam/image",), "depth_topics": ("/d0",)},
        {"image_topics": ("/left/image", "/right/image"), "depth_topics": ("/d0",), "metric_scale_source": "rig"},
        {"depth_topics": ("/d0",), "metric_scale_source": "odometry", "odom_frame": "odom"},
    ],
)
def test_depth_topics_without_the_depth_source_are_refused_naming_both_parameters_and_the_fix(values):
    """Only the depth source reads them: the node used to subscribe anyway, and a depth image on a topic past the
    cameras' count stopped it (IndexError in the subscription callback)."""
    with pytest.raises(ValueError) as err:
        NodeParameters(**values)
    source = values.get("metric_scale_source", "none")
    assert str(err.value) == (
        f"depth_topics {list(values['depth_topics'])} are read only with metric_scale_source 'depth', got "
        f"{source!r}: set metric_scale_source to 'depth' or leave depth_topics empty"
    )


def test_the_depth_source_still_needs_one_depth_topic_per_camera():
    assert NodeParameters(metric_scale_source="depth", depth_topics=("/d0",)).depth_topics == ("/d0",)
    with pytest.raises(ValueError, match=r"needs one depth topic per image topic .* got depth_topics \['/d0', '/d1'\]"):
        NodeParameters(metric_scale_source="depth", depth_topics=("/d0", "/d1"))


def test_the_rig_source_needs_two_or_more_cameras():
    """With one camera it has no baseline: the node used to start, publish nothing and warn at every window."""
    with pytest.raises(ValueError) as err:
        NodeParameters(image_topics=("/cam/image",), metric_scale_source="rig")
    assert str(err.value).startswith("metric_scale_source 'rig' needs 2 or more image_topics")
    assert "got ['/cam/image']" in str(err.value) and "use 'depth' or 'odometry' with one camera" in str(err.value)
    rig = NodeParameters(image_topics=("/left/image", "/right/image"), metric_scale_source="rig")
    assert rig.metric_config().source == "rig"


@pytest.mark.parametrize(
    "transform, message",
    [
        # Millimetres: 120 m; the scale then came out 1000 times off, reported as metric with a 0.5 % sigma.
        ((120.0, 0, 0, 0, 0, 0, 1), "rig_transforms: the rig's baselines are implausibly long (camera 1: 120 m;"),
        # w forgotten: the error named neither the parameter nor the camera.
        ((0.12, 0, 0, 0, 0, 0, 0), "rig_transforms: camera 1's rotation quaternion (qx qy qz qw) is zero"),
        # Too short to measure anything: the node started and waited for a scale for ever.
        ((0.0, 0, 0, 0, 0, 0, 1), "rig_transforms: camera 1's baseline to camera 0 is 0.0 m, shorter than 0.01 m"),
        ((0.005, 0, 0, 0, 0, 0, 1), "rig_transforms: camera 1's baseline to camera 0 is 0.005 m, shorter than 0.01"),
    ],
)
def test_rig_transforms_in_other_units_or_without_a_rotation_are_refused_naming_the_parameter(transform, message):
    with pytest.raises(ValueError) as err:
        NodeParameters(
            image_topics=("/left/image", "/right/image"), metric_scale_source="rig", rig_transforms=transform
        )
    assert str(err.value).startswith(message), str(err.value)
    rig = NodeParameters(image_topics=("/l", "/r"), metric_scale_source="rig", rig_transforms=(0.12, 0, 0, 0, 0, 0, 1))
    assert rig.rig_transforms


def test_rig_transforms_without_the_rig_source_are_refused_naming_both_parameters():
    """They were accepted and ignored, as depth_topics are not."""
    with pytest.raises(ValueError) as err:
        NodeParameters(image_topics=("/l", "/r"), rig_transforms=(0.12, 0, 0, 0, 0, 0, 1))
    assert str(err.value).startswith("rig_transforms are read only with metric_scale_source 'rig', got 'none'")


def test_the_same_image_topic_twice_is_refused():
    with pytest.raises(ValueError) as err:
        NodeParameters(image_topics=("/a", "/b", "/a"))
    assert (
        str(err.value)
        == "image_topics lists '/a' more than once, got ['/a', '/b', '/a']: give each camera its own topic"
    )


@pytest.mark.parametrize(
    "values, first, second, frame",
    [
        ({"world_frame": "camera0_optical"}, "world_frame", "the optical frame of camera 'camera0'", "camera0_optical"),
        (
            {"parent_frame": "camera0_optical"},
            "parent_frame",
            "the optical frame of camera 'camera0'",
            "camera0_optical",
        ),
        (
            {"image_topics": ("/l", "/r"), "camera_names": ("left", "right"), "parent_frame": "right_optical"},
            "parent_frame",
            "the optical frame of camera 'right'",
            "right_optical",
        ),
        ({"world_frame": "map", "parent_frame": "map"}, "world_frame", "parent_frame", "map"),
        ({"odom_frame": "odom", "robot_base_frame": "odom"}, "odom_frame", "robot_base_frame", "odom"),
        ({"odom_frame": "vggt_world", "robot_base_frame": "base_link"}, "world_frame", "odom_frame", "vggt_world"),
        ({"odom_frame": "map", "robot_base_frame": "base_link"}, "parent_frame", "odom_frame", "map"),
        ({"odom_frame": "odom", "robot_base_frame": "vggt_world"}, "world_frame", "robot_base_frame", "vggt_world"),
        ({"odom_frame": "odom", "robot_base_frame": "map"}, "parent_frame", "robot_base_frame", "map"),
        (
            {"odom_frame": "odom", "robot_base_frame": "camera0_optical"},
            "robot_base_frame",
            "the optical frame of camera 'camera0'",
            "camera0_optical",
        ),
        (
            {"metric_scale_source": "odometry", "odom_frame": "camera0_optical"},
            "odom_frame",
            "the optical frame of camera 'camera0'",
            "camera0_optical",
        ),
    ],
)
def test_each_frame_the_node_publishes_or_hangs_the_world_under_is_its_own(values, first, second, frame):
    """A shared frame id gives a frame two parents or makes it its own parent: the node used to publish that."""
    with pytest.raises(ValueError) as err:
        NodeParameters(**values)
    assert str(err.value).startswith(f"{first} and {second} are both {frame!r}: "), str(err.value)
    assert "rename one (world_frame, parent_frame, odom_frame, robot_base_frame or camera_names)" in str(err.value)


def test_frame_prefix_names_the_nodes_own_frames_and_leaves_the_given_ones():
    """As robot_state_publisher's frame_prefix: one robot's frames among several robots' on one /tf."""
    params = NodeParameters(
        frame_prefix="robot1/", camera_names=("left",), odom_frame="robot1/odom", robot_base_frame="robot1/base_link"
    )
    assert (params.world_frame_id, params.optical_frame(0)) == ("robot1/vggt_world", "robot1/left_optical")
    assert (params.parent_frame, params.odom_frame) == ("map", "robot1/odom")
    assert NodeParameters().world_frame_id == "vggt_world" and NodeParameters().optical_frame(0) == "camera0_optical"
    assert NodeParameters(frame_prefix="robot1/").start_up_warnings == ()
    # 'robot1' beside namespace:=robot1 is the natural slip: it runs, and says what it makes of it.
    (warning,) = NodeParameters(frame_prefix="robot1").start_up_warnings
    assert warning.startswith("frame_prefix 'robot1' does not end in '/': the node's frames are 'robot1vggt_world'")
    assert "Fix: frame_prefix 'robot1/'" in warning
    with pytest.raises(ValueError, match="frame_prefix '/robot1/': tf2 frame ids have no leading '/'"):
        NodeParameters(frame_prefix="/robot1/")
    with pytest.raises(ValueError, match="world_frame and robot_base_frame are both 'robot1/base'"):
        NodeParameters(frame_prefix="robot1/", world_frame="base", odom_frame="odom", robot_base_frame="robot1/base")


def test_robot_frames_left_empty_are_not_in_use():
    assert not NodeParameters().robot_frames  # both empty: no collision between them
    odometry = NodeParameters(metric_scale_source="odometry", odom_frame="odom")  # no base frame
    assert (odometry.odom_frame, odometry.robot_base_frame) == ("odom", "")
    robot = NodeParameters(odom_frame="odom", robot_base_frame="base_link")
    assert robot.robot_frames


def test_robot_frames_without_a_metric_scale_source_are_warned_about_with_the_fix():
    """They run, but the world's unit is VGGT's under the robot's metres: the base's path in map was off by the
    scale without a word."""
    (warning,) = NodeParameters(odom_frame="odom", robot_base_frame="base_link").start_up_warnings
    assert warning.startswith("robot frames ('odom', 'base_link') without a metric scale source: ")
    assert "Fix: set metric_scale_source to odometry" in warning
    metric = NodeParameters(metric_scale_source="odometry", odom_frame="odom", robot_base_frame="base_link")
    assert metric.start_up_warnings == ()
    assert NodeParameters().start_up_warnings == ()  # no robot frames: VGGT's unit is the documented default


def test_the_save_folder_expands_the_home_folder_as_a_shell_would(monkeypatch, tmp_path):
    """A YAML file or a launch argument passes '~/maps' as it is: saves went into a folder named '~'."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path / "..")
    assert NodeParameters(save_directory="~/maps").save_folder == tmp_path / "maps"
    assert NodeParameters(save_directory="maps").save_folder == tmp_path.parent / "maps"


@pytest.mark.parametrize(
    "values, error",
    [
        ({"trajectory_recent_keyframes": 15}, r"trajectory_recent_keyframes must be in \[16, 100000\]"),
        (
            {"trajectory_recent_keyframes": 20, "window_size": 12, "image_topics": ("/a", "/b")},
            r"trajectory_recent_keyframes must be >= window_size x cameras = 24 .*got 20",
        ),
        ({"trajectory_history_keyframes": 0}, r"trajectory_history_keyframes must be in \[1, 100000\]"),
        ({"depth_overlap_frame_sets": 0}, r"depth_overlap_frame_sets must be in \[1, 100000\]"),
    ],
)
def test_keyframe_bounds_are_those_documented_and_named_by_their_parameters(values, error):
    """The table said 1 and 0 were allowed where the world refused them, in the words of a field no parameter sets
    (retained_frames)."""
    with pytest.raises(ValueError, match=error):
        NodeParameters(**values).session_config()
    assert NodeParameters(depth_overlap_frame_sets=50).session_config().overlap_frame_sets == 7  # window_size - 1
