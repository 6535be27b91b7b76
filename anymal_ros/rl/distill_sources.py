"""Where distillation's labelled data comes from: DAgger in the simulator (online), or the
episodes of a recorded store (offline). Both are a :class:`DistillSource`, so the runner
(:class:`anymal_ros.rl.distill_runner.DistillRunner`) runs one iteration the same way for either:
``source.run_iteration(distiller, iteration)`` gets the iteration's data at that iteration's
height-noise curriculum (and DAgger beta), updates the student and reports what it did.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from anymal_ros.config.base import to_dict
from anymal_ros.config.distill import DistillConfig
from anymal_ros.config.models import StudentConfig
from anymal_ros.models.student import Student
from anymal_ros.models.teacher import Teacher
from anymal_ros.obs.height_noise import HeightNoise
from anymal_ros.rl.distill import Distiller
from anymal_ros.rl.distill_storage import DistillRollout, rollout_from_episodes
from anymal_ros.sim.interface import TerrainCurriculum, VecEnv


@dataclass(frozen=True)
class SourceIteration:
    """What one iteration of a source did."""

    stats: dict[str, float]  # the source's and the distiller's statistics
    samples: int  # labelled steps learned from (all ranks together)
    collect_time: float  # s spent getting the data; the rest of the iteration is learning
    episodes: int  # episodes finished so far (0 offline: none are played)
    mean_return: float  # over recent episodes; nan offline
    mean_length: float


class DistillSource(Protocol):
    def run_iteration(self, distiller: Distiller, iteration: int) -> SourceIteration:
        """Get iteration ``iteration``'s data and update the student with ``distiller``."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must keep for a resumed run to go on where this one was."""
        ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


class DAggerSource:
    """Online: ``dagger.num_steps`` steps of every simulated robot per iteration, the teacher
    acting with probability ``beta``, every state labelled by the teacher
    (:class:`anymal_ros.rl.dagger.DAggerCollector`), then one student update."""

    def __init__(
        self,
        cfg: DistillConfig,
        env: VecEnv,
        student: Student,
        teacher: Teacher,
        seed: int,
        device: torch.device,
        world_size: int = 1,
    ) -> None:
        from anymal_ros.rl.dagger import DAggerCollector

        s = student.cfg
        if env.proprio_dim != s.proprio_dim or env.action_dim != s.action.num_actions:
            raise ValueError(
                f"teacher/student expect proprio {s.proprio_dim} and {s.action.num_actions} "
                f"actions, the simulator gives {env.proprio_dim} and "
                f"{env.action_dim} (sim.actions.mode {env.cfg.actions.mode!r})"
            )
        self.cfg, self.env, self.world_size = cfg, env, world_size
        self.collector = DAggerCollector(
            env, student, teacher, cfg.noise, cfg.dagger,
            seed=seed, device=device, return_window=cfg.runner.return_window,
        )  # fmt: skip
        self.rollout = DistillRollout(
            cfg.dagger.num_steps, env.num_envs, s.proprio_dim,
            (s.num_feet, s.points_per_foot), s.privileged_dim, s.action.num_actions,
            student.hidden_shape, device,
        )  # fmt: skip

    def run_iteration(self, distiller: Distiller, iteration: int) -> SourceIteration:
        t0 = time.perf_counter()
        collector = self.collector
        collector.set_noise_curriculum(self.cfg.noise.curriculum_factor(iteration))
        stats = collector.collect(self.rollout, self.cfg.dagger.beta(iteration))
        collect_time = time.perf_counter() - t0
        stats.update(distiller.update(self.rollout))
        return SourceIteration(
            stats=stats,
            samples=self.rollout.T * self.rollout.N * self.world_size,
            collect_time=collect_time,
            episodes=collector.episodes,
            mean_return=collector.mean_return,
            mean_length=collector.mean_length,
        )

    def state_dict(self) -> dict[str, Any]:
        """The robots' terrain levels and the terrain they are levels of: a resumed run's
        robots go on where the curriculum had taken them, instead of climbing back from its
        start for hundreds of iterations."""
        if not isinstance(self.env, TerrainCurriculum):
            return {}
        return {
            "terrain": to_dict(self.env.cfg.terrain),
            "terrain_levels": torch.from_numpy(np.asarray(self.env.terrain_levels())),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not isinstance(self.env, TerrainCurriculum):
            return
        levels = state.get("terrain_levels")
        if levels is None:
            why = "the checkpoint holds no terrain levels (written before distillation saved them)"
        elif state.get("terrain") != to_dict(self.env.cfg.terrain):
            # A new stage with another terrain mix: the levels were of other columns.
            why = "this run's terrain differs from the checkpoint's"
        elif len(levels) != self.env.num_envs:
            raise ValueError(
                f"the checkpoint has terrain levels for {len(levels)} robots and this run "
                f"has {self.env.num_envs} (env.num_envs): resume with the same number"
            )
        else:
            self.env.set_terrain_levels(levels.numpy())
            self.collector.restart()
            return
        warnings.warn(f"{why}: the robots start where the terrain curriculum starts", stacklevel=2)


class EpisodeStoreSource:
    """Offline: ``offline.updates_per_iteration`` student updates per iteration, each on
    ``offline.episodes_per_batch`` random recorded episodes labelled by their
    ``teacher_action``, with fresh height noise (its z part: the terrain is not there to
    sample shifted points)."""

    FIELDS = ("proprio", "extero", "privileged", "teacher_action")

    def __init__(
        self, cfg: DistillConfig, path: str | Path, student: Student, device: torch.device
    ) -> None:
        from anymal_ros.replay.store import EpisodeStore

        self.cfg, self.path, self.device = cfg, Path(path), device
        self.hidden_shape = student.hidden_shape
        self.store = EpisodeStore.open(self.path, "r")
        s: StudentConfig = student.cfg
        need = {
            "proprio": (s.proprio_dim,),
            "extero": (s.num_feet, s.points_per_foot),
            "privileged": (s.privileged_dim,),
            "teacher_action": (s.action.num_actions,),
        }
        for name, shape in need.items():
            have = self.store.fields.get(name)
            if have is None or have.shape != shape:
                raise ValueError(
                    f"{self.path}: field {name!r} must have per-step shape {shape} for "
                    f"this student, the store has {have.shape if have else 'no such field'}"
                )
        if len(self.store) == 0:
            raise ValueError(f"{self.path}: the store has no episodes")
        probe = self.store.episode(0, ["teacher_action"])["teacher_action"]
        if not np.any(probe):
            raise ValueError(
                f"{self.path}: teacher_action is all zeros in episode 0: record with "
                "--teacher (or record a teacher) to get labels"
            )
        self.rng = np.random.default_rng(cfg.runner.seed)
        self.noise = HeightNoise(
            cfg.noise, cfg.offline.episodes_per_batch, s.num_feet, s.points_per_foot,
            seed=cfg.runner.seed,
        )  # fmt: skip

    def batch(self) -> DistillRollout:
        """``episodes_per_batch`` random recorded episodes, with fresh height noise."""
        oc = self.cfg.offline
        ids = self.rng.integers(0, len(self.store), size=oc.episodes_per_batch)
        raw = [self.store.episode(int(i), list(self.FIELDS)) for i in ids]
        noise = self.noise
        noise.reset()
        T = max(len(ep["proprio"]) for ep in raw)
        clean = np.zeros((len(raw), T, *noise.shape[1:]), np.float32)
        for b, ep in enumerate(raw):
            clean[b, : len(ep["extero"])] = ep["extero"]
        noisy = np.empty_like(clean)
        for t in range(T):
            noise.sample_xy_offsets()
            noisy[:, t] = noise.apply_z(clean[:, t])
        episodes = [
            {
                "proprio": torch.from_numpy(ep["proprio"]),
                "extero": torch.from_numpy(noisy[b, : len(ep["proprio"])]),
                "clean_extero": torch.from_numpy(ep["extero"]),
                "privileged": torch.from_numpy(ep["privileged"]),
                "teacher_target": torch.from_numpy(ep["teacher_action"]),
            }
            for b, ep in enumerate(raw)
        ]
        return rollout_from_episodes(episodes, self.hidden_shape, self.device)

    def run_iteration(self, distiller: Distiller, iteration: int) -> SourceIteration:
        t0 = time.perf_counter()
        factor = self.cfg.noise.curriculum_factor(iteration)
        self.noise.set_curriculum(factor)
        collect_time = time.perf_counter() - t0  # batches are drawn as the updates go
        stats: dict[str, float] = {"noise_curriculum": factor}
        samples, losses = 0, []
        for _ in range(self.cfg.offline.updates_per_iteration):
            batch = self.batch()
            losses.append(distiller.update(batch))
            samples += int(batch.valid.sum())
        stats.update({k: float(np.mean([s[k] for s in losses])) for k in losses[0]})
        return SourceIteration(
            stats=stats,
            samples=samples,
            collect_time=collect_time,
            episodes=0,
            mean_return=math.nan,
            mean_length=math.nan,
        )

    def state_dict(self) -> dict[str, Any]:
        return {}  # the store is read-only; a resumed run draws its episodes afresh

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass
