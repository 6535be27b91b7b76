"""Helpers for tests that run real rclpy nodes over loopback DDS.

Each test gets its own rclpy Context and executor, and everything is destroyed afterwards,
so a failing test cannot leave a node spinning or hang the suite.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Imu, JointState, PointCloud2
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from anymal_ros.config.robot import load_robot
from anymal_ros.contract import JOINT_NAMES, default_joint_positions
from anymal_ros.obs.kinematics import LegKinematics
from anymal_ros.ros_io.grid_map import grid_map_message
from anymal_ros.ros_io.messages import fill_joint_state, height_cloud
from anymal_ros.sim.robot import leg_chains_of


class RosSession:
    """A private rclpy context + executor; ``close()`` destroys every added node."""

    def __init__(self) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.nodes: list[Node] = []

    def add(self, node: Node) -> Node:
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def spin_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.01)
        return condition()

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def call(self, client, request, timeout: float = 5.0, resend_after: float = 1.0):
        """Call an idempotent service. A reply the server sends before it has discovered our
        reply reader is dropped by rmw, so an unanswered request is sent again."""
        assert client.wait_for_service(timeout_sec=timeout), f"{client.srv_name} not available"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            future = client.call_async(request)
            window = min(resend_after, deadline - time.monotonic())
            if self.spin_until(future.done, window):
                return future.result()
            client.remove_pending_request(future)
        raise AssertionError(f"{client.srv_name} did not answer within {timeout} s")

    def close(self) -> None:
        for node in self.nodes:
            self.executor.remove_node(node)
            node.destroy_node()
        self.executor.shutdown()
        rclpy.shutdown(context=self.context)


class FakeRobot(Node):
    """Publishes a robot standing still (state chosen by the test) and records the node's
    outputs. Which inputs are published, and what they contain, is set per test."""

    def __init__(self, context: Context, rate_hz: float = 100.0, policy_node: str = "policy_node"):
        super().__init__("fake_robot", context=context)
        self.joint_names = list(JOINT_NAMES)
        self.joint_pos = default_joint_positions().astype(np.float64)
        self.joint_vel = np.zeros(12)
        self.heights = np.zeros((4, 52), dtype=np.float32)
        # The elevation map (odom frame, base at the origin): flat ground under the soles of
        # the default pose, 2.4 m square at 4 cm, published every ``map_every`` states.
        chains = leg_chains_of(load_robot())  # the default robot, as exported test students
        feet = LegKinematics(chains).forward(self.joint_pos[None])[0]
        self.ground = float(feet[:, 2].mean()) - chains.foot_radius
        self.map_heights = np.full((60, 60), self.ground, dtype=np.float32)
        self.map_every = 5
        self.map_stamp_age = 0.0  # s the map's header stamp lags the clock (a late map)
        self._published = 0
        self.quat_wxyz = np.array([1.0, 0.0, 0.0, 0.0])
        self.enabled = {
            "joint_states": True,
            "imu": True,
            "odom": True,
            "height_samples": True,
            "elevation_map": True,
        }
        from grid_map_msgs.msg import GridMap  # built by make install

        qos = qos_profile_sensor_data
        self.pubs = {
            "joint_states": self.create_publisher(JointState, "/joint_states", qos),
            "imu": self.create_publisher(Imu, "/imu", qos),
            "odom": self.create_publisher(Odometry, "/odom", qos),
            "height_samples": self.create_publisher(PointCloud2, "/height_samples", qos),
            "elevation_map": self.create_publisher(GridMap, "/elevation_map", qos),
        }
        #: Input -> function that may change each message just before it is published (a
        #: test's fault injection: stamps, flags, values).
        self.edit: dict[str, Callable[[object], None]] = {}
        self.targets: list[np.ndarray] = []
        self.diagnostics: list[dict[str, str]] = []
        self.on_target: Callable[[np.ndarray], None] | None = None
        self.create_subscription(
            Float64MultiArray,
            "/joint_group_position_controller/commands",
            self._target,
            10,
        )
        self.create_subscription(DiagnosticArray, "/diagnostics", self._diagnostics, 10)
        self.mode_clients = {
            name: self.create_client(Trigger, f"/{policy_node}/{name}")
            for name in ("stand", "walk", "passive")
        }
        self.create_timer(1.0 / rate_hz, self.publish_state)

    def _target(self, msg: Float64MultiArray) -> None:
        value = np.asarray(msg.data)
        self.targets.append(value)
        if self.on_target is not None:
            self.on_target(value)

    def _diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.endswith(": control"):
                entry = {kv.key: kv.value for kv in status.values}
                entry["_message"] = status.message
                entry["_level"] = status.level[0]
                self.diagnostics.append(entry)

    def _publish(self, name: str, msg) -> None:
        if name in self.edit:
            self.edit[name](msg)
        self.pubs[name].publish(msg)

    def publish_state(self) -> None:
        stamp = self.get_clock().now().to_msg()
        if self.enabled["joint_states"]:
            js = JointState()
            js.header.stamp = stamp
            fill_joint_state(js, self.joint_names, self.joint_pos, self.joint_vel)
            self._publish("joint_states", js)
        if self.enabled["imu"]:
            imu = Imu()
            imu.header.stamp = stamp
            w, x, y, z = self.quat_wxyz
            imu.orientation.w, imu.orientation.x = float(w), float(x)
            imu.orientation.y, imu.orientation.z = float(y), float(z)
            self._publish("imu", imu)
        if self.enabled["odom"]:
            odom = Odometry()
            odom.header.stamp, odom.header.frame_id = stamp, "odom"
            self._publish("odom", odom)
        if self.enabled["height_samples"]:
            self._publish("height_samples", height_cloud(self.heights, None, "base", stamp))
        self._published += 1
        if self.enabled["elevation_map"] and self._published % self.map_every == 0:
            grid = self.map_heights
            built = self.get_clock().now() - Duration(seconds=self.map_stamp_age)
            msg = grid_map_message(grid, (0.0, 0.0), 0.04, "odom", built.to_msg())
            self._publish("elevation_map", msg)
