"""Privileged ablation: how many falls does one of the teacher's privileged readings save?

A teacher sees terms its student never does (``anymal_ros.contract.PRIVILEGED_LAYOUT``: foot
friction, contact forces, ...). This runs the teacher on scorecard fields first with the true
readings, then with each ``--terms`` term spoilt, on the same robots (a seed draws the same
commands and physics for every run): held at each of ``--values`` for every robot and step,
and with ``--shuffle`` handed another robot's reading at every step (the same field, so the
readings keep their distribution and lose only whose they are). If a student falls far more
often than its teacher somewhere, a term whose loss costs the teacher as many falls is
knowledge the student would have to infer; one that costs none is not the gap.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/privileged_ablation.py \\
        policies/training/anymal_c_teacher.pt --terms foot_friction --values 0.4 0.6 0.8 1.2 \\
        --rows "slope 20 deg down" --robots 90 --seeds 7 201 202 \\
        --out benchmarks/results/privileged_ablation_friction.json
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/privileged_ablation.py \\
        policies/training/anymal_c_teacher.pt --shuffle \\
        --out benchmarks/results/privileged_ablation_shuffled.json   # every term, one by one
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/privileged_ablation.py \\
        policies/training/anymal_c_teacher.pt --shuffle --together \\
        --out benchmarks/results/privileged_ablation_shuffled_together.json   # all at once

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


class SpoiltTerms:
    """A teacher that reads some privileged terms spoilt: ``how`` is "read" (as they are),
    "shuffle" (another robot's reading, a new permutation every step) or a constant."""

    def __init__(self, teacher: BatchPolicy, terms: tuple[str, ...], how: str | float) -> None:
        self.teacher, self.how = teacher, how
        slices = PRIVILEGED_LAYOUT.slices()
        every = range(PRIVILEGED_LAYOUT.dim)
        self.columns = np.array([i for t in terms for i in every[slices[t]]], dtype=np.int64)
        self.rng = np.random.default_rng(0)
        self.head, self.kind, self.num_envs = teacher.head, teacher.kind, teacher.num_envs
        self.has_belief = False

    def reset(self, env_ids: np.ndarray) -> None:
        self.teacher.reset(env_ids)

    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        if self.how == "read":
            return self.teacher.act(obs)
        privileged = np.array(obs["privileged"], copy=True)
        if self.how == "shuffle":
            order = self.rng.permutation(len(privileged))
            privileged[:, self.columns] = obs["privileged"][order][:, self.columns]
        else:
            privileged[:, self.columns] = self.how
        return self.teacher.act({**obs, "privileged": privileged})


def spoilt_teacher(path: str, terms: tuple[str, ...], how: str | float, num_envs: int):
    teacher = load_policy(path, num_envs)
    if teacher.kind != "teacher":
        raise SystemExit(f"{path}: a {teacher.kind}, not a teacher: it reads no privileged terms")
    return SpoiltTerms(teacher, terms, how)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("teacher", help="teacher checkpoint (.pt)")
    names = PRIVILEGED_LAYOUT.names
    p.add_argument("--terms", nargs="+", default=list(names), choices=names,
                   help="one run per term and spoiling")  # fmt: skip
    p.add_argument("--values", type=float, nargs="+", default=[], help="constants to hold at")
    p.add_argument("--shuffle", action="store_true", help="also hand each robot another's")
    p.add_argument("--together", action="store_true", help="spoil the terms at once, not in turn")
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
    spoilings: list[str | float] = [*(["shuffle"] if args.shuffle else []), *args.values]
    if not spoilings:
        p.error("nothing to spoil: give --values, --shuffle or both")
    groups = [tuple(args.terms)] if args.together else [(t,) for t in args.terms]
    plan = [((), "read")] + [(g, how) for g in groups for how in spoilings]
    for i, (terms, how) in enumerate(plan):
        term = " + ".join(terms)
        label = {"read": "as read", "shuffle": f"{term} shuffled"}.get(how, f"{term} = {how}")
        make = functools.partial(spoilt_teacher, args.teacher, terms, how)
        policy = EvalPolicy(label, plain.path, plain.sim, make)
        cells = measure(spec, {"candidate": policy}, None, [], progress=False, jobs=args.jobs)
        falls = {f"{c['row']} / {c['noise']} / seed {c['seed']}": c["falls"] for c in cells}
        runs.append({"terms": list(terms), "spoilt": how,
                     "falls": sum(falls.values()),
                     "robots": sum(c["robots"] for c in cells), "cells": falls})  # fmt: skip
        elapsed = time.perf_counter() - start
        eta = elapsed / (i + 1) * (len(plan) - i - 1)
        print(f"[{i + 1}/{len(plan)}] {label}: {runs[-1]['falls']} falls in "
              f"{runs[-1]['robots']} robots ({elapsed:.0f} s, about {eta:.0f} s left)",
              flush=True)  # fmt: skip
    result = {"teacher": args.teacher, "policy_sha256": cells[0]["policy_sha256"],
              "rows": args.rows, "noise": args.noise, "seeds": args.seeds,
              "robots_per_seed": args.robots, "runs": runs}  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
