"""Quaternion helpers shared by the simulator and the ROS node (numpy only, batched).

Quaternions are ``(w, x, y, z)`` (MuJoCo's order; ROS messages are ``(x, y, z, w)``, so a node
reorders before calling these) and rotate vectors from the base frame to the world frame.
"""

from __future__ import annotations

import numpy as np


def quat_rotate_inverse(quat: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """World-frame vectors ``vec [N, 3]`` expressed in the frames given by ``quat [N, 4]``."""
    w = quat[:, :1]
    u = quat[:, 1:]
    # v' = v - 2 w (u x v) + 2 u x (u x v)  (rotation by the conjugate quaternion)
    t = 2.0 * np.cross(u, vec)
    return vec - w * t + np.cross(u, t)


def quat_rotate(quat: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """Base-frame vectors ``vec [N, 3]`` rotated into the world frame by ``quat [N, 4]``."""
    w = quat[:, :1]
    u = quat[:, 1:]
    t = 2.0 * np.cross(u, vec)
    return vec + w * t + np.cross(u, t)


def projected_gravity(quat: np.ndarray) -> np.ndarray:
    """Unit gravity direction (world ``-z``) in the base frame, ``[N, 3]``.

    Closed form of ``quat_rotate_inverse(quat, [0, 0, -1])``.
    """
    w, x, y, z = quat[:, 0], quat[:, 1], quat[:, 2], quat[:, 3]
    gx = -2.0 * (x * z - w * y)
    gy = -2.0 * (y * z + w * x)
    gz = -(1.0 - 2.0 * (x * x + y * y))
    return np.stack([gx, gy, gz], axis=-1)


def tilt_from_gravity(gravity: np.ndarray) -> np.ndarray:
    """Angle (rad) between the base's z axis and world up, from projected gravity ``[..., 3]``."""
    return np.arccos(np.clip(-gravity[..., 2], -1.0, 1.0))


def yaw_from_quat(quat: np.ndarray) -> np.ndarray:
    """Heading angle (rad, about world z) of each base orientation, ``[N]``."""
    w, x, y, z = quat[:, 0], quat[:, 1], quat[:, 2], quat[:, 3]
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def quat_from_yaw(yaw: np.ndarray) -> np.ndarray:
    """Quaternions ``[N, 4]`` of pure rotations by ``yaw [N]`` about z."""
    half = 0.5 * np.asarray(yaw, dtype=np.float64)
    zeros = np.zeros_like(half)
    return np.stack([np.cos(half), zeros, zeros, np.sin(half)], axis=-1)


def world_to_yaw_frame(vec: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """World-frame vectors ``[N, ..., 3]`` in each robot's heading frame (turned by ``-yaw
    [N]`` about z; z unchanged)."""
    c = np.cos(yaw).reshape((-1,) + (1,) * (vec.ndim - 2))
    s = np.sin(yaw).reshape(c.shape)
    out = np.array(vec, dtype=np.float64)
    out[..., 0] = c * vec[..., 0] + s * vec[..., 1]
    out[..., 1] = c * vec[..., 1] - s * vec[..., 0]
    return out
