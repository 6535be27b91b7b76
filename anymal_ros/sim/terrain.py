"""Procedural terrain: a grid of tiles (rows = difficulty levels, columns = terrain types)
stored as an elevation grid that becomes a MuJoCo height field, and, when
``sharp_resolution`` is set, finer grids of their own for the stairs and boxes columns.

Every tile's outer edge is at height 0 (pits and hills rise or fall towards a flat platform at
the tile centre; stairs only when their tread divides the platform-to-edge distance, as the
defaults' 30 cm treads divide 3 m), so neighbouring tiles join without cliffs. The same seed
gives the same terrain. Coordinates: ``grid[row, col]`` is the height (m) at world
``x = col * resolution, y = row * resolution``; level ``l``, column ``c`` is centred at
``x = border + (l + 0.5) * tile_size, y = border + (c + 0.5) * tile_size``.

A sharp strip (a run of neighbouring stairs or boxes columns) spans the whole length in x on
its finer grid, a MuJoCo height field of its own; the coarse grid goes to MuJoCo in pieces
between the strips, so no foot is ever tested against two grids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anymal_ros.config.sim import SHARP_TERRAIN_TYPES, TERRAIN_TYPES, TerrainConfig
from anymal_ros.obs.extero import bilinear_heights


@dataclass(frozen=True)
class HeightField:
    """A regular grid of heights, one MuJoCo height field: ``grid[row, col]`` (m) is at world
    ``x = origin[0] + col * resolution, y = origin[1] + row * resolution``."""

    grid: np.ndarray
    origin: tuple[float, float]
    resolution: float

    @property
    def size(self) -> tuple[float, float]:
        """Extent (m) in x and y."""
        rows, cols = self.grid.shape
        return (cols - 1) * self.resolution, (rows - 1) * self.resolution

    def heights(self, xy: np.ndarray) -> np.ndarray:
        return bilinear_heights(self.grid, self.origin, self.resolution, xy)

    def mujoco_data(self) -> tuple[np.ndarray, float, float]:
        """``(normalised data [rows*cols], z_min, z_range)`` as a MuJoCo height field wants."""
        lo, hi = float(self.grid.min()), float(self.grid.max())
        span = max(hi - lo, 1e-3)
        return ((self.grid - lo) / span).ravel().astype(np.float32), lo, span


def _lerp(pair: tuple[float, float], difficulty: float | np.ndarray) -> float | np.ndarray:
    return pair[0] + (pair[1] - pair[0]) * difficulty


class Terrain:
    """The elevation grid, tile layout and height queries.

    Args:
        cfg: terrain settings.
        seed: seed of the random tiles (rough ground, boxes).
    """

    def __init__(self, cfg: TerrainConfig, seed: int):
        self.cfg = cfg
        self.resolution = cfg.resolution
        self.num_levels = cfg.num_levels
        self.num_columns = cfg.num_columns
        self.tile_cells = int(round(cfg.tile_size / cfg.resolution))
        self.border_cells = int(round(cfg.border / cfg.resolution))
        nx = 2 * self.border_cells + self.num_levels * self.tile_cells + 1
        ny = 2 * self.border_cells + self.num_columns * self.tile_cells + 1
        self.grid = np.zeros((ny, nx), dtype=np.float64)
        self.size_x = (nx - 1) * self.resolution
        self.size_y = (ny - 1) * self.resolution
        self.column_types = self._column_types()
        #: ``[levels]`` the difficulty in [0, 1] each level's tiles are built at.
        self.level_difficulty = _lerp(
            cfg.difficulty, np.arange(self.num_levels) / max(self.num_levels - 1, 1)
        )
        self.flat = cfg.kind == "flat"
        #: The sharp strips, each ``(first column, last column, its finer HeightField)``.
        self.sharp_strips: list[tuple[int, int, HeightField]] = []
        if not self.flat:
            self._build(np.random.default_rng(seed))
        centres_x = cfg.border + (np.arange(self.num_levels) + 0.5) * cfg.tile_size
        centres_y = cfg.border + (np.arange(self.num_columns) + 0.5) * cfg.tile_size
        cx, cy = np.meshgrid(centres_x, centres_y, indexing="ij")  # [levels, columns]
        cz = self.heights(np.stack([cx, cy], axis=-1))
        #: ``[levels, columns, 3]`` spawn point (platform centre) of every tile.
        self.tile_origins = np.stack([cx, cy, cz], axis=-1)

    # --- construction ---------------------------------------------------------------------

    def _build(self, rng: np.random.Generator) -> None:
        cfg = self.cfg
        runs = self._sharp_runs()
        fine = cfg.sharp_resolution
        strips = {}
        for first, last in runs:
            rows = int(round((last - first + 1) * cfg.tile_size / fine)) + 1
            cols = int(round(self.size_x / fine)) + 1
            origin = (0.0, cfg.border + first * cfg.tile_size)
            strips[first, last] = HeightField(np.zeros((rows, cols)), origin, fine)
        for level, difficulty in enumerate(self.level_difficulty):
            for col, kind in enumerate(self.column_types):
                run = next(((a, b) for a, b in runs if a <= col <= b), None)
                if run is None:
                    target, res, row0 = self.grid, self.resolution, cfg.border + col * cfg.tile_size
                else:
                    target, res, row0 = strips[run].grid, fine, (col - run[0]) * cfg.tile_size
                cells = int(round(cfg.tile_size / res))
                r0 = int(round(row0 / res))
                c0 = int(round((cfg.border + level * cfg.tile_size) / res))
                target[r0 : r0 + cells + 1, c0 : c0 + cells + 1] = self._make_tile(
                    kind, difficulty, rng, res
                )
        k = int(round(self.resolution / fine)) if runs else 1
        for (first, last), strip in strips.items():
            # The coarse grid keeps a picture of the whole terrain (the strip at its spacing);
            # MuJoCo gets the rows outside the strips (height_fields).
            r0, r1 = self._coarse_rows(first, last)
            self.grid[r0:r1] = strip.grid[: (r1 - r0) * k : k, ::k]
            self.sharp_strips.append((first, last, strip))

    def _coarse_rows(self, first: int, last: int) -> tuple[int, int]:
        """The coarse grid's rows at the edges of columns ``first`` to ``last``."""
        return (self.border_cells + first * self.tile_cells,
                self.border_cells + (last + 1) * self.tile_cells)  # fmt: skip

    def _sharp_runs(self) -> list[tuple[int, int]]:
        """First and last column of every run of neighbouring sharp columns (none when
        ``sharp_resolution`` is 0)."""
        if self.cfg.sharp_resolution <= 0:
            return []
        runs: list[tuple[int, int]] = []
        for col, kind in enumerate(self.column_types):
            if kind not in SHARP_TERRAIN_TYPES:
                continue
            if runs and runs[-1][1] == col - 1:
                runs[-1] = (runs[-1][0], col)
            else:
                runs.append((col, col))
        return runs

    def _column_types(self) -> list[str]:
        props = np.array([self.cfg.proportions.get(t, 0.0) for t in TERRAIN_TYPES])
        cumulative = np.cumsum(props / props.sum())
        out = []
        for col in range(self.num_columns):
            share = (col + 0.5) / self.num_columns
            out.append(TERRAIN_TYPES[int(np.searchsorted(cumulative, share))])
        return out

    def _make_tile(
        self, kind: str, difficulty: float, rng: np.random.Generator, resolution: float
    ) -> np.ndarray:
        cfg = self.cfg
        n = int(round(cfg.tile_size / resolution)) + 1
        coords = (np.arange(n) - (n - 1) / 2) * resolution
        # Chebyshev distance from the tile centre, minus the platform: 0 on the platform.
        dist = np.maximum(np.abs(coords)[:, None], np.abs(coords)[None, :])
        ramp = np.maximum(dist - cfg.platform_size / 2, 0.0)
        edge = cfg.tile_size / 2 - cfg.platform_size / 2
        if kind == "flat":
            return np.zeros((n, n))
        if kind == "rough":
            amp = _lerp(cfg.rough_amplitude, difficulty)
            coarse = rng.uniform(-amp, amp, size=((n + 1) // 2, (n + 1) // 2))
            noise = np.kron(coarse, np.ones((2, 2)))[:n, :n]
            noise[dist <= cfg.platform_size / 2] = 0.0
            return noise * np.clip((cfg.tile_size / 2 - dist) / 0.5, 0.0, 1.0)  # 0 at edges
        if kind in ("slope_up", "slope_down"):
            rise = np.tan(_lerp(cfg.slope, difficulty)) * (ramp - edge)  # -H on platform, 0 at edge
            return rise if kind == "slope_up" else -rise
        if kind in ("stairs_up", "stairs_down"):
            step = _lerp(cfg.step_height, difficulty)
            num_steps = int(np.ceil(edge / cfg.step_width))
            index = np.minimum(np.floor(ramp / cfg.step_width), num_steps)
            rise = step * (index - num_steps)  # platform lowest, outermost step at 0
            return rise if kind == "stairs_up" else -rise
        if kind == "boxes":
            h = _lerp(cfg.box_height, difficulty)
            tile = np.zeros((n, n))
            for _ in range(cfg.num_boxes):
                w, l = (rng.uniform(*cfg.box_size, size=2) / resolution).astype(int) + 1
                r, c = rng.integers(0, n - w), rng.integers(0, n - l)
                tile[r : r + w, c : c + l] = rng.uniform(-h, h)
            tile[dist <= cfg.platform_size / 2] = 0.0
            tile[dist >= cfg.tile_size / 2 - 2 * resolution] = 0.0
            return tile
        raise ValueError(f"unknown terrain type {kind!r}")

    # --- queries --------------------------------------------------------------------------

    def heights(self, xy: np.ndarray) -> np.ndarray:
        """Terrain height (m) at world points ``xy [..., 2]`` (bilinear), shape ``[...]``."""
        if self.flat:
            return np.zeros(xy.shape[:-1])
        out = bilinear_heights(self.grid, (0.0, 0.0), self.resolution, xy)
        for _, _, strip in self.sharp_strips:
            y0 = strip.origin[1]
            inside = (xy[..., 1] > y0) & (xy[..., 1] < y0 + strip.size[1])
            if inside.any():
                out[inside] = strip.heights(xy[inside])
        return out

    def locate(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where world points ``xy [..., 2]`` lie: ``(level [...], column [...] int, both -1
        on the border around the tiles; distance [...] m from the centre of the tile they are
        on, the larger of the two axes', as the tiles' platforms and steps are laid out)``."""
        rel = (xy - self.cfg.border) / self.cfg.tile_size  # in tiles from the first's corner
        level = np.floor(rel[..., 0]).astype(np.intp)
        col = np.floor(rel[..., 1]).astype(np.intp)
        inside = (col >= 0) & (col < self.num_columns)
        inside &= (level >= 0) & (level < self.num_levels)
        from_centre = np.abs(self._from_tile_centre(xy)).max(axis=-1)
        return np.where(inside, level, -1), np.where(inside, col, -1), from_centre

    def outward(self, xy: np.ndarray) -> np.ndarray:
        """``[..., 2]`` unit vectors at world points ``xy [..., 2]`` pointing away from the
        centre of the tile they are on, square to its steps: along the axis of the larger
        offset from the centre (down the steps of stairs down, up those of stairs up)."""
        offset = self._from_tile_centre(xy)
        axis = np.abs(offset).argmax(axis=-1)
        out = np.zeros_like(offset)
        sign = np.where(np.take_along_axis(offset, axis[..., None], -1) < 0, -1.0, 1.0)
        np.put_along_axis(out, axis[..., None], sign, -1)
        return out

    def _from_tile_centre(self, xy: np.ndarray) -> np.ndarray:
        """``[..., 2]`` offsets [m] of world points from the centre of the tile they are on."""
        rel = (xy - self.cfg.border) / self.cfg.tile_size
        return (rel - np.floor(rel) - 0.5) * self.cfg.tile_size

    def height_fields(self) -> list[HeightField]:
        """The MuJoCo height fields: the coarse grid in pieces between the sharp strips (a
        strip shares its edge rows with its neighbours), then the strips."""
        res, pieces, start = self.resolution, [], 0
        bounds = [self._coarse_rows(first, last) for first, last, _ in self.sharp_strips]
        for r0, r1 in [*bounds, (len(self.grid) - 1, None)]:
            if r0 > start:  # at least two rows
                pieces.append(HeightField(self.grid[start : r0 + 1], (0.0, start * res), res))
            start = r1
        return pieces + [strip for _, _, strip in self.sharp_strips]
