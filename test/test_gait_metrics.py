"""Gait-quality metrics on hand-made cases: a robot held crouched in the real simulator, robots
falling on their belly or tilted on their feet (the falls' causes), and steps written by hand
for a shank on the ground, a scuffing swing and a joint at its limit; the gait trace and its
figure on a robot standing in the real simulator."""

from __future__ import annotations

import numpy as np
import pytest
from sim_helpers import SMALL_TERRAIN

from anymal_ros.config import from_dict
from anymal_ros.config.sim import SimConfig
from anymal_ros.eval.evaluate import EvalSettings, make_eval_env, run_cell
from anymal_ros.eval.gait import GaitMeter, GaitTrace, plot_gait


class HoldPose:
    """A joint-residual 'policy' that always asks for the same offsets from the default pose."""

    head = "gaussian"

    def __init__(self, offsets: np.ndarray, num_envs: int) -> None:
        self.action = np.tile(np.asarray(offsets, np.float32), (num_envs, 1))

    def reset(self, env_ids: np.ndarray) -> None:
        pass

    def act(self, obs) -> np.ndarray:
        return self.action


def _cell(offsets, **termination) -> dict:
    sim = from_dict(SimConfig, {
        "robot": {"description": "anymal_c_like"},  # its PD loop stands without a policy
        "terrain": dict(SMALL_TERRAIN), "actions": {"mode": "joint_residual", "scale": 1.0},
        "commands": {"lin_vel_x": [0.0, 0.0], "lin_vel_y": [0.0, 0.0], "ang_vel_yaw": [0.0, 0.0]},
        "randomization": {"enabled": False}, "termination": termination,
    })  # fmt: skip
    settings = EvalSettings(terrains=("flat",), num_envs=2, episode_length_s=3.0)
    env = make_eval_env(sim, "flat", settings)
    return run_cell(env, HoldPose(offsets, 2), "none")


def test_a_crouched_robot_reports_a_low_base_and_more_torque():
    stand = _cell(np.zeros(12))
    crouch = np.tile([0.0, 0.5, -1.0], 4) * np.repeat([1, 1, -1, -1], 3)  # hind legs mirrored
    low = _cell(crouch)
    assert 0.85 < stand["base_height_ratio"] < 1.05, stand
    assert low["base_height_ratio"] < 0.8 * stand["base_height_ratio"], low
    assert low["mean_torque"] > stand["mean_torque"]
    assert stand["falls_per_minute"] == low["falls_per_minute"] == 0.0
    assert stand["limb_contacts_per_minute"] == 0.0 and stand["joint_limit_hits_per_minute"] == 0.0


def test_falls_say_whether_the_trunk_went_down():
    buckled = np.tile([0.0, 1.0, 1.0], 4) * np.repeat([1, 1, -1, -1], 3)  # knees give way
    collapse = _cell(buckled)  # on its belly
    nose_down = np.concatenate([np.tile([0.0, 0.5, -1.0], 2), np.zeros(6)])  # front legs bent
    pitched = _cell(nose_down, max_tilt=0.05)  # on its feet, tilted past 0.05 rad
    assert collapse["falls"] == 2 and collapse["falls_base_contact"] == 2, collapse
    assert pitched["falls"] == 2 and pitched["falls_base_contact"] == 0, pitched


def _step(n=1, **over) -> dict:
    gait = {
        "base_height": np.full(n, 0.5),
        "foot_clearance": np.zeros((n, 4)),
        "trunk_clearance": np.full(n, 0.4),
        "foothold_relief": np.zeros((n, 4)),
        "foot_contact": np.ones((n, 4), bool),
        "thigh_shank_contact": np.zeros((n, 8)),
        "joint_pos": np.zeros((n, 12)),
        "joint_vel": np.zeros((n, 12)),
        "joint_effort": np.zeros((n, 12)),
    }
    gait.update(over)
    return gait


def test_shank_contacts_scuffing_swings_and_limit_hits_are_counted():
    meter = GaitMeter(1, 0.02, 0.5, 45.0, -np.ones(12), np.ones(12), 7.5)
    on = np.ones(1, bool)
    shank = np.zeros((1, 8))
    shank[0, 5] = 1.0  # one shank on the ground for two steps, then again later: 2 onsets
    for limbs in (shank, shank, np.zeros((1, 8)), shank):
        meter.update(_step(thigh_shank_contact=limbs), np.zeros(1), on)
    # LF swings twice for 0.12 s: a 10 cm apex, then a 1 cm scuff; between them it loses
    # contact for one 20 ms step (2 mm up: a stance foot's flicker, not a swing); the other
    # feet stay down.
    # Its two swings land on level ground and on a ramp (2 cm of relief); the flicker comes
    # down over an edge (4 cm), which is no landing from a swing and does not count.
    for apex, steps, relief in ((0.10, 6, 0.0), (0.002, 1, 0.04), (0.01, 6, 0.02)):
        for i in range(steps):
            clearance = np.zeros((1, 4))
            clearance[0, 0] = apex if i == steps // 2 else 0.5 * apex
            contact = np.array([[False, True, True, True]])
            meter.update(_step(foot_clearance=clearance, foot_contact=contact), np.zeros(1), on)
        landing = np.full((1, 4), 0.03)  # the standing feet's relief: they do not land
        landing[0, 0] = relief
        meter.update(_step(foothold_relief=landing), np.zeros(1), on)  # touch-down
    at_limit = np.zeros((1, 12))
    at_limit[0, 3] = 0.995  # within 0.02 rad of the upper limit
    meter.update(_step(joint_pos=at_limit), np.zeros(1), on)
    meter.update(_step(), np.zeros(1), np.zeros(1, bool))  # inactive robots do not count
    r = meter.result()
    minutes = 21 * 0.02 / 60
    assert r["limb_contacts_per_minute"] == pytest.approx(2 / minutes)
    assert r["foot_clearance"] == pytest.approx(0.01 + 0.1 * 0.09)  # p10 of {0.01, 0.10}
    assert r["joint_limit_hits_per_minute"] == pytest.approx(1 / minutes)
    assert r["base_height_ratio"] == pytest.approx(1.0)
    assert r["trunk_clearance"] == pytest.approx(0.4)  # 21 counted steps, all at 0.4 m
    assert r["foothold_relief"] == pytest.approx(0.01)  # mean of the two landings, 0 and 2 cm


def test_steps_over_the_joint_speed_limit_are_a_share_of_active_robot_steps():
    meter = GaitMeter(2, 0.02, 0.5, 45.0, -np.ones(12), np.ones(12), 7.5)
    both = np.ones(2, bool)
    fast = np.zeros((2, 12))
    fast[0, 8] = -9.0  # robot 0's LH knee backwards past the limit; robot 1 just under it
    fast[1, :] = 7.4
    meter.update(_step(2, joint_vel=fast), np.zeros(2), both)
    meter.update(_step(2), np.zeros(2), both)
    fast[1, 2] = 8.0  # robot 1 over it too, but already fallen: not counted
    meter.update(_step(2, joint_vel=fast), np.zeros(2), np.array([True, False]))
    assert meter.result()["over_speed_limit"] == pytest.approx(2 / 5)


def test_the_trunks_clearance_is_the_low_tail_of_its_lowest_point_over_active_steps():
    meter = GaitMeter(2, 0.02, 0.5, 45.0, -np.ones(12), np.ones(12), 7.5)
    # robot 0 clears 0.1..1.0 m over ten steps; robot 1 scrapes (0.0) but has already fallen
    for k in range(10):
        low = np.array([0.1 * (k + 1), 0.0])
        meter.update(_step(2, trunk_clearance=low), np.zeros(2), np.array([True, False]))
    assert meter.result()["trunk_clearance"] == pytest.approx(0.1 + 0.9 * 0.1)  # p10


def test_the_gait_trace_follows_robot_0_until_it_falls(tmp_path):
    trace = GaitTrace(0.02, 0.5)
    lift = np.zeros((2, 4))
    lift[0, 0] = 0.07  # robot 0's LF foot 7 cm up
    swing = np.array([[False, True, True, True], [True] * 4])
    trace.update(_step(2, foot_clearance=lift, foot_contact=swing), active=True)
    trace.update(_step(2), active=False)  # robot 0 already between episodes: not recorded
    trace.update(_step(2, base_height=np.array([0.3, 0.5])), active=True, fell=True)
    trace.update(_step(2), active=True)  # after its fall: nothing more
    assert len(trace.base) == 2 and trace.base == [0.5, 0.3] and trace.fell
    assert trace.contact[0].tolist() == [False, True, True, True]
    assert trace.clearance[0][0] == pytest.approx(0.07)
    with pytest.raises(ValueError, match="empty"):
        plot_gait(GaitTrace(0.02, 0.5), tmp_path / "none.png", "nothing")


def test_a_standing_robots_gait_figure(tmp_path):
    sim = from_dict(SimConfig, {
        "robot": {"description": "anymal_c_like"}, "terrain": dict(SMALL_TERRAIN),
        "actions": {"mode": "joint_residual"}, "randomization": {"enabled": False},
    })  # fmt: skip
    env = make_eval_env(sim, "flat", EvalSettings(terrains=("flat",), num_envs=1,
                                                  episode_length_s=1.0))  # fmt: skip
    trace = GaitTrace(env.control_dt, env.robot.nominal_base_height)
    run_cell(env, HoldPose(np.zeros(12), 1), "none", gait_trace=trace)
    assert len(trace.base) == 50 and not trace.fell
    landed = slice(10, None)  # it is spawned a little above the ground and drops first
    assert not np.array(trace.contact)[0].any() and np.array(trace.contact)[landed].all()
    assert np.abs(np.array(trace.clearance)[landed]).max() < 0.01  # soles on the ground
    png = plot_gait(trace, tmp_path / "gait.png", "standing", window_s=0.6, skip_s=0.2)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
