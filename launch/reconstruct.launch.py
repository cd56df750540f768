# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Launch the `vggt` reconstruction node (and RViz).

    ros2 launch vggt_ros reconstruct.launch.py image_topics:=/camera/image_raw weights:=facebook/VGGT-1B
    ros2 launch vggt_ros reconstruct.launch.py image_topics:=/left/image_raw,/right/image_raw \
        camera_names:=left,right backend:=tensorrt engine_dir:=/engines/350x518 rviz:=false

Every node parameter lives in the parameter file (default: this package's config/reconstruct.yaml); a launch
argument given on the command line overrides the file, an empty one leaves it alone. `namespace:=robot1` puts the
node (and its topics and services) under /robot1; `use_sim_time:=true` runs the node and RViz on /clock (a bag
played with `ros2 bag play --clock`).

Camera-sized images on sensor-data QoS need Fast DDS' LARGE_DATA transports in the camera driver and in this node
(see TRANSPORTS_VARIABLE in vggt_ros/ros/node.py), and Fast DDS processes with different transports do not
discover each other. So this file sets FASTDDS_BUILTIN_TRANSPORTS for every process launched after it: this node,
RViz, and a camera driver that a parent launch file includes after this one (includes are not scoped). A value
already in the environment is kept; `fastdds_builtin_transports:=DEFAULT` restores Fast DDS' defaults.
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription
from vggt_ros.live.parameters import describe
from vggt_ros.live.parameters import fields as parameter_fields

# Launch arguments that override a parameter of the same name when they are not empty.
_STRING_OVERRIDES = ("weights", "model_config", "backend", "device", "precision", "engine_dir", "frame_prefix")
_LIST_OVERRIDES = ("image_topics", "camera_names")  # comma-separated on the command line
_BOOL_OVERRIDES = ("loop_closure",)  # true or false (loop_closure:=false: a machine without gtsam)


def _use_sim_time(context) -> dict:
    """The use_sim_time launch argument as a parameter override (none when it is empty)."""
    value = LaunchConfiguration("use_sim_time").perform(context)
    return {"use_sim_time": value == "true"} if value else {}


def _reconstruction_node(context):
    parameters = [LaunchConfiguration("params_file").perform(context)]
    overrides = _use_sim_time(context)
    for name in _LIST_OVERRIDES:
        value = LaunchConfiguration(name).perform(context)
        items = [item.strip() for item in value.split(",") if item.strip()]
        if items:
            overrides[name] = items
    for name in _STRING_OVERRIDES:
        value = LaunchConfiguration(name).perform(context).strip()
        if value:
            overrides[name] = value
    for name in _BOOL_OVERRIDES:
        value = LaunchConfiguration(name).perform(context)
        if value:
            overrides[name] = value == "true"
    if overrides:
        parameters.append(overrides)
    return [
        Node(
            package="vggt_ros",
            executable="reconstruct_node",
            name="vggt",
            namespace=LaunchConfiguration("namespace").perform(context),
            output="screen",
            emulate_tty=True,
            parameters=parameters,
        )
    ]


def _rviz(context):
    return [
        Node(
            package="rviz2",
            executable="rviz2",
            name="rviz2",
            arguments=["-d", LaunchConfiguration("rviz_config").perform(context)],
            parameters=[_use_sim_time(context)],
            condition=IfCondition(LaunchConfiguration("rviz")),
            output="log",
        )
    ]


def generate_launch_description():
    share = FindPackageShare("vggt_ros")
    # The node parameters' descriptions come from their one declaration (vggt_ros/live/parameters.py).
    fields = {spec.name: spec for spec in parameter_fields()}
    arguments = [
        *(
            DeclareLaunchArgument(
                name,
                default_value="",
                description=describe(fields[name])
                + (" (comma separated)" if name in _LIST_OVERRIDES else "")
                + " (empty: from params_file)",
            )
            for name in (*_LIST_OVERRIDES, *_STRING_OVERRIDES)
        ),
        *(
            DeclareLaunchArgument(
                name,
                default_value="",
                choices=["", "true", "false"],
                description=describe(fields[name]) + " (empty: from params_file)",
            )
            for name in _BOOL_OVERRIDES
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([share, "config", "reconstruct.yaml"]),
            description="ROS 2 parameter file for the vggt node",
        ),
        DeclareLaunchArgument(
            "namespace", default_value="", description="namespace of the node, its topics and services (/robot1)"
        ),
        DeclareLaunchArgument(
            "use_sim_time",
            default_value="",
            choices=["", "true", "false"],
            description="the node and RViz on /clock, as a bag played with --clock gives it (empty: from params_file)",
        ),
        DeclareLaunchArgument("rviz", default_value="true", choices=["true", "false"], description="start RViz"),
        DeclareLaunchArgument(
            "rviz_config",
            default_value=PathJoinSubstitution([share, "config", "reconstruct.rviz"]),
            description="RViz configuration",
        ),
        DeclareLaunchArgument(
            "fastdds_builtin_transports",
            default_value=EnvironmentVariable("FASTDDS_BUILTIN_TRANSPORTS", default_value="LARGE_DATA"),
            description="FASTDDS_BUILTIN_TRANSPORTS for every process launched from here on, camera driver included "
            "(default: the environment's value, else LARGE_DATA, which camera-sized images need)",
        ),
    ]
    transports = SetEnvironmentVariable("FASTDDS_BUILTIN_TRANSPORTS", LaunchConfiguration("fastdds_builtin_transports"))
    return LaunchDescription(
        [*arguments, transports, OpaqueFunction(function=_reconstruction_node), OpaqueFunction(function=_rviz)]
    )
