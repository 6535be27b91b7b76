"""sim_node's elevation map: geometry, the mapping errors, and the GridMap it publishes."""

from __future__ import annotations

import numpy as np
import pytest

from anymal_ros.config.noise import HeightNoiseConfig
from anymal_ros.sim.elevation_map import (
    MapErrorConfig,
    MapErrors,
    cell_centres,
    map_cells,
    map_centre,
    shadowed,
    terrain_map,
)

RES = 0.04


class Step:
    """Terrain: flat at 0, a 0.2 m rise for x >= 1 m."""

    def heights(self, xy: np.ndarray) -> np.ndarray:
        return np.where(xy[..., 0] >= 1.0, 0.2, 0.0)


def test_map_geometry_follows_the_base_on_the_cell_grid():
    assert map_cells(8.0, 0.04) == 200 and map_cells(1.0, 0.3) == 4
    assert map_centre(np.array([1.013, -0.379, 0.5]), RES) == pytest.approx((1.0, -0.36))
    c = cell_centres((1.0, -0.36), 4, RES)
    assert c.shape == (4, 4, 2)
    np.testing.assert_allclose(c[0, :, 0], 1.0 + RES * np.array([-1.5, -0.5, 0.5, 1.5]))
    np.testing.assert_allclose(c[:, 0, 1], -0.36 + RES * np.array([-1.5, -0.5, 0.5, 1.5]))
    grid, centre = terrain_map(Step(), np.array([0.98, 0.0, 0.5]), 10, RES)
    assert centre == pytest.approx((0.96, 0.0))
    assert (grid[:, :6] == 0).all() and (grid[:, 6:] == np.float32(0.2)).all()


def test_no_errors_is_the_true_terrain():
    assert not MapErrorConfig().active and not MapErrorConfig.from_mode("none").active
    assert MapErrorConfig(hole_radius=0.3).active and MapErrorConfig.from_mode("nominal").active
    with pytest.raises(ValueError, match="'none' or one of"):
        MapErrorConfig.from_mode("loud")


def test_hole_under_the_robot():
    errors = MapErrors(MapErrorConfig(hole_radius=0.4))
    base = np.array([0.2, 0.1, 0.5])
    grid, centre = terrain_map(Step(), base, 50, RES, errors)
    d = np.linalg.norm(cell_centres(centre, 50, RES) - base[:2], axis=-1)
    assert np.isnan(grid[d < 0.4]).all() and not np.isnan(grid[d >= 0.4]).any()


def test_shadows_fall_behind_a_rise_not_in_front_of_it():
    base = np.array([0.0, 0.0, 0.1])  # sensor at 0.4 m, looking at a 0.2 m step at x = 1 m
    centres = cell_centres((0.0, 0.0), 100, RES)
    # A ledge: 0.2 m high between 1 and 1.5 m, floor again behind it.
    heights = np.where((centres[..., 0] >= 1.0) & (centres[..., 0] < 1.5), 0.2, 0.0)
    hidden = shadowed(heights, centres, base, 0.3)
    row = hidden[50]  # y ~ 0
    x = centres[50, :, 0]
    assert not row[(x > 0) & (x < 1.5)].any(), "the floor in front and the ledge are visible"
    assert row[(x > 1.6) & (x < 1.9)].all(), "the floor right behind the ledge is hidden"
    assert not shadowed(np.zeros_like(heights), centres, base, 0.3).any()


def test_noise_mode_levels_and_drift():
    noise = HeightNoiseConfig()
    errors = MapErrors(MapErrorConfig.from_mode("noisy"), seed=3)
    grid, _ = terrain_map(Step(), np.zeros(3), 200, RES, errors)
    missing = np.isnan(grid).mean()
    assert missing == pytest.approx(noise.noisy.missing_prob, abs=0.01)
    flat = grid[:, :90]  # x < 1 m: true height 0, plus the episode offset and cell noise
    flat = flat[~np.isnan(flat)] - np.float32(errors.offset_z)
    # Outliers are +-U(0.3, 1.0) m (plus the cell noise): beyond 0.45 m lie 0.55 / 0.7 of them
    # and practically no plain cell (5.6 sigma).
    far = (np.abs(flat) > 0.45).mean()
    spread = (noise.outlier_max - 0.45) / (noise.outlier_max - noise.outlier_min)
    assert far == pytest.approx(noise.noisy.outlier_prob * spread, abs=0.005)
    sigma = 1.4826 * np.median(np.abs(flat - np.median(flat)))  # robust to the outliers
    assert sigma == pytest.approx(noise.noisy.point_z_std, rel=0.1)
    drift = MapErrors(MapErrorConfig(drift_xy=0.1, drift_z=0.05), seed=0)
    steps = []
    for _ in range(400):
        before = (drift.offset_xy.copy(), drift.offset_z)
        drift.advance(0.25)
        steps.append([*(drift.offset_xy - before[0]), drift.offset_z - before[1]])
    std = np.std(steps, axis=0)
    np.testing.assert_allclose(std, [0.05, 0.05, 0.025], rtol=0.15)  # drift * sqrt(0.25 s)
    shifted = MapErrors(MapErrorConfig(drift_xy=0.1), seed=0)
    shifted.offset_xy = np.array([0.2, 0.0])
    grid, centre = terrain_map(Step(), np.zeros(3), 100, RES, shifted)
    x = cell_centres(centre, 100, RES)[50, :, 0]
    assert (grid[50][x >= 1.2] == np.float32(0.2)).all() and (grid[50][x < 1.2] == 0).all()


@pytest.mark.ros
def test_sim_node_publishes_a_robot_centric_grid_map_late_by_its_latency(ros):
    pytest.importorskip("grid_map_msgs.msg", reason="make install builds them")
    from grid_map_msgs.msg import GridMap
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import qos_profile_sensor_data

    from anymal_ros.nodes.sim_node import SimNode
    from anymal_ros.ros_io.grid_map import decode_grid_map

    overrides = {"elevation_map_size": 3.0, "map_latency": 0.3, "map_hole_radius": 0.3}
    sim = ros.add(
        SimNode(
            context=ros.context,
            parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
        )
    )
    probe = ros.add(Node("probe", context=ros.context))
    maps = []
    probe.create_subscription(
        GridMap, "/elevation_map", lambda m: maps.append((m, probe.get_clock().now())),
        qos_profile_sensor_data,
    )  # fmt: skip
    assert ros.spin_until(lambda: len(maps) >= 5, 10.0)
    msg, arrived = maps[-1]
    m = decode_grid_map(msg)
    assert m.frame_id == "odom" and m.shape == (76, 76) and m.resolution == 0.04
    with sim.lock:
        base = sim.robot.state().base_pos
    centre = m.origin[0] + 37.5 * RES, m.origin[1] + 37.5 * RES
    assert np.hypot(centre[0] - base[0], centre[1] - base[1]) < 0.1
    assert np.nanmax(np.abs(m.grid)) < 1e-6  # flat ground
    assert np.isnan(m.heights(base[None, :2]))[0], "a hole under the robot"
    late = (arrived.nanoseconds * 1e-9) - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)
    assert 0.25 < late < 0.6  # three map periods of 0.1 s, plus delivery
