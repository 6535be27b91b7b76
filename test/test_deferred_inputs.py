"""Serialized inputs of the policy controller, and the node's two input paths.

The controller tests feed real serialized ROS messages (rclpy.serialization) to a controller
that drives a real exported student, both decoding them (rclpy) and reading them directly
(``read_cdr``, anymal_ros.ros_io.cdr); the node test runs policy_node with ``raw_inputs: false``
over loopback DDS, the path the default (raw) subscriptions replaced.
"""

from __future__ import annotations

import functools
import math
import struct

import numpy as np
import pytest

pytest.importorskip(
    "anymal_ros.obs.proprio",
    reason="the observation contract (obs.proprio/actions, branch sim) is not merged yet",
)

from cdr_helpers import cloud, random_joint_state  # noqa: E402
from geometry_msgs.msg import Twist  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from ros_helpers import FakeRobot  # noqa: E402
from sensor_msgs.msg import Imu, JointState, PointCloud2  # noqa: E402

from anymal_ros.contract import JOINT_NAMES, default_joint_positions  # noqa: E402
from anymal_ros.deploy.runtime import OnnxPolicy  # noqa: E402
from anymal_ros.nodes.controller import (  # noqa: E402
    ControllerConfig,
    PolicyController,
    StampCheck,
)
from anymal_ros.nodes.policy_node import PolicyNode  # noqa: E402
from anymal_ros.nodes.safety import Mode, SafetyConfig  # noqa: E402
from anymal_ros.ros_io.messages import fill_joint_state  # noqa: E402

TYPES = {
    "joint_states": JointState,
    "imu": Imu,
    "odom": Odometry,
    "cmd_vel": Twist,
    "height_samples": PointCloud2,
}


#: The serialized inputs, in the controller's order (the cloud is the height source here; the
#: map has its own tests).
INPUTS = ("joint_states", "imu", "odom", "height_samples", "cmd_vel")
CLOUD = "height_samples"


@pytest.fixture(params=[False, True], ids=["deserialize", "read_cdr"])
def controller(student_path, request):
    c = PolicyController(OnnxPolicy(student_path), ControllerConfig(height_source=CLOUD))
    for name, msg_type in (("joint_states", JointState), ("imu", Imu)):
        decode = functools.partial(deserialize_message, message_type=msg_type)
        c.set_decoder(name, decode, read_cdr=request.param)
    return c


def joint_state_bytes(pos: np.ndarray, sec: int = 0) -> bytes:
    msg = JointState()
    msg.header.stamp.sec = sec
    fill_joint_state(msg, JOINT_NAMES, pos, np.zeros(12))
    return serialize_message(msg)


def imu_bytes(w: float = 1.0) -> bytes:
    msg = Imu()
    msg.orientation.w = w
    return serialize_message(msg)


def test_every_serialized_message_is_validated_on_arrival_and_the_newest_is_used(controller):
    base = default_joint_positions().astype(np.float64)
    for i in range(8):  # 400 Hz for 20 ms: eight messages between two ticks
        data = joint_state_bytes(base + 0.01 * i, sec=i)
        assert controller.receive("joint_states", data, 1.0 + i / 400)
        np.testing.assert_allclose(controller.joint_pos, base + 0.01 * i)
    assert controller.joint_stamp.sec == 7
    now = 1.0 + 7 / 400
    assert controller.monitor.age("joint_states", now + 0.01) == pytest.approx(0.01)
    assert controller.monitor.rate("joint_states", now) == pytest.approx(8 / 2.0)  # 2 s window


def test_a_rejected_newest_message_keeps_the_last_accepted_value_and_age(controller):
    base = default_joint_positions().astype(np.float64)
    assert controller.receive("joint_states", joint_state_bytes(base), 1.0)
    assert controller.receive("imu", imu_bytes(), 1.0)
    assert controller.health(1.0).proprioception
    bad = base.copy()
    bad[3] = math.nan
    assert not controller.receive("joint_states", joint_state_bytes(bad), 1.05)
    assert not controller.receive("imu", b"\x00\x01 not a CDR message", 1.05)
    np.testing.assert_allclose(controller.joint_pos, base)  # never the NaN
    assert controller.monitor.rejected["joint_states"] == 1
    assert "non-finite" in controller.monitor.last_error["joint_states"]
    assert controller.monitor.rejected["imu"] == 1
    assert "cannot decode" in controller.monitor.last_error["imu"]
    # Age runs from the last accepted arrival (1.0), so the watchdog still sees it go stale.
    assert controller.monitor.age("joint_states", 1.2) == pytest.approx(0.2)
    assert not controller.health(1.2).proprioception


@pytest.mark.parametrize("read_cdr", [False, True], ids=["deserialize", "read_cdr"])
def test_header_stamps_are_checked_in_both_decode_paths(student_path, read_cdr):
    def stamped(t: float) -> bytes:
        msg = JointState()
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(t), round((t % 1) * 1e9)
        fill_joint_state(msg, JOINT_NAMES, default_joint_positions(), np.zeros(12))
        return serialize_message(msg)

    decode = functools.partial(deserialize_message, message_type=JointState)
    strict, lenient = (
        PolicyController(
            OnnxPolicy(student_path), ControllerConfig(stamps=StampCheck(0.05, accept_zero))
        )
        for accept_zero in (False, True)
    )
    for c in (strict, lenient):
        c.set_decoder("joint_states", decode, read_cdr=read_cdr)
    now = 100.0
    assert strict.receive("joint_states", stamped(now - 0.09), now)  # within the 0.1 s timeout
    assert strict.receive("joint_states", stamped(now + 0.04), now)  # within the tolerance
    for stamp, error in (
        (now + 0.2, "joint_states: header.stamp 0.200 s in the future (tolerance 0.05 s"),
        (now - 0.2, "joint_states: header.stamp 0.200 s old, older than the joint_states timeout"),
        (0.0, "joint_states: header.stamp is zero (no stamp)"),
    ):
        assert not strict.receive("joint_states", stamped(stamp), now)
        assert strict.monitor.last_error["joint_states"].startswith(error)
    assert strict.monitor.rejected["joint_states"] == 3
    assert lenient.receive("joint_states", stamped(0.0), now)  # accept_unstamped
    assert lenient.joint_stamp.sec == 0


def test_truncated_bytes_are_rejected_and_the_last_value_kept(controller):
    base = default_joint_positions().astype(np.float64)
    assert controller.receive("joint_states", joint_state_bytes(base, sec=1), 1.0)
    data = joint_state_bytes(base + 0.1, sec=2)
    assert not controller.receive("joint_states", data[: len(data) // 2], 1.01)
    assert controller.monitor.rejected["joint_states"] == 1
    assert controller.monitor.last_error["joint_states"].startswith(
        "joint_states: cannot decode message ("
    )
    np.testing.assert_array_equal(controller.joint_pos, base)
    assert controller.joint_stamp.sec == 1


def both_paths(student_path) -> tuple[PolicyController, PolicyController]:
    """Two controllers on the same policy: one deserializes, one reads the bytes. Rejections
    never make an input unusable here (the robot below breaks one input in six)."""
    config = ControllerConfig(
        safety=SafetyConfig(stand_duration=0.1), max_rejected_fraction=1.0, height_source=CLOUD
    )
    pair = []
    for read_cdr in (False, True):
        c = PolicyController(OnnxPolicy(student_path), config)
        for name, msg_type in TYPES.items():
            decode = functools.partial(deserialize_message, message_type=msg_type)
            c.set_decoder(name, decode, read_cdr=read_cdr)
        pair.append(c)
    return pair[0], pair[1]


def robot_messages(rng, step: int) -> dict[str, bytes]:
    """One period of a plausible robot (near the default pose, upright, slow), serialized;
    every few steps one input is broken in a different way."""
    js = random_joint_state(rng, step % 10)
    index = [js.name.index(n) for n in JOINT_NAMES]
    pos = np.array(js.position)
    pos[index] = default_joint_positions() + 0.05 * rng.normal(size=12)
    js.position = pos.tolist()
    imu = Imu()
    imu.header.frame_id = "imu"[: step % 4]
    imu.orientation.x, imu.orientation.y, imu.orientation.z = (0.02 * rng.normal(size=3)).tolist()
    imu.orientation.w = 1.0
    imu.angular_velocity.x, imu.angular_velocity.y, imu.angular_velocity.z = rng.normal(size=3)
    odom = Odometry()
    odom.child_frame_id = "base"[: step % 5]
    odom.twist.twist.linear.x, odom.twist.twist.angular.z = 0.3 * rng.normal(size=2)
    cmd = Twist()
    cmd.linear.x, cmd.linear.y, cmd.angular.z = 2.0 * rng.normal(size=3)  # some get clipped
    heights = cloud(rng, step % 7, layout=step % 4, big_endian=step % 3 == 0)
    data = {
        name: serialize_message(msg)
        for name, msg in zip(INPUTS, (js, imu, odom, heights, cmd), strict=True)
    }
    broken = step % 6
    if broken == 1:
        js.velocity = [math.nan] + list(js.velocity[1:])
        data["joint_states"] = serialize_message(js)
    elif broken == 2:
        data["imu"] = data["imu"][:100]  # truncated
    elif broken == 3:
        odom.twist.twist.linear.y = math.inf
        data["odom"] = serialize_message(odom)
    elif broken == 4:
        data["height_samples"] = data["height_samples"][:-9]
    elif broken == 5:  # other encapsulations go to rclpy: XCDR2 decodes, junk does not
        data["cmd_vel"] = (b"\x00\x07" if step % 12 == 5 else b"\x07\x07") + data["cmd_vel"][2:]
    return data


def assert_same_inputs(decoded: PolicyController, direct: PolicyController) -> None:
    for attr in ("joint_pos", "joint_vel", "quat", "imu_ang_vel", "lin_vel", "ang_vel"):
        np.testing.assert_array_equal(getattr(direct, attr), getattr(decoded, attr))
    np.testing.assert_array_equal(direct.command, decoded.command)
    np.testing.assert_array_equal(direct.heights, decoded.heights)  # NaN == NaN
    stamp, expected = direct.joint_stamp, decoded.joint_stamp
    assert (stamp.sec, stamp.nanosec) == (expected.sec, expected.nanosec)
    assert direct.monitor.rejected == decoded.monitor.rejected
    for name, error in decoded.monitor.last_error.items():
        if "cannot decode" in error:  # rclpy's and the reader's explanations differ
            assert direct.monitor.last_error[name].startswith(f"{name}: cannot decode message")
        else:
            assert direct.monitor.last_error[name] == error


def test_read_cdr_drives_the_controller_exactly_like_decoded_messages(student_path):
    decoded, direct = both_paths(student_path)
    rng = np.random.default_rng(0)
    now, walked = 10.0, 0
    for step in range(60):
        for name, data in robot_messages(rng, step).items():
            assert direct.receive(name, data, now) == decoded.receive(name, data, now)
        assert_same_inputs(decoded, direct)
        if step == 1:
            assert direct.request(Mode.STAND, now) == decoded.request(Mode.STAND, now)
        if step == 10:
            assert direct.request(Mode.WALK, now) == decoded.request(Mode.WALK, now)
        expected, targets = decoded.tick(now), direct.tick(now)
        assert direct.mode is decoded.mode
        if expected is None:
            assert targets is None
        else:
            np.testing.assert_array_equal(targets, expected)
        walked += decoded.mode is Mode.WALK
        now += 0.02
    assert walked > 40  # the policy ran on these inputs
    assert all(decoded.monitor.rejected[n] > 0 for n in INPUTS)  # every input saw rejections


def test_read_cdr_falls_back_to_the_decoder_for_other_encapsulations(student_path):
    c = PolicyController(OnnxPolicy(student_path), ControllerConfig(height_source=CLOUD))
    decoded = []

    def decode(data: bytes) -> Twist:
        decoded.append(data)
        return deserialize_message(data, Twist)

    c.set_decoder("cmd_vel", decode, read_cdr=True)
    plain = b"\x00\x01\x00\x00" + struct.pack("<6d", 0.5, 0.1, 0.0, 0.0, 0.0, -0.3)
    assert c.receive("cmd_vel", plain, 1.0) and decoded == []  # read directly
    np.testing.assert_array_equal(c.command, [0.5, 0.1, -0.3])
    xcdr2 = b"\x00\x07\x00\x00" + struct.pack("<6d", 0.2, 0.0, 0.0, 0.0, 0.0, 0.4)
    assert c.receive("cmd_vel", xcdr2, 1.1) and decoded == [xcdr2]  # rclpy decoded it
    np.testing.assert_array_equal(c.command, [0.2, 0.0, 0.4])
    junk = b"\x07\x07\x00\x00" + plain[4:]
    assert not c.receive("cmd_vel", junk, 1.2) and decoded[-1] == junk
    assert c.monitor.last_error["cmd_vel"].startswith("cmd_vel: cannot decode message (")
    np.testing.assert_array_equal(c.command, [0.2, 0.0, 0.4])


def test_unknown_serialized_input_is_refused(controller):
    with pytest.raises(ValueError, match="unknown input 'lidar'"):
        controller.set_decoder("lidar", bytes)


@pytest.mark.ros
def test_node_with_decoded_subscriptions_walks_and_rejects_nan(ros, student_path):
    robot = ros.add(FakeRobot(ros.context))
    overrides = {
        "model_path": str(student_path),
        "raw_inputs": False,
        "stand_duration": 0.1,
        "diagnostics_period": 0.2,
        "joint_states_timeout": 0.5,
    }
    node = ros.add(
        PolicyNode(
            context=ros.context,
            parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
        )
    )
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert ros.spin_until(lambda: node.controller.health(node.now()).proprioception, 5.0)
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert ros.spin_until(lambda: robot.targets, 5.0)
    ros.spin_for(0.15)
    assert node.controller.request(Mode.WALK, node.now())[0]
    bad = robot.joint_pos.copy()
    bad[0] = math.nan
    robot.joint_pos = bad
    assert ros.spin_until(lambda: node.controller.monitor.rejected["joint_states"] > 3, 5.0)
    assert all(np.all(np.isfinite(t)) for t in robot.targets)
    assert ros.spin_until(lambda: "control_ms.p99" in (robot.diagnostics or [{}])[-1], 5.0)
