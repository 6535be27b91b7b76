"""Settings of a release scorecard (``anymal-ros scorecard``, ``config/scorecard_*.yaml``).

A scorecard is a list of fields (a terrain type with exact dimensions, e.g. 17 cm stairs going
up), each measured with clean and/or noisy heights on fixed seeds, and the bounds a policy
must meet there, plus two comparisons: the student against its teacher on the hardest fields
with noisy heights, and the policy in a second physics setting against its training physics.
Everything that decides a verdict is in the file, so it can be fixed before anyone looks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from anymal_ros.config.noise import MODE_NAMES
from anymal_ros.config.sim import TERRAIN_TYPES

SCORECARD_NOISE_MODES: tuple[str, ...] = ("none", *MODE_NAMES)


@dataclass(frozen=True)
class Bound:
    """``min <= value <= max`` (either end optional)."""

    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        if self.min is None and self.max is None:
            raise ValueError("a bound needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}")

    def holds(self, value: float) -> bool:
        lo_ok = self.min is None or value >= self.min
        return lo_ok and (self.max is None or value <= self.max)

    def text(self) -> str:
        if self.min is not None and self.max is not None:
            return f"{self.min:g} to {self.max:g}"
        return f"<= {self.max:g}" if self.max is not None else f">= {self.min:g}"


@dataclass(frozen=True)
class ScorecardRow:
    """One field: ``terrain`` (a terrain type) shaped by ``sim`` (merged over the policy's
    simulator settings, e.g. ``{terrain: {step_height: [0.17, 0.17]}}``), measured with each
    of ``noise``; ``targets``: metric -> bound (none: reported only)."""

    name: str
    terrain: str
    sim: dict[str, Any] = field(default_factory=dict)
    noise: tuple[str, ...] = ("none",)
    targets: dict[str, Bound] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.terrain not in TERRAIN_TYPES:
            raise ValueError(f"terrain {self.terrain!r} is not one of {list(TERRAIN_TYPES)}")
        bad = [m for m in self.noise if m not in SCORECARD_NOISE_MODES]
        if bad or not self.noise:
            raise ValueError(f"noise {list(self.noise)}: choose from {list(SCORECARD_NOISE_MODES)}")


@dataclass(frozen=True)
class TeacherCheck:
    """On ``rows`` with ``noise`` heights the student falls less often than its teacher
    (both fed the same corrupted heights)."""

    rows: tuple[str, ...] = ()
    noise: str = "noisy"

    def __post_init__(self) -> None:
        if self.noise not in SCORECARD_NOISE_MODES:
            raise ValueError(f"noise {self.noise!r}: choose from {list(SCORECARD_NOISE_MODES)}")


@dataclass(frozen=True)
class SimToSimCheck:
    """On ``row`` with ``noise`` heights, in the second physics setting ``physics`` (a YAML
    merged over the policy's simulator settings, path relative to the scorecard file): the
    tracking error at most ``max_tracking_error_ratio`` times the training physics' one and
    at most ``max_falls`` falls."""

    row: str
    physics: str = "sim_to_sim.yaml"
    noise: str = "none"
    max_tracking_error_ratio: float = 1.5
    max_falls: int = 0

    def __post_init__(self) -> None:
        if self.noise not in SCORECARD_NOISE_MODES:
            raise ValueError(f"noise {self.noise!r}: choose from {list(SCORECARD_NOISE_MODES)}")


@dataclass(frozen=True)
class ScorecardConfig:
    """A whole scorecard: the fields, how many robots on which seeds, the settings every
    field shares (``sim``, merged over each policy's simulator settings) and the checks."""

    rows: tuple[ScorecardRow, ...]
    seeds: tuple[int, ...] = (0,)
    robots_per_seed: int = 90
    episode_length_s: float = 20.0
    sim: dict[str, Any] = field(default_factory=dict)
    teacher_check: TeacherCheck | None = None
    sim_to_sim: SimToSimCheck | None = None

    def __post_init__(self) -> None:
        names = [r.name for r in self.rows]
        if not names:
            raise ValueError("a scorecard needs at least one row")
        if len(set(names)) != len(names):
            raise ValueError(f"row names repeat: {names}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and not empty, got {list(self.seeds)}")
        if self.robots_per_seed < 1 or self.episode_length_s <= 0:
            raise ValueError("robots_per_seed must be >= 1 and episode_length_s > 0")
        named = [*(self.teacher_check.rows if self.teacher_check else ()),
                 *([self.sim_to_sim.row] if self.sim_to_sim else [])]  # fmt: skip
        unknown = [n for n in named if n not in names]
        if unknown:
            raise ValueError(f"checks name rows {unknown} that the scorecard does not have")
        wanted = [(n, self.teacher_check.noise) for n in self.teacher_check.rows] if (
            self.teacher_check) else []  # fmt: skip
        if self.sim_to_sim:
            wanted.append((self.sim_to_sim.row, self.sim_to_sim.noise))
        unmeasured = [f"{n} ({m})" for n, m in wanted if m not in self.row(n).noise]
        if unmeasured:  # a check compares against the policy's own row
            raise ValueError(f"checks need rows with noise modes they do not list: {unmeasured}")

    def row(self, name: str) -> ScorecardRow:
        return next(r for r in self.rows if r.name == name)

    def only(
        self, names: Sequence[str] | None = None, noise: Sequence[str] | None = None
    ) -> ScorecardConfig:
        """The scorecard cut down to the rows ``names`` and the height modes ``noise`` (a
        quick look at a few fields; None: all), with the checks it can still make."""
        every = [r.name for r in self.rows]
        unknown = [n for n in names or () if n not in every]
        if unknown:
            raise ValueError(f"no rows {unknown}; the rows are {every}")
        bad = [m for m in noise or () if m not in SCORECARD_NOISE_MODES]
        if bad:
            raise ValueError(f"noise {bad}: choose from {list(SCORECARD_NOISE_MODES)}")
        rows = []
        for r in self.rows:
            modes = tuple(m for m in r.noise if noise is None or m in noise)
            if (names is None or r.name in names) and modes:
                rows.append(dataclasses.replace(r, noise=modes))
        if not rows:
            raise ValueError(f"none of the rows {list(names or every)} is measured with "
                             f"heights {list(noise or [])}")  # fmt: skip
        kept = {(r.name, m) for r in rows for m in r.noise}
        teacher, sim_to_sim = self.teacher_check, self.sim_to_sim
        if teacher is not None:
            checked = tuple(n for n in teacher.rows if (n, teacher.noise) in kept)
            teacher = dataclasses.replace(teacher, rows=checked) if checked else None
        if sim_to_sim is not None and (sim_to_sim.row, sim_to_sim.noise) not in kept:
            sim_to_sim = None
        return dataclasses.replace(
            self, rows=tuple(rows), teacher_check=teacher, sim_to_sim=sim_to_sim
        )
