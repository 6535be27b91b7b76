"""Message -> array conversion, validation and staleness of the policy node's inputs."""

import math

import numpy as np
import pytest
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from sensor_msgs.msg import Imu, JointState

from anymal_ros.contract import JOINT_NAMES
from anymal_ros.nodes.diagnostics import LatencyWindow, status_level, status_values
from anymal_ros.ros_io.inputs import (
    InputError,
    InputMonitor,
    JointStateMapper,
    command_from_twist,
    fill_missing,
    heights_from_cloud,
    imu_arrays,
    odom_twist,
)
from anymal_ros.ros_io.messages import fill_joint_state, height_cloud


def joint_msg(names, pos, vel=None) -> JointState:
    msg = JointState()
    fill_joint_state(msg, names, pos, np.zeros(len(names)) if vel is None else vel)
    return msg


def test_joint_states_mapped_by_name_with_extras_ignored():
    mapper = JointStateMapper(JOINT_NAMES)
    rng = np.random.default_rng(0)
    order = rng.permutation(12)
    names = [JOINT_NAMES[i] for i in order] + ["arm_joint"]
    pos = np.append(order.astype(float), 99.0)  # value = policy index of that joint
    vel = -pos
    q, qd = mapper(joint_msg(names, pos, vel))
    np.testing.assert_array_equal(q, np.arange(12))
    np.testing.assert_array_equal(qd, -np.arange(12))
    # A different order on the next message re-maps.
    q2, _ = mapper(joint_msg(list(JOINT_NAMES), np.arange(12.0)))
    np.testing.assert_array_equal(q2, np.arange(12))


def test_joint_states_rejections_name_the_problem():
    mapper = JointStateMapper(JOINT_NAMES)
    with pytest.raises(InputError, match="LF_HAA"):
        mapper(joint_msg(list(JOINT_NAMES[1:]), np.zeros(11)))
    msg = joint_msg(list(JOINT_NAMES), np.zeros(12))
    msg.velocity = []
    with pytest.raises(InputError, match="velocities"):
        mapper(msg)
    pos = np.zeros(12)
    pos[4] = math.nan
    with pytest.raises(InputError, match="non-finite"):
        mapper(joint_msg(list(JOINT_NAMES), pos))


def test_imu_quaternion_reordered_and_checked():
    msg = Imu()
    msg.orientation.x, msg.orientation.w = 0.0, 1.0
    msg.angular_velocity.z = 0.5
    quat, ang = imu_arrays(msg)
    np.testing.assert_allclose(quat, [1, 0, 0, 0])
    np.testing.assert_allclose(ang, [0, 0, 0.5])
    msg.orientation.w = 0.0  # all-zero quaternion: "no orientation" is not upright
    with pytest.raises(InputError, match="norm"):
        imu_arrays(msg)
    msg.orientation.w = math.nan
    with pytest.raises(InputError, match="imu.orientation"):
        imu_arrays(msg)


def test_odom_and_command():
    msg = Odometry()
    msg.twist.twist.linear.x = 0.7
    msg.twist.twist.angular.z = -0.2
    lin, ang = odom_twist(msg)
    np.testing.assert_allclose(lin, [0.7, 0, 0])
    np.testing.assert_allclose(ang, [0, 0, -0.2])
    msg.twist.twist.linear.y = math.inf
    with pytest.raises(InputError, match="odom"):
        odom_twist(msg)
    cmd = Twist()
    cmd.linear.x, cmd.linear.y, cmd.angular.z = 5.0, -0.1, -9.0
    out = command_from_twist(cmd, np.array([-1.0, -0.5, -1.0]), np.array([1.0, 0.5, 1.0]))
    np.testing.assert_allclose(out, [1.0, -0.1, -1.0])


def test_height_cloud_round_trip_and_missing_fill():
    rng = np.random.default_rng(1)
    heights = rng.normal(size=(4, 52)).astype(np.float32)
    heights[2, 7] = np.nan
    points = rng.normal(size=(4, 52, 3))
    out = heights_from_cloud(height_cloud(heights, points, "odom"))
    np.testing.assert_array_equal(np.isnan(out), np.isnan(heights))
    np.testing.assert_allclose(out[~np.isnan(out)], heights[~np.isnan(heights)])
    filled, missing = fill_missing(out, -2.0)
    assert missing == 1 and filled[2, 7] == -2.0 and filled.dtype == np.float32


def test_height_cloud_rejections():
    msg = height_cloud(np.zeros((4, 51)), None, "odom")
    with pytest.raises(InputError, match="204 points"):
        heights_from_cloud(msg)
    msg = height_cloud(np.zeros((4, 52)), None, "odom")
    msg.fields = [f for f in msg.fields if f.name != "height"]
    with pytest.raises(InputError, match="no 'height' field"):
        heights_from_cloud(msg)
    inf = np.zeros((4, 52))
    inf[0, 0] = np.inf
    with pytest.raises(InputError, match="infinite"):
        heights_from_cloud(height_cloud(inf, None, "odom"))
    msg = height_cloud(np.zeros((4, 52)), None, "odom")
    msg.data = bytes(msg.data)[:-4]
    with pytest.raises(InputError, match="data bytes"):
        heights_from_cloud(msg)


def test_input_monitor_age_rate_and_freshness():
    mon = InputMonitor({"imu": 0.1, "odom": 0.5}, rate_window=1.0)
    assert math.isinf(mon.age("imu", 0.0)) and not mon.fresh("imu", 0.0)
    for i in range(100):
        mon.received("imu", i * 0.01)
    assert mon.rate("imu", 0.99) == pytest.approx(100, abs=1)
    assert mon.fresh("imu", 1.05) and not mon.fresh("imu", 1.2)
    mon.reject("odom", "odom: bad", 1.0)
    assert mon.rejected["odom"] == 1 and mon.last_error["odom"] == "odom: bad"
    with pytest.raises(ValueError, match="imu"):
        InputMonitor({"imu": 0.0})


def test_latency_window_and_status_values():
    win = LatencyWindow(size=100)
    assert math.isnan(win.summary_ms()["p50"])
    for i in range(1, 201):
        win.add(i * 1e-4)  # only the last 100 (0.0101..0.02 s) count
    s = win.summary_ms()
    assert s["max"] == pytest.approx(20.0) and 14.0 < s["p50"] < 16.0 and s["count"] == 200
    values = dict(
        status_values(
            mode="STAND",
            ages={"imu": 0.01, "odom": math.inf},
            rates={"imu": 400.0, "odom": 0.0},
            rejected={"imu": 2},
            errors={"imu": "imu.orientation: NaN"},
            latency=s,
            transitions=["a", "b"],
            missing_heights=3,
            ticks=10,
            missed_ticks=0,
        )
    )
    assert values["odom.age_s"] == "never" and values["imu.rejected"] == "2"
    assert values["transition[-1]"] == "b" and values["inference_ms.max"] == "20.000"
    assert status_level("PASSIVE", ["imu"], {})[0] == 2
    assert status_level("WALK", [], {"imu": "x"})[0] == 1
    assert status_level("WALK", [], {}) == (0, "WALK")


def test_joint_states_naming_a_joint_twice_are_rejected():
    mapper = JointStateMapper(JOINT_NAMES)
    names = list(JOINT_NAMES) + ["LF_KFE", "arm", "arm"]
    with pytest.raises(InputError, match=r"named more than once: \['LF_KFE', 'arm'\]"):
        mapper(joint_msg(names, np.zeros(15)))
    q, _ = mapper(joint_msg(list(JOINT_NAMES), np.arange(12.0)))  # a good message after it
    np.testing.assert_array_equal(q, np.arange(12))


def test_input_monitor_rejection_fraction_and_recent_errors():
    mon = InputMonitor({"imu": 0.1}, rejection_window=1.0, max_rejected_fraction=0.1)
    for i in range(100):  # 100 Hz for 1 s, every 10th rejected: exactly 10 %, not more
        t = i * 0.01
        mon.arrived("imu", t)
        if i % 10 == 9:
            mon.reject("imu", f"imu: bad {i}", t)
        else:
            mon.accepted("imu", t)
    assert mon.rejecting("imu", 0.995) is None
    mon.arrived("imu", 1.0)
    mon.reject("imu", "imu: bad again", 1.0)  # 11 of 101 in the last second (both ends)
    assert "imu rejected 11 of 101 messages in the last 1 s" in mon.rejecting("imu", 1.0)
    assert mon.recent_errors(1.0) == {"imu": "imu: bad again"}
    assert mon.recent_rejections("imu", 1.0) == 11
    assert mon.rejecting("imu", 2.5) is None  # the window has passed
    assert mon.recent_errors(11.5) == {} and mon.rejected["imu"] == 11  # cleared; total stays


def test_byte_swapped_clouds_of_plausible_heights_are_rejected():
    from anymal_ros.nodes.plausibility import PlausibleRanges, training_height_range

    assert 1.0 < training_height_range() < 5.0
    ranges = PlausibleRanges.for_policy(JOINT_NAMES, None, None, 7.5, 0.5, 4.0, 1.0)
    rng = np.random.default_rng(0)
    for trial in range(200):
        heights = rng.uniform(-0.5, 0.5, (4, 52)).astype(np.float32)
        if trial % 2:
            heights = np.round(heights * 8) / 8  # few mantissa bits: swap to subnormals
        ranges.check_heights(heights)  # as measured: plausible
        msg = height_cloud(heights, None, "odom")
        msg.is_bigendian = True  # but the bytes are little endian
        if np.any(heights != 0):
            with pytest.raises(InputError, match="height_samples: .*(plausible|subnormal)"):
                ranges.check_heights(heights_from_cloud(msg))
