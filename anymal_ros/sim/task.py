"""LocomotionTask: the velocity-tracking locomotion task, apart from the simulator that moves
the robots.

What a policy step *means* is the same whether the robots live in MuJoCo
(:class:`~anymal_ros.sim.env.QuadrupedVecEnv`) or behind ROS topics
(:class:`~anymal_ros.bridges.ros_topics.RosTopicVecEnv`): the action is checked, clipped and
decoded into joint targets; feet touching down get their air time; the reward terms of
:mod:`anymal_ros.sim.rewards` are computed; episodes are counted, time-limited and reported in
``info``; commands are resampled; ended episodes restart and their first observation replaces
the last one in ``obs``. This module holds that sequence once, so a reward or termination
change is made in one place.

A simulator subclasses :class:`LocomotionTask` and supplies only what differs:

* :meth:`LocomotionTask._advance`: send the new joint targets, let one control period pass,
  return the raw state (MuJoCo arrays, or parsed topic messages);
* :meth:`LocomotionTask._terminations`: its fall test and any early truncation (base contact
  and leaving the map in MuJoCo; tilt and a low base over topics);
* :meth:`LocomotionTask._observe`: exteroception and privileged state (proprioception is
  shared: :meth:`LocomotionTask._proprio`);
* :meth:`LocomotionTask._restart`: reset robots whose episode ended (calling
  :meth:`LocomotionTask._begin_episodes` for the task's share);
* optionally :meth:`LocomotionTask._extra_info` for simulator-specific ``info`` keys.

Why a base class and not a task object the environments hold: what is shared is the *order*
of one step (validate -> simulate -> contacts -> reward -> terminate -> report -> observe ->
restart), with simulator work in the middle of it. A helper object would leave that order
written out in every environment, which is the duplication this module removes; the template
method keeps it in :meth:`LocomotionTask.step` and the hooks are the short list above. It also
keeps the task state where users already read it (``env.targets``, ``env.episode_step``,
``env.decoder``, ``env.commands``) without forwarding properties.

No MuJoCo or ROS here: both simulators import this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from anymal_ros.config.robot import load_robot
from anymal_ros.config.sim import SimConfig
from anymal_ros.contract import EXTERO_SHAPE, NUM_JOINTS, NUM_LEGS, PRIVILEGED_DIM
from anymal_ros.obs.actions import ActionDecoder
from anymal_ros.obs.governor import SpeedGovernor, StanceFeet, checked_caps, speed_limited
from anymal_ros.obs.proprio import ProprioBuilder
from anymal_ros.obs.rotations import yaw_from_quat
from anymal_ros.sim.commands import CommandManager
from anymal_ros.sim.interface import Obs, StepResult
from anymal_ros.sim.rewards import RewardState, compute_rewards

#: Raw state of k robots: name -> array with k rows (see :meth:`LocomotionTask._advance`).
State = dict[str, np.ndarray]


class LocomotionTask:
    """Task state and the step sequence shared by the quadruped vector envs (module docstring).

    Args:
        cfg: simulator settings; the task reads ``actions``, ``commands``, ``rewards``,
            ``termination``, the robot's ``joint_velocity_limit`` and ``control_dt``.
        num_envs: number of robots N.
        decoder: the action decoder (its joint limits are the simulator's business).

    A subclass sets ``self.rng`` (commands are drawn from it) before the first step.
    """

    rng: np.random.Generator

    def __init__(self, cfg: SimConfig, num_envs: int, decoder: ActionDecoder) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        n = num_envs
        self.cfg = cfg
        self.num_envs = n
        self.control_dt = cfg.control_dt
        self.decoder = decoder
        self.proprio = ProprioBuilder(
            n, cpg=decoder.mode == "cpg", default_joint_pos=decoder.default_joint_pos
        )
        self.commands = CommandManager(cfg.commands, n, self.control_dt)
        governor = cfg.commands.governor
        #: ``commands.governor``: caps the command each robot's policy sees (None: off).
        self.governor = None
        if governor is not None:
            stance = None
            if governor.stance_threshold is not None:
                if decoder.mode != "cpg" or decoder.kinematics is None:
                    raise ValueError("commands.governor.stance_threshold needs the CPG action mode")
                legs = decoder.kinematics.chains
                stance = StanceFeet(legs, decoder.default_joint_pos, self.proprio.layout)
            self.governor = SpeedGovernor(governor, self.control_dt, n, stance)
        #: ``[N]`` m/s set by a governor outside the simulator (:meth:`set_command_caps`).
        self.outside_caps: np.ndarray | None = None
        self.proprio_dim = self.proprio.dim
        self._command = self.proprio.layout.slices()["command"]
        self.action_dim = decoder.action_dim
        self.extero_shape = EXTERO_SHAPE
        self.privileged_dim = PRIVILEGED_DIM
        self.observation_shapes = {
            "proprio": (self.proprio_dim,),
            "extero": EXTERO_SHAPE,
            "privileged": (PRIVILEGED_DIM,),
        }
        self.max_episode_steps = cfg.max_episode_steps
        self.cos_max_tilt = float(np.cos(cfg.termination.max_tilt))
        robot = load_robot(cfg.robot.description)
        self.joint_velocity_limit = robot.joint_velocity_limit
        self.nominal_base_height = robot.nominal_base_height
        self.targets = decoder.default_targets()  # [N, 12] being tracked now
        self.action = np.zeros((n, self.action_dim))
        self.prev_action = np.zeros((n, self.action_dim))
        self.prev_joint_vel = np.zeros((n, NUM_JOINTS))
        self.air_time = np.zeros((n, NUM_LEGS))
        self.episode_step = np.zeros(n, dtype=np.int64)
        self.episode_return = np.zeros(n)

    # --- the step -------------------------------------------------------------------------

    def step(self, action: np.ndarray) -> StepResult:
        """Advance every robot by one control period.

        Args:
            action: ``[N, A]`` float actions (A = ``action_dim``), clipped to
                ``actions.clip``.

        Returns:
            ``obs`` (dict, as ``reset``), ``reward [N]`` float32, ``terminated [N]`` bool
            (fell; the tests are the simulator's, see its class), ``truncated [N]`` bool (time
            limit, or the simulator's early cut-off; never where terminated), and ``info``:

            * ``command``, ``base_lin_vel``, ``base_ang_vel``: ``[N, 3]`` float32, base frame,
              for this step (before any reset);
            * ``reward_terms``: name -> ``[N]`` float32 weighted terms (their sum is the reward
              before ``rewards.only_positive`` clips it at zero; ``fall``, where weighted,
              comes after the clip);
            * the simulator's own keys (e.g. ``terrain_level`` in MuJoCo);
            * ``final_obs``: obs dict; rows where ``terminated | truncated`` hold the old
              episode's last observation (other rows equal ``obs``);
            * ``episode_return [N]`` float32 and ``episode_length [N]`` int64: valid where an
              episode ended this step (0 elsewhere).

            Where an episode ended, ``obs`` already holds the new episode's first observation.
        """
        a = self._check_action(action)
        self.prev_action, self.action = self.action, a
        prev_targets = self.targets
        self.targets = self.decoder.decode(a)
        s = self._advance(prev_targets)

        self._update_contacts(s)
        # The governor's cap is the one the policy saw (set when the last step observed).
        speed_limit = _tightest(self._speed_limit(s), self._command_caps())
        tracked = speed_limited(self.commands.command, speed_limit)
        reward, terms = self._rewards(s, tracked, speed_limit)
        self.prev_joint_vel = s["joint_vel"].copy()
        self.episode_step += 1

        terminated, cut_short = self._terminations(s)
        if self.cfg.rewards.fall != 0.0:
            terms["fall"] = (self.cfg.rewards.fall * terminated).astype(np.float32)
            reward = reward + terms["fall"]
        self.episode_return += reward
        ended = self.episode_step >= self.max_episode_steps
        if cut_short is not None:
            ended = ended | cut_short
        truncated = ended & ~terminated

        info: dict[str, Any] = {
            "command": self.commands.command.astype(np.float32),
            "base_lin_vel": s["base_lin_vel"].astype(np.float32),
            "base_ang_vel": s["base_ang_vel"].astype(np.float32),
            "reward_terms": terms,
            **self._extra_info(s),
        }
        self.commands.step(self.rng, yaw_from_quat(s["base_quat"]), speed_limit)
        obs = self._observe(np.arange(self.num_envs), s)
        done = terminated | truncated
        done_ids = np.flatnonzero(done)
        info["final_obs"] = {k: v.copy() for k, v in obs.items()} if done_ids.size else obs
        info["episode_return"] = np.where(done, self.episode_return, 0.0).astype(np.float32)
        info["episode_length"] = np.where(done, self.episode_step, 0)
        if done_ids.size:
            fresh = self._restart(done_ids, s)
            for key, value in fresh.items():
                obs[key][done_ids] = value
        return obs, reward, terminated, truncated, info

    # --- hooks of the simulator -----------------------------------------------------------

    def _advance(self, prev_targets: np.ndarray) -> State:
        """Apply ``self.targets [N, 12]`` for one control period (``prev_targets`` are the
        ones they replace, for actuation latency) and return the raw state of all N robots:
        ``joint_pos``, ``joint_vel``, ``joint_effort`` ``[N, 12]``; ``base_quat [N, 4]``;
        ``base_lin_vel``, ``base_ang_vel``, ``gravity`` ``[N, 3]`` (base frame);
        ``foot_contact [N, 4]`` bool; ``foot_vel_xy [N, 4, 2]`` (world frame);
        ``thigh_shank_contact [N, 8]`` 0/1; plus whatever its own hooks read."""
        raise NotImplementedError

    def _terminations(self, s: State) -> tuple[np.ndarray, np.ndarray | None]:
        """``(terminated [N] bool, cut_short [N] bool or None)``: the robots that fell, and
        those whose episode ends early without a fall (truncation besides the time limit)."""
        raise NotImplementedError

    def _observe(self, ids: np.ndarray, s: State) -> Obs:
        """Observations of robots ``ids`` from their raw state ``s`` (``len(ids)`` rows);
        advances their proprioceptive histories."""
        raise NotImplementedError

    def _restart(self, ids: np.ndarray, s: State) -> Obs:
        """Start new episodes for robots ``ids`` (``s``: every robot's state at the end of the
        step) and return their first observations."""
        raise NotImplementedError

    def _speed_limit(self, s: State) -> np.ndarray | None:
        """``[N]`` m/s: the planar speed each robot is rewarded for at most where it stands
        now (inf: its command's; ``rewards.speed_limits``), from its raw state ``s``; None
        where no limit applies (the default)."""
        return None

    def _command_caps(self) -> np.ndarray | None:
        """``[N]`` m/s: the governors' cap on each robot's planar command (inf: none), the
        tighter of the simulator's own and the one set from outside; None without either."""
        own = None if self.governor is None else self.governor.caps()
        return _tightest(own, self.outside_caps)

    def _extra_info(self, s: State) -> dict[str, Any]:
        """Simulator-specific ``info`` entries of a step, from its state ``s`` (none by
        default)."""
        return {}

    def set_command_caps(self, caps: np.ndarray | None) -> None:
        """A governor outside the simulator (DAgger's, on the student's belief) capped each
        robot's observed command to ``caps [N]`` m/s (inf: not capped) for the next step: its
        tracking, reward and commanded path (the curriculum's yardstick) take the cap, until
        set again. None clears it. The command in the observations is the caller's to cap."""
        self.outside_caps = None if caps is None else checked_caps(caps, self.num_envs).copy()

    # --- shared pieces --------------------------------------------------------------------

    def _check_action(self, action: np.ndarray) -> np.ndarray:
        """``[N, A]`` float64 actions clipped to ``actions.clip``; a clear error otherwise."""
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (self.num_envs, self.action_dim):
            raise ValueError(
                f"action: expected shape {(self.num_envs, self.action_dim)}, got {a.shape}"
            )
        if not np.all(np.isfinite(a)):
            raise ValueError("action contains NaN or inf")
        return np.clip(a, -self.cfg.actions.clip, self.cfg.actions.clip)

    def _update_contacts(self, s: State) -> None:
        """Air-time bookkeeping of one control step (all robots): adds ``first_contact``
        (touched down this step), ``air_time_at_touchdown`` and ``air_time`` ``[N, 4]`` to
        ``s``."""
        contact = s["foot_contact"]
        self.air_time += self.control_dt
        first = (self.air_time > self.control_dt * 1.5) & contact
        s["first_contact"] = first
        s["air_time_at_touchdown"] = np.where(first, self.air_time - self.control_dt, 0.0)
        self.air_time[contact] = 0.0
        s["air_time"] = self.air_time.copy()

    def _rewards(
        self, s: State, tracked: np.ndarray, speed_limit: np.ndarray | None
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``(reward [N] float32, weighted terms)`` of the step that led to ``s``, tracking
        the commands ``tracked [N, 3]`` under the planar speed limits ``speed_limit [N]``."""
        state = RewardState(
            command=tracked,
            base_lin_vel=s["base_lin_vel"],
            base_ang_vel=s["base_ang_vel"],
            joint_vel=s["joint_vel"],
            prev_joint_vel=self.prev_joint_vel,
            torques=s["joint_effort"],
            action=self.action,
            prev_action=self.prev_action,
            thigh_shank_contact=s["thigh_shank_contact"],
            foot_contact=s["foot_contact"],
            foot_vel_xy=s["foot_vel_xy"],
            first_contact=s["first_contact"],
            air_time_at_touchdown=s["air_time_at_touchdown"],
            base_height=s["base_height"],
            joint_pos=s["joint_pos"],
            control_dt=self.control_dt,
            joint_velocity_limit=self.joint_velocity_limit,
            nominal_base_height=self.nominal_base_height,
            default_joint_pos=self.decoder.default_joint_pos,
            foot_clearance=s.get("swing_clearance"),
            trunk_clearance=s.get("trunk_clearance"),
            speed_limit=speed_limit,
            foothold_relief=s.get("foothold_relief"),
        )
        return compute_rewards(state, self.cfg.rewards)

    def _tilted(self, s: State) -> np.ndarray:
        """``[N]`` bool: base tilted beyond ``termination.max_tilt``."""
        return s["gravity"][:, 2] > -self.cos_max_tilt

    def _begin_episodes(self, ids: np.ndarray) -> None:
        """The task's share of starting new episodes for robots ``ids``: new commands, gait
        and observation histories restarted, targets back to the default pose, counters 0."""
        self.commands.restart(ids)
        self.commands.sample(ids, self.rng)
        if self.governor is not None:
            self.governor.reset(ids)
        self.decoder.reset(ids)
        self.proprio.reset(ids)
        self.targets[ids] = self.decoder.default_joint_pos
        self.action[ids] = 0.0
        self.prev_action[ids] = 0.0
        self.prev_joint_vel[ids] = 0.0
        self.air_time[ids] = 0.0
        self.episode_step[ids] = 0
        self.episode_return[ids] = 0.0

    def _proprio(self, ids: np.ndarray, s: State, heights: np.ndarray) -> np.ndarray:
        """``[len(ids), P]`` float32 proprioception of robots ``ids`` (shared contract); the
        heights around their feet now (``[len(ids), 4, 52]``, the extero observation: the
        true ones in MuJoCo) let the governor, if any, cap the command in it."""
        command = self.commands.command[ids]
        proprio = self.proprio.build(
            joint_pos=s["joint_pos"],
            joint_vel=s["joint_vel"],
            base_quat=s["base_quat"],
            base_lin_vel=s["base_lin_vel"],
            base_ang_vel=s["base_ang_vel"],
            command=command,
            joint_targets=self.targets[ids],
            env_ids=ids,
            **self.decoder.proprio_cpg_kwargs(ids),
        )
        if self.governor is not None:  # it reads the stance feet from the proprioception too
            self.governor.observe(heights, ids, proprio=proprio)
            capped = speed_limited(command, self.governor.caps()[ids])
            proprio[:, self._command] = capped
        return proprio


def _tightest(*limits: np.ndarray | None) -> np.ndarray | None:
    """The elementwise least of the given ``[N]`` speed limits (None: no limit)."""
    given = [limit for limit in limits if limit is not None]
    return np.minimum.reduce(given) if given else None
