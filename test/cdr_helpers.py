"""Tests of the plain-CDR readers: random input messages, and a small writer of them in
either byte order.

rclpy only serializes little endian, so the big-endian cases are written here; every message
written is checked against ``rclpy.serialization.deserialize_message`` by the tests, so the
writer cannot silently agree with a wrong reader. Padding bytes are filled with ``pad`` (not
zero) to show the readers never depend on them.
"""

from __future__ import annotations

import string
import struct

import numpy as np
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from sensor_msgs.msg import Imu, JointState, PointCloud2, PointField

from anymal_ros.contract import JOINT_NAMES
from anymal_ros.ros_io.cdr import PLAIN_CDR_BE, PLAIN_CDR_LE

POINTFIELD_FLOAT64 = 8


class CdrWriter:
    def __init__(self, order: str, pad: int = 0xA5) -> None:
        self.order = order
        self.pad = bytes([pad])
        self.buf = bytearray((PLAIN_CDR_LE if order == "<" else PLAIN_CDR_BE) + b"\x00\x00")

    def align(self, size: int) -> None:
        self.buf += self.pad * (-(len(self.buf) - 4) % size)

    def prim(self, code: str, *values) -> None:
        """Values of one struct code (``'I'``, ``'d'``, ...), aligned to its size."""
        self.align(struct.calcsize(code))
        self.buf += struct.pack(f"{self.order}{len(values)}{code}", *values)

    def string(self, text: str) -> None:
        raw = text.encode() + b"\0"
        self.prim("I", len(raw))
        self.buf += raw

    def f64_seq(self, values) -> None:
        self.prim("I", len(values))
        if len(values):
            self.prim("d", *values)

    def header(self, header) -> None:
        self.prim("i", header.stamp.sec)
        self.prim("I", header.stamp.nanosec)
        self.string(header.frame_id)

    def bytes(self) -> bytes:
        return bytes(self.buf)


def _vec(v) -> tuple[float, float, float]:
    return (v.x, v.y, v.z)


def write_joint_state(msg, order: str, pad: int = 0xA5) -> bytes:
    w = CdrWriter(order, pad)
    w.header(msg.header)
    w.prim("I", len(msg.name))
    for name in msg.name:
        w.string(name)
    for seq in (msg.position, msg.velocity, msg.effort):
        w.f64_seq(list(seq))
    return w.bytes()


def write_imu(msg, order: str, pad: int = 0xA5) -> bytes:
    w = CdrWriter(order, pad)
    w.header(msg.header)
    o = msg.orientation
    w.prim("d", o.x, o.y, o.z, o.w, *msg.orientation_covariance)
    w.prim("d", *_vec(msg.angular_velocity), *msg.angular_velocity_covariance)
    w.prim("d", *_vec(msg.linear_acceleration), *msg.linear_acceleration_covariance)
    return w.bytes()


def write_odometry(msg, order: str, pad: int = 0xA5) -> bytes:
    w = CdrWriter(order, pad)
    w.header(msg.header)
    w.string(msg.child_frame_id)
    pose, twist = msg.pose, msg.twist
    o = pose.pose.orientation
    w.prim("d", *_vec(pose.pose.position), o.x, o.y, o.z, o.w, *pose.covariance)
    w.prim("d", *_vec(twist.twist.linear), *_vec(twist.twist.angular), *twist.covariance)
    return w.bytes()


def write_twist(msg, order: str, pad: int = 0xA5) -> bytes:
    w = CdrWriter(order, pad)
    w.prim("d", *_vec(msg.linear), *_vec(msg.angular))
    return w.bytes()


def write_point_cloud(msg, order: str, pad: int = 0xA5) -> bytes:
    w = CdrWriter(order, pad)
    w.header(msg.header)
    w.prim("I", msg.height, msg.width)
    w.prim("I", len(msg.fields))
    for f in msg.fields:
        w.string(f.name)
        w.prim("I", f.offset)
        w.prim("B", f.datatype)
        w.prim("I", f.count)
    w.prim("B", int(msg.is_bigendian))
    w.prim("I", msg.point_step, msg.row_step)
    data = bytes(msg.data)
    w.prim("I", len(data))
    w.buf += data
    w.prim("B", int(msg.is_dense))
    return w.bytes()


# --- random messages (valid for the validators) ----------------------------------------------
def text(rng, length: int) -> str:
    return "".join(rng.choice(list(string.ascii_letters + "_/"), size=length))


def header(msg, rng, frame_len: int) -> None:
    msg.header.stamp.sec = int(rng.integers(-(2**31), 2**31))
    msg.header.stamp.nanosec = int(rng.integers(0, 10**9))
    msg.header.frame_id = text(rng, frame_len)


def floats(rng, n: int) -> list[float]:
    return rng.normal(size=n).tolist()


def random_joint_state(rng, frame_len: int) -> JointState:
    msg = JointState()
    header(msg, rng, frame_len)
    names = list(JOINT_NAMES) + [text(rng, int(rng.integers(1, 10))) for _ in range(3)]
    rng.shuffle(names)
    n = len(names)
    msg.name, msg.position, msg.velocity = names, floats(rng, n), floats(rng, n)
    msg.effort = floats(rng, int(rng.choice([0, n])))
    return msg


def random_imu(rng, frame_len: int) -> Imu:
    msg = Imu()
    header(msg, rng, frame_len)
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    o = msg.orientation
    o.x, o.y, o.z, o.w = q.tolist()
    for vec in (msg.angular_velocity, msg.linear_acceleration):
        vec.x, vec.y, vec.z = floats(rng, 3)
    for name in ("orientation", "angular_velocity", "linear_acceleration"):
        setattr(msg, f"{name}_covariance", np.asarray(floats(rng, 9)))
    return msg


def random_odometry(rng, frame_len: int) -> Odometry:
    msg = Odometry()
    header(msg, rng, frame_len)
    msg.child_frame_id = text(rng, int(rng.integers(0, 10)))
    p, o = msg.pose.pose.position, msg.pose.pose.orientation
    p.x, p.y, p.z = floats(rng, 3)
    o.x, o.y, o.z, o.w = floats(rng, 4)
    t = msg.twist.twist
    t.linear.x, t.linear.y, t.linear.z = floats(rng, 3)
    t.angular.x, t.angular.y, t.angular.z = floats(rng, 3)
    msg.pose.covariance = np.asarray(floats(rng, 36))
    msg.twist.covariance = np.asarray(floats(rng, 36))
    return msg


def random_twist(rng, frame_len: int = 0) -> Twist:
    msg = Twist()
    msg.linear.x, msg.linear.y, msg.linear.z = floats(rng, 3)
    msg.angular.x, msg.angular.y, msg.angular.z = floats(rng, 3)
    return msg


# Cloud layouts the validator accepts: (fields as (name, offset, datatype, count), point_step).
CLOUD_LAYOUTS = [
    ([("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("height", 12, 7, 1)], 16),
    ([("height", 0, 7, 1), ("intensity", 8, POINTFIELD_FLOAT64, 1), ("rgb", 16, 6, 1)], 24),
    ([("h", 0, 6, 2), ("height", 13, 7, 1)], 20),  # unaligned height, padding in the point
    ([("height", 4, 7, 1)], 8),
]


def cloud(rng, frame_len: int, layout=0, big_endian=False, organised=False, heights=None):
    fields, step = CLOUD_LAYOUTS[layout]
    if heights is None:
        heights = rng.normal(size=(4, 52)).astype(np.float32)
        heights[rng.random((4, 52)) < 0.1] = np.nan  # missing points
    msg = PointCloud2()
    header(msg, rng, frame_len)
    msg.height, msg.width = (4, 52) if organised else (1, 208)
    msg.fields = [PointField(name=n, offset=o, datatype=d, count=c) for n, o, d, c in fields]
    msg.is_bigendian = big_endian
    msg.point_step, msg.row_step = step, step * msg.width
    data = rng.integers(0, 256, size=(208, step), dtype=np.uint8)  # other fields: any bytes
    offset = dict((n, o) for n, o, _, _ in fields)["height"]
    h = np.asarray(heights, dtype=(">f4" if big_endian else "<f4")).reshape(208)
    data[:, offset : offset + 4] = h.view(np.uint8).reshape(208, 4)
    msg.data = data.tobytes()
    msg.is_dense = not bool(np.isnan(h).any())
    return msg


RANDOM = {
    "joint_states": random_joint_state,
    "imu": random_imu,
    "odom": random_odometry,
    "odom_pose": random_odometry,
    "cmd_vel": random_twist,
    "height_samples": lambda rng, frame_len: cloud(rng, frame_len, int(rng.integers(0, 4))),
}
