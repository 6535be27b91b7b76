"""This process's part of a training run, decided in one place for both trainers: where its
learner runs, its place among the ``torchrun`` ranks, its seed and its share of the robots.

The commands (``anymal-ros train``, ``anymal-ros distill``, the training node) build a rank's
environments here and hand them to the runner, which only drives them (see
``anymal_ros.rl.runner.train_runner`` and ``anymal_ros.rl.distill_runner.distill_runner``)::

    rank = join_run(cfg.runner)          # threads, device, process group, seed
    env = train_env(cfg, rank)           # this rank's robots: the learner's view and the sim
    runner = Runner(cfg, rank, env, run_dir, resume)

``env.num_envs`` and ``env.num_workers`` are totals over the ranks: rank ``r`` of ``W`` gets
``num_envs / W`` robots (which must divide evenly), ``num_workers / W`` simulator processes
(at least one) and the seed ``runner.seed + r * RANK_SEED_STRIDE`` (``rl.distributed``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from anymal_ros.rl.device import resolve_device
from anymal_ros.rl.distributed import Distributed, init_distributed
from anymal_ros.rl.vec_env import LearnerEnv, TorchVecEnv

if TYPE_CHECKING:
    from anymal_ros.config.distill import DistillEnvConfig
    from anymal_ros.config.rl import LoopConfig, TrainConfig
    from anymal_ros.config.sim import SimConfig
    from anymal_ros.sim.interface import VecEnv


@dataclass(frozen=True)
class Rank:
    """One process of a run (the only one without ``torchrun``)."""

    device: torch.device  # where the learner runs: ``runner.device`` resolved
    dist: Distributed  # the ranks' collectives; the identity for one process
    seed: int  # ``runner.seed``, made this rank's own


def join_run(runner: LoopConfig) -> Rank:
    """Set the learner's threads, resolve ``runner.device`` and join the ``torchrun`` process
    group when there is one (:func:`anymal_ros.rl.distributed.init_distributed`)."""
    torch.set_num_threads(runner.torch_threads)
    device = resolve_device(runner.device)
    dist = init_distributed(device)
    return Rank(device, dist, dist.rank_seed(runner.seed))


@dataclass(frozen=True)
class TrainEnv:
    """The environments one rank of the on-policy trainer drives."""

    learner: LearnerEnv  # torch in and out, on the CPU (the runner moves steps to its device)
    sim: VecEnv | None  # the quadruped simulator behind ``learner``; None for Gymnasium

    def close(self) -> None:
        self.learner.close()


def train_env(cfg: TrainConfig, rank: Rank) -> TrainEnv:
    """This rank's share of the environments named by ``cfg.env``: a Gymnasium id, the MuJoCo
    quadruped (in this process or in simulator workers) or robots over ROS topics."""
    d = rank.dist
    env = dataclasses.replace(
        cfg.env,
        num_envs=d.share(cfg.env.num_envs, "env.num_envs"),
        num_workers=d.worker_share(cfg.env.num_workers),
    )
    if env.kind == "gymnasium":
        from anymal_ros.bridges.gymnasium import GymnasiumVecEnv

        return TrainEnv(GymnasiumVecEnv(env.id, env.num_envs, rank.seed, env.kwargs), None)
    sim: VecEnv
    if env.kind == "ros":
        from anymal_ros.bridges.ros_topics import RosTopicVecEnv

        sim = RosTopicVecEnv(env.sim, env.ros, env.num_envs, rank.seed)
    else:
        sim = _quadruped(env.sim, env.num_envs, rank.seed, env.num_workers)
    return TrainEnv(TorchVecEnv(sim), sim)


def dagger_env(sim: SimConfig, env: DistillEnvConfig, rank: Rank) -> VecEnv:
    """This rank's share of the robots that distillation's DAgger rollouts run on."""
    d = rank.dist
    num_envs = d.share(env.num_envs, "env.num_envs")
    return _quadruped(sim, num_envs, rank.seed, d.worker_share(env.num_workers))


def _quadruped(sim: SimConfig, num_envs: int, seed: int, num_workers: int) -> VecEnv:
    try:
        from anymal_ros.sim.multiproc import make_quadruped_env
    except ImportError as err:
        raise RuntimeError(f"env.kind 'quadruped' needs anymal_ros.sim ({err})") from err
    return make_quadruped_env(sim, num_envs, seed, num_workers)
