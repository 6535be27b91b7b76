"""The MuJoCo quadruped bridge, stepped for real (small terrains keep each test fast)."""

import dataclasses
import re
import warnings
from pathlib import Path

import mujoco
import numpy as np
import pytest
import yaml
from sim_helpers import SMALL_TERRAIN

from anymal_ros.config import ConfigError, from_dict, load_config, to_dict
from anymal_ros.config.robot import load_robot
from anymal_ros.config.sim import SimConfig
from anymal_ros.contract import PRIVILEGED_LAYOUT, proprio_layout
from anymal_ros.sim.actuator import DcMotorEnvelope
from anymal_ros.sim.env import QuadrupedVecEnv
from anymal_ros.sim.rewards import RewardState, compute_rewards
from anymal_ros.sim.terrain import Terrain

ROOT = Path(__file__).resolve().parents[1]


def make_cfg(*layers: dict, **sections) -> SimConfig:
    """Small-terrain config with the given sections merged in order."""
    data = {"terrain": dict(SMALL_TERRAIN)}
    for layer in (*layers, sections):
        for key, value in layer.items():
            data.setdefault(key, {}).update(value)
    return from_dict(SimConfig, data)


QUIET = dict(
    terrain={"kind": "flat"},
    randomization={"enabled": False, "latency_steps": [0, 0]},
    actions={"mode": "joint_residual"},
    robot={"init_joint_noise": 0.0},
)


def test_yaml_matches_defaults_and_bad_keys_are_named():
    assert load_config(SimConfig, ROOT / "config" / "sim.yaml") == SimConfig()
    with pytest.raises(ConfigError, match="terrain.tile_sise"):
        from_dict(SimConfig, {"terrain": {"tile_sise": 3}})
    with pytest.raises(ConfigError, match="unknown reward terms"):
        from_dict(SimConfig, {"rewards": {"weights": {"speed": 1.0}}})
    with pytest.raises(ConfigError, match="contact_timeconst"):
        from_dict(SimConfig, {"physics": {"contact_timeconst": 0.005}})


def test_reward_weights_in_a_config_update_the_defaults_term_by_term():
    weights = from_dict(
        SimConfig, {"rewards": {"weights": {"joint_vel_limit": 0.0}}}
    ).rewards.weights
    assert weights["joint_vel_limit"] == 0.0
    assert weights["lin_vel_tracking"] == SimConfig().rewards.weights["lin_vel_tracking"] > 0
    assert set(weights) == set(SimConfig().rewards.weights)


def test_every_reward_term_named_in_the_config_has_its_function():
    from anymal_ros.config.sim import REWARD_TERMS
    from anymal_ros.sim.rewards import TERMS

    assert tuple(TERMS) == REWARD_TERMS  # the same names, summed in the same order


@pytest.mark.parametrize(
    "robot, physics",
    [
        ("anymal_c_like", {}),
        # ANYmal C's feet stand 0.2 m outside its HAA joints: it needs friction that does not
        # creep under that lateral load (config/teacher_ppo.yaml trains with these cones).
        ("anymal_c", {"cone": "elliptic", "impratio": 10.0}),
    ],
)
def test_robot_holds_default_pose_for_5s(robot, physics):
    env = QuadrupedVecEnv(make_cfg(QUIET, robot={"description": robot}, physics=physics), 2, seed=0)
    obs = env.reset()
    zero = np.zeros((2, env.action_dim), np.float32)
    for _ in range(int(5.0 / env.control_dt)):
        obs, _, terminated, truncated, _ = env.step(zero)
        assert not terminated.any() and not truncated.any()
    height = env.data.qpos[env.index.qpos_base[:, 2]]
    assert np.all((height > 0.45) & (height < 0.6)), height
    s = proprio_layout(False).slices()
    np.testing.assert_allclose(obs["proprio"][:, s["gravity"]], [[0, 0, -1]] * 2, atol=0.02)
    assert np.abs(obs["proprio"][:, s["joint_pos"]]).max() < 0.35  # PD sag under 51 kg
    priv = PRIVILEGED_LAYOUT.slices()
    np.testing.assert_array_equal(obs["privileged"][:, priv["foot_contact"]], 1.0)
    force = obs["privileged"][:, priv["foot_contact_force"]].reshape(2, 4, 3)
    weight = env.model.body_subtreemass[env.index.base_body] * 9.81
    np.testing.assert_allclose(force[..., 2].sum(1), weight, rtol=0.05)
    normal = obs["privileged"][:, priv["foot_contact_normal"]].reshape(2, 4, 3)
    np.testing.assert_allclose(normal, np.broadcast_to([0, 0, 1], normal.shape), atol=1e-3)
    # Heights around a foot standing on flat ground are ~0 (sole on the ground).
    assert np.abs(obs["extero"]).max() < 0.02


def _permuted_robot(tmp_path: Path) -> Path:
    """The default robot with its MJCF's legs and actuators written in reverse order."""
    robot = load_robot()
    text = Path(robot.mjcf).read_text()
    legs = re.findall(r"(      <body name=\"(?:LF|RF|LH|RH)_HIP\".*?\n      </body>\n)", text, re.S)
    assert len(legs) == 4
    acts = re.findall(r"    <position name=.*?/>\n", text)
    for i, chunk in enumerate(legs + acts):
        text = text.replace(chunk, f"@@{i}@@")
    for i, chunk in enumerate(legs[::-1] + acts[::-1]):
        text = text.replace(f"@@{i}@@", chunk)
    (tmp_path / "permuted.xml").write_text(text)
    data = {**dataclasses.asdict(robot), "mjcf": "permuted.xml", "name": "permuted"}
    data["joint_names"] = list(robot.joint_names)
    data["foot_bodies"] = list(robot.foot_bodies)
    path = tmp_path / "permuted.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_joint_order_follows_names_not_mjcf_order(tmp_path):
    path = _permuted_robot(tmp_path)
    base = QuadrupedVecEnv(make_cfg(QUIET), 1, seed=5)
    perm = QuadrupedVecEnv(make_cfg(QUIET, robot={"description": str(path)}), 1, seed=5)
    first = perm.model.joint(perm.model.jnt_qposadr.argsort()[1]).name
    assert first.endswith("RH_HAA")  # the MJCF really is in another order
    o1, o2 = base.reset(), perm.reset()
    np.testing.assert_allclose(o1["proprio"], o2["proprio"], atol=1e-6)
    action = np.zeros((1, 12), np.float32)
    action[0, 2] = -0.6  # bend LF_KFE further
    for _ in range(20):
        o1, *_ = base.step(action)
        o2, *_ = perm.step(action)
    np.testing.assert_allclose(o1["proprio"], o2["proprio"], atol=1e-3)
    s = proprio_layout(False).slices()
    lf_knee = o2["proprio"][0, s["joint_pos"]][2]
    assert lf_knee < -0.15  # the LF knee moved, not another joint


def test_step_on_terrain_changes_sampled_heights():
    env = QuadrupedVecEnv(make_cfg(QUIET, terrain={"kind": "heightfield"}), 1, seed=0)
    env.set_terrain_types("flat")
    env.set_terrain_levels(0)
    before = env.reset()["extero"][0]
    foot_x = env.data.xpos[env.index.foot_body[0, 0], 0]
    step_col = int(np.ceil((foot_x + 0.2) / env.terrain.resolution))
    env.terrain.grid[:, step_col:] += 0.15  # a 15 cm step 20+ cm ahead of LF's foot (x)
    env.reset()
    after = env._observe(np.arange(1), env._gather(np.arange(1)))["extero"][0]
    before_again = before  # same seed -> same spawn
    from anymal_ros.obs.extero import sample_points
    from anymal_ros.obs.rotations import yaw_from_quat

    s = env._gather(np.arange(1))
    pts = sample_points(s["foot_pos"][:, :, :2], yaw_from_quat(s["base_quat"]))[0]
    beyond = pts[..., 0] >= (step_col + 1) * env.terrain.resolution
    behind = pts[..., 0] <= (step_col - 1) * env.terrain.resolution
    assert beyond.sum() > 10 and behind.sum() > 10
    np.testing.assert_allclose((after - before_again)[beyond], 0.15, atol=1e-5)
    np.testing.assert_allclose((after - before_again)[behind], 0.0, atol=1e-5)


def test_same_seed_same_trajectory():
    cfg = make_cfg()
    rng = np.random.default_rng(0)
    a = QuadrupedVecEnv(cfg, 3, seed=7)
    b = QuadrupedVecEnv(cfg, 3, seed=7)
    c = QuadrupedVecEnv(cfg, 3, seed=8)
    oa, ob, oc = a.reset(), b.reset(), c.reset()
    for _ in range(15):
        act = rng.normal(size=(3, a.action_dim)).astype(np.float32)
        oa, ra, *_ = a.step(act)
        ob, rb, *_ = b.step(act)
        oc, *_ = c.step(act)
    for key in oa:
        np.testing.assert_array_equal(oa[key], ob[key])
    np.testing.assert_array_equal(ra, rb)
    assert not np.allclose(oa["proprio"], oc["proprio"])


def test_termination_vs_truncation_and_final_obs():
    env = QuadrupedVecEnv(make_cfg(QUIET, termination={"episode_length_s": 0.2}), 2, seed=0)
    env.reset()
    zero = np.zeros((2, env.action_dim), np.float32)
    # Robot 0 is turned upside down: terminated (fell), never truncated.
    env.data.qpos[env.index.qpos_base[0, 3:]] = [0, 1, 0, 0]
    obs, reward, terminated, truncated, info = env.step(zero)
    assert terminated.tolist() == [True, False] and not truncated.any()
    g = proprio_layout(False).slices()["gravity"]
    assert info["final_obs"]["proprio"][0, g][2] > 0.9  # old episode: upside down
    assert obs["proprio"][0, g][2] < -0.9  # new episode: upright
    assert info["episode_length"][0] == 1
    returns = reward.astype(np.float64)  # robot 1's episode: every step's reward adds up
    for _ in range(9):
        obs, reward, terminated, truncated, info = env.step(zero)
        returns += reward
    assert truncated.tolist() == [False, True] and not terminated.any()
    assert info["episode_length"][1] == 10
    assert info["episode_return"][1] == pytest.approx(returns[1], rel=1e-5)
    assert set(info) >= {"command", "base_lin_vel", "base_ang_vel", "reward_terms", "final_obs"}
    total = sum(info["reward_terms"].values())  # terms are reported before the clip at zero
    np.testing.assert_allclose(np.maximum(total, 0.0), reward, rtol=1e-5, atol=1e-6)


def test_a_fall_costs_the_fall_penalty_once_after_the_clip():
    def first_step(fall: float):
        env = QuadrupedVecEnv(make_cfg(QUIET, rewards={"fall": fall}), 2, seed=0)
        env.reset()
        env.data.qpos[env.index.qpos_base[0, 3:]] = [0, 1, 0, 0]  # robot 0 upside down: falls
        return env.step(np.zeros((2, env.action_dim), np.float32))

    _, plain, terminated, _, plain_info = first_step(0.0)
    _, reward, _, _, info = first_step(-5.0)
    assert terminated.tolist() == [True, False] and "fall" not in plain_info["reward_terms"]
    assert plain[0] >= 0.0  # the clip at zero: alone, a fall costs nothing on this step
    assert reward[0] == pytest.approx(plain[0] - 5.0) and reward[1] == pytest.approx(plain[1])
    assert info["reward_terms"]["fall"].tolist() == [-5.0, 0.0]
    assert info["episode_return"][0] == pytest.approx(reward[0])
    with pytest.raises(ValueError, match="fall is a penalty"):
        make_cfg(rewards={"fall": 1.0})


def test_a_push_is_not_a_base_contact():
    """MuJoCo reports xfrc_applied inside cfrc_ext; a push must not count as the base touching
    the ground (it used to end every episode at its first push)."""
    pushes = {
        "enabled": True, "friction": [1.0, 1.0], "added_base_mass": [0.0, 0.0],
        "com_offset": [0.0, 0.0], "motor_strength": [1.0, 1.0], "kp_factor": [1.0, 1.0],
        "kd_factor": [1.0, 1.0], "latency_steps": [0, 0],
        "push_interval_s": [0.02, 0.02], "push_duration_s": 0.04, "push_force": 150.0,
        "push_torque": 0.0,
    }  # fmt: skip
    env = QuadrupedVecEnv(make_cfg(QUIET, randomization=pushes), 4, seed=0)
    env.reset()
    pushed = 0
    for _ in range(5):
        _, _, terminated, _, info = env.step(np.zeros((4, env.action_dim)))
        pushed += int((np.abs(env.randomizer.push_wrench[:, :2]).sum(axis=1) > 1.0).sum())
        assert not terminated.any()
        assert not (info["reward_terms"].get("collision", np.zeros(4)) != 0).any()
    assert pushed > 0  # the pushes really happened


@pytest.mark.parametrize("blow_up", ["nan", "speed"])
def test_a_robot_whose_physics_diverges_ends_its_episode_alone(blow_up):
    """NaN in one robot's state, or a finite but absurd speed (what an unstable contact
    leaves: a riser contact once went from 12 to 13,800 rad/s in one control period, and only
    later to what MuJoCo flags): MuJoCo's auto-reset would put every robot of the batch back
    to the model's initial pose; instead that robot goes back to where it stood, its episode
    ends as a fall, and the others walk on as if nothing had happened (to rounding: the
    solver's shared stopping test saw the NaN)."""
    rng = np.random.default_rng(0)
    actions = rng.normal(0.0, 0.5, (8, 3, 16))

    def walk(diverge_at: int | None):
        env = QuadrupedVecEnv(make_cfg(), 3, seed=0)
        env.reset(seed=0)
        trace = []
        for i, action in enumerate(actions):
            if i == diverge_at:
                if blow_up == "nan":
                    env.data.qvel[env.index.qvel_joint[0, 2]] = np.nan  # robot 0's LF knee
                else:  # robot 0's base shot upwards at 10 km/s, finite all along
                    env.data.qvel[env.index.qvel_base[0, 2]] = 1e4
                with pytest.warns(RuntimeWarning, match=r"robots \[0\]: physics diverged"):
                    obs, reward, terminated, _, info = env.step(action)
                assert terminated.tolist() == [True, False, False]
                for part in (*info["final_obs"].values(), *obs.values(), reward):
                    assert np.isfinite(part).all()
            else:
                obs, reward, terminated, _, info = env.step(action)
            trace.append((env.data.qpos[env.index.qpos_base[1:]].copy(), obs["proprio"][1:]))
        return trace

    for (pos, proprio), (pos_hit, proprio_hit) in zip(walk(None), walk(4), strict=True):
        np.testing.assert_allclose(pos_hit, pos, rtol=0, atol=1e-9)
        np.testing.assert_allclose(proprio_hit, proprio, rtol=0, atol=1e-9)


def test_the_dc_motor_envelope_fades_the_driving_torque_to_zero_at_the_speed_limit():
    motor = DcMotorEnvelope(load_robot("anymal_c"))  # 120 N*m at stall, 80 cap, 7.5 rad/s
    speeds = np.array([0.0, 2.5, 5.0, -5.0, 7.5, 10.0])
    np.testing.assert_allclose(
        motor.force_range(speeds),
        [[-80, 80], [-80, 80], [-80, 40], [-40, 80], [-80, 0], [-80, 0]],
    )
    np.testing.assert_allclose(motor.force_range(np.array([5.0]), 0.9), [[-72, 36]])
    with pytest.raises(ValueError, match="saturation_torque.*anymal_c_like"):
        DcMotorEnvelope(load_robot("anymal_c_like"))


def test_dc_motors_keep_a_swinging_joint_within_the_robots_speed_limit():
    """A knee told to bend 1.5 rad further at once: the ideal PD whips it round at over
    three times ANYmal C's 7.5 rad/s; the DC motor's torque runs out near that limit."""
    peaks = {}
    for actuator in ("ideal_pd", "dc_motor"):
        env = QuadrupedVecEnv(make_cfg(QUIET, physics={"actuator": actuator}), 2, seed=0)
        env.reset()
        action = np.zeros((2, env.action_dim), np.float32)
        for _ in range(25):
            env.step(action)
        action[:, [2, 8]] = [-3.0, 3.0]  # LF and LH knees, x0.5 rad per unit
        peak = 0.0
        for _ in range(15):
            env.step(action)
            peak = max(peak, np.abs(env.data.qvel[env.index.qvel_joint]).max())
        peaks[actuator] = peak
    limit = env.robot.joint_velocity_limit
    assert peaks["ideal_pd"] > 3 * limit, peaks
    assert peaks["dc_motor"] < 1.05 * limit, peaks


def test_a_step_that_ran_out_of_arena_memory_is_reported():
    """MuJoCo drops every contact of a physics step whose contacts do not fit its arena and
    only logs it to MUJOCO_LOG.TXT; the simulator counts MuJoCo's warning and raises its own,
    once per overflow."""
    env = QuadrupedVecEnv(make_cfg(), 2, seed=0)
    env.reset(seed=0)
    zeros = np.zeros((2, env.action_dim))
    env.step(zeros)
    env.data.warning[int(mujoco.mjtWarning.mjWARN_CNSTRFULL)].number += 1  # as MuJoCo counts
    with pytest.warns(RuntimeWarning, match="ran out of arena memory 1 time"):
        env.step(zeros)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env.step(zeros)  # nothing new: no warning


def test_fixed_commands_and_levels():
    env = QuadrupedVecEnv(make_cfg(), 4, seed=0)
    env.set_terrain_levels(1)
    env.set_commands([0.5, 0.0, 0.2])
    env.reset()
    _, _, _, _, info = env.step(np.zeros((4, env.action_dim), np.float32))
    np.testing.assert_allclose(info["command"], [[0.5, 0.0, 0.2]] * 4)
    assert (info["terrain_level"] == 1).all()
    with pytest.raises(ValueError, match="levels"):
        env.set_terrain_levels(5)
    with pytest.raises(ValueError, match="action"):
        env.step(np.zeros((4, 3), np.float32))


def test_the_commanded_path_follows_turns():
    from anymal_ros.config.sim import CommandConfig
    from anymal_ros.sim.commands import CommandManager

    commands = CommandManager(CommandConfig(), 2, control_dt=0.01)
    commands.set([[1.0, 0.0, 0.0], [1.0, 0.0, 1.0]])  # straight on; a full circle in 2 pi s
    for _ in range(int(round(2 * np.pi / 0.01))):
        commands.step(np.random.default_rng(0))
    np.testing.assert_allclose(commands.path[0], [2 * np.pi, 0.0], atol=0.02)
    assert np.linalg.norm(commands.path[1]) < 0.05  # back where it started
    commands.restart(np.array([0]))
    assert commands.path[0].tolist() == [0.0, 0.0] and commands.heading[0] == 0.0


def test_heading_commands_steer_the_yaw_rate_to_a_drawn_heading():
    from anymal_ros.config.sim import CommandConfig
    from anymal_ros.sim.commands import CommandManager

    cfg = CommandConfig(heading=True, heading_gain=0.5, standing_fraction=0.0)
    commands = CommandManager(cfg, 4, control_dt=0.02)
    rng = np.random.default_rng(0)
    commands.sample(np.arange(4), rng)
    assert np.all(commands.command[:, 2] == 0.0)  # until the first step knows the yaw
    commands.target_heading[:] = [0.5, 3.0, 0.0, 1.0]
    commands.steering[3] = False  # as a standing robot
    commands.set([0.5, 0.0, 0.3], ids=np.array([2]))  # set commands hold
    commands.step(rng, yaw=np.array([0.3, -3.0, 1.0, 0.0]))
    # 0.2 rad to go; 3.0 - (-3.0) wraps to -0.28 rad (turn right); the set one keeps its 0.3
    np.testing.assert_allclose(commands.command[:, 2], [0.1, 0.5 * (6.0 - 2 * np.pi), 0.3, 0.0])
    commands.target_heading[0] = 0.3 + 2.5
    commands.step(rng, yaw=np.zeros(4) + 0.3)
    assert commands.command[0, 2] == pytest.approx(1.0)  # 1.25 rad/s clipped to ang_vel_yaw
    with pytest.raises(ValueError, match="yaw"):
        commands.step(rng)
    with pytest.raises(ConfigError, match="heading_gain"):
        from_dict(SimConfig, {"commands": {"heading": True, "heading_gain": 0.0}})


def test_the_simulator_steers_heading_commands_by_each_robots_own_yaw():
    from anymal_ros.obs.rotations import yaw_from_quat

    cfg = make_cfg(QUIET, commands={"heading": True, "standing_fraction": 0.0})
    env = QuadrupedVecEnv(cfg, 3, seed=0)
    env.reset()
    for _ in range(3):
        *_, info = env.step(np.zeros((3, env.action_dim)))
    yaw = yaw_from_quat(env.data.qpos[env.index.qpos_base[:, 3:7]])
    error = (env.commands.target_heading - yaw + np.pi) % (2 * np.pi) - np.pi
    np.testing.assert_allclose(env.commands.command[:, 2], np.clip(0.5 * error, -1.0, 1.0))
    assert np.any(env.commands.command[:, 2] != 0.0)
    env.close()


@pytest.mark.parametrize(("lead", "capped"), [(1.2, True), (0.7, False)])
def test_a_speed_limit_caps_the_tracked_speed_on_its_terrain_type_alone(lead, capped):
    """Seven robots, one at the centre of each terrain type's tile, all told 1 m/s forward;
    stairs up allow 0.3 from ``lead`` inside their 2 m platform's edge: where that reaches the
    centre, the robot there is rewarded for tracking 0.3 m/s and its commanded path grows at
    0.3 m/s, the others' at 1 m/s; the policy still sees the command it was given. Pushed to
    about 1 m/s, that robot alone pays for the speed over its limit (``speeding``)."""
    limits = {"speed_limits": {"stairs_up": 0.3}, "speed_limit_lead": lead,
              "weights": {"speeding": -2.0}}  # fmt: skip
    cfg = make_cfg(QUIET, terrain={"kind": "heightfield", "platform_size": 2.0}, rewards=limits,
                   robot={"init_joint_noise": 0.0, "init_xy_noise": 0.0})  # fmt: skip
    env = QuadrupedVecEnv(cfg, 7, seed=0)
    env.set_commands([1.0, 0.0, 0.0])
    env.reset()
    env.data.qvel[env.index.qvel_base[:, 0]] = 1.0  # world x: each robot's own direction
    _, _, _, _, info = env.step(np.zeros((7, env.action_dim)))
    stairs = env.terrain_types() == "stairs_up"
    assert stairs.sum() == 1
    speed = np.where(stairs & capped, 0.3, 1.0)
    rewards = cfg.rewards
    err = (speed - info["base_lin_vel"][:, 0]) ** 2 + info["base_lin_vel"][:, 1] ** 2
    weight = rewards.weights["lin_vel_tracking"] * env.control_dt
    expected = weight * np.exp(-err / rewards.tracking_sigma)
    np.testing.assert_allclose(info["reward_terms"]["lin_vel_tracking"], expected, rtol=1e-5)
    np.testing.assert_allclose(info["command"][:, 0], 1.0)
    np.testing.assert_allclose(env.commands.path[:, 0], speed * env.control_dt)
    ground_speed = np.linalg.norm(info["base_lin_vel"][:, :2], axis=1)
    over = np.where(stairs & capped, ground_speed - 0.3, 0.0)
    assert over.max() > 0.5 if capped else not over.any()  # capped: it kept most of 1 m/s
    speeding = info["reward_terms"]["speeding"]
    np.testing.assert_allclose(speeding, -2.0 * env.control_dt * over, rtol=1e-5, atol=1e-7)
    env.close()


def test_a_speed_limit_by_difficulty_binds_on_the_hardest_tiles_and_frees_the_easiest():
    """Three robots at the centres of stairs-up tiles on levels 0, 1 and 2 (difficulty 0, 0.5
    and 1), told 1 m/s forward, under a 0.3 m/s limit divided by the difficulty: their paths
    grow at 1 (no limit at difficulty 0), 0.6 and 0.3 m/s."""
    rewards = {"speed_limits": {"stairs_up": 0.3}, "speed_limit_lead": 1.2,
               "speed_limits_by_difficulty": True}  # fmt: skip
    terrain = {"kind": "heightfield", "platform_size": 2.0, "num_levels": 3}
    robot = {"init_joint_noise": 0.0, "init_xy_noise": 0.0}
    cfg = make_cfg(QUIET, terrain=terrain, rewards=rewards, robot=robot)
    env = QuadrupedVecEnv(cfg, 3, seed=0)
    np.testing.assert_allclose(env.terrain.level_difficulty, [0.0, 0.5, 1.0])
    env.set_terrain_types("stairs_up")
    env.set_terrain_levels(np.arange(3))
    env.set_commands([1.0, 0.0, 0.0])
    env.reset()
    env.step(np.zeros((3, env.action_dim)))
    np.testing.assert_allclose(env.commands.path[:, 0], np.array([1.0, 0.6, 0.3]) * env.control_dt)
    env.close()


def test_speeding_charges_the_planar_speed_over_the_limit_and_nothing_without_one():
    cfg = from_dict(SimConfig, {"rewards": {"weights": {"speeding": -1.0}}}).rewards
    velocity = np.array([[0.3, 0.4, 0.2], [0.1, 0.0, 0.0], [2.0, 0.0, 0.0]])  # 0.5, 0.1, 2 m/s
    limit = np.array([0.3, 0.3, np.inf])
    _, terms = compute_rewards(_still_robots(3, base_lin_vel=velocity, speed_limit=limit), cfg)
    np.testing.assert_allclose(-terms["speeding"] / 0.02, [0.2, 0.0, 0.0], atol=1e-7)
    _, terms = compute_rewards(_still_robots(3, base_lin_vel=velocity), cfg)  # no limits
    np.testing.assert_array_equal(terms["speeding"], 0.0)


def test_the_terrain_locates_points_by_level_column_and_distance_from_their_tiles_centre():
    terrain = Terrain(make_cfg().terrain, seed=0)
    border, tile = terrain.cfg.border, terrain.cfg.tile_size  # 2 levels x 7 columns
    xy = np.array([[border + 0.1, border + 2.5 * tile],  # level 0, column 2, by an edge
                   [border + 1.5 * tile + 0.3, border + 6.5 * tile - 0.2],  # a centre's side
                   [1.0, 1.0], [border + 0.1, border - 0.1],  # on the border
                   # beyond the last level
                   [border + 2 * tile + 0.1, border + 0.5 * tile]])  # fmt: skip
    level, column, from_centre = terrain.locate(xy)
    assert level.tolist() == [0, 1, -1, -1, -1]
    assert column.tolist() == [2, 6, -1, -1, -1]
    np.testing.assert_allclose(from_centre[:2], [tile / 2 - 0.1, 0.3])
    # Away from the centre, square to the steps: -x by the first point's edge, +x on the
    # second (0.3 m along x, 0.2 m across), +y by a tile's edge 0.2 m off its centre line.
    on_side = [border + 0.5 * tile - 0.2, border + 3 * tile - 0.5]
    outward = terrain.outward(np.array([xy[0], xy[1], on_side]))
    np.testing.assert_array_equal(outward, [[-1, 0], [1, 0], [0, 1]])


def test_speed_limits_name_a_bad_terrain_type_or_speed():
    with pytest.raises(ConfigError, match="unknown terrain types \\['stair'\\]"):
        make_cfg(rewards={"speed_limits": {"stair": 0.3}})
    with pytest.raises(ConfigError, match="speed_limits must be > 0"):
        make_cfg(rewards={"speed_limits": {"boxes": 0.0}})
    with pytest.raises(ConfigError, match="speed_limit_lead must be >= 0"):
        make_cfg(rewards={"speed_limit_lead": -0.1})


@pytest.mark.parametrize(("demotion", "turner_level"), [("displacement", 1), ("speed", 0)])
def test_a_robot_that_turns_as_told_keeps_its_level(demotion, turner_level):
    """Two robots told to walk a 0.4 m circle (0.8 m/s, 2 rad/s) for 2 s: robot 0 is put where
    a perfect walker would be (0.73 m from its start), robot 1 stands still. Judged against
    its command's speed (1.6 m, half of it 0.8 m), robot 0 would be demoted too."""
    from anymal_ros.obs.rotations import yaw_from_quat

    cfg = make_cfg(QUIET, terrain={**SMALL_TERRAIN, "curriculum_demotion": demotion},
                   termination={"episode_length_s": 2.0},
                   robot={"description": "anymal_c_like", "init_xy_noise": 0.0})  # fmt: skip
    env = QuadrupedVecEnv(cfg, 2, seed=0)
    env.set_terrain_levels(1)
    env.set_commands([0.8, 0.0, 2.0])
    env.reset()
    qpos = env.index.qpos_base
    start = env.data.qpos[qpos[0, :2]].copy()
    yaw = float(yaw_from_quat(env.data.qpos[qpos[0, 3:7]][None])[0])
    zero = np.zeros((2, env.action_dim), np.float32)
    for _ in range(env.max_episode_steps - 1):
        env.step(zero)
    rot = np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]])
    env.data.qpos[qpos[0, :2]] = start + rot @ env.commands.path[0]
    assert 0.7 < np.linalg.norm(env.commands.path[0]) < 0.76
    _, _, _, truncated, info = env.step(zero)
    assert truncated.all()
    assert env.terrain_levels().tolist() == [turner_level, 0]
    env.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_caps_told_from_outside_are_tracked_and_judged_until_told_again(workers):
    """Four robots told 1 m/s forward stand still through a 1 s episode on level 1, their
    commands capped from outside the simulator (DAgger's belief governor) to 0.4 m/s, none,
    0 m/s and 0 m/s. The tracking reward asks for the capped speed and the caps hold until
    told again; at the end only the robots capped to 0 m/s had nowhere to go and keep their
    level, the others are demoted for standing. Cleared, the command is tracked uncapped.
    Bad caps are refused by name, before a worker sees them."""
    from anymal_ros.sim.multiproc import make_quadruped_env

    cfg = make_cfg(QUIET, terrain=dict(SMALL_TERRAIN), termination={"episode_length_s": 1.0},
                   robot={"description": "anymal_c_like", "init_xy_noise": 0.0})  # fmt: skip
    env = make_quadruped_env(cfg, 4, seed=0, num_workers=workers)
    try:
        env.set_terrain_levels(1)
        env.set_commands([1.0, 0.0, 0.0])
        env.reset()
        caps = np.array([0.4, np.inf, 0.0, 0.0])
        env.set_command_caps(caps)
        zero = np.zeros((4, env.action_dim), np.float32)

        def tracking_reward_of(info, speed):
            v = info["base_lin_vel"]
            err = (speed - v[:, 0]) ** 2 + v[:, 1] ** 2
            weight = cfg.rewards.weights["lin_vel_tracking"] * env.control_dt
            return weight * np.exp(-err / cfg.rewards.tracking_sigma)

        for _ in range(env.max_episode_steps):
            _, _, terminated, truncated, info = env.step(zero)
            np.testing.assert_allclose(
                info["reward_terms"]["lin_vel_tracking"],
                tracking_reward_of(info, np.minimum(1.0, caps)),
                rtol=1e-5,
            )
            np.testing.assert_allclose(info["command"][:, 0], 1.0)  # the command given
        assert truncated.all() and not terminated.any()
        assert env.terrain_levels().tolist() == [0, 0, 1, 1]

        env.set_command_caps(None)
        _, _, _, _, info = env.step(zero)
        np.testing.assert_allclose(
            info["reward_terms"]["lin_vel_tracking"], tracking_reward_of(info, 1.0), rtol=1e-5
        )
        with pytest.raises(ValueError, match=r"caps: expected shape \(4,\)"):
            env.set_command_caps(np.zeros(3))
        with pytest.raises(ValueError, match="caps must be speeds >= 0"):
            env.set_command_caps(np.array([0.4, np.nan, 0.0, 0.0]))
        with pytest.raises(ValueError, match="caps must be speeds >= 0"):
            env.set_command_caps(np.array([0.4, -1.0, 0.0, 0.0]))
        env.step(zero)  # the workers live on
    finally:
        env.close()


@pytest.mark.parametrize(("promotion", "levels"), [("half_tile", [1, 1, 1]), ("path", [2, 1, 1])])
def test_path_promotion_moves_up_a_robot_that_walked_most_of_a_short_path(promotion, levels):
    """Three robots, 2 s episodes on 4 m tiles (half a tile: 2 m, a quarter: 1 m), put at the
    end at a share of their commanded path: 90 % of 1.6 m (1.44 m), 70 % of 1.6 m, and all of
    0.6 m. None got half a tile; only the first walked 80 % of a path beyond a quarter tile."""
    from anymal_ros.obs.rotations import yaw_from_quat

    terrain = {**SMALL_TERRAIN, "num_levels": 3, "curriculum_promotion": promotion}
    cfg = make_cfg(QUIET, terrain=terrain, termination={"episode_length_s": 2.0},
                   robot={"description": "anymal_c_like", "init_xy_noise": 0.0})  # fmt: skip
    env = QuadrupedVecEnv(cfg, 3, seed=0)
    env.set_terrain_levels(1)
    env.set_commands(np.array([[0.8, 0.0, 0.0], [0.8, 0.0, 0.0], [0.3, 0.0, 0.0]]))
    env.reset()
    qpos = env.index.qpos_base
    starts = [env.data.qpos[qpos[i, :2]].copy() for i in range(3)]
    yaws = [float(yaw_from_quat(env.data.qpos[qpos[i, 3:7]][None])[0]) for i in range(3)]
    zero = np.zeros((3, env.action_dim), np.float32)
    for _ in range(env.max_episode_steps - 1):
        env.step(zero)
    for i, share in enumerate((0.9, 0.7, 1.0)):
        c, s_ = np.cos(yaws[i]), np.sin(yaws[i])
        env.data.qpos[qpos[i, :2]] = starts[i] + share * (
            np.array([[c, -s_], [s_, c]]) @ env.commands.path[i]
        )
    np.testing.assert_allclose(
        np.linalg.norm(env.commands.path, axis=1), [1.6, 1.6, 0.6], atol=0.03
    )
    _, _, _, truncated, _ = env.step(zero)
    assert truncated.all()
    assert env.terrain_levels().tolist() == levels
    env.close()


def test_gymnasium_checker_passes():
    from gymnasium.utils.env_checker import check_env

    from anymal_ros.sim.gym_env import QuadrupedGymEnv

    env = QuadrupedGymEnv(make_cfg(), seed=0)
    check_env(env, skip_render_check=True)
    env.close()


def test_multiprocess_env_matches_interface():
    from anymal_ros.sim.multiproc import MultiProcessVecEnv

    env = MultiProcessVecEnv(make_cfg(), 5, seed=0, num_workers=2)
    try:
        obs = env.reset()
        assert obs["proprio"].shape == (5, env.proprio_dim)
        assert obs["extero"].shape == (5, 4, 52) and obs["privileged"].shape == (5, 50)
        env.set_commands(np.array([[0.1, 0, 0], [0.2, 0, 0]]), env_ids=[1, 4])
        obs, reward, terminated, truncated, info = env.step(np.zeros((5, env.action_dim)))
        assert reward.shape == (5,) and terminated.shape == (5,)
        assert info["command"][1, 0] == pytest.approx(0.1)
        assert info["command"][4, 0] == pytest.approx(0.2)
        assert info["final_obs"]["proprio"].shape == (5, env.proprio_dim)
        heights = env.heights_at_offsets(np.zeros((5, 4, 52, 2)))
        np.testing.assert_array_equal(heights, obs["extero"])
        with pytest.raises(ValueError, match="xy: expected shape"):
            env.heights_at_offsets(np.zeros((4, 4, 52, 2)))
    finally:
        env.close()


def test_render_png(tmp_path):
    from anymal_ros.sim.render import record_episode, save_frames

    env = QuadrupedVecEnv(make_cfg(QUIET), 1, seed=0)
    try:
        frames = record_episode(env, None, 2, width=64, height=48)
    except mujoco.FatalError as err:  # no OpenGL on this machine
        pytest.skip(f"no offscreen OpenGL: {err}")
    assert frames[0].shape == (48, 64, 3) and frames[-1].std() > 0
    assert save_frames(frames, tmp_path / "a.png", fps=50).stat().st_size > 0
    import imageio.v3 as iio

    assert iio.imread(tmp_path / "a.png").shape == (48, 3 * 64, 3)  # 3 frames, side by side
    assert to_dict(env.cfg)["terrain"]["kind"] == "flat"


def _still_robots(n: int, **changes: np.ndarray) -> RewardState:
    """The reward state of ``n`` robots standing still on four feet, with ``changes``."""
    state = RewardState(
        command=np.zeros((n, 3)), base_lin_vel=np.zeros((n, 3)), base_ang_vel=np.zeros((n, 3)),
        joint_vel=np.zeros((n, 12)), prev_joint_vel=np.zeros((n, 12)),
        torques=np.zeros((n, 12)), action=np.zeros((n, 12)), prev_action=np.zeros((n, 12)),
        thigh_shank_contact=np.zeros((n, 8)), foot_contact=np.ones((n, 4), bool),
        foot_vel_xy=np.zeros((n, 4, 2)), first_contact=np.zeros((n, 4), bool),
        air_time_at_touchdown=np.zeros((n, 4)), base_height=np.full(n, 0.5),
        joint_pos=np.zeros((n, 12)), control_dt=0.02, joint_velocity_limit=7.5,
        nominal_base_height=0.5, default_joint_pos=np.zeros(12),
        foot_clearance=np.zeros((n, 4)),
    )  # fmt: skip
    return dataclasses.replace(state, **changes)


def test_only_positive_clips_the_total_not_the_reported_terms():
    state = _still_robots(
        3,
        command=np.array([[1.0, 0, 0], [0, 0, 0], [0, 0, 0]]),
        base_lin_vel=np.array([[1.0, 0, 0], [0, 0, 3.0], [0, 0, 0]]),  # robot 1 bounces
    )
    clipped_cfg = SimConfig().rewards
    raw_cfg = from_dict(SimConfig, {"rewards": {"only_positive": False}}).rewards
    clipped, terms = compute_rewards(state, clipped_cfg)
    raw, raw_terms = compute_rewards(state, raw_cfg)
    total = sum(terms.values())
    np.testing.assert_allclose(raw, total, rtol=1e-6)  # unclipped: the terms' sum
    assert raw[1] < 0  # the bouncing robot's penalties outweigh its tracking reward
    np.testing.assert_allclose(clipped, np.maximum(total, 0.0), rtol=1e-6)
    assert clipped[1] == 0.0 and raw[0] > 0 and clipped[0] == pytest.approx(raw[0])
    assert terms["lin_vel_z"][1] < 0  # terms stay unclipped for the logs


def test_foot_clearance_costs_swinging_feet_that_move_low_over_the_ground():
    cfg = from_dict(
        SimConfig, {"rewards": {"weights": {"foot_clearance": -30.0}, "only_positive": False}}
    ).rewards
    swinging = np.array([[True, False, False, False]] * 4)
    state = _still_robots(
        4,
        foot_contact=~swinging,
        # robot 0: front-left swings 2 cm high at 1 m/s; 1: the same foot 10 cm high; 2: 2 cm
        # high but set down slowly (1 cm/s); 3: in contact and sliding (foot_slip's business)
        foot_clearance=np.array([[0.02, 0, 0, 0], [0.10, 0, 0, 0], [0.02, 0, 0, 0], [0] * 4]),
        foot_vel_xy=np.zeros((4, 4, 2)),
    )
    state.foot_vel_xy[:, 0, 0] = [1.0, 1.0, 0.01, 1.0]
    state.foot_contact[3, 0] = True
    _, terms = compute_rewards(state, cfg)
    cost = -terms["foot_clearance"] / (30.0 * 0.02)
    assert cost[0] == pytest.approx(0.06**2 * np.tanh(2.0), rel=1e-5)
    assert cost[1] == 0.0 and cost[3] == 0.0
    assert 0.0 < cost[2] < 0.03 * cost[0]
    with pytest.raises(ValueError, match="terrain under the feet"):
        compute_rewards(dataclasses.replace(state, foot_clearance=None), cfg)
    with pytest.raises(ConfigError, match="swing_clearance"):
        from_dict(SimConfig, {"rewards": {"swing_clearance": -0.1}})


def test_trunk_clearance_costs_the_underside_coming_within_the_margin_of_the_terrain():
    cfg = from_dict(
        SimConfig, {"rewards": {"weights": {"trunk_clearance": -20.0}, "only_positive": False}}
    ).rewards
    # robot 0: every point 0.4 m up; 1: one end's two corners 0.1 m up; 2: one point touching
    clearance = np.full((3, 10), 0.4)
    clearance[1, [4, 9]] = 0.1
    clearance[2, 0] = 0.0
    _, terms = compute_rewards(_still_robots(3, trunk_clearance=clearance), cfg)
    cost = -terms["trunk_clearance"] / (20.0 * 0.02)
    np.testing.assert_allclose(cost, [0.0, 2 * 0.2**2, 0.3**2], rtol=1e-5)
    with pytest.raises(ValueError, match="terrain under the trunk"):
        compute_rewards(_still_robots(3), cfg)
    with pytest.raises(ConfigError, match="trunk_margin"):
        from_dict(SimConfig, {"rewards": {"trunk_margin": -0.1}})


def test_the_simulator_reports_the_trunks_underside_above_the_terrain_pitch_included():
    cfg = from_dict(SimConfig, {
        "robot": {"description": "anymal_c"}, "terrain": {"kind": "flat"},
        "randomization": {"enabled": False}, "rewards": {"weights": {"trunk_clearance": -1.0}},
    })  # fmt: skip
    env = QuadrupedVecEnv(cfg, num_envs=2, seed=0)
    env.reset()
    # ANYmal C's trunk boxes (anymal_c.xml; its lidar sits on top): 1.049 m long, 0.26 m wide
    points = env._trunk_points
    np.testing.assert_allclose(points.min(axis=0), [-0.5245, -0.13, -0.09], atol=1e-6)
    np.testing.assert_allclose(points.max(axis=0), [0.5245, 0.13, -0.09], atol=1e-6)
    base = np.array([[0.0, 0.0, 0.6], [0.0, 0.0, 0.6]])
    pitch = np.radians(10.0)  # robot 1 nose down: a positive rotation about its y axis
    quat = np.array([[1.0, 0, 0, 0], [np.cos(pitch / 2), 0, np.sin(pitch / 2), 0]])
    clearance = env._trunk_clearance(base, quat)
    np.testing.assert_allclose(clearance[0], 0.6 - 0.09)
    front, rear = points[:, 0] > 0.5, points[:, 0] < -0.5
    drop = 0.5245 * np.sin(pitch) + 0.09 * (np.cos(pitch) - 1.0)
    np.testing.assert_allclose(clearance[1, front], 0.6 - 0.09 - drop, atol=1e-9)
    assert clearance[1, rear].min() > 0.6 - 0.09 + 0.08
    env.close()
    plain = QuadrupedVecEnv(from_dict(SimConfig, {"terrain": {"kind": "flat"}}), num_envs=1)
    plain.reset()
    assert "trunk_clearance" not in plain._gather(np.arange(1))  # off: no terrain queries
    plain.report_gait = True  # the evaluation's gait report measures it all the same
    *_, info = plain.step(np.zeros((1, plain.action_dim)))
    base_z = plain.data.qpos[plain.index.qpos_base[0, 2]]
    lowest = base_z + plain._trunk_points[:, 2].min()  # anymal_c_like: 0.09 m below its base
    assert info["gait"]["trunk_clearance"][0] == pytest.approx(lowest, abs=0.02)
    plain.close()


def _stairs_pit(**sections) -> SimConfig:
    """10 cm stairs up around the spawn pit (risers of the 10 cm grid), no randomisation, and
    the config ``sections`` given (e.g. rewards)."""
    return from_dict(SimConfig, {
        "terrain": {**SMALL_TERRAIN, "kind": "heightfield", "proportions": {"stairs_up": 1.0},
                    "step_height": [0.1, 0.1], "curriculum": False},
        "randomization": {"enabled": False},
        **sections,
    })  # fmt: skip


def test_the_simulator_reports_soles_above_the_terrain_under_them():
    # Robots trotting in place on the height field, in the pit of 10 cm stairs where they
    # spawn: the feet that touch are ~0 above the terrain, which lies well below the world's 0.
    cfg = _stairs_pit()
    env = QuadrupedVecEnv(cfg, num_envs=2, seed=0)
    env.reset()
    for _ in range(25):
        env.step(np.zeros((2, env.action_dim)))
    s = env._gather(np.arange(2))
    touching = s["foot_contact"]
    assert touching.sum() >= 4
    assert np.abs(s["foot_clearance"][touching]).max() < 0.01
    assert s["foot_pos"][..., 2][touching].max() < -0.05
    env.close()


def test_swing_clearance_looks_ahead_along_the_foot_path_for_the_next_riser():
    # 10 cm stairs up around the spawn pit: the pit is flat out to 1.2 m from the tile centre
    # along x, the first riser (a ramp one 10 cm sample wide) tops out at 1.3 m. A foot 8 cm
    # over the pit at 1.2 m, walking on towards the riser, is 2 cm below its top; walking
    # away or at rest it is 8 cm clear, as it is directly over its own tread.
    cfg = _stairs_pit(
        rewards={"weights": {"foot_clearance": -30.0}, "swing_clearance_lookahead": 0.1}
    )
    env = QuadrupedVecEnv(cfg, num_envs=1, seed=0)
    env.reset()
    centre = env.origins[0]
    pit = float(env.terrain.heights(centre[None, :2])[0])
    foot_pos = np.tile(centre + [1.2, 0.0, 0.0], (1, 4, 1))
    soles = np.full((1, 4), pit + 0.08)
    foot_vel_xy = np.array([[[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]])
    ahead = env._swing_clearance(foot_pos, soles, foot_vel_xy)[0]
    np.testing.assert_allclose(ahead, [-0.02, 0.08, 0.08, 0.08], atol=1e-9)
    s = env._gather(np.arange(1))  # the reward reads it; the gait report keeps "below"
    assert (s["swing_clearance"] <= s["foot_clearance"] + 1e-12).all()
    env.close()
    with pytest.raises(ConfigError, match="swing_clearance_lookahead"):
        from_dict(SimConfig, {"rewards": {"swing_clearance_lookahead": -0.1}})


def test_foothold_edge_charges_feet_standing_over_a_riser_not_on_a_tread():
    # 10 cm stairs up around the spawn pit, as above: the pit is flat out to 1.2 m from the
    # tile centre along x, the first riser a ramp of slope 1 from 1.2 to 1.3 m. With a 3 cm
    # margin a foot at 1.0 m reads a level tread, one at 1.2 m has its front over the ramp
    # (3 cm), one at 1.25 m stands on it (6 cm), one sideways of the pit's middle level again.
    cfg = _stairs_pit(rewards={"weights": {"foothold_edge": -3.0}, "foothold_margin": 0.03})
    env = QuadrupedVecEnv(cfg, num_envs=1, seed=0)
    env.reset()
    centre = env.origins[0]
    feet = centre + np.array([[[1.0, 0, 0], [1.2, 0, 0], [1.25, 0, 0], [0.0, 0.5, 0]]])
    np.testing.assert_allclose(env._foothold_relief(feet)[0], [0.0, 0.03, 0.06, 0.0], atol=1e-9)
    assert env._gather(np.arange(1))["foothold_relief"].shape == (1, 4)
    env.close()
    # The term sums the feet in contact: a swinging foot over the edge costs nothing.
    state = _still_robots(1, foothold_relief=np.array([[0.0, 0.03, 0.06, 0.02]]),
                          foot_contact=np.array([[True, True, False, True]]))  # fmt: skip
    _, terms = compute_rewards(state, cfg.rewards)
    assert terms["foothold_edge"][0] == pytest.approx(-3.0 * 0.02 * 0.05)
    with pytest.raises(ValueError, match="foothold_edge reward needs the terrain"):
        compute_rewards(_still_robots(1), cfg.rewards)
    plain = QuadrupedVecEnv(from_dict(SimConfig, {"terrain": {"kind": "flat"}}), num_envs=1)
    plain.reset()
    assert "foothold_relief" not in plain._gather(np.arange(1))  # off: no terrain queries
    plain.report_gait = True  # the evaluation's gait report measures it all the same
    *_, info = plain.step(np.zeros((1, plain.action_dim)))
    np.testing.assert_array_equal(info["gait"]["foothold_relief"], np.zeros((1, 4)))
    plain.close()
    with pytest.raises(ConfigError, match="foothold_margin"):
        from_dict(SimConfig, {"rewards": {"foothold_margin": 0.0}})


def test_a_training_governor_caps_the_command_the_policy_sees_where_the_true_heights_show_steps():
    """Seven robots at the centres of each terrain type's hardest tile (1 m platforms, so
    their height samples reach the edges), told 1 m/s forward, under ``commands.governor``.
    Where the true heights around a robot's feet spread more than 0.12 m (the stairs; not the
    flat ground) the command in its observation, the speed its tracking reward asks for and
    its commanded path are 0.4 m/s; ``info`` keeps the command it was given. New episodes on
    flat ground start uncapped, though the 1 s hold has not run out."""
    from anymal_ros.obs.governor import height_spread

    cfg = make_cfg(QUIET, terrain={"kind": "heightfield", "platform_size": 1.0},
                   commands={"governor": {}},
                   robot={"init_joint_noise": 0.0, "init_xy_noise": 0.0})  # fmt: skip
    env = QuadrupedVecEnv(cfg, 7, seed=0)
    env.set_terrain_levels(1)
    env.set_commands([1.0, 0.0, 0.0])
    obs = env.reset()
    command = proprio_layout(cpg=False).slices()["command"]
    steps = height_spread(obs["extero"]) > 0.12
    kind = env.terrain_types()
    assert steps[np.isin(kind, ["stairs_up", "stairs_down"])].all() and not steps[kind == "flat"]
    speed = np.where(steps, 0.4, 1.0)
    np.testing.assert_allclose(obs["proprio"][:, command][:, 0], speed, rtol=1e-6)

    env.data.qvel[env.index.qvel_base[:, 0]] = 1.0
    obs, _, _, _, info = env.step(np.zeros((7, env.action_dim)))
    rewards = cfg.rewards
    err = (speed - info["base_lin_vel"][:, 0]) ** 2 + info["base_lin_vel"][:, 1] ** 2
    weight = rewards.weights["lin_vel_tracking"] * env.control_dt
    expected = weight * np.exp(-err / rewards.tracking_sigma)
    np.testing.assert_allclose(info["reward_terms"]["lin_vel_tracking"], expected, rtol=1e-5)
    np.testing.assert_allclose(env.commands.path[:, 0], speed * env.control_dt)
    np.testing.assert_allclose(info["command"][:, 0], 1.0)

    env.set_terrain_types("flat")  # new episodes on flat ground, the hold not run out
    obs = env.reset()
    np.testing.assert_allclose(obs["proprio"][:, command][:, 0], 1.0)
    env.close()


@pytest.mark.parametrize("threshold", [1e-6, 100.0])
def test_a_training_governors_stance_cue_reads_each_simulated_robots_own_feet(threshold):
    """``commands.governor.stance_threshold`` (CPG actions): the cue reads the proprioception
    the simulator builds for each robot. No two steps of real standing feet are alike (a stray
    above 1e-6 m caps, from the step after the first stand), none strays 100 m; the height map
    is left out (a 100 m spread threshold). Joint-residual actions say no legs stand."""
    governor = {"spread_threshold": 100.0, "stance_threshold": threshold, "stance_window": 0.1}
    cfg = make_cfg(QUIET, actions={"mode": "cpg"}, commands={"governor": governor})
    env = QuadrupedVecEnv(cfg, 3, seed=0)
    env.set_commands([1.0, 0.0, 0.5])
    command = proprio_layout(cpg=True).slices()["command"]
    obs = env.reset()
    for _ in range(5):
        obs, *_ = env.step(np.zeros((3, env.action_dim)))
    told = obs["proprio"][:, command]
    capped = threshold < 1.0
    np.testing.assert_allclose(told[:, 0], 0.4 if capped else 1.0, rtol=1e-6)
    np.testing.assert_allclose(told[:, 2], 0.5, rtol=1e-6)  # the yaw rate is never capped
    stray = env.governor.stance_stray
    assert (stray > 1e-6).all() and (stray < 0.05).all()  # on flat ground, millimetres
    env.close()
    with pytest.raises(ValueError, match="stance_threshold needs the CPG action mode"):
        QuadrupedVecEnv(make_cfg(QUIET, commands={"governor": governor}), 1, seed=0)
