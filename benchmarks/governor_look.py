"""A quick look at a speed governor before one is built into the node: a student on the
scorecard's fields with its planar command capped wherever its belief shows steps.

At every control step each robot's command (the first three proprioceptive values: vx, vy,
yaw rate) is capped to ``--slow`` m/s of planar speed, its direction kept, if within the last
``--hold`` seconds the spread of the heights the student's belief decoder reconstructed (the
largest over the feet of the 90th minus the 10th percentile of a foot's 52 points,
benchmarks/height_spread.py) exceeded ``--threshold`` m. Its belief of noisy heights reads at
most 0.06 m on flat ground and 0.27-0.35 m on the stairs (benchmarks/results/height_spread.json).
The figures are the scorecard's (falls, tracking error against the command given, before the
cap), measured as in `anymal-ros scorecard` but with fewer robots and one seed by default.

    .venv/bin/python benchmarks/governor_look.py \\
        policies/training/student_speed_limit_206.7M/student.onnx \\
        --out benchmarks/results/governor_look.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from height_spread import spread  # noqa: E402

from anymal_ros.commands._policy_sim import eval_policy  # noqa: E402
from anymal_ros.config import load_config  # noqa: E402
from anymal_ros.config.scorecard import ScorecardConfig  # noqa: E402
from anymal_ros.eval.evaluate import run_field  # noqa: E402
from anymal_ros.eval.scorecard import field_sim  # noqa: E402

REPORTED = ("falls", "falls_per_10min", "tracking_error", "distance")


class GovernedStudent:
    """A batched student whose planar command is capped where its belief showed steps."""

    def __init__(self, policy, threshold: float, slow: float, hold_steps: int) -> None:
        if not policy.has_belief:
            raise SystemExit("the governor reads the student's belief: give a file that has it")
        self.policy = policy
        self.head, self.kind, self.num_envs = policy.head, policy.kind, policy.num_envs
        self.threshold, self.slow, self.hold_steps = threshold, slow, hold_steps
        self.since_steps = np.full(policy.num_envs, hold_steps)  # steps since steps were seen
        self.capped_steps = 0
        self.steps = 0

    def reset(self, env_ids: np.ndarray) -> None:
        self.policy.reset(env_ids)
        self.since_steps[env_ids] = self.hold_steps

    def act(self, obs) -> np.ndarray:
        proprio = np.array(obs["proprio"], copy=True)
        capped = self.since_steps < self.hold_steps
        planar = np.linalg.norm(proprio[:, :2], axis=1)
        scale = np.where(capped & (planar > self.slow), self.slow / np.maximum(planar, 1e-9), 1.0)
        proprio[:, :2] *= scale[:, None]
        self.capped_steps += int(capped.sum())
        self.steps += self.num_envs
        action = self.policy.act({**obs, "proprio": proprio})
        seen = spread(self.policy.belief()[0]) > self.threshold
        self.since_steps = np.where(seen, 0, self.since_steps + 1)
        return action


def measure(job: tuple) -> dict:
    sim, row_name, terrain, mode, seed, robots, policy, settings = job
    governed = GovernedStudent(policy.make(robots), *settings)
    figures = run_field(sim, terrain, governed, mode, seed, robots)
    return {"row": row_name, "noise": mode, "seed": seed, "robots": robots,
            **{k: figures[k] for k in REPORTED},
            "capped_share": governed.capped_steps / max(governed.steps, 1)}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("policy", help="a student ONNX file or checkpoint with its belief")
    parser.add_argument("--spec", default="config/scorecard_edition2.yaml")
    parser.add_argument("--robots", type=int, default=90, help="robots per field and seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[201])
    parser.add_argument("--threshold", type=float, default=0.12, help="m of belief spread")
    parser.add_argument("--slow", type=float, default=0.4, help="m/s: the capped speed")
    parser.add_argument("--hold", type=float, default=1.0, help="s the cap holds")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/governor_look.json")
    args = parser.parse_args(argv)
    spec = load_config(ScorecardConfig, args.spec)
    policy = eval_policy(args.policy, None, [])
    hold_steps = int(round(args.hold / policy.sim.control_dt))
    settings = (args.threshold, args.slow, hold_steps)
    jobs = [(field_sim(policy.sim, spec, row), row.name, row.terrain, mode, seed, args.robots,
             policy, settings)
            for row in spec.rows for mode in row.noise for seed in args.seeds]  # fmt: skip
    start, cells = time.monotonic(), []
    # fork: the jobs' policy factory and this module's classes reach the workers as they are
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        for i, cell in enumerate(pool.imap(measure, jobs), 1):
            cells.append(cell)
            elapsed = time.monotonic() - start
            print(f"[{i}/{len(jobs)} {elapsed:.0f} s, ETA {elapsed / i * (len(jobs) - i):.0f} s] "
                  f"{cell['row']:18s} {cell['noise']:5s} seed {cell['seed']}: "
                  f"{cell['falls']} falls, tracking {cell['tracking_error']:.3f} m/s, "
                  f"capped {100 * cell['capped_share']:.0f} % of steps", flush=True)  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"policy": args.policy, "spec": args.spec, "robots": args.robots,
              "seeds": args.seeds, "threshold_m": args.threshold, "slow_m_s": args.slow,
              "hold_s": args.hold, "cells": cells}  # fmt: skip
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
