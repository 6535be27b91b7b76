"""Settings of the ROS-topic simulator bridge (``env.kind: ros``, section ``env.ros``).

:class:`anymal_ros.bridges.ros_topics.RosTopicVecEnv` drives N robots, robot ``i`` in
namespace ``namespaces[i]``; topic and service names below are relative to that namespace.
Commands, rewards, terminations and the action mode come from the ``env.sim`` section (a
SimConfig), exactly as for the built-in MuJoCo environment.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RosEnvConfig:
    # One namespace per robot; empty: "" for a single robot, "robot<i>" for several.
    namespaces: tuple[str, ...] = ()
    joint_states_topic: str = "joint_states"
    imu_topic: str = "imu"
    odom_topic: str = "odom"
    height_samples_topic: str = "height_samples"
    command_topic: str = "joint_group_position_controller/commands"
    # sensor_msgs/JointState named vector of the 50 privileged values (sim_node's
    # ``publish_privileged``); empty: no privileged input (zeros; contact-based reward terms
    # and the air-time bookkeeping then see no contacts).
    privileged_topic: str = "sim_node/privileged"
    reset_service: str = "sim_node/reset"
    step_timeout: float = 10.0  # s to wait for a simulator's reply before raising
    # s a reset waits for its reply and state before asking again (a reply or state sent
    # before discovery matched both ends is lost); longer than the simulator's reset takes.
    reset_retry: float = 1.0
    fall_height: float = 0.2  # m: base closer than this to the terrain near the feet = fall
    # Joint-target limits (JOINT_NAMES order) for the action decoder, as in the simulator
    # model; None: no clipping in the bridge (the simulator's actuators limit anyway).
    joint_lower: tuple[float, ...] | None = None
    joint_upper: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not self.step_timeout > 0:
            raise ValueError(f"step_timeout must be > 0 s, got {self.step_timeout}")
        if not 0 < self.reset_retry <= self.step_timeout:
            raise ValueError(
                f"reset_retry must be in (0, step_timeout = {self.step_timeout}] s, "
                f"got {self.reset_retry}"
            )
        if (self.joint_lower is None) != (self.joint_upper is None):
            raise ValueError("joint_lower and joint_upper must be given together")
        if self.joint_lower is not None and (
            len(self.joint_lower) != 12 or len(self.joint_upper or ()) != 12
        ):
            raise ValueError("joint_lower and joint_upper need 12 values (JOINT_NAMES order)")
        if len(set(self.namespaces)) != len(self.namespaces):
            raise ValueError(f"namespaces must be distinct, got {list(self.namespaces)}")

    def robot_namespaces(self, num_envs: int) -> tuple[str, ...]:
        """The namespace of each of ``num_envs`` robots (checked against ``namespaces``)."""
        if not self.namespaces:
            return ("",) if num_envs == 1 else tuple(f"robot{i}" for i in range(num_envs))
        if len(self.namespaces) != num_envs:
            raise ValueError(
                f"env.ros.namespaces has {len(self.namespaces)} entries for "
                f"env.num_envs = {num_envs} robots"
            )
        return self.namespaces
