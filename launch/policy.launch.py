"""Run the policy node (and optionally the MuJoCo simulator node) with the package's defaults.

    ros2 launch anymal_ros policy.launch.py                      # robot: drivers already up
    ros2 launch anymal_ros policy.launch.py sim:=true            # closed loop in simulation
    ros2 launch anymal_ros policy.launch.py model_path:=/path/student.onnx namespace:=anymal

With ``autostart:=true`` (default) the lifecycle node configures and activates itself (it then
stands up); with ``autostart:=false`` drive it with ``ros2 lifecycle set /policy_node configure``
and ``... activate``. Modes: ``ros2 service call /policy_node/walk std_srvs/srv/Trigger``.
"""

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from launch import LaunchDescription

PACKAGE = "anymal_ros"


def launch_nodes(context):
    arg = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    truthy = lambda text: text.strip().lower() in ("1", "true", "yes", "on")  # noqa: E731
    namespace = arg("namespace")
    use_sim_time = truthy(arg("use_sim_time"))
    # The parameter files go to the nodes as they are (--params-file): rcl matches their keys
    # against the node's full name, as with `ros2 run`. Launch arguments override them.
    policy_params = {"autostart": truthy(arg("autostart")), "use_sim_time": use_sim_time}
    if arg("model_path"):
        policy_params["model_path"] = arg("model_path")
    actions = [
        LifecycleNode(
            package=PACKAGE,
            executable="policy_node",
            name="policy_node",
            namespace=namespace,
            parameters=[arg("params_file"), policy_params],
            output="screen",
            emulate_tty=True,
        )
    ]
    if truthy(arg("sim")):
        sim_params = {"use_sim_time": use_sim_time, "publish_clock": use_sim_time}
        actions.append(
            Node(
                package=PACKAGE,
                executable="sim_node",
                name="sim_node",
                namespace=namespace,
                parameters=[arg("sim_params_file"), sim_params],
                output="screen",
                emulate_tty=True,
            )
        )
    return actions


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory(PACKAGE)
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "model_path", default_value="", description="ONNX policy; empty = bundled"
            ),
            DeclareLaunchArgument(
                "params_file",
                default_value=f"{share}/config/policy_node.yaml",
                description="policy_node parameter file, any form --params-file takes",
            ),
            DeclareLaunchArgument(
                "sim_params_file",
                default_value=f"{share}/config/sim_node.yaml",
                description="sim_node parameter file, used with sim:=true",
            ),
            DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
            DeclareLaunchArgument(
                "sim", default_value="false", description="also start the MuJoCo sim_node"
            ),
            DeclareLaunchArgument(
                "autostart",
                default_value="true",
                description="configure and activate the lifecycle policy node at start-up",
            ),
            DeclareLaunchArgument(
                "use_sim_time",
                default_value="false",
                description="run on /clock (sim_node publishes it when true)",
            ),
            OpaqueFunction(function=launch_nodes),
        ]
    )
