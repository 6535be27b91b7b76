"""Leg kinematics of any quadruped whose legs are chains of three revolute joints (numpy only;
shared by the simulator's CPG, the ROS node's forward kinematics and the ROS-topic bridge).

The legs are described by :class:`~anymal_ros.config.robot.LegChains`: each joint's anchor and
axis and each foot's centre in the base frame at the zero pose, derived from the robot's MJCF
(:func:`anymal_ros.sim.robot.derive_leg_chains`) and carried by an exported policy. Forward
kinematics is the product of exponentials over that chain, so offsets of any kind (a thigh
offset along the joint axis, a foot ahead of the knee's line) are exact. Inverse kinematics is
damped Gauss-Newton from a seed pose (the default pose), which keeps each knee on the side it
bends to; it runs where speed does not matter (the CPG tabulates its gait once).
"""

from __future__ import annotations

import numpy as np

from anymal_ros.config.robot import LegChains
from anymal_ros.contract import NUM_JOINTS, NUM_LEGS

_JOINTS_PER_LEG = NUM_JOINTS // NUM_LEGS


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a x b`` over the last axis (3); np.cross costs several times more on small arrays."""
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)


_EYE3 = np.eye(3)


def _cross_matrix(u: np.ndarray) -> np.ndarray:
    """``[..., 3, 3]`` matrices K with ``K @ v = u x v`` for vectors ``u [..., 3]``."""
    k = np.zeros((*u.shape[:-1], 3, 3))
    k[..., 0, 1], k[..., 0, 2] = -u[..., 2], u[..., 1]
    k[..., 1, 0], k[..., 1, 2] = u[..., 2], -u[..., 0]
    k[..., 2, 0], k[..., 2, 1] = -u[..., 1], u[..., 0]
    return k


def _rotate(axis: np.ndarray, angle: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rodrigues: ``v [..., 3]`` turned by ``angle [...]`` about unit ``axis [..., 3]``."""
    c = np.cos(angle)[..., None]
    s = np.sin(angle)[..., None]
    dot = np.sum(axis * v, axis=-1, keepdims=True)
    return v * c + _cross(axis, v) * s + axis * dot * (1.0 - c)


class LegKinematics:
    """Forward and inverse kinematics of the four legs in the base frame.

    Args:
        chains: the legs' joint anchors, axes and feet at the zero pose.
    """

    def __init__(self, chains: LegChains):
        self.chains = chains
        shape = (NUM_LEGS, _JOINTS_PER_LEG, 3)
        self._anchors = np.asarray(chains.joint_anchors, dtype=np.float64).reshape(shape)
        self._axes = np.asarray(chains.joint_axes, dtype=np.float64).reshape(shape)
        self._feet = np.asarray(chains.foot_centres, dtype=np.float64).reshape(NUM_LEGS, 3)
        self.foot_radius = float(chains.foot_radius)
        # For forward kinematics at the control rate, Rodrigues as matrices: a joint turning by
        # q about unit axis u is R = I + sin q K + (1 - cos q) K^2, K = u's cross-product
        # matrix, fixed per joint. The chain as links: foot = a0 + R0 (a1 - a0 + R1 (a2 - a1 +
        # R2 (f - a2))), so three small matrix products place every foot.
        self._cross_axis = _cross_matrix(self._axes)  # [4, 3, 3, 3]
        self._cross_axis_sq = self._cross_axis @ self._cross_axis
        self._links = np.diff(self._anchors, axis=1, prepend=0.0)  # [4, 3, 3]: a_j - a_(j-1)
        self._tip = self._feet - self._anchors[:, -1]  # [4, 3]: foot centre - outermost anchor

    def _frames(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Current joint anchors and axes ``[N, 4, 3, 3]`` and foot centres ``[N, 4, 3]`` for
        joint angles ``q [N, 4, 3]``."""
        n = q.shape[0]
        anchors = np.broadcast_to(self._anchors, (n, *self._anchors.shape)).copy()
        axes = np.broadcast_to(self._axes, anchors.shape).copy()
        foot = np.broadcast_to(self._feet, (n, NUM_LEGS, 3)).copy()
        # Apply the joints outermost first: joint j turns everything after it in the chain.
        for j in reversed(range(_JOINTS_PER_LEG)):
            a, u, angle = self._anchors[:, j], self._axes[:, j], q[..., j]
            foot = a + _rotate(u, angle, foot - a)
            for k in range(j + 1, _JOINTS_PER_LEG):
                anchors[:, :, k] = a + _rotate(u, angle, anchors[:, :, k] - a)
                axes[:, :, k] = _rotate(u, angle, axes[:, :, k])
        return anchors, axes, foot

    def forward(self, joint_pos: np.ndarray) -> np.ndarray:
        """Foot centres ``[N, 4, 3]`` (m, base frame) from joint angles ``[N, 12]``."""
        q = np.asarray(joint_pos, dtype=np.float64).reshape(-1, NUM_LEGS, _JOINTS_PER_LEG)
        # A sixth of the element-wise work of _frames' Rodrigues per vector (measured: 15
        # instead of 91 us per call at batch 1), which matters in the node's control tick.
        sin, one_minus_cos = np.sin(q)[..., None, None], (1.0 - np.cos(q))[..., None, None]
        rot = _EYE3 + sin * self._cross_axis + one_minus_cos * self._cross_axis_sq
        foot = self._tip  # [4, 3], then [N, 4, 3]
        for j in reversed(range(_JOINTS_PER_LEG)):  # the outermost joint first
            foot = (rot[:, :, j] @ foot[..., None])[..., 0] + self._links[:, j]
        return foot

    def jacobian(self, joint_pos: np.ndarray) -> np.ndarray:
        """``[N, 4, 3, 3]``: d foot / d (HAA, HFE, KFE) of each leg (columns are joints)."""
        q = np.asarray(joint_pos, dtype=np.float64).reshape(-1, NUM_LEGS, _JOINTS_PER_LEG)
        anchors, axes, foot = self._frames(q)
        cols = np.cross(axes, foot[:, :, None, :] - anchors)  # [N, 4, 3 joints, 3]
        return np.swapaxes(cols, -1, -2)

    def inverse(
        self,
        foot_pos: np.ndarray,
        seed: np.ndarray,
        iterations: int = 50,
        damping: float = 1e-6,
        tolerance: float = 1e-10,
    ) -> np.ndarray:
        """Joint angles ``[N, 12]`` placing the foot centres at ``foot_pos [N, 4, 3]``.

        Damped Gauss-Newton from ``seed`` (``[12]`` or ``[N, 12]``, e.g. the default pose): the
        solution is the one continuously connected to the seed, so knees keep their side.
        Unreachable targets end at the least-squares closest pose instead of NaN.
        """
        target = np.asarray(foot_pos, dtype=np.float64).reshape(-1, NUM_LEGS, 3)
        n = target.shape[0]
        q = np.broadcast_to(np.asarray(seed, dtype=np.float64), (n, NUM_JOINTS)).copy()
        q = q.reshape(n, NUM_LEGS, _JOINTS_PER_LEG)
        eye = np.eye(_JOINTS_PER_LEG)
        for _ in range(iterations):
            anchors, axes, foot = self._frames(q)
            err = target - foot  # [N, 4, 3]
            if np.max(np.abs(err)) < tolerance:
                break
            jac = np.swapaxes(np.cross(axes, foot[:, :, None, :] - anchors), -1, -2)
            jt = np.swapaxes(jac, -1, -2)
            step = np.linalg.solve(jt @ jac + damping * eye, (jt @ err[..., None]))[..., 0]
            q = q + step
        return q.reshape(n, NUM_JOINTS)
