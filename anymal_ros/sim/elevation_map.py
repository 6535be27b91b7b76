"""A robot-centric elevation map of the simulator's terrain, optionally with the errors a real
mapping pipeline makes (numpy only; the simulator node publishes it as a GridMap).

The map is a square of ``cells x cells`` at ``resolution``, axis-aligned with the world
(odometry) frame, centred on the base snapped to the cell grid (as elevation_mapping_cupy
moves its map), each cell holding the terrain height at its centre.

:class:`MapErrors` speaks the height-noise model's language
(:class:`~anymal_ros.config.noise.NoiseLevels` of a mode of
:class:`~anymal_ros.config.noise.HeightNoiseConfig`): per episode the whole map is offset
(``episode_xy_std``, ``episode_z_std``), every cell gets ``point_z_std`` noise, ``outlier_prob``
of the cells an outlier of +-U(outlier_min, outlier_max), ``missing_prob`` of them no data
(NaN). On top, what a map has that a per-step sample does not: a drift of the whole map (a
random walk in x/y and z, m per sqrt(s)), no data under the robot (its body hides the ground
from its sensors) and behind steps (cells a sensor above the base cannot see past a rise).
Latency is the publisher's part (a map is published ``latency`` after the state it shows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from anymal_ros.config.noise import MODE_NAMES, HeightNoiseConfig, NoiseLevels


def map_cells(size: float, resolution: float) -> int:
    """Cells per side of a ``size`` m square map (at least 2, even: the centre is a corner)."""
    if not (resolution > 0 and size > 0):
        raise ValueError(f"map size and resolution must be > 0, got {size}, {resolution}")
    n = int(round(size / resolution))
    return max(2, n + n % 2)


def map_centre(base_xy: np.ndarray, resolution: float) -> tuple[float, float]:
    """The map centre for a base at ``base_xy``: snapped to the cell grid, so cells stay put
    while the map follows the robot."""
    return (
        float(np.round(base_xy[0] / resolution) * resolution),
        float(np.round(base_xy[1] / resolution) * resolution),
    )


def cell_centres(centre: tuple[float, float], cells: int, resolution: float) -> np.ndarray:
    """``[cells (y), cells (x), 2]`` world x/y of the cell centres (ElevationMap layout)."""
    k = (np.arange(cells) - (cells - 1) / 2.0) * resolution
    x, y = np.meshgrid(centre[0] + k, centre[1] + k)  # rows along y, columns along x
    return np.stack([x, y], axis=-1)


@dataclass(frozen=True)
class MapErrorConfig:
    """Errors of a simulated mapping pipeline; all zero/off = the true terrain."""

    levels: NoiseLevels = field(default_factory=NoiseLevels)
    outlier_min: float = 0.3
    outlier_max: float = 1.0
    drift_xy: float = 0.0  # m / sqrt(s), random walk of the whole map
    drift_z: float = 0.0
    hole_radius: float = 0.0  # m around the base without data (0 = none)
    shadows: bool = False  # no data behind rises, seen from a sensor above the base
    sensor_height: float = 0.3  # m above the base

    @classmethod
    def from_mode(cls, mode: str, **kwargs) -> MapErrorConfig:
        """Levels of a height-noise mode (``none`` or one of MODE_NAMES), plus map extras."""
        if mode == "none":
            return cls(**kwargs)
        if mode not in MODE_NAMES:
            raise ValueError(f"map errors: 'none' or one of {MODE_NAMES}, got {mode!r}")
        noise = HeightNoiseConfig()
        return cls(
            levels=getattr(noise, mode),
            outlier_min=noise.outlier_min,
            outlier_max=noise.outlier_max,
            **kwargs,
        )

    @property
    def active(self) -> bool:
        """Whether any error is on (else the map is the true terrain)."""
        return self != MapErrorConfig(sensor_height=self.sensor_height)


class MapErrors:
    """Draws and applies :class:`MapErrorConfig`; :meth:`reset` starts a new episode."""

    def __init__(self, cfg: MapErrorConfig, seed: int = 0) -> None:
        self.cfg = cfg
        self.rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        lv = self.cfg.levels
        self.offset_xy = self.rng.normal(0.0, lv.episode_xy_std, size=2)
        self.offset_z = float(self.rng.normal(0.0, lv.episode_z_std))

    def advance(self, dt: float) -> None:
        """Drift the whole map for ``dt`` seconds."""
        s = math.sqrt(max(dt, 0.0))
        self.offset_xy = self.offset_xy + self.rng.normal(0.0, self.cfg.drift_xy * s, size=2)
        self.offset_z += float(self.rng.normal(0.0, self.cfg.drift_z * s))

    def lookup_points(self, centres: np.ndarray) -> np.ndarray:
        """Where the terrain is read for cells at ``centres [..., 2]``: a map shifted by
        ``offset_xy`` shows at a cell the terrain ``offset_xy`` away."""
        return centres - self.offset_xy

    def apply(self, heights: np.ndarray, centres: np.ndarray, base_pos: np.ndarray) -> np.ndarray:
        """The map a pipeline would publish from the true ``heights [rows, cols]`` at
        ``centres [rows, cols, 2]`` (read through :meth:`lookup_points`) for a base at
        ``base_pos [3]``: float32, NaN = no data."""
        cfg, lv, rng = self.cfg, self.cfg.levels, self.rng
        out = heights.astype(np.float64)
        if cfg.shadows:
            out[shadowed(heights, centres, base_pos, cfg.sensor_height)] = np.nan
        if cfg.hole_radius > 0:
            d = np.linalg.norm(centres - base_pos[:2], axis=-1)
            out[d < cfg.hole_radius] = np.nan
        out = out + self.offset_z
        if lv.point_z_std > 0:
            out = out + rng.normal(0.0, lv.point_z_std, size=out.shape)
        if lv.outlier_prob > 0 or lv.missing_prob > 0:
            u = rng.random(out.shape)
            outlier = u < lv.outlier_prob
            size = rng.uniform(cfg.outlier_min, cfg.outlier_max, size=out.shape)
            out = np.where(outlier, out + np.where(rng.random(out.shape) < 0.5, -size, size), out)
            out[(u >= lv.outlier_prob) & (u < lv.outlier_prob + lv.missing_prob)] = np.nan
        return out.astype(np.float32)


def shadowed(
    heights: np.ndarray, centres: np.ndarray, base_pos: np.ndarray, sensor_height: float,
    samples: int = 12,
) -> np.ndarray:  # fmt: skip
    """``[rows, cols]`` True where a sensor ``sensor_height`` above the base cannot see the
    cell: some terrain between them (``samples`` points along the ray, nearest cell) rises
    above the line of sight by more than 1 cm."""
    rows, cols = heights.shape
    res = float(centres[0, 1, 0] - centres[0, 0, 0])
    origin = centres[0, 0]
    eye = np.array([base_pos[0], base_pos[1], base_pos[2] + sensor_height])
    hidden = np.zeros(heights.shape, dtype=bool)
    for f in np.arange(1, samples) / samples:
        xy = eye[:2] + f * (centres - eye[:2])
        c = np.clip(np.rint((xy[..., 0] - origin[0]) / res).astype(np.intp), 0, cols - 1)
        r = np.clip(np.rint((xy[..., 1] - origin[1]) / res).astype(np.intp), 0, rows - 1)
        sight = eye[2] + f * (heights - eye[2])
        hidden |= heights[r, c] > sight + 0.01
    return hidden


def terrain_map(
    terrain, base_pos: np.ndarray, cells: int, resolution: float, errors: MapErrors | None = None
) -> tuple[np.ndarray, tuple[float, float]]:
    """(``[cells (y), cells (x)]`` float32 heights, centre (x, y)) of the map around a base at
    ``base_pos [3]`` on ``terrain`` (anything with ``heights(xy [..., 2])``)."""
    centre = map_centre(base_pos, resolution)
    centres = cell_centres(centre, cells, resolution)
    if errors is None:
        return terrain.heights(centres).astype(np.float32), centre
    heights = terrain.heights(errors.lookup_points(centres))
    return errors.apply(heights, centres, np.asarray(base_pos, dtype=np.float64)), centre
