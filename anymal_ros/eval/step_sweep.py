"""Falls against step height (``anymal-ros step-sweep``): stairs up and down at exact heights.

The terrain generator draws a stairs tile's riser from ``terrain.step_height`` (a range
interpolated over the difficulty levels); a sweep sets that range to ``(h, h)``, so every level
gives exactly ``h``, and evaluates each policy on the uniform stairs fields of
:mod:`anymal_ros.eval.evaluate` (5 x 5 tiles, robots starting on the centre platform, one
episode per robot, fixed seeded commands). The tread is ``terrain.step_width`` of the policy's
simulator (0.3 m in the bundled configs); each tile has ten steps from its platform to its edge.
The stairs fields are built on a ``RISER_GRID`` height grid for every policy alike: MuJoCo
joins a height field's samples with planes, so a riser is a ramp one grid cell wide (10 cm on
the training terrain's default grid), and 2.5 cm makes it near vertical, as a building's are
and as the release scorecard builds them; ``grid=None`` keeps each policy's own terrain grid.
``up`` is the ``stairs_up`` field (the centre platform is the tile's lowest point, the flight
climbs away from it), ``down`` the ``stairs_down`` field (platform highest, the flight
descends). A robot that walks past its tile's edge meets the neighbouring tile's flight in the
other direction, as in ``anymal-ros eval``.

Every policy runs in its own simulator (its checkpoint's settings or its ONNX file's robot and
action settings, see ``anymal_ros.commands._policy_sim``), so a first-edition student on its
``anymal_c_like`` model and an ANYmal C teacher can share one figure. One row per policy x
direction x height x seed (:func:`sweep`); :func:`pooled` sums the seeds (falls over walked
minutes), :func:`markdown_table` and :func:`plot_sweep` show the pooled figures.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from anymal_ros.config.sim import SimConfig, TerrainConfig
from anymal_ros.eval.evaluate import pool_seeds
from anymal_ros.eval.figures import falls_axis, pyplot, save_figure
from anymal_ros.eval.parallel import FieldJob, run_fields
from anymal_ros.eval.policies import EvalPolicy
from anymal_ros.eval.tables import pipe_table

#: direction -> the terrain type of its field.
DIRECTIONS: dict[str, str] = {"up": "stairs_up", "down": "stairs_down"}
#: The second edition's sweep (issue #16): 5 to 22 cm.
DEFAULT_HEIGHTS: tuple[float, ...] = (0.05, 0.08, 0.11, 0.14, 0.17, 0.20, 0.22)
TARGET_FALLS_PER_10MIN = 1.0  # the stairs target of the bundled policy
RISER_GRID = 0.025  # m, the stairs fields' height grid: near-vertical risers


def at_step_height(sim: SimConfig, height: float, grid: float | None = RISER_GRID) -> SimConfig:
    """``sim`` with every stairs tile's riser exactly ``height`` m, whatever the level, on a
    ``grid`` m height grid (None: ``sim``'s own)."""
    if not 0.0 < height <= 0.5:
        raise ValueError(f"step height must be in (0, 0.5] m, got {height}")
    terrain = dataclasses.replace(sim.terrain, step_height=(height, height))
    if grid is not None:
        terrain = dataclasses.replace(terrain, resolution=grid, sharp_resolution=0.0)
    return dataclasses.replace(sim, terrain=terrain)


def riser_grid(sim: SimConfig) -> float:
    """The height grid (m) the stairs of ``sim``'s terrain are built on."""
    return sim.terrain.spacing_of("stairs_up")


def sweep(
    policies: Sequence[EvalPolicy],
    heights: Sequence[float] = DEFAULT_HEIGHTS,
    seeds: Sequence[int] = (0,),
    num_envs: int = 60,
    episode_length_s: float | None = None,
    noise: str = "none",
    directions: Sequence[str] = ("up", "down"),
    grid: float | None = RISER_GRID,
    jobs: int = 1,
    progress: bool = True,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Evaluate every policy x direction x height x seed; one row each (``num_envs`` robots,
    one episode of ``episode_length_s`` each, default the simulator's), the stairs on a
    ``grid`` m height grid (None: each policy's own).

    Row keys: ``policy`` (label), ``path``, ``robot``, ``direction``, ``step_height`` (m),
    ``tread`` (m), ``grid`` (m), ``seed``, ``noise``, ``robots``, ``episode_length_s``, ``falls``,
    ``minutes`` (walked), ``falls_per_10min``, and the metrics of ``anymal-ros eval``
    (``tracking_error``, ``falls_per_minute``, the gait metrics, ...). ``on_row`` sees each
    row as it is made (e.g. to save partial results of a long run); ``jobs`` > 1 measures that
    many rows at once, a process each (:mod:`anymal_ros.eval.parallel`: the same figures; then
    ``on_row`` sees them as they finish, and the result is in the order above).

    Progress: one bar over all robot-steps of the sweep, with rate and ETA.
    """
    from tqdm import tqdm

    bad = [d for d in directions if d not in DIRECTIONS]
    if bad:
        raise ValueError(f"unknown directions {bad}; choose from {list(DIRECTIONS)}")
    if not policies or not heights or not seeds:
        raise ValueError("a sweep needs at least one policy, one height and one seed")
    cells = [(p, d, h, s) for p in policies for d in directions for h in heights for s in seeds]
    fields = [FieldJob(p.make, at_step_height(p.sim, h, grid), DIRECTIONS[d], noise, s,
                       num_envs, episode_length_s) for p, d, h, s in cells]  # fmt: skip
    bar = tqdm(
        total=sum(f.full_steps for f in fields), unit="step", unit_scale=True,
        desc="step-sweep", disable=not progress,
        mininterval=0.5 if sys.stderr.isatty() else 30.0, dynamic_ncols=True,
    )  # fmt: skip

    def row(i: int, figures: dict[str, Any]) -> dict[str, Any]:
        (policy, direction, height, seed), sim = cells[i], fields[i].sim
        return {
            "policy": policy.label, "path": policy.path, "robot": sim.robot.description,
            "direction": direction, "step_height": float(height),
            "tread": float(sim.terrain.step_width), "grid": riser_grid(sim), "seed": int(seed),
            "noise": noise, "robots": num_envs, **figures,
        }  # fmt: skip

    figures = run_fields(
        fields, jobs, bar, None if on_row is None else lambda i, f: on_row(row(i, f))
    )
    bar.close()
    return [row(i, f) for i, f in enumerate(figures)]


def pooled(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows summed over seeds, per policy x grid x direction x height (:func:`pool_seeds
    <anymal_ros.eval.evaluate.pool_seeds>`)."""
    return pool_seeds(rows, ("policy", "grid", "direction", "step_height"), carry=("robot",))


def _series(pool: Sequence[dict[str, Any]]) -> dict[tuple[str, float], str]:
    """(policy, grid) -> its name in tables and legends; the grid is named when the rows have
    more than one."""
    keys = list(dict.fromkeys((r["policy"], r["grid"]) for r in pool))
    several = len({g for _, g in keys}) > 1
    return {(p, g): f"{p} ({100 * g:g} cm grid)" if several else p for p, g in keys}


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """Pooled falls per 10 min (and tracking error) per step height: one row per height, for
    each policy a column per direction (``falls / tracking error``)."""
    pool = pooled(rows)
    series = _series(pool)
    directions = [d for d in DIRECTIONS if any(r["direction"] == d for r in pool)]
    heights = sorted({r["step_height"] for r in pool})
    cell = {(r["policy"], r["grid"], r["direction"], r["step_height"]): r for r in pool}
    head = ["step height [cm]"] + [f"{n}: {d}" for n in series.values() for d in directions]

    def text(r: dict[str, Any] | None) -> str:
        return "-" if r is None else f"{r['falls_per_10min']:.1f} / {r['tracking_error']:.3f}"

    columns = [(p, g, d) for p, g in series for d in directions]
    return pipe_table(
        head, ([f"{100 * h:.0f}", *(text(cell.get((*k, h))) for k in columns)] for h in heights)
    )


def plot_sweep(rows: Sequence[dict[str, Any]], path: str | Path, title: str | None = None) -> Path:
    """One PNG: falls per 10 min against step height (cm), a panel per direction, a line per
    policy (seeds pooled), the target of 1 fall per 10 min dashed. Above 8 falls per 10 min
    the y axis turns logarithmic past 1 (symlog), so a policy near the target and one far
    above it share the figure."""
    plt = pyplot()

    pool = pooled(rows)
    series = _series(pool)
    directions = [d for d in DIRECTIONS if any(r["direction"] == d for r in pool)]
    heights = sorted({r["step_height"] for r in pool})
    fig, axes = plt.subplots(
        1, len(directions), figsize=(5.6 * len(directions), 4.6), sharey=True, squeeze=False
    )
    top = max([r["falls_per_10min"] for r in pool] + [2 * TARGET_FALLS_PER_10MIN])
    for ax, direction in zip(axes[0], directions, strict=True):
        for i, ((policy, grid), label) in enumerate(series.items()):
            pts = sorted(
                (r["step_height"], r["falls_per_10min"], r["robots"])
                for r in pool
                if (r["policy"], r["grid"], r["direction"]) == (policy, grid, direction)
            )
            if not pts:
                continue
            robots = sorted({n for _, _, n in pts})
            robots_text = "/".join(str(n) for n in robots)
            ax.plot(
                [100 * h for h, _, _ in pts], [f for _, f, _ in pts],
                marker="os^vD"[i % 5], linewidth=2, label=f"{label} ({robots_text} robots)",
            )  # fmt: skip
        ax.axhline(
            TARGET_FALLS_PER_10MIN, color="red", linestyle="--", linewidth=1.2,
            label=f"target: {TARGET_FALLS_PER_10MIN:g} per 10 min",
        )  # fmt: skip
        ax.set_title(f"stairs {direction}")
        ax.set_xlabel("step height [cm]")
        ax.set_xticks([round(100 * h) for h in heights])
        scale = falls_axis(ax, top, "y")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"falls per 10 min of walking{scale}")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 3), fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.09 * (1 + (len(names) - 1) // 3), 1, 1))
    return save_figure(fig, path)


def write_sweep(
    out_dir: str | Path, rows: Sequence[dict[str, Any]], meta: dict[str, Any]
) -> tuple[Path, Path]:
    """``step_sweep.json`` (``rows``, ``pooled``, ``meta``) and ``step_sweep.md`` (the table)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    js = out / "step_sweep.json"
    js.write_text(json.dumps({"rows": list(rows), "pooled": pooled(rows), **meta}, indent=2))
    md = out / "step_sweep.md"
    md.write_text(
        "Falls per 10 min / tracking error [m/s], seeds pooled\n\n" + markdown_table(rows) + "\n"
    )
    return js, md


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of an earlier ``step_sweep.json``. Rows from before sweeps chose the grid were
    measured on their policies' own, which was the terrain's ``resolution`` (its default, or
    the sweep's ``--set terrain.resolution=``)."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or "rows" not in data:
        raise ValueError(f"{path}: not a step_sweep.json (no 'rows')")
    grid = TerrainConfig().resolution
    for override in data.get("overrides") or ():
        key, _, value = override.partition("=")
        if key.strip() == "terrain.resolution":
            grid = float(value)
    return [{"grid": grid, **row} for row in data["rows"]]
