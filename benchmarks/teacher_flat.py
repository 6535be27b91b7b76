"""Quadruped teacher on flat terrain: learning curve (velocity-tracking reward against env steps
and wall-clock) and the share of time spent simulating vs learning, for a short budget.

    OMP_NUM_THREADS=1 python benchmarks/teacher_flat.py --budget-s 600 \
        --out benchmarks/results/teacher_flat.json [key=value overrides ...]

Trains with ``config/teacher_ppo.yaml`` (overrides as for ``anymal-ros train``; flat terrain
is selected with ``--flat-override``, by default ``env.sim.terrain.kind=flat``) until the
wall-clock budget is spent. Per iteration it records env steps, wall-clock, the mean episode
return, the mean per-step reward and every per-term reward the simulator reports in
``info["reward_terms"]`` (the velocity-tracking terms are the learning signal to watch); the
summary splits the time into simulation (``env.step``), the rest of the rollout (policy
inference, storage) and the update.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget-s", type=float, default=300.0)
    p.add_argument("--config", default=str(ROOT / "config" / "teacher_ppo.yaml"))
    p.add_argument("--flat-override", default="env.sim.terrain.kind=flat")
    p.add_argument("--run-dir", default=str(ROOT / "runs" / "bench_teacher_flat"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "teacher_flat.json"))
    p.add_argument("overrides", nargs="*", metavar="key=value")
    a = p.parse_args()

    import torch

    from anymal_ros.config import load_config
    from anymal_ros.config.rl import TrainConfig
    from anymal_ros.rl.runner import train_runner

    overrides = [
        *([a.flat_override] if a.flat_override else []),
        "runner.progress=false",
        "runner.checkpoint_interval=0",
        *a.overrides,
    ]
    cfg = load_config(TrainConfig, a.config, overrides)
    torch.set_num_threads(cfg.runner.torch_threads)
    runner = train_runner(cfg, run_dir=a.run_dir)
    curve = []
    t0 = time.perf_counter()
    totals = {"sim": 0.0, "collect": 0.0, "learn": 0.0}
    while time.perf_counter() - t0 < a.budget_s:
        stats = runner.train_iteration()
        totals["sim"] += stats["sim_time"]
        totals["collect"] += stats["collect_time"]
        totals["learn"] += stats["learn_time"]
        row = {
            k: v
            for k, v in stats.items()
            if k in ("iteration", "env_steps", "wall_time", "mean_return", "mean_step_reward")
            or k.startswith("reward/")
        }
        curve.append(
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        )
        track = stats.get("reward/lin_vel_tracking", math.nan)
        print(
            f"it {runner.iteration} steps {runner.env_steps} wall {stats['wall_time']:.0f}s "
            f"return {stats['mean_return']:.2f} lin_vel_tracking/step {track:.4f}",
            flush=True,
        )
    runner.save(Path(a.run_dir) / "checkpoints" / "latest.pt")
    total = totals["collect"] + totals["learn"]
    result = {
        "benchmark": "teacher PPO on flat terrain",
        "budget_s": a.budget_s,
        "num_envs": cfg.env.num_envs,
        "steps_per_iteration": cfg.ppo.num_steps * cfg.env.num_envs,
        "iterations": runner.iteration,
        "env_steps": runner.env_steps,
        "env_steps_per_second": runner.env_steps / max(total, 1e-9),
        "time_fraction": {
            "simulation": totals["sim"] / total,
            "inference_and_storage": (totals["collect"] - totals["sim"]) / total,
            "learning": totals["learn"] / total,
        },
        "curve": curve,
    }
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "curve"}, indent=2))


if __name__ == "__main__":
    main()
