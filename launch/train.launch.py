"""Train a policy with train_node, optionally against the MuJoCo sim_node over ROS topics.

    ros2 launch anymal_ros train.launch.py sim:=true                       # teacher via ROS
    ros2 launch anymal_ros train.launch.py algorithm:=ppo \\
        config_file:=/path/teacher_ppo.yaml overrides:="runner.iterations=200 runner.seed=1"
    ros2 launch anymal_ros train.launch.py algorithm:=distill teacher_checkpoint:=T.pt
    ros2 topic echo /train_node/progress                                   # JSON per iteration
    ros2 service call /train_node/stop std_srvs/srv/Trigger                # checkpoint, exit

The launch ends when train_node exits (training done, stopped or failed).

With ``sim:=true`` sim_node runs in lockstep mode (one control period per joint-target
message, privileged topic on) and the config should use ``env.kind: ros`` (the default
``config_file`` with sim:=true is ``config/teacher_ros.yaml``).
"""

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler, Shutdown
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

PACKAGE = "anymal_ros"


def launch_nodes(context):
    arg = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    truthy = lambda text: text.strip().lower() in ("1", "true", "yes", "on")  # noqa: E731
    share = get_package_share_directory(PACKAGE)
    sim = truthy(arg("sim"))
    # The parameter files go to the nodes as they are (--params-file): rcl matches their keys
    # against the node's full name, as with `ros2 run`. Launch arguments override them.
    params = {"algorithm": arg("algorithm")}
    config_file = arg("config_file") or (f"{share}/config/teacher_ros.yaml" if sim else "")
    if config_file:
        params["config_file"] = config_file
    if arg("overrides").split():
        params["overrides"] = arg("overrides").split()
    paths = {
        "run_dir": arg("run_dir"),
        "resume": arg("resume"),
        "teacher_checkpoint": arg("teacher_checkpoint"),
    }
    params.update({name: value for name, value in paths.items() if value})
    if int(arg("iterations")) > 0:
        params["iterations"] = int(arg("iterations"))
    train_node = Node(
        package=PACKAGE,
        executable="train_node",
        name="train_node",
        parameters=[arg("params_file"), params],
        output="screen",
        emulate_tty=True,
    )
    # train_node exits when training ends (done, ~/stop, failed): so does the launch, sim_node
    # included.
    actions = [
        train_node,
        RegisterEventHandler(
            OnProcessExit(target_action=train_node, on_exit=[Shutdown(reason="train_node exited")])
        ),
    ]
    if sim:
        sim_params = {"lockstep": True, "publish_privileged": True, "reset_on_fall": False}
        actions.append(
            Node(
                package=PACKAGE,
                executable="sim_node",
                name="sim_node",
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
                "algorithm", default_value="ppo", description="ppo | ppg | distill"
            ),
            DeclareLaunchArgument(
                "config_file",
                default_value="",
                description="TrainConfig/DistillConfig YAML; empty = teacher_ros.yaml with "
                "sim:=true, else the node's parameter file",
            ),
            DeclareLaunchArgument(
                "overrides",
                default_value="",
                description="space-separated section.key=value config overrides",
            ),
            DeclareLaunchArgument("run_dir", default_value="", description="run directory"),
            DeclareLaunchArgument("resume", default_value="", description="checkpoint to resume"),
            DeclareLaunchArgument(
                "teacher_checkpoint", default_value="", description="distill: teacher checkpoint"
            ),
            DeclareLaunchArgument(
                "iterations", default_value="0", description="0 = the config's iterations"
            ),
            DeclareLaunchArgument(
                "params_file",
                default_value=f"{share}/config/train_node.yaml",
                description="train_node parameter file, any form --params-file takes",
            ),
            DeclareLaunchArgument(
                "sim",
                default_value="false",
                description="also start sim_node in lockstep mode (train with env.kind: ros)",
            ),
            DeclareLaunchArgument(
                "sim_params_file",
                default_value=f"{share}/config/sim_node.yaml",
                description="sim_node parameter file, used with sim:=true",
            ),
            OpaqueFunction(function=launch_nodes),
        ]
    )
