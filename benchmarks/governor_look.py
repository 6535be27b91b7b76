"""A quick look at a speed governor's settings: a student on every field of the scorecard,
governed by the package's speed governor (anymal_ros/obs/governor.py) with the settings given
here, and how often it capped.

The student file is copied with these settings (as `anymal-ros export STUDENT --out COPY
--speed-governor ...` would) and run as evaluation runs a governed file: at every control step
each robot's planar command is capped to ``--slow`` m/s for ``--hold`` s after the spread of
the heights its belief reconstructs exceeded ``--threshold`` m. The figures are the
scorecard's (falls, tracking error against the operator's command), with fewer robots and one
seed by default, plus the share of robot-steps capped; `anymal-ros scorecard` on a governed
file gives the whole card.

    .venv/bin/python benchmarks/governor_look.py \\
        policies/training/student_speed_limit_206.7M/student.onnx \\
        --out benchmarks/results/governor_look.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anymal_ros.commands._policy_sim import eval_policy  # noqa: E402
from anymal_ros.config import load_config  # noqa: E402
from anymal_ros.config.scorecard import ScorecardConfig  # noqa: E402
from anymal_ros.config.sim import SpeedGovernorConfig  # noqa: E402
from anymal_ros.deploy.export import set_speed_governor  # noqa: E402
from anymal_ros.eval.evaluate import run_field  # noqa: E402
from anymal_ros.eval.scorecard import field_sim  # noqa: E402

REPORTED = ("falls", "falls_per_10min", "tracking_error", "distance")


def measure(job: tuple) -> dict:
    sim, row_name, terrain, mode, seed, robots, policy = job
    governed = policy.make(robots)
    figures = run_field(sim, terrain, governed, mode, seed, robots)
    governor = governed.governor
    return {"row": row_name, "noise": mode, "seed": seed, "robots": robots,
            **{k: figures[k] for k in REPORTED},
            "capped_share": governor.capped_steps / max(governor.steps, 1)}  # fmt: skip


def measure_all(policy, spec: ScorecardConfig, args: argparse.Namespace) -> list[dict]:
    jobs = [(field_sim(policy.sim, spec, row), row.name, row.terrain, mode, seed, args.robots,
             policy)
            for row in spec.rows
            for mode in row.noise for seed in args.seeds]  # fmt: skip
    start, cells = time.monotonic(), []
    # fork: the jobs' policy factory reaches the workers as it is
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        for i, cell in enumerate(pool.imap(measure, jobs), 1):
            cells.append(cell)
            elapsed = time.monotonic() - start
            print(f"[{i}/{len(jobs)} {elapsed:.0f} s, ETA {elapsed / i * (len(jobs) - i):.0f} s] "
                  f"{cell['row']:18s} {cell['noise']:5s} seed {cell['seed']}: "
                  f"{cell['falls']} falls, tracking {cell['tracking_error']:.3f} m/s, "
                  f"capped {100 * cell['capped_share']:.0f} % of steps", flush=True)  # fmt: skip
    return cells


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("policy", help="a student's ONNX file with its belief decoder")
    parser.add_argument("--spec", default="config/scorecard_edition2.yaml")
    parser.add_argument("--robots", type=int, default=90, help="robots per field and seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[201])
    parser.add_argument("--threshold", type=float, default=0.12, help="m of belief spread")
    parser.add_argument("--slow", type=float, default=0.4, help="m/s: the capped speed")
    parser.add_argument("--hold", type=float, default=1.0, help="s the cap holds")
    parser.add_argument("--percentile", type=float, default=10.0,
                        help="the spread: the (100 - p)th minus the pth percentile")  # fmt: skip
    parser.add_argument("--stance-threshold", type=float, default=None,
                        help="m: the stance cue's threshold (default: off)")  # fmt: skip
    parser.add_argument("--stance-window", type=float, default=0.5,
                        help="s the stance cue's readings are averaged over")  # fmt: skip
    parser.add_argument("--rows", nargs="+", default=None, help="only these rows of the spec")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/governor_look.json")
    args = parser.parse_args(argv)
    spec = load_config(ScorecardConfig, args.spec)
    try:
        spec = spec.only(args.rows)
    except ValueError as err:
        raise SystemExit(f"--rows: {err}") from err
    settings = SpeedGovernorConfig(
        args.threshold, args.slow, args.hold, args.percentile, args.stance_threshold,
        args.stance_window,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        governed = set_speed_governor(args.policy, Path(tmp) / "governed.onnx", settings)
        cells = measure_all(eval_policy(governed, None, []), spec, args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"policy": args.policy, "spec": args.spec, "robots": args.robots,
              "seeds": args.seeds, "threshold_m": args.threshold, "slow_m_s": args.slow,
              "hold_s": args.hold, "percentile": args.percentile,
              "stance_threshold_m": args.stance_threshold, "stance_window_s": args.stance_window,
              "cells": cells}  # fmt: skip
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
