"""A small plain-CDR writer for tests: the policy node's input messages in either byte order.

rclpy only serializes little endian, so the big-endian cases are written here; every message
written is checked against ``rclpy.serialization.deserialize_message`` by the tests, so the
writer cannot silently agree with a wrong reader. Padding bytes are filled with ``pad`` (not
zero) to show the readers never depend on them.
"""

from __future__ import annotations

import struct

from anymal_ros.nodes.cdr import PLAIN_CDR_BE, PLAIN_CDR_LE


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
