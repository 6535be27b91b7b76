"""Proprioceptive observation builder: the one place raw robot state becomes the policy's
proprioceptive vector, used by the MuJoCo simulator (N robots) and the ROS policy node (N=1).

The output follows :func:`anymal_ros.contract.proprio_layout` exactly. All quantities are in
SI units and are not scaled here: the policy normalises its inputs itself (running mean/std
inside the model, saved with the weights), so the same raw numbers flow in sim and on the robot.

History semantics, per policy step ``t`` (one :meth:`ProprioBuilder.build` call):

* ``joint_pos_error_history``: ``target_{t-1} - q_t``, ``target_{t-2} - q_{t-1}``,
  ``target_{t-3} - q_{t-2}`` (newest first), where ``target_{t-1}`` is the joint target being
  tracked while ``q_t`` was reached, i.e. the ``joint_targets`` argument of this call;
* ``joint_vel_history``: ``qd_{t-1}``, ``qd_{t-2}`` (the current ``qd_t`` is ``joint_vel``);
* ``joint_target_history``: ``target_{t-1}``, ``target_{t-2}``.

After :meth:`ProprioBuilder.reset` the next :meth:`build` for those robots fills every history
slot with the current values, so a fresh episode never sees the previous one.
"""

from __future__ import annotations

import numpy as np

from anymal_ros.contract import (
    NUM_JOINTS,
    NUM_LEGS,
    POS_ERROR_HISTORY,
    TARGET_HISTORY,
    VEL_HISTORY,
    default_joint_positions,
    proprio_layout,
)
from anymal_ros.obs.rotations import projected_gravity


def _check(name: str, value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == len(shape) - 1:  # allow a single robot without the batch axis
        arr = arr[None]
    if arr.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {np.shape(value)}")
    if not np.isfinite(arr).all():  # the method skips np.all's dispatch (7 calls per step)
        raise ValueError(f"{name}: contains NaN or inf")
    return arr


class ProprioBuilder:
    """Builds ``[N, P]`` float32 proprioceptive vectors and keeps their histories.

    Args:
        num_envs: number of robots N (1 on the real robot).
        cpg: whether the CPG terms (phase sin/cos, leg and base frequencies) are appended
            (P = 133), otherwise P = 120.
        default_joint_pos: ``[12]`` default pose (rad, JOINT_NAMES order) that ``joint_pos``
            is reported relative to; the contract's default if omitted.
    """

    def __init__(self, num_envs: int, cpg: bool, default_joint_pos: np.ndarray | None = None):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs
        self.cpg = cpg
        self.layout = proprio_layout(cpg)
        self.dim = self.layout.dim
        self._slices = self.layout.slices()
        default = default_joint_positions() if default_joint_pos is None else default_joint_pos
        self.default_joint_pos = _check("default_joint_pos", default, (1, NUM_JOINTS))[0]
        n = num_envs
        self._pos_error = np.zeros((n, POS_ERROR_HISTORY, NUM_JOINTS))
        self._vel = np.zeros((n, VEL_HISTORY + 1, NUM_JOINTS))  # [t, t-1, t-2]
        self._target = np.zeros((n, TARGET_HISTORY, NUM_JOINTS))
        self._fresh = np.ones(n, dtype=bool)

    def reset(self, env_ids: np.ndarray | list[int] | None = None) -> None:
        """Forget the histories of ``env_ids`` (all robots if None); refilled on next build."""
        if env_ids is None:
            self._fresh[:] = True
        else:
            self._fresh[np.asarray(env_ids, dtype=np.intp)] = True

    def build(
        self,
        *,
        joint_pos: np.ndarray,
        joint_vel: np.ndarray,
        base_quat: np.ndarray,
        base_lin_vel: np.ndarray,
        base_ang_vel: np.ndarray,
        command: np.ndarray,
        joint_targets: np.ndarray,
        cpg_phase: np.ndarray | None = None,
        cpg_frequency: np.ndarray | None = None,
        cpg_base_frequency: np.ndarray | float | None = None,
        env_ids: np.ndarray | None = None,
    ) -> np.ndarray:
        """One policy step's observation; advances the histories.

        Args (N robots; a single robot may omit the batch axis):
            joint_pos: ``[N, 12]`` joint angles (rad) in JOINT_NAMES order.
            joint_vel: ``[N, 12]`` joint speeds (rad/s) in JOINT_NAMES order.
            base_quat: ``[N, 4]`` base orientation, (w, x, y, z), base -> world.
            base_lin_vel: ``[N, 3]`` base linear velocity (m/s) in the base frame.
            base_ang_vel: ``[N, 3]`` base angular velocity (rad/s) in the base frame.
            command: ``[N, 3]`` commanded vx, vy (m/s) and yaw rate (rad/s), base frame.
            joint_targets: ``[N, 12]`` joint targets (rad) commanded by the previous action,
                i.e. the ones tracked right now (the default pose at an episode's start).
            cpg_phase: ``[N, 4]`` leg phases (rad); required when ``cpg``.
            cpg_frequency: ``[N, 4]`` leg frequencies (Hz); required when ``cpg``.
            cpg_base_frequency: base frequency (Hz), scalar or ``[N]``; required when ``cpg``.
            env_ids: build only for these robots (every argument then has ``len(env_ids)``
                rows instead of N); the others' histories are untouched.

        Returns:
            ``[N, P]`` (or ``[len(env_ids), P]``) float32 in ``proprio_layout(cpg)`` order.
        """
        if env_ids is None:
            sel: slice | np.ndarray = slice(None)
            n = self.num_envs
        else:
            sel = np.asarray(env_ids, dtype=np.intp)
            n = sel.size
        q = _check("joint_pos", joint_pos, (n, NUM_JOINTS))
        qd = _check("joint_vel", joint_vel, (n, NUM_JOINTS))
        quat = _check("base_quat", base_quat, (n, 4))
        lin = _check("base_lin_vel", base_lin_vel, (n, 3))
        ang = _check("base_ang_vel", base_ang_vel, (n, 3))
        cmd = _check("command", command, (n, 3))
        target = _check("joint_targets", joint_targets, (n, NUM_JOINTS))

        error = target - q
        # Shift histories (newest first) in place, then write the newest entry. (A view for
        # all robots, a copy for env_ids; numpy copes with the overlapping slices.)
        pos_error = self._pos_error[sel]
        vel = self._vel[sel]
        tgt = self._target[sel]
        for history in (pos_error, vel, tgt):
            history[:, 1:] = history[:, :-1]
        pos_error[:, 0] = error
        vel[:, 0] = qd
        tgt[:, 0] = target
        fresh = self._fresh[sel]
        if fresh.any():
            pos_error[fresh] = error[fresh, None]
            vel[fresh] = qd[fresh, None]
            tgt[fresh] = target[fresh, None]
            self._fresh[sel] = False
        self._pos_error[sel] = pos_error
        self._vel[sel] = vel
        self._target[sel] = tgt

        out = np.empty((n, self.dim), dtype=np.float32)
        s = self._slices
        out[:, s["command"]] = cmd
        out[:, s["gravity"]] = projected_gravity(quat)
        out[:, s["base_lin_vel"]] = lin
        out[:, s["base_ang_vel"]] = ang
        out[:, s["joint_pos"]] = q - self.default_joint_pos
        out[:, s["joint_vel"]] = qd
        out[:, s["joint_pos_error_history"]] = pos_error.reshape(n, -1)
        out[:, s["joint_vel_history"]] = vel[:, 1:].reshape(n, -1)
        out[:, s["joint_target_history"]] = tgt.reshape(n, -1)
        if self.cpg:
            if cpg_phase is None or cpg_frequency is None or cpg_base_frequency is None:
                raise ValueError(
                    "cpg_phase, cpg_frequency and cpg_base_frequency are required with cpg=True"
                )
            phase = _check("cpg_phase", cpg_phase, (n, NUM_LEGS))
            freq = _check("cpg_frequency", cpg_frequency, (n, NUM_LEGS))
            base = np.broadcast_to(np.asarray(cpg_base_frequency, dtype=np.float64), (n,))
            out[:, s["cpg_phase"]] = np.concatenate([np.sin(phase), np.cos(phase)], axis=1)
            out[:, s["cpg_frequency"]] = np.concatenate([freq, base[:, None]], axis=1)
        return out
