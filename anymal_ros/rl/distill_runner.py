"""Distillation loop: DAgger rollouts (or recorded episodes), student updates, logs,
checkpoints and resume -- the student counterpart of ``anymal_ros.rl.runner``.

``distill_runner(cfg, teacher_checkpoint, run_dir).learn()`` trains ``runner.iterations``
iterations: :func:`distill_runner` loads the teacher, builds this process's robots in the
teacher's simulator (``anymal_ros.rl.rank``) and hands both to the :class:`DistillRunner`.
Each iteration sets the height-noise curriculum factor and the DAgger ``beta`` for that
iteration, collects ``dagger.num_steps`` steps of every environment (or samples recorded
episodes with ``store=``), and updates the student: the two data sources are
:mod:`anymal_ros.rl.distill_sources`. Progress bar with rate and
ETA, ``metrics.csv`` (+ TensorBoard) and the learning-curve PNG come from
``anymal_ros.rl.logger`` (shared with the teacher trainer); checkpoints are written every
``checkpoint_interval`` iterations, on SIGINT/SIGTERM and at the end (``latest.pt``).

Checkpoints hold ``models["student"]`` and config sections ``student``, ``deploy`` (what
``anymal-ros export`` reads), ``sim`` (what ``anymal-ros eval`` reads), ``teacher`` and
``distill`` (the ``sim`` section holds every simulator setting, as the teacher's does).
Resuming restores the student, optimiser, counters, the learner's and the
global RNG states; environments start fresh episodes (the simulator's state is not saved).

Under ``torchrun`` each rank runs DAgger on its share of ``env.num_envs`` (a total) with its
own seed, the student's gradients are averaged over the ranks at every step, and the beta and
noise schedules follow the shared iteration count, so every rank is in step (see
``anymal_ros.rl.distributed``). Offline distillation (``store=``) runs in one process.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anymal_ros.config import deep_merge, from_dict, to_dict
from anymal_ros.config.deploy import DeployConfig
from anymal_ros.config.distill import DistillConfig
from anymal_ros.config.models import SharedNetConfig, StudentConfig, TeacherConfig
from anymal_ros.models.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_model_state,
    restore_rng_state,
    save_checkpoint,
)
from anymal_ros.models.loading import teacher_from_checkpoint
from anymal_ros.models.student import Student, init_student_from_teacher
from anymal_ros.models.teacher import Teacher
from anymal_ros.rl.distill import LOSS_STATS, Distiller
from anymal_ros.rl.distill_sources import DAggerSource, DistillSource, EpisodeStoreSource
from anymal_ros.rl.loop import TrainingLoop, terrain_level_columns, terrain_level_stats
from anymal_ros.rl.rank import Rank, dagger_env, join_run
from anymal_ros.sim.interface import TerrainCurriculum, VecEnv

if TYPE_CHECKING:
    from anymal_ros.config.sim import SimConfig

STAT_COLUMNS: tuple[str, ...] = (
    *LOSS_STATS,
    "learning_rate",
    "beta",
    "teacher_action_share",
    "noise_curriculum",
    "tracking_error",
)


def student_config_for(teacher: TeacherConfig, given: StudentConfig | None) -> StudentConfig:
    """The student's sizes: those it shares with the teacher are the teacher's (it starts from
    the teacher's encoder, policy MLP and action head), the recurrent parts ``given``'s, or
    the paper's when ``given`` is None. So a ``student`` section need name only what it
    changes (``student.gru_hidden=128``); a shared size it sets to neither the default nor the
    teacher's raises ValueError naming each."""
    shared = {f.name: getattr(teacher, f.name) for f in dataclasses.fields(SharedNetConfig)}
    if given is None:
        return StudentConfig(**shared)
    default = StudentConfig()
    clashes: list[tuple[str, Any, Any]] = []
    for name, theirs in shared.items():
        clashes += _set_apart(name, getattr(given, name), theirs, getattr(default, name))
    if clashes:
        raise ValueError(
            "student: a size it shares with its teacher must be the teacher's or left out: "
            + "; ".join(f"{name}: student {mine!r} vs teacher {theirs!r}"
                        for name, mine, theirs in clashes)
        )  # fmt: skip
    return dataclasses.replace(given, **shared)


def _set_apart(name: str, mine: Any, theirs: Any, default: Any) -> list[tuple[str, Any, Any]]:
    """(dotted name, given, teacher's) for each field of ``mine`` that differs from both the
    teacher's and the default, looking into nested sections such as ``action``."""
    if dataclasses.is_dataclass(mine):
        return [
            clash
            for f in dataclasses.fields(mine)
            for clash in _set_apart(f"{name}.{f.name}", getattr(mine, f.name),
                                    getattr(theirs, f.name), getattr(default, f.name))
        ]  # fmt: skip
    same = [_as_tuple(mine) == _as_tuple(other) for other in (theirs, default)]
    return [] if any(same) else [(name, mine, theirs)]


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


class DistillRunner(TrainingLoop):
    """See the module docstring. ``store``: distil offline from an episode store's
    ``teacher_action`` labels instead of running DAgger in the simulator."""

    STAT_COLUMNS = STAT_COLUMNS

    def __init__(
        self,
        cfg: DistillConfig,
        rank: Rank,
        teacher: TeacherCheckpoint,
        sim: SimConfig,
        env: VecEnv | None = None,
        run_dir: str | Path | None = None,
        resume: str | Path | None = None,
        store: str | Path | None = None,
    ) -> None:
        """Distil ``teacher`` into a student as process ``rank``: DAgger on ``env`` (that
        rank's share of the robots, simulated with ``sim``), or offline from the episode
        ``store`` (then ``env`` is None and ``sim`` is what the student is meant to run in).
        :func:`distill_runner` builds all of them from a config and a checkpoint path."""
        if (env is None) == (store is None):
            raise ValueError("distillation learns from a simulator (env) or a store, one of them")
        if store is not None and rank.dist.active:
            raise ValueError(
                "offline distillation (--from-store) runs in one process; start it without "
                "torchrun (or with --nproc-per-node 1)"
            )
        self.cfg = cfg
        self.device, self.dist, self.seed = rank.device, rank.dist, rank.seed
        d = self.dist
        self.teacher_checkpoint = teacher.path
        self.teacher: Teacher = teacher.teacher.to(self.device)
        self.teacher.eval().requires_grad_(False)
        self.student_cfg = student_config_for(self.teacher.cfg, cfg.student)
        #: The distillation simulator's settings: the teacher's with ``env.sim`` merged in.
        self.sim = sim
        self.env = env
        self.deploy = self._deploy_config()
        checkpoint = load_checkpoint(resume) if resume is not None else None

        with self._own_random_stream(self.seed):
            self.student = Student(self.student_cfg).to(self.device)
            init_student_from_teacher(self.student, self.teacher)
            d.broadcast_module(self.student)  # every rank starts from rank 0's student
            self.distiller = Distiller(self.student, cfg.loss, seed=self.seed, dist=d)

            self.source: DistillSource
            if env is not None:
                self.source = DAggerSource(
                    cfg, env, self.student, self.teacher, self.seed, self.device, d.world_size
                )
            else:
                assert store is not None
                self.source = EpisodeStoreSource(cfg, store, self.student, self.device)
            self.iteration = 0
            self.samples = 0  # labelled steps learned from
            self.wall_time = 0.0
            # One run directory for all ranks: rank 0's.
            self.run_dir = Path(
                d.broadcast_object(str(run_dir) if run_dir is not None else self._default_run_dir())
            )
            # Where the curriculum has taken the student's robots, as the teacher's run logs it.
            self._terrain = env if isinstance(env, TerrainCurriculum) else None
            columns = STAT_COLUMNS
            if cfg.dagger.governor is not None and store is None:
                columns += ("governor_capped_share",)  # robot-steps the belief slowed
            if self._terrain is not None:
                columns += terrain_level_columns(sim.terrain.proportions)
            self.STAT_COLUMNS = columns
            if checkpoint is not None:
                self._restore(checkpoint, resume)

    def _deploy_config(self) -> DeployConfig:
        """How the robot must run the student: the config's ``deploy`` section, else the
        distillation simulator's (the teacher's robot, with any ``env.sim.actions`` override:
        that changes how the student is trained, so also how it must run); either way with
        the missing-height fill value this run's height noise trains the student to read."""
        if self.cfg.deploy is not None:
            deploy = self.cfg.deploy
        else:
            from anymal_ros.sim.env import QuadrupedVecEnv

            deploy = QuadrupedVecEnv(self.sim, 1).deploy_config()
        return dataclasses.replace(deploy, missing_height_fill=self.cfg.noise.missing_fill)

    # -- one iteration -------------------------------------------------------------------

    def train_iteration(self) -> dict[str, float]:
        t0 = time.perf_counter()
        done = self.source.run_iteration(self.distiller, self.iteration)
        t2 = time.perf_counter()
        self.iteration += 1
        self.samples += done.samples
        self.wall_time += t2 - t0
        stats = done.stats
        if self._terrain is not None:
            t = self._terrain
            stats.update(terrain_level_stats(t.terrain_levels(), t.terrain_types()))
        stats.update(
            iteration=self.iteration,
            env_steps=self.samples,
            wall_time=self.wall_time,
            steps_per_second=done.samples / max(t2 - t0, 1e-9),
            collect_time=done.collect_time,
            learn_time=t2 - t0 - done.collect_time,
            episodes=done.episodes,
            mean_return=done.mean_return,
            mean_length=done.mean_length,
            learning_rate=self.distiller.optimizer.param_groups[0]["lr"],
        )
        return stats

    def learn(
        self,
        iterations: int | None = None,
        on_iteration: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Train up to ``iterations`` more iterations (default: until ``runner.iterations``).

        ``on_iteration(stats)`` runs after each logged and checkpointed iteration;
        :meth:`request_stop` ends the loop after the current iteration."""
        reason = self._loop(iterations, on_iteration)
        return {
            "iterations": self.iteration,
            "samples": self.samples,
            "wall_time": self.wall_time,
            "stopped_by": reason,
            "run_dir": str(self.run_dir),
            "checkpoint": str(self.run_dir / "checkpoints" / "latest.pt"),
        }

    def _progress_bar(self, iterations: int) -> Any:
        from tqdm import tqdm

        return tqdm(
            total=iterations, unit="it",
            disable=not (self.cfg.runner.progress and self.dist.is_main),
            dynamic_ncols=True, desc="distill",
        )  # fmt: skip

    def _show_progress(self, bar: Any, stats: dict[str, Any]) -> None:
        bar.update(1)
        bar.set_postfix(
            loss=f"{stats['loss']:.4f}", sps=f"{stats['steps_per_second']:.0f}", refresh=False
        )

    # -- checkpoints -----------------------------------------------------------------------

    def _default_run_dir(self) -> Path:
        return self._stamped_run_dir("distill")

    def _rank_state(self) -> dict[str, Any]:
        return {
            "rng": self._checkpoint_rng(),
            "distiller": self.distiller.state_dict(),
            "source": self.source.state_dict(),
        }

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint (rank 0; the other ranks hand it their state and return)."""
        own, others = self._gather_rank_states()
        if not self.dist.is_main:
            return Path(path)
        return save_checkpoint(
            path,
            models={"student": self.student},
            optimizers=self.distiller.optimizers(),
            config={
                "student": to_dict(self.student_cfg),
                "deploy": to_dict(self.deploy),
                "sim": to_dict(self.sim),
                "teacher": to_dict(self.teacher.cfg),
                "distill": to_dict(self.cfg),
            },
            counters={
                "iteration": self.iteration,
                "samples": self.samples,
                "wall_time": self.wall_time,
            },
            rng=own["rng"],
            extra={
                "kind": "distill",
                "teacher_checkpoint": self.teacher_checkpoint,
                "distiller": own["distiller"],
                "source": own["source"],
                "offline": isinstance(self.source, EpisodeStoreSource),
                **others,
            },
        )

    def _restore(self, ckpt: Mapping[str, Any], path: str | Path) -> None:
        if ckpt.get("extra", {}).get("kind") != "distill":
            raise CheckpointError(f"{path}: not a distillation checkpoint")
        saved = ckpt["config"].get("student")
        if saved != to_dict(self.student_cfg):
            raise CheckpointError(
                f"{path}: student config differs from this run's: {saved} vs "
                f"{to_dict(self.student_cfg)}"
            )
        load_model_state(self.student, ckpt, "student")
        self.distiller.optimizer.load_state_dict(ckpt["optimizers"]["student"])
        # Adam's saved state carries the old learning rate; the config of this run decides
        # (continuing with a lower rate is how a distillation is fine-tuned).
        for group in self.distiller.optimizer.param_groups:
            group["lr"] = self.cfg.loss.learning_rate
        own = self._own_rank_state(ckpt)
        self.distiller.load_state_dict(own["distiller"])
        self.source.load_state_dict(own.get("source", {}))
        c = ckpt["counters"]
        self.iteration = int(c["iteration"])
        self.samples = int(c["samples"])
        self.wall_time = float(c["wall_time"])
        restore_rng_state(own["rng"])


@dataclass(frozen=True)
class TeacherCheckpoint:
    """The teacher a student learns from, as its checkpoint (``anymal-ros train``) gives it."""

    path: str
    teacher: Teacher
    sim: dict[str, Any]  # the simulator settings it trained with (a SimConfig mapping)

    @classmethod
    def load(cls, path: str | Path) -> TeacherCheckpoint:
        ckpt = load_checkpoint(path)
        return cls(str(path), teacher_from_checkpoint(ckpt, path), _teacher_sim(ckpt))


def distill_runner(
    cfg: DistillConfig,
    teacher_checkpoint: str | Path,
    run_dir: str | Path | None = None,
    resume: str | Path | None = None,
    store: str | Path | None = None,
) -> DistillRunner:
    """A :class:`DistillRunner` with what it learns from built: the teacher of
    ``teacher_checkpoint``, and this process's share of the robots in the teacher's simulator
    with ``env.sim`` merged in (``anymal_ros.rl.rank``), or, with ``store``, the recorded
    episodes instead."""
    from anymal_ros.config.sim import SimConfig

    rank = join_run(cfg.runner)
    teacher = TeacherCheckpoint.load(teacher_checkpoint)
    sim = from_dict(SimConfig, deep_merge(teacher.sim, cfg.env.sim), "sim")
    if cfg.dagger.governor is not None and sim.commands.governor is not None:
        raise ValueError(
            "dagger.governor caps the command on the student's belief, and the simulator's "
            "commands.governor (the teacher's, unless env.sim sets it) would cap it again on "
            "the true heights: set env.sim.commands.governor=null"
        )
    env = dagger_env(sim, cfg.env, rank) if store is None else None
    try:
        return DistillRunner(cfg, rank, teacher, sim, env, run_dir, resume, store)
    except BaseException:
        if env is not None:
            env.close()
        raise


def _teacher_sim(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    config = ckpt.get("config", {}) or {}
    if isinstance(config.get("sim"), Mapping):
        return dict(config["sim"])
    env = config.get("env")
    if isinstance(env, Mapping) and isinstance(env.get("sim"), Mapping):
        return dict(env["sim"])
    return {}


def load_distill_config(path: str | Path | None, overrides: list[str]) -> DistillConfig:
    from anymal_ros.config import load_config

    return load_config(DistillConfig, path, overrides)
