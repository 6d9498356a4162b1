# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Start the DenseFlow localizer node.

ros2 launch denseflow_ros localize.launch.py params_file:=/path/x.yaml \
    model_path:=/path/model.pt tile_cache:=/path/tiles.mbtiles namespace:=car \
    image:=/camera/image_raw camera_info:=/camera/camera_info fix:=/gps/fix imu:=/imu/data

Arguments left empty keep the params file's values. The node configures and activates itself
(``autostart: true``); with ``autostart:=false`` a lifecycle manager (e.g. Nav2's) drives it.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode

try:
    from ament_index_python.packages import get_package_share_directory

    _DEFAULT_PARAMS = get_package_share_directory("denseflow_ros") + "/config/localize.yaml"
except Exception:  # noqa: BLE001 - launched from a source tree without an install
    _DEFAULT_PARAMS = ""

# Input and output topics that can be remapped from the command line.
TOPICS = ("image", "image/compressed", "camera_info", "fix", "imu", "odom", "pose",
          "fix_refined")


def _launch_setup(context, *args, **kwargs):
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    params: list = [arg("params_file")] if arg("params_file") else []
    overrides = {"use_sim_time": arg("use_sim_time").lower() in ("true", "1")}
    for name in ("model_path", "tile_cache", "preset", "device"):
        if arg(name):
            overrides[name] = arg(name)
    if arg("autostart"):
        overrides["autostart"] = arg("autostart").lower() in ("true", "1")
    params.append(overrides)
    remappings = [(topic, arg(topic.replace("/", "_"))) for topic in TOPICS
                  if arg(topic.replace("/", "_"))]
    return [LifecycleNode(
        package="denseflow_ros", executable="localizer_node", name=arg("node_name"),
        namespace=arg("namespace"), parameters=params, remappings=remappings,
        output="screen", emulate_tty=True,
    )]


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments and the node."""
    args = [
        DeclareLaunchArgument("params_file", default_value=_DEFAULT_PARAMS,
                              description="node parameters (config/localize.yaml format)"),
        DeclareLaunchArgument("model_path", default_value="", description="checkpoint"),
        DeclareLaunchArgument("tile_cache", default_value="",
                              description="XYZ tile folder or .mbtiles file"),
        DeclareLaunchArgument("preset", default_value="", description="model preset"),
        DeclareLaunchArgument("device", default_value="", description="auto, cpu or cuda"),
        DeclareLaunchArgument("autostart", default_value="",
                              description="configure and activate at start-up"),
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        DeclareLaunchArgument("node_name", default_value="localizer", description="node name"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="use /clock (bag replay)"),
    ]
    args += [DeclareLaunchArgument(t.replace("/", "_"), default_value="",
                                   description=f"remap the node's '{t}' topic")
             for t in TOPICS]
    return LaunchDescription([*args, OpaqueFunction(function=_launch_setup)])
