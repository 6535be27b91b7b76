"""What a finer terrain grid costs the simulator: physics time and contacts per policy step.

    OMP_NUM_THREADS=1 python benchmarks/terrain_resolution_cost.py \
        --config config/teacher_anymal_c.yaml --resolutions 0.1 0.05 0.025 \
        --sharp-resolutions 0.05 0.025 --out benchmarks/results/terrain_resolution_cost.json

MuJoCo joins a height field's grid points with planes, so a stairs riser is a ramp one grid
cell wide (10 cm on the default grid); a finer grid makes risers steep, and makes a contact
for every grid prism a foot or shank touches. For each resolution this builds the training
config's simulator (one process, ``--num-envs`` robots on the full training terrain), walks it
with random actions and reports the CPU time per policy step (all of it, and MuJoCo's step
alone) with the mean number of contacts and constraint rows; each ``--sharp-resolutions``
entry keeps the grid at the first resolution and refines only the stairs and boxes columns
(``terrain.sharp_resolution``, their own height fields). CPU time of this thread, so a
busy machine inflates it less than wall-clock.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from anymal_ros.config import load_config  # noqa: E402
from anymal_ros.config.rl import TrainConfig  # noqa: E402
from anymal_ros.sim.env import QuadrupedVecEnv  # noqa: E402


def measure(
    config: str, resolution: float, sharp: float, num_envs: int, steps: int, warmup: int
) -> dict:
    grid = [f"env.sim.terrain.resolution={resolution}", f"env.sim.terrain.sharp_resolution={sharp}"]
    cfg = load_config(TrainConfig, config, grid)
    env = QuadrupedVecEnv(cfg.env.sim, num_envs, seed=0)
    try:
        env.reset()
        rng = np.random.default_rng(0)
        act = lambda: rng.normal(0.0, 0.5, (num_envs, env.action_dim)).astype(np.float32)  # noqa: E731
        for _ in range(warmup):
            env.step(act())
        data = env.data
        for timer in data.timer:
            timer.duration, timer.number = 0.0, 0
        contacts = rows = 0
        start = time.thread_time()
        for _ in range(steps):
            env.step(act())
            contacts += data.ncon
            rows += data.nefc
        cpu = time.thread_time() - start
        mj_step = data.timer[int(mujoco.mjtTimer.mjTIMER_STEP)].duration
    finally:
        env.close()
    return {
        "resolution_m": resolution,
        "sharp_resolution_m": sharp,
        "cpu_ms_per_step": 1e3 * cpu / steps,
        "mj_step_ms_per_step": 1e3 * mj_step / steps,
        "contacts_per_step": contacts / steps,
        "constraint_rows_per_step": rows / steps,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "config" / "teacher_anymal_c.yaml"))
    p.add_argument("--resolutions", type=float, nargs="+", default=[0.1, 0.05, 0.025])
    p.add_argument("--sharp-resolutions", type=float, nargs="*", default=[0.05, 0.025])
    p.add_argument("--num-envs", type=int, default=128)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" /
                                        "terrain_resolution_cost.json"))  # fmt: skip
    args = p.parse_args()
    rows = []
    grids = [(res, 0.0) for res in args.resolutions]
    grids += [(args.resolutions[0], sharp) for sharp in args.sharp_resolutions]
    for res, sharp in grids:
        rows.append(measure(args.config, res, sharp, args.num_envs, args.steps, args.warmup))
        r = rows[-1]
        base = rows[0]["cpu_ms_per_step"]
        label = f"grid {100 * res:4.1f} cm"
        label += f", stairs/boxes {100 * sharp:3.1f} cm" if sharp else ""
        print(
            f"{label}: {r['cpu_ms_per_step']:6.1f} ms per step "
            f"(x{r['cpu_ms_per_step'] / base:.2f}), mj_step {r['mj_step_ms_per_step']:6.1f} "
            f"ms, {r['contacts_per_step']:6.0f} contacts, "
            f"{r['constraint_rows_per_step']:6.0f} constraint rows",
            flush=True,
        )
    result = {"config": args.config, "num_envs": args.num_envs, "steps": args.steps, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
