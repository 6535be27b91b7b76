"""The policy controller feeds the policy a rate-limited command: a step in cmd_vel reaches the
policy as a ramp, a walk starts from zero, and a stale cmd_vel ramps down to standing still.
A real exported student runs every tick; inputs are real ROS messages."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("anymal_ros.obs.proprio", reason="needs the observation contract")

from cdr_helpers import cloud  # noqa: E402
from geometry_msgs.msg import Twist  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from sensor_msgs.msg import Imu, JointState  # noqa: E402

from anymal_ros.contract import JOINT_NAMES, default_joint_positions  # noqa: E402
from anymal_ros.deploy.runtime import OnnxPolicy  # noqa: E402
from anymal_ros.nodes.controller import ControllerConfig, PolicyController  # noqa: E402
from anymal_ros.nodes.safety import Mode, SafetyConfig  # noqa: E402
from anymal_ros.ros_io.messages import fill_joint_state  # noqa: E402

DT = 0.02
FLAT = cloud(np.random.default_rng(0), 4, heights=np.full((4, 52), -0.5, dtype=np.float32))


def feed_robot(c: PolicyController, now: float) -> None:
    """Fresh proprioception of a robot standing in its default pose, and flat ground."""
    js = JointState()
    fill_joint_state(js, JOINT_NAMES, default_joint_positions().astype(np.float64), np.zeros(12))
    imu = Imu()
    imu.orientation.w = 1.0
    assert c.on_joint_state(js, now) and c.on_imu(imu, now) and c.on_odom(Odometry(), now)
    assert c.on_heights(FLAT, now)


def run(c: PolicyController, now: float, ticks: int, command: Twist | None = None) -> float:
    """``ticks`` control periods of fresh inputs (and ``command`` each tick, if given)."""
    for _ in range(ticks):
        now += DT
        feed_robot(c, now)
        if command is not None:
            c.on_cmd_vel(command, now)
        c.tick(now)
    return now


def walking(student_path, rate=(2.0, 2.0, 4.0), **settings) -> tuple[PolicyController, float]:
    """A controller walking on flat ground (``settings``: more ControllerConfig fields)."""
    config = ControllerConfig(
        safety=SafetyConfig(stand_duration=0.1),
        command_rate_limit=rate,
        height_source="height_samples",
        **settings,
    )
    c = PolicyController(OnnxPolicy(student_path), config)
    now = 1.0
    feed_robot(c, now)
    assert c.request(Mode.STAND, now)[0]
    now = run(c, now, 10)  # the stand (0.1 s) finishes
    assert c.request(Mode.WALK, now)[0], c.safety.reason
    return c, now


def twist(vx: float, vy: float, yaw: float) -> Twist:
    msg = Twist()
    msg.linear.x, msg.linear.y, msg.angular.z = vx, vy, yaw
    return msg


def test_a_command_step_reaches_the_policy_as_a_ramp(student_path):
    c, now = walking(student_path)
    seen = []
    for _ in range(40):
        now += DT
        feed_robot(c, now)
        c.on_cmd_vel(twist(1.0, -0.5, 1.0), now)
        assert c.tick(now) is not None and c.mode is Mode.WALK
        seen.append(c.policy_command.copy())
    seen = np.array(seen)
    np.testing.assert_allclose(c.command, [1.0, -0.5, 1.0])  # the request, clipped only
    np.testing.assert_allclose(seen[0], 0.0)  # the walk's first tick starts from standing
    steps = np.diff(seen, axis=0)
    assert np.all(np.abs(steps) <= np.array([2.0, 2.0, 4.0]) * DT + 1e-12)
    np.testing.assert_allclose(seen[1], [0.04, -0.04, 0.08])
    np.testing.assert_allclose(seen[-1], [1.0, -0.5, 1.0])  # reached, and not overshot
    assert 25 <= np.argmax(seen[:, 0] >= 1.0) <= 26  # 1 m/s at 2 m/s^2: 0.5 s, 25 ticks

    # cmd_vel goes silent: the request drops to zero and the policy's command ramps down.
    now = run(c, now, 26)  # past the 0.5 s cmd_vel timeout
    np.testing.assert_allclose(c.command, 0.0)
    assert 0.0 < c.policy_command[0] < 1.0
    run(c, now, 30)
    np.testing.assert_allclose(c.policy_command, 0.0)


def test_a_new_walk_starts_from_zero_and_zero_rate_means_no_limit(student_path):
    c, now = walking(student_path, rate=(0.0, 0.0, 0.0))
    run(c, now, 1, twist(0.8, 0.2, -0.4))
    np.testing.assert_allclose(c.policy_command, [0.8, 0.2, -0.4])  # at once

    limited, now = walking(student_path)
    now = run(limited, now, 50, twist(0.8, 0.0, 0.0))
    assert limited.policy_command[0] == pytest.approx(0.8)
    assert limited.request(Mode.STAND, now)[0]
    now = run(limited, now, 10)  # the stand (0.1 s) finishes
    assert limited.request(Mode.WALK, now)[0]
    run(limited, now, 1, twist(0.8, 0.0, 0.0))
    np.testing.assert_allclose(limited.policy_command, 0.0)  # standing still again


@pytest.mark.parametrize("rate", [(1.0, 1.0), (1.0, -1.0, 1.0), (1.0, float("nan"), 1.0)])
def test_bad_rate_limits_are_refused(rate):
    with pytest.raises(ValueError, match="command_rate_limit needs 3 finite values >= 0"):
        ControllerConfig(command_rate_limit=rate)
