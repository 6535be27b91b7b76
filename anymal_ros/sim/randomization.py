"""Domain randomisation of the merged model's per-robot parameters (friction, base mass,
centre of mass, motor strength, PD gains, joint damping, friction loss and armature, link
masses, contact softness), pushes and action latency."""

from __future__ import annotations

import mujoco
import numpy as np

from anymal_ros.config.robot import load_robot
from anymal_ros.config.sim import SimConfig
from anymal_ros.contract import NUM_LEGS
from anymal_ros.sim.robot import RobotIndex


class Randomizer:
    """Samples per-robot physical parameters at reset and writes them into the model."""

    def __init__(self, cfg: SimConfig, model: mujoco.MjModel, index: RobotIndex):
        self.cfg = cfg.randomization
        self.robot = load_robot(cfg.robot.description)
        self.model = model
        self.index = index
        n = index.num_envs
        self.nominal_mass = model.body_mass[index.base_body].copy()
        self.nominal_ipos = model.body_ipos[index.base_body].copy()
        # Every geom of robot i gets friction of its foot (feet) or the mean (other parts).
        self.robot_geoms = np.stack([np.flatnonzero(index.geom_env == i) for i in range(n)])
        self.foot_friction = np.ones((n, NUM_LEGS))
        self.latency = np.zeros(n, dtype=np.intp)
        self.motor_strength = np.ones((n, 1))  # scales each robot's torques (and PD gains)
        self.push_wrench = np.zeros((n, 6))
        self.push_time_left = np.zeros(n)
        self.next_push = np.full(n, np.inf)
        self.foot_friction[:] = model.geom_friction[index.foot_geom, 0]
        self.nominal_damping = model.dof_damping[index.dof_joint].copy()  # [N, 12]
        self.nominal_frictionloss = model.dof_frictionloss[index.dof_joint].copy()
        self.nominal_armature = model.dof_armature[index.dof_joint].copy()
        limbs = np.concatenate([index.base_bodies[:, 1:], index.thigh_body, index.shank_body], 1)
        self.limb_bodies = limbs  # [N, 12] hips, thighs, shanks
        self.nominal_limb_mass = model.body_mass[limbs].copy()
        self.nominal_limb_inertia = model.body_inertia[limbs].copy()

    def reset(self, ids: np.ndarray, rng: np.random.Generator) -> None:
        c, idx, m = self.cfg, self.index, self.model
        k = ids.size
        self.push_wrench[ids] = 0.0
        self.push_time_left[ids] = 0.0
        if not c.enabled:
            self.next_push[ids] = np.inf
            return
        friction = rng.uniform(*c.friction, size=(k, NUM_LEGS))
        self.foot_friction[ids] = friction
        m.geom_friction[self.robot_geoms[ids], 0] = friction.mean(axis=1, keepdims=True)
        m.geom_friction[idx.foot_geom[ids], 0] = friction
        base = idx.base_body[ids]
        m.body_mass[base] = self.nominal_mass[ids] + rng.uniform(*c.added_base_mass, size=k)
        m.body_ipos[base] = self.nominal_ipos[ids] + rng.uniform(*c.com_offset, size=(k, 3))
        strength = rng.uniform(*c.motor_strength, size=(k, 1))
        self.motor_strength[ids] = strength
        kp = self.robot.kp * rng.uniform(*c.kp_factor, size=(k, 1)) * strength
        kd = self.robot.kd * rng.uniform(*c.kd_factor, size=(k, 1)) * strength
        act = idx.actuator[ids]  # [k, 12]
        m.actuator_gainprm[act, 0] = kp
        m.actuator_biasprm[act, 1] = -kp
        m.actuator_biasprm[act, 2] = -kd
        limit = self.robot.torque_limit * strength
        m.actuator_forcerange[act, 0] = -limit
        m.actuator_forcerange[act, 1] = limit
        dofs = idx.dof_joint[ids]  # [k, 12]
        for nominal, target, factor in (
            (self.nominal_damping, m.dof_damping, c.joint_damping_factor),
            (self.nominal_frictionloss, m.dof_frictionloss, c.joint_frictionloss_factor),
            (self.nominal_armature, m.dof_armature, c.armature_factor),
        ):
            target[dofs] = nominal[ids] * rng.uniform(*factor, size=(k, 1))
        scale = rng.uniform(*c.link_mass_factor, size=(k, 1))
        limbs = self.limb_bodies[ids]
        m.body_mass[limbs] = self.nominal_limb_mass[ids] * scale
        m.body_inertia[limbs] = self.nominal_limb_inertia[ids] * scale[..., None]
        if c.contact_timeconst is not None:
            soft = rng.uniform(*c.contact_timeconst, size=(k, 1))
            m.geom_solref[self.robot_geoms[ids], 0] = soft
        lo, hi = c.latency_steps
        self.latency[ids] = rng.integers(lo, hi + 1, size=k)
        self.next_push[ids] = rng.uniform(*c.push_interval_s, size=k)

    def update_pushes(self, episode_time: np.ndarray, dt: float, rng: np.random.Generator) -> None:
        """Start pushes that are due and end those that ran their duration; ``[N]`` times."""
        self.push_time_left -= dt
        ended = self.push_time_left <= 0.0
        self.push_wrench[ended] = 0.0
        due = np.flatnonzero(episode_time >= self.next_push)
        if due.size:
            c = self.cfg
            k = due.size
            angle = rng.uniform(0.0, 2.0 * np.pi, size=k)
            force = rng.uniform(0.0, c.push_force, size=k)
            self.push_wrench[due, 0] = force * np.cos(angle)
            self.push_wrench[due, 1] = force * np.sin(angle)
            self.push_wrench[due, 2] = 0.0
            self.push_wrench[due, 3:] = rng.uniform(-c.push_torque, c.push_torque, size=(k, 3))
            self.push_time_left[due] = c.push_duration_s
            self.next_push[due] = episode_time[due] + rng.uniform(*c.push_interval_s, size=k)
