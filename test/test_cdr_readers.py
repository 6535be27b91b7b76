"""The plain-CDR readers (anymal_ros.ros_io.cdr) against rclpy on real serialized messages.

Every check compares two paths over the same bytes: today's (``deserialize_message`` then the
validator on the message object) and the readers' (fields read from the bytes, then the same
validator on plain values). They must agree on the arrays, on every validation error message,
and on which messages cannot be decoded at all.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from cdr_helpers import (
    CLOUD_LAYOUTS,
    POINTFIELD_FLOAT64,
    RANDOM,
    cloud,
    random_imu,
    random_joint_state,
    random_odometry,
    random_twist,
    write_imu,
    write_joint_state,
    write_odometry,
    write_point_cloud,
    write_twist,
)
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Imu, JointState, PointCloud2

from anymal_ros.contract import JOINT_NAMES
from anymal_ros.ros_io.cdr import (
    JointStateReader,
    PointCloudReader,
    plain_cdr_order,
    read_imu,
    read_odometry,
    read_odometry_twist,
    read_twist,
)
from anymal_ros.ros_io.inputs import (
    InputError,
    JointStateMapper,
    command_from_twist,
    command_from_values,
    heights_from_cloud,
    imu_arrays,
    imu_from_values,
    odom_from_values,
    odom_twist,
)

UNDECODABLE = "undecodable"
LOW, HIGH = np.array([-1.0, -0.5, -1.0]), np.array([1.0, 0.5, 1.0])


class Input:
    """One input: its ROS type, today's validator, and the reader + plain-value validator."""

    def __init__(self, msg_type, write, from_msg, read, from_fields) -> None:
        self.msg_type, self.write = msg_type, write
        self.from_msg, self.read, self.from_fields = from_msg, read, from_fields

    def object_path(self, data: bytes):
        try:
            msg = deserialize_message(data, self.msg_type)
        except Exception:  # noqa: BLE001 - anything rclpy refuses
            return UNDECODABLE
        return _validated(self.from_msg, msg)

    def cdr_path(self, data: bytes):
        """What the controller does with ``read_cdr``: the reader, or rclpy for other
        encapsulations."""
        order = plain_cdr_order(data)
        if order is None:
            return self.object_path(data)
        try:
            fields = self.read(data, order)
        except InputError as err:
            assert ": cannot decode message (" in str(err)
            return UNDECODABLE
        return _validated(self.from_fields, fields)


def _validated(fn, value):
    try:
        return fn(value)
    except InputError as err:
        return f"rejected: {err}"


def assert_same(expected, got) -> None:
    if isinstance(expected, str) or isinstance(got, str):
        assert got == expected
        return
    assert len(got) == len(expected)
    for e, g in zip(expected, got, strict=True):
        e, g = np.asarray(e), np.asarray(g)
        assert g.dtype == e.dtype and g.shape == e.shape
        np.testing.assert_array_equal(g, e)  # NaN == NaN here


def joint_input() -> Input:
    mapper = JointStateMapper(JOINT_NAMES)
    return Input(
        JointState,
        write_joint_state,
        lambda m: (m.header.stamp.sec, m.header.stamp.nanosec, *mapper(m)),
        JointStateReader(),
        lambda f: (f.stamp.sec, f.stamp.nanosec, *mapper.map(f.names, f.position, f.velocity)),
    )


INPUTS = {
    "joint_states": joint_input,
    "imu": lambda: Input(Imu, write_imu, imu_arrays, read_imu, lambda f: imu_from_values(*f)),
    "odom": lambda: Input(
        Odometry, write_odometry, odom_twist, read_odometry_twist, lambda f: odom_from_values(*f)
    ),
    # The odometry pose and frame, which the elevation-map path places the feet with.
    "odom_pose": lambda: Input(
        Odometry,
        write_odometry,
        lambda m: (
            m.header.frame_id,
            np.array([getattr(m.pose.pose.position, a) for a in "xyz"]),
            np.array([getattr(m.pose.pose.orientation, a) for a in "xyzw"]),
            np.array([getattr(m.twist.twist.linear, a) for a in "xyz"]),
            np.array([getattr(m.twist.twist.angular, a) for a in "xyz"]),
        ),
        lambda data, order: read_odometry(data, order, "odom_pose"),
        lambda f: (
            f[0],
            np.array(f[1][:3]),
            np.array(f[1][3:]),
            np.array(f[2][:3]),
            np.array(f[2][3:]),
        ),
    ),
    "cmd_vel": lambda: Input(
        Twist,
        write_twist,
        lambda m: (command_from_twist(m, LOW, HIGH),),
        read_twist,
        lambda f: (command_from_values(*f, LOW, HIGH),),
    ),
    "height_samples": lambda: Input(
        PointCloud2,
        write_point_cloud,
        lambda m: (heights_from_cloud(m),),
        PointCloudReader(),
        lambda f: (heights_from_cloud(f),),
    ),
}


def encodings(msg, write) -> list[bytes]:
    """rclpy's own bytes, and ours in both byte orders (checked against rclpy)."""
    out = [serialize_message(msg)]
    for order in "<>":
        data = write(msg, order)
        # repr, not ==: NaN values must compare equal here
        back = deserialize_message(data, type(msg))
        assert repr(back) == repr(msg), f"test writer ({order}) is wrong"
        out.append(data)
    return out


# --- tests -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(INPUTS))
def test_readers_match_rclpy_for_every_alignment_and_both_byte_orders(name):
    rng = np.random.default_rng(list(INPUTS).index(name))
    inp = INPUTS[name]()
    for frame_len in range(10):  # every offset mod 8 of what follows the header
        msg = RANDOM[name](rng, frame_len)
        expected = inp.object_path(serialize_message(msg))
        assert not isinstance(expected, str), expected  # random messages are valid
        for data in encodings(msg, inp.write):
            assert_same(expected, inp.cdr_path(data))


def test_joint_state_rejections_are_the_same_messages():
    rng = np.random.default_rng(3)
    inp = joint_input()
    cases = []
    msg = random_joint_state(rng, 3)
    msg.position = [float("nan")] + list(msg.position[1:])
    cases.append(msg)
    msg = random_joint_state(rng, 4)
    msg.velocity = list(msg.velocity[:-1])
    cases.append(msg)
    msg = random_joint_state(rng, 5)
    msg.name = [n for n in msg.name if n != "RH_KFE"] + ["RH_KFE_extra"]
    cases.append(msg)
    msg = random_joint_state(rng, 6)
    msg.position, msg.velocity, msg.effort = [], [], []  # count 0: no alignment to 8
    cases.append(msg)
    for msg in cases:
        expected = inp.object_path(serialize_message(msg))
        assert expected.startswith("rejected: joint_states")
        for data in encodings(msg, inp.write):
            assert inp.cdr_path(data) == expected


def test_joint_names_parsed_once_whatever_the_padding_and_again_when_they_change():
    rng = np.random.default_rng(4)
    reader = JointStateReader()
    msg = random_joint_state(rng, 1)
    first = reader(write_joint_state(msg, "<", pad=0x00), "<").names
    # Same names, different padding bytes (serializers leave them uninitialised): cache hit.
    assert reader(write_joint_state(msg, "<", pad=0xFF), "<").names is first
    assert reader(serialize_message(msg), "<").names is first
    # One name changed, same length: must not hit.
    i = msg.name.index("LF_HAA")
    msg.name = msg.name[:i] + ["LF_HAB"] + msg.name[i + 1 :]
    changed = reader(serialize_message(msg), "<").names
    assert changed is not first and changed == tuple(msg.name)
    # Big endian after little endian: read afresh, same names.
    assert reader(write_joint_state(msg, ">"), ">").names == tuple(msg.name)


def test_string_rules_follow_rclpy():
    """Text ends at the first NUL, invalid UTF-8 is replaced, length 0 cannot be decoded."""
    inp = joint_input()
    msg = random_joint_state(np.random.default_rng(5), 2)
    data = bytearray(write_joint_state(msg, "<"))
    extra = next(n for n in msg.name if n not in JOINT_NAMES and len(n) >= 3)
    at = data.index(extra.encode() + b"\0")
    data[at + 1] = 0xFF  # invalid UTF-8 in an extra joint's name
    data[at + 2] = 0x00  # and a NUL inside it
    assert_same(inp.object_path(bytes(data)), inp.cdr_path(bytes(data)))
    names = JointStateReader()(bytes(data), "<").names
    assert extra[0] + "\ufffd" in names
    data = bytearray(write_joint_state(msg, "<"))
    struct.pack_into("<I", data, 12, 0)  # frame_id of length 0 (payload byte 8)
    assert inp.object_path(bytes(data)) == UNDECODABLE == inp.cdr_path(bytes(data))


def test_point_cloud_layouts_big_endian_data_and_organised_clouds():
    rng = np.random.default_rng(6)
    inp = INPUTS["height_samples"]()
    for layout in range(len(CLOUD_LAYOUTS)):
        for big_endian in (False, True):
            for organised in (False, True):
                msg = cloud(rng, layout + 2, layout, big_endian, organised)
                expected = inp.object_path(serialize_message(msg))
                assert np.isnan(expected[0]).any()
                for data in encodings(msg, inp.write):
                    assert_same(expected, inp.cdr_path(data))


def test_point_cloud_rejections_are_the_same_messages():
    rng = np.random.default_rng(7)
    inp = INPUTS["height_samples"]()
    inf = np.zeros((4, 52), np.float32)
    inf[1, 2] = np.inf
    edits = [
        lambda m: setattr(m, "width", 207),
        lambda m: setattr(m, "fields", [f for f in m.fields if f.name != "height"]),
        lambda m: setattr(m.fields[3], "datatype", POINTFIELD_FLOAT64),
        lambda m: setattr(m.fields[3], "count", 2),
        lambda m: setattr(m.fields[3], "offset", 13),
        lambda m: setattr(m, "row_step", m.row_step + 4),
        lambda m: setattr(m, "data", bytes(m.data)[:-1]),
    ]
    messages = [cloud(rng, 3, heights=inf)]
    for edit in edits:
        msg = cloud(rng, 3)
        edit(msg)
        messages.append(msg)
    for msg in messages:
        expected = inp.object_path(serialize_message(msg))
        assert expected.startswith("rejected: height_samples"), expected
        for data in encodings(msg, inp.write):
            assert inp.cdr_path(data) == expected


def test_imu_odom_and_command_rejections_are_the_same_messages():
    rng = np.random.default_rng(8)
    imu = random_imu(rng, 1)
    imu.orientation.w = 3.0  # not a unit quaternion
    odom = random_odometry(rng, 2)
    odom.twist.twist.angular.y = float("inf")
    cmd = random_twist(rng)
    cmd.linear.y = float("nan")
    for name, msg in (("imu", imu), ("odom", odom), ("cmd_vel", cmd)):
        inp = INPUTS[name]()
        expected = inp.object_path(serialize_message(msg))
        assert expected.startswith(f"rejected: {name}"), expected
        for data in encodings(msg, inp.write):
            assert inp.cdr_path(data) == expected


@pytest.mark.parametrize("name", list(INPUTS))
def test_every_truncation_cannot_be_decoded(name):
    rng = np.random.default_rng(9)
    inp = INPUTS[name]()
    for order in "<>":
        data = inp.write(RANDOM[name](rng, 5), order)  # no trailing bytes, unlike rclpy's
        for cut in range(len(data)):
            short = data[:cut]
            assert plain_cdr_order(short) == (None if cut < 4 else order)
            assert inp.cdr_path(short) == UNDECODABLE, cut
            assert inp.object_path(short) == UNDECODABLE, cut


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")  # huge values: both reject
@pytest.mark.parametrize("name", list(INPUTS))
def test_corrupted_bytes_give_the_same_outcome_as_rclpy(name):
    """Random byte changes (encapsulation, lengths, counts, flags, values): the readers
    decode exactly what rclpy decodes, to the same values or rejections."""
    rng = np.random.default_rng(10)
    inp = INPUTS[name]()
    outcomes = set()
    for trial in range(300):
        data = bytearray(inp.write(RANDOM[name](rng, int(rng.integers(0, 10))), "<>"[trial % 2]))
        for _ in range(int(rng.integers(1, 4))):
            data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
        data = bytes(data)
        expected = inp.object_path(data)
        assert_same(expected, inp.cdr_path(data))
        outcomes.add("value" if not isinstance(expected, str) else expected.split(":")[0])
    assert "value" in outcomes  # the trials covered decodable messages too


@pytest.mark.parametrize("name", list(INPUTS))
def test_garbage_raises_input_error_naming_the_input(name):
    rng = np.random.default_rng(11)
    read = INPUTS[name]().read
    for _ in range(300):
        size = int(rng.integers(0, 400))
        order = "<>"[int(rng.integers(0, 2))]
        data = (b"\x00\x01" if order == "<" else b"\x00\x00") + b"\x00\x00"
        data += rng.integers(0, 256, size=size, dtype=np.uint8).tobytes()
        try:
            read(data, order)
        except InputError as err:
            assert str(err).startswith(f"{name}: cannot decode message (")


def test_only_plain_cdr_is_read():
    body = struct.pack("<6d", *range(6))
    assert plain_cdr_order(b"\x00\x01\x00\x00" + body) == "<"
    assert plain_cdr_order(b"\x00\x00\x00\x00" + body) == ">"
    assert plain_cdr_order(b"\x00\x01\x01\x00" + body) == "<"  # other option bits: unused
    # Options announcing end padding: rclpy then wants bytes after the message; let it decide.
    assert plain_cdr_order(b"\x00\x01\x00\x03" + body) is None
    # PL_CDR, XCDR2 (both tables' identifiers), XML, junk, and too short: rclpy decides.
    for ident in (2, 3, 4, 6, 7, 8, 9, 10, 11, 0x10, 0x11, 0x15, 0x0100, 0xFFFF):
        assert plain_cdr_order(struct.pack(">H", ident) + b"\x00\x00" + body) is None
    for short in (b"", b"\x00", b"\x00\x01", b"\x00\x01\x00"):
        assert plain_cdr_order(short) is None
