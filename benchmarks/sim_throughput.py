"""Simulator throughput: policy steps per second of the MuJoCo quadruped bridge.

Measures, for each N, full policy steps (physics + observations + rewards + height sampling +
auto-reset) in one process and split over worker processes, next to the physics bound (bare
``mj_step`` of the same model and state, same process layout), ``mujoco.rollout`` stepping N
one-robot models on threads, and gymnasium's Ant-v5 for reference. Prints lines and writes JSON.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sim_throughput.py \
        --num-envs 1 64 256 --steps 200 --out benchmarks/results/sim_throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package

import numpy as np  # noqa: E402


def _actions(rng, n, dim):
    return rng.normal(0.0, 0.5, size=(n, dim)).astype(np.float32)


def bench_single(cfg, n, steps, warmup, seed=0):
    from anymal_ros.sim.env import QuadrupedVecEnv

    env = QuadrupedVecEnv(cfg, n, seed=seed)
    env.reset()
    rng = np.random.default_rng(seed)
    for _ in range(warmup):
        env.step(_actions(rng, n, env.action_dim))
    acts = [_actions(rng, n, env.action_dim) for _ in range(steps)]
    phys0 = np.array(env.physics_time())
    start, cpu_start = time.perf_counter(), time.thread_time()
    resets = 0
    for a in acts:
        _, _, term, trunc, _ = env.step(a)
        resets += int((term | trunc).sum())
    wall = time.perf_counter() - start
    cpu = time.thread_time() - cpu_start
    physics, physics_cpu = np.array(env.physics_time()) - phys0
    bare = env.physics_benchmark(steps)
    return {
        "mode": "single_process",
        "num_envs": n,
        "workers": 1,
        "policy_steps_per_s": n * steps / wall,
        # The physics bound: time inside mj_step during these very steps (same model, same
        # states, same controls), so the fraction is the share of a step that is physics.
        "physics_bound_steps_per_s": n * steps / physics,
        "fraction_of_physics_bound": physics / wall,
        # Per CPU-second of this thread: less sensitive to other processes on a busy machine.
        "policy_steps_per_cpu_s": n * steps / cpu,
        "physics_bound_steps_per_cpu_s": n * steps / physics_cpu,
        # Bare mj_step loop from the final state with the last controls held (robots that
        # fell stay down: a different, usually more contact-heavy, state mix).
        "bare_physics_loop_steps_per_s": n * steps / bare,
        "resets": resets,
    }


def _proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc), or NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def bench_multi(cfg, n, steps, warmup, workers, seed=0):
    from anymal_ros.sim.multiproc import MultiProcessVecEnv

    env = MultiProcessVecEnv(cfg, n, seed=seed, num_workers=workers)
    try:
        env.reset()
        rng = np.random.default_rng(seed)
        for _ in range(warmup):
            env.step(_actions(rng, n, env.action_dim))
        acts = [_actions(rng, n, env.action_dim) for _ in range(steps)]
        pids = [p.pid for p in env._procs]
        no_args = [()] * env.num_workers
        phys0 = np.array(env._call_all("physics_time", no_args))
        cpu0 = np.array([_proc_cpu_seconds(p) for p in pids])
        parent_cpu0 = time.process_time()
        start = time.perf_counter()
        for a in acts:
            env.step(a)
        wall = time.perf_counter() - start
        parent_cpu = time.process_time() - parent_cpu0
        worker_cpu = np.array([_proc_cpu_seconds(p) for p in pids]) - cpu0
        phys = np.array(env._call_all("physics_time", no_args)) - phys0  # [workers, 2]
    finally:
        env.close()
    # Physics bound: the slowest worker's time inside mj_step (the workers run in parallel).
    physics = float(phys[:, 0].max())
    return {
        "mode": "multi_process",
        "num_envs": n,
        "workers": env.num_workers,
        "policy_steps_per_s": n * steps / wall,
        "physics_bound_steps_per_s": n * steps / physics,
        "fraction_of_physics_bound": physics / wall,
        # CPU accounting (load-independent): parent + workers, and what the busiest worker
        # alone would allow with a core of its own.
        "cpu_s_parent": parent_cpu,
        "cpu_s_workers": worker_cpu.tolist(),
        "policy_steps_per_cpu_s": n * steps / (parent_cpu + worker_cpu.sum()),
        "physics_bound_steps_per_cpu_s_per_worker": (n * steps / phys[:, 1].max()),
    }


def bench_rollout(cfg, n, steps, threads):
    """N one-robot models stepped by mujoco.rollout on threads (physics only)."""
    import mujoco
    from mujoco import rollout

    from anymal_ros.sim.env import QuadrupedVecEnv

    env = QuadrupedVecEnv(cfg, 1, seed=0)
    env.reset()
    for _ in range(10):
        env.step(np.zeros((1, env.action_dim), np.float32))
    m = env.model
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    state = np.zeros(mujoco.mj_stateSize(m, spec))
    mujoco.mj_getState(m, env.data, state, spec)
    states = np.tile(state, (n, 1))
    ctrl = np.tile(env.data.ctrl, (n, cfg.physics.decimation, 1))
    datas = [mujoco.MjData(m) for _ in range(threads)]
    models = [m] * n
    out = None
    start = time.perf_counter()
    for _ in range(steps):
        out, _ = rollout.rollout(models, datas, states, ctrl, nstep=cfg.physics.decimation,
                                 persistent_pool=True)  # fmt: skip
        states = out[:, -1]
    wall = time.perf_counter() - start
    rollout.shutdown_persistent_pool()
    return {"mode": "mujoco_rollout_physics", "num_envs": n, "threads": threads,
            "physics_steps_per_s": n * steps / wall}  # fmt: skip


def bench_ant(steps):
    import gymnasium as gym

    env = gym.make("Ant-v5")
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()
    wall = time.perf_counter() - start
    env.close()
    return {"mode": "gymnasium_ant_v5", "num_envs": 1, "steps_per_s": steps / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 64, 256])
    parser.add_argument("--steps", type=int, default=200, help="timed policy steps per case")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--config", type=str, default=None, help="SimConfig YAML")
    parser.add_argument("--out", type=str, default="benchmarks/results/sim_throughput.json")
    args = parser.parse_args()

    from anymal_ros.config import load_config
    from anymal_ros.config.sim import SimConfig

    cfg = load_config(SimConfig, args.config)
    results = []

    def report(r):
        results.append(r)
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}),
              flush=True)  # fmt: skip

    for n in args.num_envs:
        report(bench_single(cfg, n, args.steps, args.warmup))
        if n >= args.workers > 1:
            report(bench_multi(cfg, n, args.steps, args.warmup, args.workers))
    report(bench_rollout(cfg, max(args.num_envs), max(args.steps // 4, 10), args.workers))
    report(bench_ant(args.steps * 10))
    out = {
        "benchmark": "sim_throughput",
        "units": "policy (control) steps per second, summed over robots",
        "control_dt": cfg.control_dt,
        "decimation": cfg.physics.decimation,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "load_average": os.getloadavg(),
        "results": results,
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
