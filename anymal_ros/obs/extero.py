"""Exteroception geometry: where the height samples around each foot lie and how their
heights are reported (numpy only; shared by the simulator and the ROS node).

The samples are the rings of :func:`anymal_ros.contract.height_sample_offsets` centred on
each foot and turned by the base's yaw (not its roll/pitch), so "ahead of the foot" always
means "ahead of the robot's heading". Heights are terrain height minus the foot's height,
``[N, 4, 52]`` in metres (positive: terrain above the foot).

:func:`bilinear_heights` samples any regular elevation grid (a simulator height field or a
robot's elevation map) at those points, vectorised over robots, feet and points.
"""

from __future__ import annotations

import numpy as np

from anymal_ros.contract import NUM_LEGS, POINTS_PER_FOOT, height_sample_offsets

_OFFSETS = height_sample_offsets().astype(np.float64)  # [52, 2]


def sample_points(foot_pos_xy: np.ndarray, base_yaw: np.ndarray) -> np.ndarray:
    """World x/y of every height sample.

    Args:
        foot_pos_xy: ``[N, 4, 2]`` foot positions (m, world frame), feet in LEGS order.
        base_yaw: ``[N]`` base heading (rad).

    Returns:
        ``[N, 4, 52, 2]`` sample positions (m, world frame).
    """
    foot = np.asarray(foot_pos_xy, dtype=np.float64)
    yaw = np.asarray(base_yaw, dtype=np.float64)
    if foot.ndim != 3 or foot.shape[1:] != (NUM_LEGS, 2):
        raise ValueError(f"foot_pos_xy: expected [N, {NUM_LEGS}, 2], got {foot.shape}")
    if yaw.shape != (foot.shape[0],):
        raise ValueError(f"base_yaw: expected [{foot.shape[0]}], got {yaw.shape}")
    c, s = np.cos(yaw), np.sin(yaw)
    ox, oy = _OFFSETS[:, 0], _OFFSETS[:, 1]
    dx = c[:, None] * ox - s[:, None] * oy  # [N, 52]
    dy = s[:, None] * ox + c[:, None] * oy
    out = np.empty((foot.shape[0], NUM_LEGS, POINTS_PER_FOOT, 2))
    out[..., 0] = foot[:, :, None, 0] + dx[:, None, :]
    out[..., 1] = foot[:, :, None, 1] + dy[:, None, :]
    return out


def relative_heights(ground_heights: np.ndarray, foot_z: np.ndarray) -> np.ndarray:
    """Heights of the samples relative to their foot: ``[N, 4, 52]`` float32 (m).

    Args:
        ground_heights: ``[N, 4, 52]`` terrain height (m, world z) at each sample point.
        foot_z: ``[N, 4]`` height of each foot's sole (m, world z).
    """
    g = np.asarray(ground_heights)
    f = np.asarray(foot_z)
    if g.shape[1:] != (NUM_LEGS, POINTS_PER_FOOT) or f.shape != g.shape[:2]:
        raise ValueError(f"shapes do not match: ground {g.shape}, foot_z {f.shape}")
    return (g - f[:, :, None]).astype(np.float32)


def bilinear_heights(
    grid: np.ndarray,
    origin: tuple[float, float],
    resolution: float,
    xy: np.ndarray,
    outside: float | None = None,
) -> np.ndarray:
    """Bilinear interpolation of a regular elevation grid at many points.

    Args:
        grid: ``[rows, cols]`` heights (m); row index grows with y, column index with x.
        origin: world (x, y) of ``grid[0, 0]``.
        resolution: grid spacing (m).
        xy: ``[..., 2]`` query points (m, world frame); points off the grid take the
            height of the nearest edge.
        outside: if given, the height of points beyond the outer cells' edges (half a cell
            past the outermost cell centres) instead of the nearest edge's, e.g. NaN for a
            map that ends where its data ends.

    Returns:
        ``[...]`` heights (m).
    """
    rows, cols = grid.shape
    u = (xy[..., 0] - origin[0]) / resolution
    v = (xy[..., 1] - origin[1]) / resolution
    off = None
    if outside is not None:  # |u - centre| > half the width: beyond the outer cell edges
        off = (np.abs(u - 0.5 * (cols - 1)) > 0.5 * cols) | (
            np.abs(v - 0.5 * (rows - 1)) > 0.5 * rows
        )
    u = np.clip(u, 0.0, cols - 1.000001)
    v = np.clip(v, 0.0, rows - 1.000001)
    c0 = u.astype(np.intp)
    r0 = v.astype(np.intp)
    fu = u - c0
    fv = v - r0
    flat = grid.reshape(-1)
    i00 = r0 * cols + c0
    h00 = flat[i00]
    h01 = flat[i00 + 1]
    h10 = flat[i00 + cols]
    h11 = flat[i00 + cols + 1]
    top = h00 + (h01 - h00) * fu
    bottom = h10 + (h11 - h10) * fu
    heights = top + (bottom - top) * fv
    return heights if off is None else np.where(off, outside, heights)
