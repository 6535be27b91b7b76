"""What the student believes, on ROS topics: the policy node's belief publisher.

A student file may carry its belief decoder (:mod:`anymal_ros.deploy.belief`). While the
policy walks, at ``belief_rate`` Hz (0 = off), after the control tick has published its
targets (so the tick never waits for it), :class:`BeliefPublisher` decodes the state that
tick's policy step left and publishes on the node's private namespace:

``~/belief/terrain`` (sensor_msgs/PointCloud2, 4 x 52 points, frame: the odometry's)
    one point per height sample at its position in the odometry frame: x/y from the feet
    (forward kinematics of the measured joints, placed by the odometry pose) and the rings
    turned by the base's yaw, exactly where the policy's heights are sampled; ``z`` the
    believed terrain height there. Float32 fields ``measured`` and ``believed`` (m, relative
    to the foot's sole: the policy's input and the decoder's reconstruction) and
    ``disagreement`` (believed - measured), to colour by in RViz.
``~/belief/privileged`` (sensor_msgs/JointState as a stamped named vector, like
    ``sim_node``'s ``~/privileged``): ``name[i]`` from
    :data:`anymal_ros.ros_io.messages.PRIVILEGED_NAMES`, the believed value in ``position[i]``
    (units: :data:`anymal_ros.contract.PRIVILEGED_UNITS`).
``/diagnostics`` (status ``<node>: belief``, with the node's own diagnostics)
    per foot the RMS of believed - measured heights (``disagreement.<leg>``, m); WARN when
    one exceeds ``belief_disagreement_warn``; "unavailable" (and why) when the policy file
    has no decoder.

Both messages carry the header stamp of the joint_states the tick used (as
``~/joint_targets`` does). The odometry pose comes from the node's odometry topic, kept as
bytes and decoded only on belief ticks.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from nav_msgs.msg import Odometry
from rclpy.qos import qos_profile_sensor_data
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import JointState, PointCloud2

from anymal_ros.contract import LEGS
from anymal_ros.deploy.belief import Belief
from anymal_ros.obs.extero import sample_points
from anymal_ros.obs.kinematics import LegKinematics
from anymal_ros.obs.rotations import quat_rotate, yaw_from_quat
from anymal_ros.ros_io.messages import PRIVILEGED_NAMES, float32_cloud

OK, WARN = 0, 1


@dataclass(frozen=True)
class BeliefSettings:
    """The belief parameters, checked (the node reads them at configure)."""

    rate: float = 10.0  # Hz, 0 = off
    warn: float = 0.1  # m

    def __post_init__(self) -> None:
        if not (np.isfinite(self.rate) and self.rate >= 0):
            raise ValueError(f"belief_rate must be a number of Hz >= 0 (0 = off), got {self.rate}")
        if not (np.isfinite(self.warn) and self.warn > 0):
            raise ValueError(f"belief_disagreement_warn must be > 0 m, got {self.warn}")

    @classmethod
    def from_node(cls, node) -> BeliefSettings:
        return cls(float(node.p("belief_rate")), float(node.p("belief_disagreement_warn")))


#: name -> (default, description), the defaults BeliefSettings'; the policy node declares them
#: with its own.
BELIEF_PARAMETERS: dict[str, tuple[object, str]] = {
    "belief_rate": (
        BeliefSettings().rate,
        "Hz; publish the student's belief (~/belief/terrain, ~/belief/privileged, /diagnostics) "
        "while walking, after the tick's targets; 0 = off",
    ),
    "belief_disagreement_warn": (
        BeliefSettings().warn,
        "m; /diagnostics warns when a foot's RMS difference between believed and measured "
        "heights exceeds this",
    ),
}

TERRAIN_FIELDS = ("x", "y", "z", "measured", "believed", "disagreement")


@dataclass(frozen=True)
class BeliefSample:
    """One published belief and what it was computed from (kept for inspection and tests)."""

    stamp: tuple[int, int]  # header.stamp (sec, nanosec) of both messages
    belief: Belief
    hidden: np.ndarray  # [L, 1, H] the decoder's input
    joint_pos: np.ndarray  # [12] rad, model joint order
    position: np.ndarray | None  # [3] base in the odometry frame, None: no odometry yet
    quat_wxyz: np.ndarray | None  # [4]
    points: np.ndarray | None  # [4, 52, 3] the cloud's x, y, z


def sample_positions(
    kinematics: LegKinematics,
    joint_pos: np.ndarray,
    position: np.ndarray,
    quat_wxyz: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Where the policy's heights are sampled: ``xy [4, 52, 2]`` in the odometry frame and
    each foot's sole height ``[4]`` (m), from joint angles ``[12]`` and the base pose."""
    feet_base = kinematics.forward(joint_pos[None])[0]  # [4, 3]
    quat = np.broadcast_to(quat_wxyz, (4, 4))
    feet = position[None, :] + quat_rotate(quat, feet_base)
    xy = sample_points(feet[None, :, :2], yaw_from_quat(quat_wxyz[None]))[0]
    return xy, feet[:, 2] - kinematics.foot_radius


def terrain_cloud(points: np.ndarray, belief: Belief, frame_id: str) -> PointCloud2:
    """``points [4, 52, 3]`` and the belief's heights as ``~/belief/terrain``."""
    count = points.shape[0] * points.shape[1]
    data = np.empty((count, len(TERRAIN_FIELDS)), dtype="<f4")
    data[:, :3] = points.reshape(count, 3)
    data[:, 3] = belief.measured.reshape(count)
    data[:, 4] = belief.heights.reshape(count)
    data[:, 5] = data[:, 4] - data[:, 3]
    return float32_cloud(data, TERRAIN_FIELDS, frame_id)


class BeliefPublisher:
    """The belief side of a configured policy node (see the module docstring).

    Args:
        node: the policy node (publishers and the subscription are created on it; the caller
            destroys ``entities`` with its own).
        controller: its :class:`~anymal_ros.nodes.controller.PolicyController`.
        settings: rate and warning threshold.
        odom_topic: where the odometry pose comes from.
    """

    def __init__(self, node, controller, settings: BeliefSettings, odom_topic: str) -> None:
        self.node, self.controller, self.policy = node, controller, controller.policy
        self.period = 1.0 / settings.rate if settings.rate > 0 else 0.0
        self.warn = settings.warn
        self.kinematics = controller.metadata.kinematics
        self.entities: list = []
        self.samples: deque[BeliefSample] = deque(maxlen=50)  # the newest, for inspection
        self.published = 0  # beliefs decoded and published so far
        self._next = 0.0
        self._steps_seen = self.policy.steps
        self._odom: bytes | None = None
        self._no_pose = ""
        self._frame = "odom"
        if not self.enabled:
            return
        # Lifecycle publishers, as the node's other outputs: silent unless the node is active.
        self.terrain_pub = node.create_lifecycle_publisher(PointCloud2, "~/belief/terrain", 1)
        self.privileged_pub = node.create_lifecycle_publisher(JointState, "~/belief/privileged", 1)
        self._privileged_msg = JointState(name=list(PRIVILEGED_NAMES))
        odom = node.create_subscription(
            Odometry, odom_topic, self._on_odom, qos_profile_sensor_data, raw=True
        )
        self.entities = [self.terrain_pub, self.privileged_pub, odom]

    @property
    def enabled(self) -> bool:
        return self.period > 0 and self.policy.belief_decoder is not None

    def _on_odom(self, data: bytes) -> None:
        self._odom = data  # decoded only when a belief is published

    def _pose(self) -> tuple[np.ndarray | None, np.ndarray | None, str]:
        if self._odom is None:
            return None, None, "no odometry received yet"
        odom = deserialize_message(self._odom, Odometry)
        p, o = odom.pose.pose.position, odom.pose.pose.orientation
        quat = np.array([o.w, o.x, o.y, o.z], dtype=np.float64)
        norm = float(np.linalg.norm(quat))
        if not (np.isfinite(norm) and 0.9 < norm < 1.1):
            return None, None, f"odometry orientation is not a rotation (norm {norm:.3f})"
        position = np.array([p.x, p.y, p.z], dtype=np.float64)
        if not np.all(np.isfinite(position)):
            return None, None, "odometry position is not finite"
        self._frame = odom.header.frame_id or "odom"
        return position, quat / norm, ""

    def after_tick(self, now: float) -> None:
        """Called by the node after each tick's targets are out: decode and publish when a
        belief is due and the policy stepped since the last one (it only steps in WALK)."""
        if not self.enabled or now < self._next or self.policy.steps == self._steps_seen:
            return
        self._next += self.period  # on a grid of belief periods; restarted when far behind
        if self._next <= now:
            self._next = now + self.period
        self._steps_seen = self.policy.steps
        hidden = self.policy.hidden
        belief = self.policy.belief()
        c = self.controller
        stamp = c.joint_stamp
        if stamp is None or (stamp.sec == 0 and stamp.nanosec == 0):  # unstamped input
            stamp = self.node.get_clock().now().to_msg()
        stamp = (int(stamp.sec), int(stamp.nanosec))
        msg = self._privileged_msg
        msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
        msg.position = belief.privileged.astype(np.float64).tolist()
        self.privileged_pub.publish(msg)
        position, quat, self._no_pose = self._pose()
        points = None
        if position is not None:
            xy, sole_z = sample_positions(self.kinematics, c.joint_pos, position, quat)
            z = sole_z[:, None] + belief.heights
            points = np.concatenate([xy, z[..., None]], axis=-1)
            cloud = terrain_cloud(points, belief, self._frame)
            cloud.header.stamp.sec, cloud.header.stamp.nanosec = stamp
            self.terrain_pub.publish(cloud)
        self.published += 1
        self.samples.append(
            BeliefSample(stamp, belief, hidden, c.joint_pos.copy(), position, quat, points)
        )

    def status(self, name: str) -> DiagnosticStatus:
        """The ``<node>: belief`` entry of /diagnostics."""
        values: list[tuple[str, str]] = []
        level = OK
        if self.policy.belief_decoder is None:
            message = f"belief unavailable: {self.policy.belief_unavailable}"
            values.append(("belief", "unavailable"))
        elif self.period <= 0:
            message = "belief off (belief_rate 0)"
            values.append(("belief", "off"))
        elif not self.samples:
            message = "belief: none yet (published while walking)"
            values.append(("belief", "waiting"))
        else:
            values.append(("belief", "available"))
            last = self.samples[-1]
            error = last.belief.disagreement()
            values += [
                (f"disagreement.{leg}", f"{e:.3f}") for leg, e in zip(LEGS, error, strict=True)
            ]
            values.append(("belief.stamp", f"{last.stamp[0]}.{last.stamp[1]:09d}"))
            loud = [f"{leg} {e:.2f} m" for leg, e in zip(LEGS, error, strict=True) if e > self.warn]
            if loud:
                level = WARN
                message = (
                    f"belief and measured heights disagree (RMS > {self.warn:g} m): "
                    + ", ".join(loud)
                )
            else:
                message = "belief agrees with the measured heights"
            if self._no_pose:
                values.append(("terrain", f"not published: {self._no_pose}"))
        return DiagnosticStatus(
            level=bytes([level]),
            name=f"{name}: belief",
            message=message,
            values=[KeyValue(key=k, value=v) for k, v in values],
        )

    def publish_diagnostics(self, publisher, name: str, stamp) -> None:
        """Publish :meth:`status` on the node's /diagnostics publisher."""
        msg = DiagnosticArray(status=[self.status(name)])
        msg.header.stamp = stamp
        publisher.publish(msg)
