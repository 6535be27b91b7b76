"""Training samples per second against the number of data-parallel ranks (torchrun).

    OMP_NUM_THREADS=1 python benchmarks/distributed_throughput.py --ranks 1 2 \
        --num-envs 64 --workers 2 --iterations 4 \
        --out benchmarks/results/distributed_throughput.json

For each rank count R it runs ``torchrun --standalone --nproc-per-node R -m anymal_ros.cli
train ppo --config config/teacher_ppo.yaml`` (the quadruped teacher on MuJoCo) with the SAME
totals: ``env.num_envs`` robots and ``env.num_workers`` simulator processes, divided among the
ranks (so on a 2-core machine 1 rank x 2 workers and 2 ranks x 1 worker use the same cores).
Samples per second is the median over the iterations after the first (warm-up) of
``steps_per_second`` in the run's metrics.csv: all ranks' environment steps of one iteration
(collection and update) over its wall time. Scaling efficiency is
``sps(R) / (R * sps(1))``; with the simulator workers divided rather than added, the ideal on
one machine is ``sps(R) == sps(1)`` (efficiency 1/R) unless the update or the Python
overhead of one process was the bottleneck -- what the ``speedup`` column shows.

On a GPU box give ``--device cuda`` and the rank counts up to the GPU count, e.g.
``--ranks 1 2 4 8 --num-envs 4096 --workers 32 --device cuda``: each rank then learns on its
own GPU (NCCL) with ``workers / R`` simulator processes.

The machine load (``os.getloadavg``) before and after each run is recorded: figures taken on a
shared machine are only comparable with each other.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(ranks: int, a: argparse.Namespace, run_dir: Path) -> dict:
    overrides = [
        f"env.num_envs={a.num_envs}",
        f"env.num_workers={a.workers}",
        f"ppo.num_steps={a.steps}",
        f"runner.iterations={a.iterations}",
        f"runner.device={a.device}",
        f"runner.torch_threads={a.threads}",
        "runner.checkpoint_interval=0",
        "runner.tensorboard=false",
        "runner.progress=false",
        *a.set,
    ]
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        "--nproc-per-node", str(ranks), "-m", "anymal_ros.cli", "train", a.algorithm,
        "--config", str(ROOT / a.config), "--run-dir", str(run_dir), *overrides,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(a.threads)}
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=a.timeout)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{ranks} rank(s) failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    timed = rows[1:] or rows  # the first iteration warms up (allocations, first compile)
    sps = [float(r["steps_per_second"]) for r in timed]
    return {
        "ranks": ranks,
        "workers_per_rank": max(1, a.workers // ranks),
        "num_envs_per_rank": a.num_envs // ranks,
        "samples_per_second": statistics.median(sps),
        "samples_per_second_per_iteration": sps,
        "collect_seconds": statistics.median(float(r["collect_time"]) for r in timed),
        "learn_seconds": statistics.median(float(r["learn_time"]) for r in timed),
        "process_seconds": elapsed,
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--algorithm", choices=["ppo", "ppg"], default="ppo")
    p.add_argument("--config", default="config/teacher_ppo.yaml")
    p.add_argument("--num-envs", type=int, default=64, help="robots in total (all ranks)")
    p.add_argument("--workers", type=int, default=2, help="simulator processes in total")
    p.add_argument("--steps", type=int, default=24, help="rollout steps per iteration")
    p.add_argument("--iterations", type=int, default=4)
    p.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    p.add_argument("--device", default="cpu")
    p.add_argument("--set", nargs="*", default=[], help="more config overrides")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument(
        "--out", default=str(ROOT / "benchmarks" / "results" / "distributed_throughput.json")
    )
    a = p.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for ranks in a.ranks:
            r = run(ranks, a, Path(tmp) / f"ranks{ranks}")
            results.append(r)
            print(json.dumps(r), flush=True)
    base = next((r for r in results if r["ranks"] == 1), results[0])
    for r in results:
        r["speedup"] = r["samples_per_second"] / base["samples_per_second"]
        r["scaling_efficiency"] = r["speedup"] / (r["ranks"] / base["ranks"])
    import torch

    result = {
        "benchmark": "data-parallel training throughput (torchrun)",
        "algorithm": a.algorithm,
        "config": a.config,
        "totals": {"num_envs": a.num_envs, "workers": a.workers, "steps": a.steps},
        "iterations": a.iterations,
        "threads_per_rank": a.threads,
        "device": a.device,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        },
        "results": results,
    }
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
