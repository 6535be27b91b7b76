"""Read what the policy controller needs straight from serialized ROS 2 messages (plain CDR).

A raw subscription hands over the message as rmw serialized it: a 4-byte encapsulation header
(2-byte representation identifier, 2 option bytes) followed by the CDR payload. Turning that
into Python message objects (``rclpy.serialization.deserialize_message``) builds every field,
covariances and frame ids included, with pure-Python constructors; that was the largest
part of the policy node's tick. The readers here compute the offsets of the few fields the
controller uses, check the bounds, and unpack them with :mod:`struct` /
:func:`numpy.frombuffer`.

Only plain CDR (XCDR version 1, what ROS 2's rmw implementations write) is read here:
representation identifier ``0x0000`` (big endian) or ``0x0001`` (little endian), see
DDS-XTypes 1.3 section 7.6.2.1.2 and DDSI-RTPS 2.5 table 10.3, with the two low bits of the
options zero (they count padding at the end of the data, which rclpy treats specially). For
anything else :func:`plain_cdr_order` returns None and the caller falls back to rclpy.

Encoding rules, mirrored from the deserializer behind rclpy (Fast CDR) so that a message is
read here exactly when rclpy would decode it:

* a primitive of size ``n`` starts at a multiple of ``n`` counted from the payload start
  (after the 4-byte header), padding bytes have any value;
* a sequence is a uint32 count, then the elements; they are aligned only when count > 0;
* a string is a uint32 length that includes the terminating NUL, then the bytes; length 0 is
  an error; the text ends at the first NUL; invalid UTF-8 is replaced, not refused;
* a bool is one byte, any non-zero value is true; bytes after the message are ignored.

Every failure raises :class:`~anymal_ros.ros_io.inputs.InputError` naming the input, like a
message rclpy cannot decode; nothing else escapes.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import numpy as np

from anymal_ros.ros_io.inputs import InputError

#: Representation identifiers of plain CDR (XCDR1).
PLAIN_CDR_BE = b"\x00\x00"
PLAIN_CDR_LE = b"\x00\x01"
_ORDERS = {PLAIN_CDR_BE: ">", PLAIN_CDR_LE: "<"}
#: Bytes before the payload; alignment is counted from here.
ENCAPSULATION_SIZE = 4

# Fixed-size parts after a message's last variable-length field (bytes, from the 8-aligned
# start). Imu: orientation (4 doubles), covariance (9), angular_velocity (3), covariance (9),
# linear_acceleration (3), covariance (9).
_IMU_SIZE = 8 * (4 + 9 + 3 + 9 + 3 + 9)
# Odometry: pose (position 3 + orientation 4 + covariance 36), twist (6 + covariance 36).
_ODOM_SIZE = 8 * (7 + 36 + 6 + 36)
_STRING_MIN = 5  # uint32 length + at least the NUL
_POINT_FIELD_MIN = _STRING_MIN + 4 + 1 + 4  # name, offset, datatype, count (before padding)


class _Formats:
    """Precompiled :class:`struct.Struct` and numpy dtypes of one byte order."""

    def __init__(self, order: str) -> None:
        self.order = order
        self.u32 = struct.Struct(order + "I")
        self.stamp = struct.Struct(order + "iI")
        self.two_u32 = struct.Struct(order + "II")
        # orientation x, y, z, w; skip its covariance; angular_velocity x, y, z
        self.imu = struct.Struct(order + "4d72x3d")
        # skip the pose and its covariance; twist linear x, y, z, angular x, y, z
        self.odom_twist = struct.Struct(order + f"{8 * 43}x6d")
        # pose position x, y, z, orientation x, y, z, w; skip its covariance; the twist
        self.odom = struct.Struct(order + f"7d{8 * 36}x6d")
        self.twist = struct.Struct(order + "6d")
        self.f64 = np.dtype(order + "f8")


_FORMATS = {order: _Formats(order) for order in _ORDERS.values()}


def plain_cdr_order(data: bytes) -> str | None:
    """``'<'`` or ``'>'`` if ``data`` is a plain little/big-endian CDR message, else None
    (another encapsulation, end padding announced, or too short to tell: let rclpy decide)."""
    if len(data) < ENCAPSULATION_SIZE or data[3] & 0b11:
        return None
    return _ORDERS.get(data[:2])


class _Cursor:
    """Reads one payload front to back; every read checks the bounds first."""

    __slots__ = ("data", "fmt", "pos", "what")

    def __init__(self, data: bytes, order: str, what: str) -> None:
        self.data, self.fmt, self.what = data, _FORMATS[order], what
        self.pos = ENCAPSULATION_SIZE

    def error(self, problem: str) -> InputError:
        at = f"payload byte {self.pos - ENCAPSULATION_SIZE}"
        return InputError(f"{self.what}: cannot decode message ({problem} at {at})")

    def align(self, size: int) -> None:
        self.pos += (ENCAPSULATION_SIZE - self.pos) % size

    def take(self, size: int) -> int:
        """Start of the next ``size`` bytes (in ``data``), moving past them."""
        start = self.pos
        left = len(self.data) - start
        if size > left:
            raise self.error(f"truncated: {size} byte(s) needed, {max(left, 0)} left")
        self.pos = start + size
        return start

    def unpack(self, fmt: struct.Struct) -> tuple:
        return fmt.unpack_from(self.data, self.take(fmt.size))

    def u32(self) -> int:
        self.align(4)
        return self.fmt.u32.unpack_from(self.data, self.take(4))[0]

    def u8(self) -> int:
        return self.data[self.take(1)]

    def count(self, min_item_size: int) -> int:
        """A sequence length, refused early when that many items cannot fit."""
        n = self.u32()
        if n * min_item_size > len(self.data) - self.pos:
            raise self.error(f"sequence of {n} items longer than the message")
        return n

    def raw_strings(self, count: int) -> list[bytes]:
        """``count`` strings in a row (a string sequence's items), each as serialized
        (terminating NUL included). One loop with local variables: a joint name list costs
        a few microseconds instead of a method call per length, alignment and bound."""
        data, pos, u32 = self.data, self.pos, self.fmt.u32.unpack_from
        out = []
        for _ in range(count):
            pos += (ENCAPSULATION_SIZE - pos) % 4
            n = u32(data, pos)[0] if pos + 4 <= len(data) else -1
            if not 0 < n <= len(data) - pos - 4:
                self.pos = pos
                if n == 0:
                    raise self.error("string of length 0 (no terminating NUL)")
                raise self.error("truncated: a string runs past the end")
            pos += 4
            out.append(data[pos : pos + n])
            pos += n
        self.pos = pos
        return out

    def raw_string(self) -> bytes:
        return self.raw_strings(1)[0]

    def skip_string(self) -> None:
        n = self.u32()
        if n == 0:
            raise self.error("string of length 0 (no terminating NUL)")
        self.take(n)

    def skip_header(self) -> None:
        """std_msgs/Header: stamp (int32 sec, uint32 nanosec) and frame_id, unused here."""
        self.take(8)  # the payload starts 8-aligned, so no padding before the stamp
        self.skip_string()

    def f64_span(self) -> tuple[int, int]:
        """A float64 sequence: (count, start of its elements); moves past it.

        Written out rather than composed from the methods above: it runs three times per
        joint_states message, and each method call costs about as much as the arithmetic."""
        data, pos = self.data, self.pos
        pos += (ENCAPSULATION_SIZE - pos) % 4
        if pos + 4 > len(data):
            raise self.error("truncated: no room for a sequence length")
        n = self.fmt.u32.unpack_from(data, pos)[0]
        pos += 4
        if n:
            pos += (ENCAPSULATION_SIZE - pos) % 8
        if pos + 8 * n > len(data):
            raise self.error(f"truncated: a sequence of {n} float64 needs {8 * n} bytes")
        self.pos = pos + 8 * n
        return n, pos

    def f64_array(self) -> np.ndarray:
        """A float64 sequence as a read-only ``[n]`` view of the bytes."""
        n, start = self.f64_span()
        return np.frombuffer(self.data, self.fmt.f64, n, start)


def _text(raw: bytes) -> str:
    # Like rclpy: the text ends at the first NUL and invalid UTF-8 is replaced.
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


class _BlockCache:
    """The last parsed value of a block of strings and integers (joint names, point fields).

    The key is every byte of the block except the padding: serializers leave padding bytes
    uninitialised (rmw_fastrtps does), so equal content can come with different padding.
    ``layout`` unpacks exactly the key's bytes, skipping the padding (``x``), in one call.
    """

    __slots__ = ("layout", "key", "value")

    def __init__(self) -> None:
        self.layout: struct.Struct | None = None
        self.key: tuple = ()
        self.value = None

    def lookup(self, cursor: _Cursor):
        """The cached value if the block at the cursor matches (cursor moved past it)."""
        layout = self.layout
        if layout is None or layout.format[0] != cursor.fmt.order:
            return None
        start = cursor.pos
        if len(cursor.data) - start < layout.size:
            return None
        if layout.unpack_from(cursor.data, start) != self.key:
            return None
        cursor.pos = start + layout.size
        return self.value

    def store(self, cursor: _Cursor, start: int, layout: str, value) -> None:
        self.layout = struct.Struct(cursor.fmt.order + layout)
        self.key = self.layout.unpack_from(cursor.data, start)
        self.value = value


def _padding(n: int) -> str:
    # After an ``n``-byte string that started 4-aligned, up to the next uint32.
    pad = -n % 4
    return f"{pad}x" if pad else ""


class Stamp(NamedTuple):
    """``builtin_interfaces/Time`` as read from a header."""

    sec: int
    nanosec: int


class JointStateFields(NamedTuple):
    stamp: Stamp
    names: tuple[str, ...]
    position: np.ndarray  # [n] float64, read-only view of the message bytes
    velocity: np.ndarray  # [n]


class JointStateReader:
    """``sensor_msgs/JointState`` -> stamp, names, position, velocity (effort is skipped).

    The names of a driver that publishes a fixed list are parsed once: later messages whose
    name block has the same bytes reuse the same tuple (which also keeps
    :class:`~anymal_ros.ros_io.inputs.JointStateMapper`'s index cache hot).
    """

    def __init__(self) -> None:
        self._names = _BlockCache()

    def __call__(self, data: bytes, order: str, what: str = "joint_states") -> JointStateFields:
        cur = _Cursor(data, order, what)
        stamp = Stamp(*cur.unpack(cur.fmt.stamp))
        cur.skip_string()  # frame_id
        cur.align(4)
        names = self._names.lookup(cur)
        if names is None:
            names = self._read_names(cur)
        position = cur.f64_array()
        velocity = cur.f64_array()
        cur.f64_span()  # effort: unused, but a truncated one makes the message invalid
        return JointStateFields(stamp, names, position, velocity)

    def _read_names(self, cur: _Cursor) -> tuple[str, ...]:
        start = cur.pos
        raw = cur.raw_strings(cur.count(_STRING_MIN))
        layout, pad = "I", ""
        for r in raw:  # padding goes before the next length, none after the last string
            layout += f"{pad}I{len(r)}s"
            pad = _padding(len(r))
        names = tuple(_text(r) for r in raw)
        self._names.store(cur, start, layout, names)
        return names


def read_header_stamp(data: bytes, order: str, what: str) -> Stamp:
    """``header.stamp`` of a message that starts with a ``std_msgs/Header`` (Imu, Odometry,
    PointCloud2, JointState): the payload's first 8 bytes. Read for every message, so
    without a cursor."""
    if len(data) < ENCAPSULATION_SIZE + 8:
        raise InputError(f"{what}: cannot decode message (truncated: no room for a stamp)")
    return Stamp(*_FORMATS[order].stamp.unpack_from(data, ENCAPSULATION_SIZE))


def read_imu(data: bytes, order: str, what: str = "imu") -> tuple[tuple, tuple]:
    """``sensor_msgs/Imu`` -> (orientation ``(x, y, z, w)``, angular velocity ``(x, y, z)``)."""
    cur = _Cursor(data, order, what)
    cur.skip_header()
    cur.align(8)
    start = cur.take(_IMU_SIZE)
    v = cur.fmt.imu.unpack_from(data, start)
    return v[:4], v[4:]


def read_odometry_twist(data: bytes, order: str, what: str = "odom") -> tuple[tuple, tuple]:
    """``nav_msgs/Odometry`` -> ``twist.twist`` (linear ``(x, y, z)``, angular ``(x, y, z)``)."""
    cur = _Cursor(data, order, what)
    cur.skip_header()
    cur.skip_string()  # child_frame_id
    cur.align(8)
    v = cur.fmt.odom_twist.unpack_from(data, cur.take(_ODOM_SIZE))
    return v[:3], v[3:]


def read_odometry(data: bytes, order: str, what: str = "odom") -> tuple[str, tuple, tuple]:
    """``nav_msgs/Odometry`` -> (``header.frame_id``, ``pose.pose`` (position ``(x, y, z)``,
    orientation ``(x, y, z, w)``) as one 7-tuple, ``twist.twist`` (linear, angular) as one
    6-tuple)."""
    cur = _Cursor(data, order, what)
    cur.take(8)  # stamp; the payload starts 8-aligned
    frame = _text(cur.raw_string())
    cur.skip_string()  # child_frame_id
    cur.align(8)
    v = cur.fmt.odom.unpack_from(data, cur.take(_ODOM_SIZE))
    return frame, v[:7], v[7:]


def read_twist(data: bytes, order: str, what: str = "cmd_vel") -> tuple[tuple, tuple]:
    """``geometry_msgs/Twist`` -> (linear ``(x, y, z)``, angular ``(x, y, z)``)."""
    cur = _Cursor(data, order, what)
    v = cur.unpack(cur.fmt.twist)  # the payload starts 8-aligned
    return v[:3], v[3:]


class PointFieldView(NamedTuple):
    """``sensor_msgs/PointField``."""

    name: str
    offset: int
    datatype: int
    count: int


class PointCloudView(NamedTuple):
    """The ``sensor_msgs/PointCloud2`` fields that describe the points; ``data`` is a
    zero-copy view of the message bytes. Read by
    :func:`~anymal_ros.ros_io.inputs.heights_from_cloud` like a message object."""

    height: int
    width: int
    fields: tuple[PointFieldView, ...]
    is_bigendian: bool
    point_step: int
    row_step: int
    data: memoryview


class PointCloudReader:
    """``sensor_msgs/PointCloud2`` -> :class:`PointCloudView` (field list cached like joint
    names: a fixed layout is parsed once)."""

    def __init__(self) -> None:
        self._fields = _BlockCache()

    def __call__(self, data: bytes, order: str, what: str = "height_samples") -> PointCloudView:
        cur = _Cursor(data, order, what)
        cur.skip_header()
        cur.align(4)
        height, width = cur.unpack(cur.fmt.two_u32)
        fields = self._fields.lookup(cur)
        if fields is None:
            fields = self._read_fields(cur)
        is_bigendian = cur.u8() != 0
        point_step = cur.u32()
        row_step = cur.u32()
        size = cur.count(1)
        start = cur.take(size)
        cur.u8()  # is_dense: unused, but must be there
        view = memoryview(data)[start : start + size]
        return PointCloudView(height, width, fields, is_bigendian, point_step, row_step, view)

    def _read_fields(self, cur: _Cursor) -> tuple[PointFieldView, ...]:
        start = cur.pos  # 4-aligned: after width
        fields, layout = [], "I"
        for _ in range(cur.count(_POINT_FIELD_MIN)):
            raw = cur.raw_string()
            offset = cur.u32()
            datatype = cur.u8()
            count = cur.u32()
            fields.append(PointFieldView(_text(raw), offset, datatype, count))
            layout += f"I{len(raw)}s{_padding(len(raw))}IB3xI"
        fields = tuple(fields)
        self._fields.store(cur, start, layout, fields)
        return fields
