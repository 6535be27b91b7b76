"""ROS 2 node that runs the MuJoCo quadruped in real time and speaks a robot's topics.

Publishes (sensor-data QoS) what a robot's drivers would: ``/joint_states`` (names, positions,
velocities), ``/imu`` (orientation, body-frame angular velocity; no accelerometer, marked by
``linear_acceleration_covariance[0] = -1``), ``/odom`` (pose in ``odom``, twist in ``base``) at
the physics rate divided by ``proprio_decimation`` (400 Hz with the default 2.5 ms step), and
``/height_samples`` (the policy node's cloud layout, see :mod:`anymal_ros.ros_io.inputs`) at
``height_samples_rate``, and ``/elevation_map`` (grid_map_msgs/GridMap, layer ``elevation``): a
robot-centric map of the terrain in ``odom`` as a robot's elevation mapping publishes it
(``elevation_map_size`` m square at ``elevation_map_resolution``, ``elevation_map_rate`` Hz;
defaults like elevation_mapping_cupy's: 8 m, 4 cm), optionally with a mapping pipeline's errors
(``map_errors`` and the ``map_*`` parameters, see :mod:`anymal_ros.sim.elevation_map`; latency
in whole map periods). Optionally ``/clock`` (``publish_clock``) for ``use_sim_time``.

Subscribes to the joint targets on ``/joint_group_position_controller/commands``
(std_msgs/Float64MultiArray, JOINT_NAMES order) and feeds them to the simulated PD actuators;
without targets the actuators keep the last ones (like a ros2_control position controller).
Service ``~/reset`` (std_srvs/Trigger) starts a new episode; with ``reset_on_fall`` a fall
(tilt or base on the ground) resets automatically and is counted.

Physics runs in its own thread, paced to ``real_time_factor`` x wall time (0 = as fast as
possible, useful with ``publish_clock``); ROS callbacks run in the executor.

**Lockstep mode** (``lockstep: true``, for training through ROS with
:class:`anymal_ros.bridges.ros_topics.RosTopicVecEnv`): no physics thread. Each joint-target
message advances the simulation by exactly ``control_period`` (``round(control_period /
physics_dt)`` physics steps) and then publishes every topic once: joint_states (with
``effort`` = actuator torques), imu, odom, height_samples (no elevation map), ``/clock`` if
enabled, and with
``publish_privileged`` the 50 privileged values on ``~/privileged``
(sensor_msgs/JointState used as a stamped named vector, names
:data:`anymal_ros.ros_io.messages.PRIVILEGED_NAMES`, values in ``position``). ``~/reset``
publishes the new episode's first state before it answers, and names that state's stamp in
its reply (``"new episode; stamp <sec>.<nanosec>"``). All of one state's messages carry
the same stamp: simulated time since the node started, strictly increasing (a reset counts
one physics step), never going back at a reset, so a client matches replies to requests by
stamp. Publishers are reliable (depth 10) so no step is lost; best-effort subscribers such as
policy_node still match. Falls do not reset automatically: the client owns episodes.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Imu, JointState, PointCloud2
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from anymal_ros.config.sim import SimConfig
from anymal_ros.contract import JOINT_NAMES
from anymal_ros.nodes.process import node_process
from anymal_ros.ros_io.messages import PRIVILEGED_NAMES, fill_joint_state, height_cloud

PARAMETERS: dict[str, tuple[object, str]] = {
    "sim_config": ("", "SimConfig YAML (anymal_ros.config.sim); empty = built-in defaults"),
    "robot": (
        "",
        "robot description (a bundled name such as anymal_c, or a robot YAML path) that "
        "overrides the config's robot.description; run the robot your policy was trained for",
    ),
    "terrain_kind": ("flat", "'flat' or 'heightfield' (overrides the config's terrain.kind)"),
    "randomize": (False, "domain randomisation at each reset (friction, mass, gains)"),
    "seed": (0, "random seed of spawn, terrain and randomisation"),
    "physics_dt": (0.0025, "s per physics step (0.0025 = 400 Hz proprioception)"),
    "real_time_factor": (1.0, "simulated s per wall s; 0 = as fast as possible"),
    "publish_clock": (False, "publish /clock with the simulated time"),
    "proprio_decimation": (1, "publish joint_states/imu/odom every N physics steps"),
    "height_samples_rate": (50.0, "Hz of /height_samples"),
    "elevation_map_rate": (10.0, "Hz of the robot-centric GridMap; 0 = none"),
    "elevation_map_size": (8.0, "m, side of the square map"),
    "elevation_map_resolution": (0.04, "m per cell"),
    "elevation_map_layer": ("elevation", "name of the map's layer"),
    "elevation_map_topic": ("elevation_map", "grid_map_msgs/GridMap output"),
    "map_errors": (
        "none",
        "'none', or a height-noise mode (nominal, offset, noisy): per-episode map offsets, "
        "per-cell noise, outliers and cells without data at that mode's levels",
    ),
    "map_drift_xy": (0.0, "m/sqrt(s): random walk of the whole map in x/y"),
    "map_drift_z": (0.0, "m/sqrt(s): random walk of the whole map in z"),
    "map_hole_radius": (0.0, "m around the base without data (its body hides the ground)"),
    "map_shadows": (False, "no data behind rises, seen from 0.3 m above the base"),
    "map_latency": (0.0, "s from the state a map shows to its publication (whole periods)"),
    "joint_states_topic": ("joint_states", ""),
    "imu_topic": ("imu", ""),
    "odom_topic": ("odom", ""),
    "height_samples_topic": ("height_samples", ""),
    "command_topic": ("joint_group_position_controller/commands", "joint targets input"),
    "odom_frame": ("odom", "world frame of odometry and height-sample points"),
    "base_frame": ("base", "robot base frame (odometry child, IMU frame)"),
    "reset_on_fall": (True, "start a new episode when the robot falls"),
    "fall_tilt": (1.0, "rad; base tilt beyond this is a fall"),
    "fall_height": (0.2, "m; base closer than this to the terrain is a fall"),
    "lockstep": (False, "advance one control_period per received target message (training)"),
    "control_period": (
        SimConfig().control_dt,
        "s of simulated time per target message in lockstep mode",
    ),
    "publish_privileged": (False, "publish ~/privileged (50 values) with each lockstep state"),
}


def _stamp(seconds: float) -> Time:
    """``builtin_interfaces/Time`` of ``seconds`` (>= 0), rounded to the nearest nanosecond;
    a fraction that rounds up to a whole second carries into ``sec``."""
    sec, nanosec = divmod(int(round(seconds * 1e9)), 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)


class SimNode(Node):
    """See the module docstring."""

    def __init__(self, node_name: str = "sim_node", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        from anymal_ros.nodes.sim_robot import SimRobot  # MuJoCo only when the node is made

        self.robot = SimRobot(self._sim_config(), int(self.p("seed")), float(self.p("physics_dt")))
        self.lock = threading.Lock()
        self.falls = 0
        self.episodes = 1  # episodes begun (resets and falls start new ones)
        self.fall_reasons: list[str] = []
        self.steps = 0
        self.overruns = 0  # physics steps that finished later than their real-time deadline
        self.targets_received = 0
        self._pending: np.ndarray | None = None
        self.lockstep = bool(self.p("lockstep"))
        self._clock_stamps = bool(self.p("publish_clock")) or self.lockstep
        self._lockstep_steps = max(1, round(float(self.p("control_period")) / self.robot.dt))
        self._clock_steps = 0  # physics steps since start (lockstep stamps), never reset
        # Read once: the physics thread must not look parameters up 400 times a second.
        self._reset_on_fall = bool(self.p("reset_on_fall"))
        self._fall = (float(self.p("fall_tilt")), float(self.p("fall_height")))
        self._odom_frame, self._base_frame = self.p("odom_frame"), self.p("base_frame")
        # Lockstep: every message answers a request and must arrive (reliable); a reliable
        # publisher still serves best-effort subscribers.
        sensor = (
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
            if self.lockstep
            else qos_profile_sensor_data
        )
        self.pub_js = self.create_publisher(JointState, self.p("joint_states_topic"), sensor)
        self.pub_imu = self.create_publisher(Imu, self.p("imu_topic"), sensor)
        self.pub_odom = self.create_publisher(Odometry, self.p("odom_topic"), sensor)
        self.pub_heights = self.create_publisher(
            PointCloud2, self.p("height_samples_topic"), sensor
        )
        self._map_timer = None
        if float(self.p("elevation_map_rate")) > 0 and not self.lockstep:
            self._setup_map()
        self.pub_clock = (
            self.create_publisher(Clock, "/clock", 10) if self.p("publish_clock") else None
        )
        self.pub_privileged = (
            self.create_publisher(JointState, "~/privileged", sensor)
            if self.p("publish_privileged")
            else None
        )
        reliable = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(
            Float64MultiArray, self.p("command_topic"), self._on_targets, reliable
        )
        self.create_service(Trigger, "~/reset", self._on_reset)
        self._running = threading.Event()
        self._thread: threading.Thread | None = None
        if self.lockstep:
            self._publish_lockstep(stepped=False)  # the first state, for a client already up
            self.get_logger().info("simulating in lockstep: one control period per target")
        else:
            self.start()
            rtf = float(self.p("real_time_factor"))
            self.get_logger().info(
                f"simulating: {1.0 / self.robot.dt:.0f} Hz physics, real-time factor {rtf:g}"
            )

    def p(self, name: str):
        return self.get_parameter(name).value

    def _sim_config(self):
        from anymal_ros.config import load_config

        path = self.p("sim_config")
        cfg = load_config(SimConfig, path) if path else SimConfig()
        kind = self.p("terrain_kind")
        if kind not in ("flat", "heightfield"):
            raise ValueError(f"terrain_kind must be 'flat' or 'heightfield', got {kind!r}")
        robot = self.p("robot") or cfg.robot.description
        return dataclasses.replace(
            cfg,
            robot=dataclasses.replace(cfg.robot, description=robot),
            terrain=dataclasses.replace(cfg.terrain, kind=kind),
            randomization=dataclasses.replace(cfg.randomization, enabled=bool(self.p("randomize"))),
        )

    def _setup_map(self) -> None:
        from collections import deque

        from grid_map_msgs.msg import GridMap

        from anymal_ros.sim.elevation_map import MapErrorConfig, MapErrors, map_cells

        self._map_res = float(self.p("elevation_map_resolution"))
        self._map_cells = map_cells(float(self.p("elevation_map_size")), self._map_res)
        errors = MapErrorConfig.from_mode(
            self.p("map_errors"),
            drift_xy=float(self.p("map_drift_xy")),
            drift_z=float(self.p("map_drift_z")),
            hole_radius=float(self.p("map_hole_radius")),
            shadows=bool(self.p("map_shadows")),
        )
        self._map_errors = MapErrors(errors, int(self.p("seed"))) if errors.active else None
        period = 1.0 / float(self.p("elevation_map_rate"))
        self._map_period = period
        self._map_delay = max(0, round(float(self.p("map_latency")) / period))
        self._map_queue: deque = deque()
        self._map_episode = self.episodes
        self.pub_map = self.create_publisher(
            GridMap, self.p("elevation_map_topic"), qos_profile_sensor_data
        )
        self._map_timer = self.create_timer(period, self._publish_map)

    def _publish_map(self) -> None:
        """Build the map of the current state; publish the one ``map_latency`` old."""
        from anymal_ros.ros_io.grid_map import grid_map_message
        from anymal_ros.sim.elevation_map import terrain_map

        with self.lock:
            s = self.robot.state()
        errors = self._map_errors
        if errors is not None:
            if self.episodes != self._map_episode:  # a new episode: new map offsets
                self._map_episode = self.episodes
                errors.reset()
            errors.advance(self._map_period)
        grid, centre = terrain_map(
            self.robot.env.terrain, s.base_pos, self._map_cells, self._map_res, errors
        )
        msg = grid_map_message(
            grid, centre, self._map_res, self._odom_frame, self._now_stamp(s.time),
            layer=self.p("elevation_map_layer"),
        )  # fmt: skip
        self._map_queue.append(msg)
        while len(self._map_queue) > self._map_delay:
            self.pub_map.publish(self._map_queue.popleft())

    # --- ROS callbacks ------------------------------------------------------------------------
    def _on_targets(self, msg: Float64MultiArray) -> None:
        targets = np.asarray(msg.data, dtype=np.float64)
        if targets.shape != (len(JOINT_NAMES),) or not np.all(np.isfinite(targets)):
            self.get_logger().error(
                f"ignoring joint targets: expected {len(JOINT_NAMES)} finite values, "
                f"got {targets.size} ({int(np.sum(~np.isfinite(targets)))} non-finite)"
            )
            return
        with self.lock:
            self.targets_received += 1
            if not self.lockstep:
                self._pending = targets
                return
            self.robot.set_targets(targets)
            for _ in range(self._lockstep_steps):
                self.robot.step()
            self.steps += self._lockstep_steps
            self._clock_steps += self._lockstep_steps
        self._publish_lockstep(stepped=True)

    def _on_reset(self, request, response):
        with self.lock:
            self.robot.reset()
            self.episodes += 1
            self._clock_steps += 1  # the new episode's state gets a stamp of its own
        response.success, response.message = True, "new episode"
        if self.lockstep:
            stamp = self._publish_lockstep(stepped=False)
            response.message = f"new episode; stamp {stamp.sec}.{stamp.nanosec:09d}"
        return response

    def _publish_lockstep(self, stepped: bool) -> Time:
        """Publish the current state once (lockstep), stamped with the node's sim time."""
        with self.lock:
            state = self.robot.state()
            heights, points = self.robot.height_samples()
            priv = self.robot.privileged(stepped) if self.pub_privileged is not None else None
        ns = round(self._clock_steps * self.robot.dt * 1e9)
        stamp = Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
        if self.pub_clock is not None:
            self.pub_clock.publish(Clock(clock=stamp))
        if priv is not None:
            msg = JointState()
            msg.header.stamp = stamp
            msg.name = list(PRIVILEGED_NAMES)
            msg.position = [float(v) for v in priv]
            self.pub_privileged.publish(msg)
        self.pub_heights.publish(height_cloud(heights, points, self._odom_frame, stamp))
        self._publish_proprio(state, stamp)
        return stamp

    # --- physics thread -----------------------------------------------------------------------
    def start(self) -> None:
        self._running.set()
        self._thread = threading.Thread(target=self._loop, name="sim_physics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def destroy_node(self) -> None:
        self.stop()
        super().destroy_node()

    def _loop(self) -> None:
        robot = self.robot
        rtf = float(self.p("real_time_factor"))
        proprio_every = max(1, int(self.p("proprio_decimation")))
        heights_every = max(1, int(round(1.0 / (self.p("height_samples_rate") * robot.dt))))
        control_every = max(1, int(round(robot.env.control_dt / robot.dt)))  # fall checks
        wall_step = robot.dt / rtf if rtf > 0 else 0.0
        deadline = time.monotonic()
        while self._running.is_set() and rclpy.ok(context=self.context):
            with self.lock:
                if self._pending is not None:
                    robot.set_targets(self._pending)
                    self._pending = None
                robot.step()
                self.steps += 1
                k = self.steps
                if k % control_every == 0 and self._reset_on_fall:
                    why = robot.fallen(*self._fall)
                    if why is not None:
                        self.falls += 1
                        self.fall_reasons.append(f"t={robot.time:.2f} s: {why}")
                        self.get_logger().warning(f"fall ({why}): new episode")
                        robot.reset()
                        self.episodes += 1
                state = robot.state()
                heights = robot.height_samples() if k % heights_every == 0 else None
            stamp = self._now_stamp(state.time)
            if self.pub_clock is not None:
                self.pub_clock.publish(Clock(clock=stamp))
            if k % proprio_every == 0:
                self._publish_proprio(state, stamp)
            if heights is not None:
                self.pub_heights.publish(
                    height_cloud(heights[0], heights[1], self._odom_frame, stamp)
                )
            if wall_step > 0:
                deadline += wall_step
                delay = deadline - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    self.overruns += 1
                    if delay < -0.1:  # far behind (machine busy): do not try to catch up
                        deadline = time.monotonic()

    def _now_stamp(self, sim_time: float) -> Time:
        if self._clock_stamps:
            return _stamp(sim_time)
        return self.get_clock().now().to_msg()

    def _publish_proprio(self, s, stamp: Time) -> None:
        base = self._base_frame
        js = JointState()
        js.header.stamp = stamp
        fill_joint_state(js, JOINT_NAMES, s.joint_pos, s.joint_vel, s.joint_effort)
        self.pub_js.publish(js)
        w, x, y, z = (float(v) for v in s.base_quat)
        imu = Imu()
        imu.header.stamp, imu.header.frame_id = stamp, base
        imu.orientation.w, imu.orientation.x, imu.orientation.y, imu.orientation.z = w, x, y, z
        imu.angular_velocity.x, imu.angular_velocity.y, imu.angular_velocity.z = (
            float(v) for v in s.base_ang_vel
        )
        imu.linear_acceleration_covariance[0] = -1.0  # not provided
        self.pub_imu.publish(imu)
        odom = Odometry()
        odom.header.stamp, odom.header.frame_id = stamp, self._odom_frame
        odom.child_frame_id = base
        pose = odom.pose.pose
        pose.position.x, pose.position.y, pose.position.z = (float(v) for v in s.base_pos)
        pose.orientation.w, pose.orientation.x = w, x
        pose.orientation.y, pose.orientation.z = y, z
        twist = odom.twist.twist
        twist.linear.x, twist.linear.y, twist.linear.z = (float(v) for v in s.base_lin_vel)
        twist.angular.x, twist.angular.y, twist.angular.z = (float(v) for v in s.base_ang_vel)
        self.pub_odom.publish(odom)


def main(args: list[str] | None = None) -> int:
    with node_process(SimNode, args) as process:
        executor = SingleThreadedExecutor(context=process.node.context)
        executor.add_node(process.node)
        try:
            process.spin(executor)
        finally:
            executor.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
