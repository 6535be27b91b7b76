"""Safety state machine of the policy node, without ROS."""

import math

import numpy as np
import pytest

from anymal_ros.nodes.safety import (
    InputHealth,
    Mode,
    SafetyConfig,
    SafetyStateMachine,
    StandTrajectory,
    clip_to_limits,
    roll_pitch_from_gravity,
)

FRESH = InputHealth(joint_states=True, imu=True, odom=True, heights=True)
DEFAULT = np.linspace(-0.8, 0.8, 12)
UPRIGHT = np.array([0.0, 0.0, -1.0])


def machine(**kw) -> SafetyStateMachine:
    return SafetyStateMachine(SafetyConfig(stand_duration=1.0, **kw), DEFAULT)


def walking(**kw) -> SafetyStateMachine:
    sm = machine(**kw)
    assert sm.request(Mode.STAND, 0.0, FRESH, np.zeros(12))[0]
    assert sm.request(Mode.WALK, 1.0, FRESH, DEFAULT)[0]
    assert sm.mode is Mode.WALK
    return sm


def test_starts_passive_and_walk_needs_a_finished_stand():
    sm = machine()
    assert sm.mode is Mode.PASSIVE
    ok, why = sm.request(Mode.WALK, 0.0, FRESH, np.zeros(12))
    assert not ok and "stand first" in why and sm.mode is Mode.PASSIVE
    assert sm.request(Mode.STAND, 0.0, FRESH, np.zeros(12))[0]
    ok, why = sm.request(Mode.WALK, 0.5, FRESH, np.zeros(12))
    assert not ok and "0.50 s left" in why and sm.mode is Mode.STAND
    assert sm.request(Mode.WALK, 1.0, FRESH, DEFAULT) == (True, "WALK")
    assert sm.walk_started == 1


def test_stand_interpolates_smoothly_from_measured_pose_to_default():
    sm = machine()
    start = np.full(12, 0.3)
    sm.request(Mode.STAND, 10.0, FRESH, start)
    np.testing.assert_allclose(sm.stand_target(10.0), start)
    np.testing.assert_allclose(sm.stand_target(10.5), 0.5 * (start + DEFAULT))
    np.testing.assert_allclose(sm.stand_target(12.0), DEFAULT)
    traj = StandTrajectory(np.zeros(1), np.ones(1), 0.0, 1.0)
    values = [traj.at(t)[0] for t in np.linspace(0, 1, 11)]
    assert all(b >= a for a, b in zip(values, values[1:], strict=False))
    assert traj.at(0.01)[0] < 0.01  # zero velocity at the start: no jump


def test_refuses_stand_and_walk_without_proprioception():
    sm = machine()
    stale = InputHealth(joint_states=False, imu=True, odom=True, heights=True)
    ok, why = sm.request(Mode.STAND, 0.0, stale, np.zeros(12))
    assert not ok and "joint_states" in why and sm.mode is Mode.PASSIVE


def test_walk_refused_with_stale_odom_or_heights_unless_blind():
    sm = machine()
    sm.request(Mode.STAND, 0.0, FRESH, np.zeros(12))
    no_heights = InputHealth(joint_states=True, imu=True, odom=True, heights=False)
    assert not sm.request(Mode.WALK, 2.0, no_heights, DEFAULT)[0]
    no_odom = InputHealth(joint_states=True, imu=True, odom=False, heights=True)
    assert "odometry" in sm.request(Mode.WALK, 2.0, no_odom, DEFAULT)[1]
    blind = machine(blind_walk=True)
    blind.request(Mode.STAND, 0.0, FRESH, np.zeros(12))
    assert blind.request(Mode.WALK, 2.0, no_heights, DEFAULT)[0]


@pytest.mark.parametrize(
    ("health", "expected", "word"),
    [
        (InputHealth(True, True, False, True), Mode.STAND, "odom"),
        (InputHealth(True, True, True, False), Mode.STAND, "heights"),
        (InputHealth(False, True, True, True), Mode.PASSIVE, "joint_states"),
        (InputHealth(True, False, True, True), Mode.PASSIVE, "imu"),
    ],
)
def test_watchdog_leaves_walk(health, expected, word):
    sm = walking()
    assert sm.check(2.0, health, DEFAULT + 0.1, UPRIGHT) is expected
    assert word in sm.last_transition.reason and sm.last_transition.source is Mode.WALK
    if expected is Mode.STAND:  # stands up again from where the joints are now
        np.testing.assert_allclose(sm.stand_target(2.0), DEFAULT + 0.1)


def test_blind_walk_keeps_walking_on_stale_heights_only():
    sm = walking(blind_walk=True)
    assert sm.check(2.0, InputHealth(True, True, True, False), DEFAULT, UPRIGHT) is Mode.WALK
    assert sm.check(2.1, InputHealth(True, True, False, False), DEFAULT, UPRIGHT) is Mode.STAND


def test_proprioception_loss_in_stand_goes_passive_and_passive_stays():
    sm = machine()
    sm.request(Mode.STAND, 0.0, FRESH, np.zeros(12))
    assert sm.check(0.1, InputHealth(True, False, True, True), None, None) is Mode.PASSIVE
    assert sm.check(0.2, InputHealth(False, False, False, False), None, None) is Mode.PASSIVE
    assert len(sm.transitions) == 2


@pytest.mark.parametrize("axis", [0, 1])
def test_tilt_beyond_threshold_goes_passive(axis):
    sm = walking(max_tilt=0.5)
    angle = 0.6
    g = np.array([0.0, 0.0, -math.cos(angle)])
    g[axis] = math.sin(angle) if axis == 0 else -math.sin(angle)
    assert sm.check(2.0, FRESH, DEFAULT, g) is Mode.PASSIVE
    assert "tilt" in sm.last_transition.reason
    small = np.array([math.sin(0.4), 0.0, -math.cos(0.4)])
    sm2 = walking(max_tilt=0.5)
    assert sm2.check(2.0, FRESH, DEFAULT, small) is Mode.WALK


def test_roll_pitch_from_gravity():
    r, p = roll_pitch_from_gravity(np.array([math.sin(0.3), 0.0, -math.cos(0.3)]))
    assert p == pytest.approx(0.3) and r == pytest.approx(0.0)
    r, p = roll_pitch_from_gravity(np.array([0.0, -math.sin(0.2), -math.cos(0.2)]))
    assert r == pytest.approx(0.2) and p == pytest.approx(0.0)
    r, _ = roll_pitch_from_gravity(np.array([0.0, 0.0, 1.0]))
    assert abs(r) == pytest.approx(math.pi)


def test_failed_action_falls_back_to_stand_and_passive_request_always_wins():
    sm = walking()
    sm.action_failed(3.0, "non-finite action", DEFAULT)
    assert sm.mode is Mode.STAND and "non-finite" in sm.last_transition.reason
    assert sm.request(Mode.PASSIVE, 3.1, InputHealth(False, False, False, False), None)[0]
    assert sm.mode is Mode.PASSIVE
    sm.action_failed(3.2, "ignored outside WALK", DEFAULT)
    assert sm.mode is Mode.PASSIVE


def test_re_entering_walk_counts_for_policy_reset():
    sm = walking()
    sm.request(Mode.STAND, 2.0, FRESH, DEFAULT)
    sm.request(Mode.WALK, 3.0, FRESH, DEFAULT)
    assert sm.walk_started == 2


def test_clip_to_limits_and_config_validation():
    out = clip_to_limits(np.array([-2.0, 0.0, 2.0]), np.full(3, -1.0), np.full(3, 1.0))
    np.testing.assert_array_equal(out, [-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(clip_to_limits(np.array([5.0]), None, None), [5.0])
    with pytest.raises(ValueError, match="stand_duration"):
        SafetyConfig(stand_duration=0.0)
    with pytest.raises(ValueError, match="max_tilt"):
        SafetyConfig(max_tilt=-1.0)


def test_stand_and_walk_are_refused_while_tilted():
    sm = machine(max_tilt=0.5)
    tilted = np.array([np.sin(0.7), 0.0, -np.cos(0.7)])  # pitch 0.7 rad
    ok, why = sm.request(Mode.STAND, 0.0, FRESH, np.zeros(12), gravity=tilted)
    assert not ok and why.startswith("cannot enter STAND: tilt:") and "pitch 40 deg" in why
    assert sm.mode is Mode.PASSIVE
    assert sm.request(Mode.STAND, 0.0, FRESH, np.zeros(12), gravity=UPRIGHT)[0]
    ok, why = sm.request(Mode.WALK, 1.0, FRESH, DEFAULT, gravity=tilted)
    assert not ok and "tilt" in why and sm.mode is Mode.STAND


def test_inputs_rejecting_too_much_explain_why_in_refusals_and_transitions():
    rejecting = "joint_states rejected 12 of 40 messages in the last 1 s (more than 10%)"
    sm = walking()
    bad = InputHealth(False, True, True, True, problems={"joint_states": rejecting})
    assert sm.check(2.0, bad, DEFAULT, UPRIGHT) is Mode.PASSIVE
    assert sm.last_transition.reason == f"watchdog: {rejecting}"
    ok, why = sm.request(Mode.STAND, 2.1, bad, DEFAULT)
    assert not ok and rejecting in why
