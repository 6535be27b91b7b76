"""RosTopicVecEnv: the vector-env interface over ROS topics, for any simulator that speaks the
package's topics and reset service (the built-in one is ``sim_node`` with ``lockstep: true``).

Same interface as :class:`anymal_ros.sim.env.QuadrupedVecEnv`
(:class:`anymal_ros.sim.interface.VecEnv`; not its terrain parts: the robots live elsewhere)::

    env = RosTopicVecEnv(sim_cfg, ros_cfg, num_envs, seed)
    obs = env.reset()   # {"proprio": [N, P], "extero": [N, 4, 52], "privileged": [N, 50]}
    obs, reward, terminated, truncated, info = env.step(action)   # action [N, A]

Robot ``i`` lives in namespace ``ros_cfg.robot_namespaces(N)[i]``. One step:

1. actions -> joint targets with the shared :class:`~anymal_ros.obs.actions.ActionDecoder`,
   published on ``<ns>/joint_group_position_controller/commands`` (one message per robot);
2. the simulator advances one control period and answers with one ``joint_states``, ``imu``,
   ``odom``, ``height_samples`` (and ``sim_node/privileged``) message, all with the same
   stamp, later than the previous state's (sim_node's lockstep contract); the bridge spins its
   own rclpy context until every robot's set is complete, so a step is synchronous and, for a
   deterministic simulator, reproducible;
3. observations through the shared contract (:class:`~anymal_ros.obs.proprio.ProprioBuilder`,
   the policy node's message parsers in :mod:`anymal_ros.ros_io.inputs`), rewards, episode
   accounting and ``info`` by the same task code as the simulator
   (:class:`~anymal_ros.sim.task.LocomotionTask`), terminations, and resets of ended episodes
   through ``<ns>/sim_node/reset`` (std_srvs/Trigger).

Where the reward inputs come from: base velocities from ``odom``; joint velocities and torques
(``effort``) from ``joint_states``; foot velocities from the legs' kinematics (derived from
the robot's MJCF, :class:`~anymal_ros.obs.kinematics.LegKinematics`), with the IMU
orientation; foot and thigh/shank contacts from the privileged vector, which only a simulator
can publish. Without it (``privileged_topic: ""``) the contact terms see no contacts.
Terminations: tilt beyond ``termination.max_tilt`` (IMU) or the base closer than
``fall_height`` to the terrain near the feet (kinematics + the innermost height ring); the
simulator's exact base-contact test is not observable through topics. Truncation:
``termination.episode_length_s``.
"""

from __future__ import annotations

import itertools
import re
import time
from typing import Any

import numpy as np
import rclpy
from nav_msgs.msg import Odometry
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Imu, JointState, PointCloud2
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from anymal_ros.config.deploy import DeployConfig
from anymal_ros.config.noise import MISSING_HEIGHT_FILL
from anymal_ros.config.robot import load_robot
from anymal_ros.config.ros_env import RosEnvConfig
from anymal_ros.config.sim import SimConfig
from anymal_ros.contract import (
    HEIGHT_RINGS,
    JOINT_NAMES,
    NUM_JOINTS,
    NUM_LEGS,
    PRIVILEGED_DIM,
    PRIVILEGED_LAYOUT,
    index_by_name,
)
from anymal_ros.obs.actions import ActionDecoder
from anymal_ros.obs.kinematics import LegKinematics
from anymal_ros.obs.rotations import projected_gravity, quat_rotate
from anymal_ros.ros_io.inputs import (
    JointStateMapper,
    fill_missing,
    heights_from_cloud,
    imu_arrays,
    odom_twist,
)
from anymal_ros.ros_io.messages import PRIVILEGED_NAMES
from anymal_ros.sim.robot import leg_chains_of
from anymal_ros.sim.task import LocomotionTask, Obs, State

_PRIV = PRIVILEGED_LAYOUT.slices()
#: A foot's innermost ring of height samples (the rings are listed innermost first).
_INNER_RING = slice(0, HEIGHT_RINGS[0][1])
_STAMP_IN_REPLY = re.compile(r"stamp (\d+)\.(\d{9})")


class SimulatorTimeout(RuntimeError):
    """The simulator did not answer a step or reset in time."""


def _ns(namespace: str, name: str) -> str:
    return "/" + "/".join(p for p in (*namespace.strip("/").split("/"), name) if p)


def _stamp_ns(msg) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


class _Robot:
    """Subscriptions of one robot; keeps the recent messages of each topic by stamp."""

    def __init__(self, node: Node, namespace: str, cfg: RosEnvConfig) -> None:
        self.namespace = namespace
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.inbox: dict[str, dict[int, Any]] = {}
        topics = {
            "joint_states": (JointState, cfg.joint_states_topic),
            "imu": (Imu, cfg.imu_topic),
            "odom": (Odometry, cfg.odom_topic),
            "height_samples": (PointCloud2, cfg.height_samples_topic),
        }
        if cfg.privileged_topic:
            topics["privileged"] = (JointState, cfg.privileged_topic)
        self.subscriptions = {}
        for key, (msg_type, name) in topics.items():
            self.inbox[key] = {}
            self.subscriptions[key] = node.create_subscription(
                msg_type, _ns(namespace, name), lambda m, k=key: self._store(k, m), reliable
            )
        self.topics = {key: _ns(namespace, name) for key, (_, name) in topics.items()}
        self.publisher = node.create_publisher(
            Float64MultiArray, _ns(namespace, cfg.command_topic), reliable
        )
        self.reset_client = node.create_client(Trigger, _ns(namespace, cfg.reset_service))
        self.last_stamp = -1  # stamp (ns) of the last state used

    def _store(self, key: str, msg) -> None:
        box = self.inbox[key]
        box[_stamp_ns(msg)] = msg
        if len(box) > 16:  # keep memory bounded if the simulator free-runs
            del box[min(box)]

    def complete(self, exact: int | None) -> int | None:
        """Newest stamp later than ``last_stamp`` that every topic has (or ``exact``)."""
        common = set.intersection(*(set(b) for b in self.inbox.values()))
        if exact is not None:
            return exact if exact in common else None
        newer = [s for s in common if s > self.last_stamp]
        return max(newer) if newer else None

    def take(self, stamp: int) -> dict[str, Any]:
        msgs = {k: b[stamp] for k, b in self.inbox.items()}
        for box in self.inbox.values():
            for s in [s for s in box if s <= stamp]:
                del box[s]
        self.last_stamp = stamp
        return msgs

    def unmatched(self) -> list[str]:
        """Topics on which DDS has not yet matched us with the simulator."""
        out = [
            self.topics[k] for k, s in self.subscriptions.items() if s.get_publisher_count() == 0
        ]
        if self.publisher.get_subscription_count() == 0:
            out.append(self.publisher.topic_name)
        return out

    def missing(self) -> list[str]:
        return [
            self.topics[k] for k, b in self.inbox.items() if not any(s > self.last_stamp for s in b)
        ]


class RosTopicVecEnv(LocomotionTask):
    """Batched quadruped environment over ROS topics (see the module docstring).

    Args:
        sim_cfg: commands, rewards, terminations and actions (the ``env.sim`` section).
        ros_cfg: namespaces, topic names, timeouts.
        num_envs: number of robots N (one namespace each).
        seed: seeds the command generator.
    """

    def __init__(
        self, sim_cfg: SimConfig, ros_cfg: RosEnvConfig, num_envs: int = 1, seed: int = 0
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        n = num_envs
        self.ros_cfg = ros_cfg
        self.namespaces = ros_cfg.robot_namespaces(n)
        lower = None if ros_cfg.joint_lower is None else np.asarray(ros_cfg.joint_lower)
        upper = None if ros_cfg.joint_upper is None else np.asarray(ros_cfg.joint_upper)
        # The simulated robot's legs, read off its MJCF as the built-in simulator does.
        robot = load_robot(sim_cfg.robot.description)
        self.kinematics = LegKinematics(leg_chains_of(robot))
        decoder = ActionDecoder.from_config(
            sim_cfg.actions,
            n,
            sim_cfg.control_dt,
            lower,
            upper,
            default_joint_pos=np.array(robot.default_pose()),
            kinematics=self.kinematics,
        )
        super().__init__(sim_cfg, n, decoder)
        self.rng = np.random.default_rng(seed)
        self._joints = [JointStateMapper(JOINT_NAMES) for _ in range(n)]
        # An rclpy context of our own: the bridge works inside any process (a training node,
        # a test that also runs the simulator) without sharing an executor. Its arguments are
        # explicit: the process's --ros-args (`__node:=train_node`, parameter files) belong
        # to the process's node, and would rename and configure this one too.
        self.context = Context()
        rclpy.init(args=[], context=self.context)
        self.node = Node("ros_vec_env", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.robots = [_Robot(self.node, ns, ros_cfg) for ns in self.namespaces]
        self._matched = False
        self._closed = False

    # --- public API (step: LocomotionTask.step) ------------------------------------------

    def reset(self) -> Obs:
        """Reset every robot through its reset service; the first observation."""
        return self._restart(np.arange(self.num_envs))

    def set_commands(
        self, command: np.ndarray, env_ids: np.ndarray | None = None, fixed: bool = True
    ) -> None:
        """Velocity commands ``[3]`` or ``[k, 3]`` (vx, vy, yaw rate); ``fixed`` keeps them
        through resampling and resets (evaluation). Takes effect in the next observation."""
        self.commands.set(command, env_ids, fixed)

    def deploy_config(self) -> DeployConfig:
        """The deployment section matching this environment's action settings."""
        return DeployConfig(
            actions=self.cfg.actions,
            control_period=self.control_dt,
            joint_pos_lower=self.ros_cfg.joint_lower,
            joint_pos_upper=self.ros_cfg.joint_upper,
            robot=self.cfg.robot.description,
            default_joint_pos=tuple(float(v) for v in self.decoder.default_joint_pos),
            leg_chains=self.kinematics.chains,
            joint_velocity_limit=self.joint_velocity_limit,
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.executor.remove_node(self.node)
        self.node.destroy_node()
        self.executor.shutdown()
        rclpy.shutdown(context=self.context)

    # --- LocomotionTask hooks -------------------------------------------------------------

    def _advance(self, prev_targets: np.ndarray) -> State:
        for robot, target in zip(self.robots, self.targets, strict=True):
            robot.publisher.publish(Float64MultiArray(data=[float(v) for v in target]))
        return self._await_states(np.arange(self.num_envs))

    def _terminations(self, s: State) -> tuple[np.ndarray, None]:
        low = s["base_height"] < self.ros_cfg.fall_height
        return self._tilted(s) | low, None

    def _restart(self, ids: np.ndarray, s: State | None = None) -> Obs:
        # The simulator answers a reset once and publishes its state once. Discovery is per
        # side and we can only see ours: if the simulator had not yet matched our reply reader
        # (rmw drops the reply: "client will not receive response") or our subscriptions, that
        # answer is lost. Ask again, which is harmless (a fresh episode either way), until the
        # step timeout.
        deadline = time.monotonic() + self.ros_cfg.step_timeout
        for attempt in itertools.count(1):
            self._start_episodes(ids)
            try:
                stamps = self._reset_stamps(ids, timeout=self._retry_window(deadline))
                return self._observe(
                    ids, self._await_states(ids, stamps, self._retry_window(deadline))
                )
            except SimulatorTimeout as err:
                if time.monotonic() >= deadline:
                    raise SimulatorTimeout(
                        f"reset asked {attempt} times in {self.ros_cfg.step_timeout} s; last: {err}"
                    ) from None
            finally:
                self._forget_unanswered_resets()

    def _retry_window(self, deadline: float) -> float:
        return min(self.ros_cfg.reset_retry, max(deadline - time.monotonic(), 0.0))

    def _observe(self, ids: np.ndarray, s: State) -> Obs:
        heights = s["extero"].astype(np.float32)
        return {
            "proprio": self._proprio(ids, s, heights),
            "extero": heights,
            "privileged": s["privileged"].astype(np.float32),
        }

    # --- internals ------------------------------------------------------------------------

    def _start_episodes(self, ids: np.ndarray) -> None:
        """Episode bookkeeping of ``ids`` and their reset requests (answered by
        :meth:`_reset_stamps`)."""
        self._begin_episodes(ids)
        if not self._matched:
            self._wait_for_matching()
        timeout = self.ros_cfg.step_timeout
        for i in ids:
            client = self.robots[i].reset_client
            if not client.wait_for_service(timeout_sec=timeout):
                raise SimulatorTimeout(f"reset service {client.srv_name} not available")
        self._futures = {int(i): self.robots[i].reset_client.call_async(Trigger.Request())
                         for i in ids}  # fmt: skip

    def _forget_unanswered_resets(self) -> None:
        """Drop reset requests that will not be waited for (a retry sends fresh ones), so a
        late reply is not kept, nor matched to a later request."""
        for i, future in self._futures.items():
            if not future.done():
                self.robots[i].reset_client.remove_pending_request(future)
                future.cancel()

    def _wait_for_matching(self) -> None:
        """A lockstep simulator publishes each state once: a message sent before DDS has
        matched both ends is lost for good and the step would wait forever. So before the
        first reset, wait until every topic of every robot is matched."""
        deadline = time.monotonic() + self.ros_cfg.step_timeout
        while unmatched := [t for robot in self.robots for t in robot.unmatched()]:
            if time.monotonic() > deadline:
                raise SimulatorTimeout(
                    f"simulator topics not matched within {self.ros_cfg.step_timeout} s: "
                    f"{unmatched}; is sim_node running (lockstep:=true publish_privileged:=true)?"
                )
            self.executor.spin_once(timeout_sec=0.01)
        self._matched = True

    def _reset_stamps(self, ids: np.ndarray, timeout: float) -> dict[int, int | None]:
        """Wait up to ``timeout`` for the reset replies; the state stamp each names (None if
        it names none)."""
        futures = self._futures
        self._spin_until(
            lambda: all(f.done() for f in futures.values()), "reset replies", ids, timeout
        )
        stamps: dict[int, int | None] = {}
        for i, future in futures.items():
            reply = future.result()
            if not reply.success:
                raise RuntimeError(f"{self.robots[i].reset_client.srv_name}: {reply.message}")
            m = _STAMP_IN_REPLY.search(reply.message)
            stamps[i] = int(m.group(1)) * 1_000_000_000 + int(m.group(2)) if m else None
        return stamps

    def _spin_until(
        self, condition, what: str, ids: np.ndarray, timeout: float | None = None
    ) -> None:
        timeout = self.ros_cfg.step_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                missing = [t for i in ids for t in self.robots[i].missing()]
                raise SimulatorTimeout(
                    f"no {what} within {timeout:.1f} s (waiting for {missing}); "
                    "is the simulator running in lockstep mode (sim_node lockstep:=true)?"
                )
            self.executor.spin_once(timeout_sec=0.01)

    def _await_states(
        self,
        ids: np.ndarray,
        exact: dict[int, int | None] | None = None,
        timeout: float | None = None,
    ) -> State:
        """Spin until robots ``ids`` each have a complete new state (within ``timeout``, by
        default the step timeout); parse them."""
        exact = exact or {}
        found: dict[int, int] = {}

        def ready() -> bool:
            for i in ids:
                if int(i) not in found:
                    stamp = self.robots[i].complete(exact.get(int(i)))
                    if stamp is not None:
                        found[int(i)] = stamp
            return len(found) == len(ids)

        self._spin_until(ready, "simulator state", ids, timeout)
        rows = [self._parse(int(i), self.robots[i].take(found[int(i)])) for i in ids]
        return {k: np.stack([r[k] for r in rows]) for k in rows[0]}

    def _parse(self, i: int, msgs: dict[str, Any]) -> dict[str, np.ndarray]:
        """One robot's messages -> raw state arrays (the shared parsers of the policy node)."""
        js = msgs["joint_states"]
        joint_pos, joint_vel = self._joints[i](js)
        effort = np.zeros(NUM_JOINTS)
        if len(js.effort) == len(js.name):
            effort = np.asarray(js.effort, dtype=np.float64)[index_by_name(tuple(js.name))]
        quat, imu_ang = imu_arrays(msgs["imu"])
        lin, ang = odom_twist(msgs["odom"])
        heights = heights_from_cloud(msgs["height_samples"])
        extero, _ = fill_missing(heights, MISSING_HEIGHT_FILL)
        priv = np.zeros(PRIVILEGED_DIM, dtype=np.float32)
        if "privileged" in msgs:
            p = msgs["privileged"]
            priv = np.asarray(p.position, dtype=np.float32)[
                index_by_name(tuple(p.name), PRIVILEGED_NAMES)
            ]
        # Feet in the base frame (kinematics), their velocity (finite difference along the
        # joint velocity plus the base's motion), rotated to the world for the slip term.
        feet = self.kinematics.forward(joint_pos[None])[0]  # [4, 3]
        eps = 1e-4
        feet_ahead = self.kinematics.forward((joint_pos + eps * joint_vel)[None])[0]
        foot_vel_base = (feet_ahead - feet) / eps + lin + np.cross(imu_ang, feet)
        q4 = np.broadcast_to(quat, (NUM_LEGS, 4))
        foot_vel_world = quat_rotate(q4, foot_vel_base)
        feet_world_z = quat_rotate(q4, feet)[:, 2]  # relative to the base
        radius = self.kinematics.foot_radius
        inner = np.nan_to_num(heights[:, _INNER_RING], nan=0.0).mean(axis=1)  # [4]
        # Base above the terrain near each foot: -(foot z) + foot radius - terrain-to-sole.
        base_height = float(np.mean(-feet_world_z + radius - inner))
        return {
            "joint_pos": joint_pos,
            "joint_vel": joint_vel,
            "joint_effort": effort,
            "base_quat": quat,
            "base_lin_vel": lin,
            "base_ang_vel": imu_ang,  # the gyro, as the policy node uses it
            "odom_ang_vel": ang,
            "gravity": projected_gravity(quat[None])[0],
            "extero": extero,
            "privileged": priv,
            "foot_contact": priv[_PRIV["foot_contact"]] > 0.5,
            "thigh_shank_contact": priv[_PRIV["thigh_shank_contact"]],
            "foot_vel_xy": foot_vel_world[:, :2],
            "base_height": np.float64(base_height),
        }
