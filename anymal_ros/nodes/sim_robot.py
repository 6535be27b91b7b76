"""One simulated quadruped stepped one physics step at a time, driven by joint targets.

The MuJoCo world (robot, terrain, PD actuators, randomisation) comes from
:class:`~anymal_ros.sim.env.QuadrupedVecEnv` with N = 1; this class only replaces the env's
action -> decimated-step loop by "apply the targets a ROS controller sent, step once", which a
real-time simulator node needs, and reads back the raw state a robot's drivers would publish.
Height samples use the shared exteroception geometry (:mod:`anymal_ros.obs.extero`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import mujoco
import numpy as np

from anymal_ros.config.sim import SimConfig
from anymal_ros.contract import NUM_JOINTS
from anymal_ros.obs.rotations import (
    projected_gravity,
    quat_rotate_inverse,
    tilt_from_gravity,
    yaw_from_quat,
)
from anymal_ros.sim.env import QuadrupedVecEnv


@dataclass(frozen=True)
class RobotState:
    """Raw state of the simulated robot (float64; joints in JOINT_NAMES order)."""

    time: float  # s of simulated time
    joint_pos: np.ndarray  # [12]
    joint_vel: np.ndarray  # [12]
    base_pos: np.ndarray  # [3] world
    base_quat: np.ndarray  # [4] (w, x, y, z), base -> world
    base_lin_vel: np.ndarray  # [3] base frame
    base_ang_vel: np.ndarray  # [3] base frame
    gravity: np.ndarray  # [3] unit gravity direction, base frame
    joint_effort: np.ndarray  # [12] actuator torques of the last physics step (N*m)


class SimRobot:
    """A single robot; ``physics_dt`` overrides the config's physics step (e.g. 0.0025 s for
    400 Hz proprioception; the PD loop runs at that rate)."""

    def __init__(self, cfg: SimConfig, seed: int = 0, physics_dt: float | None = None) -> None:
        if physics_dt is not None:
            if not physics_dt > 0:
                raise ValueError(f"physics_dt must be > 0 s, got {physics_dt}")
            # Keep the control period (decimation x dt): the env's air-time bookkeeping used
            # by privileged() advances by it.
            decimation = max(1, round(cfg.control_dt / physics_dt))
            physics = dataclasses.replace(cfg.physics, dt=physics_dt, decimation=decimation)
            cfg = dataclasses.replace(cfg, physics=physics)
        self.cfg = cfg
        self.env = QuadrupedVecEnv(cfg, num_envs=1, seed=seed)
        self.model, self.data, self.index = self.env.model, self.env.data, self.env.index
        self.dt = float(self.model.opt.timestep)
        self._actuators = self.index.actuator[0]
        self.reset()

    def reset(self) -> None:
        """New episode: the env's spawn (terrain tile, yaw, joint noise, randomisation)."""
        self.env.reset()
        self.time = 0.0
        self._forward()

    def set_targets(self, targets: np.ndarray) -> None:
        """Joint position targets ``[12]`` (rad, JOINT_NAMES order) for the PD actuators."""
        t = np.asarray(targets, dtype=np.float64)
        if t.shape != (NUM_JOINTS,) or not np.all(np.isfinite(t)):
            raise ValueError(f"targets: expected {NUM_JOINTS} finite values, got {t}")
        self.data.ctrl[self._actuators] = t

    def step(self) -> None:
        """One physics step of ``dt`` seconds."""
        mujoco.mj_step(self.model, self.data)
        self.time += self.dt
        self._forward()

    def _forward(self) -> None:
        # mj_step leaves body positions from before its integration; refresh them.
        mujoco.mj_kinematics(self.model, self.data)

    def state(self) -> RobotState:
        d, idx = self.data, self.index
        qpos = d.qpos[idx.qpos_base[0]]
        qvel = d.qvel[idx.qvel_base[0]]
        quat = qpos[3:7].copy()
        return RobotState(
            time=self.time,
            joint_pos=d.qpos[idx.qpos_joint[0]].copy(),
            joint_vel=d.qvel[idx.qvel_joint[0]].copy(),
            base_pos=qpos[:3].copy(),
            base_quat=quat,
            base_lin_vel=quat_rotate_inverse(quat[None], qvel[None, :3])[0],
            base_ang_vel=qvel[3:6].copy(),  # a free joint's angular velocity is body-frame
            gravity=projected_gravity(quat[None])[0],
            joint_effort=d.actuator_force[self._actuators].copy(),
        )

    def privileged(self, stepped: bool = True) -> np.ndarray:
        """``[50]`` float32 privileged state (``contract.PRIVILEGED_LAYOUT``) computed exactly
        as :class:`QuadrupedVecEnv` does: contacts, forces, normals, friction, thigh/shank
        contacts, external wrench, air time.

        Call once per control period after stepping (``stepped=True``: contact forces of the
        last physics step, air time advanced by one control period), or with ``stepped=False``
        right after :meth:`reset` (no contacts yet, as in the env's first observation).
        """
        return self.env.observe_current(stepped)["privileged"][0]

    def height_samples(self) -> tuple[np.ndarray, np.ndarray]:
        """(heights ``[4, 52]`` relative to each foot's sole, sample points ``[4, 52, 3]``
        in the world frame at terrain height)."""
        feet = self.data.xpos[self.index.foot_body[0]]  # [4, 3]
        quat = self.data.qpos[self.index.qpos_base[0]][3:7]
        heights, points = self.env.sample_heights(feet[None], yaw_from_quat(quat[None]))
        return heights[0], points[0]

    def fallen(self, max_tilt: float, min_height: float) -> str | None:
        """Why the robot counts as fallen (tilt, or base too close to the terrain), or None."""
        s = self.state()
        tilt = float(tilt_from_gravity(s.gravity))
        if tilt > max_tilt:
            return f"tilt {np.degrees(tilt):.0f} deg"
        ground = float(self.env.terrain.heights(s.base_pos[None, :2])[0])
        if s.base_pos[2] - ground < min_height:
            return f"base {s.base_pos[2] - ground:.2f} m above the terrain"
        return None
