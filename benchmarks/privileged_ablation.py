"""Privileged ablation: how many falls does one of the teacher's privileged readings save?

A teacher sees terms its student never does (``anymal_ros.contract.PRIVILEGED_LAYOUT``: foot
friction, contact forces, ...). This runs the teacher on scorecard fields first with the true
readings, then with one term held at each of ``--values`` for every robot and step, on the
same robots (a seed draws the same commands and physics for every run). If a student falls
far more often than its teacher somewhere, a term whose constant costs the teacher as many
falls is knowledge the student would have to infer; one that costs none is not the gap.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/privileged_ablation.py \\
        policies/training/anymal_c_teacher.pt --term foot_friction --values 0.4 0.6 0.8 1.2 \\
        --rows "slope 20 deg down" --robots 90 --seeds 7 201 202 \\
        --out benchmarks/results/privileged_ablation_friction.json

Clean heights only unless ``--noise`` says otherwise. Falls are counts: with a dozen per run,
differences of 3-4 are within the spread of a Poisson count.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package

from anymal_ros.contract import PRIVILEGED_LAYOUT  # noqa: E402
from anymal_ros.eval.policies import BatchPolicy, EvalPolicy, load_policy  # noqa: E402


class HeldTerm:
    """A teacher that reads one privileged term as a constant (``value`` None: as it is)."""

    def __init__(self, teacher: BatchPolicy, term: str, value: float | None) -> None:
        self.teacher, self.value = teacher, value
        self.span = PRIVILEGED_LAYOUT.slices()[term]
        self.head, self.kind, self.num_envs = teacher.head, teacher.kind, teacher.num_envs
        self.has_belief = False

    def reset(self, env_ids: np.ndarray) -> None:
        self.teacher.reset(env_ids)

    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        if self.value is None:
            return self.teacher.act(obs)
        privileged = np.array(obs["privileged"], copy=True)
        privileged[:, self.span] = self.value
        return self.teacher.act({**obs, "privileged": privileged})


def held_teacher(path: str, term: str, value: float | None, num_envs: int) -> HeldTerm:
    teacher = load_policy(path, num_envs)
    if teacher.kind != "teacher":
        raise SystemExit(f"{path}: a {teacher.kind}, not a teacher: it reads no privileged terms")
    return HeldTerm(teacher, term, value)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("teacher", help="teacher checkpoint (.pt)")
    p.add_argument("--term", required=True, choices=PRIVILEGED_LAYOUT.names)
    p.add_argument("--values", type=float, nargs="+", required=True)
    p.add_argument("--rows", nargs="+", default=["slope 20 deg down"], help="scorecard fields")
    p.add_argument("--noise", nargs="+", default=["none"], help="height modes")
    p.add_argument("--robots", type=int, default=90, help="per seed")
    p.add_argument("--seeds", type=int, nargs="+", default=[7, 201, 202])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/privileged_ablation.json")
    args = p.parse_args(argv)

    from anymal_ros.commands._policy_sim import eval_policy
    from anymal_ros.commands.scorecard import DEFAULT_SPEC, load_spec
    from anymal_ros.eval.scorecard import measure

    spec, _ = load_spec(DEFAULT_SPEC, args.robots, args.seeds, args.rows, args.noise)
    plain = eval_policy(args.teacher, "teacher", [])
    runs = []
    start = time.perf_counter()
    for i, value in enumerate([None, *args.values]):
        label = "as read" if value is None else f"{args.term} = {value:g}"
        make = functools.partial(held_teacher, args.teacher, args.term, value)
        policy = EvalPolicy(label, plain.path, plain.sim, make)
        cells = measure(spec, {"candidate": policy}, None, [], progress=False, jobs=args.jobs)
        falls = {f"{c['row']} / {c['noise']} / seed {c['seed']}": c["falls"] for c in cells}
        runs.append({"value": value, "falls": sum(falls.values()),
                     "robots": sum(c["robots"] for c in cells), "cells": falls})  # fmt: skip
        elapsed = time.perf_counter() - start
        eta = elapsed / (i + 1) * (len(args.values) - i)
        print(f"[{i + 1}/{len(args.values) + 1}] {label}: {runs[-1]['falls']} falls in "
              f"{runs[-1]['robots']} robots ({elapsed:.0f} s, about {eta:.0f} s left)",
              flush=True)  # fmt: skip
    result = {"teacher": args.teacher, "policy_sha256": cells[0]["policy_sha256"],
              "term": args.term, "rows": args.rows, "noise": args.noise, "seeds": args.seeds,
              "robots_per_seed": args.robots, "runs": runs}  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
