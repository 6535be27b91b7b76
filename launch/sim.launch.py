"""Run only the MuJoCo simulator node: it publishes the topics a robot would
(/joint_states, /imu, /odom, the elevation map /elevation_map (grid_map_msgs/GridMap) and the
pre-sampled /height_samples) and applies the joint targets it receives.

    ros2 launch anymal_ros sim.launch.py
    ros2 launch anymal_ros sim.launch.py use_sim_time:=true

The node does not render; videos of the simulator come from ``anymal-ros sim-render`` and
``anymal-ros eval --render``.
"""

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

PACKAGE = "anymal_ros"


def launch_nodes(context):
    arg = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    truthy = lambda text: text.strip().lower() in ("1", "true", "yes", "on")  # noqa: E731
    # The parameter file goes to the node as it is (--params-file); launch arguments override.
    params = {
        "use_sim_time": truthy(arg("use_sim_time")),
        "publish_clock": truthy(arg("use_sim_time")),
    }
    return [
        Node(
            package=PACKAGE,
            executable="sim_node",
            name="sim_node",
            namespace=arg("namespace"),
            parameters=[arg("params_file"), params],
            output="screen",
            emulate_tty=True,
        )
    ]


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory(PACKAGE)
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "params_file",
                default_value=f"{share}/config/sim_node.yaml",
                description="sim_node parameter file, any form --params-file takes",
            ),
            DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
            DeclareLaunchArgument(
                "use_sim_time",
                default_value="false",
                description="publish /clock and run the nodes on simulated time",
            ),
            OpaqueFunction(function=launch_nodes),
        ]
    )
