"""What the teacher trainer (``rl.runner``) and the student trainer (``rl.distill_runner``)
share around their own iteration: a private random stream, the stop request, and the loop
that logs, shows progress, checkpoints every ``runner.checkpoint_interval`` iterations, stops
on SIGINT/SIGTERM and always leaves ``checkpoints/latest.pt`` behind (during a run it names the
newest periodic checkpoint)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anymal_ros.files import atomic_link
from anymal_ros.models.checkpoint import capture_rng_state, restore_rng_state
from anymal_ros.rl.logger import TrainingLogger, plot_run
from anymal_ros.rl.signals import StopRequest


class TrainingLoop:
    """Base of the trainers. A subclass sets ``cfg`` (whose ``runner`` section is a
    :class:`anymal_ros.config.rl.LoopConfig`), ``run_dir`` and ``iteration``, and provides
    :meth:`train_iteration`, :meth:`save` and the progress-bar hooks."""

    STAT_COLUMNS: tuple[str, ...] = ()
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
        end = rc.iterations if iterations is None else self.iteration + iterations
        logger = TrainingLogger(
            self.run_dir, self.STAT_COLUMNS, rc.tensorboard, resume_from_iteration=self.iteration
        )
        bar = self._progress_bar(max(0, end - self.iteration))
        reason = "iterations"
        outer_rng = capture_rng_state()
        restore_rng_state(self._rng)
        self._training = True
        try:
            with StopRequest() as stop:
                while self.iteration < end:
                    if self._target_reached():
                        reason = "target"
                        break
                    if self._stop_request is not None:
                        reason = self._stop_request
                        break
                    stats = self.train_iteration()
                    logger.log(stats)
                    self._show_progress(bar, stats)
                    if rc.checkpoint_interval and self.iteration % rc.checkpoint_interval == 0:
                        ckpt = self.save(
                            self.run_dir / "checkpoints" / f"iter_{self.iteration:06d}.pt"
                        )
                        # latest.pt always names the newest state, also while a run goes on.
                        atomic_link(ckpt, self.run_dir / "checkpoints" / "latest.pt")
                    if on_iteration is not None:
                        on_iteration(stats)
                    if stop.signal is not None:
                        reason = stop.name or "signal"
                        break
            if reason == "iterations" and self._target_reached():
                reason = "target"
        finally:
            bar.close()
            # Whatever ended the loop (done, signal, exception), the latest state is kept.
            self.save(self.run_dir / "checkpoints" / "latest.pt")
            self._rng = capture_rng_state()
            self._training = False
            restore_rng_state(outer_rng)
            logger.close()
            try:
                plot_run(self.run_dir)
            except (ValueError, FileNotFoundError):
                pass
        return reason
