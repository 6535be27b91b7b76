"""Run the policy node (and optionally the MuJoCo simulator node) with the package's defaults.

    ros2 launch anymal_ros policy.launch.py                      # robot: drivers already up
    ros2 launch anymal_ros policy.launch.py sim:=true            # closed loop in simulation
    ros2 launch anymal_ros policy.launch.py model_path:=/path/student.onnx namespace:=anymal

With ``autostart:=true`` (default) the lifecycle node configures and activates itself (it then
stands up); with ``autostart:=false`` drive it with ``ros2 lifecycle set /policy_node configure``
and ``... activate``. Modes: ``ros2 service call /policy_node/walk std_srvs/srv/Trigger``.
"""

import yaml
from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from launch import LaunchDescription

PACKAGE = "anymal_ros"


def node_parameters(params_file: str, node_name: str) -> dict:
    """The ``node_name: ros__parameters:`` block of a parameter file as a dict, so that the
    file applies whatever namespace the node is launched in."""
    with open(params_file) as f:
        data = yaml.safe_load(f) or {}
    block = data.get(node_name) or data.get(f"/{node_name}") or data.get("/**") or {}
    return dict(block.get("ros__parameters", {}))


def launch_nodes(context):
    arg = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    truthy = lambda text: text.strip().lower() in ("1", "true", "yes", "on")  # noqa: E731
    namespace = arg("namespace")
    use_sim_time = truthy(arg("use_sim_time"))
    policy_params = node_parameters(arg("params_file"), "policy_node")
    policy_params["autostart"] = truthy(arg("autostart"))
    policy_params["use_sim_time"] = use_sim_time
    if arg("model_path"):
        policy_params["model_path"] = arg("model_path")
    actions = [
        LifecycleNode(
            package=PACKAGE,
            executable="policy_node",
            name="policy_node",
            namespace=namespace,
            parameters=[policy_params],
            output="screen",
            emulate_tty=True,
        )
    ]
    if truthy(arg("sim")):
        sim_params = node_parameters(arg("sim_params_file"), "sim_node")
        sim_params["use_sim_time"] = use_sim_time
        sim_params["publish_clock"] = use_sim_time
        actions.append(
            Node(
                package=PACKAGE,
                executable="sim_node",
                name="sim_node",
                namespace=namespace,
                parameters=[sim_params],
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
                description="policy_node parameter file (policy_node: ros__parameters: ...)",
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
