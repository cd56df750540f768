# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The node's start-up over rclpy with its parameters: renamed names, "auto" device and precision, camera names
from the topics, bounds, topic names, shared parameter files and the command line's fixes.

Each case starts the node as `ros2 run` does (`python -m vggt_ros.ros.node --ros-args ...`), so DDS must stay on
this machine: run through tools/run_tests.sh (a loopback-only network namespace).
"""

import dataclasses
import subprocess
from pathlib import Path

import pytest
import rclpy
from rclpy.exceptions import InvalidTopicNameException
from rclpy.parameter import Parameter
from rclpy.validate_full_topic_name import validate_full_topic_name

from conftest import TINY
from support.netns import require_loopback_only
from support.node_process import node_command, start_then_interrupt
from vggt_ros.live.parameters import NodeParameters
from vggt_ros.ros.node import ReconstructionNode

pytestmark = [pytest.mark.ros, pytest.mark.timeout(180)]

NODE = node_command({"weights": TINY, "image_size": 154})


@pytest.fixture(scope="module", autouse=True)
def loopback_only():
    require_loopback_only(__file__)


def fails_to_start(*ros_args: str) -> str:
    """The node's output when it refuses to start: exactly one FATAL line, exit code 1, no traceback."""
    result = subprocess.run([*NODE, *ros_args], capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert len([line for line in output.splitlines() if "FATAL" in line]) == 1, output
    assert "Traceback" not in output
    return output


def starts(*ros_args: str) -> str:
    """The node's output from start-up until it listens, then stopped with Ctrl-C (exit code 0)."""
    output = start_then_interrupt([*NODE, *ros_args], "listening to", start_timeout_s=90, exit_timeout_s=30)
    assert "Traceback" not in output and "FATAL" not in output, output
    return output


@pytest.fixture(scope="module")
def shared_files(tmp_path_factory) -> tuple[Path, Path, Path, Path]:
    folder = tmp_path_factory.mktemp("params")
    shared = folder / "robot.yaml"  # one file for the robot's nodes, as launch files often pass it to every node
    shared.write_text(
        "/**:\n  ros__parameters:\n    use_sim_time: false\n    publish_rate_hz: 30.0\n    frame_prefix: ''\n"
        "    input_timeout: 4.0\n    height: 480\n"
        "camera_driver:\n  ros__parameters:\n    exposure: 10\n"
    )
    by_executable = folder / "by_executable.yaml"  # keyed by the executable, not the node: rcl ignores it
    by_executable.write_text("reconstruct_node:\n  ros__parameters:\n    window_size: 4\n")
    for_others = folder / "for_others.yaml"  # not one section for this node: likely meant for it
    for_others.write_text("lidar_driver:\n  ros__parameters:\n    rate: 10\n")
    # A robot-wide file: a sync node's own 'slop' (this node's old name) and a typo of one of ours, shared by every
    # node, and this node's section with its own value.
    robot_wide = folder / "robot_wide.yaml"
    robot_wide.write_text(
        "/**:\n  ros__parameters:\n    slop: 0.1\n    windows_size: 4\nvggt:\n  ros__parameters:\n    slop_s: 0.05\n"
    )
    return shared, by_executable, for_others, robot_wide


@pytest.fixture(scope="module")
def started(shared_files) -> str:
    """One start-up for the cases that start: auto device, names from topics, a shared file, an old name, robot
    frames without a metric scale source."""
    shared, by_executable, for_others, robot_wide = shared_files
    return starts(
        "--params-file",
        str(shared),
        "--params-file",
        str(by_executable),
        "--params-file",
        str(for_others),
        "--params-file",
        str(robot_wide),
        "-p",
        "image_topics:=[/left/image_raw, /right/image_raw]",
        "-p",
        "camera_names_from_topics:=true",
        "-p",
        "window_size:=3",
        "-p",
        "odom_frame:=odom",
        "-p",
        "robot_base_frame:=base_link",
    )


def test_auto_device_without_a_gpu_runs_on_the_cpu_with_one_warning_and_logs_the_choice(started):
    assert started.count("device auto: torch sees no CUDA GPU, so inference runs on the CPU") == 1, started
    assert "device auto -> cpu, precision auto -> fp32" in started
    assert "backend torch on cpu" in started


def test_explicit_device_and_precision_are_kept():
    rclpy.init()
    try:
        node = ReconstructionNode(
            parameter_overrides=[
                Parameter("weights", value=str(TINY)),
                Parameter("image_size", value=154),
                Parameter("device", value="cpu"),
                Parameter("precision", value="bf16"),
            ]
        )
        try:
            assert (node.params.device, node.params.precision) == ("cpu", "bf16")
            assert node._live.session.pipeline.device.type == "cpu"
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown()


def test_bounded_parameters_carry_their_range_for_ros2_param_describe():
    """The bounds lived only in the description text (pass L): `ros2 param describe` and rqt read the descriptor's
    integer_range and floating_point_range. An out-of-range value still gets the node's own message (the
    parametrised cases above)."""
    rclpy.init()
    try:
        node = ReconstructionNode(
            parameter_overrides=[Parameter("weights", value=str(TINY)), Parameter("image_size", value=154)]
        )
        try:
            window, period, names = node.describe_parameters(["window_size", "map_publish_period_s", "camera_names"])
            assert [(r.from_value, r.to_value, r.step) for r in window.integer_range] == [(2, 64, 0)]
            assert [(r.from_value, r.to_value) for r in period.floating_point_range] == [(0.01, 3600.0)]
            assert not names.integer_range and not names.floating_point_range
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown()


def test_robot_frames_without_a_metric_scale_source_get_one_warning_with_the_fix(started):
    assert started.count("robot frames ('odom', 'base_link') without a metric scale source") == 1, started
    assert "Fix: set metric_scale_source to odometry" in started


def test_camera_names_come_from_the_topics(started):
    assert "listening to ['/left/image_raw', '/right/image_raw'] as ['left', 'right']" in started


def test_another_nodes_parameters_in_a_shared_wildcard_file_are_ignored(started):
    assert "window 3 (stride 1)" in started  # the node's own value, read with the shared file present
    assert "publish_rate_hz" not in started and "unknown parameter" not in started


def test_an_old_parameter_name_is_read_with_one_warning(started):
    assert started.count("parameter 'input_timeout' is now named 'input_timeout_s'") == 1, started
    # it came from a shared section, where it may be another node's: the warning says how to keep it from this node
    assert "(from a shared '/**' section: if it is another node's, give 'input_timeout_s' under 'vggt:')" in started


def test_a_shared_sections_old_name_gives_way_to_this_nodes_own_section(started):
    """A sync node's 'slop' in a robot-wide '/**' section stopped this node ("'slop' and 'slop_s' are both
    given ... keep 'slop_s'"), though its own section gave slop_s and removing 'slop' would break the other node."""
    assert "'slop' and 'slop_s' are both given" not in started
    assert "parameter 'slop' is now named" not in started


def test_a_typo_of_one_of_ours_in_a_shared_section_is_named(started):
    """A misspelt key under '/**', the shipped file's layout, was ignored without a word (the default used)."""
    warning = "parameter 'windows_size' in a shared '/**' section is not this node's (did you mean 'window_size'?)"
    assert started.count(warning) == 1, started
    assert "'height'" not in started  # another node's usual name in the shared section, not near any of ours


def test_a_file_keyed_by_the_executable_name_is_reported_as_ignored(started):
    line = next((line for line in started.splitlines() if "section 'reconstruct_node'" in line), started)
    assert "names the executable, not the node ('/vggt'), so this node ignores it" in line
    assert "key this node's parameters under 'vggt:' or '/**:'" in line
    assert started.count("section 'reconstruct_node'") == 1
    assert "camera_driver" not in started  # a shared file's sections for other nodes are normal
    assert "section 'lidar_driver' names other nodes ('/vggt'), so this node ignores it" in started


def test_unknown_parameters_under_the_nodes_own_name_are_still_refused(tmp_path):
    own = tmp_path / "vggt.yaml"
    own.write_text(
        "/**:\n  ros__parameters:\n    publish_rate_hz: 30.0\nvggt:\n  ros__parameters:\n    windows_size: 3\n"
    )
    output = fails_to_start("--params-file", str(own))
    assert "unknown parameter 'windows_size' (did you mean 'window_size'?)" in output
    assert "publish_rate_hz" not in output


@pytest.mark.parametrize(
    "given", ["-p use_sim_time:=1", "yaml use_sim_time: 'true'", "-p start_type_description_service:=1"]
)
def test_rclpys_own_parameters_of_the_wrong_type_are_one_fatal_line_with_the_fix(given, tmp_path):
    """rclpy declares these itself in the node's constructor, outside the node's checks: a traceback before."""
    if given.startswith("yaml"):
        path = tmp_path / "sim.yaml"
        path.write_text(f"/**:\n  ros__parameters:\n    {given.removeprefix('yaml ')}\n")
        args = ("--params-file", str(path))
    else:
        args = tuple(given.split())
    output = fails_to_start(*args)
    fatal = next(line for line in output.splitlines() if "FATAL" in line)
    name = "start_type_description_service" if "type_description" in given else "use_sim_time"
    assert f"bad parameter: Trying to set parameter '{name}'" in fatal, output
    assert "expecting type 'BOOL'" in fatal and "Expected true or false, unquoted" in fatal, output


@pytest.mark.parametrize(
    "given, fix",
    [
        ("image_topics:=/a", 'Expected a list, in YAML [a, b] and on the command line -p image_topics:="[a, b]"'),
        ("publish_tf:='false'", "Expected true or false, unquoted"),
        ("window_size:=4.0", "Expected a whole number, e.g. 8 (no decimal point, no quotes)"),
        ("slop_s:=1", "Expected a number with a decimal point, e.g. 1.0"),
        ("rig_transforms:=[1, 2]", "(numbers with a decimal point)"),
    ],
)
def test_a_value_of_the_wrong_type_gets_the_fix_for_its_type(given, fix):
    """Every type error said "Expected a tuple (write floats with a decimal point, e.g. 1.0)", lists and booleans
    alike."""
    fatal = next(line for line in fails_to_start("-p", given).splitlines() if "FATAL" in line)
    assert fix in fatal
    assert "tuple" not in fatal


def test_under_a_namespace_the_fix_names_the_section_rcl_applies_and_the_log_the_topic_listened_to(tmp_path):
    """Under __ns:=/robot1 a 'vggt:' section is ignored by rcl, and the warning's fix was to key it under 'vggt:';
    the start-up line named the topics as given, not as the node subscribed to them."""
    plain = tmp_path / "plain.yaml"
    plain.write_text("vggt:\n  ros__parameters:\n    window_size: 4\n")
    output = starts("-r", "__ns:=/robot1", "--params-file", str(plain), "-p", "image_topics:=[camera/image_raw]")
    assert "key this node's parameters under '/robot1/vggt:' or '/**:'" in output
    assert "listening to ['/robot1/camera/image_raw']" in output
    # /tf is one tree for every robot: the namespace does not reach the frame ids, and the log says how to.
    assert "frame ids are not namespaced: with several robots on one /tf, set frame_prefix, e.g. 'robot1/'" in output


@pytest.mark.parametrize("where", ["command line", "params file"])
def test_an_integer_among_floats_gets_the_decimal_point_fix(where, tmp_path):
    """rcl refuses [0.12, 0, ...] ("Sequence should be of same type"), and the fix said to write -p name:=value (or
    to check that the file is valid YAML), which it was."""
    values = "[0.12, 0, 0, 0, 0, 0, 1]"
    if where == "command line":
        arguments = ("-p", f"rig_transforms:={values}")
    else:
        file = tmp_path / "rig.yaml"
        file.write_text(f"vggt:\n  ros__parameters:\n    rig_transforms: {values}\n")
        arguments = ("--params-file", str(file))
    fatal = next(line for line in fails_to_start(*arguments).splitlines() if "FATAL" in line)
    assert (
        "Fix: a list's items must be of one type: write each number of a list of numbers with a decimal point" in fatal
    )


def test_a_number_among_names_gets_the_quoting_fix(tmp_path):
    """camera_names: [left, 2] got only the advice to write numbers with a decimal point (pass L): rcl names just
    the type that did not belong, so the fix gives both ways out."""
    file = tmp_path / "names.yaml"
    file.write_text("vggt:\n  ros__parameters:\n    image_topics: [/a/image, /b/image]\n    camera_names: [left, 2]\n")
    fatal = next(line for line in fails_to_start("--params-file", str(file)).splitlines() if "FATAL" in line)
    assert "quote a name that looks like a number in a list of names, e.g. camera_names: [left, '2']" in fatal


def test_old_and_new_name_together_are_refused():
    output = fails_to_start("-p", "slop:=0.01", "-p", "slop_s:=0.02")
    assert "'slop' and 'slop_s' are both given: 'slop' is the old name of 'slop_s'; keep 'slop_s'" in output


@pytest.mark.parametrize(
    "parameter, bound",
    [
        ("queue_size:=100000000", "queue_size must be in [1, 100] images"),
        ("save_dataset_frames:=100000", "save_dataset_frames must be in [0, 500] keyframes"),
        ("max_image_pixels:=0", "max_image_pixels must be in [1, 134217728] pixels"),
    ],
)
def test_sizes_beyond_their_bound_are_refused_at_start_up(parameter, bound):
    assert bound in fails_to_start("-p", parameter)


@pytest.mark.parametrize(
    "topic, reason",
    [
        ("/cam//image", "topic name must not contain repeated '/'"),
        ("//cam", "topic name must not contain repeated '/'"),
        ("{bogus}/img", "unknown substitution: {bogus}"),
    ],
)
def test_an_invalid_topic_name_is_one_fatal_line_that_says_why(topic, reason):
    output = fails_to_start("-p", f"image_topics:=['{topic}']")
    fatal = next(line for line in output.splitlines() if "FATAL" in line)
    assert f"image_topics: '{topic}' is not a valid ROS topic name ({reason})" in fatal, output


@pytest.mark.parametrize(
    "ros_args, fix",
    [
        (("-r", "foo"), "Fix: write a remapping as -r from:=to"),
        (("-p", "foo"), "Fix: write a parameter as -p name:=value"),
        (("--params-file", "/nonexistent/params.yaml"), "Fix: check the file exists and is valid YAML"),
    ],
)
def test_a_command_line_rcl_refuses_gets_the_fix_for_its_cause(ros_args, fix):
    output = fails_to_start(*ros_args)
    assert fix in output
    if "--params-file" not in ros_args:
        assert "YAML" not in output


def _rclpy_takes_as_a_topic_token(name: str) -> bool:
    """rclpy's own validator on the topic a camera of that name publishes its depth on (the node is /vggt)."""
    try:
        validate_full_topic_name(f"/vggt/{name}/depth/image")
    except InvalidTopicNameException:
        return False
    return True


@pytest.mark.parametrize(
    "name", ["left", "left_cam", "_rear", "Cam2", "a__b", "left-cam", "1left", "a.b", "", "a b", "é", "x~", "{node}"]
)
def test_a_camera_name_is_accepted_exactly_when_rclpy_takes_it_as_a_topic_token(name):
    """Camera names become topic tokens (~/<name>/depth/image) and frame ids (<name>_optical): a name rclpy refuses
    used to pass start-up's check and stop configure with an empty FATAL line."""
    expected = _rclpy_takes_as_a_topic_token(name)
    try:
        NodeParameters(image_topics=("/cam0/image", "/cam1/image"), camera_names=(name, "other"))
    except ValueError as err:
        assert not expected, f"{name!r} is a valid topic token, refused: {err}"
        assert "camera_names must be distinct ROS name tokens (letters, digits and '_', not starting with a digit" in (
            str(err)
        )
    else:
        assert expected, f"{name!r} is no valid topic token, accepted"


@pytest.mark.parametrize(
    "ros_args, message",
    [
        (
            ("image_topics:=[/left/image, /right/image]", "camera_names:=[left-cam, right]"),
            "camera_names must be distinct ROS name tokens",
        ),
        (("input_timeout_s:=100000000000.0",), "input_timeout_s must be in [0.1, 3600.0] s, got 100000000000.0"),
        (("map_publish_period_s:=inf",), "map_publish_period_s must be in [0.01, 3600.0] s, got inf"),
        (
            ("image_topics:=[/cam/image]", "depth_topics:=[/d0, /d1]"),
            "depth_topics ['/d0', '/d1'] are read only with metric_scale_source 'depth'",
        ),
    ],
    ids=["camera name", "input timeout", "map period", "depth topics"],
)
def test_values_the_node_cannot_run_with_are_one_fatal_line_that_names_them(ros_args, message):
    """Each of these used to pass start-up's checks: the first three then ended start-up with an empty FATAL line
    (rclpy refused the topic or the timer inside configure), the last started and died at the first depth image."""
    output = fails_to_start(*(arg for value in ros_args for arg in ("-p", value)))
    fatal = next(line for line in output.splitlines() if "FATAL" in line)
    assert message in fatal, output


def test_every_parameter_answers_ros2_param_get_and_dump_empty_lists_included():
    """camera_names, depth_topics and rig_transforms (default []) were declared by type only: unset, so rclpy's
    get_parameters service answered nothing for any request naming one, and `ros2 param dump` got nothing."""
    from rcl_interfaces.msg import ParameterType
    from rcl_interfaces.srv import GetParameters
    from rclpy.executors import SingleThreadedExecutor

    names = [spec.name for spec in dataclasses.fields(NodeParameters)]
    rclpy.init()
    try:
        node = ReconstructionNode(
            parameter_overrides=[Parameter("weights", value=str(TINY)), Parameter("autostart", value=False)]
        )
        client_node = rclpy.create_node("param_client_for_tests")
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.add_node(client_node)
        try:
            client = client_node.create_client(GetParameters, f"{node.get_fully_qualified_name()}/get_parameters")
            future = client.call_async(GetParameters.Request(names=names))
            executor.spin_until_future_complete(future, timeout_sec=30.0)
            values = dict(zip(names, future.result().values))
        finally:
            executor.shutdown()
            client_node.destroy_node()
            node.destroy_node()
    finally:
        rclpy.shutdown()
    assert sorted(values) == sorted(names), f"no values for {sorted(set(names) - set(values))}"
    for name, array_type in (
        ("camera_names", ParameterType.PARAMETER_STRING_ARRAY),
        ("depth_topics", ParameterType.PARAMETER_STRING_ARRAY),
        ("rig_transforms", ParameterType.PARAMETER_DOUBLE_ARRAY),
    ):
        assert values[name].type == array_type and not values[name].string_array_value, name
    assert values["window_size"].integer_value == NodeParameters.window_size
