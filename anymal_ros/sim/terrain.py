"""Procedural terrain: a grid of tiles (rows = difficulty levels, columns = terrain types)
stored as one elevation grid that becomes a MuJoCo height field.

Every tile's outer edge is at height 0 (pits and hills rise or fall towards a flat platform at
the tile centre), so neighbouring tiles join without cliffs. The same seed gives the same
terrain. Coordinates: ``grid[row, col]`` is the height (m) at world
``x = col * resolution, y = row * resolution``; level ``l``, column ``c`` is centred at
``x = border + (l + 0.5) * tile_size, y = border + (c + 0.5) * tile_size``.
"""

from __future__ import annotations

import numpy as np

from anymal_ros.config.sim import TERRAIN_TYPES, TerrainConfig
from anymal_ros.obs.extero import bilinear_heights


def _lerp(pair: tuple[float, float], difficulty: float) -> float:
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
        self.column_types = self._column_types()
        self.flat = cfg.kind == "flat"
        if not self.flat:
            rng = np.random.default_rng(seed)
            for level in range(self.num_levels):
                difficulty = _lerp(cfg.difficulty, level / max(self.num_levels - 1, 1))
                for col, kind in enumerate(self.column_types):
                    tile = self._make_tile(kind, difficulty, rng)
                    r0 = self.border_cells + col * self.tile_cells
                    c0 = self.border_cells + level * self.tile_cells
                    self.grid[r0 : r0 + self.tile_cells + 1, c0 : c0 + self.tile_cells + 1] = tile
        self.size_x = (nx - 1) * self.resolution
        self.size_y = (ny - 1) * self.resolution
        centres_x = cfg.border + (np.arange(self.num_levels) + 0.5) * cfg.tile_size
        centres_y = cfg.border + (np.arange(self.num_columns) + 0.5) * cfg.tile_size
        cx, cy = np.meshgrid(centres_x, centres_y, indexing="ij")  # [levels, columns]
        cz = self.heights(np.stack([cx, cy], axis=-1))
        #: ``[levels, columns, 3]`` spawn point (platform centre) of every tile.
        self.tile_origins = np.stack([cx, cy, cz], axis=-1)

    # --- construction ---------------------------------------------------------------------

    def _column_types(self) -> list[str]:
        props = np.array([self.cfg.proportions.get(t, 0.0) for t in TERRAIN_TYPES])
        cumulative = np.cumsum(props / props.sum())
        out = []
        for col in range(self.num_columns):
            share = (col + 0.5) / self.num_columns
            out.append(TERRAIN_TYPES[int(np.searchsorted(cumulative, share))])
        return out

    def _make_tile(self, kind: str, difficulty: float, rng: np.random.Generator) -> np.ndarray:
        cfg = self.cfg
        n = self.tile_cells + 1
        coords = (np.arange(n) - (n - 1) / 2) * self.resolution
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
                w, l = (rng.uniform(*cfg.box_size, size=2) / self.resolution).astype(int) + 1
                r, c = rng.integers(0, n - w), rng.integers(0, n - l)
                tile[r : r + w, c : c + l] = rng.uniform(-h, h)
            tile[dist <= cfg.platform_size / 2] = 0.0
            tile[dist >= cfg.tile_size / 2 - 2 * self.resolution] = 0.0
            return tile
        raise ValueError(f"unknown terrain type {kind!r}")

    # --- queries --------------------------------------------------------------------------

    def heights(self, xy: np.ndarray) -> np.ndarray:
        """Terrain height (m) at world points ``xy [..., 2]`` (bilinear), shape ``[...]``."""
        if self.flat:
            return np.zeros(xy.shape[:-1])
        return bilinear_heights(self.grid, (0.0, 0.0), self.resolution, xy)

    def hfield(self) -> tuple[np.ndarray, float, float]:
        """``(normalised data [rows*cols], z_min, z_range)`` for a MuJoCo height field."""
        lo, hi = float(self.grid.min()), float(self.grid.max())
        span = max(hi - lo, 1e-3)
        return ((self.grid - lo) / span).ravel().astype(np.float32), lo, span
