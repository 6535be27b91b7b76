"""Deferred (serialized) inputs of the policy controller, and the node's two input paths.

The controller tests feed real serialized ROS messages (rclpy.serialization) to a controller
that drives a real exported student; the node test runs policy_node with ``raw_inputs: false``
over loopback DDS, the path the default (raw) subscriptions replaced.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

pytest.importorskip(
    "anymal_ros.obs.proprio",
    reason="the observation contract (obs.proprio/actions, branch sim) is not merged yet",
)

from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from ros_helpers import FakeRobot  # noqa: E402
from sensor_msgs.msg import Imu, JointState  # noqa: E402

from anymal_ros.deploy.runtime import OnnxPolicy  # noqa: E402
from anymal_ros.nodes.controller import ControllerConfig, PolicyController  # noqa: E402
from anymal_ros.nodes.messages import fill_joint_state  # noqa: E402
from anymal_ros.nodes.policy_node import PolicyNode  # noqa: E402
from anymal_ros.nodes.safety import Mode  # noqa: E402
from anymal_ros.obs.layout import JOINT_NAMES, default_joint_positions  # noqa: E402


@pytest.fixture
def controller(student_path):
    c = PolicyController(OnnxPolicy(student_path), ControllerConfig())
    c.set_decoder("joint_states", functools.partial(deserialize_message, message_type=JointState))
    c.set_decoder("imu", functools.partial(deserialize_message, message_type=Imu))
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


def test_only_the_newest_deferred_message_is_decoded_and_all_arrivals_count(controller):
    base = default_joint_positions().astype(np.float64)
    for i in range(8):  # 400 Hz for 20 ms: eight messages between two ticks
        controller.defer("joint_states", joint_state_bytes(base + 0.01 * i, sec=i), 1.0 + i / 400)
    assert controller.joint_pos is None  # nothing decoded before the controller needs it
    assert controller.drain() == ("joint_states",)
    np.testing.assert_allclose(controller.joint_pos, base + 0.07)
    assert controller.joint_stamp.sec == 7
    now = 1.0 + 7 / 400
    assert controller.monitor.age("joint_states", now + 0.01) == pytest.approx(0.01)
    assert controller.monitor.rate("joint_states", now) == pytest.approx(8 / 2.0)  # 2 s window
    assert controller.drain() == ()  # nothing pending any more


def test_a_rejected_newest_message_keeps_the_last_accepted_value_and_age(controller):
    base = default_joint_positions().astype(np.float64)
    controller.defer("joint_states", joint_state_bytes(base), 1.0)
    controller.defer("imu", imu_bytes(), 1.0)
    assert controller.health(1.0).proprioception  # health() decodes what is pending
    bad = base.copy()
    bad[3] = math.nan
    controller.defer("joint_states", joint_state_bytes(bad), 1.05)
    controller.defer("imu", b"\x00\x01 not a CDR message", 1.05)
    assert controller.drain() == ()
    np.testing.assert_allclose(controller.joint_pos, base)  # never the NaN
    assert controller.monitor.rejected["joint_states"] == 1
    assert "non-finite" in controller.monitor.last_error["joint_states"]
    assert controller.monitor.rejected["imu"] == 1
    assert "cannot decode" in controller.monitor.last_error["imu"]
    # Age runs from the last accepted arrival (1.0), so the watchdog still sees it go stale.
    assert controller.monitor.age("joint_states", 1.2) == pytest.approx(0.2)
    assert not controller.health(1.2).proprioception


def test_unknown_deferred_input_is_refused(controller):
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
