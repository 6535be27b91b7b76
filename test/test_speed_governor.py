"""The speed governor: its rule on known heights, its settings in a real ONNX file, and the same
governor in evaluation (real simulator observations) and in the policy controller and node
(real messages over DDS)."""

from __future__ import annotations

import numpy as np
import pytest

from anymal_ros.cli import main
from anymal_ros.config import ConfigError, from_dict
from anymal_ros.config.sim import SpeedGovernorConfig
from anymal_ros.deploy.runtime import OnnxPolicy, PolicyFileError
from anymal_ros.obs.governor import SpeedGovernor, height_spread

DT = 0.02
FLAT = np.zeros((4, 52))
STEP = np.concatenate([np.zeros((4, 26)), np.full((4, 26), -0.17)], axis=1)  # a 17 cm step


def governed_copy(tmp_path, student_path, *settings: str, name="governed.onnx"):
    out = tmp_path / name
    assert (
        main(["export", str(student_path), "--out", str(out), "--speed-governor", *settings]) == 0
    )
    return out


# --- the rule ---------------------------------------------------------------------------------
def test_height_spread_is_per_foot_and_unsure_heights_read_as_steps():
    tilted = FLAT + np.arange(4)[:, None]  # feet at different heights, each flat: no terrain
    heights = np.stack([FLAT, STEP, tilted, np.where(STEP < 0, np.nan, 0.0)])
    np.testing.assert_allclose(height_spread(heights), [0.0, 0.17, 0.0, np.inf])
    noisy = np.random.default_rng(1).normal(0.0, 0.1, (20, 4, 52))
    for q in (0, 2.5, 10, 25):
        low, high = np.percentile(noisy, [q, 100 - q], axis=-1)
        np.testing.assert_allclose(height_spread(noisy, q), (high - low).max(-1), atol=1e-12)
    edge = FLAT.copy()
    edge[0, -3:] = -0.17  # a step edge under three of a foot's outer points
    assert height_spread(edge) == 0.0 and height_spread(edge, percentile=2) > 0.12


def test_the_cap_comes_the_step_after_steps_are_seen_holds_then_lifts():
    governor = SpeedGovernor(SpeedGovernorConfig(0.12, 0.4, hold=0.1), DT, num_envs=2)
    assert governor.hold_steps == 5
    fast = np.array([[0.6, 0.8, 0.5], [0.2, 0.1, -1.0]])  # 1 m/s and 0.22 m/s, with yaw
    np.testing.assert_array_equal(governor.limit(fast), fast)  # nothing seen yet
    governor.observe(np.stack([STEP, STEP]))
    capped = governor.limit(fast)
    np.testing.assert_allclose(capped[0], [0.24, 0.32, 0.5])  # 0.4 m/s, direction and yaw kept
    np.testing.assert_array_equal(capped[1], fast[1])  # already slower than the cap
    for _ in range(4):  # flat ground again: the cap holds for the rest of its 0.1 s
        governor.observe(np.stack([FLAT, FLAT]))
        assert governor.capped.all()
    governor.observe(np.stack([FLAT, FLAT]))
    assert not governor.capped.any()
    np.testing.assert_array_equal(governor.limit(fast), fast)
    governor.observe(np.stack([STEP, FLAT]))
    governor.reset([0])  # a new episode forgets what the old one saw
    assert not governor.capped.any() and np.isnan(governor.spread[0])
    assert governor.capped_steps == 2 and governor.steps == 2 * 3  # counted by limit()


def test_flat_ground_is_never_capped_and_a_broken_belief_always_is():
    governor = SpeedGovernor(SpeedGovernorConfig(), DT)
    for _ in range(100):
        governor.observe(FLAT + np.random.default_rng(0).normal(0, 0.01, FLAT.shape))
        assert not governor.capped[0]
    governor.observe(np.full((4, 52), np.nan))
    assert governor.capped[0] and np.linalg.norm(governor.limit([1.0, 0.0, 0.0])[:2]) == 0.4


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"slow_speed": -0.4}, "slow_speed must be a finite number >= 0, got -0.4"),
        ({"hold": float("nan")}, "hold must be a finite number >= 0, got nan"),
        ({"spread_treshold": 0.1}, "treshold: unknown key .did you mean 'spread_threshold'"),
        ({"spread_percentile": 50}, r"spread_percentile must be in \[0, 50\), got 50"),
    ],
)
def test_bad_settings_are_refused_by_name(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(SpeedGovernorConfig, data, "speed_governor")


# --- the file ---------------------------------------------------------------------------------
def test_export_writes_the_governor_into_a_file_and_removing_it_restores_the_file(
    tmp_path, student_path
):
    governed = governed_copy(tmp_path, student_path, "slow_speed=0.3", "hold=0.5")
    meta = OnnxPolicy(governed).metadata
    assert meta.speed_governor == SpeedGovernorConfig(
        spread_threshold=0.12, slow_speed=0.3, hold=0.5
    )
    assert OnnxPolicy(student_path).metadata.speed_governor is None
    plain = tmp_path / "plain.onnx"
    assert main(["export", str(governed), "--out", str(plain), "--no-speed-governor"]) == 0
    assert plain.read_bytes() == student_path.read_bytes()


def test_export_refuses_a_governor_it_cannot_run(tmp_path, student_path):
    out = str(tmp_path / "x.onnx")
    with pytest.raises(SystemExit, match="speed_governor.hold: expected a number, got 'long'"):
        main(["export", str(student_path), "--out", out, "--speed-governor", "hold=long"])
    with pytest.raises(SystemExit, match="say --speed-governor or --no-speed-governor"):
        main(["export", str(student_path), "--out", out])
    blind = tmp_path / "blind.onnx"  # the same student without its belief decoder
    from test_deploy import _rewrite

    from anymal_ros.deploy.belief import GRAPH_KEY, SPEC_KEY

    _rewrite(student_path, blind, lambda p: (p.pop(GRAPH_KEY), p.pop(SPEC_KEY)))
    with pytest.raises(SystemExit, match="a speed governor reads the belief, but"):
        main(["export", str(blind), "--out", out, "--speed-governor"])


def governed_checkpoints(tmp_path):
    """A small student and a small teacher checkpoint, both trained (by their stored settings)
    under a training-time governor that slows to 0.3 m/s."""
    import torch
    from model_helpers import tiny_teacher_checkpoint
    from sim_helpers import tiny_sim

    from anymal_ros.config import to_dict
    from anymal_ros.config.models import StudentConfig, sized_for_action_mode
    from anymal_ros.models.checkpoint import load_checkpoint, save_checkpoint
    from anymal_ros.models.student import Student

    sim = {**tiny_sim(20.0), "commands": {"governor": {"slow_speed": 0.3}}}
    cfg = sized_for_action_mode(StudentConfig(), "joint_residual")
    student = save_checkpoint(tmp_path / "student.pt", models={"student": Student(cfg)},
                              config={"student": to_dict(cfg), "sim": sim})  # fmt: skip
    teacher = tiny_teacher_checkpoint(tmp_path / "plain_teacher.pt")
    ckpt = load_checkpoint(teacher)
    torch.save({**ckpt, "config": {**ckpt["config"], "sim": sim}}, tmp_path / "teacher.pt")
    return student, tmp_path / "teacher.pt"


def test_a_student_trained_under_a_governor_is_exported_with_its_settings(tmp_path):
    student, _ = governed_checkpoints(tmp_path)
    carried, without = tmp_path / "carried.onnx", tmp_path / "without.onnx"
    assert main(["export", str(student), "--out", str(carried)]) == 0
    assert OnnxPolicy(carried).metadata.speed_governor == SpeedGovernorConfig(slow_speed=0.3)
    assert main(["export", str(student), "--out", str(without), "--no-speed-governor"]) == 0
    assert OnnxPolicy(without).metadata.speed_governor is None


def test_a_student_distilled_under_a_belief_governor_is_exported_with_its_settings(
    tmp_path, capsys
):
    import torch

    from anymal_ros.models.checkpoint import load_checkpoint

    student, _ = governed_checkpoints(tmp_path)
    ckpt = load_checkpoint(student)
    distill = {"dagger": {"governor": {"slow_speed": 0.35}}}
    sim = {**ckpt["config"]["sim"], "commands": {}}  # no true-heights governor
    torch.save({**ckpt, "config": {**ckpt["config"], "sim": sim, "distill": distill}},
               tmp_path / "belief_governed.pt")  # fmt: skip
    out = tmp_path / "belief_governed.onnx"
    assert main(["export", str(tmp_path / "belief_governed.pt"), "--out", str(out)]) == 0
    assert OnnxPolicy(out).metadata.speed_governor == SpeedGovernorConfig(slow_speed=0.35)
    # Its checkpoint runs ungoverned in evaluation, and says which file runs governed.
    from anymal_ros.commands._policy_sim import eval_policy

    capsys.readouterr()
    run = eval_policy(tmp_path / "belief_governed.pt", None, [])
    assert run.sim.commands.governor is None and not run.label.endswith("governed")
    assert "evaluate the file anymal-ros export writes" in capsys.readouterr().out


def test_evaluation_drops_the_true_heights_governor_of_a_student_and_keeps_a_teachers(
    tmp_path, capsys
):
    """No robot has the true heights: a student checkpoint runs ungoverned (its file carries
    the governor it runs with), while a teacher is judged as it trained."""
    from anymal_ros.commands._policy_sim import eval_policy

    student, teacher = governed_checkpoints(tmp_path)
    run = eval_policy(student, None, [])
    assert run.sim.commands.governor is None
    assert "runs without it" in capsys.readouterr().out
    judged = eval_policy(teacher, None, [])
    assert judged.sim.commands.governor == SpeedGovernorConfig(slow_speed=0.3)
    assert judged.label.endswith(", speed governed on true heights")


# --- evaluation -------------------------------------------------------------------------------
def test_evaluation_runs_a_governed_file_governed(tmp_path, student_path):
    from anymal_ros.config.sim import SimConfig
    from anymal_ros.eval.policies import GovernedPolicy, OnnxBatchPolicy, load_policy
    from anymal_ros.sim.env import QuadrupedVecEnv

    governed = load_policy(governed_copy(tmp_path, student_path, "spread_threshold=0"), 2)
    plain = OnnxBatchPolicy(student_path, 2)
    assert isinstance(governed, GovernedPolicy) and not isinstance(
        load_policy(student_path, 2), GovernedPolicy
    )
    sim = from_dict(SimConfig, {"actions": {"mode": "joint_residual"}})  # the test student's
    env = QuadrupedVecEnv(sim, 2, seed=0)
    try:
        obs = env.reset()
        obs["proprio"][:, 0:3] = [1.0, 0.0, 0.3]  # the operator asks for 1 m/s
        first = governed.act(obs)  # nothing seen yet: the command goes through
        np.testing.assert_allclose(first, plain.act(obs), atol=1e-6)
        assert governed.governor.capped.all()  # an untrained belief is never flat
        slowed = {**obs, "proprio": obs["proprio"].copy()}
        slowed["proprio"][:, 0] = 0.4
        np.testing.assert_allclose(governed.act(obs), plain.act(slowed), atol=1e-6)
        assert obs["proprio"][0, 0] == 1.0  # the caller's command is left as it was
    finally:
        env.close()


# --- the controller and the node --------------------------------------------------------------
def walking_controller(path, **config):
    """Walking with no command ramp: the cap alone shows."""
    from test_command_ramp import walking

    return walking(path, rate=(0.0, 0.0, 0.0), **config)


def test_the_controller_caps_what_the_policy_sees_and_can_be_told_not_to(tmp_path, student_path):
    from test_command_ramp import run, twist

    always = governed_copy(tmp_path, student_path, "spread_threshold=0", "slow_speed=0.3")
    c, now = walking_controller(always)
    run(c, now, 3, twist(1.0, 0.0, 0.5))
    np.testing.assert_allclose(c.policy_command, [1.0, 0.0, 0.5])
    np.testing.assert_allclose(c.governed_command, [0.3, 0.0, 0.5])
    assert c.governor.capped_steps == 2 and c.governor.steps == 3  # from the second tick
    off, now = walking_controller(always, speed_governor=False)
    run(off, now, 3, twist(1.0, 0.0, 0.5))
    assert off.governor is None
    np.testing.assert_allclose(off.governed_command, [1.0, 0.0, 0.5])
    never = governed_copy(tmp_path, student_path, "spread_threshold=100", name="never.onnx")
    c, now = walking_controller(never)
    run(c, now, 3, twist(1.0, 0.0, 0.5))
    np.testing.assert_allclose(c.governed_command, [1.0, 0.0, 0.5])


def test_the_controller_reads_the_stance_cue_from_the_proprioception_it_builds(
    tmp_path, cpg_student_path
):
    from test_command_ramp import run, twist

    from anymal_ros.nodes.controller import Mode

    settings = ("spread_threshold=100", "stance_threshold=0.02")  # an untrained belief: no map
    cue = governed_copy(tmp_path, cpg_student_path, *settings, name="cue.onnx")
    c, now = walking_controller(cue)
    run(c, now, 30, twist(1.0, 0.0, 0.0))
    assert c.mode is Mode.WALK, c.safety.reason  # a failed policy step would have stopped it
    assert c.governor is not None and c.governor.stance is not None
    # Its robot (fed the same joint angles every tick) stands still: its pairs never stray.
    assert c.governor.stance_stray[0] == 0.0 and not c.governor.capped[0]
    np.testing.assert_allclose(c.governed_command, [1.0, 0.0, 0.0])
    from anymal_ros.nodes.diagnostics import governor_values

    values = dict(governor_values(c.metadata.speed_governor, c.governor))
    assert values["speed_governor.stance_stray_m"] == "0.0000"
    assert values["speed_governor.stance_threshold_m"] == "0.02"


@pytest.mark.ros
def test_the_node_says_on_diagnostics_that_it_slows_the_robot(ros, tmp_path, student_path):
    from geometry_msgs.msg import Twist
    from test_policy_node import start, walk

    path = governed_copy(tmp_path, student_path, "spread_threshold=0", "slow_speed=0.3")
    lenient = {f"{name}_timeout": 1.0 for name in ("joint_states", "imu", "odom")}
    node, robot = start(ros, path, stand_duration=0.1, **lenient)
    walk(ros, node, robot)
    joystick = robot.create_publisher(Twist, "/cmd_vel", 10)
    msg = Twist()
    msg.linear.x = 1.0
    robot.create_timer(0.05, lambda: joystick.publish(msg))
    robot.diagnostics.clear()

    def slowed() -> bool:
        last = robot.diagnostics[-1] if robot.diagnostics else {}
        return last.get("command.requested") == "1.000 0.000 0.000" and last.get(
            "command.ramped", ""
        ).startswith("1.000")

    assert ros.spin_until(slowed, 5.0), robot.diagnostics[-1:]
    report = robot.diagnostics[-1]
    assert report["speed_governor"] == "capping planar speed to 0.3 m/s"
    assert report["command.policy"] == "0.300 0.000 0.000"
    assert report["_message"] == "WALK; slowed to 0.3 m/s: steps in its belief"
    assert float(report["speed_governor.belief_spread_m"]) > 0


def test_a_governed_file_without_its_belief_is_refused_by_the_controller(tmp_path, student_path):
    from test_deploy import _rewrite

    from anymal_ros.deploy.belief import GRAPH_KEY, SPEC_KEY
    from anymal_ros.nodes.controller import ControllerConfig, PolicyController

    governed = governed_copy(tmp_path, student_path)
    blind = _rewrite(
        governed, tmp_path / "blind.onnx", lambda p: (p.pop(GRAPH_KEY), p.pop(SPEC_KEY))
    )
    config = ControllerConfig(height_source="height_samples")
    with pytest.raises(PolicyFileError, match="its speed governor reads the belief, but"):
        PolicyController(OnnxPolicy(blind), config)
    PolicyController(
        OnnxPolicy(blind), ControllerConfig(height_source="height_samples", speed_governor=False)
    )


# --- the stance cue ---------------------------------------------------------------------------
def anymal_c_stance():
    """The stance cue's reader of the default robot (ANYmal C), CPG proprioception."""
    from anymal_ros.config.robot import load_robot
    from anymal_ros.contract import proprio_layout
    from anymal_ros.obs.governor import StanceFeet
    from anymal_ros.sim.robot import leg_chains_of

    robot = load_robot()
    return StanceFeet(leg_chains_of(robot), robot.default_pose(), proprio_layout(cpg=True))


def stance_proprio(stance, feet_base, up_in_base, sin_phase):
    """Raw CPG proprioception ``[1, 133]`` whose joint angles put the feet at ``feet_base``
    ``[4, 3]`` (base frame, by inverse kinematics), with gravity ``-up_in_base`` and the legs'
    phase sines ``sin_phase [4]``."""
    from anymal_ros.contract import proprio_layout

    s = proprio_layout(cpg=True).slices()
    joints = stance.kinematics.inverse(feet_base[None], seed=stance.default_joint_pos)
    proprio = np.zeros((1, proprio_layout(cpg=True).dim))
    proprio[:, s["joint_pos"]] = joints - stance.default_joint_pos
    proprio[:, s["gravity"]] = -np.asarray(up_in_base)
    proprio[:, s["cpg_phase"]] = np.concatenate([sin_phase, np.sqrt(1 - np.square(sin_phase))])
    return proprio


def pitched(angle):
    """The rotation of a base pitched nose-down by ``angle`` rad (base to world)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def test_the_stance_cue_reads_the_height_between_the_feet_of_each_standing_diagonal_pair():
    stance = anymal_c_stance()
    level = stance.kinematics.forward(stance.default_joint_pos[None])[0]  # [4, 3], level feet
    standing, up = np.full(4, -1.0), np.array([0.0, 0.0, 1.0])
    difference, both = stance.diagonals(stance_proprio(stance, level, up, standing))
    np.testing.assert_allclose(difference, 0.0, atol=1e-6)
    assert both.all()
    raised = level.copy()
    raised[0, 2] += 0.03  # the left front foot on a 3 cm bump: LF-RH reads it
    difference, _ = stance.diagonals(stance_proprio(stance, raised, up, standing))
    np.testing.assert_allclose(difference, [[0.03, 0.0]], atol=1e-6)
    swinging = np.array([1.0, -1.0, -1.0, -1.0])  # ... while it swings, its pair does not stand
    _, both = stance.diagonals(stance_proprio(stance, raised, up, swinging))
    np.testing.assert_array_equal(both, [[False, True]])
    # A base pitched 5 degrees over level ground: gravity says which way is up, and the feet
    # stand level. Told a gravity 1 degree off, front and hind feet 0.9 m apart read 1.6 cm.
    tilt = pitched(np.radians(5))
    in_base = level @ tilt  # R^T p for each foot
    difference, _ = stance.diagonals(stance_proprio(stance, in_base, tilt.T @ up, standing))
    np.testing.assert_allclose(difference, 0.0, atol=1e-6)
    wrong = stance_proprio(stance, in_base, pitched(np.radians(6)).T @ up, standing)
    front_to_hind = level[0, 0] - level[2, 0]
    np.testing.assert_allclose(
        stance.diagonals(wrong)[0], -front_to_hind * np.sin(np.radians(1)), rtol=0.02
    )


def test_the_stance_cue_caps_on_strays_from_the_pairs_own_slow_mean_and_forgets_at_reset():
    stance = anymal_c_stance()
    level = stance.kinematics.forward(stance.default_joint_pos[None])[0]
    bumped = level.copy()
    bumped[0, 2] += 0.06
    up, standing = np.array([0.0, 0.0, 1.0]), np.full(4, -1.0)
    flat_feet = stance_proprio(stance, level, up, standing)
    rough_feet = stance_proprio(stance, bumped, up, standing)
    settings = SpeedGovernorConfig(hold=0.02, stance_threshold=0.02, stance_window=0.1)
    governor = SpeedGovernor(settings, DT, stance=stance)  # 5 readings, 1 step of hold
    for _ in range(5):
        governor.observe(FLAT, proprio=flat_feet)
    governor.observe(FLAT, proprio=rough_feet)  # one 6 cm stray among five: a mean of 1.2 cm
    assert not governor.capped[0] and governor.stance_stray[0] == pytest.approx(0.012)
    governor.observe(FLAT, proprio=rough_feet)  # two (the slow mean moved 1 % towards 6 cm)
    assert governor.capped[0] and governor.seen_by_feet[0]  # the feet, not the heights
    assert governor.stance_stray[0] == pytest.approx((0.06 + 0.06 * 0.99) / 5)
    governor.reset()  # a new episode: nothing stood yet
    governor.observe(FLAT, proprio=rough_feet)  # a first stand is its own mean: no stray
    assert not governor.capped[0] and governor.stance_stray[0] == pytest.approx(0.0, abs=1e-9)
    # What lasts (a slope, a gravity direction a degree off: 1.6 cm) is no stray.
    tilted = SpeedGovernor(settings, DT, stance=stance)
    off = stance_proprio(stance, level, pitched(np.radians(1)).T @ up, standing)
    for _ in range(100):
        tilted.observe(FLAT, proprio=off)
        assert not tilted.capped[0]
    blind = SpeedGovernor(SpeedGovernorConfig(spread_threshold=100.0), DT, stance=stance)
    blind.observe(STEP, proprio=rough_feet)  # the cue is off unless a threshold is set
    assert not blind.capped[0] and np.isnan(blind.stance_stray[0])
    with pytest.raises(ValueError, match="reads the proprioception: observe"):
        governor.observe(FLAT)
    with pytest.raises(ValueError, match="stance_threshold is set, but the governor was not"):
        SpeedGovernor(settings, DT)
    with pytest.raises(ValueError, match=r"reads \['cpg_phase'\] from the proprioception"):
        from anymal_ros.contract import proprio_layout
        from anymal_ros.obs.governor import StanceFeet

        StanceFeet(stance.kinematics.chains, stance.default_joint_pos, proprio_layout(cpg=False))
    with pytest.raises(ConfigError, match="stance_threshold must be None or a finite number"):
        from_dict(SpeedGovernorConfig, {"stance_threshold": -0.01}, "speed_governor")


@pytest.fixture(scope="module")
def cpg_student_path(tmp_path_factory):
    """A freshly initialised CPG student (the stance cue reads its phase), exported to ONNX."""
    import torch

    from anymal_ros.config.models import StudentConfig, sized_for_action_mode
    from anymal_ros.deploy.export import export_student
    from anymal_ros.models.student import Student

    torch.manual_seed(0)
    student = Student(sized_for_action_mode(StudentConfig(), "cpg")).eval()
    return export_student(student, tmp_path_factory.mktemp("cpg") / "student.onnx")


def test_a_file_carries_the_stance_cue_and_evaluation_runs_it(
    tmp_path, cpg_student_path, student_path
):
    from anymal_ros.config.sim import SimConfig
    from anymal_ros.eval.policies import load_policy
    from anymal_ros.sim.env import QuadrupedVecEnv

    cue = ("spread_threshold=100", "stance_threshold=0.000001", "stance_window=0.1")
    governed = governed_copy(tmp_path, cpg_student_path, *cue)
    assert OnnxPolicy(governed).metadata.speed_governor == SpeedGovernorConfig(
        spread_threshold=100.0, stance_threshold=1e-6, stance_window=0.1
    )
    with pytest.raises(SystemExit, match="its stance cue reads the CPG phase, which this policy"):
        governed_copy(tmp_path, student_path, "stance_threshold=0.02", name="no_cpg.onnx")
    policy = load_policy(governed, 2)
    env = QuadrupedVecEnv(SimConfig(), 2, seed=0)  # a CPG simulator, as the student's
    try:
        obs = env.reset()
        for _ in range(10):  # a real robot's standing feet never stand exactly as they stood
            obs, *_ = env.step(policy.act(obs))
        assert policy.governor.capped.all() and (policy.governor.stance_stray > 1e-6).all()
        assert (policy.governor.spread < 100.0).all()  # so the stance cue capped them
    finally:
        env.close()
