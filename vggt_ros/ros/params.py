# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The node's ROS parameters: `vggt_ros.live.parameters.NodeParameters` declared on the node and read once.

Each field is declared read-only with its description (``ros2 param describe /vggt <name>`` shows it). What ROS
alone can check is checked here: topic names, parameter files whose sections do not reach this node, and parameter
names this node does not have; the values themselves are checked by `NodeParameters` and the core configurations.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import sys
from pathlib import Path
from typing import Any, Optional, Sequence, get_args, get_origin

import yaml
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterValueException, InvalidTopicNameException, ParameterException
from rclpy.expand_topic_name import expand_topic_name
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.validate_full_topic_name import validate_full_topic_name

from vggt_ros.live.parameters import RENAMED, NodeParameters, describe

# The console script (setup.py) and `ros2 run` name; the node itself is NODE_NAME (vggt).
EXECUTABLE = "reconstruct_node"
# Parameters every rclpy node declares itself.
_ROS_OWN_PARAMETERS = ("use_sim_time", "start_type_description_service")
_EMPTY_ARRAY_TYPES = {str: Parameter.Type.STRING_ARRAY, float: Parameter.Type.DOUBLE_ARRAY}


@dataclasses.dataclass(frozen=True)
class _FileSections:
    """What the --params-file arguments hold, by whom it is meant for."""

    own: frozenset[str]  # names under a section naming this node
    wildcard: frozenset[str]  # names under a wildcard section (/**), which every node of the process reads
    ignored: tuple[str, ...]  # what the node warns about: a file or section rcl ignores for it, and why


def declare_and_read(node: Node, argv: Optional[Sequence[str]] = None) -> NodeParameters:
    """Declare every parameter on ``node`` and return their values, "auto" device and precision resolved.

    ``argv``: the process arguments rclpy was initialised with (default sys.argv, as rclpy.init's): their parameter
    files tell names meant for this node from names a shared ``/**`` section holds for other nodes.

    Raises:
        ValueError: a value of the wrong type or out of range, naming the parameter and what it accepts.
    """
    log = node.get_logger()
    # What the parameter files and the command line gave (rclpy keeps it in a private attribute; no public API).
    overrides: dict[str, Parameter] = node._parameter_overrides
    given = dict(overrides)
    files = _parameter_files(sys.argv if argv is None else argv, node.get_fully_qualified_name())
    section = node.get_name() if node.get_namespace() == "/" else node.get_fully_qualified_name()
    for ignored in files.ignored:
        log.warning(f"{ignored}; key this node's parameters under '{section}:' or '/**:'")
    # Names only a shared wildcard section gives: another node's as likely as ours.
    shared_only = files.wildcard - files.own - _command_line_names(argv)
    for old, new in RENAMED.items():
        if old not in given:
            continue
        if new in given:
            if old in shared_only:
                continue  # this node's own name wins; the shared section's old name is another node's
            raise ValueError(f"'{old}' and '{new}' are both given: '{old}' is the old name of '{new}'; keep '{new}'")
        where = (
            f" (from a shared '/**' section: if it is another node's, give '{new}' under '{section}:')"
            if old in shared_only
            else ""
        )
        log.warning(f"parameter '{old}' is now named '{new}' (with its unit): its value is used; rename it{where}")
        overrides[new] = Parameter(new, given[old].type_, given[old].value)
        given[new] = overrides[new]
    known = {spec.name for spec in dataclasses.fields(NodeParameters)} | set(_ROS_OWN_PARAMETERS) | set(RENAMED)
    # Another node's parameters in a shared wildcard section are not ours to judge, but a near miss of one of ours
    # is most likely a typo of it (the cutoff keeps other nodes' usual names, e.g. height or exposure, quiet).
    for name in sorted(set(given) & shared_only - known):
        if close := difflib.get_close_matches(name, known, 1, cutoff=0.85):
            log.warning(
                f"parameter '{name}' in a shared '/**' section is not this node's (did you mean '{close[0]}'?); "
                "it is left to the other nodes"
            )
    unknown = sorted(set(given) - known - shared_only)
    if unknown:
        hints = [
            f"'{name}'"
            + (f" (did you mean '{close[0]}'?)" if (close := difflib.get_close_matches(name, known, 1)) else "")
            for name in unknown
        ]
        raise ValueError(f"unknown parameter {', '.join(hints)}; every parameter is listed in docs/parameters.md")
    values: dict[str, Any] = {}
    for spec in dataclasses.fields(NodeParameters):
        default = spec.default
        descriptor = ParameterDescriptor(description=describe(spec), read_only=True)
        _set_range(descriptor, default, spec.metadata["bounds"])
        # rclpy infers a type from the default; an empty list would become a byte array, so declare the type.
        declared = (
            _EMPTY_ARRAY_TYPES[spec.type.__args__[0]]
            if default == ()
            else (list(default) if isinstance(default, tuple) else default)
        )
        try:
            try:
                value = node.declare_parameter(spec.name, declared, descriptor).value
            except InvalidParameterValueException:
                # Outside the descriptor's range: declared without it, so that the bounds check of NodeParameters
                # says why, in the same words for every way a value arrives.
                descriptor.integer_range, descriptor.floating_point_range = [], []
                value = node.declare_parameter(spec.name, declared, descriptor).value
        except ParameterException as err:
            raise ValueError(f"parameter '{spec.name}': {err}. {expected_type(spec.type, spec.name)}") from None
        if value is None:  # declared by type only and not given, or given as an empty list (YAML [] has no type)
            value = () if spec.name in given and isinstance(default, tuple) else default
            if value == () and isinstance(declared, Parameter.Type):
                # An unset parameter makes rclpy's get_parameters service answer nothing for the whole request
                # (`ros2 param get`, `ros2 param dump`), and rclpy has no public way to declare an empty typed
                # array: set the declared one directly.
                node._parameters[spec.name] = Parameter(spec.name, declared, [])
        values[spec.name] = tuple(value) if isinstance(default, tuple) else value
    compressed = values["image_transport"] == "compressed"
    for name in ("image_topics", "depth_topics"):
        for topic in values[name]:
            _check_topic(node, name, f"{topic}/compressed" if compressed and name == "image_topics" else topic, topic)
    _check_topics_are_distinct(node, values["image_topics"], values["depth_topics"], compressed)
    params = NodeParameters(**values)
    for warning in params.start_up_warnings:
        log.warning(warning)
    resolved = params.runtime_config().resolve()
    resolved.log(log)
    return dataclasses.replace(params, device=resolved.config.device, precision=resolved.config.precision)


def expected_type(kind: Any, name: str = "") -> str:
    """How a parameter of type ``kind`` (a NodeParameters field's annotation, or bool) is written, on the command
    line and in YAML: the fix for rcl refusing a value of another type (``name``: a list's, for its example)."""
    if get_origin(kind) is tuple:
        numbers = get_args(kind)[0] is float
        example = "[0.0, 1.5]" if numbers else "[a, b]"
        return f'Expected a list, in YAML {example} and on the command line -p {name}:="{example}"' + (
            " (numbers with a decimal point)" if numbers else ""
        )
    if kind is bool:
        return "Expected true or false, unquoted"
    if kind is int:
        return "Expected a whole number, e.g. 8 (no decimal point, no quotes)"
    if kind is float:
        return "Expected a number with a decimal point, e.g. 1.0"
    return "Expected a string (quote a value YAML reads as a number or a boolean, e.g. '123')"


def _check_topic(node: Node, parameter: str, topic: str, given: str) -> None:
    """ValueError naming the parameter and what is wrong unless ``topic`` resolves to a valid topic name."""
    try:
        validate_full_topic_name(expand_topic_name(topic, node.get_name(), node.get_namespace()))
    except (InvalidTopicNameException, ValueError) as err:
        # rcl's text without its source location and the caret diagram below it
        reason = str(err).split(", at ")[0].splitlines()[0].rstrip(":")
        reason = reason.removeprefix("Invalid topic name: ").removeprefix(f"topic name '{topic}' is invalid: ")
        raise ValueError(
            f"{parameter}: {given!r} is not a valid ROS topic name ({reason}); a topic name is tokens of "
            "letters, digits and '_' joined by single '/', e.g. /camera/image_raw"
        ) from None


def _check_topics_are_distinct(
    node: Node, image_topics: Sequence[str], depth_topics: Sequence[str], compressed: bool
) -> None:
    """ValueError unless every image and depth topic resolves (namespace, remapping) to its own name: 'image' and
    '/image' in the root namespace, or a depth topic equal to an image topic, would feed one stream to two inputs."""
    named = [(f"image_topics {t!r}", f"{t}/compressed" if compressed else t) for t in image_topics]
    named += [(f"depth_topics {t!r}", t) for t in depth_topics]
    owner: dict[str, str] = {}
    for source, topic in named:
        resolved = node.resolve_topic_name(topic)
        if resolved in owner:
            raise ValueError(
                f"{owner[resolved]} and {source} both resolve to {resolved!r}: each camera and each depth image needs "
                "its own topic"
            )
        owner[resolved] = source


def _ros_arguments(argv: Sequence[str]) -> list[str]:
    """The arguments inside --ros-args ... [--] blocks."""
    inside, out = False, []
    for arg in argv:
        if arg == "--ros-args":
            inside = True
        elif arg == "--":
            inside = False
        elif inside:
            out.append(arg)
    return out


def _command_line_names(argv: Optional[Sequence[str]]) -> frozenset[str]:
    args = _ros_arguments(sys.argv if argv is None else argv)
    return frozenset(
        value.split(":=")[0] for flag, value in zip(args, args[1:]) if flag in ("-p", "--param") and ":=" in value
    )


def _parameter_files(argv: Sequence[str], node_name: str) -> _FileSections:
    args = _ros_arguments(argv)
    own: set[str] = set()
    wildcard: set[str] = set()
    ignored: list[str] = []
    for flag, path in zip(args, args[1:]):
        if flag != "--params-file":
            continue
        try:
            content = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError):
            continue  # rcl itself has refused such a file with its own message before the node starts
        sections = content if isinstance(content, dict) else {}
        others = []
        for section, body in sections.items():
            names = _flatten((body or {}).get("ros__parameters", {})) if isinstance(body, dict) else set()
            pattern = str(section)
            if not _section_matches(pattern, node_name):
                others.append(pattern)
            elif "*" in pattern:
                wildcard |= names
            else:
                own |= names
        # A shared file has sections for other nodes; one keyed by the executable is a mistake worth naming.
        if EXECUTABLE in others or (others and len(others) == len(sections)):
            named = EXECUTABLE if EXECUTABLE in others else ", ".join(others)
            ignored.append(
                f"parameter file {path}: section '{named}' names "
                + ("the executable, not the node" if named == EXECUTABLE else "other nodes")
                + f" ('{node_name}'), so this node ignores it"
            )
    return _FileSections(frozenset(own), frozenset(wildcard), tuple(ignored))


def _flatten(parameters: Any, prefix: str = "") -> set[str]:
    """Parameter names of a ros__parameters mapping (nested mappings are dotted names, as rcl reads them)."""
    if not isinstance(parameters, dict):
        return set()
    names: set[str] = set()
    for key, value in parameters.items():
        name = f"{prefix}{key}"
        names |= _flatten(value, f"{name}.") if isinstance(value, dict) else {name}
    return names


def _section_matches(section: str, node_name: str) -> bool:
    """Whether rcl applies a parameter file section (a node name, '*' one token, '**' any tokens) to ``node_name``
    (fully qualified, e.g. /vggt)."""
    tokens = section.lstrip("/").split("/")
    pattern = "".join("(/[^/]+)*" if t == "**" else "/" + re.escape(t).replace(r"\*", "[^/]*") for t in tokens)
    return re.fullmatch(pattern, node_name) is not None


def _set_range(descriptor: ParameterDescriptor, default: Any, bounds: Optional[tuple[float, float]]) -> None:
    """Give a bounded number's descriptor its range, which `ros2 param describe` and rqt show (the description
    says it in words too)."""
    if bounds is None or isinstance(default, bool):
        return
    if isinstance(default, int):
        descriptor.integer_range = [IntegerRange(from_value=int(bounds[0]), to_value=int(bounds[1]), step=0)]
    elif isinstance(default, float):
        descriptor.floating_point_range = [
            FloatingPointRange(from_value=float(bounds[0]), to_value=float(bounds[1]), step=0.0)
        ]


def ros_arguments_fix(reason: str) -> str:
    """The fix for rcl refusing the command line's --ros-args (``reason``: rcl's message)."""
    if "Sequence should be of same type" in reason:  # rcl's YAML parser: a list of items of several types
        # rcl names only the type that did not belong: 'integer' among doubles ([0.12, 0, ...]) or among strings
        # ([left, 2]) reads the same.
        return (
            "a list's items must be of one type: write each number of a list of numbers with a decimal point, "
            'e.g. -p rig_transforms:="[0.12, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]" (0 is an integer, 0.0 a number), and '
            "quote a name that looks like a number in a list of names, e.g. camera_names: [left, '2']"
        )
    if "remap rule" in reason:
        return "write a remapping as -r from:=to, e.g. -r /camera/image_raw:=/left/image_raw or -r __ns:=/robot"
    if "param" in reason and "file" in reason:
        return "check the file exists and is valid YAML (see config/reconstruct.yaml)"
    if "param" in reason:
        return "write a parameter as -p name:=value, e.g. -p window_size:=8"
    return "check the --ros-args syntax: -p name:=value, -r from:=to, --params-file FILE"
