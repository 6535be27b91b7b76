"""policy_node against an adversarial robot, over real rclpy/DDS with a real exported student:
each test injects one fault a fault-injection run found the node accepting (issue 18)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("anymal_ros.obs.proprio", reason="needs the observation contract")

from builtin_interfaces.msg import Time  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from test_policy_node import activate, start, walk  # noqa: E402

from anymal_ros.contract import JOINT_NAMES  # noqa: E402

pytestmark = pytest.mark.ros


def rejected(node, name: str) -> int:
    return node.controller.monitor.rejected[name]


def latest_diagnostics(ros, robot, condition=lambda d: True, timeout: float = 5.0) -> dict:
    """The first /diagnostics report received from now on that meets ``condition``."""
    robot.diagnostics.clear()
    assert ros.spin_until(lambda: any(condition(d) for d in robot.diagnostics), timeout), (
        robot.diagnostics[-1:]
    )
    return next(d for d in robot.diagnostics if condition(d))


@pytest.mark.parametrize("cdr_readers", [True, False], ids=["read_cdr", "deserialize"])
def test_joint_states_naming_a_joint_twice_are_rejected(ros, student_path, cdr_readers):
    node, robot = start(ros, student_path, cdr_readers=cdr_readers)
    robot.joint_names = list(JOINT_NAMES) + ["LF_KFE"]  # LF_KFE twice, different values
    robot.joint_pos = np.append(robot.joint_pos, 1.5)
    robot.joint_vel = np.zeros(13)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert ros.spin_until(lambda: rejected(node, "joint_states") > 3, 5.0)
    assert node.controller.joint_pos is None  # never taken
    diag = latest_diagnostics(ros, robot)
    assert "named more than once: ['LF_KFE']" in diag["joint_states.last_error"]


@pytest.mark.parametrize(
    "fault, name, error",
    [
        ("joint_velocity", "joint_states", "velocity: LF_HFE at 1e+30 rad/s, beyond the plausible"),
        (
            "joint_position",
            "joint_states",
            "position: RH_KFE at 10 rad, outside the plausible [-3.50, 3.50]",
        ),
        ("heights", "height_samples", "208 height(s) beyond the plausible"),
    ],
)
def test_implausible_values_are_rejected_and_named(ros, student_path, fault, name, error):
    # This student carries no joint limits (the bundled one does): give it some.
    limits = {"joint_lower_limits": [-3.0] * 12, "joint_upper_limits": [3.0] * 12}
    if fault == "heights":
        limits["height_source"] = "height_samples"  # the cloud: the map has its own test below
    node, robot = start(ros, student_path, **limits)
    if fault == "joint_velocity":
        robot.joint_vel = np.zeros(12)
        robot.joint_vel[JOINT_NAMES.index("LF_HFE")] = 1e30
    elif fault == "joint_position":
        robot.joint_pos = robot.joint_pos.copy()
        robot.joint_pos[JOINT_NAMES.index("RH_KFE")] = 10.0
    else:
        robot.heights = np.full((4, 52), 1e6, dtype=np.float32)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert ros.spin_until(lambda: rejected(node, name) > 3, 5.0)
    diag = latest_diagnostics(ros, robot)
    assert error in diag[f"{name}.last_error"]
    assert "parameter plausible_" in diag[f"{name}.last_error"]  # says how to widen it


def test_a_spike_in_the_elevation_map_is_a_missing_point_not_a_height(ros, student_path):
    node, robot = start(ros, student_path, stand_duration=0.1)
    robot.map_heights = robot.map_heights.copy()
    robot.map_heights[25:35, 25:35] = 1e6  # under the robot (map centre = base)
    walk(ros, node, robot)  # heights are sampled for the policy, in WALK
    seen = []
    assert ros.spin_until(
        lambda: seen.append(node.controller.implausible_heights) or seen[-1] > 0, 5.0
    )
    assert node.controller.missing_heights >= seen[-1]  # filled, never fed as a height
    diag = latest_diagnostics(ros, robot, lambda d: int(d["heights.implausible_points"]) > 0)
    assert int(diag["heights.missing_points"]) >= int(diag["heights.implausible_points"])


def test_widened_plausibility_margin_accepts_the_value(ros, student_path):
    node, robot = start(ros, student_path, plausible_joint_velocity_factor=1e31)
    robot.joint_vel = np.full(12, 1e30)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert ros.spin_until(lambda: node.controller.joint_vel is not None, 5.0)
    assert rejected(node, "joint_states") == 0


def test_cloud_flagged_big_endian_with_little_endian_bytes_is_rejected(ros, student_path):
    node, robot = start(ros, student_path, height_source="height_samples")
    # Terrain a robot sees: heights in centimetres around the sole, NaN-free.
    robot.heights = np.random.default_rng(0).uniform(-0.3, 0.1, (4, 52)).astype(np.float32)

    def wrong_flag(cloud) -> None:
        cloud.is_bigendian = True  # the bytes stay little endian

    robot.edit["height_samples"] = wrong_flag
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert ros.spin_until(lambda: rejected(node, "height_samples") > 3, 5.0)
    assert node.controller.heights is None
    diag = latest_diagnostics(ros, robot)
    assert "beyond the plausible" in diag["height_samples.last_error"]
    del robot.edit["height_samples"]  # the same heights, correctly flagged, are taken
    assert ros.spin_until(lambda: node.controller.heights is not None, 5.0)
    np.testing.assert_array_equal(node.controller.heights, robot.heights)


@pytest.mark.parametrize(
    "offset, error",
    [
        (10.0, "s in the future"),
        (-10.0, "s old, older than the joint_states timeout"),
        (None, "header.stamp is zero"),
    ],
    ids=["future", "past", "zero"],
)
def test_badly_stamped_joint_states_are_rejected(ros, student_path, offset, error):
    node, robot = start(ros, student_path)

    def restamp(msg) -> None:
        if offset is None:
            msg.header.stamp = Time()
        else:
            t = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9 + offset
            msg.header.stamp = Time(sec=int(t), nanosec=int((t % 1) * 1e9))

    robot.edit["joint_states"] = restamp
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert ros.spin_until(lambda: rejected(node, "joint_states") > 3, 5.0)
    assert node.controller.joint_pos is None
    diag = latest_diagnostics(ros, robot)
    assert error in diag["joint_states.last_error"]


def test_unstamped_inputs_when_allowed_give_targets_stamped_by_the_node(ros, student_path):
    node, robot = start(ros, student_path, accept_unstamped=True)
    for name in ("joint_states", "imu", "odom", "height_samples"):
        robot.edit[name] = lambda msg: setattr(msg.header, "stamp", Time())
    stamps = []
    robot.create_subscription(
        JointState,
        "/policy_node/joint_targets",
        lambda m: stamps.append(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9),
        10,
    )
    activate(ros, node)
    assert ros.spin_until(lambda: len(stamps) >= 3, 5.0)
    assert all(abs(s - node.now()) < 5.0 for s in stamps)  # the node's clock, never zero
    assert rejected(node, "joint_states") == 0


def test_joint_target_rate_limit_clips_counts_and_stands(ros, student_path):
    # A limit far below any policy step (even this near-zero-residual student's): every WALK
    # tick clips.
    node, robot = start(
        ros,
        student_path,
        stand_duration=0.1,
        joint_target_rate_limit=1e-6,
        rate_limit_stand_after=0.3,
        **{f"{name}_timeout": 1.0 for name in ("joint_states", "imu", "odom")},
    )
    flip = [1.0]

    def shake(msg) -> None:  # feedback that changes every message: the policy's output does
        flip[0] = -flip[0]
        msg.position = [p + 0.05 * flip[0] for p in msg.position]

    robot.edit["joint_states"] = shake
    walk(ros, node, robot)
    walking_from = len(robot.targets)
    c = node.controller
    assert ros.spin_until(lambda: c.mode.value == "STAND", 5.0), (
        c.rate_limited,
        list(c.safety.transitions),
        c.last_targets,
        robot.targets[-3:],
    )
    assert "rate limit (1e-06 rad/s) clipped on every tick" in c.safety.last_transition.reason
    assert c.rate_limited >= 10  # 0.3 s of 20 ms ticks
    walked = np.array(robot.targets[walking_from - 1 : walking_from + 5])
    assert np.abs(np.diff(walked, axis=0)).max() < 1e-6  # each step clipped to ~2e-8 rad
    diag = latest_diagnostics(ros, robot, lambda d: d["mode"] == "STAND")
    assert int(diag["joint_targets.rate_limited"]) >= 10


def test_diagnostics_return_to_ok_once_inputs_are_clean(ros, student_path):
    node, robot = start(ros, student_path, diagnostics_error_window=0.6)
    bad = [10]

    def nan_burst(msg) -> None:
        if bad[0] > 0:
            bad[0] -= 1
            msg.velocity = [math.nan] * len(msg.velocity)

    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert ros.spin_until(lambda: node.controller.joint_pos is not None, 5.0)
    robot.edit["joint_states"] = nan_burst
    assert ros.spin_until(lambda: rejected(node, "joint_states") == 10, 5.0)
    diag = latest_diagnostics(ros, robot)
    assert diag["_level"] > 0 and "non-finite" in diag["joint_states.last_error"]
    # Clean from now on: within the error window (plus a report) the status is OK again.
    diag = latest_diagnostics(ros, robot, lambda d: d["_level"] == 0)
    assert diag["_message"] == "PASSIVE" and "joint_states.last_error" not in diag
    assert diag["joint_states.rejected"] == "10" and diag["joint_states.rejected_recent"] == "0"


@pytest.mark.parametrize(
    "model", ["corrupt", "truncated", "missing"], ids=["corrupt", "truncated", "missing"]
)
def test_failed_configure_is_reported_on_diagnostics(ros, student_path, tmp_path, model):
    path = tmp_path / "student.onnx"
    if model == "corrupt":
        path.write_bytes(b"not an onnx file")
    elif model == "truncated":
        data = student_path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    node, robot = start(ros, path)
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert node.controller is None
    diag = latest_diagnostics(ros, robot)
    assert diag["_level"] == 2 and diag["mode"] == "UNCONFIGURED"
    assert diag["_message"].startswith("unconfigured: configure failed:")
    assert str(path) in diag["configure_error"]


def test_stand_while_tilted_is_refused_with_the_reason(ros, student_path):
    node, robot = start(ros, student_path, activate_mode="passive")
    roll = 1.0  # rad, beyond max_tilt 0.8
    robot.quat_wxyz = np.array([math.cos(roll / 2), math.sin(roll / 2), 0.0, 0.0])
    activate(ros, node)
    response = ros.call(robot.mode_clients["stand"], Trigger.Request())
    assert not response.success
    assert "tilt: roll 57 deg" in response.message and "beyond 46 deg" in response.message
    assert node.controller.mode.value == "PASSIVE"


def test_sustained_nan_in_a_third_of_joint_states_goes_passive(ros, student_path):
    # Watchdog timeouts far above the gaps between good messages: the rejection rule, not
    # staleness, has to stop the robot.
    node, robot = start(
        ros,
        student_path,
        stand_duration=0.1,
        **{f"{name}_timeout": 1.0 for name in ("joint_states", "imu", "odom")},
    )
    sent = [0]
    every = [20]  # first 1 message in 20 (5 %): below max_rejected_fraction (10 %)

    def nan_every(msg) -> None:
        sent[0] += 1
        if sent[0] % every[0] == 0:
            msg.position = [math.nan] + list(msg.position[1:])

    robot.edit["joint_states"] = nan_every
    walk(ros, node, robot)
    c = node.controller
    ros.spin_for(1.5)
    assert c.mode.value == "WALK", c.safety.last_transition
    assert rejected(node, "joint_states") > 0
    every[0] = 3  # a third of the messages: PASSIVE within the rejection window
    assert ros.spin_until(lambda: c.mode.value == "PASSIVE", 3.0)
    reason = c.safety.last_transition.reason
    assert reason.startswith("watchdog: joint_states rejected") and "(more than 10%)" in reason
    ros.spin_for(0.5)  # the window now holds mostly the 1-in-3 pattern, far above 10 %
    response = ros.call(robot.mode_clients["stand"], Trigger.Request())
    assert not response.success and "joint_states rejected" in response.message
