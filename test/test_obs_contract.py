"""The numpy-only observation contract: proprio builder, height-sample geometry, action
decoding (shared by the simulator and the ROS node)."""

import numpy as np
import pytest

from anymal_ros.config.robot import load_robot
from anymal_ros.contract import (
    JOINT_NAMES,
    default_joint_positions,
    height_sample_offsets,
    index_by_name,
    proprio_layout,
)
from anymal_ros.obs import extero
from anymal_ros.obs.actions import ActionDecoder, swing_height
from anymal_ros.obs.kinematics import LegKinematics
from anymal_ros.obs.proprio import ProprioBuilder
from anymal_ros.sim.robot import leg_chains_of


def _state(rng, n):
    quat = rng.normal(size=(n, 4))
    quat /= np.linalg.norm(quat, axis=1, keepdims=True)
    return dict(
        joint_pos=rng.normal(size=(n, 12)),
        joint_vel=rng.normal(size=(n, 12)),
        base_quat=quat,
        base_lin_vel=rng.normal(size=(n, 3)),
        base_ang_vel=rng.normal(size=(n, 3)),
        command=rng.normal(size=(n, 3)),
        joint_targets=rng.normal(size=(n, 12)),
    )


@pytest.mark.parametrize("cpg", [False, True])
def test_proprio_layout_and_values(cpg):
    rng = np.random.default_rng(0)
    b = ProprioBuilder(3, cpg=cpg)
    extra = {}
    if cpg:
        extra = dict(cpg_phase=rng.uniform(0, 6, (3, 4)), cpg_frequency=np.ones((3, 4)),
                     cpg_base_frequency=1.25)  # fmt: skip
    st = _state(rng, 3)
    out = b.build(**st, **extra)
    layout = proprio_layout(cpg)
    assert out.shape == (3, layout.dim) == (3, 133 if cpg else 120)
    assert out.dtype == np.float32
    s = layout.slices()
    np.testing.assert_allclose(out[:, s["command"]], st["command"], rtol=1e-6)
    np.testing.assert_allclose(
        out[:, s["joint_pos"]], st["joint_pos"] - default_joint_positions(), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(np.linalg.norm(out[:, s["gravity"]], axis=1), 1.0, rtol=1e-5)
    # Fresh histories repeat the current value.
    err = (st["joint_targets"] - st["joint_pos"]).astype(np.float32)
    np.testing.assert_allclose(out[:, s["joint_pos_error_history"]], np.tile(err, 3), rtol=1e-5)
    if cpg:
        phase = extra["cpg_phase"]
        np.testing.assert_allclose(
            out[:, s["cpg_phase"]], np.concatenate([np.sin(phase), np.cos(phase)], 1), atol=1e-6
        )
        np.testing.assert_allclose(out[:, s["cpg_frequency"]][:, 4], 1.25)


def test_proprio_histories_shift_and_reset_per_env():
    rng = np.random.default_rng(1)
    b = ProprioBuilder(2, cpg=False)
    s = proprio_layout(False).slices()
    states = [_state(rng, 2) for _ in range(4)]
    outs = [b.build(**st) for st in states[:3]]
    vel_hist = outs[2][:, s["joint_vel_history"]].reshape(2, 2, 12)
    np.testing.assert_allclose(vel_hist[:, 0], states[1]["joint_vel"], rtol=1e-5)
    np.testing.assert_allclose(vel_hist[:, 1], states[0]["joint_vel"], rtol=1e-5)
    tgt_hist = outs[2][:, s["joint_target_history"]].reshape(2, 2, 12)
    np.testing.assert_allclose(tgt_hist[:, 0], states[2]["joint_targets"], rtol=1e-5)
    np.testing.assert_allclose(tgt_hist[:, 1], states[1]["joint_targets"], rtol=1e-5)
    b.reset([1])
    out = b.build(**states[3])
    vel_hist = out[:, s["joint_vel_history"]].reshape(2, 2, 12)
    np.testing.assert_allclose(vel_hist[0, 0], states[2]["joint_vel"][0], rtol=1e-5)  # kept
    np.testing.assert_allclose(vel_hist[1, 0], states[3]["joint_vel"][1], rtol=1e-5)  # refilled


def test_proprio_single_robot_and_bad_input():
    b = ProprioBuilder(1, cpg=False)
    st = {k: v[0] for k, v in _state(np.random.default_rng(2), 1).items()}
    assert b.build(**st).shape == (1, 120)
    st["joint_vel"] = np.full(12, np.nan)
    with pytest.raises(ValueError, match="joint_vel"):
        b.build(**st)
    st["joint_vel"] = np.zeros(11)
    with pytest.raises(ValueError, match="joint_vel"):
        b.build(**st)
    with pytest.raises(ValueError, match="cpg"):
        ProprioBuilder(1, cpg=True).build(**_state(np.random.default_rng(3), 1))


def test_message_order_is_mapped_by_name():
    """A joint-state message in any order gives the same observation after index_by_name."""
    rng = np.random.default_rng(4)
    st = _state(rng, 1)
    perm = rng.permutation(12)
    names = [JOINT_NAMES[i] for i in perm]
    msg_pos, msg_vel = st["joint_pos"][0, perm], st["joint_vel"][0, perm]
    order = index_by_name(names)
    mapped = dict(st, joint_pos=msg_pos[order], joint_vel=msg_vel[order])
    a = ProprioBuilder(1, cpg=False).build(**st)
    b = ProprioBuilder(1, cpg=False).build(**mapped)
    np.testing.assert_array_equal(a, b)


def test_sample_points_follow_yaw_and_foot():
    feet = np.array([[[1.0, 2.0], [0, 0], [0, 0], [0, 0]]])
    pts = extero.sample_points(feet, np.array([np.pi / 2]))
    off = height_sample_offsets()
    assert pts.shape == (1, 4, 52, 2)
    # Rotated by 90 degrees: offset (x, y) -> (-y, x).
    np.testing.assert_allclose(pts[0, 0, :, 0], 1.0 - off[:, 1], atol=1e-6)
    np.testing.assert_allclose(pts[0, 0, :, 1], 2.0 + off[:, 0], atol=1e-6)


def test_bilinear_is_exact_on_planes_and_relative_heights():
    ys, xs = np.mgrid[0:20, 0:30] * 0.1
    grid = 0.3 * xs - 0.2 * ys + 1.0
    pts = np.random.default_rng(5).uniform(0.2, 1.8, size=(7, 2))
    h = extero.bilinear_heights(grid, (0.0, 0.0), 0.1, pts)
    np.testing.assert_allclose(h, 0.3 * pts[:, 0] - 0.2 * pts[:, 1] + 1.0, atol=1e-9)
    rel = extero.relative_heights(np.ones((2, 4, 52)), np.full((2, 4), 0.25))
    assert rel.dtype == np.float32
    np.testing.assert_allclose(rel, 0.75)


def _kinematics() -> LegKinematics:
    return LegKinematics(leg_chains_of(load_robot()))


@pytest.mark.parametrize("robot", ["anymal_c", "anymal_c_like"])
def test_leg_ik_inverts_fk(robot):
    kin = LegKinematics(leg_chains_of(load_robot(robot)))
    rng = np.random.default_rng(6)
    q = default_joint_positions() + rng.uniform(-0.3, 0.3, size=(50, 12))
    feet = kin.forward(q)
    np.testing.assert_allclose(kin.inverse(feet, seed=default_joint_positions()), q, atol=1e-7)


def test_action_decoder_modes():
    dec = ActionDecoder("joint_residual", 2, action_scale=0.5)
    assert dec.action_dim == 12
    a = np.zeros((2, 12))
    a[0, 2] = 1.0
    t = dec.decode(a)
    np.testing.assert_allclose(t[1], default_joint_positions(), atol=1e-7)
    assert t[0, 2] == pytest.approx(default_joint_positions()[2] + 0.5)
    with pytest.raises(ValueError, match="shape"):
        dec.decode(np.zeros((2, 16)))

    cpg = ActionDecoder(
        "cpg", 2, control_dt=0.02, base_frequency=1.25, swing_height=0.08, kinematics=_kinematics()
    )
    assert cpg.action_dim == 16
    t = cpg.decode(np.zeros((2, 16)))
    # RF and LH start in stance (phase pi): exactly the default pose; LF/RH lift their feet.
    np.testing.assert_allclose(
        t[:, 3:9], np.tile(default_joint_positions()[3:9], (2, 1)), atol=1e-7
    )
    assert np.all(np.abs(t[:, 0:3] - default_joint_positions()[0:3]).sum(1) > 1e-3)
    np.testing.assert_allclose(cpg.phase[:, 0], 2 * np.pi * 1.25 * 0.02)
    faster = np.zeros((2, 16))
    faster[:, :4] = 1.0
    cpg.decode(faster)
    np.testing.assert_allclose(cpg.frequency, 2.25)
    cpg.reset([0])
    assert cpg.phase[0, 0] == 0.0 and cpg.phase[1, 0] > 0.0
    assert swing_height(np.array([np.pi / 2]), 0.08)[0] == pytest.approx(0.08)
    assert swing_height(np.array([1.5 * np.pi]), 0.08)[0] == 0.0


def test_decoder_gives_the_proprio_builder_its_cpg_inputs():
    residual = ActionDecoder("joint_residual", 3)
    assert residual.proprio_cpg_kwargs() == {}
    assert residual.proprio_cpg_kwargs(np.array([1])) == {}
    dec = ActionDecoder("cpg", 3, base_frequency=1.25, kinematics=_kinematics())
    faster = np.zeros((3, 16))
    faster[2, :4] = 1.0
    dec.decode(faster)
    ids = np.array([2, 0])
    kw = dec.proprio_cpg_kwargs(ids)
    assert set(kw) == {"cpg_phase", "cpg_frequency", "cpg_base_frequency"}
    np.testing.assert_array_equal(kw["cpg_phase"], dec.phase[ids])
    np.testing.assert_array_equal(kw["cpg_frequency"], [[2.25] * 4, [1.25] * 4])
    assert kw["cpg_base_frequency"] == 1.25
    np.testing.assert_array_equal(dec.proprio_cpg_kwargs()["cpg_phase"], dec.phase)
    # Exactly what ProprioBuilder.build needs for those robots: a CPG-sized vector.
    st = _state(np.random.default_rng(1), 2)
    out = ProprioBuilder(3, cpg=True).build(**st, env_ids=ids, **kw)
    s = proprio_layout(True).slices()
    np.testing.assert_allclose(out[:, s["cpg_frequency"]][:, :4], kw["cpg_frequency"])


def test_cpg_decode_interpolates_the_analytic_gait_within_a_microradian():
    dec = ActionDecoder("cpg", 64, action_scale=0.25, swing_height=0.12, kinematics=_kinematics())
    rng = np.random.default_rng(3)
    for _ in range(5):
        action = rng.normal(size=(64, 16))
        targets = dec.decode(action)
        exact = dec.nominal_joint_angles(dec.phase) + 0.25 * action[:, 4:]
        np.testing.assert_allclose(targets, exact, rtol=0, atol=1e-6)
    # The cycle's ends (phase 0 and just below 2 pi) stay inside the table.
    dec.phase[:2] = [[0.0] * 4, [np.nextafter(2 * np.pi, 0)] * 4]
    ends = dec._interpolated_nominal(dec.phase[:2])
    np.testing.assert_allclose(ends, dec.nominal_joint_angles(dec.phase[:2]), atol=1e-6)
