"""Which cue tells rough ground from noisy heights on flat ground, for the speed governor?

The governor (anymal_ros/obs/governor.py) caps the command for ``hold`` s after the spread of
the heights a student's belief reconstructs around a foot (its 90th minus 10th percentile, the
largest over the feet) exceeds a threshold. At 0.12 m it never sees 6 cm rough ground; at
0.06 m it does with clean heights, but also reads the noisy belief of flat ground as steps and
slows the robot there (policies/MODEL_CARD.md, "The same student, the simulator told the caps").

This records, at every control step of every robot's episode on the chosen fields, readings
of candidate cues (:data:`READINGS`), then scores each offline with the governor's hold:

* the belief's spread at several percentiles (the (100 - p)th minus the pth);
* the tilt of the contact normals, believed and true;
* the stance feet: per diagonal pair of the trot with both feet standing (CPG phase), the
  height between them along gravity (forward kinematics), as it is, and as its stray from the
  pair's slow mean (the package's stance cue, ``StanceCue``), each also with a gravity
  direction 1 degree off, as a state estimator's might be (scored at the threshold chosen with
  the right gravity);
* combined over the feet (or pairs) as the largest or the second largest, and over time now,
  or the minimum or mean over the last ``k`` steps.

For each cue, the threshold is the lowest at which the robots on flat ground with noisy heights
are capped at most ``--flat-budget`` of their steps; reported at that threshold: the share of
steps capped on every field, and of the robots that fell, how many were capped in the second
before they fell. The robots walk as the file's own governor lets them.

    .venv/bin/python benchmarks/roughness_cue.py \\
        policies/training/student_belief_caps_211.0M/student.onnx \\
        --save runs/roughness_cue.npz --out benchmarks/results/roughness_cue.json
    # again on the same recording, another budget:
    .venv/bin/python benchmarks/roughness_cue.py --load runs/roughness_cue.npz --flat-budget 0.05
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anymal_ros.commands._policy_sim import eval_policy  # noqa: E402
from anymal_ros.config import load_config  # noqa: E402
from anymal_ros.config.scorecard import ScorecardConfig  # noqa: E402
from anymal_ros.contract import PRIVILEGED_LAYOUT  # noqa: E402
from anymal_ros.eval.evaluate import run_field  # noqa: E402
from anymal_ros.eval.scorecard import field_sim  # noqa: E402
from anymal_ros.obs.governor import StanceCue, StanceFeet, foot_spreads  # noqa: E402

PERCENTILES = (5.0, 10.0, 20.0, 30.0)
OFF = ", gravity 1 deg off"
#: Per foot and step: believed-height spreads, contact normals' tilts (believed, true); per
#: diagonal pair: the height between its standing feet, as it is and as a stray from its slow
#: mean (the package's stance cue, anymal_ros/obs/governor.py), with the right gravity and with
#: one pitched by :data:`GRAVITY_ERROR`.
READINGS = (*(f"spread p{p:g}" for p in PERCENTILES), "normal tilt, believed",
            "normal tilt, true", "stance diagonals", "stance diagonals" + OFF,
            "stance diagonals detrended", "stance diagonals detrended" + OFF)  # fmt: skip
#: A pitch error of the gravity direction, as a state estimator's might be.
GRAVITY_ERROR = np.radians(1.0)
_PRIVILEGED = PRIVILEGED_LAYOUT.slices()
_NORMAL, _CONTACT = _PRIVILEGED["foot_contact_normal"], _PRIVILEGED["foot_contact"]
FEET = ("largest", "second")
WINDOWS = (("now", 1), ("min", 5), ("min", 10), ("min", 25), ("mean", 10), ("mean", 25))
ROWS = ("flat", "rough 6 cm", "slope 20 deg up", "slope 20 deg down", "stairs 17 cm up",
        "stairs 17 cm down", "boxes 15 cm")  # fmt: skip
BEFORE_FALL_S = 1.0
ARRAYS = (*READINGS, "ended", "fell")  # what --save keeps of a cell


class Recorder:
    """A batched policy that notes, after every step, each foot's (or pair's) readings (per
    name of :data:`READINGS`), and which robots' first episodes ended when, then acts as the
    policy it wraps."""

    def __init__(self, policy) -> None:
        self.policy = policy
        self.head, self.kind, self.num_envs = policy.head, policy.kind, policy.num_envs
        self.readings: dict[str, list[np.ndarray]] = {name: [] for name in READINGS}
        meta = policy.metadata
        self.feet = StanceFeet(meta.leg_chains, meta.default_joint_pos, meta.proprio_layout)
        self.gravity = meta.proprio_layout.slices()["gravity"]
        # The package's cue over one step: each step's stray (the windows come later).
        self.cues = {off: StanceCue(self.feet, policy.num_envs, meta.control_period,
                                    meta.control_period) for off in (False, True)}  # fmt: skip
        self.steps = 0
        self.ended_at = np.full(policy.num_envs, -1)  # last step of the first episode

    def reset(self, env_ids: np.ndarray) -> None:
        if self.steps:  # not the start: these robots' first episodes ended
            ids = np.asarray(env_ids)
            first = ids[self.ended_at[ids] < 0]
            self.ended_at[first] = self.steps - 1
        for stance_cue in self.cues.values():
            stance_cue.reset(np.asarray(env_ids))
        self.policy.reset(env_ids)

    def act(self, obs) -> np.ndarray:
        action = self.policy.act(obs)
        heights, privileged = self.policy.belief()
        for p in PERCENTILES:  # the governor's own spread, per foot
            self.readings[f"spread p{p:g}"].append(foot_spreads(heights, p).astype(np.float32))
        self.readings["normal tilt, believed"].append(normal_tilt(privileged))
        self.readings["normal tilt, true"].append(normal_tilt(obs["privileged"]))
        everyone = np.arange(self.num_envs)
        for off, suffix in ((False, ""), (True, OFF)):
            proprio = self.gravity_off(obs["proprio"]) if off else obs["proprio"]
            difference, standing = self.feet.diagonals(proprio)
            level = np.where(standing, np.abs(difference), 0.0).astype(np.float32)
            self.readings["stance diagonals" + suffix].append(level)
            stray = self.cues[off].observe(proprio, everyone).astype(np.float32)
            self.readings["stance diagonals detrended" + suffix].append(stray[:, None])
        self.steps += 1
        return action

    def belief(self):
        return self.policy.belief()

    def gravity_off(self, proprio: np.ndarray) -> np.ndarray:
        """``proprio`` with its gravity direction turned by :data:`GRAVITY_ERROR` about the
        base's y axis."""
        out = np.array(proprio, dtype=np.float64)
        down = out[:, self.gravity]
        c, s = np.cos(GRAVITY_ERROR), np.sin(GRAVITY_ERROR)
        out[:, self.gravity] = np.stack([c * down[:, 0] + s * down[:, 2], down[:, 1],
                                         -s * down[:, 0] + c * down[:, 2]], axis=1)  # fmt: skip
        return out


def normal_tilt(privileged: np.ndarray) -> np.ndarray:
    """``[N, feet]``: the sine of each foot's contact normal's tilt from the vertical (world
    frame), 0 for a foot out of contact (a believed contact under one half)."""
    normals = np.asarray(privileged[:, _NORMAL], dtype=np.float64).reshape(len(privileged), -1, 3)
    contact = np.asarray(privileged[:, _CONTACT]) > 0.5
    length = np.linalg.norm(normals, axis=-1)
    tilt = np.linalg.norm(normals[..., :2], axis=-1) / np.maximum(length, 1e-6)
    return np.where(contact & (length > 0.1), tilt, 0.0).astype(np.float32)


def record(job: tuple) -> dict:
    sim, row_name, terrain, mode, seed, robots, policy = job
    recorder = Recorder(policy.make(robots))
    figures = run_field(sim, terrain, recorder, mode, seed, robots)
    steps = recorder.steps
    ended = np.where(recorder.ended_at < 0, steps - 1, recorder.ended_at)
    # The last step ends every episode (truncation): earlier ends are falls.
    return {"row": row_name, "noise": mode, "seed": seed, "ended": ended,
            "fell": ended < steps - 1, "falls": figures["falls"],
            **{name: np.stack(r) for name, r in recorder.readings.items()}}  # fmt: skip


def record_all(args: argparse.Namespace) -> list[dict]:
    spec = load_config(ScorecardConfig, args.spec)
    policy = eval_policy(args.policy, None, [])
    rows = {row.name: row for row in spec.rows}
    unknown = set(args.rows) - set(rows)
    if unknown:
        raise SystemExit(f"--rows: {sorted(unknown)} not in {args.spec}")
    jobs = [(field_sim(policy.sim, spec, rows[name]), name, rows[name].terrain, mode, seed,
             args.robots, policy)
            for name in args.rows for mode in rows[name].noise for seed in args.seeds]  # fmt: skip
    start, cells = time.monotonic(), []
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        for i, cell in enumerate(pool.imap(record, jobs), 1):
            cells.append(cell)
            elapsed = time.monotonic() - start
            print(f"[{i}/{len(jobs)} {elapsed:.0f} s, ETA {elapsed / i * (len(jobs) - i):.0f} s] "
                  f"{cell['row']:18s} {cell['noise']:5s} seed {cell['seed']}: "
                  f"{cell['falls']} falls", flush=True)  # fmt: skip
    return cells


def cue(per_foot: np.ndarray, feet: str, window: tuple[str, int]) -> np.ndarray:
    """``[T, N]`` the cue's reading at each step from one reading ``[T, N, feet]``."""
    ordered = np.sort(per_foot, axis=-1)
    now = ordered[..., -1] if feet == "largest" else ordered[..., -2]
    how, k = window
    if k == 1:
        return now
    # Over the last k steps, fewer at an episode's start (the governor knows no earlier).
    padded = np.concatenate([np.full((k - 1,) + now.shape[1:], np.nan), now])
    windows = np.lib.stride_tricks.sliding_window_view(padded, k, axis=0)  # [T, N, k]
    return np.nanmin(windows, axis=-1) if how == "min" else np.nanmean(windows, axis=-1)


def capped(reading: np.ndarray, threshold: float, hold_steps: int) -> np.ndarray:
    """``[T, N]`` bool: capped at each step, as the governor caps: for ``hold_steps`` steps
    after a step whose reading exceeded ``threshold`` (from the step after it)."""
    seen = (reading > threshold).astype(np.int32)
    since = np.cumsum(seen, axis=0)
    lagged = np.concatenate([np.zeros((hold_steps,) + seen.shape[1:], np.int32), since])
    # exceedances among the last hold_steps readings before this step
    recent = lagged[hold_steps:-1] - lagged[: -hold_steps - 1] if hold_steps else 0 * seen[1:]
    return np.concatenate([np.zeros((1,) + seen.shape[1:], bool), recent > 0])


def active_mask(cell: dict) -> np.ndarray:
    steps = cell[READINGS[0]].shape[0]
    return np.arange(steps)[:, None] <= cell["ended"][None, :]


def score(cells: list[dict], budget: float, hold_steps: int, before_fall: int) -> list[dict]:
    """Per cue: the threshold that caps flat ground with noisy heights at most ``budget`` of
    its steps, and at it each field's capped share and fallers capped before their fall."""
    flat = [c for c in cells if c["row"] == "flat" and c["noise"] == "noisy"]
    if not flat:
        raise SystemExit("the recording has no flat field with noisy heights to calibrate on")
    results, thresholds = [], {}
    for name in READINGS:
        for feet in FEET if cells[0][name].shape[-1] > 1 else FEET[:1]:
            for window in WINDOWS:
                readings = [cue(c[name], feet, window) for c in cells]
                flat_readings = [r for r, c in zip(readings, cells, strict=True) if c in flat]
                # A gravity off by a degree keeps the threshold set with the right one: the
                # simulator's, where the threshold is chosen, is exact.
                base = (name.removesuffix(OFF), feet, window)
                threshold = thresholds.get(base) if name.endswith(OFF) else None
                if threshold is None:
                    threshold = calibrate(flat_readings, [active_mask(c) for c in flat], budget,
                                          hold_steps)  # fmt: skip
                thresholds[(name, feet, window)] = threshold
                fields = {}
                for reading, c in zip(readings, cells, strict=True):
                    on = capped(reading, threshold, hold_steps)
                    act = active_mask(c)
                    fallers = np.flatnonzero(c["fell"])
                    warned = [
                        bool(on[max(e - before_fall, 0) : e + 1, n].any())
                        for n, e in zip(fallers, c["ended"][fallers], strict=True)
                    ]
                    key = f"{c['row']} / {c['noise']}"
                    prev = fields.get(key, {"steps": 0, "capped": 0, "falls": 0, "warned": 0})
                    fields[key] = {"steps": prev["steps"] + int(act.sum()),
                                   "capped": prev["capped"] + int((on & act).sum()),
                                   "falls": prev["falls"] + len(fallers),
                                   "warned": prev["warned"] + sum(warned)}  # fmt: skip
                results.append({
                    "reading": name, "feet": feet, "window": f"{window[0]} {window[1]}",
                    "threshold_m": round(threshold, 4),
                    "fields": {k: {"capped_share": round(v["capped"] / max(v["steps"], 1), 4),
                                   "falls": v["falls"], "falls_capped_before": v["warned"]}
                               for k, v in fields.items()},
                })  # fmt: skip
    return results


def calibrate(readings: list[np.ndarray], actives: list[np.ndarray], budget: float,
              hold_steps: int) -> float:  # fmt: skip
    """The lowest threshold (to 1 mm, bisected) capping at most ``budget`` of the steps."""

    def share(threshold: float) -> float:
        on = sum(int((capped(r, threshold, hold_steps) & a).sum())
                 for r, a in zip(readings, actives, strict=True))  # fmt: skip
        return on / max(sum(int(a.sum()) for a in actives), 1)

    low, high = 0.0, 0.5
    while high - low > 0.001:
        mid = 0.5 * (low + high)
        low, high = (low, mid) if share(mid) <= budget else (mid, high)
    return high


def print_table(results: list[dict], rows: list[str]) -> None:
    print(f"{'cue':40s} {'thr m':>6s} " + " ".join(f"{r[:16]:>16s}" for r in rows))
    for r in results:
        name = f"{r['reading']}, {r['feet']}, {r['window']}"
        cells = []
        for row in rows:
            f = r["fields"].get(row)
            cells.append(f"{100 * f['capped_share']:4.0f}% {f['falls_capped_before']:2d}/"
                         f"{f['falls']:<3d}" if f else "")  # fmt: skip
        print(f"{name:40s} {r['threshold_m']:6.3f} " + " ".join(f"{c:>16s}" for c in cells))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("policy", nargs="?", help="a student's ONNX file with its belief")
    parser.add_argument("--spec", default="config/scorecard_edition2.yaml")
    parser.add_argument("--rows", nargs="+", default=list(ROWS))
    parser.add_argument("--robots", type=int, default=90, help="robots per field and seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[201])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--hold", type=float, default=1.0, help="s the cap holds")
    parser.add_argument(
        "--flat-budget",
        type=float,
        default=0.02,
        help="share of flat-ground steps with noisy heights a cue may cap",
    )
    parser.add_argument("--save", help="keep the recording (.npz) to score again with --load")
    parser.add_argument("--load", help="score a recording made with --save")
    parser.add_argument("--out", default="benchmarks/results/roughness_cue.json")
    args = parser.parse_args(argv)
    if args.load:
        saved = np.load(args.load, allow_pickle=False)
        meta = json.loads(str(saved["meta"]))
        cells = [{**m, **{k: saved[f"{k}_{i}"] for k in ARRAYS}}
                 for i, m in enumerate(meta["cells"])]  # fmt: skip
        policy, control_period = meta["policy"], meta["control_period"]
    else:
        if args.policy is None:
            parser.error("a policy to record, or --load")
        policy = args.policy
        cells = record_all(args)
        control_period = eval_policy(policy, None, []).sim.control_dt
        if args.save:
            Path(args.save).parent.mkdir(parents=True, exist_ok=True)
            meta = {"policy": policy, "control_period": control_period,
                    "cells": [{k: c[k] for k in ("row", "noise", "seed", "falls")}
                              for c in cells]}  # fmt: skip
            arrays = {f"{k}_{i}": c[k] for i, c in enumerate(cells)
                      for k in ARRAYS}  # fmt: skip
            np.savez_compressed(args.save, meta=json.dumps(meta), **arrays)
    hold_steps = int(round(args.hold / control_period))
    results = score(cells, args.flat_budget, hold_steps, int(round(BEFORE_FALL_S / control_period)))
    rows = list(dict.fromkeys(f"{c['row']} / {c['noise']}" for c in cells))
    print_table(results, rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    head = json.dumps({
        "policy": policy, "hold_s": args.hold, "flat_budget": args.flat_budget,
        "before_fall_s": BEFORE_FALL_S, "seeds": sorted({c["seed"] for c in cells}),
        "robots_per_cell": int(cells[0]["ended"].size),
    }, indent=2)  # fmt: skip
    cues = ",\n".join("    " + json.dumps(r) for r in results)  # a cue a line: ~200 of them
    out.write_text(f'{head[:-2]},\n  "cues": [\n{cues}\n  ]\n}}\n')
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
