"""Distillation quality: does the student keep the teacher's tracking and beat it on noisy
height maps?

Distils a student from ``--teacher`` with ``config/distill.yaml`` (plus ``--set``
overrides) for ``--iterations``, then evaluates student and teacher on the same terrain
set, commands and seeds (``anymal_ros.eval.evaluate``), with clean heights (``none``) and
the height-noise model's ``noisy`` mode. Targets (Miki et al. 2022):

* clean heights: student tracking reward >= 90 % of the teacher's (mean over terrains);
* noisy heights: student tracking reward > the teacher's.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/distill_quality.py --teacher TEACHER.pt \
        --iterations 1000 --eval-envs 32 --out benchmarks/results/distill_quality.json

``--student CKPT`` skips distillation and evaluates an existing student. ``--level`` sets the
terrain difficulty, 6 of 10 by default: the paper's claim is about terrain where the teacher
needs its heights; at levels 0-3 noisy heights cost either policy about 1 % of its tracking
reward, less than the spread between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package


def _mean(rows: list[dict], noise: str, key: str) -> float:
    vals = [r[key] for r in rows if r["noise"] == noise]
    return sum(vals) / len(vals)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", required=True)
    p.add_argument("--student", default=None, help="evaluate this student instead of distilling")
    p.add_argument("--config", default="config/distill.yaml")
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[])
    p.add_argument("--terrains", nargs="+", default=["flat", "rough", "stairs_up", "boxes"])
    p.add_argument(
        "--level",
        type=int,
        default=6,
        help="terrain level of every robot (at 0-3 the heights hardly matter to either policy)",
    )
    p.add_argument("--eval-envs", type=int, default=16)
    p.add_argument("--episode-length", type=float, default=None, help="seconds")
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--run-dir", default=None)
    p.add_argument("--out", default="benchmarks/results/distill_quality.json")
    args = p.parse_args(argv)

    import torch

    from anymal_ros.config import from_dict
    from anymal_ros.config.sim import SimConfig
    from anymal_ros.eval.evaluate import EvalSettings, evaluate, markdown_table
    from anymal_ros.eval.policies import load_policy
    from anymal_ros.rl.distill_runner import distill_runner, load_distill_config

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    if args.student is None:
        cfg = load_distill_config(
            args.config, [*args.overrides, f"runner.iterations={args.iterations}"]
        )
        runner = distill_runner(cfg, args.teacher, args.run_dir)
        summary = runner.learn()
        student_path = summary["checkpoint"]
        sim = runner.sim
    else:
        from anymal_ros.eval.policies import sim_config_of

        student_path = args.student
        sim = from_dict(SimConfig, sim_config_of(args.student) or {})
    distill_s = time.perf_counter() - t0
    settings = EvalSettings(
        terrains=tuple(args.terrains),
        noise_modes=("none", "noisy"),
        level=args.level,
        num_envs=args.eval_envs,
        seed=args.seed,
        episode_length_s=args.episode_length,
    )
    student_rows = evaluate(lambda n: load_policy(student_path, n), sim, settings)
    teacher_rows = evaluate(lambda n: load_policy(args.teacher, n), sim, settings)
    print(markdown_table(student_rows, teacher_rows))

    s_clean = _mean(student_rows, "none", "tracking_reward")
    t_clean = _mean(teacher_rows, "none", "tracking_reward")
    s_noisy = _mean(student_rows, "noisy", "tracking_reward")
    t_noisy = _mean(teacher_rows, "noisy", "tracking_reward")
    ratio = s_clean / t_clean if t_clean > 0 else float("nan")
    result = {
        "benchmark": "distill_quality",
        "teacher": str(args.teacher),
        "student": str(student_path),
        "iterations": args.iterations if args.student is None else None,
        "distill_seconds": distill_s,
        "clean_tracking_reward": {"student": s_clean, "teacher": t_clean, "ratio": ratio},
        "noisy_tracking_reward": {"student": s_noisy, "teacher": t_noisy},
        "target_clean_ratio_ge_0.9": bool(ratio >= 0.9),
        "target_noisy_student_beats_teacher": bool(s_noisy > t_noisy),
        "student_rows": student_rows,
        "teacher_rows": teacher_rows,
        "settings": {**settings.__dict__, "terrains": list(settings.terrains),
                     "noise_modes": list(settings.noise_modes)},
    }  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(
        f"clean: student/teacher tracking reward {s_clean:.3f}/{t_clean:.3f} = {ratio:.2f} "
        f"(target >= 0.9); noisy: {s_noisy:.3f} vs {t_noisy:.3f} (target: student higher)"
    )
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
