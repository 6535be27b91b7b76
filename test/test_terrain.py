"""The procedural terrain's finer grid for the stairs and boxes columns, checked against the
surface MuJoCo actually collides with (rays cast into the compiled model)."""

import mujoco
import numpy as np
import pytest
from sim_helpers import SMALL_TERRAIN

from anymal_ros.config import from_dict
from anymal_ros.config.sim import SimConfig, TerrainConfig
from anymal_ros.sim.robot import build_world
from anymal_ros.sim.terrain import Terrain

FINE = 0.025
STEP = 0.15  # every level's riser, so the check below knows the height it looks for


def sharp_terrain(sharp_resolution: float) -> Terrain:
    cfg = dict(SMALL_TERRAIN, sharp_resolution=sharp_resolution, step_height=[STEP, STEP])
    return Terrain(from_dict(TerrainConfig, cfg), seed=3)


def surface(model: mujoco.MjModel, data: mujoco.MjData, xy: np.ndarray) -> np.ndarray:
    """Height where a ray cast straight down first meets a static (terrain) geom."""
    out = np.empty(len(xy))
    hit = np.zeros(1, np.int32)
    for i, (x, y) in enumerate(xy):
        top = 10.0
        dist = mujoco.mj_ray(model, data, np.array([x, y, top]), np.array([0.0, 0.0, -1.0]),
                             None, 1, -1, hit)  # fmt: skip
        assert dist >= 0, f"no terrain under ({x:.3f}, {y:.3f})"
        out[i] = top - dist
    return out


def test_mujoco_collides_with_the_fine_grid_on_the_sharp_columns_and_the_coarse_elsewhere():
    terrain = sharp_terrain(FINE)
    (first, last, strip), = terrain.sharp_strips  # fmt: skip
    kinds = terrain.column_types
    assert [kinds[c] for c in range(first, last + 1)] == ["stairs_up", "stairs_down", "boxes"]
    assert strip.resolution == FINE

    sim = from_dict(SimConfig, {"terrain": dict(SMALL_TERRAIN)})
    model, _ = build_world(sim, terrain, num_envs=1)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    # Fine-lattice points (MuJoCo's surface passes through every sample) on lines across all
    # columns, the strip's edges included, at the centre of each level's tiles.
    rng = np.random.default_rng(0)
    ys = np.arange(0.0, terrain.size_y + 1e-9, FINE)
    for level in range(terrain.num_levels):
        x = terrain.tile_origins[level, 0, 0] + FINE * rng.integers(-40, 40)
        xy = np.stack([np.full_like(ys, x), ys], axis=-1)
        np.testing.assert_allclose(surface(model, data, xy), terrain.heights(xy), atol=1e-4)
    # MuJoCo gets the coarse grid in two pieces, around the strip; the coarse grid itself
    # still pictures the whole terrain (the strip at the coarse spacing).
    assert len(terrain.height_fields()) == 3
    k, n = round(terrain.resolution / FINE), terrain.tile_cells
    r0 = terrain.border_cells + first * n
    np.testing.assert_array_equal(terrain.grid[r0 : r0 + n], strip.grid[: n * k : k, ::k])


def test_a_riser_is_one_fine_cell_wide():
    rises = {}
    for spacing in (0.0, FINE):
        terrain = sharp_terrain(spacing)
        col = terrain.column_types.index("stairs_up")
        x0, y0, _ = terrain.tile_origins[1, col]
        xs = x0 + np.arange(0.0, 2.0, 0.005)  # from the platform's centre out across risers
        h = terrain.heights(np.stack([xs, np.full_like(xs, y0)], axis=-1))
        slope = np.diff(h) / 0.005
        # The first riser: the run of samples over which the height climbs.
        start = int(np.argmax(slope > 0.1))
        stop = start + int(np.argmax(slope[start:] <= 0.1))
        rises[spacing] = ((stop - start) * 0.005, h[stop] - h[start])
    assert rises[0.0][0] == pytest.approx(0.1, abs=0.006)  # the coarse grid's ramp
    assert rises[FINE][0] == pytest.approx(FINE, abs=0.006)
    for _, height in rises.values():
        assert height == pytest.approx(STEP, abs=1e-6)


def test_the_columns_off_the_strip_are_unchanged():
    coarse, sharp = sharp_terrain(0.0), sharp_terrain(FINE)
    first = sharp.sharp_strips[0][0]
    edge = coarse.border_cells + first * coarse.tile_cells  # the strip's first row
    np.testing.assert_array_equal(sharp.grid[:edge], coarse.grid[:edge])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"sharp_resolution": 0.1}, "sharp_resolution must be 0 (off) or resolution (0.1) / n"),
        ({"sharp_resolution": -0.01}, "sharp_resolution must be 0 (off)"),
        ({"sharp_resolution": 0.04}, "sharp_resolution must be 0 (off)"),
        (
            {"sharp_resolution": 0.03},
            "tile_size (4.0 m) must be a whole number of sharp_resolution cells",
        ),
        ({"resolution": 0.3}, "tile_size (4.0 m) must be a whole number of resolution cells"),
    ],
)
def test_bad_spacings_are_named(change, message):
    with pytest.raises(ValueError) as err:
        from_dict(TerrainConfig, dict(SMALL_TERRAIN, **change))
    assert message in str(err.value)
