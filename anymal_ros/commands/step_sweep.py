"""`anymal-ros step-sweep POLICY [POLICY ...]`: falls per 10 min against step height.

Evaluates each policy (ONNX file or checkpoint) on stairs up and stairs down at each of
``--heights`` (exact risers on a ``--riser-grid`` height grid, 2.5 cm by default: near
vertical; see anymal_ros.eval.step_sweep) for each of ``--seeds``, every
policy in its own simulator (its checkpoint's settings, or its ONNX file's robot and action
settings) with the same ``--set`` overrides. Writes ``step_sweep.json`` (a row per policy x
direction x height x seed with falls, tracking error and the gait metrics, and the rows pooled
over seeds), ``step_sweep.md`` (the pooled table) and ``step_sweep.png`` (falls per 10 min
against step height, up and down, a line per policy, the 1-per-10-min target dashed) to
``--out``. The JSON is rewritten after every row, so a long run that stops keeps its rows.
``--merge`` adds the rows of earlier sweeps to the table and figure (with no POLICY: only
redraws them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from anymal_ros.commands._args import add_overrides_option


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from anymal_ros.eval.step_sweep import DEFAULT_HEIGHTS, RISER_GRID

    parser.add_argument("policies", nargs="*", metavar="POLICY",
                        help="checkpoints (.pt) or ONNX files (.onnx)")  # fmt: skip
    parser.add_argument("--labels", nargs="+", default=None,
                        help="one name per POLICY for the table and figure")  # fmt: skip
    parser.add_argument("--heights", nargs="+", type=float, default=list(DEFAULT_HEIGHTS),
                        help="step heights in m")  # fmt: skip
    parser.add_argument("--directions", nargs="+", default=["up", "down"], choices=["up", "down"])
    parser.add_argument("--riser-grid", type=float, default=RISER_GRID, metavar="M",
                        help="height grid of the stairs fields in m, for every policy alike "
                             "(a riser is a ramp one cell wide); 0: each policy's own")  # fmt: skip
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--num-envs", type=int, default=60, help="robots per row")
    parser.add_argument("--episode-length", type=float, default=None, help="seconds")
    parser.add_argument(
        "--noise", default="none", help="height-noise mode: none nominal offset noisy"
    )
    parser.add_argument("--out", default="step_sweep", help="directory for the JSON, table, PNG")
    parser.add_argument("--merge", nargs="+", default=[], metavar="JSON",
                        help="rows of earlier step_sweep.json files to add")  # fmt: skip
    parser.add_argument("--title", default=None, help="figure title")
    parser.add_argument("--jobs", type=int, default=1,
                        help="rows measured at once, a process each (the machine's cores "
                             "when nothing else runs)")  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_overrides_option(
        parser, "SimConfig overrides for every policy, e.g. terrain.step_width=0.25"
    )


def run(args: argparse.Namespace) -> int:
    from anymal_ros.commands._policy_sim import eval_policy
    from anymal_ros.eval.step_sweep import (
        markdown_table,
        plot_sweep,
        read_rows,
        riser_grid,
        sweep,
        write_sweep,
    )

    if not args.policies and not args.merge:
        raise SystemExit("step-sweep: give at least one POLICY, or --merge JSON files to redraw")
    if args.labels is not None and len(args.labels) != len(args.policies):
        raise SystemExit(f"--labels: {len(args.labels)} labels for {len(args.policies)} policies")
    if args.num_envs < 1:
        raise SystemExit(f"--num-envs must be >= 1, got {args.num_envs}")
    if args.jobs < 1:
        raise SystemExit(f"--jobs must be >= 1, got {args.jobs}")
    if args.riser_grid < 0:
        raise SystemExit(f"--riser-grid must be >= 0 (0: each policy's own), got {args.riser_grid}")
    grid = args.riser_grid or None
    try:
        earlier = [row for path in args.merge for row in read_rows(path)]
    except (OSError, ValueError) as err:
        raise SystemExit(f"--merge: {err}") from err

    policies = [
        eval_policy(path, args.labels[i] if args.labels else None, args.overrides)
        for i, path in enumerate(args.policies)
    ]
    labels = [p.label for p in policies]
    if len(set(labels)) != len(labels):
        raise SystemExit(f"two policies share a label ({labels}): give --labels")
    keys = [(r["policy"], r["grid"], r["direction"], r["step_height"], r["seed"]) for r in earlier]
    keys += [(p.label, grid or riser_grid(p.sim), d, h, s) for p in policies
             for d in args.directions for h in args.heights for s in args.seeds]  # fmt: skip
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:  # pooling would count them twice
        raise SystemExit(f"rows repeat (policy, grid, direction, height, seed): {repeated[:3]}")
    out = Path(args.out)
    meta = {
        "policies": [{"label": p.label, "path": p.path, "robot": p.sim.robot.description}
                     for p in policies],
        "heights": args.heights, "directions": args.directions, "seeds": args.seeds,
        "num_envs": args.num_envs, "episode_length_s": args.episode_length, "noise": args.noise,
        "riser_grid": grid,
        "overrides": args.overrides, "merged": args.merge,
    }  # fmt: skip
    rows = list(earlier)
    if policies:
        so_far = list(earlier)  # written after every row, so a stopped run keeps them
        try:
            rows += sweep(
                policies, args.heights, args.seeds, args.num_envs, args.episode_length,
                args.noise, args.directions, grid, args.jobs, progress=not args.quiet,
                on_row=lambda row: (so_far.append(row), write_sweep(out, so_far, meta)),
            )  # fmt: skip
        except ValueError as err:
            raise SystemExit(str(err)) from err
    js, md = write_sweep(out, rows, meta)
    png = plot_sweep(rows, out / "step_sweep.png", args.title)
    print("falls per 10 min / tracking error [m/s], seeds pooled")
    print(markdown_table(rows))
    print(f"wrote {js}, {md} and {png}")
    return 0
