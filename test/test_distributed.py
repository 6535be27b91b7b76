"""Data-parallel training (anymal_ros.rl.distributed): two gloo ranks on the CPU, each with half
the robots, make the same update as one process with all of them; normaliser statistics agree
on every rank; ``torchrun --nproc-per-node 2`` trains, writes one set of logs and checkpoints,
resumes exactly, a rank that dies ends the run with a message and a resumable checkpoint,
and a run continues on another number of ranks with ``--reshard``.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from distill_helpers import small_pair, synthetic_rollout
from test_distill_runner import teacher_ckpt  # noqa: F401 (fixture)

from anymal_ros.config.distill import DistillLossConfig
from anymal_ros.config.models import ActionHeadConfig
from anymal_ros.config.rl import PPGConfig, PPOConfig
from anymal_ros.models.checkpoint import CheckpointError, load_checkpoint
from anymal_ros.models.mlp_policy import MLPActorCritic
from anymal_ros.rl.distill import Distiller
from anymal_ros.rl.distill_storage import DistillRollout
from anymal_ros.rl.distributed import SINGLE, Distributed, TorchDistributed
from anymal_ros.rl.ppg import PPG
from anymal_ros.rl.ppo import PPO
from anymal_ros.rl.storage import RolloutStorage

REPO = Path(__file__).resolve().parents[1]
T, N, OBS, ACT = 8, 8, 5, 2  # rollout steps, robots in total, observation and action sizes


# -- the same update on one rank and on two --------------------------------------------------


def _ppo_setup() -> tuple[MLPActorCritic, RolloutStorage, dict[str, torch.Tensor]]:
    """A small actor-critic and a rollout of ``N`` robots with returns (the same everywhere)."""
    torch.manual_seed(3)
    policy = MLPActorCritic(OBS, ActionHeadConfig(num_actions=ACT), (16,), (16,))
    g = torch.Generator().manual_seed(5)
    obs = torch.randn(T + 1, N, OBS, generator=g) * 3.0 + 1.0
    storage = RolloutStorage(T, N, {"obs": (OBS,)}, (ACT,))
    policy.update_normalizers({"obs": obs[:2]})  # normalisation that matters from the start
    with torch.no_grad():
        for t in range(T):
            o = {"obs": obs[t]}
            d = policy.distribution(o)
            a = d.sample()
            storage.add(
                o, a, d.log_prob(a), policy.value(o), torch.randn(N, generator=g),
                torch.rand(N, generator=g) < 0.1, torch.zeros(N, dtype=torch.bool),
            )  # fmt: skip
        storage.compute_returns(policy.value({"obs": obs[T]}), 0.99, 0.95)
    return policy, storage, {"obs": obs[:T]}


def _env_slice_storage(storage: RolloutStorage, envs: slice) -> RolloutStorage:
    n = len(range(N)[envs])
    part = RolloutStorage(T, n, storage.obs_shapes, storage.action_shape)
    for name in ("actions", "log_probs", "values", "rewards", "advantages", "returns"):
        setattr(part, name, getattr(storage, name)[:, envs].clone())
    part.obs = {k: v[:, envs].clone() for k, v in storage.obs.items()}
    part.step = T
    return part


def _ppo_update(d: Distributed, envs: slice) -> dict[str, torch.Tensor]:
    policy, storage, obs = _ppo_setup()
    cfg = PPOConfig(num_epochs=3, num_minibatches=1, learning_rate=3e-3, desired_kl=1e-4)
    ppo = PPO(policy, cfg, dist=d)
    stats = ppo.update(_env_slice_storage(storage, envs))
    with d.pooled_statistics():
        policy.update_normalizers({"obs": obs["obs"][:, envs]})
    out = {k: v.detach().clone() for k, v in policy.state_dict().items()}
    out["lr"] = torch.tensor(stats["learning_rate"])
    return out


def _ppg_update(d: Distributed, envs: slice) -> dict[str, torch.Tensor]:
    """One PPG iteration with its auxiliary phase (``policy_iterations`` 1)."""
    policy, storage, _ = _ppo_setup()
    cfg = PPOConfig(num_epochs=1, num_minibatches=1, learning_rate=3e-3, desired_kl=1e-4)
    ppg = PPG(policy, cfg, PPGConfig(policy_iterations=1, value_epochs=2, aux_epochs=2), dist=d)
    stats = ppg.update(_env_slice_storage(storage, envs))
    assert "aux_value_loss" in stats
    return {k: v.detach().clone() for k, v in policy.state_dict().items()}


def _distill_setup() -> tuple[torch.nn.Module, DistillRollout]:
    teacher, student = small_pair(seed=2)
    rollout = synthetic_rollout(teacher, student, num_steps=12, num_envs=N, seed=4)
    return student, rollout


def _env_slice_rollout(rollout: DistillRollout, envs: slice) -> DistillRollout:
    n = len(range(rollout.N)[envs])
    part = DistillRollout(
        rollout.T, n, rollout.proprio.shape[-1], tuple(rollout.extero.shape[2:]),
        rollout.privileged.shape[-1], rollout.teacher_target.shape[-1],
        (rollout.hidden0.shape[0], rollout.hidden0.shape[2]),
    )  # fmt: skip
    for name in ("proprio", "extero", "clean_extero", "privileged", "teacher_target",
                 "episode_start", "valid"):  # fmt: skip
        getattr(part, name).copy_(getattr(rollout, name)[:, envs])
    part.hidden0.copy_(rollout.hidden0[:, envs])
    part.step = rollout.T
    return part


def _distill_update(d: Distributed, envs: slice) -> dict[str, torch.Tensor]:
    student, rollout = _distill_setup()
    cfg = DistillLossConfig(num_epochs=2, num_minibatches=1, tbptt_steps=4, learning_rate=3e-3)
    Distiller(student, cfg, dist=d).update(_env_slice_rollout(rollout, envs))
    return {k: v.detach().clone() for k, v in student.state_dict().items()}


UPDATES = {"ppo": _ppo_update, "ppg": _ppg_update, "distill": _distill_update}


def _rank_main(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        d = TorchDistributed(torch.device("cpu"))
        share = N // world
        for what, update in UPDATES.items():
            state = update(d, slice(rank * share, (rank + 1) * share))
            torch.save(state, Path(out_dir) / f"{what}_rank{rank}.pt")
    finally:
        dist.destroy_process_group()
    # Everything is saved and the group is gone; a rank has still aborted once in the
    # interpreter's teardown ("terminate called without an active exception"), as trainers'
    # ranks did (anymal_ros.commands._args.learn_and_report): leave as they do.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> dict[str, list[dict[str, torch.Tensor]]]:
    """Every update of ``UPDATES`` on two gloo ranks (spawned once): ``{what: [rank0, rank1]}``."""
    out = tmp_path_factory.mktemp("ranks")
    mp.spawn(_rank_main, args=(2, str(out / "pg"), str(out)), nprocs=2)
    return {w: [torch.load(out / f"{w}_rank{r}.pt") for r in range(2)] for w in UPDATES}


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], exact: bool) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if exact:
            assert torch.equal(a[k], b[k]), k
        elif a[k].is_floating_point():
            torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
        else:
            assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("what", ["ppo", "ppg", "distill"])
def test_two_ranks_with_half_the_batch_each_update_like_one_with_all(two_ranks, what):
    one = UPDATES[what](SINGLE, slice(None))
    rank0, rank1 = two_ranks[what]
    _assert_same(rank0, rank1, exact=True)  # the ranks never diverge, not even by rounding
    _assert_same(rank0, one, exact=False)
    # ... and the update moved the parameters: a rank that learned from its half alone fails.
    alone = UPDATES[what](SINGLE, slice(0, N // 2))
    differs = [
        k for k in one if one[k].is_floating_point() and not torch.allclose(one[k], alone[k])
    ]
    assert differs


def test_normaliser_statistics_agree_on_every_rank_and_pool_every_robot(two_ranks):
    rank0, rank1 = two_ranks["ppo"]
    one = _ppo_update(SINGLE, slice(None))
    for name in ("normalizer.mean", "normalizer.var", "normalizer.count"):
        assert torch.equal(rank0[name], rank1[name]), name
        torch.testing.assert_close(rank0[name], one[name], rtol=1e-9, atol=1e-9)
    # 2 warm-up steps + one rollout of every robot on both ranks together.
    assert float(rank0["normalizer.count"]) == (2 + T) * N
    torch.testing.assert_close(rank0["lr"], one["lr"])  # the KL-adapted rate, decided jointly


# -- torchrun ------------------------------------------------------------------------------


CONFIG = """\
env: {id: CartPole-v1, num_envs: 4}
ppo: {num_steps: 16, num_epochs: 2, num_minibatches: 2}
runner: {iterations: 3, checkpoint_interval: 1, progress: false, tensorboard: false, seed: 3}
"""


def _torchrun(tmp_path: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "anymal_ros.cli", "train", "ppo", "--config", str(tmp_path / "cfg.yaml"), *args,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout
    )


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_torchrun_two_ranks_train_log_once_checkpoint_and_resume_exactly(tmp_path):
    (tmp_path / "cfg.yaml").write_text(CONFIG)
    straight = _torchrun(tmp_path, "--run-dir", str(tmp_path / "a"))
    assert straight.returncode == 0, straight.stdout + straight.stderr
    out = straight.stdout
    assert out.count("run directory:") == 1  # rank 0 alone reports
    assert "2 ranks (gloo)" in out and "4 in total = 2 per rank" in out
    rows = _rows(tmp_path / "a")
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3]  # one set of logs, not two
    assert int(rows[-1]["env_steps"]) == 3 * 16 * 4  # both ranks' robots count
    ckpts = sorted(p.name for p in (tmp_path / "a" / "checkpoints").iterdir())
    assert ckpts == ["iter_000001.pt", "iter_000002.pt", "iter_000003.pt", "latest.pt"]
    assert not list(tmp_path.glob("runs"))  # no rank wrote a stray default run directory
    ckpt = load_checkpoint(tmp_path / "a" / "checkpoints" / "latest.pt")
    assert ckpt["extra"]["world_size"] == 2 and len(ckpt["extra"]["other_ranks"]) == 1
    assert not torch.equal(ckpt["rng"]["torch"], ckpt["extra"]["other_ranks"][0]["rng"]["torch"])

    # Resuming from iteration 2 restores every rank (weights, RNG, environments): the third
    # iteration is the straight run's, bit for bit.
    resumed = _torchrun(
        tmp_path, "--resume", str(tmp_path / "a" / "checkpoints" / "iter_000002.pt"),
        "--run-dir", str(tmp_path / "b"),
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "latest.pt")["models"]["policy"]
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "latest.pt")["models"]["policy"]
    _assert_same(a, b, exact=True)

    # A checkpoint of two ranks does not resume in one process (its streams would not fit).
    from anymal_ros.config import load_config
    from anymal_ros.config.rl import TrainConfig
    from anymal_ros.rl.runner import train_runner

    cfg = load_config(TrainConfig, str(tmp_path / "cfg.yaml"), [])
    with pytest.raises(CheckpointError, match="2 rank"):
        train_runner(cfg, tmp_path / "c", resume=tmp_path / "a" / "checkpoints" / "latest.pt")


QUADRUPED_CONFIG = """\
env:
  kind: quadruped
  num_envs: 4
  sim:
    terrain: {num_levels: 3, num_columns: 7, tile_size: 4.0, border: 2.0, max_init_level: 2,
              curriculum: false}
    termination: {episode_length_s: 1.0}
    actions: {mode: joint_residual}
model:
  type: teacher
  teacher: {policy_mlp: [16], value_mlp: [16], height_encoder: [8]}
ppo: {num_steps: 4, num_epochs: 1, num_minibatches: 1}
runner: {iterations: 2, checkpoint_interval: 1, progress: false, tensorboard: false, seed: 5}
"""


def _levels(run: Path) -> list[int]:
    extra = load_checkpoint(run / "checkpoints" / "latest.pt")["extra"]
    ranks = [extra, *extra.get("other_ranks", [])]
    return [int(x) for r in ranks for x in r["env"]["levels"]]


def test_a_run_moves_to_two_ranks_and_back_with_reshard(tmp_path):
    # One process, then torchrun with two (as on a bigger machine), then one again: each
    # robot keeps its terrain level, the iterations and steps count on, and without
    # --reshard the other number of ranks is refused with the way out in the message.
    (tmp_path / "cfg.yaml").write_text(QUADRUPED_CONFIG)
    train = [sys.executable, "-m", "anymal_ros.cli", "train", "ppo", "--config",
             str(tmp_path / "cfg.yaml")]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    one = subprocess.run([*train, "--run-dir", str(tmp_path / "a")], env=env,
                         capture_output=True, text=True, timeout=240)  # fmt: skip
    assert one.returncode == 0, one.stdout + one.stderr
    levels = _levels(tmp_path / "a")
    assert len(set(levels)) > 1  # robots on different levels: the order is checked

    latest_a = str(tmp_path / "a" / "checkpoints" / "latest.pt")
    refused = _torchrun(tmp_path, "--resume", latest_a, "--run-dir", str(tmp_path / "x"))
    assert refused.returncode != 0
    assert "--reshard" in refused.stdout + refused.stderr

    two = _torchrun(tmp_path, "--resume", latest_a, "--reshard", "--run-dir",
                    str(tmp_path / "b"), "runner.iterations=3")  # fmt: skip
    assert two.returncode == 0, two.stdout + two.stderr
    assert "2 ranks (gloo)" in two.stdout
    rows = _rows(tmp_path / "b")
    assert [int(r["iteration"]) for r in rows] == [3]
    assert int(rows[0]["env_steps"]) == 3 * 4 * 4
    assert _levels(tmp_path / "b") == levels
    assert load_checkpoint(tmp_path / "b" / "checkpoints" / "latest.pt")["extra"]["world_size"] == 2

    back = subprocess.run(
        [*train, "--resume", str(tmp_path / "b" / "checkpoints" / "latest.pt"), "--reshard",
         "--run-dir", str(tmp_path / "c"), "runner.iterations=4"],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert back.returncode == 0, back.stdout + back.stderr
    assert [int(r["iteration"]) for r in _rows(tmp_path / "c")] == [4]
    assert _levels(tmp_path / "c") == levels


def _rank_pids(pid: int) -> dict[int, int]:
    """``{rank: pid}`` of torchrun's worker processes (read from their environment)."""
    ranks = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            for entry in environ:
                if entry.startswith(b"RANK="):
                    ranks[int(entry[5:])] = int(child)
    return ranks


def test_a_rank_that_dies_ends_the_run_with_a_message_and_it_resumes(tmp_path):
    (tmp_path / "cfg.yaml").write_text(CONFIG.replace("iterations: 3", "iterations: 100000"))
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "anymal_ros.cli", "train", "ppo", "--config", str(tmp_path / "cfg.yaml"),
        "--run-dir", str(tmp_path / "a"),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        second = tmp_path / "a" / "checkpoints" / "iter_000002.pt"
        deadline = time.monotonic() + 180
        while not second.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the run did not start"
            time.sleep(0.2)
        ranks = _rank_pids(proc.pid)
        assert sorted(ranks) == [0, 1]
        os.kill(ranks[1], signal.SIGKILL)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "rank 0 of 2 stopped" in out and "--resume" in out, out[-3000:]
    latest = tmp_path / "a" / "checkpoints" / "latest.pt"
    iteration = load_checkpoint(latest)["counters"]["iteration"]
    assert iteration >= 2  # latest.pt is the last periodic checkpoint, whole
    assert latest.samefile(latest.with_name(f"iter_{iteration:06d}.pt"))
    (tmp_path / "cfg.yaml").write_text(
        CONFIG.replace("iterations: 3", f"iterations: {iteration + 1}")
    )
    resumed = _torchrun(tmp_path, "--resume", str(latest))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert load_checkpoint(latest)["counters"]["iteration"] == iteration + 1


def test_torchrun_two_ranks_distil_in_step_and_resume(teacher_ckpt, tmp_path):  # noqa: F811
    # DAgger on two ranks, two robots each: one log whose beta and noise schedules advance
    # once per iteration, every rank's state in the checkpoint, and a resume.
    from test_distill_runner import TINY_RUN

    run = tmp_path / "run"
    sets = [*TINY_RUN, "env.num_envs=4", "runner.checkpoint_interval=1"]

    def distil(iterations: int, *args: str) -> None:
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
            "2", "-m", "anymal_ros.cli", "distill", "--teacher", str(teacher_ckpt), "--config",
            str(REPO / "config" / "distill.yaml"), "--run-dir", str(run), *args,
            "--set", *sets, f"runner.iterations={iterations}",
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.count("run directory:") == 1

    distil(2)
    rows = _rows(run)
    assert [int(r["iteration"]) for r in rows] == [1, 2]
    assert [float(r["beta"]) for r in rows] == [0.5, 0.25]
    assert int(rows[-1]["env_steps"]) == 2 * 12 * 4
    latest = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert latest["extra"]["world_size"] == 2
    distil(3, "--resume", str(run / "checkpoints" / "iter_000002.pt"))
    assert [int(r["iteration"]) for r in _rows(run)] == [1, 2, 3]
    assert float(_rows(run)[-1]["beta"]) == 0.0


def test_totals_that_ranks_cannot_share_are_refused_and_seeds_differ():
    class ThreeRanks(Distributed):
        world_size = 3
        rank = 2

    d = ThreeRanks()
    assert d.share(12, "env.num_envs") == 4 and d.worker_share(2) == 1 and d.worker_share(7) == 2
    with pytest.raises(ValueError, match="env.num_envs is 8, which 3 ranks cannot share evenly"):
        d.share(8, "env.num_envs")
    assert d.rank_seed(5) != SINGLE.rank_seed(5) == 5
