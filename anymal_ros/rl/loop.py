"""What the teacher trainer (``rl.runner``) and the student trainer (``rl.distill_runner``)
share around their own iteration: a private random stream, the stop request, the terrain
levels their robots have reached (``terrain_level_stats``), and the loop that logs, shows
progress, checkpoints every ``runner.checkpoint_interval`` iterations, stops on SIGINT/SIGTERM
and always leaves ``checkpoints/latest.pt`` behind (during a run it names the newest periodic
checkpoint).

With several ranks (``anymal_ros.rl.distributed``) every rank runs the loop in step: stops
are agreed, only rank 0 logs, plots and writes checkpoints, and a checkpoint carries every
rank's own state (``_rank_state``). When a rank fails, the others fail at their next
collective; nobody writes ``latest.pt`` then, so it still names the last periodic checkpoint.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anymal_ros.config.sim import TERRAIN_TYPES
from anymal_ros.files import atomic_link
from anymal_ros.models.checkpoint import CheckpointError, capture_rng_state, restore_rng_state
from anymal_ros.rl.distributed import (
    RANK_SEED_STRIDE,
    SINGLE,
    Distributed,
    report_rank_failure,
)
from anymal_ros.rl.logger import TrainingLogger, plot_run
from anymal_ros.rl.signals import StopRequest


def terrain_level_columns(proportions: Mapping[str, float]) -> tuple[str, ...]:
    """The CSV columns of :func:`terrain_level_stats` for a terrain with these proportions."""
    kinds = [k for k in TERRAIN_TYPES if proportions.get(k, 0.0) > 0.0]
    return ("terrain_level",) + tuple(f"terrain_level/{k}" for k in kinds)


def terrain_level_stats(levels: np.ndarray, kinds: np.ndarray) -> dict[str, float]:
    """The mean terrain level of all robots (``terrain_level``) and of the robots on each
    terrain type (``terrain_level/<type>``; types with no robot are left out)."""
    stats = {"terrain_level": float(np.mean(levels))}
    for kind in np.unique(kinds):
        stats[f"terrain_level/{kind}"] = float(np.mean(levels[kinds == kind]))
    return stats


class TrainingLoop:
    """Base of the trainers. A subclass sets ``cfg`` (whose ``runner`` section is a
    :class:`anymal_ros.config.rl.LoopConfig`), ``run_dir`` and ``iteration``, and provides
    :meth:`train_iteration`, :meth:`save`, :meth:`_rank_state` and the progress-bar hooks;
    ``dist`` and ``device`` come from its :class:`anymal_ros.rl.rank.Rank`."""

    STAT_COLUMNS: tuple[str, ...] = ()
    dist: Distributed = SINGLE
    device: torch.device = torch.device("cpu")
    cfg: Any
    run_dir: Path
    iteration: int
    _rng: dict[str, Any]
    _training = False
    _stop_request: str | None = None

    # -- what a trainer provides ---------------------------------------------------------

    def train_iteration(self) -> dict[str, float]:
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        raise NotImplementedError

    def _rank_state(self) -> dict[str, Any]:
        """This rank's own state for a checkpoint (at least ``rng``; see
        :meth:`_gather_rank_states`)."""
        return {"rng": self._checkpoint_rng()}

    def _progress_bar(self, iterations: int) -> Any:
        """A tqdm bar for ``iterations`` more iterations."""
        raise NotImplementedError

    def _show_progress(self, bar: Any, stats: dict[str, Any]) -> None:
        raise NotImplementedError

    def _target_reached(self) -> bool:
        """Whether the run reached its goal early (checked before and after each iteration)."""
        return False

    # -- shared ----------------------------------------------------------------------------

    def request_stop(self, reason: str = "stop requested") -> None:
        """Ask :meth:`learn` to stop after the current iteration (it then saves latest.pt);
        safe to call from another thread."""
        self._stop_request = reason

    @contextmanager
    def _own_random_stream(self, seed: int) -> Iterator[None]:
        """Seed the global generators for what the block builds, then keep their state as
        this run's stream and give the caller back its own. Seeding before anything random
        is built makes a run a function of the seed; swapping the stream in only while it
        trains (see :meth:`_loop`) keeps two runners in one process from drawing from each
        other's streams."""
        outer_rng = capture_rng_state()
        torch.manual_seed(seed)
        np.random.seed(seed)  # noqa: NPY002 (libraries may use the global generator)
        random.seed(seed)
        yield
        self._rng = capture_rng_state()
        restore_rng_state(outer_rng)

    def _checkpoint_rng(self) -> dict[str, Any]:
        """The run's random state: the live generators while it trains, else its own copy."""
        return capture_rng_state() if self._training else self._rng

    def _gather_rank_states(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Every rank's :meth:`_rank_state`, collected on rank 0 for a checkpoint: ``(own,
        others)``. ``own`` is rank 0's state, kept where a single-process checkpoint keeps
        it; ``others`` is ``{"world_size": W, "other_ranks": [rank 1's, ...]}``, or empty for
        one process (whose checkpoints look as they always did). Other ranks get ``({}, {})``.
        """
        states = self.dist.gather_objects(self._rank_state())
        if states is None:
            return {}, {}
        if not self.dist.active:
            return states[0], {}
        return states[0], {"world_size": self.dist.world_size, "other_ranks": states[1:]}

    def _own_rank_state(self, ckpt: dict[str, Any]) -> dict[str, Any]:
        """This rank's part of a checkpoint (``rng`` included), refusing a checkpoint written
        by another number of ranks (their environments, RNG streams and PPG buffers would not
        line up)."""
        extra = ckpt["extra"]
        saved = int(extra.get("world_size", 1))
        if saved != self.dist.world_size:
            raise CheckpointError(
                f"the checkpoint was written by a run of {saved} rank(s) and this run has "
                f"{self.dist.world_size}: resume it with the same number of ranks "
                f"(torchrun --nnodes x --nproc-per-node = {saved}), or continue it on this "
                "many with `train --reshard` (PPO; not bit-exact)"
            )
        if self.dist.rank == 0:
            return {**extra, "rng": ckpt["rng"]}
        return dict(extra["other_ranks"][self.dist.rank - 1])

    def distributed_summary(self) -> str:
        """How the run is spread over the ranks (printed by rank 0 at the start)."""
        d, env = self.dist, self.cfg.env
        return (
            f"data-parallel run: {d.world_size} ranks ({d.backend}), learner on "
            f"{self.device}; env.num_envs {env.num_envs} in total = "
            f"{env.num_envs // d.world_size} per rank; {d.worker_share(env.num_workers)} "
            f"simulator worker process(es) per rank; rank r seeds with runner.seed + r * "
            f"{RANK_SEED_STRIDE}; rank 0 logs and checkpoints"
        )

    def _stamped_run_dir(self, name: str) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return Path(self.cfg.runner.log_dir) / f"{name}_{stamp}"

    def _loop(
        self,
        iterations: int | None,
        on_iteration: Callable[[dict[str, Any]], None] | None,
    ) -> str:
        """Train up to ``iterations`` more iterations (default: until ``runner.iterations``);
        returns why it stopped: ``iterations``, ``target``, the :meth:`request_stop` reason or
        the signal's name."""
        rc = self.cfg.runner
        d = self.dist
        end = rc.iterations if iterations is None else self.iteration + iterations
        logger = (
            TrainingLogger(
                self.run_dir,
                self.STAT_COLUMNS,
                rc.tensorboard,
                resume_from_iteration=self.iteration,
            )
            if d.is_main
            else None
        )
        bar = self._progress_bar(max(0, end - self.iteration))
        reason = "iterations"
        outer_rng = capture_rng_state()
        restore_rng_state(self._rng)
        self._training = True
        failed = False
        try:
            with StopRequest() as stop:
                while self.iteration < end:
                    # Rank 0 judges the target (its returns are the logged ones); a stop
                    # asked of any rank stops all.
                    target, requested = d.any_rank(
                        d.is_main and self._target_reached(), self._stop_request is not None
                    )
                    if target:
                        reason = "target"
                        break
                    if requested:
                        reason = self._stop_request or "stop requested"
                        break
                    stats = self.train_iteration()
                    if logger is not None:
                        logger.log(stats)
                    self._show_progress(bar, stats)
                    if rc.checkpoint_interval and self.iteration % rc.checkpoint_interval == 0:
                        ckpt = self.save(
                            self.run_dir / "checkpoints" / f"iter_{self.iteration:06d}.pt"
                        )
                        # latest.pt always names the newest state, also while a run goes on.
                        if d.is_main:
                            atomic_link(ckpt, self.run_dir / "checkpoints" / "latest.pt")
                    if on_iteration is not None:
                        on_iteration(stats)
                    (signalled,) = d.any_rank(stop.signal is not None)
                    if signalled:
                        reason = stop.name or "signal"
                        break
            if reason == "iterations" and d.any_rank(d.is_main and self._target_reached())[0]:
                reason = "target"
        except BaseException as err:
            failed = True
            report_rank_failure(d, err, str(self.run_dir / "checkpoints" / "latest.pt"))
            raise
        finally:
            bar.close()
            # Whatever ended the loop (done, signal, exception), the latest state is kept --
            # except after a failure with several ranks: saving needs every rank, and one of
            # them may be gone; latest.pt then names the last periodic checkpoint.
            if not (failed and d.active):
                self.save(self.run_dir / "checkpoints" / "latest.pt")
            self._rng = capture_rng_state()
            self._training = False
            restore_rng_state(outer_rng)
            if logger is not None:
                logger.close()
                try:
                    plot_run(self.run_dir)
                except (ValueError, FileNotFoundError):
                    pass
        return reason
