"""Runner: exact resume, determinism, learning on CartPole, CLI, logs and plots."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from model_helpers import SMALL_TEACHER

from anymal_ros.cli import main as cli_main
from anymal_ros.config import from_dict
from anymal_ros.config.rl import TrainConfig
from anymal_ros.config.sim import TERRAIN_TYPES
from anymal_ros.models.checkpoint import CheckpointError, load_checkpoint
from anymal_ros.rl import rank as rank_module
from anymal_ros.rl import runner as runner_module
from anymal_ros.rl.rank import join_run, train_env
from anymal_ros.rl.runner import Runner, train_runner

REPO = Path(__file__).resolve().parents[1]


def _cfg(algorithm="ppo", **runner):
    return from_dict(
        TrainConfig,
        {
            "algorithm": algorithm,
            "env": {"id": "CartPole-v1", "num_envs": 4},
            "ppo": {"num_steps": 32, "num_epochs": 2, "num_minibatches": 2, "gamma": 0.99},
            "ppg": {"policy_iterations": 3, "aux_epochs": 2},
            "runner": {"progress": False, "tensorboard": False, "checkpoint_interval": 0, **runner},
        },
    )


def _params(runner):
    return {k: v.clone() for k, v in runner.policy.state_dict().items()}


@pytest.mark.parametrize("algorithm", ["ppo", "ppg"])
def test_resume_continues_bit_exactly(tmp_path, algorithm):
    cfg = _cfg(algorithm, iterations=4, seed=7)
    straight = train_runner(cfg, run_dir=tmp_path / "a")
    straight.learn(iterations=2)
    ckpt = straight.save(tmp_path / "a" / "mid.pt")
    straight.learn(iterations=2)  # crosses PPG's auxiliary phase (every 3 iterations)

    resumed = train_runner(cfg, run_dir=tmp_path / "b", resume=ckpt)
    assert resumed.iteration == 2
    resumed.learn(iterations=2)
    a, b = _params(straight), _params(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed.env_steps == straight.env_steps
    for name, opt in straight.algorithm.optimizers().items():
        other = resumed.algorithm.optimizers()[name]
        for s1, s2 in zip(opt.state.values(), other.state.values(), strict=True):
            assert torch.equal(s1["exp_avg"], s2["exp_avg"])


def test_same_seed_same_run_different_seed_different_run(tmp_path):
    runs = [train_runner(_cfg(seed=s), run_dir=tmp_path / str(i)) for i, s in enumerate((1, 1, 2))]
    for r in runs:
        r.learn(iterations=2)
    p = [_params(r) for r in runs]
    assert all(torch.equal(p[0][k], p[1][k]) for k in p[0])
    assert not all(torch.equal(p[0][k], p[2][k]) for k in p[0])


def test_the_runner_drives_the_environment_it_is_handed(tmp_path, monkeypatch):
    """The runner builds no environment of its own; when it cannot be built (a checkpoint of
    another algorithm), the factory closes the environment it built for it."""
    cfg = _cfg(seed=0)
    rank = join_run(cfg.runner)
    env = train_env(cfg, rank)
    runner = Runner(cfg, rank, env, run_dir=tmp_path)
    assert runner.env is env.learner and runner.sim is None  # Gymnasium: no simulator
    runner.learn(iterations=1)
    assert runner.env_steps == 32 * 4

    built = []
    monkeypatch.setattr(
        runner_module, "train_env", lambda *a: built.append(rank_module.train_env(*a)) or built[-1]
    )
    with pytest.raises(CheckpointError, match="ppo"):
        train_runner(_cfg("ppg"), tmp_path / "x", resume=tmp_path / "checkpoints" / "latest.pt")
    assert len(built) == 1 and built[0].learner.vec.closed


def test_normalizer_statistics_are_updated_and_checkpointed(tmp_path):
    r = train_runner(_cfg(seed=0), run_dir=tmp_path)
    r.learn(iterations=2)
    assert r.policy.normalizer.count.item() == 2 * 32 * 4
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "latest.pt")
    saved = ckpt["models"]["policy"]["normalizer.mean"]
    assert torch.equal(saved, r.policy.normalizer.mean)


def test_resume_refuses_other_algorithm(tmp_path):
    r = train_runner(_cfg("ppo", seed=0), run_dir=tmp_path)
    r.learn(iterations=1)
    with pytest.raises(CheckpointError, match="ppo"):
        train_runner(
            _cfg("ppg"), run_dir=tmp_path / "x", resume=tmp_path / "checkpoints" / "latest.pt"
        )


@pytest.mark.slow
def test_ppo_improves_cartpole_return(tmp_path):
    # 16 iterations x 8 envs x 64 steps = 8k env steps; a random policy averages about 22.
    cfg = from_dict(
        TrainConfig,
        {
            "env": {"id": "CartPole-v1", "num_envs": 8},
            "ppo": {
                "num_steps": 64,
                "num_epochs": 4,
                "num_minibatches": 4,
                "gamma": 0.99,
                "entropy_coef": 0.0,
                "learning_rate": 1e-3,
            },  # fmt: skip
            "runner": {
                "iterations": 25,
                "seed": 3,
                "progress": False,
                "tensorboard": False,
                "checkpoint_interval": 0,
                "return_window": 20,
            },  # fmt: skip
        },
    )
    r = train_runner(cfg, run_dir=tmp_path)
    summary = r.learn()
    first = _first_mean_return(tmp_path / "metrics.csv")
    assert first < 35
    assert summary["mean_return"] > 100, summary  # > 4x random with a wide margin
    assert (tmp_path / "learning_curves.png").stat().st_size > 1000


def _first_mean_return(path):
    import csv

    with open(path) as f:
        rows = list(csv.DictReader(f))
    return next(float(r["mean_return"]) for r in rows if not math.isnan(float(r["mean_return"])))


def test_cli_train_resume_and_plot(tmp_path, capsys):
    cfg = tmp_path / "cp.yaml"
    cfg.write_text(
        "env: {id: CartPole-v1, num_envs: 2}\nppo: {num_steps: 16, num_epochs: 1}\n"
        "runner: {iterations: 2, checkpoint_interval: 1, progress: false}\n"
    )
    run = tmp_path / "run"
    assert cli_main(["train", "ppg", "--config", str(cfg), "--run-dir", str(run),
                     "ppg.policy_iterations=2"]) == 0  # fmt: skip
    assert (run / "checkpoints" / "iter_000001.pt").is_file()
    assert (run / "tensorboard").is_dir() and (run / "learning_curves.png").is_file()
    ckpt = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert ckpt["counters"]["iteration"] == 2 and ckpt["config"]["ppg"]["policy_iterations"] == 2
    # Overrides after --set, as distill and eval take them.
    argv = ["train", "ppg", "--config", str(cfg), "--set", "runner.iterations=3",
            "ppg.policy_iterations=2"]  # fmt: skip
    assert cli_main([*argv, "--resume", str(run / "checkpoints" / "latest.pt")]) == 0
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3"]
    (run / "learning_curves.png").unlink()
    assert cli_main(["plot", str(run)]) == 0
    assert (run / "learning_curves.png").is_file()
    assert cli_main(["train", "ppo", "--config", str(cfg), "ppo.learning_rat=1"]) == 2
    assert "did you mean 'learning_rate'" in capsys.readouterr().out


def test_sigint_saves_a_checkpoint_and_stops(tmp_path):
    r = train_runner(_cfg(seed=0, iterations=50), run_dir=tmp_path)
    original = r.train_iteration

    def iteration_then_ctrl_c():
        stats = original()
        if r.iteration == 2:
            os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl-C
        return stats

    r.train_iteration = iteration_then_ctrl_c
    # What SIGINT did before (Python's KeyboardInterrupt, or SIG_IGN in a shell's background job)
    before = signal.getsignal(signal.SIGINT)
    summary = r.learn()
    assert summary["stopped_by"] == "SIGINT" and summary["iterations"] == 2
    assert load_checkpoint(tmp_path / "checkpoints" / "latest.pt")["counters"]["iteration"] == 2
    assert signal.getsignal(signal.SIGINT) is before  # handler restored


def test_quadruped_teacher_checkpoint_exports_with_the_simulators_contract(tmp_path):
    """A real (tiny) teacher run in the MuJoCo robot writes the models.loading convention:
    the teacher sized by the simulator (joint residuals: 120 inputs, 12 actions), its sim
    and deploy sections, so `anymal-ros export` needs nothing else."""
    from anymal_ros.deploy.runtime import OnnxPolicy
    from anymal_ros.models.loading import sim_config_of, teacher_from_checkpoint

    cfg = from_dict(
        TrainConfig,
        {
            "env": {
                "kind": "quadruped",
                "num_envs": 2,
                "sim": {
                    "terrain": {
                        "kind": "flat",
                        "num_levels": 1,
                        "num_columns": 1,
                        "max_init_level": 0,
                    },
                    "actions": {"mode": "joint_residual", "scale": 0.3},
                },
            },  # fmt: skip
            "model": {"type": "teacher", "teacher": SMALL_TEACHER},
            "ppo": {"num_steps": 4, "num_epochs": 1, "num_minibatches": 1},
            "runner": {"progress": False, "tensorboard": False, "checkpoint_interval": 1},
        },
    )
    train_runner(cfg, run_dir=tmp_path).learn(iterations=1)
    ckpt_path = tmp_path / "checkpoints" / "latest.pt"
    ckpt = load_checkpoint(ckpt_path)
    teacher = teacher_from_checkpoint(ckpt, ckpt_path)
    assert (teacher.cfg.proprio_dim, teacher.cfg.action.num_actions) == (120, 12)
    assert sim_config_of(ckpt)["actions"]["scale"] == 0.3
    out = tmp_path / "teacher.onnx"
    assert cli_main(["export", str(ckpt_path), "--out", str(out)]) == 0
    meta = OnnxPolicy(out).metadata
    assert meta.kind == "teacher" and meta.action_type == "joint_residual"
    assert meta.action_scale == 0.3 and meta.joint_pos_lower is not None


def test_quadruped_teacher_on_simulator_workers_logs_terms_and_resumes_in_process(tmp_path):
    """``env.num_workers: 2`` trains on two simulator processes; the checkpoint keeps the sim
    and deploy sections and the curriculum levels, and a run resumed in one process (as on a
    smaller machine) starts from those levels. metrics.csv carries each reward term and the
    mean terrain level, overall and per terrain type, and the curves plot them."""
    from sim_helpers import tiny_sim

    from anymal_ros.rl.logger import plot_run, read_metrics

    def cfg(workers):
        return from_dict(
            TrainConfig,
            {
                "env": {
                    "kind": "quadruped",
                    "num_envs": 4,
                    "num_workers": workers,
                    "sim": {**tiny_sim(1.0), "rewards": {"fall": -5.0}},
                },
                "model": {
                    "type": "teacher",
                    "teacher": {"policy_mlp": [16], "value_mlp": [16], "height_encoder": [8]},
                },
                "ppo": {"num_steps": 4, "num_epochs": 1, "num_minibatches": 1},
                "runner": {"progress": False, "tensorboard": False, "checkpoint_interval": 1},
            },  # fmt: skip
        )

    runner = train_runner(cfg(2), run_dir=tmp_path)
    try:
        runner.sim.set_terrain_levels([1, 0, 1, 0])
        # Each worker puts its two robots on the terrain's first two columns.
        kinds = runner.sim.terrain_types()
        runner.learn(iterations=1)
        levels = runner.sim.terrain_levels()
    finally:
        runner.env.close()
    assert kinds[:2].tolist() == kinds[2:].tolist() and kinds[0] != kinds[1]
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "latest.pt")
    assert ckpt["config"]["deploy"]["actions"]["mode"] == "joint_residual"
    assert ckpt["extra"]["env"]["levels"].tolist() == [1, 0, 1, 0]
    columns = read_metrics(tmp_path / "metrics.csv")
    assert not math.isnan(columns["reward/lin_vel_tracking"][0])
    assert columns["reward/fall"][0] <= 0.0  # the fall penalty, weighted, has its column
    assert columns["terrain_level"][0] == levels.mean()
    for kind in TERRAIN_TYPES:  # types no robot walks on are blank, not zero
        expected = levels[kinds == kind].mean() if kind in kinds else math.nan
        np.testing.assert_equal(columns[f"terrain_level/{kind}"][0], expected)
    assert plot_run(tmp_path).stat().st_size > 1000

    resumed = train_runner(cfg(1), run_dir=tmp_path, resume=tmp_path / "checkpoints" / "latest.pt")
    assert resumed.sim.terrain_levels().tolist() == [1, 0, 1, 0]


@pytest.mark.parametrize("governed", [False, True])
def test_distillation_curves_show_the_terrain_levels_and_the_governed_share(tmp_path, governed):
    """A distillation run's curves add the terrain levels and, under a belief governor, the
    share of robot-steps it slowed: seven or eight panels on a grid of four columns."""
    import matplotlib.image

    from anymal_ros.rl.logger import plot_run

    columns = ["iteration", "env_steps", "wall_time", "mean_return", "behaviour_loss",
               "tracking_error", "recon_heights_loss", "recon_privileged_loss", "terrain_level",
               "terrain_level/stairs_up"]  # fmt: skip
    columns += ["governor_capped_share"] if governed else []
    rows = [[str(i), str(100 * i), str(i), "1.0", "0.01", "0.2", "0.05", "0.3", "2.0", "1.5"]
            + (["0.4"] if governed else []) for i in range(1, 4)]  # fmt: skip
    text = "\n".join(",".join(r) for r in [columns, *rows]) + "\n"
    (tmp_path / "metrics.csv").write_text(text)
    image = matplotlib.image.imread(plot_run(tmp_path))
    assert image.shape[1] == 2000  # 4 columns of 5 inches at 100 dpi


def test_latest_checkpoint_names_the_newest_periodic_one_during_a_run(tmp_path):
    """A user (or `make policy` after a crash) takes latest.pt while training still runs."""
    runner = train_runner(_cfg(checkpoint_interval=1), run_dir=tmp_path)
    seen = []

    def check(stats):
        latest = load_checkpoint(tmp_path / "checkpoints" / "latest.pt")
        seen.append(latest["counters"]["iteration"])

    runner.learn(iterations=2, on_iteration=check)
    assert seen == [1, 2]
    # The final save replaced the link with a file of its own; iteration 1's file is intact.
    assert (
        load_checkpoint(tmp_path / "checkpoints" / "iter_000001.pt")["counters"]["iteration"] == 1
    )


def test_sigterm_to_the_process_group_stops_a_run_on_simulator_workers_with_a_checkpoint(
    tmp_path,
):
    """``kill -- -PGID`` (or Ctrl-C in a terminal: SIGINT to the foreground group) reaches the
    simulator workers too. They stay up until the trainer has finished its iteration with
    them and saved ``latest.pt``, then end with it."""
    from sim_helpers import tiny_sim

    cfg = {
        "env": {"kind": "quadruped", "num_envs": 4, "num_workers": 2, "sim": tiny_sim(1.0)},
        "model": {
            "type": "teacher",
            "teacher": {"policy_mlp": [16], "value_mlp": [16], "height_encoder": [8]},
        },
        "ppo": {"num_steps": 4, "num_epochs": 1, "num_minibatches": 1},
        "runner": {"iterations": 100000, "progress": False, "tensorboard": False,
                   "checkpoint_interval": 1000, "torch_threads": 1},
    }  # fmt: skip
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen(
        [sys.executable, "-m", "anymal_ros.cli", "train", "ppo", "--config",
         str(tmp_path / "cfg.yaml"), "--run-dir", str(tmp_path / "run")],
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    metrics = tmp_path / "run" / "metrics.csv"
    try:
        deadline = time.monotonic() + 120
        while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.2)
        workers = [
            int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        ]
        assert len(workers) >= 2  # the two simulators (and multiprocessing's tracker)
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, out
    summary = json.loads(out[out.index("{") :])
    assert summary["stopped_by"] == "SIGTERM"
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert ckpt["counters"]["iteration"] == summary["iterations"] >= 2
    for pid in workers:  # none left behind
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
