"""Falls against the height of rough ground, and how often a speed governor slowed the robot
there: whether a policy falls on rough ground because it is rough or because it walks fast.

A policy walks the scorecard's rough field (``config/scorecard_edition2.yaml``, its robots and
commands, clean heights) with the blocks' amplitude set to each of ``--amplitudes``. Per
amplitude, pooled over ``--seeds``: falls, falls per 10 min, the tracking error, falls per band
of commanded forward speed, and the share of robot-steps a speed governor capped the command.
The governor is the policy's own: a teacher trained under ``commands.governor`` is capped on
the true heights (as in its training and its scorecard), a governed student file on its belief.

    .venv/bin/python benchmarks/rough_amplitude.py \\
        policies/training/teacher_governed/teacher_governed_from_speed_limit_mean_211.0M.pt \\
        --out benchmarks/results/rough_amplitude_teacher.json \\
        --figure benchmarks/results/rough_amplitude_teacher.png
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anymal_ros.commands._policy_sim import eval_policy  # noqa: E402
from anymal_ros.config import load_config  # noqa: E402
from anymal_ros.config.scorecard import ScorecardConfig  # noqa: E402
from anymal_ros.eval.evaluate import EvalSettings, make_eval_env, pool_seeds, run_cell  # noqa: E402
from anymal_ros.eval.falls import VX_BANDS  # noqa: E402
from anymal_ros.eval.figures import pyplot, save_figure  # noqa: E402
from anymal_ros.eval.scorecard import field_sim  # noqa: E402

ROW = "rough 6 cm"  # the card's rough field; its amplitude is what varies here


def run_amplitude(policy, spec: ScorecardConfig, amplitude: float, seed: int, robots: int):
    """One cell: the card's rough field at ``amplitude`` m, clean heights: run_cell's metrics
    with what :func:`~anymal_ros.eval.evaluate.pool_seeds` pools them by, and the robot-steps
    its governor ``capped`` of those it ``counted``."""
    row = spec.only([ROW]).rows[0]
    sim = field_sim(policy.sim, spec, row)
    terrain = dataclasses.replace(sim.terrain, rough_amplitude=(amplitude, amplitude))
    sim = dataclasses.replace(sim, terrain=terrain)
    settings = EvalSettings(terrains=("rough",), noise_modes=("none",), level=0,
                            num_envs=robots, seed=seed)  # fmt: skip
    env = make_eval_env(sim, "rough", settings)
    batch = policy.make(robots)
    # The simulator's governor (a teacher's, on the true heights) or the file's (a student's).
    governor = env.governor if env.governor is not None else getattr(batch, "governor", None)
    counts = [0, 0]

    def count_caps() -> None:
        caps = governor.caps()
        counts[0] += int(np.isfinite(caps).sum())
        counts[1] += caps.size

    try:
        metrics = run_cell(env, batch, "none", seed, None if governor is None else count_caps)
        minutes = metrics["steps"] * env.control_dt / 60.0
    finally:
        env.close()
    return {**metrics, "amplitude": amplitude, "seed": seed, "robots": robots,
            "minutes": minutes, "capped": counts[0], "counted": counts[1]}  # fmt: skip


def pooled(cells: list[dict]) -> dict:
    """One amplitude's cells over the seeds (falls, rate and tracking as the scorecard pools
    them)."""
    over_seeds = pool_seeds(cells, ("amplitude",))[0]
    robots_by = np.sum([c["robots_by_vx"] for c in cells], axis=0)
    bands = [f["vx_band"] for c in cells for f in c["fall_log"]]
    falls_by = np.bincount(bands, minlength=len(VX_BANDS))
    counted = sum(c["counted"] for c in cells)
    return {
        **{
            k: over_seeds[k]
            for k in ("amplitude", "robots", "falls", "falls_per_10min", "tracking_error")
        },
        "falls_by_vx": {
            b: [int(f), int(r)] for b, f, r in zip(VX_BANDS, falls_by, robots_by, strict=True)
        },
        "capped_share": sum(c["capped"] for c in cells) / counted if counted else None,
    }


def figure(result: dict, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    rows = result["amplitudes"]
    amp_cm = [100 * r["amplitude"] for r in rows]
    ax.plot(amp_cm, [r["falls_per_10min"] for r in rows], "o-", color="C3", label="falls")
    ax.set_xlabel("rough ground: blocks within +- this [cm]")
    ax.set_ylabel("falls per 10 min", color="C3")
    ax.axhline(1.0, color="C3", lw=0.8, ls=":")  # the card's target
    ax.set_ylim(bottom=0)
    if all(r["capped_share"] is not None for r in rows):
        twin = ax.twinx()
        twin.plot(amp_cm, [100 * r["capped_share"] for r in rows], "s--", color="C0")
        twin.set_ylabel("robot-steps capped by the governor [%]", color="C0")
        twin.set_ylim(0, 100)
    ax.set_title(f"{Path(result['policy']).name}: {rows[0]['robots']} robots per height")
    fig.tight_layout()
    return save_figure(fig, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("policy", help="a checkpoint (.pt) or a student file (.onnx)")
    parser.add_argument("--amplitudes", type=float, nargs="+",
                        default=[0.02, 0.04, 0.06, 0.07, 0.08, 0.10], help="m")  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[201, 202])
    parser.add_argument("--robots", type=int, default=90, help="per seed")
    parser.add_argument("--spec", default="config/scorecard_edition2.yaml")
    parser.add_argument("--out", required=True, help="JSON")
    parser.add_argument("--figure", help="PNG")
    args = parser.parse_args()

    spec = load_config(ScorecardConfig, args.spec)
    policy = eval_policy(args.policy, None, [])
    rows, start, total = [], time.monotonic(), len(args.amplitudes) * len(args.seeds)
    for amplitude in args.amplitudes:
        cells = []
        for seed in args.seeds:
            cells.append(run_amplitude(policy, spec, amplitude, seed, args.robots))
            done, spent = len(rows) * len(args.seeds) + len(cells), time.monotonic() - start
            print(f"[{done}/{total}] {100 * amplitude:.0f} cm, seed {seed}: "
                  f"{cells[-1]['falls']} falls; {spent / 60:.1f} min, "
                  f"ETA {spent / done * (total - done) / 60:.1f} min", flush=True)  # fmt: skip
        rows.append(pooled(cells))
    result = {"policy": args.policy, "spec": args.spec, "row": ROW, "seeds": args.seeds,
              "robots_per_seed": args.robots, "amplitudes": rows}  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    for r in rows:
        capped = "-" if r["capped_share"] is None else f"{100 * r['capped_share']:.0f} %"
        print(f"{100 * r['amplitude']:4.0f} cm: {r['falls']:3d} falls "
              f"({r['falls_per_10min']:.2f} per 10 min), tracking {r['tracking_error']:.3f} m/s, "
              f"capped {capped}")  # fmt: skip
    if args.figure:
        print(f"wrote {out} and {figure(result, Path(args.figure))}")
    else:
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
