"""`anymal-ros distill` end to end on tiny runs of the real simulator: DAgger online and from
a recorded store, logs, checkpoints, resume, export of the result, falling loss."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

pytest.importorskip("anymal_ros.rl.logger", reason="needs the shared training logger (rl)")

from sim_helpers import tiny_sim  # noqa: E402

from anymal_ros.cli import main  # noqa: E402
from anymal_ros.config import from_dict, to_dict  # noqa: E402
from anymal_ros.config.models import ActionHeadConfig, TeacherConfig  # noqa: E402
from anymal_ros.config.sim import SimConfig  # noqa: E402
from anymal_ros.eval.policies import TeacherPolicy  # noqa: E402
from anymal_ros.eval.record import record_episodes  # noqa: E402
from anymal_ros.models.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from anymal_ros.models.loading import teacher_from_checkpoint  # noqa: E402
from anymal_ros.models.teacher import Teacher  # noqa: E402
from anymal_ros.replay.store import EpisodeStore, quadruped_fields  # noqa: E402
from anymal_ros.rl.distill_runner import distill_runner, load_distill_config  # noqa: E402
from anymal_ros.sim.env import QuadrupedVecEnv  # noqa: E402

TINY_SIM = tiny_sim(episode_length_s=0.4)
TINY_RUN = [
    "env.num_envs=3",
    "env.num_workers=1",
    "runner.torch_threads=1",
    "dagger.num_steps=12",
    "dagger.beta_decay_iterations=2",
    "loss.tbptt_steps=5",
    "loss.num_minibatches=1",
    "loss.learning_rate=0.003",
    "noise.curriculum_end=2",
    "runner.checkpoint_interval=2",
    "runner.tensorboard=false",
    "runner.progress=false",
    "student.gru_hidden=8",
    "student.belief_encoder=[8]",
    "student.gate_encoder=[8]",
    "student.belief_decoder=[8]",
]


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory):
    """A small teacher with normalisers fitted on real simulator observations, saved the
    way `anymal-ros train` saves it."""
    torch.manual_seed(0)
    cfg = TeacherConfig(
        proprio_dim=120, height_encoder=(16,), height_latent=4, privileged_encoder=(16,),
        privileged_latent=4, policy_mlp=(32,), value_mlp=(16,),
        action=ActionHeadConfig(num_actions=12, init_std=0.3),
    )  # fmt: skip
    teacher = Teacher(cfg)
    with torch.no_grad():  # a teacher whose actions vary visibly with its inputs
        torch.nn.init.normal_(teacher.action_head.mean.weight, std=0.3)
    env = QuadrupedVecEnv(from_dict(SimConfig, TINY_SIM), 4, seed=1)
    obs = env.reset()
    rng = np.random.default_rng(0)
    for _ in range(40):
        teacher.update_normalizers({k: torch.from_numpy(np.asarray(v)) for k, v in obs.items()})
        obs, *_ = env.step(rng.normal(0, 0.3, (4, 12)).astype(np.float32))
    path = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    save_checkpoint(
        path,
        models={"teacher": teacher},
        config={"teacher": to_dict(cfg), "sim": TINY_SIM},
    )
    return path


def _rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_distill_online_logs_checkpoints_resumes_and_exports(teacher_ckpt, tmp_path):
    run = tmp_path / "run"
    sets = [*TINY_RUN, "runner.iterations=3"]
    argv = ["distill", "--teacher", str(teacher_ckpt), "--config", "config/distill.yaml",
            "--run-dir", str(run), "--set", *sets]  # fmt: skip
    assert main(argv) == 0
    rows = _rows(run)
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3]
    # Height-noise curriculum and DAgger beta follow their schedules over iterations.
    assert [float(r["noise_curriculum"]) for r in rows] == [0.0, 0.5, 1.0]
    assert [float(r["beta"]) for r in rows] == [0.5, 0.25, 0.0]
    assert all(float(r["loss"]) > 0 for r in rows)
    # Where the curriculum took the robots (levels 0-1 of the small terrain), by terrain type
    # as the teacher's log has it: the three robots walk the first three columns (flat, rough,
    # slope up); no robot is on boxes, so that column is blank.
    for r in rows:
        walked = [float(r[f"terrain_level/{k}"]) for k in ("flat", "rough", "slope_up")]
        assert all(level in (0.0, 1.0) for level in walked)
        assert float(r["terrain_level"]) == pytest.approx(np.mean(walked))
        assert r["terrain_level/boxes"] == ""
    ckpts = run / "checkpoints"
    assert (ckpts / "iter_000002.pt").is_file() and (ckpts / "latest.pt").is_file()
    latest = load_checkpoint(ckpts / "latest.pt")
    assert set(latest["models"]) == {"student"}
    assert {"student", "deploy", "sim"} <= set(latest["config"])
    assert latest["counters"]["iteration"] == 3

    # Resume from iteration 2 with a lower learning rate: continues at 3, rewrites the log
    # from there, and the new rate (not the one in Adam's saved state) is in force.
    resumed = [*sets[:-1], "runner.iterations=4", "loss.learning_rate=0.001"]
    assert main([*argv[:-len(sets) - 1], "--resume", str(ckpts / "iter_000002.pt"),
                 "--set", *resumed]) == 0  # fmt: skip
    assert [int(r["iteration"]) for r in _rows(run)] == [1, 2, 3, 4]
    latest = load_checkpoint(ckpts / "latest.pt")
    assert latest["counters"]["iteration"] == 4
    assert [g["lr"] for g in latest["optimizers"]["student"]["param_groups"]] == [0.001]

    # The student checkpoint exports and the ONNX file runs in `eval`.
    onnx = tmp_path / "student.onnx"
    assert main(["export", str(ckpts / "latest.pt"), "--out", str(onnx)]) == 0
    assert main(["eval", str(ckpts / "latest.pt"), "--terrains", "flat", "--noise", "noisy",
                 "--num-envs", "2", "--out", str(tmp_path / "ev"), "--quiet"]) == 0  # fmt: skip


def test_a_resumed_distillation_keeps_its_robots_terrain_levels(teacher_ckpt, tmp_path):
    """The curriculum's progress is in the checkpoint: a resumed run's robots start their next
    episodes on the levels they had reached, not back where the curriculum starts (on the
    full terrain that cost a resumed run hundreds of iterations on easy ground)."""
    cfg = load_distill_config("config/distill.yaml", [*TINY_RUN, "env.num_envs=4"])
    runner = distill_runner(cfg, teacher_ckpt, tmp_path / "run")
    start = np.asarray(runner.source.env.terrain_levels())
    reached = 1 - start  # every robot on the other of the small terrain's two levels
    runner.source.env.set_terrain_levels(reached)
    runner.save(tmp_path / "reached.pt")

    resumed = distill_runner(cfg, teacher_ckpt, tmp_path / "run", resume=tmp_path / "reached.pt")
    np.testing.assert_array_equal(resumed.source.env.terrain_levels(), reached)
    assert resumed.source.collector.episode_start.all()  # new episodes, on those levels
    fresh = distill_runner(cfg, teacher_ckpt, tmp_path / "fresh")
    np.testing.assert_array_equal(fresh.source.env.terrain_levels(), start)

    # A checkpoint from before the levels were saved still resumes, and says what it lacks;
    # so does a next stage on another terrain (the levels were of other columns).
    old = load_checkpoint(tmp_path / "reached.pt")
    del old["extra"]["source"]
    torch.save(old, tmp_path / "old.pt")
    with pytest.warns(UserWarning, match="no terrain levels"):
        distill_runner(cfg, teacher_ckpt, tmp_path / "run", resume=tmp_path / "old.pt")
    stage = load_distill_config(
        "config/distill.yaml", [*TINY_RUN, "env.num_envs=4", "env.sim.terrain.max_init_level=0"]
    )
    with pytest.warns(UserWarning, match="terrain differs"):
        next_stage = distill_runner(
            stage, teacher_ckpt, tmp_path / "stage", resume=tmp_path / "reached.pt"
        )
    assert not next_stage.source.env.terrain_levels().any()
    fewer = load_distill_config("config/distill.yaml", [*TINY_RUN, "env.num_envs=3"])
    with pytest.raises(ValueError, match="terrain levels for 4 robots .* has 3"):
        distill_runner(fewer, teacher_ckpt, tmp_path / "run", resume=tmp_path / "reached.pt")


def test_student_runs_with_the_action_settings_it_was_distilled_with(teacher_ckpt, tmp_path):
    """A teacher saved with its deploy section, distilled with ``env.sim.actions`` changed:
    the student's deploy (what export writes into the ONNX file) follows the distillation
    simulator, not the teacher's training one."""
    ckpt = load_checkpoint(teacher_ckpt)
    teacher_deploy = QuadrupedVecEnv(from_dict(SimConfig, TINY_SIM), 1).deploy_config()
    ckpt["config"]["deploy"] = to_dict(teacher_deploy)
    path = tmp_path / "teacher_with_deploy.pt"
    save_checkpoint(path, models={"teacher": teacher_from_checkpoint(ckpt)}, config=ckpt["config"])
    cfg = load_distill_config("config/distill.yaml", [*TINY_RUN, "env.sim.actions.scale=0.35"])
    runner = distill_runner(cfg, path, tmp_path / "run")
    assert teacher_deploy.actions.scale != 0.35
    assert runner.deploy.actions.scale == 0.35
    assert runner.deploy.control_period == teacher_deploy.control_period
    assert runner.deploy.joint_pos_lower == teacher_deploy.joint_pos_lower


def test_distill_reduces_loss_in_the_simulator(teacher_ckpt, tmp_path):
    # The terrain stays put: with the curriculum on, which level each of the 4 robots lands
    # on (and so how hard its heights are to reconstruct) moves the 16 iterations' losses.
    cfg = load_distill_config(
        "config/distill.yaml",
        [*TINY_RUN, "env.num_envs=4", "dagger.num_steps=20",
         "noise.curriculum_end=0", "runner.checkpoint_interval=0",
         "env.sim.terrain.curriculum=false"],
    )  # fmt: skip
    runner = distill_runner(cfg, teacher_ckpt, tmp_path / "run")
    runner.learn(16)
    losses = [float(r["loss"]) for r in _rows(tmp_path / "run")]
    assert np.mean(losses[-4:]) < 0.7 * np.mean(losses[:4]), losses


def test_distill_from_store(teacher_ckpt, tmp_path):
    cfg = from_dict(SimConfig, TINY_SIM)
    env = QuadrupedVecEnv(cfg, 3, seed=2)
    teacher = TeacherPolicy(_load_teacher(teacher_ckpt), 3)
    store = EpisodeStore.create(
        tmp_path / "store", quadruped_fields(120, 12), env.max_episode_steps, fsync=False
    )
    record_episodes(env, teacher, store, 6, epsilon=(0.1, 0.1), progress=False)
    store.close()
    run = tmp_path / "run"
    argv = ["distill", "--teacher", str(teacher_ckpt), "--from-store", str(tmp_path / "store"),
            "--run-dir", str(run), "--set", *TINY_RUN,
            "offline.episodes_per_batch=3", "offline.updates_per_iteration=2",
            "runner.iterations=2"]  # fmt: skip
    assert main(argv) == 0
    rows = _rows(run)
    assert len(rows) == 2 and all(np.isfinite(float(r["loss"])) for r in rows)
    # A store without labels is refused with a clear message.
    bare = EpisodeStore.create(tmp_path / "bare", quadruped_fields(120, 12), 50, fsync=False)
    w = bare.writer()
    zeros = {k: np.zeros(s.shape, s.dtype) for k, s in bare.fields.items()}
    w.add_step(**zeros)
    w.commit_episode()
    bare.close()
    with pytest.raises(ValueError, match="teacher_action is all zeros"):
        main([*argv[:4], str(tmp_path / "bare"), *argv[5:]])


def _load_teacher(path):
    from anymal_ros.models.loading import teacher_from_checkpoint

    return teacher_from_checkpoint(load_checkpoint(path), path)


def _benchmark(name):
    """The script ``benchmarks/<name>.py`` as a module (benchmarks are not a package)."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quality_benchmark_runs_on_a_tiny_budget(teacher_ckpt, tmp_path):
    import json

    out = tmp_path / "quality.json"
    result = _benchmark("distill_quality").main(
        ["--teacher", str(teacher_ckpt), "--iterations", "2", "--terrains", "flat",
         "--eval-envs", "2", "--run-dir", str(tmp_path / "run"), "--out", str(out),
         "--set", *TINY_RUN]
    )  # fmt: skip
    saved = json.loads(out.read_text())
    assert saved["iterations"] == 2
    for key in ("clean_tracking_reward", "noisy_tracking_reward"):
        assert np.isfinite(saved[key]["student"]) and np.isfinite(saved[key]["teacher"])
    assert isinstance(result["target_noisy_student_beats_teacher"], bool)
    assert [r["noise"] for r in saved["student_rows"]] == ["none", "noisy"]


def test_imitation_by_command_benchmark_counts_every_robot_step(teacher_ckpt, tmp_path):
    """The benchmark on a tiny student: every robot-step lands in one (terrain, band) cell,
    and a cell has a loss and a teacher spread exactly when robots spent time in it."""
    import json

    run = tmp_path / "run"
    argv = ["distill", "--teacher", str(teacher_ckpt), "--config", "config/distill.yaml",
            "--run-dir", str(run), "--set", *TINY_RUN, "runner.iterations=2"]  # fmt: skip
    assert main(argv) == 0
    out = tmp_path / "imitation.json"
    result = _benchmark("imitation_by_command").main(
        [str(run / "checkpoints" / "latest.pt"), "--seconds", "0.48", "--out", str(out),
         "--set", *TINY_RUN]
    )  # fmt: skip
    assert json.loads(out.read_text()) == result
    assert result["teacher"] == str(teacher_ckpt) and result["levels"] == "the curriculum's start"
    assert result["robots"] == 3 and result["seconds"] == pytest.approx(0.48)
    steps = result["robot_steps"]
    assert sum(v for cells in steps.values() for v in cells.values()) == 3 * 24  # 0.48 s at 50 Hz
    for kind, cells in steps.items():
        for band, robot_steps in cells.items():
            loss = result["behaviour_loss"][kind][band]
            spread = result["teacher_action_spread"][kind][band]
            if robot_steps > 0:
                assert loss > 0 and spread > 0
                assert result["falls"][kind][band] >= 0
            else:
                assert loss is None and spread is None
    assert result["before_falls"]["falls"] == sum(
        v for cells in result["falls"].values() for v in cells.values() if v is not None
    )


def test_before_falls_looks_back_from_each_fall_within_its_episode():
    before_falls = _benchmark("imitation_by_command").before_falls
    T, dt = 100, 0.02
    fell, start = np.zeros((T, 2), bool), np.zeros((T, 2), bool)
    tilt, loss = np.full((T, 2), 0.1), np.full((T, 2), 0.01)
    start[0] = True
    tilt[80:91, 0], loss[88, 0], fell[90, 0] = 0.65, 0.5, True  # tips 0.2 s before it falls
    tilt[60:75, 1] = 0.9  # a previous episode of robot 1: not part of its fall's story
    start[85, 1], fell[88, 1] = True, True
    out = before_falls(fell, tilt, loss, start, dt)
    assert out["falls"] == 2
    assert out["max_tilt_quartiles"][0] == pytest.approx(0.1 + 0.25 * 0.55, abs=1e-3)  # 0.1, 0.65
    assert out["max_loss_quartiles"][-1] == pytest.approx(0.01 + 0.75 * 0.49, abs=1e-3)
    at = out["tilt_thresholds"]
    assert at["0.6"]["share_of_falls_preceded"] == 0.5
    assert at["0.6"]["median_lead_s"] == pytest.approx(10 * dt)
    assert at["0.7"]["share_of_falls_preceded"] == 0.0 and at["0.7"]["median_lead_s"] is None
    assert at["0.8"]["share_of_steps"] == pytest.approx(15 / 200)
