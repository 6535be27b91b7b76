"""A speed governor: a planar command capped where the heights around the feet show steps.

Told to walk at most 0.4 m/s, the second edition's student falls 9-28 times less often on the
scorecard's stairs, but a robot told so everywhere walks slowly everywhere. The governor slows
it only where the ground asks for it: after every control step it reads heights around the
feet and, for ``hold`` seconds after their spread last exceeded the threshold, caps the planar
part of the command the policy sees (vx, vy; direction kept, yaw rate untouched).

It runs in two places, with the same rule:

* **deployed**, on a student's belief: the heights its decoder reconstructs
  (:meth:`OnnxPolicy.belief <anymal_ros.deploy.runtime.OnnxPolicy.belief>`, a cleaner view
  than the noisy heights themselves), with the settings the file carries; in evaluation
  (``anymal_ros.eval.policies``, ``N`` robots) and in the policy node (one robot);
* **in training**, on the simulator's true heights (``commands.governor``,
  :class:`~anymal_ros.sim.task.LocomotionTask`): the policy learns the stairs at the speed
  it will be told there, and the tracking reward asks for that speed;
* **in distillation**, on the student's belief (``dagger.governor``,
  :class:`~anymal_ros.rl.dagger.DAggerCollector`), which tells the simulator its caps.

It lives beside the observation builders since both the simulator and the runtime shape the
command a policy observes with it. numpy only, like the runtime.

A height that is not finite reads as steps: a governor unsure of the ground slows down.
"""

from __future__ import annotations

import numpy as np

from anymal_ros.config.sim import SpeedGovernorConfig


def height_spread(heights: np.ndarray, percentile: float = 10.0) -> np.ndarray:
    """``[...]`` m: the largest over the feet of the ``100 - percentile``th minus the
    ``percentile``th percentile of a foot's heights ``[..., feet, points]``; ``inf`` where a
    height is not finite. Per foot: each foot's heights are relative to its own sole, so a
    spread across feet would count the robot's posture as terrain."""
    heights = np.asarray(heights, dtype=np.float64)
    # np.percentile's linear interpolation on a sorted copy: a quarter of its cost (every tick).
    ordered = np.sort(heights, axis=-1)
    last = ordered.shape[-1] - 1

    def at(q: float) -> np.ndarray:
        pos = q / 100.0 * last
        below = int(np.floor(pos))
        above, weight = min(below + 1, last), pos - below
        return ordered[..., below] * (1.0 - weight) + ordered[..., above] * weight

    spread = np.max(at(100.0 - percentile) - at(percentile), axis=-1)
    return np.where(np.isfinite(heights).all(axis=(-2, -1)), spread, np.inf)


def speed_limited(command: np.ndarray, limit: np.ndarray | None) -> np.ndarray:
    """``command [N, 3]`` with each planar part (vx, vy) shortened to at most ``limit [N]``
    m/s (inf: unchanged), its direction kept; the yaw rate unchanged. None: no limit. The cap
    of the governor, and of the simulator's speed limits on the tracking reward."""
    if limit is None:
        return command
    speed = np.linalg.norm(command[:, :2], axis=1)
    scale = np.minimum(1.0, limit / np.maximum(speed, 1e-9))
    out = command.copy()
    out[:, :2] *= scale[:, None]
    return out


def checked_caps(caps: np.ndarray, num_envs: int) -> np.ndarray:
    """``caps`` as ``[num_envs]`` float64 planar speed caps (m/s, inf: none); a clear error
    for a wrong shape, NaN or a negative speed."""
    caps = np.asarray(caps, dtype=np.float64)
    if caps.shape != (num_envs,):
        raise ValueError(f"caps: expected shape {(num_envs,)}, got {caps.shape}")
    if not np.all(caps >= 0):  # NaN fails too
        raise ValueError("caps must be speeds >= 0 m/s (inf: none), got NaN or a negative one")
    return caps


class SpeedGovernor:
    """The governor of ``num_envs`` robots stepped every ``control_period`` seconds.

    Per control step: ``command = governor.limit(command)`` (or the planar speed under
    :meth:`caps`) before the policy step, then ``governor.observe(heights)`` after it (the cap
    then holds from the next step).
    """

    def __init__(
        self, config: SpeedGovernorConfig, control_period: float, num_envs: int = 1
    ) -> None:
        if not control_period > 0:
            raise ValueError(f"control_period must be > 0 s, got {control_period}")
        self.config = config
        #: Control steps the cap holds after steps were last seen.
        self.hold_steps = int(round(config.hold / control_period))
        self.num_envs = num_envs
        self._since = np.full(num_envs, self.hold_steps)  # steps since steps were last seen
        #: The latest spread of each robot's heights (m; NaN before the first).
        self.spread = np.full(num_envs, np.nan)
        #: Robot-steps :meth:`limit` was called for, and how many of them were capped.
        self.steps = 0
        self.capped_steps = 0

    def reset(self, env_ids: np.ndarray | None = None) -> None:
        """Forget what the robots saw (all, or ``env_ids``): new episodes, a new walk."""
        ids = slice(None) if env_ids is None else np.asarray(env_ids, dtype=np.int64)
        self._since[ids] = self.hold_steps
        self.spread[ids] = np.nan

    @property
    def capped(self) -> np.ndarray:
        """``[N]`` bool: whose command :meth:`limit` caps now."""
        return self._since < self.hold_steps

    def limit(self, command: np.ndarray) -> np.ndarray:
        """The command ``[N, 3]`` (or ``[3]`` for one robot: vx, vy, yaw rate) with each capped
        robot's planar speed at most ``slow_speed``, its direction kept (a copy)."""
        command = np.asarray(command, dtype=np.float64)
        capped = self.capped
        self.steps += capped.size
        self.capped_steps += int(np.count_nonzero(capped))
        return speed_limited(command.reshape(-1, 3), self.caps()).reshape(command.shape)

    def observe(self, heights: np.ndarray, env_ids: np.ndarray | None = None) -> None:
        """After a policy step: the heights ``[N, feet, points]`` (or ``[feet, points]``) around
        the robots' feet now (believed, or true in training); of ``env_ids`` only if given."""
        ids = slice(None) if env_ids is None else np.asarray(env_ids, dtype=np.int64)
        spread = height_spread(heights, self.config.spread_percentile).reshape(-1)
        self.spread[ids] = spread
        seen = ~(spread <= self.config.spread_threshold)  # inf and NaN read as steps
        self._since[ids] = np.where(seen, 0, np.minimum(self._since[ids] + 1, self.hold_steps))

    def caps(self) -> np.ndarray:
        """``[N]`` m/s: the planar speed each robot's command is capped to now (inf: none)."""
        return np.where(self.capped, self.config.slow_speed, np.inf)
