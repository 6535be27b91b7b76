"""Velocity commands (vx, vy, yaw rate in the base frame) and their resampling."""

from __future__ import annotations

import numpy as np

from anymal_ros.config.sim import CommandConfig
from anymal_ros.obs.governor import speed_limited


class CommandManager:
    """Holds ``command [N, 3]``; resamples each robot's every ``resample_time`` seconds
    unless fixed with :meth:`set`. Also follows where the commands would have taken each robot
    since its episode began (``path [N, 2]``, m, in the frame of its starting heading): a
    robot told to turn at 1 rad/s gets nowhere however well it walks, and the terrain
    curriculum must not count that against it. With ``cfg.heading`` the yaw rates steer each
    robot to a heading drawn with its command (:meth:`step` needs the robots' yaw then)."""

    def __init__(self, cfg: CommandConfig, num_envs: int, control_dt: float):
        self.cfg = cfg
        self.command = np.zeros((num_envs, 3))
        self.time_left = np.zeros(num_envs)
        self.fixed = np.zeros(num_envs, dtype=bool)
        self.control_dt = control_dt
        self.path = np.zeros((num_envs, 2))
        self.heading = np.zeros(num_envs)  # rad, relative to the episode's start
        # cfg.heading: the world-frame heading each robot steers to, and who steers (not the
        # standing robots, nor those whose commands were set)
        self.target_heading = np.zeros(num_envs)
        self.steering = np.zeros(num_envs, dtype=bool)

    def restart(self, ids: np.ndarray) -> None:
        """New episodes for ``ids``: their commanded paths start again from zero."""
        self.path[ids] = 0.0
        self.heading[ids] = 0.0

    def sample(self, ids: np.ndarray, rng: np.random.Generator) -> None:
        ids = ids[~self.fixed[ids]]
        if ids.size == 0:
            return
        c = self.cfg
        lo = np.array([c.lin_vel_x[0], c.lin_vel_y[0], c.ang_vel_yaw[0]])
        hi = np.array([c.lin_vel_x[1], c.lin_vel_y[1], c.ang_vel_yaw[1]])
        cmd = rng.uniform(lo, hi, size=(ids.size, 3))
        small = np.linalg.norm(cmd[:, :2], axis=1) < c.small_threshold
        cmd[small, :2] = 0.0
        standing = rng.random(ids.size) < c.standing_fraction
        cmd[standing] = 0.0
        if c.heading:  # the yaw rate follows the heading from the next step on
            self.target_heading[ids] = rng.uniform(-np.pi, np.pi, size=ids.size)
            self.steering[ids] = ~standing
            cmd[:, 2] = 0.0
        self.command[ids] = cmd
        self.time_left[ids] = c.resample_time

    def step(
        self,
        rng: np.random.Generator,
        yaw: np.ndarray | None = None,
        speed_limit: np.ndarray | None = None,
    ) -> None:
        """Advance the commanded paths and the timers by one control period (the commands of
        the period that ended, at most ``speed_limit [N]`` m/s where given: the path a robot
        was asked to walk) and resample those that ran out; with ``cfg.heading``, steer the
        yaw rates of the next period towards the robots' headings from their ``yaw [N]``
        (rad, world frame)."""
        dt = self.control_dt
        cos, sin = np.cos(self.heading), np.sin(self.heading)
        walked = speed_limited(self.command, speed_limit)
        vx, vy = walked[:, 0], walked[:, 1]
        self.path[:, 0] += (cos * vx - sin * vy) * dt
        self.path[:, 1] += (sin * vx + cos * vy) * dt
        self.heading += self.command[:, 2] * dt
        self.time_left -= dt
        due = np.flatnonzero(self.time_left <= 0.0)
        if due.size:
            self.sample(due, rng)
        if self.cfg.heading:
            if yaw is None:
                raise ValueError("heading commands need the robots' yaw")
            error = (self.target_heading - yaw + np.pi) % (2.0 * np.pi) - np.pi  # [-pi, pi)
            lo, hi = self.cfg.ang_vel_yaw
            steer = self.steering
            self.command[steer, 2] = np.clip(self.cfg.heading_gain * error[steer], lo, hi)

    def set(self, command: np.ndarray, ids: np.ndarray | None = None, fixed: bool = True) -> None:
        """Set ``command`` ([3] or [len(ids), 3]) for ``ids`` (all if None); ``fixed`` stops
        their resampling (evaluation), ``fixed=False`` lets it resume."""
        sel = slice(None) if ids is None else np.asarray(ids, dtype=np.intp)
        cmd = np.asarray(command, dtype=np.float64)
        if cmd.shape[-1] != 3:
            raise ValueError(f"command must have 3 values (vx, vy, yaw rate), got {cmd.shape}")
        self.command[sel] = cmd
        self.fixed[sel] = fixed
        self.steering[sel] = False  # a set yaw rate holds until the next resampling
        self.time_left[sel] = self.cfg.resample_time
