"""`anymal-ros record` and `anymal-ros eval` on tiny runs of the real simulator, with real
checkpoints and a real exported ONNX student."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sim_helpers import tiny_sim

from anymal_ros.cli import main
from anymal_ros.config import to_dict
from anymal_ros.config.models import ActionHeadConfig, StudentConfig, TeacherConfig
from anymal_ros.eval.evaluate import column_names
from anymal_ros.eval.policies import explore, load_policy
from anymal_ros.eval.record import epsilon_at
from anymal_ros.models.checkpoint import save_checkpoint
from anymal_ros.models.student import Student, init_student_from_teacher
from anymal_ros.models.teacher import Teacher
from anymal_ros.replay.store import EpisodeStore

TINY_SIM = tiny_sim(episode_length_s=0.3)
SHARED = dict(
    proprio_dim=120,
    height_encoder=(16,),
    height_latent=4,
    privileged_latent=4,
    policy_mlp=(32,),
    action=ActionHeadConfig(num_actions=12, init_std=0.3),
)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("ckpt")
    tcfg = TeacherConfig(**SHARED, privileged_encoder=(16,), value_mlp=(16,))
    scfg = StudentConfig(
        **SHARED, gru_hidden=8, belief_encoder=(8,), gate_encoder=(8,), belief_decoder=(8,)
    )
    teacher, student = Teacher(tcfg), Student(scfg)
    init_student_from_teacher(student, teacher)
    # A teacher checkpoint in the models.loading convention (as `anymal-ros train` writes it).
    t_path = save_checkpoint(
        d / "teacher.pt",
        models={"teacher": teacher},
        config={"teacher": to_dict(tcfg), "sim": TINY_SIM},
    )
    s_path = save_checkpoint(
        d / "student.pt",
        models={"student": student},
        config={"student": to_dict(scfg), "deploy": {}, "sim": TINY_SIM},
    )
    onnx = d / "student.onnx"
    assert main(["export", str(s_path), "--out", str(onnx)]) == 0
    return {"teacher": t_path, "student": s_path, "onnx": onnx}


def test_record_student_with_teacher_labels_and_exploration(checkpoints, tmp_path):
    out = tmp_path / "store"
    argv = ["record", str(checkpoints["student"]), "--out", str(out), "--episodes", "5",
            "--teacher", str(checkpoints["teacher"]), "--num-envs", "3",
            "--epsilon", "0.2", "0.0", "--noise", "noisy", "--no-fsync"]  # fmt: skip
    assert main(argv) == 0
    store = EpisodeStore.open(out)
    assert len(store) == 5
    ep = store.episode(0)
    assert ep["proprio"].shape[1:] == (120,) and ep["action"].shape[1:] == (12,)
    assert ep["terminated"][-1] or ep["truncated"][-1]
    assert not (ep["terminated"][:-1] | ep["truncated"][:-1]).any()
    # Labels are the teacher's mean on the stored (clean) observation.
    teacher = load_policy(checkpoints["teacher"], 1)
    want = teacher.act({k: ep[k][:4] for k in ("proprio", "extero", "privileged")})
    np.testing.assert_allclose(ep["teacher_action"][:4], want, rtol=1e-4, atol=1e-5)
    # Exploration: the executed action differs from the label.
    assert np.abs(ep["action"] - ep["teacher_action"]).max() > 1e-3
    store.close()
    # Appending to the same store works and keeps the earlier episodes.
    assert main([*argv[:5], "1", *argv[6:]]) == 0
    assert len(EpisodeStore.open(out)) == 6


def test_eval_table_and_compare(checkpoints, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = ["eval", str(checkpoints["onnx"]), "--compare", str(checkpoints["teacher"]),
            "--terrains", "flat", "rough", "--noise", "none", "noisy", "--num-envs", "2",
            "--out", str(out), "--quiet", "--set", "termination.episode_length_s=0.3",
            "--gait-plot", str(tmp_path / "gait.png")]  # fmt: skip
    # An ONNX file carries no simulator settings: give the tiny ones as a file.
    sim_yaml = tmp_path / "sim.yaml"
    sim_yaml.write_text(json.dumps(TINY_SIM))
    argv += ["--sim-config", str(sim_yaml)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "(student)" in text and "(teacher)" in text
    assert (tmp_path / "gait.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((out / "eval.json").read_text())
    assert [(r["terrain"], r["noise"]) for r in data["rows"]] == [
        ("flat", "none"), ("flat", "noisy"), ("rough", "none"), ("rough", "noisy")
    ]  # fmt: skip
    for rows in (data["rows"], data["compare"]):
        for r in rows:
            assert r["episodes"] == 2 and r["steps"] > 0
            for k in ("mean_return", "tracking_error", "falls_per_minute", "distance"):
                assert np.isfinite(r[k])
            assert r["tracking_error"] >= 0 and r["distance"] >= 0
    # The table (a belief table follows: the exported student carries its decoder).
    table = (out / "eval.md").read_text().split("\n\nBelief")[0]
    assert len(table.splitlines()) == 2 + 4
    # Columns are labelled by what each policy is, whichever comes first on the command line.
    assert data["columns"] == ["student", "teacher"]
    assert column_names(checkpoints["teacher"], checkpoints["onnx"]) == ("teacher", "student")


def test_eval_refuses_a_comparison_trained_with_other_action_settings(
    checkpoints, tmp_path, capsys
):
    """Both policies run with the simulator's action decoding: a --compare policy trained with
    another CPG swing height would be judged on a gait it never saw."""
    sim_yaml = tmp_path / "sim.yaml"
    sim_yaml.write_text(json.dumps(TINY_SIM))
    with pytest.raises(
        SystemExit, match=r"--compare .*actions.swing_height: trained 0.08, simulator 0.13"
    ):
        main(["eval", str(checkpoints["onnx"]), "--compare", str(checkpoints["teacher"]),
              "--terrains", "flat", "--noise", "none", "--num-envs", "1", "--out", str(tmp_path),
              "--quiet", "--sim-config", str(sim_yaml),
              "--set", "actions.swing_height=0.13"])  # fmt: skip
    # The first policy may be run off its training settings on purpose: a note says so.
    assert "actions.swing_height: trained 0.08, simulator 0.13" in capsys.readouterr().out


def test_eval_refuses_mismatched_simulator(checkpoints, tmp_path):
    with pytest.raises(SystemExit, match="proprio"):
        main(["eval", str(checkpoints["student"]), "--terrains", "flat", "--noise", "none",
              "--num-envs", "1", "--out", str(tmp_path), "--quiet",
              "--set", "actions.mode=cpg"])  # fmt: skip


def test_eval_field_is_the_chosen_terrain_at_the_chosen_difficulty():
    """Level 3 of the default terrain has 10 cm stairs (5..20 cm over 10 levels); the eval
    field must be that tile everywhere, so a robot that walks off its tile meets the same
    stairs, and every robot starts on the centre tile."""
    from anymal_ros.config.sim import SimConfig
    from anymal_ros.eval.evaluate import EVAL_FIELD_TILES, EvalSettings, make_eval_env

    env = make_eval_env(SimConfig(), "stairs_up", EvalSettings(level=3, num_envs=3))
    try:
        terrain = env.terrain
        assert set(terrain.column_types) == {"stairs_up"}
        assert terrain.num_levels == terrain.num_columns == EVAL_FIELD_TILES
        rises = np.abs(np.diff(terrain.grid, axis=1))
        assert rises.max() == pytest.approx(0.10, abs=1e-9)
        env.reset()
        centre = terrain.tile_origins[EVAL_FIELD_TILES // 2, EVAL_FIELD_TILES // 2]
        assert np.abs(env.origins[:, :2] - centre[:2]).max() < 1e-9
    finally:
        env.close()


class _Recorder:
    """A policy that stands still and keeps every height map it is shown."""

    head, kind = "gaussian", "teacher"

    def __init__(self, num_envs: int, num_actions: int) -> None:
        self.num_envs, self.num_actions, self.seen = num_envs, num_actions, []

    def reset(self, env_ids):
        pass

    def act(self, obs):
        self.seen.append(np.array(obs["extero"]))
        return np.zeros((self.num_envs, self.num_actions), dtype=np.float32)


def test_eval_noise_moves_the_sample_points_as_in_training():
    """Noisy evaluation must shift where the terrain is sampled (the x/y half of the noise
    model, as DAgger does), not only add z noise to the clean map."""
    from anymal_ros.config.sim import SimConfig
    from anymal_ros.eval.evaluate import EvalSettings, make_eval_env, noise_config, run_cell
    from anymal_ros.obs.height_noise import HeightNoise, HeightNoiseView

    settings = EvalSettings(level=6, num_envs=2, episode_length_s=0.04)
    env = make_eval_env(SimConfig(), "stairs_up", settings)
    twin_env = make_eval_env(SimConfig(), "stairs_up", settings)
    try:
        recorder = _Recorder(2, env.action_dim)
        run_cell(env, recorder, "offset", seed=5)
        clean = twin_env.reset()["extero"]
        expected = HeightNoiseView(noise_config("offset"), 2, 5, twin_env.heights_at_offsets)(clean)
        np.testing.assert_array_equal(recorder.seen[0], expected)
        z_only = HeightNoise(noise_config("offset"), 2, seed=5)
        z_only.sample_xy_offsets()
        assert not np.allclose(recorder.seen[0], z_only.apply_z(clean), atol=1e-3)
    finally:
        env.close()
        twin_env.close()


def test_exploration_and_schedule():
    rng = np.random.default_rng(0)
    logits = np.tile(np.array([[0.0, 5.0, 1.0]]), (4000, 1))
    a = explore(logits, "categorical", 0.3, rng)
    assert 0.17 < (a != 1).mean() < 0.23  # 0.3 * 2/3 random choices are not the argmax
    assert (explore(logits, "categorical", 0.0, rng) == 1).all()
    mean = np.zeros((4000, 2), np.float32)
    assert abs(explore(mean, "gaussian", 0.5, rng).std() - 0.5) < 0.03
    assert epsilon_at(0, 5, 0.4, 0.0) == 0.4 and epsilon_at(4, 5, 0.4, 0.0) == 0.0


def test_sim_to_sim_runs_the_policy_in_a_second_physics_setting(tmp_path):
    from anymal_ros.commands.eval import SIM_TO_SIM, second_physics
    from anymal_ros.config.sim import SimConfig
    from anymal_ros.sim.env import QuadrupedVecEnv

    first = SimConfig()
    second = second_physics(first, str(SIM_TO_SIM))
    assert second.robot == first.robot and second.control_dt == pytest.approx(first.control_dt)
    a, b = QuadrupedVecEnv(first, 1), QuadrupedVecEnv(second, 1)
    assert (a.model.opt.integrator, b.model.opt.integrator) == (3, 0)  # implicitfast, Euler
    assert b.model.opt.cone == 1 and b.model.opt.timestep == pytest.approx(0.0025)
    joints = a.index.dof_joint[0]
    np.testing.assert_allclose(b.model.dof_damping[joints], 5.0 * a.model.dof_damping[joints])

    out = tmp_path / "s2s"
    argv = ["eval", "policies/student.onnx", "--terrains", "flat", "--noise", "none",
            "--num-envs", "1", "--episode-length", "0.5", "--sim-to-sim", "--out", str(out),
            "--quiet"]  # fmt: skip
    assert main(argv) == 0
    result = json.loads((out / "eval.json").read_text())
    assert result["columns"] == ["training physics", "second physics"]
    row, other = result["rows"][0], result["compare"][0]
    assert other["tracking_error_ratio"] == pytest.approx(
        other["tracking_error"] / row["tracking_error"]
    )
    assert row["steps"] == other["steps"] == 25  # the same 50 Hz policy in both
    with pytest.raises(SystemExit, match="choose one"):
        main([*argv, "--compare", "policies/student.onnx"])
