"""A policy against a release's targets, field by field (``anymal-ros scorecard``).

The scorecard's file (:class:`~anymal_ros.config.scorecard.ScorecardConfig`,
``config/scorecard_edition2.yaml``) names the fields, their exact dimensions, the seeds, the
robots per seed and the bounds; this module measures a **candidate** policy on every field
(each noise mode, each seed: one *cell*, :func:`~anymal_ros.eval.evaluate.run_field`), pools
the seeds and gives a verdict per bound. Optional roles add the comparisons:

* **teacher**: measured on the teacher check's fields with its noise mode; the candidate must
  fall less often there (with noisy heights a student should beat the teacher it learnt from,
  because its memory fills in what the map gets wrong);
* **baseline** (e.g. the shipped policy): measured on every field; the candidate is *better*
  on a field when it falls less often, or as often and tracks at least as well;
* the **sim-to-sim** check runs the candidate on one field in a second physics setting.

Every policy runs in its own simulator (as in ``anymal-ros step-sweep``), with the
scorecard's shared settings and each field's settings merged over it. The command writes the
cells out as they finish and :func:`measure` reuses the earlier cells it is given, so an
hour's run that stops loses at most one cell.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anymal_ros.config import deep_merge, from_dict, to_dict
from anymal_ros.config.scorecard import ScorecardConfig, ScorecardRow
from anymal_ros.config.sim import SimConfig
from anymal_ros.eval.evaluate import METRICS, pool_seeds, second_physics
from anymal_ros.eval.figures import falls_axis, pyplot, save_figure
from anymal_ros.eval.parallel import FieldJob, run_fields
from anymal_ros.eval.policies import EvalPolicy
from anymal_ros.eval.tables import pipe_table

#: What a bound may name: the pooled metrics of a field.
TARGET_METRICS: tuple[str, ...] = ("falls", "falls_per_10min", *METRICS)
ROLES: tuple[str, ...] = ("candidate", "teacher", "baseline")
TRAINING, SECOND = "training", "second"  # the physics a cell ran in


@dataclass(frozen=True)
class Cell:
    """One measurement: a role's policy on a field with one noise mode and seed."""

    role: str
    row: str
    noise: str
    physics: str
    seed: int


def check_metrics(spec: ScorecardConfig) -> None:
    """Refuse bounds on metrics a field does not report (before an hour of simulation)."""
    bad = [f"{r.name}: {m}" for r in spec.rows for m in r.targets if m not in TARGET_METRICS]
    if bad:
        raise ValueError(f"targets name unknown metrics {bad}; known: {list(TARGET_METRICS)}")


def plan(spec: ScorecardConfig, roles: Sequence[str]) -> list[Cell]:
    """Every cell the given roles need, in run order (the candidate first)."""
    seeds = spec.seeds

    def every_field(role: str) -> list[Cell]:
        return [Cell(role, r.name, m, TRAINING, s) for r in spec.rows for m in r.noise
                for s in seeds]  # fmt: skip

    cells = []
    if "candidate" in roles:
        cells += every_field("candidate")
        if spec.sim_to_sim is not None:
            c = spec.sim_to_sim
            cells += [Cell("candidate", c.row, c.noise, SECOND, s) for s in seeds]
    if "teacher" in roles and spec.teacher_check is not None:
        t = spec.teacher_check
        cells += [Cell("teacher", name, t.noise, TRAINING, s) for name in t.rows for s in seeds]
    if "baseline" in roles:
        cells += every_field("baseline")
    return cells


def field_sim(
    policy_sim: SimConfig,
    spec: ScorecardConfig,
    row: ScorecardRow,
    physics: str | Path | None = None,
) -> SimConfig:
    """A policy's simulator with the scorecard's and the field's settings and its episode
    length merged over it, in the second physics setting ``physics`` (a YAML) if given."""
    data = deep_merge(deep_merge(to_dict(policy_sim), spec.sim), row.sim)
    data = deep_merge(data, {"termination": {"episode_length_s": spec.episode_length_s}})
    sim = from_dict(SimConfig, data, f"scorecard row {row.name!r}")
    return second_physics(sim, physics) if physics is not None else sim


def digest(data: bytes | str) -> str:
    """Short SHA-256 of a file's bytes or a settings text: what a reused cell must match."""
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()[:16]


def _key(cell: Mapping[str, Any]) -> tuple:
    # Not the role: a policy's figures on a field are the same whichever part it plays.
    return tuple(cell[k] for k in ("policy_sha256", "row", "noise", "physics", "seed",
                                   "robots", "sim_sha256"))  # fmt: skip


def keyed_cells(
    spec: ScorecardConfig,
    policies: Mapping[str, EvalPolicy],
    physics_path: str | Path | None = None,
) -> list[tuple[dict[str, Any], SimConfig]]:
    """Every cell of :func:`plan` for the roles in ``policies`` as ``(head, simulator)``: the
    head names the cell and carries the digests a reused cell must match. Builds every field's
    simulator settings (bad ones fail here, before anything runs) and simulates nothing."""
    unknown = sorted(set(policies) - set(ROLES))
    if unknown or "candidate" not in policies:
        raise ValueError(f"roles must include candidate and be among {list(ROLES)}: {unknown}")
    check_metrics(spec)
    if spec.sim_to_sim is not None and physics_path is None:
        raise ValueError("the scorecard has a sim-to-sim check: give its physics YAML")
    files = {role: digest(Path(p.path).read_bytes()) for role, p in policies.items()}
    out = []
    for c in plan(spec, list(policies)):
        policy, row = policies[c.role], spec.row(c.row)
        sim = field_sim(policy.sim, spec, row, physics_path if c.physics == SECOND else None)
        head = {"role": c.role, "label": policy.label, "path": policy.path,
                "policy_sha256": files[c.role], "robot": sim.robot.description,
                "row": c.row, "terrain": row.terrain, "noise": c.noise, "physics": c.physics,
                "seed": c.seed, "robots": spec.robots_per_seed,
                "sim_sha256": digest(json.dumps(to_dict(sim), sort_keys=True))}  # fmt: skip
        out.append((head, sim))
    return out


def measure(
    spec: ScorecardConfig,
    policies: Mapping[str, EvalPolicy],
    physics_path: str | Path | None = None,
    done: Sequence[dict[str, Any]] = (),
    progress: bool = True,
    on_cell: Callable[[dict[str, Any]], None] | None = None,
    jobs: int = 1,
) -> list[dict[str, Any]]:
    """Measure every cell of :func:`keyed_cells` for the roles in ``policies`` (role ->
    policy); ``physics_path``: the sim-to-sim YAML; ``done``: cells of earlier runs, reused
    where they match (the same policy file bytes, field, noise, physics, seed, robots and
    simulator settings; the role may differ). ``jobs`` > 1 measures that many cells at once,
    each in a process of its own (the figures are the same: a cell depends on its seed
    alone); ``on_cell`` then sees the cells as they finish, and the result is in plan order.

    A cell: ``role``, ``label``, ``path``, ``robot``, ``row``, ``terrain``, ``noise``,
    ``physics``, ``seed``, ``robots``, the two digests and :func:`run_field`'s figures.
    """
    from tqdm import tqdm

    n = spec.robots_per_seed
    cells = keyed_cells(spec, policies, physics_path)
    earlier = {_key(c): c for c in done}
    todo = {}  # key -> (head, simulator): each field measured once, whatever roles share it
    sharing: dict[tuple, list[dict[str, Any]]] = {}  # key -> the heads of the cells it serves
    for head, sim in cells:
        if _key(head) not in earlier:
            todo.setdefault(_key(head), (head, sim))
            sharing.setdefault(_key(head), []).append(head)
    if progress:
        print(f"scorecard: {len(cells)} cells, {len(cells) - len(todo)} measured before or "
              f"shared, {len(todo)} to run", file=sys.stderr)  # fmt: skip
    fields = [FieldJob(policies[head["role"]].make, sim, head["terrain"], head["noise"],
                       head["seed"], n) for head, sim in todo.values()]  # fmt: skip
    bar = tqdm(
        total=sum(f.full_steps for f in fields), unit="step",
        unit_scale=True, desc="scorecard", disable=not progress,
        mininterval=0.5 if sys.stderr.isatty() else 30.0, dynamic_ncols=True,
    )  # fmt: skip
    measured: dict[tuple, dict[str, Any]] = {}
    for head, _ in cells:  # the cells measured before, as they are reused
        if _key(head) in earlier and on_cell is not None:
            on_cell({**earlier[_key(head)], **head})
    keys = list(todo)

    def finished(i: int, figures: dict[str, Any]) -> None:
        key = keys[i]
        measured[key] = {**todo[key][0], **figures}
        for head in sharing[key] if on_cell is not None else ():
            on_cell({**measured[key], **head})  # e.g. a baseline that is also the teacher

    run_fields(fields, jobs, bar, finished)
    bar.close()
    # Plan order; a cell another role shares takes its figures under its own role and label.
    return [{**earlier.get(_key(head), measured.get(_key(head), {})), **head}
            for head, _ in cells]  # fmt: skip


def pooled(cells: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cells summed over seeds, per role x field x noise x physics."""
    return pool_seeds(
        cells, ("role", "row", "noise", "physics"), carry=("label", "path", "robot", "terrain")
    )


def verdicts(spec: ScorecardConfig, cells: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per check, each ``{check, row, noise, metric, value, wanted, met}``: every
    bound on the candidate's fields, then the teacher, sim-to-sim and baseline comparisons,
    which add ``other`` (the teacher's or baseline's falls per 10 min; the falls in the second
    physics). ``met`` is None where a side was not measured."""
    pool = {(p["role"], p["row"], p["noise"], p["physics"]): p for p in pooled(cells)}
    mine = {(r, m): p for (role, r, m, ph), p in pool.items() if role == "candidate"
            and ph == TRAINING}  # fmt: skip
    out = []
    for row in spec.rows:
        for mode in row.noise:
            p = mine.get((row.name, mode))
            for metric, bound in row.targets.items():
                value = None if p is None else float(p[metric])
                out.append({"check": "target", "row": row.name, "noise": mode, "metric": metric,
                            "value": value, "wanted": bound.text(),
                            "met": None if value is None else bound.holds(value)})  # fmt: skip
    if spec.teacher_check is not None:
        t = spec.teacher_check
        for name in t.rows:
            p, q = mine.get((name, t.noise)), pool.get(("teacher", name, t.noise, TRAINING))
            out.append(_comparison("teacher", name, t.noise, p, q,
                                   lambda a, b: a["falls_per_10min"] < b["falls_per_10min"],
                                   "fewer falls per 10 min than the teacher"))  # fmt: skip
    if spec.sim_to_sim is not None:
        s = spec.sim_to_sim
        p, q = mine.get((s.row, s.noise)), pool.get(("candidate", s.row, s.noise, SECOND))
        ratio = None if p is None or q is None else (
            q["tracking_error"] / max(p["tracking_error"], 1e-9))  # fmt: skip
        out.append({
            "check": "sim_to_sim", "row": s.row, "noise": s.noise,
            "metric": "tracking_error_ratio", "value": ratio,
            "other": None if q is None else float(q["falls"]),
            "wanted": f"<= {s.max_tracking_error_ratio:g}, with <= {s.max_falls} falls (other)",
            "met": None if ratio is None else bool(
                ratio <= s.max_tracking_error_ratio and q["falls"] <= s.max_falls),
        })  # fmt: skip
    for row in spec.rows:
        for mode in row.noise:
            p, q = mine.get((row.name, mode)), pool.get(("baseline", row.name, mode, TRAINING))
            if q is not None:
                out.append(_comparison("baseline", row.name, mode, p, q, better_than,
                                       "fewer falls, or as few and tracking no worse"))  # fmt: skip
    return out


def better_than(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Fewer falls per 10 min, or as few and a tracking error no larger."""
    if a["falls_per_10min"] != b["falls_per_10min"]:
        return a["falls_per_10min"] < b["falls_per_10min"]
    return a["tracking_error"] <= b["tracking_error"]


def _comparison(check, row, noise, mine, other, passes, wanted) -> dict[str, Any]:
    both = mine is not None and other is not None
    return {
        "check": check, "row": row, "noise": noise, "metric": "falls_per_10min",
        "value": None if mine is None else float(mine["falls_per_10min"]),
        "other": None if other is None else float(other["falls_per_10min"]),
        "wanted": wanted, "met": bool(passes(mine, other)) if both else None,
    }  # fmt: skip


def _heights(mode: str) -> str:
    return "clean" if mode == "none" else mode


def _num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def markdown(
    spec: ScorecardConfig, cells: Sequence[dict[str, Any]], quick_look: bool = False
) -> str:
    """The fields (pooled figures of every role) and the checks with their verdicts;
    ``quick_look``: the run used fewer robots, other seeds or fewer fields or height modes
    than the scorecard names."""
    pool = pooled(cells)
    lines = [
        "**A quick look: fewer robots, other seeds or fewer fields or height modes than the "
        "scorecard names; the verdicts do not count.**", "",
    ] if quick_look else []  # fmt: skip
    head = ["role", "field", "heights", "physics", "robots", "falls / 10 min", "track. err [m/s]",
            "base / stance", "limb contacts / min", "clearance p10 [m]"]  # fmt: skip
    lines.append(pipe_table(head, (
        [p["role"], p["row"], _heights(p["noise"]), p["physics"], str(p["robots"]),
         f"{p['falls_per_10min']:.2f} ({p['falls']})", f"{p['tracking_error']:.3f}",
         f"{p['base_height_ratio']:.2f}", f"{p['limb_contacts_per_minute']:.2f}",
         f"{p['foot_clearance']:.3f}"]
        for p in pool
    )))  # fmt: skip
    checks = verdicts(spec, cells)
    mark = {True: "yes", False: "**no**", None: "not measured"}
    head = ["check", "field", "heights", "metric", "value", "other", "wanted", "met"]
    lines += ["", pipe_table(head, (
        [v["check"], v["row"], _heights(v["noise"]), v["metric"], _num(v["value"], 3),
         _num(v.get("other"), 3), str(v["wanted"]), mark[v["met"]]]
        for v in checks
    ))]  # fmt: skip
    met = sum(v["met"] is True for v in checks)
    judged = sum(v["met"] is not None for v in checks)
    lines += ["", f"{met} of {judged} checks met ({len(checks) - judged} not measured)."]
    return "\n".join(lines)


def plot(cells: Sequence[dict[str, Any]], path: str | Path, title: str | None = None) -> Path:
    """One PNG: falls per 10 min on every field (training physics), a panel per noise mode, a
    bar per role, the 1-per-10-min line dashed; logarithmic above 1 (symlog) when some field
    is far above it, as in the step sweep's figure."""
    plt = pyplot()

    pool = [p for p in pooled(cells) if p["physics"] == TRAINING]
    rows = list(dict.fromkeys(p["row"] for p in pool))
    modes = list(dict.fromkeys(p["noise"] for p in pool))
    roles = [r for r in ROLES if any(p["role"] == r for p in pool)]
    value = {(p["role"], p["row"], p["noise"]): p for p in pool}
    top = max([p["falls_per_10min"] for p in pool] + [2.0])
    height = 0.8 / len(roles)
    fig, axes = plt.subplots(
        1, len(modes), figsize=(4.8 * len(modes) + 1.6, 1.2 + 0.22 * len(rows) * len(roles)),
        sharey=True, squeeze=False,
    )  # fmt: skip
    # A role keeps its colour in every panel, and the legend takes its bars from a panel
    # that has some: the teacher is measured with noisy heights only, and an empty bar set
    # in the first panel had shifted the colours and left its legend entry the wrong colour.
    legend: dict[str, Any] = {}
    for ax, mode in zip(axes[0], modes, strict=True):
        for i, role in enumerate(roles):
            got = [(j, value[(role, r, mode)]) for j, r in enumerate(rows)
                   if (role, r, mode) in value]  # fmt: skip
            if not got:
                continue
            ys = [j + (i - (len(roles) - 1) / 2) * height for j, _ in got]
            xs = [p["falls_per_10min"] for _, p in got]
            bars = ax.barh(ys, xs, height=0.92 * height, color=f"C{i}")
            ax.bar_label(bars, [f"{x:.1f}" for x in xs], padding=2, fontsize=7)
            legend.setdefault(role, bars)
        line = ax.axvline(1.0, color="red", linestyle="--", linewidth=1.2)
        scale = falls_axis(ax, top, "x", headroom=1.6)  # room for the bars' labels
        ax.set_title(f"{_heights(mode)} heights", fontsize=10)
        ax.set_xlabel(f"falls per 10 min{scale}")
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(rows)), rows)
    axes[0][0].invert_yaxis()
    handles = [legend[role] for role in roles] + [line]
    names = [f"{role}: {_label(pool, role)}" for role in roles] + ["1 fall per 10 min"]
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 2), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.04 * (1 + (len(names) - 1) // 2), 1, 1))
    return save_figure(fig, path)


def _label(pool: Sequence[dict[str, Any]], role: str) -> str:
    p = next(p for p in pool if p["role"] == role)
    return f"{Path(p['path']).name} ({p['robot']})"


def write(
    out_dir: str | Path, spec: ScorecardConfig, cells: Sequence[dict[str, Any]],
    meta: Mapping[str, Any],
) -> tuple[Path, Path]:  # fmt: skip
    """``scorecard.json`` (cells, pooled fields, verdicts, the spec, ``meta``) and
    ``scorecard.md``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    js = out / "scorecard.json"
    data = {"cells": list(cells), "pooled": pooled(cells), "verdicts": verdicts(spec, cells),
            "spec": to_dict(spec), **meta}  # fmt: skip
    tmp = js.with_suffix(".json.tmp")  # a run killed mid-write keeps the previous file
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(js)
    md = out / "scorecard.md"
    md.write_text(markdown(spec, cells, bool(meta.get("quick_look"))) + "\n")
    return js, md


def read_cells(path: str | Path) -> list[dict[str, Any]]:
    """The cells of an earlier ``scorecard.json``."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or "cells" not in data:
        raise ValueError(f"{path}: not a scorecard.json (no 'cells')")
    return list(data["cells"])
