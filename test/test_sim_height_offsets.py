"""QuadrupedVecEnv.heights_at_offsets: heights at x/y-shifted sample points (height noise)."""

import numpy as np
import pytest
import torch
from distill_helpers import small_pair
from test_sim_env import QUIET, make_cfg

from anymal_ros.config.distill import DAggerConfig
from anymal_ros.config.models import ActionHeadConfig
from anymal_ros.config.noise import HeightNoiseConfig, NoiseLevels
from anymal_ros.obs.extero import sample_points
from anymal_ros.obs.height_noise import HeightNoise, HeightNoiseView
from anymal_ros.obs.rotations import yaw_from_quat
from anymal_ros.rl.dagger import DAggerCollector
from anymal_ros.rl.distill_storage import DistillRollout
from anymal_ros.sim.env import QuadrupedVecEnv

STEP = 0.15  # m


def _flat_tiles_env(n: int, seed: int = 0) -> QuadrupedVecEnv:
    env = QuadrupedVecEnv(make_cfg(QUIET, terrain={"kind": "heightfield"}), n, seed=seed)
    env.set_terrain_types("flat")
    env.set_terrain_levels(0)
    return env


def _add_step(env: QuadrupedVecEnv, margin: float = 0.3) -> float:
    """Raise the terrain by STEP from a grid column ``margin`` m ahead (world +x) of every
    robot's LF foot; return the step's world x."""
    foot_x = env.data.xpos[env.index.foot_body[:, 0], 0].max()
    col = int(np.ceil((foot_x + margin) / env.terrain.resolution))
    env.terrain.grid[:, col:] += STEP
    return col * env.terrain.resolution


def _yaw(env: QuadrupedVecEnv) -> np.ndarray:
    return yaw_from_quat(env.data.qpos[env.index.qpos_base[:, 3:7]])


def test_zero_offsets_equal_extero_after_reset_and_steps():
    env = QuadrupedVecEnv(make_cfg(), 3, seed=4)  # rough terrain, randomisation on
    obs = env.reset()
    zero = np.zeros((3, 4, 52, 2))
    np.testing.assert_array_equal(env.heights_at_offsets(zero), obs["extero"])
    rng = np.random.default_rng(0)
    for _ in range(5):
        obs, *_ = env.step(rng.normal(0, 0.5, (3, env.action_dim)).astype(np.float32))
    np.testing.assert_array_equal(env.heights_at_offsets(zero), obs["extero"])
    with pytest.raises(ValueError, match="xy: expected shape"):
        env.heights_at_offsets(np.zeros((3, 4, 52)))
    with pytest.raises(ValueError, match="NaN"):
        env.heights_at_offsets(np.full((3, 4, 52, 2), np.nan))


def test_shift_across_a_step_in_the_yaw_frame():
    env = _flat_tiles_env(2)
    env.reset()
    step_x = _add_step(env)
    feet = env.data.xpos[env.index.foot_body]
    yaw = _yaw(env)
    assert np.abs(np.sin(yaw)).min() > 0.05  # random headings: yaw frame != world frame
    res = env.terrain.resolution
    pts_x = sample_points(feet[..., :2], yaw)[..., 0]  # [N, 4, 52] world x
    before = env.heights_at_offsets(np.zeros((2, 4, 52, 2)))
    # Shift every point 0.5 m along world +x, written in each robot's yaw frame.
    d = 0.5
    shift = np.zeros((2, 4, 52, 2))
    shift[..., 0] = (d * np.cos(yaw))[:, None, None]
    shift[..., 1] = (-d * np.sin(yaw))[:, None, None]
    after = env.heights_at_offsets(shift)
    crosses = (pts_x <= step_x - res) & (pts_x + d >= step_x + res)
    same_side = (pts_x >= step_x + res) | (pts_x + d <= step_x - res)
    assert crosses.sum() > 20 and same_side.sum() > 20
    np.testing.assert_allclose((after - before)[crosses], STEP, atol=1e-5)
    np.testing.assert_allclose((after - before)[same_side], 0.0, atol=1e-5)
    # A shift along the robot's own heading (yaw-frame x) is not the world-x shift.
    ahead = np.zeros((2, 4, 52, 2))
    ahead[..., 0] = d
    assert not np.allclose(env.heights_at_offsets(ahead), after, atol=1e-3)


def _xy_only_noise() -> HeightNoiseConfig:
    """Noise that only moves the sample points (no z noise, outliers or missing points)."""
    xy = NoiseLevels(point_xy_std=0.05, foot_xy_std=0.3)
    return HeightNoiseConfig(mode_probs=(1.0, 0.0, 0.0), nominal=xy, offset=xy, noisy=xy)


def test_height_noise_view_uses_the_shifted_lookup():
    env = _flat_tiles_env(2, seed=1)
    env.reset()
    _add_step(env, margin=0.2)
    clean = env.heights_at_offsets(np.zeros((2, 4, 52, 2)))
    view = HeightNoiseView(_xy_only_noise(), 2, 3, env.heights_at_offsets)
    assert view.shifts_xy
    twin = HeightNoise(_xy_only_noise(), 2, seed=3)
    expected = env.heights_at_offsets(twin.sample_xy_offsets())
    noisy = view(clean)
    np.testing.assert_array_equal(noisy, expected)
    jumps = np.abs(noisy - clean)
    assert (jumps > 0.05).sum() >= 3  # some shifted points crossed the step
    assert np.median(jumps) < 0.01  # flat elsewhere: an x/y shift alone changes nothing


def test_dagger_collector_on_the_simulator_with_xy_noise():
    cfg = make_cfg(QUIET, terrain={"kind": "heightfield"})
    env = QuadrupedVecEnv(cfg, 3, seed=2)
    env.set_terrain_types("stairs_up")
    env.set_terrain_levels(1)
    teacher, student = small_pair(ActionHeadConfig(num_actions=12), proprio_dim=120)
    collector = DAggerCollector(
        env, student, teacher, _xy_only_noise(), DAggerConfig(num_steps=6), seed=0
    )
    assert collector.noise.shifts_xy
    rollout = DistillRollout(
        6, 3, 120, (4, 52), 50, 12, (student.cfg.gru_layers, student.cfg.gru_hidden)
    )
    stats = collector.collect(rollout, beta=1.0)
    assert stats["teacher_action_share"] == pytest.approx(1.0)
    diff = (rollout.extero - rollout.clean_extero).abs()
    assert torch.isfinite(rollout.extero).all()
    assert diff.max() > 0.02  # points shifted onto other stairs read other heights


def test_the_ros_simulators_robot_samples_heights_as_the_observation_does():
    from anymal_ros.nodes.sim_robot import SimRobot

    robot = SimRobot(make_cfg(), seed=3)  # rough terrain
    for _ in range(30):  # a few physics steps from the spawn: the feet are off their start
        robot.step()
    heights, points = robot.height_samples()
    obs = robot.env.observe_current(stepped=True)
    np.testing.assert_array_equal(heights, obs["extero"][0])
    # The points lie on the terrain, on the rings around the feet turned by the base's yaw.
    np.testing.assert_array_equal(points[..., 2], robot.env.terrain.heights(points[..., :2]))
    feet = robot.env.data.xpos[robot.env.index.foot_body]
    np.testing.assert_array_equal(points[..., :2], sample_points(feet[..., :2], _yaw(robot.env))[0])
