"""Action decoding: policy actions -> joint position targets (numpy only; shared by the
simulator and the ROS node, so both turn the same action into the same targets).

Two modes (``ActionDecoder(mode=...)``):

* ``"joint_residual"`` (12 actions): ``target = default_pose + action_scale * action``.
* ``"cpg"`` (16 actions, the paper's mode): the first 4 actions change each leg's gait
  frequency, ``f_i = base_frequency + frequency_scale * a_i`` (Hz, clipped to
  ``[0, max_frequency]``); each leg's phase advances by ``2 pi f_i dt``; a nominal foot
  trajectory (the default-pose foot position, lifted by a smooth swing profile while the phase
  is in ``[0, pi)``) is turned into joint angles by the robot's leg inverse kinematics
  (:class:`~anymal_ros.obs.kinematics.LegKinematics`, derived from its MJCF), and the
  last 12 actions are residuals on top: ``target = IK(foot(phase)) + action_scale * a[4:]``.
  ``IK(foot(phase))`` depends on the phase alone, so the decoder tabulates it once
  (:data:`GAIT_TABLE_STEPS` per cycle) and interpolates: a dozen numpy calls per decode
  instead of about fifty, less than 1e-6 rad from the exact inverse kinematics. The policy
  node decodes once per control tick on the robot, where every call counts.

With a zero action and every leg in stance the CPG mode yields exactly the default pose.
Joint order is JOINT_NAMES; legs are LEGS (LF, RF, LH, RH).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from anymal_ros.config.sim import ActionConfig
from anymal_ros.contract import (
    NUM_JOINTS,
    NUM_LEGS,
    action_dim,
    default_joint_positions,
)
from anymal_ros.obs.kinematics import LegKinematics

#: Trotting start: diagonal legs (LF+RH, RF+LH) share a phase.
TROT_PHASE_OFFSETS = np.array([0.0, np.pi, np.pi, 0.0])

#: Samples per gait cycle of the CPG's nominal joint angles (linear interpolation between them).
GAIT_TABLE_STEPS = 4096


def swing_height(phase: np.ndarray, height: float) -> np.ndarray:
    """Foot lift (m) over the gait cycle: a cubic rise and fall while ``phase mod 2pi`` is in
    ``[0, pi)`` (swing, peak ``height`` at ``pi/2``), zero in ``[pi, 2pi)`` (stance)."""
    t = np.mod(phase, 2.0 * np.pi) / np.pi  # [0, 2)
    up = 2.0 * t
    down = 2.0 * t - 1.0
    rise = -2.0 * up**3 + 3.0 * up**2
    fall = 2.0 * down**3 - 3.0 * down**2 + 1.0
    return height * np.where(t < 0.5, rise, np.where(t < 1.0, fall, 0.0))


class ActionDecoder:
    """Turns ``[N, A]`` actions into ``[N, 12]`` joint targets; owns the CPG phase state.

    Args:
        mode: ``"joint_residual"`` (A = 12) or ``"cpg"`` (A = 16).
        num_envs: number of robots N.
        action_scale: rad per unit action for the joint residuals.
        control_dt: policy period (s); the CPG phase advances by ``2 pi f control_dt``.
        base_frequency: nominal gait frequency (Hz) of the CPG.
        frequency_scale: Hz per unit action for the CPG frequency terms.
        max_frequency: upper clip of each leg's frequency (Hz).
        swing_height: peak foot lift (m) of the nominal swing trajectory.
        action_clip: actions are clipped to ``[-action_clip, action_clip]`` first.
        joint_lower, joint_upper: optional ``[12]`` limits the targets are clipped to.
        default_joint_pos: ``[12]`` default pose; the contract's default if omitted.
        kinematics: the robot's legs, for the CPG's inverse kinematics (required in CPG
            mode; joint_residual mode needs none).
    """

    def __init__(
        self,
        mode: Literal["joint_residual", "cpg"],
        num_envs: int,
        *,
        action_scale: float = 0.5,
        control_dt: float = 0.02,
        base_frequency: float = 1.25,
        frequency_scale: float = 1.0,
        max_frequency: float = 4.0,
        swing_height: float = 0.08,
        action_clip: float = 10.0,
        joint_lower: np.ndarray | None = None,
        joint_upper: np.ndarray | None = None,
        default_joint_pos: np.ndarray | None = None,
        kinematics: LegKinematics | None = None,
    ):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.mode = mode
        self.num_envs = num_envs
        self.action_dim = action_dim(mode)  # validates the mode
        self.action_scale = float(action_scale)
        self.control_dt = float(control_dt)
        self.base_frequency = float(base_frequency)
        self.frequency_scale = float(frequency_scale)
        self.max_frequency = float(max_frequency)
        self.swing_height = float(swing_height)
        self.action_clip = float(action_clip)
        default = default_joint_positions() if default_joint_pos is None else default_joint_pos
        self.default_joint_pos = np.asarray(default, dtype=np.float64).reshape(NUM_JOINTS)
        self.joint_lower = None if joint_lower is None else np.asarray(joint_lower, float)
        self.joint_upper = None if joint_upper is None else np.asarray(joint_upper, float)
        self.kinematics = kinematics
        if mode == "cpg":
            if kinematics is None:
                raise ValueError("the CPG action mode needs the robot's leg kinematics")
            self.nominal_feet = kinematics.forward(self.default_joint_pos[None])[0]  # [4, 3]
            phases = np.linspace(0.0, 2.0 * np.pi, GAIT_TABLE_STEPS + 1)
            table = self.nominal_joint_angles(np.repeat(phases[:, None], NUM_LEGS, axis=1))
            self._gait_table = table.reshape(-1, NUM_LEGS, 3)  # [steps + 1, 4, 3]
            self._gait_slope = np.diff(self._gait_table, axis=0)  # per table step
            self._legs = np.arange(NUM_LEGS)
        self.phase = np.zeros((num_envs, NUM_LEGS))
        self.frequency = np.zeros((num_envs, NUM_LEGS))
        self.reset()

    @classmethod
    def from_config(
        cls,
        cfg: ActionConfig,
        num_envs: int,
        control_dt: float,
        joint_lower: np.ndarray | None = None,
        joint_upper: np.ndarray | None = None,
        default_joint_pos: np.ndarray | None = None,
        kinematics: LegKinematics | None = None,
    ) -> ActionDecoder:
        """The decoder described by an ``actions`` config section (simulator or ONNX file)."""
        return cls(
            cfg.mode,
            num_envs,
            action_scale=cfg.scale,
            control_dt=control_dt,
            base_frequency=cfg.base_frequency,
            frequency_scale=cfg.frequency_scale,
            max_frequency=cfg.max_frequency,
            swing_height=cfg.swing_height,
            action_clip=cfg.clip,
            joint_lower=joint_lower,
            joint_upper=joint_upper,
            default_joint_pos=default_joint_pos,
            kinematics=kinematics,
        )

    def reset(self, env_ids: np.ndarray | list[int] | None = None) -> None:
        """Restart the gait of ``env_ids`` (all if None): trot phases, base frequency."""
        ids = slice(None) if env_ids is None else np.asarray(env_ids, dtype=np.intp)
        self.phase[ids] = TROT_PHASE_OFFSETS
        self.frequency[ids] = self.base_frequency

    def proprio_cpg_kwargs(
        self, env_ids: np.ndarray | None = None
    ) -> dict[str, np.ndarray | float]:
        """The CPG keyword arguments of :meth:`ProprioBuilder.build
        <anymal_ros.obs.proprio.ProprioBuilder.build>` for robots ``env_ids`` (all if None):
        ``cpg_phase`` and ``cpg_frequency`` ``[k, 4]`` and ``cpg_base_frequency``; empty in
        joint_residual mode (its proprioception has no CPG terms)."""
        if self.mode != "cpg":
            return {}
        sel = slice(None) if env_ids is None else env_ids
        return {
            "cpg_phase": self.phase[sel],
            "cpg_frequency": self.frequency[sel],
            "cpg_base_frequency": self.base_frequency,
        }

    def nominal_joint_angles(self, phase: np.ndarray) -> np.ndarray:
        """``[N, 12]`` joint angles of the nominal foot trajectory at ``phase [N, 4]`` (inverse
        kinematics from the default pose; :meth:`decode` interpolates a table of these)."""
        feet = np.broadcast_to(self.nominal_feet, phase.shape + (3,)).copy()
        feet[..., 2] += swing_height(phase, self.swing_height)
        return self.kinematics.inverse(feet, seed=self.default_joint_pos)

    def _interpolated_nominal(self, phase: np.ndarray) -> np.ndarray:
        """:meth:`nominal_joint_angles` from the table, for phases in ``[0, 2 pi)``."""
        x = phase * (GAIT_TABLE_STEPS / (2.0 * np.pi))
        i = np.minimum(x.astype(np.intp), GAIT_TABLE_STEPS - 1)
        frac = (x - i)[..., None]
        q = self._gait_table[i, self._legs] + frac * self._gait_slope[i, self._legs]
        return q.reshape(phase.shape[0], NUM_JOINTS)

    def default_targets(self) -> np.ndarray:
        """``[N, 12]`` targets at an episode's start (the default pose)."""
        return np.tile(self.default_joint_pos, (self.num_envs, 1))

    def decode(self, action: np.ndarray) -> np.ndarray:
        """Joint targets ``[N, 12]`` (rad, JOINT_NAMES order) for actions ``[N, A]``.

        In CPG mode this advances the phase by one control period (call once per step).
        """
        a = np.asarray(action, dtype=np.float64)
        if a.ndim == 1:
            a = a[None]
        if a.shape != (self.num_envs, self.action_dim):
            expected = (self.num_envs, self.action_dim)
            raise ValueError(f"action: expected shape {expected}, got {np.shape(action)}")
        if not np.isfinite(a).all():
            raise ValueError("action contains NaN or inf")
        a = np.clip(a, -self.action_clip, self.action_clip)
        if self.mode == "joint_residual":
            targets = self.default_joint_pos + self.action_scale * a
        else:
            freq = self.base_frequency + self.frequency_scale * a[:, :NUM_LEGS]
            self.frequency[:] = np.clip(freq, 0.0, self.max_frequency)
            self.phase[:] = np.mod(
                self.phase + 2.0 * np.pi * self.frequency * self.control_dt, 2.0 * np.pi
            )
            nominal = self._interpolated_nominal(self.phase)
            targets = nominal + self.action_scale * a[:, NUM_LEGS:]
        if self.joint_lower is not None and self.joint_upper is not None:
            targets = np.clip(targets, self.joint_lower, self.joint_upper)
        return targets
