"""ROS messages -> numpy arrays for the policy node, with validation and staleness tracking.

Pure python: the functions read message fields by name (duck typing), so they are tested with
real message objects and need no running ROS graph. Each message function has a twin that
validates plain values (``*_from_values``, :meth:`JointStateMapper.map`), so the fields read
straight from serialized bytes (:mod:`anymal_ros.ros_io.cdr`) go through the same checks.
Every rejection raises :class:`InputError` with a message that names the input and the
problem; the node reports it on ``/diagnostics`` and keeps the previous good value (which then
ages out by the watchdog).

Height samples (``/height_samples``, ``sensor_msgs/PointCloud2``)
    ``4 x 52 = 208`` points, unorganised (``height = 1``, ``width = 208``) or organised as
    ``height = 4``, ``width = 52``. Points are foot-major in the order LF, RF, LH, RH; each
    foot's 52 points follow :func:`anymal_ros.contract.height_sample_offsets` (rings
    innermost first, each counter-clockwise from +x in the yaw frame). Fields, all
    ``FLOAT32``: ``x, y, z`` the sample position in ``header.frame_id`` (for visualisation
    only) and ``height``, the terrain height relative to that foot's sole (m), which is the
    policy input. A NaN ``height`` marks a missing point (no map cell); the node replaces it
    with the fill value the training noise model uses for missing points.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence

import numpy as np

from anymal_ros.contract import EXTERO_SHAPE, index_by_name

#: sensor_msgs/PointField datatype code of float32.
POINTFIELD_FLOAT32 = 7


class InputError(ValueError):
    """An input message was rejected (wrong size, NaN/inf, missing or repeated joint, missing
    field, implausible value, bad stamp)."""


def _finite(name: str, arr: np.ndarray) -> np.ndarray:
    if not np.isfinite(arr).all():  # the method skips np.all's dispatch: runs 7x per tick
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise InputError(f"{name}: {bad} non-finite value(s) (NaN or inf)")
    return arr


class JointStateMapper:
    """Maps ``sensor_msgs/JointState`` to ``[J]`` positions and velocities in policy order.

    Joints are matched by name (extra joints ignored); the index is cached per name list so a
    driver publishing a fixed order costs one tuple comparison per message. A name list that
    names a joint more than once is ambiguous (which value is the joint's?) and is rejected
    like one that lacks a joint.
    """

    def __init__(self, joint_names: Sequence[str]) -> None:
        self.joint_names = tuple(joint_names)
        self._names: tuple[str, ...] | None = None
        self._index: np.ndarray | None = None

    def __call__(self, msg) -> tuple[np.ndarray, np.ndarray]:
        return self.map(tuple(msg.name), msg.position, msg.velocity)

    def map(
        self, names: tuple[str, ...], position: Sequence[float], velocity: Sequence[float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """``[n]`` values named by ``names`` -> ``[J]`` positions and velocities."""
        if names != self._names:
            if len(set(names)) != len(names):
                seen: set[str] = set()
                repeated = sorted({n for n in names if n in seen or seen.add(n)})
                raise InputError(f"joint_states: joints named more than once: {repeated}")
            try:
                index = index_by_name(names, self.joint_names)
            except KeyError as err:
                raise InputError(f"joint_states: {err.args[0]}") from None
            self._names, self._index = names, index
        n = len(names)
        pos = np.asarray(position, dtype=np.float64)
        vel = np.asarray(velocity, dtype=np.float64)
        if pos.shape != (n,) or vel.shape != (n,):
            raise InputError(
                f"joint_states: {n} names but {pos.size} positions and {vel.size} velocities "
                "(both are required, one per name)"
            )
        pos, vel = pos[self._index], vel[self._index]
        _finite("joint_states.position", pos)
        _finite("joint_states.velocity", vel)
        return pos, vel


def imu_arrays(msg) -> tuple[np.ndarray, np.ndarray]:
    """``sensor_msgs/Imu`` -> (quaternion ``[4]`` as (w, x, y, z), angular velocity ``[3]``).

    The orientation must be a valid rotation (norm within 10 % of one; it is renormalised);
    angular velocity is in the IMU frame, assumed aligned with the base frame.
    """
    o, w = msg.orientation, msg.angular_velocity
    return imu_from_values((o.x, o.y, o.z, o.w), (w.x, w.y, w.z))


def imu_from_values(
    orientation_xyzw: Sequence[float], angular_velocity: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`imu_arrays` of orientation ``(x, y, z, w)`` (message order) and ``(x, y, z)``."""
    x, y, z, w = orientation_xyzw
    quat = _finite("imu.orientation", np.array([w, x, y, z], dtype=np.float64))
    norm = float(np.linalg.norm(quat))
    if not 0.9 < norm < 1.1:
        raise InputError(f"imu.orientation: quaternion norm {norm:.3f} is not a rotation")
    ang = _finite("imu.angular_velocity", np.array(angular_velocity, dtype=np.float64))
    return quat / norm, ang


def odom_twist(msg) -> tuple[np.ndarray, np.ndarray]:
    """``nav_msgs/Odometry`` -> base linear and angular velocity ``[3]`` each.

    By ROS convention the twist is expressed in ``child_frame_id`` (the base), which is what
    the policy expects.
    """
    lin, ang = msg.twist.twist.linear, msg.twist.twist.angular
    return odom_from_values((lin.x, lin.y, lin.z), (ang.x, ang.y, ang.z))


def odom_from_values(
    linear: Sequence[float], angular: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`odom_twist` of the twist's ``(x, y, z)`` linear and angular parts."""
    lin = np.array(linear, dtype=np.float64)
    ang = np.array(angular, dtype=np.float64)
    return _finite("odom.twist.linear", lin), _finite("odom.twist.angular", ang)


def odom_pose_from_values(
    position: Sequence[float], orientation_xyzw: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Odometry ``pose.pose`` -> (position ``[3]``, orientation ``[4]`` as (w, x, y, z),
    renormalised; its norm must be within 10 % of one)."""
    pos = _finite("odom.pose.position", np.array(position, dtype=np.float64))
    x, y, z, w = orientation_xyzw
    quat = _finite("odom.pose.orientation", np.array([w, x, y, z], dtype=np.float64))
    norm = float(np.linalg.norm(quat))
    if not 0.9 < norm < 1.1:
        raise InputError(f"odom.pose.orientation: quaternion norm {norm:.3f} is not a rotation")
    return pos, quat / norm


def command_from_twist(msg, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``geometry_msgs/Twist`` -> command ``[3]`` (vx, vy, yaw rate) clipped to ``[low, high]``."""
    lin, ang = msg.linear, msg.angular
    return command_from_values((lin.x, lin.y, lin.z), (ang.x, ang.y, ang.z), low, high)


def command_from_values(
    linear: Sequence[float], angular: Sequence[float], low: np.ndarray, high: np.ndarray
) -> np.ndarray:
    """:func:`command_from_twist` of the twist's ``(x, y, z)`` linear and angular parts."""
    cmd = np.array([linear[0], linear[1], angular[2]], dtype=np.float64)
    return np.clip(_finite("cmd_vel", cmd), low, high)


def heights_from_cloud(msg, shape: tuple[int, int] = EXTERO_SHAPE) -> np.ndarray:
    """``sensor_msgs/PointCloud2`` -> heights ``[feet, points]`` float32 (NaN = missing).

    Infinite heights are rejected (NaN is the only "missing" marker). ``msg`` may also be a
    :class:`~anymal_ros.ros_io.cdr.PointCloudView` read from the serialized message.
    """
    expected = shape[0] * shape[1]
    count = int(msg.width) * int(msg.height)
    if count != expected:
        raise InputError(
            f"height_samples: {count} points ({msg.height} x {msg.width}), expected {expected} "
            f"({shape[0]} feet x {shape[1]} points)"
        )
    fields = {f.name: f for f in msg.fields}
    if "height" not in fields:
        raise InputError(f"height_samples: no 'height' field (fields: {sorted(fields)})")
    field = fields["height"]
    if field.datatype != POINTFIELD_FLOAT32 or field.count != 1:
        raise InputError(
            f"height_samples: field 'height' must be one FLOAT32 (datatype {POINTFIELD_FLOAT32}),"
            f" got datatype {field.datatype} x {field.count}"
        )
    step = int(msg.point_step)
    if field.offset + 4 > step:
        raise InputError(f"height_samples: 'height' offset {field.offset} beyond point_step {step}")
    if int(msg.row_step) != int(msg.width) * step:
        raise InputError(
            f"height_samples: row_step {msg.row_step} != width x point_step (padding unsupported)"
        )
    buffer = memoryview(msg.data).cast("B")
    if len(buffer) != count * step:
        raise InputError(f"height_samples: {len(buffer)} data bytes, expected {count * step}")
    order = ">" if msg.is_bigendian else "<"
    dtype = np.dtype({"names": ["h"], "formats": [order + "f4"], "offsets": [field.offset],
                      "itemsize": step})  # fmt: skip
    heights = np.frombuffer(buffer, dtype=dtype, count=count)["h"].astype(np.float32)
    if np.isinf(heights).any():
        raise InputError("height_samples: infinite height value(s); use NaN for missing points")
    return heights.reshape(shape)


def fill_missing(heights: np.ndarray, fill: float) -> tuple[np.ndarray, int]:
    """Replace NaN heights by ``fill``; returns (filled copy, number of missing points)."""
    missing = np.isnan(heights)
    return np.where(missing, np.float32(fill), heights).astype(np.float32), int(missing.sum())


class InputMonitor:
    """Arrival and rejection times of each input: age, rate, freshness against per-input
    timeouts, and how many of its recent messages were rejected.

    Times are seconds on the node's clock. Three events per message:

    * :meth:`arrived`: a message came in (counts towards :meth:`rate` and the rejection
      fraction, whether or not it passes validation);
    * :meth:`accepted`: a message that arrived at time ``t`` passed validation (sets
      :meth:`age` and thereby freshness; a rejected message never makes an input fresh);
    * :meth:`reject`: it did not (counted, with its time and the reason).

    :meth:`received` is arrived + accepted at once. An input never accepted has age ``inf``.

    Rejections are judged over two windows. :meth:`rejecting` applies the safety rule: an
    input that rejected more than ``max_rejected_fraction`` of the messages that arrived in
    the last ``rejection_window`` seconds is as unusable as a stale one (a sensor that is
    wrong a third of the time is not trusted between its bad messages either).
    :meth:`recent_errors` and :meth:`recent_rejections` are what diagnostics show: the
    rejections of the last ``error_window`` seconds, so the report clears once inputs have
    been clean that long (the all-time count stays in ``rejected``).
    """

    def __init__(
        self,
        timeouts: dict[str, float],
        rate_window: float = 2.0,
        rejection_window: float = 1.0,
        max_rejected_fraction: float = 0.1,
        error_window: float = 10.0,
    ) -> None:
        for name, timeout in timeouts.items():
            if not (timeout > 0 and math.isfinite(timeout)):
                raise ValueError(f"timeout of {name!r} must be a positive number, got {timeout}")
        for what, window in (
            ("rate_window", rate_window),
            ("rejection_window", rejection_window),
            ("error_window", error_window),
        ):
            if not (window > 0 and math.isfinite(window)):
                raise ValueError(f"{what} must be a positive number of seconds, got {window}")
        if not 0.0 <= max_rejected_fraction <= 1.0:
            raise ValueError(
                f"max_rejected_fraction must be in [0, 1], got {max_rejected_fraction}"
            )
        self.timeouts = dict(timeouts)
        self.rate_window = rate_window
        self.rejection_window = rejection_window
        self.max_rejected_fraction = max_rejected_fraction
        self.error_window = error_window
        self._arrival_horizon = max(rate_window, rejection_window)
        self._rejection_horizon = max(rejection_window, error_window)
        self._arrivals: dict[str, deque[float]] = {n: deque() for n in timeouts}
        self._rejections: dict[str, deque[float]] = {n: deque() for n in timeouts}
        self._last_accepted: dict[str, float] = {}
        self.rejected: dict[str, int] = dict.fromkeys(timeouts, 0)
        self.last_error: dict[str, str] = {}

    def arrived(self, name: str, now: float) -> None:
        arrivals = self._arrivals[name]
        arrivals.append(now)
        horizon = now - self._arrival_horizon
        while arrivals[0] < horizon:
            arrivals.popleft()

    def accepted(self, name: str, arrival: float) -> None:
        self._last_accepted[name] = arrival

    def received(self, name: str, now: float) -> None:
        self.arrived(name, now)
        self.accepted(name, now)

    def reject(self, name: str, error: str, now: float) -> None:
        """A message of ``name`` that arrived at ``now`` was rejected because of ``error``."""
        self.rejected[name] += 1
        self.last_error[name] = error
        times = self._rejections[name]
        times.append(now)
        horizon = now - self._rejection_horizon
        while times[0] < horizon:
            times.popleft()

    @staticmethod
    def _since(times: deque[float], start: float) -> int:
        return len(times) - bisect.bisect_left(times, start)  # sorted: bisect, not a scan

    def age(self, name: str, now: float) -> float:
        """Seconds since the newest accepted message arrived (``inf`` if none yet)."""
        last = self._last_accepted.get(name)
        return math.inf if last is None else now - last

    def fresh(self, name: str, now: float) -> bool:
        return self.age(name, now) <= self.timeouts[name]

    def rate(self, name: str, now: float) -> float:
        """Messages arrived per second over the last ``rate_window`` seconds."""
        return self._since(self._arrivals[name], now - self.rate_window) / self.rate_window

    def rejecting(self, name: str, now: float) -> str | None:
        """Why ``name`` is unusable for rejecting too many messages (more than
        ``max_rejected_fraction`` of those that arrived in the last ``rejection_window``
        seconds), or None."""
        start = now - self.rejection_window
        bad = self._since(self._rejections[name], start)
        if not bad:
            return None
        arrived = max(self._since(self._arrivals[name], start), bad)
        if bad <= self.max_rejected_fraction * arrived:
            return None
        return (
            f"{name} rejected {bad} of {arrived} messages in the last "
            f"{self.rejection_window:g} s (more than {self.max_rejected_fraction:.0%})"
        )

    def recent_rejections(self, name: str, now: float) -> int:
        """Rejections of ``name`` in the last ``error_window`` seconds."""
        return self._since(self._rejections[name], now - self.error_window)

    def recent_errors(self, now: float) -> dict[str, str]:
        """The last rejection reason of every input that rejected a message in the last
        ``error_window`` seconds."""
        return {n: e for n, e in self.last_error.items() if self.recent_rejections(n, now)}
