"""Field evaluations (:func:`~anymal_ros.eval.evaluate.run_field`) one after another, or
several at once in spawned processes: what ``scorecard --jobs`` and ``step-sweep --jobs`` run.

A field's figures depend on its settings, policy and seed alone, so they are the same either
way. Each process runs one field at a time with one torch thread (two processes of two
threads on two cores made a tenth of the speed, policies/MODEL_CARD.md); the progress bar
follows a robot-step count the processes share.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from anymal_ros.config.sim import SimConfig
from anymal_ros.eval.evaluate import run_field
from anymal_ros.eval.policies import BatchPolicy


@dataclass(frozen=True)
class FieldJob:
    """One field to evaluate: ``robots`` robots of the policy ``make`` builds (picklable for
    several processes, e.g. a ``functools.partial``), one episode each."""

    make: Callable[[int], BatchPolicy]
    sim: SimConfig
    terrain: str
    noise: str
    seed: int
    robots: int
    episode_length_s: float | None = None  # None: the simulator's

    @property
    def full_steps(self) -> int:
        """Robot-steps of the field when no robot falls."""
        length = self.episode_length_s or self.sim.termination.episode_length_s
        return self.robots * int(round(length / self.sim.control_dt))


def run_fields(
    fields: Sequence[FieldJob],
    jobs: int = 1,
    bar: Any = None,
    on_done: Callable[[int, dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Every field's :func:`run_field` figures, in the order of ``fields``; ``jobs`` fields
    at a time. ``bar``: a tqdm bar over the fields' :attr:`FieldJob.full_steps` (a field whose
    robots all fell early counts in full), its postfix the fields finished ("fields 3/21");
    ``on_done(i, figures)`` as each field finishes (in any order when ``jobs`` > 1)."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    out: list[dict[str, Any] | None] = [None] * len(fields)
    finished = 0

    def done(i: int, figures: dict[str, Any]) -> None:
        nonlocal finished
        out[i] = figures
        finished += 1
        if bar is not None:
            bar.set_postfix_str(f"fields {finished}/{len(fields)}", refresh=False)
        if on_done is not None:
            on_done(i, figures)

    if jobs == 1 or len(fields) <= 1:
        for i, job in enumerate(fields):
            start = 0 if bar is None else bar.n
            tick = None if bar is None else (lambda n=job.robots: bar.update(n))
            done(i, _figures(job, tick))
            if bar is not None:
                bar.update(start + job.full_steps - bar.n)
    else:
        _in_processes(fields, jobs, bar, done)
    return out  # type: ignore[return-value]


def _figures(job: FieldJob, on_step: Callable[[], None] | None) -> dict[str, Any]:
    figures = run_field(job.sim, job.terrain, job.make(job.robots), job.noise, job.seed,
                        job.robots, job.episode_length_s, on_step)  # fmt: skip
    figures.pop("_belief_snapshot", None)  # a picture's data, not a figure
    return figures


_steps_done = None  # a worker process's handle on the shared robot-step count


def _start_worker(counter) -> None:
    global _steps_done
    import torch

    _steps_done = counter
    torch.set_num_threads(1)


def _worker(job: FieldJob) -> tuple[dict[str, Any], int]:
    """A field's figures and the robot-steps it simulated (also added to the shared count
    as it goes)."""
    steps = 0

    def tick() -> None:
        nonlocal steps
        steps += job.robots
        with _steps_done.get_lock():
            _steps_done.value += job.robots

    return _figures(job, tick), steps


def _in_processes(
    fields: Sequence[FieldJob], jobs: int, bar: Any, done: Callable[[int, dict], None]
) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")  # no forked copies of torch's threads
    counter = context.Value("q", 0)
    unneeded = 0  # robot-steps the finished fields did not take (their robots fell)
    with ProcessPoolExecutor(min(jobs, len(fields)), mp_context=context,
                             initializer=_start_worker, initargs=(counter,)) as pool:  # fmt: skip
        pending = {pool.submit(_worker, job): i for i, job in enumerate(fields)}
        try:
            while pending:
                finished, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in finished:
                    i = pending.pop(future)
                    figures, steps = future.result()  # a field's error ends the run here
                    unneeded += fields[i].full_steps - steps
                    done(i, figures)
                if bar is not None:
                    bar.update(min(counter.value + unneeded, bar.total) - bar.n)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # not the fields still queued
            raise
