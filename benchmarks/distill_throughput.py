"""Distillation throughput: labelled samples per second of DAgger collection and of the
student update (paper-size networks, the built-in MuJoCo quadruped).

One iteration = ``num_steps`` steps of every environment (student acts, teacher labels,
height noise) followed by the TBPTT update on them. Reports samples/s of the collection,
of the update and of the whole iteration, per N. Prints lines and writes JSON.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/distill_throughput.py \
        --num-envs 16 64 --iterations 3 --out benchmarks/results/distill_throughput.json

``--teacher CKPT`` uses a trained teacher (else a freshly initialised one of paper size).
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
import torch  # noqa: E402


def bench(n: int, iterations: int, num_steps: int, teacher_path: str | None, seed: int) -> dict:
    from anymal_ros.config.distill import DAggerConfig, DistillLossConfig
    from anymal_ros.config.models import ActionHeadConfig, TeacherConfig
    from anymal_ros.config.noise import HeightNoiseConfig
    from anymal_ros.config.sim import SimConfig
    from anymal_ros.models.checkpoint import load_checkpoint
    from anymal_ros.models.loading import teacher_from_checkpoint
    from anymal_ros.models.student import Student, init_student_from_teacher
    from anymal_ros.models.teacher import Teacher
    from anymal_ros.rl.dagger import DAggerCollector
    from anymal_ros.rl.distill import Distiller
    from anymal_ros.rl.distill_runner import student_config_for
    from anymal_ros.rl.distill_storage import DistillRollout
    from anymal_ros.sim.env import QuadrupedVecEnv

    torch.manual_seed(seed)
    env = QuadrupedVecEnv(SimConfig(), n, seed=seed)
    if teacher_path:
        teacher = teacher_from_checkpoint(load_checkpoint(teacher_path), teacher_path)
    else:  # paper sizes; the default (CPG) simulator has 16 actions
        action = ActionHeadConfig(num_actions=env.action_dim)
        teacher = Teacher(TeacherConfig(proprio_dim=env.proprio_dim, action=action))
    teacher.eval().requires_grad_(False)
    scfg = student_config_for(teacher.cfg, None)
    student = Student(scfg)
    init_student_from_teacher(student, teacher)
    collector = DAggerCollector(
        env, student, teacher, HeightNoiseConfig(), DAggerConfig(num_steps=num_steps), seed
    )
    rollout = DistillRollout(
        num_steps, n, scfg.proprio_dim, (scfg.num_feet, scfg.points_per_foot),
        scfg.privileged_dim, scfg.action.num_actions, student.hidden_shape,
    )  # fmt: skip
    distiller = Distiller(student, DistillLossConfig())
    collect_t, update_t = [], []
    for i in range(iterations + 1):  # the first iteration warms up
        t0 = time.perf_counter()
        collector.collect(rollout, beta=0.0)
        t1 = time.perf_counter()
        distiller.update(rollout)
        t2 = time.perf_counter()
        if i:
            collect_t.append(t1 - t0)
            update_t.append(t2 - t1)
    samples = num_steps * n
    c, u = float(np.sum(collect_t)), float(np.sum(update_t))
    return {
        "num_envs": n,
        "samples_per_iteration": samples,
        "collect_samples_per_s": samples * iterations / c,
        "update_samples_per_s": samples * iterations / u,
        "samples_per_s": samples * iterations / (c + u),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-envs", type=int, nargs="+", default=[16, 64])
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--num-steps", type=int, default=50)
    p.add_argument("--teacher", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/distill_throughput.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    results = []
    for n in args.num_envs:
        r = bench(n, args.iterations, args.num_steps, args.teacher, args.seed)
        results.append(r)
        print(
            f"N={n:5d}: collect {r['collect_samples_per_s']:8.0f} samples/s, update "
            f"{r['update_samples_per_s']:8.0f} samples/s, total {r['samples_per_s']:8.0f} samples/s"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "benchmark": "distill_throughput",
                "iterations": args.iterations,
                "num_steps": args.num_steps,
                "teacher": args.teacher,
                "machine": platform.platform(),
                "cpu_count": os.cpu_count(),
                "torch_threads": torch.get_num_threads(),
                "results": results,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
