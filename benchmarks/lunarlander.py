"""LunarLander-v3: env steps and wall-clock until the mean return of the last 100 episodes
reaches 200, for our PPO and PPG and for Stable-Baselines3 PPO with its published settings.

    OMP_NUM_THREADS=1 python benchmarks/lunarlander.py --algos ppo ppg sb3 --seeds 0 1 2 \
        --jobs 2 --out benchmarks/results/lunarlander.json

Every run is its own single-threaded process (``--jobs`` at most one per core). A run stops at
the target or at ``--max-steps``. The JSON holds every run and, per algorithm, the median over
seeds; ``vs_sb3`` divides our medians by SB3's. SB3 is a benchmark-only dependency
(``requirements-bench.txt``). Wall-clock numbers depend on how busy the machine is.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's anymal_ros, also in the spawned workers
CONFIGS = {
    "ppo": ROOT / "config" / "lunarlander_ppo.yaml",
    "ppg": ROOT / "config" / "lunarlander_ppg.yaml",
}
# rl-baselines3-zoo's published LunarLander PPO hyper-parameters.
SB3_PPO = dict(n_steps=1024, batch_size=64, n_epochs=4, gamma=0.999, gae_lambda=0.98, ent_coef=0.01)
SB3_ENVS = 16


def run_ours(algo: str, seed: int, max_steps: int, target: float, run_root: Path) -> dict:
    import torch

    torch.set_num_threads(1)
    from anymal_ros.config import load_config
    from anymal_ros.config.rl import TrainConfig
    from anymal_ros.rl.runner import train_runner

    overrides = [
        f"runner.seed={seed}",
        f"runner.max_env_steps={max_steps}",
        f"runner.stop_at_return={target}",
        "runner.return_window=100",
        "runner.iterations=100000",
        "runner.progress=false",
        "runner.tensorboard=false",
        "runner.checkpoint_interval=0",
    ]
    cfg = load_config(TrainConfig, CONFIGS[algo], overrides)
    t0 = time.perf_counter()
    runner = train_runner(cfg, run_dir=run_root / f"{algo}_seed{seed}")
    summary = runner.learn()
    wall = time.perf_counter() - t0
    solved = summary["stopped_by"] == "target"
    return {
        "algo": algo,
        "seed": seed,
        "solved": solved,
        "env_steps": summary["env_steps"],
        "wall_clock_s": wall,
        "final_mean_return": summary["mean_return"],
    }


def run_sb3(seed: int, max_steps: int, target: float) -> dict:
    import numpy as np
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)

    class StopAtTarget(BaseCallback):
        """Stops training once the last 100 episodes average ``target`` (checked every step)."""

        solved = False

        def _on_step(self) -> bool:
            buf = self.model.ep_info_buffer
            if len(buf) == buf.maxlen and np.mean([e["r"] for e in buf]) >= target:
                self.solved = True
                return False
            return True

    t0 = time.perf_counter()
    env = make_vec_env("LunarLander-v3", n_envs=SB3_ENVS, seed=seed)
    model = PPO("MlpPolicy", env, seed=seed, verbose=0, device="cpu", **SB3_PPO)
    cb = StopAtTarget()
    model.learn(total_timesteps=max_steps, callback=cb)
    wall = time.perf_counter() - t0
    buf = model.ep_info_buffer
    return {
        "algo": "sb3",
        "seed": seed,
        "solved": cb.solved,
        "env_steps": int(model.num_timesteps),
        "wall_clock_s": wall,
        "final_mean_return": float(np.mean([e["r"] for e in buf])) if buf else float("nan"),
    }


def _job(args: tuple) -> dict:
    algo, seed, max_steps, target, run_root = args
    os.environ["OMP_NUM_THREADS"] = "1"
    result = (
        run_sb3(seed, max_steps, target)
        if algo == "sb3"
        else run_ours(algo, seed, max_steps, target, Path(run_root))
    )
    print(json.dumps(result), flush=True)
    return result


def summarise(runs: list[dict]) -> dict:
    out: dict = {}
    for algo in sorted({r["algo"] for r in runs}):
        rs = [r for r in runs if r["algo"] == algo]
        out[algo] = {
            "seeds": len(rs),
            "solved": sum(r["solved"] for r in rs),
            # An unsolved run counts with its cap, which makes the median pessimistic.
            "median_env_steps": statistics.median(r["env_steps"] for r in rs),
            "median_wall_clock_s": statistics.median(r["wall_clock_s"] for r in rs),
        }
    if "sb3" in out:
        ref = out["sb3"]
        for algo, s in out.items():
            if algo != "sb3":
                s["vs_sb3"] = {
                    "env_steps": s["median_env_steps"] / ref["median_env_steps"],
                    "wall_clock": s["median_wall_clock_s"] / ref["median_wall_clock_s"],
                }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--algos", nargs="+", default=["ppo", "ppg", "sb3"], choices=["ppo", "ppg", "sb3"]
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--max-steps", type=int, default=1_500_000)
    p.add_argument("--target", type=float, default=200.0)
    p.add_argument("--jobs", type=int, default=1, help="parallel processes (<= cores)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "lunarlander.json"))
    p.add_argument("--run-root", default=str(ROOT / "runs" / "bench_lunarlander"))
    a = p.parse_args()
    jobs = [(algo, s, a.max_steps, a.target, a.run_root) for algo in a.algos for s in a.seeds]
    t0 = time.time()
    with mp.get_context("spawn").Pool(a.jobs, maxtasksperchild=1) as pool:
        runs = pool.map(_job, jobs, chunksize=1)
    result = {
        "benchmark": "LunarLander-v3 to mean return >= target over the last 100 episodes",
        "target": a.target,
        "max_steps": a.max_steps,
        "jobs": a.jobs,
        "cpu_count": os.cpu_count(),
        "sb3_hyperparameters": {**SB3_PPO, "n_envs": SB3_ENVS},
        "total_time_s": time.time() - t0,
        "runs": runs,
        "summary": summarise(runs),
    }
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result["summary"], indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
