"""On-policy training loop: rollouts, PPO/PPG updates, logs, checkpoints and exact resume.

``train_runner(cfg, run_dir).learn()`` trains until ``runner.iterations`` (or an env-step /
return target), shows a progress bar with env steps/s and ETA, writes ``metrics.csv`` (+
TensorBoard), checkpoints every ``checkpoint_interval`` iterations and when interrupted
(SIGINT/SIGTERM), and plots the learning curves at the end. ``train_runner(cfg, run_dir,
resume=path)`` continues a run: weights, normalisers, optimisers, learning rate (as far as the
config's schedule settings allow: ``LearningRateController.load_state_dict``), PPG buffers,
counters, RNG states (torch, numpy, python, environment seeds) and the environment state where
the environment can save it.

:func:`train_runner` builds this process's environments (``anymal_ros.rl.rank``) and hands
them to the :class:`Runner`, which drives them: the learner's view (``runner.env``) and the
quadruped simulator behind it (``runner.sim``, None for Gymnasium).

Under ``torchrun`` each rank runs a ``Runner`` over its share of ``env.num_envs`` (a total;
see ``anymal_ros.rl.distributed``); rank 0 logs and checkpoints, and a checkpoint keeps every
rank's own state (RNG, environment, PPG buffers) so each resumes where it was. The learner
runs on ``runner.device`` (``anymal_ros.rl.device``); the simulators always run on the CPU.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from anymal_ros.config import to_dict
from anymal_ros.config.models import ActionHeadConfig
from anymal_ros.config.rl import TrainConfig
from anymal_ros.models.checkpoint import (
    CheckpointError,
    capture_rng_state,
    load_checkpoint,
    load_model_state,
    restore_rng_state,
    save_checkpoint,
)
from anymal_ros.obs.mirror import ObsActionMirror
from anymal_ros.rl.device import HostToDevice
from anymal_ros.rl.loop import TrainingLoop, terrain_level_columns, terrain_level_stats
from anymal_ros.rl.ppg import PPG
from anymal_ros.rl.ppo import PPO
from anymal_ros.rl.rank import Rank, TrainEnv, join_run, train_env
from anymal_ros.rl.storage import RolloutStorage
from anymal_ros.rl.vec_env import LearnerEnv, Resumable
from anymal_ros.sim.interface import TerrainCurriculum, VecEnv

STAT_COLUMNS = (
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clip_fraction",
    "grad_norm",
    "learning_rate",
    "aux_value_loss",
    "aux_clone_kl",
    "aux_critic_loss",
    "symmetry_loss",
)


def _task_columns(cfg: TrainConfig) -> tuple[str, ...]:
    """CSV columns of the legged task: each weighted reward term (per-step means) and the mean
    terrain level, overall and per terrain type, so a run's progress is readable from
    metrics.csv alone."""
    if cfg.env.kind not in ("quadruped", "ros"):
        return ()
    rewards = cfg.env.sim.rewards
    weighted = {**rewards.weights, "fall": rewards.fall}
    columns = tuple(f"reward/{name}" for name, w in weighted.items() if w != 0.0)
    if cfg.env.kind != "quadruped":
        return columns
    return columns + terrain_level_columns(cfg.env.sim.terrain.proportions)


def make_policy(cfg: TrainConfig, env: LearnerEnv) -> nn.Module:
    """An actor-critic matching ``cfg.model`` and the environment's spaces."""
    if cfg.model.type == "mlp":
        from anymal_ros.models.mlp_policy import MLPActorCritic

        m = cfg.model.mlp
        action = ActionHeadConfig(
            type=env.action_type,
            num_actions=env.num_actions,
            init_std=m.init_std,
            log_std_range=m.log_std_range,
        )
        return MLPActorCritic(
            env.obs_dim, action, m.actor_hidden, m.critic_hidden, m.activation, m.obs_clip
        )
    from anymal_ros.models.teacher import Teacher

    # The environment decides the proprioception size (CPG or not) and the action size.
    tc = cfg.model.teacher
    tc = dataclasses.replace(
        tc,
        proprio_dim=env.proprio_dim,
        action=dataclasses.replace(tc.action, num_actions=env.num_actions),
    )
    return Teacher(tc)


def _obs_shapes(obs: Mapping[str, Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape[1:]) for k, v in obs.items()}


class Runner(TrainingLoop):
    STAT_COLUMNS = STAT_COLUMNS

    def __init__(
        self,
        cfg: TrainConfig,
        rank: Rank,
        env: TrainEnv,
        run_dir: str | Path | None = None,
        resume: str | Path | None = None,
        reshard: bool = False,
    ) -> None:
        """Train ``cfg`` as process ``rank`` on ``env``, that rank's share of the robots (see
        :func:`train_runner`, which builds both); ``resume``: a checkpoint to continue;
        ``reshard``: allow one written by another number of ranks (:meth:`_resharded_state`).
        """
        self.cfg = cfg
        self._reshard = reshard
        rc = cfg.runner
        self.device, self.dist, self.seed = rank.device, rank.dist, rank.seed
        d = self.dist
        checkpoint = load_checkpoint(resume) if resume is not None else None
        if checkpoint is not None:
            saved_algo = checkpoint["config"].get("algorithm")
            if saved_algo != cfg.algorithm:
                raise CheckpointError(
                    f"{resume}: checkpoint was trained with {saved_algo!r}, not {cfg.algorithm!r}"
                )
        self.env: LearnerEnv = env.learner
        #: The quadruped simulator behind the learner's view; None for Gymnasium.
        self.sim: VecEnv | None = env.sim
        self.num_envs = self.env.num_envs  # this rank's robots
        ppg_cfg = cfg.ppg
        if ppg_cfg.aux_minibatch_size is not None:  # a total too
            ppg_cfg = dataclasses.replace(
                ppg_cfg, aux_minibatch_size=max(1, ppg_cfg.aux_minibatch_size // d.world_size)
            )
        self._to_learner = HostToDevice(self.device) if self.device.type != "cpu" else None
        with self._own_random_stream(self.seed):
            self.policy = make_policy(cfg, self.env).to(self.device)
            d.broadcast_module(self.policy)  # every rank starts from rank 0's weights
            if cfg.algorithm == "ppo":
                mirror = (
                    ObsActionMirror.for_quadruped(
                        cfg.env.sim.actions.mode, cfg.env.sim.privileged_frame
                    )
                    if cfg.ppo.symmetry_coef > 0
                    else None
                )
                self.algorithm: PPO | PPG = PPO(
                    self.policy, cfg.ppo, rc.iterations, dist=d, mirror=mirror
                )
            else:
                self.algorithm = PPG(self.policy, cfg.ppo, ppg_cfg, rc.iterations, dist=d)
            self.obs = {k: v.to(self.device) for k, v in self.env.reset().items()}
            action_shape = () if self.env.action_type == "categorical" else (self.env.num_actions,)
            self.storage = RolloutStorage(
                cfg.ppo.num_steps,
                self.num_envs,
                _obs_shapes(self.obs),
                action_shape,
                action_dtype=torch.int64 if action_shape == () else torch.float32,
                device=self.device,
            )
            self.episode_start = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
            self.iteration = 0
            self.env_steps = 0
            self.episodes = 0
            self.wall_time = 0.0
            self._sim_time = 0.0
            self._terms: dict[str, float] = {}
            self.recent_returns: deque[float] = deque(maxlen=rc.return_window)
            self.recent_lengths: deque[float] = deque(maxlen=rc.return_window)
            # One run directory for all ranks: rank 0's (its default carries rank 0's clock).
            self.run_dir = Path(
                d.broadcast_object(str(run_dir) if run_dir is not None else self._default_run_dir())
            )
            self.STAT_COLUMNS = STAT_COLUMNS + _task_columns(cfg)
            if checkpoint is not None:
                self._restore(checkpoint)

    def _default_run_dir(self) -> Path:
        kind = self.cfg.env.kind
        env_name = {"gymnasium": self.cfg.env.id, "ros": "ros"}.get(kind, "quadruped")
        return self._stamped_run_dir(f"{self.cfg.algorithm}_{env_name}")

    # -- one iteration -------------------------------------------------------------------

    @torch.no_grad()
    def collect_rollout(self) -> None:
        """Fill the storage with ``num_steps`` steps of every environment and compute GAE."""
        policy, storage = self.policy, self.storage
        storage.clear()
        term_sums: dict[str, float] = {}
        for _ in range(storage.T):
            dist = policy.distribution(self.obs)
            actions = dist.sample()
            log_probs = dist.log_prob(actions)
            values = policy.value(self.obs)
            t_sim = time.perf_counter()
            next_obs, rewards, terminated, truncated, info = self.env.step(actions)
            self._sim_time += time.perf_counter() - t_sim
            terminated, truncated = terminated.bool(), truncated.bool()
            cut = truncated & ~terminated  # decided on the host: no device round trip
            next_obs, rewards, terminated, truncated = self._step_to_learner(
                next_obs, rewards, terminated, truncated
            )
            truncation_values = torch.zeros_like(values)
            if cut.any():
                idx = cut.nonzero().squeeze(-1)
                final = {k: v[idx] for k, v in info["final_obs"].items()}
                if self._to_learner is not None:
                    final = self._to_learner(final)
                truncation_values[idx.to(self.device)] = policy.value(final)
            storage.add(
                self.obs, actions, log_probs, values, rewards, terminated, truncated,
                truncation_values, episode_start=self.episode_start,
            )  # fmt: skip
            done = terminated | truncated
            if done.any() and "episode_return" in info:
                self.recent_returns.extend(info["episode_return"][done.cpu()].tolist())
                self.recent_lengths.extend(info["episode_length"][done.cpu()].float().tolist())
            for name, value in info.get("reward_terms", {}).items():
                # Per-term rewards from the simulator (e.g. velocity tracking), step means.
                term_sums[f"reward/{name}"] = term_sums.get(f"reward/{name}", 0.0) + float(
                    value.float().mean()
                )
            self.episodes += int(done.sum())
            self.episode_start = done
            self.obs = next_obs
        storage.compute_returns(policy.value(self.obs), self.cfg.ppo.gamma, self.cfg.ppo.lam)
        self._terms = {k: v / storage.T for k, v in term_sums.items()}
        self.env_steps += self.steps_per_iteration

    @property
    def steps_per_iteration(self) -> int:
        """Environment steps of one iteration over all ranks."""
        return self.storage.T * self.storage.N * self.dist.world_size

    def _step_to_learner(
        self, obs: dict[str, Tensor], rewards: Tensor, terminated: Tensor, truncated: Tensor
    ) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]:
        """A step's results on the learner's device: one packed copy per step to a GPU."""
        if self._to_learner is None:
            return obs, rewards.to(torch.float32), terminated, truncated
        moved = self._to_learner(
            {**{f"obs/{k}": v for k, v in obs.items()}, "rewards": rewards,
             "terminated": terminated, "truncated": truncated},
            {"terminated": torch.bool, "truncated": torch.bool},
        )  # fmt: skip
        obs = {k: moved[f"obs/{k}"] for k in obs}
        return obs, moved["rewards"], moved["terminated"], moved["truncated"]

    def train_iteration(self) -> dict[str, float]:
        t0 = time.perf_counter()
        self._sim_time = 0.0
        self.collect_rollout()
        t1 = time.perf_counter()
        stats = self.algorithm.update(self.storage, self.iteration)
        # Normalisers change only between iterations, so every value and log-prob of one
        # rollout and its update saw the same normalisation; all ranks pool their rollouts.
        with self.dist.pooled_statistics():
            self.policy.update_normalizers(self.storage.obs)
        t2 = time.perf_counter()
        self.iteration += 1
        self.wall_time += t2 - t0
        storage_size = self.steps_per_iteration
        stats.update(self._terms)
        if isinstance(self.sim, TerrainCurriculum):
            stats.update(terrain_level_stats(self.sim.terrain_levels(), self.sim.terrain_types()))
        stats.update(
            iteration=self.iteration,
            env_steps=self.env_steps,
            wall_time=self.wall_time,
            steps_per_second=storage_size / max(t2 - t0, 1e-9),
            collect_time=t1 - t0,
            sim_time=self._sim_time,
            mean_step_reward=float(self.storage.rewards.mean()),
            learn_time=t2 - t1,
            episodes=self.episodes,
            mean_return=self.mean_return,
            mean_length=float(np.mean(self.recent_lengths)) if self.recent_lengths else math.nan,
        )
        for k, v in stats.items():
            if (
                isinstance(v, float)
                and not math.isfinite(v)
                and k not in ("mean_return", "mean_length")
            ):
                raise FloatingPointError(f"iteration {self.iteration}: {k} is {v}")
        return stats

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.recent_returns)) if self.recent_returns else math.nan

    def _target_reached(self) -> bool:
        rc = self.cfg.runner
        if rc.max_env_steps is not None and self.env_steps >= rc.max_env_steps:
            return True
        return (
            rc.stop_at_return is not None
            and len(self.recent_returns) == self.recent_returns.maxlen
            and self.mean_return >= rc.stop_at_return
        )

    # -- the loop ----------------------------------------------------------------------------

    def learn(
        self,
        iterations: int | None = None,
        on_iteration: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Train up to ``iterations`` more iterations (default: until ``runner.iterations``).

        ``on_iteration(stats)`` runs after each iteration is logged and checkpointed (a
        training node publishes progress from it); :meth:`request_stop` ends the loop after
        the current iteration. Returns a summary: iterations, env steps, wall time, mean
        return, why it stopped.
        """
        reason = self._loop(iterations, on_iteration)
        return {
            "iterations": self.iteration,
            "env_steps": self.env_steps,
            "wall_time": self.wall_time,
            "mean_return": self.mean_return,
            "episodes": self.episodes,
            "stopped_by": reason,
            "run_dir": str(self.run_dir),
        }

    def _progress_bar(self, iterations: int) -> Any:
        from tqdm import tqdm

        return tqdm(
            total=iterations * self.steps_per_iteration,
            unit="step",
            unit_scale=True,
            disable=not (self.cfg.runner.progress and self.dist.is_main),
            dynamic_ncols=True,
        )

    def _show_progress(self, bar: Any, stats: dict[str, Any]) -> None:
        bar.update(self.steps_per_iteration)
        # A string: tqdm shortens numbers to three significant digits (30,050 read "3e+4").
        bar.set_postfix(it=str(self.iteration), ret=f"{self.mean_return:.1f}", refresh=False)

    # -- checkpoints -----------------------------------------------------------------------

    def _rank_state(self) -> dict[str, Any]:
        """What differs between ranks: RNG, environment, episode bookkeeping, PPG buffers."""
        env_state = self.env.state_dict() if isinstance(self.env, Resumable) else None
        return {
            "rng": self._checkpoint_rng(),
            "algorithm": self.algorithm.state_dict(),
            "env": env_state,
            "obs": {k: v.cpu() for k, v in self.obs.items()},
            "episode_start": self.episode_start.cpu(),
            "recent_returns": list(self.recent_returns),
            "recent_lengths": list(self.recent_lengths),
            "episodes": self.episodes,
        }

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint (rank 0; the other ranks hand it their state and return)."""
        own, others = self._gather_rank_states()
        if not self.dist.is_main:
            return Path(path)
        rng = own.pop("rng")
        own.pop("episodes")
        return save_checkpoint(
            path,
            models={self.model_name: self.policy},
            optimizers=self.algorithm.optimizers(),
            config={**to_dict(self.cfg), **self._policy_sections()},
            counters={
                "iteration": self.iteration,
                "env_steps": self.env_steps,
                "episodes": self.episodes,
                "wall_time": self.wall_time,
            },
            rng=rng,
            extra={**own, **others},
        )

    @property
    def model_name(self) -> str:
        """``teacher`` for the quadruped teacher (see ``models.loading``), else ``policy``."""
        return "teacher" if self.cfg.model.type == "teacher" else "policy"

    def _policy_sections(self) -> dict[str, Any]:
        """The ``models.loading`` sections of a quadruped teacher: its config as built (sized
        by the simulator), the simulator settings and the matching deployment section."""
        if self.model_name != "teacher":
            return {}
        sim = self.sim
        if sim is None:
            raise ValueError("a teacher trains on a quadruped simulator (env.kind quadruped, ros)")
        return {
            "teacher": to_dict(self.policy.cfg),
            "sim": to_dict(sim.cfg),
            "deploy": to_dict(sim.deploy_config()),
        }

    def _restore(self, ckpt: Mapping[str, Any]) -> None:
        load_model_state(self.policy, ckpt, self.model_name)
        for name, opt in self.algorithm.optimizers().items():
            if name not in ckpt["optimizers"]:
                raise CheckpointError(f"checkpoint has no optimiser {name!r}")
            opt.load_state_dict(ckpt["optimizers"][name])
        saved_ranks = int(ckpt["extra"].get("world_size", 1))
        if self._reshard and saved_ranks != self.dist.world_size:
            extra = self._resharded_state(ckpt)
        else:
            extra = self._own_rank_state(ckpt)
        self.algorithm.load_state_dict(extra["algorithm"])
        c = ckpt["counters"]
        self.iteration = int(c["iteration"])
        self.env_steps = int(c["env_steps"])
        self.episodes = int(extra.get("episodes", c["episodes"]))  # other ranks: their own
        self.wall_time = float(c["wall_time"])
        self.recent_returns.extend(extra["recent_returns"])
        self.recent_lengths.extend(extra["recent_lengths"])
        restore_rng_state(extra["rng"])
        exact = extra["env"] is not None and extra["env"].get("envs") is not None
        if extra["env"] is not None and isinstance(self.env, Resumable):
            obs = self.env.load_state_dict(extra["env"])
        else:
            obs = self.env.reset()
        if exact:
            self.obs = {k: v.to(self.device) for k, v in extra["obs"].items()}
            self.episode_start = extra["episode_start"].to(self.device)
        else:
            self.obs = {k: v.to(self.device) for k, v in obs.items()}
            self.episode_start = torch.ones_like(self.episode_start)

    def _resharded_state(self, ckpt: Mapping[str, Any]) -> dict[str, Any]:
        """This rank's part of a checkpoint written by another number of ranks: a
        continuation, not a replay (``--reshard``: a run moved to a machine with more or
        fewer cores). The learner (weights, normalisers, optimiser, learning rate, counters)
        is the same on every rank anyway; robot ``i`` of the run keeps the terrain level of
        robot ``i`` of the checkpoint (``env.num_envs`` is a total and must be the same);
        every robot starts a new episode and each rank a new random stream, from its seed
        and the iteration."""
        if self.cfg.algorithm != "ppo":
            raise CheckpointError(
                "only a PPO run can change its number of ranks: PPG keeps every rank's own "
                "rollouts for its auxiliary phase"
            )
        extra = ckpt["extra"]
        ranks = [extra, *extra.get("other_ranks", [])]
        envs = [r["env"] for r in ranks]
        saved_robots = sum(int(e["num_envs"]) for e in envs) if all(envs) else None
        if saved_robots != self.cfg.env.num_envs:
            raise CheckpointError(
                f"the checkpoint's run had {saved_robots} robots in all and this one has "
                f"env.num_envs {self.cfg.env.num_envs}: a resharded run keeps its robots"
            )
        first = self.dist.rank * self.num_envs  # every rank has an equal share
        env: dict[str, Any] = {"num_envs": self.num_envs, "envs": None}
        if all("levels" in e for e in envs):
            levels = torch.cat([e["levels"] for e in envs])
            env["levels"] = levels[first : first + self.num_envs]
        stream = self.seed + int(ckpt["counters"]["iteration"])
        torch.manual_seed(stream)
        np.random.seed(stream % 2**32)  # noqa: NPY002 (the run's global stream, as at its start)
        random.seed(stream)
        state = {
            "algorithm": extra["algorithm"],  # the learning rate: the same on every rank
            "env": env,
            "rng": capture_rng_state(),
            "recent_returns": [],
            "recent_lengths": [],
            "episodes": 0,
        }
        if self.dist.is_main:  # reports the run's recent episodes and counts (counters) its own
            del state["episodes"]
            for key in ("recent_returns", "recent_lengths"):
                state[key] = [x for r in ranks for x in r[key]]
        return state


def train_runner(
    cfg: TrainConfig,
    run_dir: str | Path | None = None,
    resume: str | Path | None = None,
    reshard: bool = False,
) -> Runner:
    """A :class:`Runner` for ``cfg`` on this process's share of the environments, which this
    builds (``anymal_ros.rl.rank``); ``resume``: a checkpoint to continue from, ``reshard``:
    also one of another number of ranks."""
    rank = join_run(cfg.runner)
    env = train_env(cfg, rank)
    try:
        return Runner(cfg, rank, env, run_dir, resume, reshard)
    except BaseException:
        env.close()  # e.g. a checkpoint of another algorithm: no simulator workers left behind
        raise
