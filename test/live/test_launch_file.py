# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""launch/reconstruct.launch.py's own logic: which node it starts, under which namespace and with which parameters.

ROS 2's `launch` and `launch_ros` have no PyPI wheel, so the launch file runs here
against small test doubles of the classes it uses: they record what the file asks for, and a launch context double
answers each `LaunchConfiguration` with the launch argument's value (its default unless given)."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

LAUNCH_FILE = Path(__file__).resolve().parents[2] / "launch" / "reconstruct.launch.py"


class RecordedForTests:
    """Test double of a launch action or substitution: keeps its arguments."""

    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs


class LaunchConfigurationForTests(RecordedForTests):
    def perform(self, context) -> str:
        return context.values[self.args[0]]


class LaunchContextForTests:
    """Test double of a launch context: the launch arguments' values."""

    def __init__(self, declared: dict[str, str], given: dict[str, str]) -> None:
        self.values = {**declared, **given}


@pytest.fixture
def launch_file(monkeypatch):
    """The launch file's module, imported against the test doubles of launch and launch_ros."""
    modules = {
        "launch": {"LaunchDescription": RecordedForTests},
        "launch.actions": {
            name: RecordedForTests for name in ("DeclareLaunchArgument", "OpaqueFunction", "SetEnvironmentVariable")
        },
        "launch.conditions": {"IfCondition": RecordedForTests},
        "launch.substitutions": {
            "EnvironmentVariable": RecordedForTests,
            "LaunchConfiguration": LaunchConfigurationForTests,
            "PathJoinSubstitution": RecordedForTests,
        },
        "launch_ros": {},
        "launch_ros.actions": {"Node": RecordedForTests},
        "launch_ros.substitutions": {"FindPackageShare": RecordedForTests},
    }
    for name, attributes in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("reconstruct_launch_for_tests", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _launch(module, **given: str):
    """The nodes the launch file starts with launch arguments ``given``: (vggt Node, rviz Node) kwargs."""
    description = module.generate_launch_description()
    entities = description.args[0]
    declared = {
        entity.args[0]: entity.kwargs.get("default_value", "")
        for entity in entities
        if isinstance(entity, RecordedForTests) and entity.kwargs.get("description") is not None
    }
    assert set(given) <= set(declared), f"not launch arguments: {set(given) - set(declared)}"
    context = LaunchContextForTests({k: v if isinstance(v, str) else "" for k, v in declared.items()}, given)
    functions = [entity.kwargs["function"] for entity in entities if "function" in entity.kwargs]
    return [function(context)[0].kwargs for function in functions]


def test_namespace_and_use_sim_time_reach_the_node_and_rviz(launch_file):
    """Two robots' nodes need a namespace each, and a bag played with --clock needs use_sim_time: neither was a
    launch argument (only a parameter file could set use_sim_time, and nothing the namespace)."""
    node, rviz = _launch(launch_file, namespace="robot1", use_sim_time="true", image_topics="/a/image,/b/image")
    assert node["name"] == "vggt" and node["namespace"] == "robot1"
    overrides = node["parameters"][1]
    assert overrides == {"use_sim_time": True, "image_topics": ["/a/image", "/b/image"]}
    assert rviz["parameters"] == [{"use_sim_time": True}]


def test_empty_launch_arguments_leave_the_parameter_file_alone(launch_file):
    node, rviz = _launch(launch_file)
    assert node["namespace"] == "" and len(node["parameters"]) == 1  # the parameter file only
    assert rviz["parameters"] == [{}]


def test_loop_closure_false_turns_it_off_for_a_machine_without_gtsam(launch_file):
    """docs/loop_closure.md says the node starts with `loop_closure:=false` where gtsam is missing; it was no launch
    argument (pass M), so `ros2 launch ... loop_closure:=false` could not turn it off."""
    node, _ = _launch(launch_file, loop_closure="false")
    assert node["parameters"][1] == {"loop_closure": False}
    node, _ = _launch(launch_file, loop_closure="true")
    assert node["parameters"][1] == {"loop_closure": True}
