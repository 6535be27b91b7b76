"""The policy's height samples from an elevation map, as the simulator takes them from its
terrain (numpy only; the ROS decoding of a map is :mod:`anymal_ros.ros_io.grid_map`).

At each control tick :class:`FootHeightSampler` places the feet by forward kinematics (joint
angles) and the base pose (odometry), lays the 4 x 52 rings around them turned by the base's
yaw (:func:`anymal_ros.obs.extero.sample_points`), interpolates the map bilinearly
(:func:`~anymal_ros.obs.extero.bilinear_heights`) and reports each height relative to its
foot's sole (:func:`~anymal_ros.obs.extero.relative_heights`): the simulator's own functions,
so a map of the simulator's terrain gives the simulator's samples. A point off the map, or
next to a cell without data (NaN), is missing (NaN); the controller feeds the fill value the
student was trained with there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from anymal_ros.contract import height_sample_offsets
from anymal_ros.obs import extero


@dataclass(frozen=True)
class ElevationMap:
    """One elevation layer on a regular grid aligned with its frame's axes.

    ``grid[r, c]`` is the height (m) of the cell centred at ``x = origin[0] + c * resolution,
    y = origin[1] + r * resolution`` of ``frame_id`` (rows grow with y, columns with x: the
    layout :func:`~anymal_ros.obs.extero.bilinear_heights` reads); NaN = no data.
    """

    grid: np.ndarray  # [rows (y), cols (x)] float32
    origin: tuple[float, float]
    resolution: float
    frame_id: str
    stamp: float  # s, the map's header stamp

    @property
    def shape(self) -> tuple[int, int]:
        return self.grid.shape

    def heights(self, xy: np.ndarray) -> np.ndarray:
        """Heights ``[...]`` (m) at points ``xy [..., 2]`` of ``frame_id``, bilinear; NaN off
        the map (beyond its outer cell edges) and next to a cell without data."""
        # Between the outermost cell centres and the edge the nearest edge cell is used.
        return extero.bilinear_heights(self.grid, self.origin, self.resolution, xy, np.nan)


@dataclass(frozen=True)
class MapPlacement:
    """Pose of the map's frame in the odometry frame: a fixed transform (x, y, z, yaw).
    The identity when the map is published in the odometry frame itself."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    yaw: float = 0.0

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.x, self.y, self.z, self.yaw)):
            raise ValueError(f"map placement must be finite, got {self}")

    @property
    def identity(self) -> bool:
        return self.x == self.y == self.z == self.yaw == 0.0

    def to_map(self, xy: np.ndarray) -> np.ndarray:
        """Points ``[..., 2]`` of the odometry frame -> the map frame."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        dx, dy = xy[..., 0] - self.x, xy[..., 1] - self.y
        return np.stack([c * dx + s * dy, -s * dx + c * dy], axis=-1)


def rotation_matrix(quat: np.ndarray) -> np.ndarray:
    """``[3, 3]`` rotation of a unit quaternion (w, x, y, z): one matrix for the four feet is
    a tenth of the cost of rotating them one by one (``quat_rotate``'s cross products) at the
    control tick."""
    w, x, y, z = (float(v) for v in quat)
    # fmt: off
    return np.array([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]).reshape(3, 3)
    # fmt: on


def ring_reach(kinematics, default_joint_pos: np.ndarray) -> float:
    """m; how far from the base (horizontally) the rings reach with the legs at
    ``default_joint_pos [12]``: a robot-centric map must extend at least this far each way."""
    feet = kinematics.forward(np.asarray(default_joint_pos, dtype=np.float64)[None])[0]
    ring = float(np.linalg.norm(height_sample_offsets(), axis=-1).max())
    return float(np.linalg.norm(feet[:, :2], axis=-1).max()) + ring


class FootHeightSampler:
    """Height samples ``[4, 52]`` around the feet from an :class:`ElevationMap`.

    Args:
        kinematics: ``forward(joint_pos [N, 12]) -> [N, 4, 3]`` foot centres, base frame.
        foot_radius: m; a sole is its foot centre's z minus this.
        placement: pose of the map frame in the odometry frame.
    """

    def __init__(
        self, kinematics, foot_radius: float, placement: MapPlacement | None = None
    ) -> None:
        self.kinematics = kinematics
        self.foot_radius = float(foot_radius)
        self.placement = placement or MapPlacement()

    def feet(self, joint_pos: np.ndarray, base_pos: np.ndarray, base_quat: np.ndarray):
        """Foot centres ``[4, 3]`` in the odometry frame; ``base_quat`` is (w, x, y, z)."""
        return self._feet_and_base_rotation(joint_pos, base_pos, base_quat)[0]

    def _feet_and_base_rotation(self, joint_pos, base_pos, base_quat):
        local = self.kinematics.forward(np.asarray(joint_pos, dtype=np.float64)[None])[0]
        rot = rotation_matrix(base_quat)
        return local @ rot.T + np.asarray(base_pos, dtype=np.float64), rot

    def sample(
        self,
        elevation: ElevationMap,
        joint_pos: np.ndarray,
        base_pos: np.ndarray,
        base_quat: np.ndarray,
    ) -> np.ndarray:
        """Heights ``[4, 52]`` float32 relative to each sole (m), NaN = missing.

        Args:
            elevation: the map (in the frame :attr:`placement` places in odometry).
            joint_pos: ``[12]`` joint angles (rad, JOINT_NAMES order).
            base_pos: ``[3]`` base position in the odometry frame (m).
            base_quat: ``[4]`` base orientation (w, x, y, z) in the odometry frame.
        """
        feet, rot = self._feet_and_base_rotation(joint_pos, base_pos, base_quat)
        # The heading from the matrix: the same atan2 as obs.rotations.yaw_from_quat.
        yaw = np.array([math.atan2(rot[1, 0], rot[0, 0])])
        points = extero.sample_points(feet[None, :, :2], yaw)  # [1, 4, 52, 2], odometry frame
        if not self.placement.identity:
            points = self.placement.to_map(points)
        ground = elevation.heights(points) + self.placement.z
        return extero.relative_heights(ground, feet[None, :, 2] - self.foot_radius)[0]
