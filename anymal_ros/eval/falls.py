"""Who fell, and in what conditions: one record per fall of an evaluation cell.

A fall count says how often a policy falls, not when. For every robot that falls in its one
evaluation episode, :class:`FallLog` keeps when (``time_s``), how (``cause``: ``trunk`` with
the trunk or a hip on the terrain, ``tilt`` past ``termination.max_tilt``) and the conditions
its episode ran in: its fixed command and what the domain randomisation drew for it (mean foot
friction, motor strength, mass added to the trunk, actuation latency in physics steps). It
also keeps the mean of those conditions over all the cell's robots, so that :func:`summary`
can set the robots that fell against the field as a whole (``anymal-ros falls``), and how
many robots it commanded in each band of forward speed (``robots_by_vx``), so that a fall rate
per band can be read: a mean speed hides whether the fast robots that fall walk forwards or
backwards. Each record also says where the robot fell (``place``, an index into PLACES:
on its start tile's flat centre, on the steps or slope around it walking away from the centre
or towards it, on another tile), how far from its tile's centre (``from_centre``, m, along the
larger axis, as steps are laid out) and how fast it had been moving over the ground
(``ground_speed``) and away from that centre (``outward_speed``, m/s; None for a fall in the
first quarter second), over a second ending a quarter second before the fall (the tumble
left out): whether robots fall walking down the stairs or up them, and at what speed. Against
that, it measures every robot the same way on every step of its episode (``walking_by_place``:
the robot-seconds spent in each place and the mean ground speed there), so that the fallers'
speed can be set against the speed all robots walk at in the same place: whether they fell
hurrying or stumbling.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from anymal_ros.config.sim import TerrainConfig
from anymal_ros.eval.figures import pyplot, save_figure
from anymal_ros.eval.tables import pipe_table

if TYPE_CHECKING:
    from anymal_ros.sim.env import QuadrupedVecEnv

#: Conditions averaged over robots: command speed and turn rate as magnitudes (their signs
#: average out), the randomised physics as drawn.
CONDITIONS: tuple[str, ...] = (
    "speed", "turn_rate", "friction", "motor_strength", "added_mass", "latency_steps",
)  # fmt: skip
#: What each summary column means, for its header.
CONDITION_LABELS: dict[str, str] = {
    "speed": "command speed [m/s]",
    "turn_rate": "command turn [rad/s]",
    "friction": "foot friction",
    "motor_strength": "motor strength",
    "added_mass": "added trunk mass [kg]",
    "latency_steps": "latency [physics steps]",
}
#: Bands of the commanded forward speed vx [m/s]: their inner edges, and a label for each.
VX_EDGES: tuple[float, ...] = (-0.6, -0.2, 0.2, 0.6)
VX_BANDS: tuple[str, ...] = ("< -0.6", "-0.6 to -0.2", "-0.2 to 0.2", "0.2 to 0.6", ">= 0.6")
#: Where a robot fell, the names of a record's ``place``: on a field of stairs down, walking
#: out is walking down.
PLACES: tuple[str, ...] = ("platform", "walking out", "walking in", "another tile")
#: The speeds before a fall are taken from SPEED_WINDOW_S[0] to [1] seconds before it.
SPEED_WINDOW_S: tuple[float, float] = (1.25, 0.25)
#: Cells are grouped by those of these keys they have (scorecard cells or `eval` rows).
GROUP_KEYS: tuple[str, ...] = ("role", "row", "terrain", "noise", "physics")


class FallLog:
    """The falls of one cell. Build it right after the cell's ``env.reset()``: the conditions
    are read then, as drawn for every robot's first (and only counted) episode."""

    def __init__(self, env: QuadrupedVecEnv) -> None:
        r = env.randomizer
        command = np.array(env.commands.command, dtype=float)
        self._conditions = {
            "vx": command[:, 0],
            "vy": command[:, 1],
            "yaw_rate": command[:, 2],
            "speed": np.hypot(command[:, 0], command[:, 1]),
            "turn_rate": np.abs(command[:, 2]),
            "friction": r.foot_friction.mean(axis=1).copy(),
            "motor_strength": r.motor_strength[:, 0].copy(),
            "added_mass": env.model.body_mass[env.index.base_body] - r.nominal_mass,
            "latency_steps": r.latency.astype(float),
        }
        self._vx_band = np.digitize(command[:, 0], VX_EDGES)
        self._records: list[dict[str, Any]] = []
        self._terrain, self._dt = env.terrain, env.control_dt
        self._tile_centre = env.origins[:, :2].copy()
        self._lags = [round(s / env.control_dt) for s in SPEED_WINDOW_S]  # in control steps
        #: The base's planar positions of the last steps, newest last.
        self._track = deque([env.start_xy.copy()], maxlen=self._lags[0] + 1)
        #: Per place, the steps robots in their counted episode spent there and the sum of
        #: their ground speeds (measured as before a fall).
        self._steps_at = np.zeros(len(PLACES), dtype=np.int64)
        self._speed_sum_at = np.zeros(len(PLACES))

    def update(
        self,
        fell: np.ndarray,
        trunk_down: np.ndarray,
        time_s: float,
        base_xy: np.ndarray,
        walking: np.ndarray,
    ) -> None:
        """Record the robots of the ``[N]`` mask ``fell`` (those falling this step);
        ``trunk_down``: which of all robots have the trunk or a hip on the terrain; ``base_xy
        [N, 2]``: where the bases are (called every step: it keeps the last second's path);
        ``walking [N]``: the robots still in their counted episode, this step included."""
        self._track.append(np.array(base_xy, dtype=float))
        _, _, from_centre = self._terrain.locate(self._track[-1])
        speeds = self._speeds()
        if speeds is None:  # too early for a speed: place them as walking out
            ground = outward = None
            place = self._places(from_centre, np.zeros(len(base_xy)))
        else:
            ground, outward = speeds
            place = self._places(from_centre, outward)
            np.add.at(self._steps_at, place[walking], 1)
            np.add.at(self._speed_sum_at, place[walking], ground[walking])
        for i in np.flatnonzero(fell):
            record: dict[str, Any] = {"robot": int(i), "time_s": round(float(time_s), 3),
                                      "cause": "trunk" if trunk_down[i] else "tilt"}  # fmt: skip
            for name in ("vx", "vy", "yaw_rate", *CONDITIONS):
                record[name] = round(float(self._conditions[name][i]), 3)
            record["vx_band"] = int(self._vx_band[i])  # an index into VX_BANDS
            record["place"] = int(place[i])
            record["from_centre"] = round(float(from_centre[i]), 3)
            for name, speed in (("ground_speed", ground), ("outward_speed", outward)):
                record[name] = None if speed is None else round(float(speed[i]), 3)
            self._records.append(record)

    def _speeds(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``[N]`` ground and outward speeds [m/s] over SPEED_WINDOW_S before now (outward:
        away from the centre of the tile each robot is on now); None before the window's late
        end has passed."""
        early, late = (min(lag, len(self._track) - 1) for lag in self._lags)
        if early <= late:
            return None
        moved = self._track[-1 - late] - self._track[-1 - early]
        seconds = (early - late) * self._dt
        away = np.einsum("ij,ij->i", moved, self._terrain.outward(self._track[-1]))
        return np.linalg.norm(moved, axis=1) / seconds, away / seconds

    def _places(self, from_centre: np.ndarray, outward_speed: np.ndarray) -> np.ndarray:
        """``[N]`` indices into PLACES of where the robots are now, given their distances from
        the centre of the tile they are on (:meth:`Terrain.locate`) and outward speeds."""
        xy = self._track[-1]
        elsewhere = np.abs(xy - self._tile_centre).max(axis=1) >= self._terrain.cfg.tile_size / 2
        on_steps = np.where(outward_speed < 0, PLACES.index("walking in"),
                            PLACES.index("walking out"))  # fmt: skip
        on_tile = np.where(
            from_centre <= self._terrain.cfg.platform_size / 2, PLACES.index("platform"), on_steps
        )
        return np.where(elsewhere, PLACES.index("another tile"), on_tile)

    @property
    def count(self) -> int:
        """Falls recorded so far (a robot falls at most once: it has one episode)."""
        return len(self._records)

    @property
    def trunk_count(self) -> int:
        """Of them, those with the trunk or a hip on the terrain."""
        return sum(r["cause"] == "trunk" for r in self._records)

    def result(self) -> dict[str, Any]:
        """``fall_log`` (the records), ``conditions`` (each condition's mean over all the
        cell's robots), ``robots_by_vx`` (robots per band of VX_BANDS) and
        ``walking_by_place`` (per place of PLACES ``[robot-seconds there, mean ground speed
        or None]``)."""
        means = {name: round(float(np.mean(self._conditions[name])), 4) for name in CONDITIONS}
        by_vx = np.bincount(self._vx_band, minlength=len(VX_BANDS)).tolist()
        walking = [
            [round(float(n * self._dt), 2), round(float(total / n), 4) if n else None]
            for n, total in zip(self._steps_at, self._speed_sum_at, strict=True)
        ]
        return {"fall_log": list(self._records), "conditions": means, "robots_by_vx": by_vx,
                "walking_by_place": walking}  # fmt: skip


def fall_step(record: Mapping[str, Any], control_dt: float, steps: int) -> int:
    """The control step (0-based) a fall record was taken on, within a trace of ``steps``:
    its ``time_s`` is the time at the end of that step, rounded to the millisecond."""
    return min(int(round(record["time_s"] / control_dt)) - 1, steps - 1)


def summary(cells: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per group of cells (role, field, heights, physics; pooled over seeds): ``falls``,
    ``trunk`` (those with the trunk or a hip down), ``robots``, and per condition the mean
    over the robots that fell (``fell/<name>``, None without falls) and over all
    (``all/<name>``); ``by_vx``: per band of VX_BANDS ``[falls, robots]`` (None unless every
    cell of the group counted its robots by band); ``by_place``: per place of PLACES ``[falls,
    their mean ground speed before falling or None]`` (None unless every fall has a place);
    ``walking_by_place``: per place ``[robot-seconds there, all robots' mean ground speed or
    None]`` (None unless every cell measured it). Cells without a fall log (files written
    before it) are left out."""
    out = []
    for group in _grouped(cells):
        key = _group_key(group[0])
        log = [f for c in group for f in c["fall_log"]]
        robots = sum(int(c["episodes"]) for c in group)
        row: dict[str, Any] = {**dict(key), "robots": robots, "falls": len(log),
                               "trunk": sum(f["cause"] == "trunk" for f in log)}  # fmt: skip
        for name in CONDITIONS:
            overall = sum(c["conditions"][name] * int(c["episodes"]) for c in group)
            row[f"all/{name}"] = overall / max(robots, 1)
            row[f"fell/{name}"] = float(np.mean([f[name] for f in log])) if log else None
        row["by_vx"] = None
        if all("robots_by_vx" in c for c in group):
            robots_by = np.sum([c["robots_by_vx"] for c in group], axis=0)
            falls_by = np.bincount([f["vx_band"] for f in log], minlength=len(VX_BANDS))
            row["by_vx"] = [[int(f), int(r)] for f, r in zip(falls_by, robots_by, strict=True)]
        row["by_place"] = None
        if all("place" in f for f in log):
            row["by_place"] = []
            for place in range(len(PLACES)):
                there = [f for f in log if f["place"] == place]
                speeds = [f["ground_speed"] for f in there if f["ground_speed"] is not None]
                row["by_place"].append([len(there), float(np.mean(speeds)) if speeds else None])
        row["walking_by_place"] = None
        if all("walking_by_place" in c for c in group):
            seconds = np.sum([[s for s, _ in c["walking_by_place"]] for c in group], axis=0)
            metres = np.sum(
                [[s * (v or 0.0) for s, v in c["walking_by_place"]] for c in group], axis=0
            )
            row["walking_by_place"] = [
                [float(t), float(m / t) if t > 0 else None]
                for t, m in zip(seconds, metres, strict=True)
            ]
        out.append(row)
    return out


def _group_key(cell: Mapping[str, Any]) -> tuple:
    """``((key, value), ...)`` of the GROUP_KEYS a cell has: a scorecard's row names its
    terrain; an `eval` row has the terrain alone."""
    named = [k for k in GROUP_KEYS if k in cell and not (k == "terrain" and "row" in cell)]
    return tuple((k, cell[k]) for k in named)


def row_name(cell: Mapping[str, Any]) -> str:
    """A scorecard cell's row, or an `eval` row's terrain."""
    return str(cell.get("row", cell.get("terrain", "")))


def pool_rows(cells: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``cells`` relabelled so that :func:`summary` sums their rows into one per role, noise
    and physics, named after the rows it holds (``"stairs 17 cm up + stairs 17 cm down"``)."""

    def group(c: Mapping[str, Any]) -> tuple:
        return tuple(c.get(k) for k in GROUP_KEYS if k not in ("row", "terrain"))

    names: dict[tuple, list[str]] = {}
    for c in cells:
        held = names.setdefault(group(c), [])
        if row_name(c) not in held:
            held.append(row_name(c))
    return [{**c, "row" if "row" in c else "terrain": " + ".join(names[group(c)])} for c in cells]


def _group_table(
    rows: Sequence[Mapping[str, Any]],
    head: Sequence[str],
    cells: Callable[[Mapping[str, Any]], list[str]],
) -> str:
    """A markdown table of :func:`summary`'s rows: the group keys they have, then ``head``
    with each row's ``cells(row)``."""
    keys = [k for k in GROUP_KEYS if any(k in r for r in rows)]
    return pipe_table(
        [*keys, *head], ([*(str(r.get(k, "")) for k in keys), *cells(r)] for r in rows)
    )


def markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """:func:`summary`'s rows as a table: each condition as ``fell / all``."""

    def cells(r: Mapping[str, Any]) -> list[str]:
        out = [f"{r['falls']} ({r['trunk']}) / {r['robots']}"]
        for n in CONDITIONS:
            fell = r[f"fell/{n}"]
            out.append(f"{'-' if fell is None else f'{fell:.2f}'} / {r[f'all/{n}']:.2f}")
        return out

    head = ["falls (trunk) / robots", *(CONDITION_LABELS[n] for n in CONDITIONS)]
    return _group_table(rows, head, cells)


def markdown_by_vx(rows: Sequence[Mapping[str, Any]]) -> str:
    """:func:`summary`'s rows that counted their robots by forward command: per band of
    VX_BANDS the falls of the robots commanded in it, of how many (empty without any)."""
    rows = [r for r in rows if r.get("by_vx") is not None]
    if not rows:
        return ""
    head = [f"vx {band} m/s" for band in VX_BANDS]
    return _group_table(rows, head, lambda r: [f"{f} / {n}" for f, n in r["by_vx"]])


def markdown_by_place(rows: Sequence[Mapping[str, Any]]) -> str:
    """:func:`summary`'s rows whose falls have a place: per place of PLACES the falls there,
    with their mean ground speed before falling, and after ``all`` every robot's mean ground
    speed there, measured the same way (where the cells measured it; empty without any)."""
    rows = [r for r in rows if r.get("by_place") is not None]
    if not rows:
        return ""

    def cells(r: Mapping[str, Any]) -> list[str]:
        walking = r.get("walking_by_place") or [[0.0, None]] * len(PLACES)
        out = []
        for (n, speed), (_, everyone) in zip(r["by_place"], walking, strict=True):
            said = [f"{speed:.2f}"] if speed is not None else []
            said += [f"all {everyone:.2f}"] if everyone is not None else []
            out.append(f"{n} ({'; '.join(said)})" if said else str(n))
        return out

    return _group_table(rows, PLACES, cells)


def plot_places(
    cells: Sequence[Mapping[str, Any]], path: str | Path, terrain: TerrainConfig | None = None
) -> Path | None:
    """Where on their start tiles the robots of ``cells`` fell: per group of :func:`summary`
    (a panel each), the falls by distance from the tile's centre, walking out and walking in
    apart, with the platform's edge and, on stairs, the risers of ``terrain`` (the default
    field's) marked. None, and no file, if no fall has a place."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for group in _grouped(cells):
        log = [f for c in group for f in c["fall_log"]]
        if log and all("place" in f for f in log):
            groups[", ".join(str(v) for _, v in _group_key(group[0]))] = log
    if not groups:
        return None
    terrain = terrain or TerrainConfig()
    edge, half = terrain.platform_size / 2, terrain.tile_size / 2
    bins = np.arange(0.0, half + 1e-9, terrain.step_width / 3)
    plt = pyplot()
    fig, axes = plt.subplots(len(groups), 1, figsize=(8, 2.2 * len(groups) + 0.6), squeeze=False)
    for ax, (name, log) in zip(axes[:, 0], groups.items(), strict=True):
        for place, color in (("walking out", "tab:red"), ("walking in", "tab:blue")):
            at = [f["from_centre"] for f in log if PLACES[f["place"]] == place]
            ax.hist(at, bins=bins, color=color, alpha=0.6, label=f"{place} ({len(at)})")
        platform = sum(PLACES[f["place"]] == "platform" for f in log)
        beyond = sum(PLACES[f["place"]] == "another tile" for f in log)
        for x in np.arange(edge, half, terrain.step_width):
            ax.axvline(x, color="0.8", lw=0.6, zorder=0)
        ax.axvline(edge, color="0.3", lw=1.0, ls="--")
        ax.set_title(f"{name}: {platform} on the platform, {beyond} on another tile", fontsize=9)
        ax.set_ylabel("falls")
        ax.legend(fontsize=8, loc="upper right")
    axes[-1, 0].set_xlabel(
        "distance from the start tile's centre [m] (dashed: the platform's edge; grey: risers)"
    )
    fig.tight_layout()
    return save_figure(fig, path)


def _grouped(cells: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """The cells of each of :func:`summary`'s groups, in its order."""
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for c in cells:
        if "fall_log" in c and "conditions" in c:
            groups.setdefault(_group_key(c), []).append(c)
    return list(groups.values())
