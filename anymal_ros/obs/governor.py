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

A second cue, off unless ``stance_threshold`` is set, is blind to the height map: the feet of
a standing diagonal pair stand level on flat ground, and at heights that differ from step to
step on rough ground (:class:`StanceCue`). A belief of noisy heights on 6 cm rough ground
spreads no wider than one of flat ground, so the spread alone cannot slow a robot there without
slowing it on flat ground too; the feet can.
"""

from __future__ import annotations

import numpy as np

from anymal_ros.config.robot import LegChains
from anymal_ros.config.sim import SpeedGovernorConfig
from anymal_ros.contract import NUM_LEGS, ObsLayout
from anymal_ros.obs.kinematics import LegKinematics

#: A leg counts as in stance while the sine of its CPG phase is below this (stance is
#: ``[pi, 2pi)``): deep in stance, away from touch-down and lift-off, when the foot is down.
STANCE_SIN = -0.3
#: The trot's diagonal pairs (front leg, hind leg), in the contract's leg order LF, RF, LH, RH.
DIAGONALS = ((0, 3), (1, 2))
_FRONT, _HIND = np.array(DIAGONALS).T  # index arrays, built once rather than every tick
#: s: the time constant of a diagonal pair's slow mean height difference. A slope or a tilted
#: gravity direction lasts longer; rough ground changes with every step (about 0.4 s a trot).
STANCE_TREND = 2.0


def foot_spreads(heights: np.ndarray, percentile: float = 10.0) -> np.ndarray:
    """``[..., feet]`` m: each foot's ``100 - percentile``th minus ``percentile``th percentile
    of its finite heights ``[..., feet, points]`` (:func:`height_spread` says where one is
    not finite)."""
    heights = np.asarray(heights, dtype=np.float64)
    # np.percentile's linear interpolation on a sorted copy: a quarter of its cost (every tick).
    ordered = np.sort(heights, axis=-1)
    last = ordered.shape[-1] - 1

    def at(q: float) -> np.ndarray:
        pos = q / 100.0 * last
        below = int(np.floor(pos))
        above, weight = min(below + 1, last), pos - below
        return ordered[..., below] * (1.0 - weight) + ordered[..., above] * weight

    return at(100.0 - percentile) - at(percentile)


def height_spread(heights: np.ndarray, percentile: float = 10.0) -> np.ndarray:
    """``[...]`` m: the largest over the feet of :func:`foot_spreads`; ``inf`` where a height
    is not finite. Per foot: each foot's heights are relative to its own sole, so a spread
    across feet would count the robot's posture as terrain."""
    heights = np.asarray(heights, dtype=np.float64)
    spread = np.max(foot_spreads(heights, percentile), axis=-1)
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


class StanceFeet:
    """Where the trot's diagonal pairs of feet stand, read from a policy's proprioception: its
    joint angles place the feet (forward kinematics), its gravity direction says which way is
    up, its CPG phase which legs stand.

    On flat ground a diagonal pair in stance stands level; on rough ground its two feet stand at
    heights that differ from step to step. A slope, or a gravity direction a degree off (1.6 cm
    between ANYmal C's front and hind feet), adds an offset that lasts: :class:`StanceCue`
    reads the strays from it.
    """

    def __init__(
        self, leg_chains: LegChains, default_joint_pos: np.ndarray, layout: ObsLayout
    ) -> None:
        slices = layout.slices()
        missing = [n for n in ("joint_pos", "gravity", "cpg_phase") if n not in slices]
        if missing:
            raise ValueError(
                f"the stance cue reads {missing} from the proprioception, which has none "
                "(only a policy of the CPG action mode says which legs stand)"
            )
        self.kinematics = LegKinematics(leg_chains)
        self.default_joint_pos = np.asarray(default_joint_pos, dtype=np.float64)
        self._joints, self._gravity = slices["joint_pos"], slices["gravity"]
        start = slices["cpg_phase"].start  # the legs' phase sines, then their cosines
        self._sin_phase = slice(start, start + NUM_LEGS)

    def diagonals(self, proprio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """From raw proprioception ``[N, P]``: ``[N, 2]`` m, the front foot's height along
        gravity minus the hind foot's of each diagonal pair (:data:`DIAGONALS`), and ``[N, 2]``
        whether both feet of the pair stand."""
        proprio = np.asarray(proprio, dtype=np.float64)
        proprio = proprio.reshape(-1, proprio.shape[-1])
        feet = self.kinematics.forward(self.default_joint_pos + proprio[:, self._joints])
        height = np.einsum("nfk,nk->nf", feet, -proprio[:, self._gravity])  # [N, 4], upwards
        stance = proprio[:, self._sin_phase] < STANCE_SIN
        return height[:, _FRONT] - height[:, _HIND], stance[:, _FRONT] & stance[:, _HIND]


class StanceCue:
    """The stance cue of ``num_envs`` robots: per control step, the largest stray of a standing
    diagonal pair's height difference from its own slow mean (time constant
    :data:`STANCE_TREND`), averaged over the last ``window`` seconds (fewer at an episode's
    start); 0 for a step where no pair stands."""

    def __init__(
        self, feet: StanceFeet, num_envs: int, control_period: float, window: float
    ) -> None:
        self.feet = feet
        self._follow = min(control_period / STANCE_TREND, 1.0)  # the slow mean's share a step
        self._trend = np.full((num_envs, len(DIAGONALS)), np.nan)  # NaN: not stood yet
        self._recent = np.full((num_envs, max(int(round(window / control_period)), 1)), np.nan)
        self._slot = np.zeros(num_envs, dtype=np.int64)

    def reset(self, ids: slice | np.ndarray) -> None:
        self._trend[ids] = np.nan
        self._recent[ids] = np.nan

    def observe(self, proprio: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``[len(rows)]`` m: the cue of robots ``rows`` after this step's raw proprioception
        ``[len(rows), P]`` (a reading that is not finite counts as rough)."""
        difference, standing = self.feet.diagonals(proprio)
        if difference.shape[0] != rows.size:
            raise ValueError(f"proprio: {difference.shape[0]} robots for {rows.size} observed")
        trend = self._trend[rows]
        trend = np.where(standing & np.isnan(trend), difference, trend)  # a first stand
        stray = np.where(standing, np.abs(difference - trend), 0.0)
        self._trend[rows] = np.where(standing, trend + self._follow * (difference - trend), trend)
        reading = np.max(stray, axis=1)
        self._recent[rows, self._slot[rows]] = np.where(np.isfinite(reading), reading, np.inf)
        self._slot[rows] = (self._slot[rows] + 1) % self._recent.shape[1]
        recent = self._recent[rows]
        known = ~np.isnan(recent)
        return np.where(known, recent, 0.0).sum(axis=1) / np.maximum(known.sum(axis=1), 1)


class SpeedGovernor:
    """The governor of ``num_envs`` robots stepped every ``control_period`` seconds.

    Per control step: ``command = governor.limit(command)`` (or the planar speed under
    :meth:`caps`) before the policy step, then ``governor.observe(heights, proprio=...)`` after
    it (the cap then holds from the next step). ``stance`` reads the stance cue from the
    proprioception; it is needed when the settings have a ``stance_threshold``.
    """

    def __init__(
        self,
        config: SpeedGovernorConfig,
        control_period: float,
        num_envs: int = 1,
        stance: StanceFeet | None = None,
    ) -> None:
        if not control_period > 0:
            raise ValueError(f"control_period must be > 0 s, got {control_period}")
        if config.stance_threshold is not None and stance is None:
            raise ValueError("stance_threshold is set, but the governor was not given the legs")
        self.config = config
        #: Control steps the cap holds after steps were last seen.
        self.hold_steps = int(round(config.hold / control_period))
        self.num_envs = num_envs
        self._since = np.full(num_envs, self.hold_steps)  # steps since steps were last seen
        #: The latest spread of each robot's heights (m; NaN before the first).
        self.spread = np.full(num_envs, np.nan)
        self.stance = (
            StanceCue(stance, num_envs, control_period, config.stance_window)
            if stance is not None and config.stance_threshold is not None
            else None
        )
        #: The latest stance cue of each robot (m; NaN before the first, or with the cue off).
        self.stance_stray = np.full(num_envs, np.nan)
        #: Whether each robot's feet alone (the stance cue, not the heights) last saw rough ground.
        self.seen_by_feet = np.zeros(num_envs, dtype=bool)
        #: Robot-steps :meth:`limit` was called for, and how many of them were capped.
        self.steps = 0
        self.capped_steps = 0

    def reset(self, env_ids: np.ndarray | None = None) -> None:
        """Forget what the robots saw (all, or ``env_ids``): new episodes, a new walk."""
        ids = slice(None) if env_ids is None else np.asarray(env_ids, dtype=np.int64)
        self._since[ids] = self.hold_steps
        self.spread[ids] = np.nan
        self.stance_stray[ids] = np.nan
        self.seen_by_feet[ids] = False
        if self.stance is not None:
            self.stance.reset(ids)

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

    def observe(
        self,
        heights: np.ndarray,
        env_ids: np.ndarray | None = None,
        proprio: np.ndarray | None = None,
    ) -> None:
        """After a policy step: the heights ``[N, feet, points]`` (or ``[feet, points]``) around
        the robots' feet now (believed, or true in training), and their raw proprioception
        ``[N, P]`` (or ``[P]``; read by the stance cue only, which needs it); of ``env_ids``
        only if given."""
        ids = slice(None) if env_ids is None else np.asarray(env_ids, dtype=np.int64)
        spread = height_spread(heights, self.config.spread_percentile).reshape(-1)
        self.spread[ids] = spread
        seen = ~(spread <= self.config.spread_threshold)  # inf and NaN read as steps
        if self.stance is not None:
            by_feet = self._stance_seen(ids, proprio)
            last = self.seen_by_feet[ids]
            self.seen_by_feet[ids] = np.where(seen | by_feet, by_feet & ~seen, last)
            seen |= by_feet
        self._since[ids] = np.where(seen, 0, np.minimum(self._since[ids] + 1, self.hold_steps))

    def _stance_seen(self, ids: slice | np.ndarray, proprio: np.ndarray | None) -> np.ndarray:
        """Whose stance cue, after reading ``proprio`` of robots ``ids``, exceeds the
        threshold."""
        if proprio is None:
            raise ValueError("the stance cue reads the proprioception: observe(..., proprio=)")
        assert self.stance is not None and self.config.stance_threshold is not None
        rows = np.arange(self.num_envs)[ids]
        stray = self.stance.observe(proprio, rows)
        self.stance_stray[rows] = stray
        return ~(stray <= self.config.stance_threshold)

    def caps(self) -> np.ndarray:
        """``[N]`` m/s: the planar speed each robot's command is capped to now (inf: none)."""
        return np.where(self.capped, self.config.slow_speed, np.inf)
