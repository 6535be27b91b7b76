"""QuadrupedVecEnv: N quadrupeds on procedural terrain in one MuJoCo model, numpy in and out.

The vector-env interface every bridge implements (as code: :class:`anymal_ros.sim.interface.
VecEnv`; this env also implements its optional ``TerrainCurriculum`` and ``ShiftedHeights``)::

    env = QuadrupedVecEnv(cfg, num_envs, seed)
    obs = env.reset()   # {"proprio": [N, P], "extero": [N, 4, 52], "privileged": [N, 50]}
    obs, reward, terminated, truncated, info = env.step(action)   # action [N, A]

Episodes reset automatically: where ``terminated | truncated``, ``obs`` already belongs to the
new episode and ``info["final_obs"]`` holds the old episode's last observation. Exteroception
is noise-free (height noise is the trainer's business). The task (actions, rewards, episode
accounting, ``info``) is :class:`~anymal_ros.sim.task.LocomotionTask`'s; see its ``step`` for
the ``info`` keys. This module adds the MuJoCo world: physics, raw state, its termination
tests, spawning on the terrain curriculum (see :class:`QuadrupedVecEnv`).
"""

from __future__ import annotations

import copy
import time
import warnings
from typing import Any

import mujoco
import numpy as np

from anymal_ros.config.deploy import DeployConfig
from anymal_ros.config.robot import load_robot
from anymal_ros.config.sim import PATH_PROMOTION_SHARE, SimConfig
from anymal_ros.contract import (
    EXTERO_SHAPE,
    NUM_JOINTS,
    NUM_LEGS,
    POINTS_PER_FOOT,
    PRIVILEGED_DIM,
    PRIVILEGED_LAYOUT,
)
from anymal_ros.obs import extero
from anymal_ros.obs.actions import ActionDecoder
from anymal_ros.obs.kinematics import LegKinematics
from anymal_ros.obs.rotations import (
    projected_gravity,
    quat_from_yaw,
    quat_rotate,
    quat_rotate_inverse,
    world_to_yaw_frame,
    yaw_from_quat,
)
from anymal_ros.sim.actuator import DcMotorEnvelope
from anymal_ros.sim.randomization import Randomizer
from anymal_ros.sim.robot import build_world, derive_leg_chains, robot_prefix, trunk_underside
from anymal_ros.sim.task import LocomotionTask, Obs, State
from anymal_ros.sim.terrain import Terrain

_PRIV = PRIVILEGED_LAYOUT.slices()


# A speed (m/s or rad/s) no degree of freedom of a legged robot reaches: its physics has
# diverged. A falling ANYmal C's joints peak near 120 rad/s on impact; an unstable riser
# contact went from 12 to 13,800 in one control period, finite, before MuJoCo's own test
# (1e10) saw it, and its state had already entered the batch's metrics.
DIVERGED_SPEED = 1e3

# MuJoCo's warnings that the arena (contacts, constraints) was too small for a step.
_ARENA_WARNINGS = tuple(int(w) for w in (mujoco.mjtWarning.mjWARN_CNSTRFULL,
                                          mujoco.mjtWarning.mjWARN_CONTACTFULL))  # fmt: skip


class QuadrupedVecEnv(LocomotionTask):
    """Batched MuJoCo quadruped environment (see module docstring).

    A robot's episode terminates when its base tilts beyond ``termination.max_tilt``, its
    physics diverges (NaN, inf or a speed over :data:`DIVERGED_SPEED`; it alone is rolled
    back, the batch walks on), or (``termination.base_contact``) its base touches anything;
    it is truncated at the time limit or when its base comes within 0.5 m of the map's edge.
    ``info`` adds ``terrain_level [N]`` int64: the level each robot's episode ran on.

    Args:
        cfg: simulator settings.
        num_envs: number of robots N.
        seed: seeds commands, randomisation and resets (same seed, same actions -> same
            trajectory).
        terrain_seed: seed of the terrain; ``seed`` if None. Workers of a multi-process
            environment share it so they see the same terrain.
    """

    def __init__(
        self, cfg: SimConfig, num_envs: int, seed: int = 0, terrain_seed: int | None = None
    ):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        n = num_envs
        self.decimation = cfg.physics.decimation
        self.terrain = Terrain(cfg.terrain, seed if terrain_seed is None else terrain_seed)
        self.model, self.index = build_world(cfg, self.terrain, n)
        self.data = mujoco.MjData(self.model)
        idx = self.index
        self.robot = load_robot(cfg.robot.description)
        self.leg_chains = derive_leg_chains(self.model, self.robot, robot_prefix(0))
        self.default_joint_pos = np.array(self.robot.default_pose())
        decoder = ActionDecoder.from_config(
            cfg.actions,
            n,
            cfg.control_dt,
            joint_lower=idx.joint_lower,
            joint_upper=idx.joint_upper,
            default_joint_pos=self.default_joint_pos,
            kinematics=LegKinematics(self.leg_chains),
        )
        super().__init__(cfg, n, decoder)
        self.randomizer = Randomizer(cfg, self.model, idx)
        dc_motor = cfg.physics.actuator == "dc_motor"
        self._motor = DcMotorEnvelope(self.robot) if dc_motor else None
        self.foot_radius = self.model.geom_size[idx.foot_geom[0], 0].copy()  # [4]
        self._trunk_points = trunk_underside(self.model, idx.base_body[0])  # [P, 3]
        # Terrain queries under the trunk only for its reward term or the gait report.
        self._weigh_trunk = bool(cfg.rewards.weights["trunk_clearance"])
        # Terrain queries ahead of the feet only where the foot_clearance term reads them.
        weigh_feet = bool(cfg.rewards.weights["foot_clearance"])
        self._swing_lookahead = cfg.rewards.swing_clearance_lookahead if weigh_feet else 0.0
        # Terrain queries around the feet only for the foothold_edge term or the gait report.
        self._weigh_footholds = bool(cfg.rewards.weights["foothold_edge"])
        self._act_flat = idx.actuator.ravel()
        self._foot_root = self.model.body_rootid[idx.foot_body]  # [N, 4]
        self._limb_bodies = np.concatenate([idx.thigh_body, idx.shank_body], axis=1)  # [N, 8]
        self._tile_speed_limit = self._speed_limits_by_tile()
        self._seed(seed)

        self.levels = self.rng.integers(0, cfg.terrain.max_init_level + 1, size=n)
        self.columns = np.arange(n) % self.terrain.num_columns
        self.origins = np.zeros((n, 3))
        self.start_xy = np.zeros((n, 2))  # where each robot began its episode
        self.contact_valid = np.zeros(n, dtype=bool)
        #: Add ``info["gait"]`` to every step (evaluation; training does not pay for it).
        self.report_gait = False
        self.mass = float(self.model.body_subtreemass[idx.base_body[0]])  # one robot, kg
        self._state: dict[str, np.ndarray] = {}
        self._physics_time = np.zeros(2)  # wall, thread CPU seconds inside mj_step
        self._qpos_rows = np.concatenate([idx.qpos_base, idx.qpos_joint], axis=1)  # [N, 19]
        self._qvel_rows = np.concatenate([idx.qvel_base, idx.qvel_joint], axis=1)  # [N, 18]
        #: Robots whose physics diverged in the last step (rolled back; their episodes end).
        self.diverged = np.zeros(n, dtype=bool)
        self._arena_overflows = 0

    # --- public API (step: LocomotionTask.step) ------------------------------------------

    def reset(self, seed: int | None = None) -> Obs:
        """Reset every robot (re-seeding first if ``seed`` is given); return the first obs."""
        if seed is not None:
            self._seed(seed)
            self.levels = self.rng.integers(0, self.cfg.terrain.max_init_level + 1, self.num_envs)
        mujoco.mj_resetData(self.model, self.data)
        self._arena_overflows = 0  # MuJoCo's warning counters start again
        all_ids = np.arange(self.num_envs)
        self._reset_envs(all_ids)
        self._refresh_kinematics()
        self._state = self._gather(all_ids)
        return self._observe(all_ids, self._state)

    def observe_current(self, stepped: bool) -> Obs:
        """The observation of every robot's current MjData state, built as :meth:`step` builds
        it, for a caller that steps the physics itself (``sim_node``'s
        :class:`~anymal_ros.nodes.sim_robot.SimRobot`). Advances the proprioceptive histories.

        Args:
            stepped: True once per control period after stepping (contact forces of the last
                physics step, air time advanced by one control period); False right after
                :meth:`reset` (no contacts yet, as in the first observation).
        """
        ids = np.arange(self.num_envs)
        if stepped:
            mujoco.mj_rnePostConstraint(self.model, self.data)
            self.contact_valid[:] = True
        self._refresh_kinematics()
        s = self._gather(ids)
        if stepped:
            self._update_contacts(s)
        return self._observe(ids, s)

    def terrain_levels(self) -> np.ndarray:
        """``[N]`` int: every robot's current difficulty level (a copy)."""
        return self.levels.copy()

    def terrain_types(self) -> np.ndarray:
        """``[N]`` str: the terrain type of every robot's column."""
        return np.asarray(self.terrain.column_types)[self.columns]

    def set_terrain_levels(
        self, levels: int | np.ndarray, env_ids: np.ndarray | None = None
    ) -> None:
        """Set the difficulty level(s) of ``env_ids`` (all if None); applies at their next
        reset (call :meth:`reset` to apply now). Levels run 0..num_levels-1."""
        sel = slice(None) if env_ids is None else np.asarray(env_ids, dtype=np.intp)
        lv = np.asarray(levels)
        if np.any(lv < 0) or np.any(lv >= self.terrain.num_levels):
            raise ValueError(f"terrain levels must be in [0, {self.terrain.num_levels - 1}]")
        self.levels[sel] = lv

    def set_terrain_types(self, terrain_type: str, env_ids: np.ndarray | None = None) -> None:
        """Put ``env_ids`` (all if None) on columns of ``terrain_type`` from their next reset."""
        cols = [c for c, t in enumerate(self.terrain.column_types) if t == terrain_type]
        if not cols:
            raise ValueError(
                f"no terrain column of type {terrain_type!r}; have {self.terrain.column_types}"
            )
        sel = np.arange(self.num_envs) if env_ids is None else np.asarray(env_ids, dtype=np.intp)
        self.columns[sel] = np.asarray(cols)[np.arange(sel.size) % len(cols)]

    def set_commands(
        self, command: np.ndarray, env_ids: np.ndarray | None = None, fixed: bool = True
    ) -> None:
        """Set velocity commands (``[3]`` or ``[k, 3]``: vx, vy m/s, yaw rate rad/s, base frame).
        ``fixed`` keeps them through resampling and resets (for evaluation)."""
        self.commands.set(command, env_ids, fixed)

    def resample_commands(self, env_ids: np.ndarray | None = None) -> None:
        """Draw new random commands for ``env_ids`` (all if None) and unfix them."""
        ids = np.arange(self.num_envs) if env_ids is None else np.asarray(env_ids, dtype=np.intp)
        self.commands.fixed[ids] = False
        self.commands.sample(ids, self.rng)

    def heights_at_offsets(self, xy: np.ndarray) -> np.ndarray:
        """Foot-relative heights of the current state at shifted sample points.

        Args:
            xy: ``[N, 4, 52, 2]`` shifts (m) of every height sample, in the base's yaw frame
                (x ahead of the robot's heading, y to its left, like the ring offsets of
                :func:`anymal_ros.obs.extero.sample_points`); e.g. the x/y part of
                :meth:`anymal_ros.obs.height_noise.HeightNoise.sample_xy_offsets`.

        Returns:
            ``[N, 4, 52]`` float32 heights, same convention as ``obs["extero"]`` (zero shifts
            give exactly the ``extero`` of the observation last returned).
        """
        shifts = np.asarray(xy, dtype=np.float64)
        expected = (self.num_envs, *EXTERO_SHAPE, 2)
        if shifts.shape != expected:
            raise ValueError(f"xy: expected shape {expected}, got {shifts.shape}")
        if not np.all(np.isfinite(shifts)):
            raise ValueError("xy contains NaN or inf")
        idx = self.index
        feet = self.data.xpos[idx.foot_body]  # [N, 4, 3], fresh after step/reset
        yaw = yaw_from_quat(self.data.qpos[idx.qpos_base[:, 3:7]])
        return self.sample_heights(feet, yaw, shifts)[0]

    def sample_heights(
        self, feet: np.ndarray, yaw: np.ndarray, shifts: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The terrain's height samples around the feet: the one place the simulator takes
        them (the observation, :meth:`heights_at_offsets` and the ROS simulator's robot).

        Args:
            feet: ``[k, 4, 3]`` foot centres (m, world frame), feet in LEGS order.
            yaw: ``[k]`` base heading (rad): the rings turn with it.
            shifts: ``[k, 4, 52, 2]`` moves (m) of the samples in the base's yaw frame, or
                None.

        Returns:
            ``heights [k, 4, 52]`` float32, terrain height minus each foot's sole (the
            observation's ``extero``), and ``points [k, 4, 52, 3]``: world x, y of each
            sample and the terrain height there.
        """
        points = np.empty((*feet.shape[:-1], POINTS_PER_FOOT, 3))
        xy = points[..., :2]
        xy[...] = extero.sample_points(feet[..., :2], yaw)
        if shifts is not None:
            c = np.cos(yaw)[:, None, None]
            s = np.sin(yaw)[:, None, None]
            xy[..., 0] += c * shifts[..., 0] - s * shifts[..., 1]
            xy[..., 1] += s * shifts[..., 0] + c * shifts[..., 1]
        points[..., 2] = self.terrain.heights(xy)
        heights = extero.relative_heights(points[..., 2], feet[..., 2] - self.foot_radius)
        return heights, points

    def physics_time(self) -> tuple[float, float]:
        """``(wall, thread CPU)`` seconds spent inside ``mj_step`` by :meth:`step` so far:
        the physics share of the same trajectory (benchmarks/sim_throughput.py)."""
        return float(self._physics_time[0]), float(self._physics_time[1])

    def physics_benchmark(self, num_steps: int) -> float:
        """Seconds that ``num_steps`` bare physics control steps (``mj_step`` x decimation,
        no observations or rewards) take on a copy of the current state: the physics bound."""
        data = copy.copy(self.data)
        start = time.perf_counter()
        for _ in range(num_steps):
            mujoco.mj_step(self.model, data, nstep=self.decimation)
        return time.perf_counter() - start

    def deploy_config(self) -> DeployConfig:
        """Deployment settings matching this simulator: the robot (name, default pose, leg
        kinematics, foot radius), action mode, scale and CPG settings, control period and the
        model's joint limits. Trainers store it in checkpoints as the ``deploy`` section, and
        ``anymal-ros export`` writes it into the ONNX metadata."""
        return DeployConfig(
            actions=self.cfg.actions,
            control_period=self.control_dt,
            joint_pos_lower=tuple(float(v) for v in self.index.joint_lower),
            joint_pos_upper=tuple(float(v) for v in self.index.joint_upper),
            robot=self.robot.name,
            default_joint_pos=self.robot.default_pose(),
            leg_chains=self.leg_chains,
            joint_velocity_limit=self.robot.joint_velocity_limit,
        )

    def close(self) -> None:
        """Nothing to release (kept for interface parity with the multi-process env)."""

    # --- LocomotionTask hooks -------------------------------------------------------------

    def _advance(self, prev_targets: np.ndarray) -> State:
        m, d, idx = self.model, self.data, self.index
        episode_time = self.episode_step * self.control_dt
        self.randomizer.update_pushes(episode_time, self.control_dt, self.rng)
        d.xfrc_applied[idx.base_body] = self.randomizer.push_wrench
        latency = self.randomizer.latency
        qpos0, qvel0 = d.qpos.copy(), d.qvel.copy()  # for a robot whose physics diverges
        wall0, cpu0 = time.perf_counter(), time.thread_time()
        if latency.max(initial=0) == 0 and self._motor is None:
            d.ctrl[self._act_flat] = self.targets.ravel()
            mujoco.mj_step(m, d, nstep=self.decimation)
        else:  # step by step: late targets (`latency` steps) and the motors' speed envelope
            for sub in range(self.decimation):
                late = (sub < latency)[:, None]
                d.ctrl[self._act_flat] = np.where(late, prev_targets, self.targets).ravel()
                if self._motor is not None:  # the torque the motors have at this speed
                    strength = self.randomizer.motor_strength
                    vel = d.qvel[idx.qvel_joint]
                    m.actuator_forcerange[idx.actuator] = self._motor.force_range(vel, strength)
                mujoco.mj_step(m, d)
        self._physics_time += (time.perf_counter() - wall0, time.thread_time() - cpu0)
        self.diverged = self._roll_back_diverged(qpos0, qvel0)
        self._check_arena()
        mujoco.mj_rnePostConstraint(m, d)  # contact forces of the last physics step
        self.contact_valid[:] = True
        self._refresh_kinematics()
        s = self._gather(np.arange(self.num_envs))
        s["joint_effort"] = d.actuator_force[idx.actuator]  # torques of the last physics step
        return s

    def _roll_back_diverged(self, qpos0: np.ndarray, qvel0: np.ndarray) -> np.ndarray:
        """Robots whose physics diverged in this control period (NaN or inf in their state,
        or a speed over :data:`DIVERGED_SPEED`) go back to where they stood before it, at
        rest, and their episodes end; the others keep their step. (MuJoCo's own answer,
        disabled in build_world, resets the whole MjData: every robot of the batch jumped to
        the model's initial pose.)"""
        d = self.data
        speed = np.abs(d.qvel[self._qvel_rows]).max(axis=1)  # NaN and inf fail the test below
        bad = ~(np.isfinite(d.qpos[self._qpos_rows]).all(axis=1) & (speed <= DIVERGED_SPEED))
        if bad.any():
            d.qpos[self._qpos_rows[bad]] = qpos0[self._qpos_rows[bad]]
            d.qvel[self._qvel_rows[bad]] = 0.0
            d.qacc_warmstart[self._qvel_rows[bad]] = 0.0  # the solver's next start, NaN too
            mujoco.mj_forward(self.model, d)  # contacts and forces without the NaN
            warnings.warn(
                f"robots {np.flatnonzero(bad).tolist()}: physics diverged (NaN, inf or over "
                f"{DIVERGED_SPEED:g} m/s or rad/s) at "
                f"simulated time {d.time:.2f} s; rolled back, their episodes end",
                RuntimeWarning, stacklevel=2,
            )  # fmt: skip
        return bad

    def _check_arena(self) -> None:
        """Warn when MuJoCo ran out of arena memory: it then drops every contact and
        constraint of that physics step, for the whole batch, and says so only in
        MUJOCO_LOG.TXT."""
        full = sum(int(self.data.warning[w].number) for w in _ARENA_WARNINGS)
        if full > self._arena_overflows:
            warnings.warn(
                f"MuJoCo ran out of arena memory {full - self._arena_overflows} time(s) at "
                f"simulated time {self.data.time:.2f} s: those physics steps lost every "
                f"contact; run fewer robots per process (env.num_workers) or a coarser terrain",
                RuntimeWarning, stacklevel=2,
            )  # fmt: skip
            self._arena_overflows = full

    def _terminations(self, s: State) -> tuple[np.ndarray, np.ndarray]:
        terminated = self._tilted(s) | self.diverged  # a diverged robot was rolled back
        if self.cfg.termination.base_contact:
            terminated |= s["base_contact"]
        margin = 0.5
        xy = s["base_pos"][:, :2]
        off_map = (
            (xy[:, 0] < margin)
            | (xy[:, 1] < margin)
            | (xy[:, 0] > self.terrain.size_x - margin)
            | (xy[:, 1] > self.terrain.size_y - margin)
        )
        return terminated, off_map

    def _speed_limits_by_tile(self) -> np.ndarray | None:
        """``[levels + 1, columns + 1]`` m/s, rewards.speed_limits on every tile (inf where
        none applies), with a last row and column of inf for the border (level or column
        -1); None without limits."""
        rewards = self.cfg.rewards
        if not rewards.speed_limits or self.terrain.flat:
            return None
        terrain = self.terrain
        by_column = np.array([rewards.speed_limits.get(t, np.inf) for t in terrain.column_types])
        table = np.full((terrain.num_levels + 1, terrain.num_columns + 1), np.inf)
        table[:-1, :-1] = by_column
        if rewards.speed_limits_by_difficulty:
            difficulty = terrain.level_difficulty[:, None]
            with np.errstate(divide="ignore"):  # difficulty 0: no limit
                table[:-1, :-1] = np.where(difficulty > 0, by_column / difficulty, np.inf)
        return table

    def _speed_limit(self, s: State) -> np.ndarray | None:
        if self._tile_speed_limit is None:
            return None
        level, column, from_centre = self.terrain.locate(s["base_pos"][:, :2])
        # On a platform's middle the robot sees only flat ground: no limit it could tell.
        seen = from_centre > self.cfg.terrain.platform_size / 2 - self.cfg.rewards.speed_limit_lead
        return np.where(seen, self._tile_speed_limit[level, column], np.inf)

    def _extra_info(self, s: State) -> dict[str, Any]:
        info: dict[str, Any] = {"terrain_level": self.levels.copy()}
        if self.report_gait:
            info["gait"] = self._gait(s)
        return info

    def _gait(self, s: State) -> dict[str, np.ndarray]:
        """What :class:`~anymal_ros.eval.gait.GaitMeter` reads: heights above the terrain
        directly below (base, soles, the lowest point of the trunk's underside), the spread of
        the terrain under each foot, the joints' and limbs' raw state of this step, whether the
        trunk or a hip touches, which the evaluation reads as a fall's cause, and where the
        base is (where a robot fell)."""
        return {
            "base_height": s["base_pos"][:, 2] - self.terrain.heights(s["base_pos"][:, :2]),
            "foot_clearance": s["foot_clearance"].copy(),
            "trunk_clearance": s["trunk_clearance"].min(axis=1),
            "foothold_relief": s["foothold_relief"],
            "foot_contact": s["foot_contact"].copy(),
            "thigh_shank_contact": s["thigh_shank_contact"].copy(),
            "joint_pos": s["joint_pos"].copy(),
            "joint_vel": s["joint_vel"].copy(),
            "joint_effort": s["joint_effort"].copy(),
            "base_contact": s["base_contact"].copy(),
            "base_xy": s["base_pos"][:, :2].copy(),
        }

    def _restart(self, ids: np.ndarray, s: State) -> Obs:
        self._update_curriculum(ids, s)
        self._reset_envs(ids)
        self._refresh_kinematics()
        return self._observe(ids, self._gather(ids))

    # --- internals ------------------------------------------------------------------------

    def _seed(self, seed: int) -> None:
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)

    def _refresh_kinematics(self) -> None:
        # Positions and velocities of bodies for the current qpos/qvel (mj_step leaves the
        # ones computed before its last integration).
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)
        mujoco.mj_comVel(self.model, self.data)

    def _reset_envs(self, ids: np.ndarray) -> None:
        cfg, d, idx, rng = self.cfg, self.data, self.index, self.rng
        k = ids.size
        self.randomizer.reset(ids, rng)
        self._begin_episodes(ids)
        origin = self.terrain.tile_origins[self.levels[ids], self.columns[ids]]
        self.origins[ids] = origin
        noise = cfg.robot.init_xy_noise
        xy = origin[:, :2] + rng.uniform(-noise, noise, size=(k, 2))
        self.start_xy[ids] = xy
        z = self.terrain.heights(xy) + cfg.robot.init_height
        yaw = rng.uniform(-np.pi, np.pi, size=k)
        joints = self.default_joint_pos + rng.uniform(
            -cfg.robot.init_joint_noise, cfg.robot.init_joint_noise, size=(k, NUM_JOINTS)
        )
        joints = np.clip(joints, idx.joint_lower, idx.joint_upper)
        d.qpos[idx.qpos_base[ids]] = np.concatenate([xy, z[:, None], quat_from_yaw(yaw)], axis=1)
        d.qpos[idx.qpos_joint[ids]] = joints
        d.qvel[idx.qvel_base[ids]] = 0.0
        d.qvel[idx.qvel_joint[ids]] = 0.0
        d.qacc_warmstart[idx.dof_base[ids]] = 0.0
        d.qacc_warmstart[idx.dof_joint[ids]] = 0.0
        d.xfrc_applied[idx.base_body[ids]] = 0.0
        d.ctrl[idx.actuator[ids]] = self.default_joint_pos
        self.contact_valid[ids] = False

    def _update_curriculum(self, ids: np.ndarray, s: State) -> None:
        if not self.cfg.terrain.curriculum:
            return
        xy = s["base_pos"][ids, :2]
        if self.cfg.terrain.curriculum_demotion == "displacement":
            # From where it started to where it got, against where its commands would have
            # taken it: a turn counts as a turn.
            dist = np.linalg.norm(xy - self.start_xy[ids], axis=1)
            expected = np.linalg.norm(self.commands.path[ids], axis=1)
        else:  # "speed": the first edition's, from the tile's centre, however the commands turned
            dist = np.linalg.norm(xy - self.origins[ids, :2], axis=1)
            expected = np.linalg.norm(self.commands.command[ids, :2], axis=1) * (
                self.episode_step[ids] * self.control_dt
            )
        tile = self.cfg.terrain.tile_size
        up = dist > tile / 2
        if self.cfg.terrain.curriculum_promotion == "path":
            up |= (dist >= PATH_PROMOTION_SHARE * expected) & (dist > tile / 4)
        down = (dist < 0.5 * expected) & ~up
        levels = self.levels[ids] + up.astype(int) - down.astype(int)
        top = self.terrain.num_levels
        # Robots that master the hardest level restart at a random one (keeps them spread).
        beyond = levels >= top
        levels[beyond] = self.rng.integers(0, top, size=int(beyond.sum()))
        self.levels[ids] = np.maximum(levels, 0)

    def _trunk_clearance(self, base_pos: np.ndarray, quat: np.ndarray) -> np.ndarray:
        """``[k, P]`` m: the trunk's underside points above the terrain directly below."""
        k, p = len(base_pos), len(self._trunk_points)
        world = base_pos[:, None] + quat_rotate(
            np.repeat(quat, p, axis=0), np.tile(self._trunk_points, (k, 1))
        ).reshape(k, p, 3)
        return world[..., 2] - self.terrain.heights(world[..., :2])

    def _swing_clearance(
        self, foot_pos: np.ndarray, soles: np.ndarray, foot_vel_xy: np.ndarray
    ) -> np.ndarray:
        """``[k, 4]`` m: soles above the highest terrain from directly below each foot to
        ``rewards.swing_clearance_lookahead`` ahead along its path over the ground (what the
        foot_clearance reward reads). A foot at rest looks only below itself."""
        speed = np.linalg.norm(foot_vel_xy, axis=-1, keepdims=True)
        heading = foot_vel_xy / np.maximum(speed, 1e-6)  # [k, 4, 2]
        reach = self._swing_lookahead * np.array([0.0, 0.5, 1.0])
        points = foot_pos[..., None, :2] + reach[:, None] * heading[..., None, :]  # [k, 4, 3, 2]
        return soles - self.terrain.heights(points).max(axis=-1)

    def _foothold_relief(self, foot_pos: np.ndarray) -> np.ndarray:
        """``[k, 4]`` m: the spread of the terrain's heights under each foot, at its centre and
        ``rewards.foothold_margin`` from it along +-x and +-y (what foothold_edge reads)."""
        m = self.cfg.rewards.foothold_margin
        around = np.array([[0.0, 0.0], [m, 0.0], [-m, 0.0], [0.0, m], [0.0, -m]])
        heights = self.terrain.heights(foot_pos[..., None, :2] + around)  # [k, 4, 5]
        return heights.max(axis=-1) - heights.min(axis=-1)

    def _gather(self, ids: np.ndarray) -> State:
        """Raw state of robots ``ids`` from MjData (current qpos/qvel, fresh kinematics)."""
        d, idx = self.data, self.index
        qpos = d.qpos[idx.qpos_base[ids]]
        qvel = d.qvel[idx.qvel_base[ids]]
        quat = qpos[:, 3:7]
        s = {"qpos": qpos, "qvel": qvel, "base_pos": qpos[:, :3], "base_quat": quat}
        s["base_lin_vel"] = quat_rotate_inverse(quat, qvel[:, :3])
        s["base_ang_vel"] = qvel[:, 3:6]  # a free joint's angular velocity is in the body frame
        s["gravity"] = projected_gravity(quat)
        s["joint_pos"] = d.qpos[idx.qpos_joint[ids]]
        s["joint_vel"] = d.qvel[idx.qvel_joint[ids]]
        feet = idx.foot_body[ids]
        foot_pos = s["foot_pos"] = d.xpos[feet]  # [k, 4, 3]
        # Base above the feet's mean sole height: the stance height on any terrain.
        s["base_height"] = qpos[:, 2] - (foot_pos[..., 2].mean(axis=1) - self.foot_radius.mean())
        # Soles above the terrain directly below (rewards: a swinging foot's clearance).
        soles = foot_pos[..., 2] - self.foot_radius
        s["foot_clearance"] = soles - self.terrain.heights(foot_pos[..., :2])
        if self._weigh_trunk or self.report_gait:
            s["trunk_clearance"] = self._trunk_clearance(qpos[:, :3], quat)
        if self._weigh_footholds or self.report_gait:
            s["foothold_relief"] = self._foothold_relief(foot_pos)
        # Foot point velocity from the com-based spatial velocity (rotation, translation):
        # v + w x r, written out for x and y (np.cross costs more than the arithmetic here).
        cvel = d.cvel[feet]
        r = foot_pos - d.subtree_com[self._foot_root[ids]]
        w = cvel[..., :3]
        foot_vel_xy = np.empty(feet.shape + (2,))
        foot_vel_xy[..., 0] = cvel[..., 3] + (w[..., 1] * r[..., 2] - w[..., 2] * r[..., 1])
        foot_vel_xy[..., 1] = cvel[..., 4] + (w[..., 2] * r[..., 0] - w[..., 0] * r[..., 2])
        s["foot_vel_xy"] = foot_vel_xy
        s["swing_clearance"] = (
            self._swing_clearance(foot_pos, soles, foot_vel_xy)
            if self._swing_lookahead
            else s["foot_clearance"]
        )
        # Forces of the last physics step (cfrc_ext: torque then force, world frame); a body
        # "touches" when |force| > threshold (compared squared: no square roots). cfrc_ext
        # also holds the wrench applied through xfrc_applied (the pushes of domain
        # randomisation), which is no contact: its force is taken out, or every push would
        # count as the base touching the ground and end the episode.
        cfrc, applied = d.cfrc_ext, d.xfrc_applied
        s["foot_force"] = cfrc[feet, 3:] - applied[feet, :3]
        thr2 = self.cfg.rewards.contact_force_threshold**2

        def touching(bodies: np.ndarray) -> np.ndarray:
            f = cfrc[bodies, 3:] - applied[bodies, :3]
            return (f * f).sum(axis=-1) > thr2

        s["thigh_shank_contact"] = touching(self._limb_bodies[ids]).astype(np.float64)
        s["base_contact"] = touching(idx.base_bodies[ids]).any(axis=1)
        foot_force = s["foot_force"]
        s["foot_contact"] = (foot_force * foot_force).sum(axis=-1) > thr2
        s["external_wrench"] = d.xfrc_applied[idx.base_body[ids]]
        valid = self.contact_valid[ids]
        if not valid.all():  # freshly reset robots: the last step's contacts are not theirs
            s["foot_force"] = s["foot_force"] * valid[:, None, None]
            s["thigh_shank_contact"] = s["thigh_shank_contact"] * valid[:, None]
            s["foot_contact"] = s["foot_contact"] & valid[:, None]
            s["base_contact"] = s["base_contact"] & valid
        s["foot_normal"] = self._foot_normals(ids, s["foot_contact"])
        return s

    def _foot_normals(self, ids: np.ndarray, foot_contact: np.ndarray) -> np.ndarray:
        """``[k, 4, 3]`` contact normals (pointing from the terrain into each foot)."""
        d, idx = self.data, self.index
        normals = np.zeros((self.num_envs, NUM_LEGS, 3))
        if d.ncon:
            geom = d.contact.geom  # [ncon, 2]
            frame = d.contact.frame[:, :3]  # normal, from geom1 towards geom2
            leg2 = idx.geom_leg[geom[:, 1]]
            leg1 = idx.geom_leg[geom[:, 0]]
            sel2 = leg2 >= 0
            normals[idx.geom_env[geom[sel2, 1]], leg2[sel2]] = frame[sel2]
            sel1 = leg1 >= 0
            normals[idx.geom_env[geom[sel1, 0]], leg1[sel1]] = -frame[sel1]
        return normals[ids] * foot_contact[..., None]

    def _observe(self, ids: np.ndarray, s: State) -> Obs:
        yaw = yaw_from_quat(s["base_quat"])
        heights, _ = self.sample_heights(s["foot_pos"], yaw)
        proprio = self._proprio(ids, s, heights)
        k = ids.size
        # [k, 4 feet + 2, 3]: the feet's forces and normals, the push's force and torque.
        vectors = np.concatenate(
            [s["foot_force"], s["foot_normal"], s["external_wrench"].reshape(k, 2, 3)], axis=1
        )
        if self.cfg.privileged_frame == "yaw":
            vectors = world_to_yaw_frame(vectors, yaw)
        priv = np.empty((k, PRIVILEGED_DIM), dtype=np.float32)
        priv[:, _PRIV["foot_contact"]] = s["foot_contact"]
        priv[:, _PRIV["foot_contact_force"]] = vectors[:, :NUM_LEGS].reshape(k, -1)
        priv[:, _PRIV["foot_contact_normal"]] = vectors[:, NUM_LEGS : 2 * NUM_LEGS].reshape(k, -1)
        priv[:, _PRIV["foot_friction"]] = self.randomizer.foot_friction[ids]
        priv[:, _PRIV["thigh_shank_contact"]] = s["thigh_shank_contact"]
        priv[:, _PRIV["external_wrench"]] = vectors[:, 2 * NUM_LEGS :].reshape(k, -1)
        priv[:, _PRIV["foot_air_time"]] = self.air_time[ids]
        return {"proprio": proprio, "extero": heights, "privileged": priv}
