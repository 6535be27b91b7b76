"""Safety state machine of the policy node (pure python, no ROS).

Three modes, always one of them::

    PASSIVE --stand--> STAND --walk--> WALK
       ^                 ^  <--stand--   |
       |                 +--- watchdog --+   (odometry/heights stale, non-finite action)
       +------ passive / proprioception lost / tilt / deactivate (from any mode)

* **PASSIVE** publishes no joint targets at all. The joint-level controller then keeps its
  own fallback (ros2_control position controllers hold their last command; drives with a
  freeze/damping mode use that). Publishing "targets = measured positions" is *not* damping
  with a stiff position controller, so the node does not pretend to do it.
* **STAND** interpolates from the joint positions measured when STAND began to the policy's
  default pose over ``stand_duration`` seconds (smooth-step, zero velocity at both ends),
  then holds the default pose.
* **WALK** runs the policy. Entering WALK is only allowed from a finished STAND with fresh
  inputs; the node resets the policy's hidden state and observation histories on entry.

The machine only decides; the node feeds it times, input health and requests and asks it for
the mode and the stand target. Every transition carries a reason, kept in a short history
for diagnostics.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np


class Mode(enum.Enum):
    PASSIVE = "PASSIVE"
    STAND = "STAND"
    WALK = "WALK"


@dataclass(frozen=True)
class Transition:
    time: float
    source: Mode
    target: Mode
    reason: str

    def __str__(self) -> str:
        return f"{self.source.value}->{self.target.value} at t={self.time:.3f}: {self.reason}"


@dataclass(frozen=True)
class InputHealth:
    """Usability of each input group at one instant (True = younger than its timeout and not
    rejecting too many of its messages). ``problems``: group -> why it is unusable, where that
    is something other than staleness."""

    joint_states: bool
    imu: bool
    odom: bool
    heights: bool
    problems: dict[str, str] = field(default_factory=dict)

    @property
    def proprioception(self) -> bool:
        return self.joint_states and self.imu

    def explain(self, groups: list[str]) -> str:
        """Why the unusable ``groups`` are unusable, e.g. ``odom stale; imu rejected ...``."""
        stale = [g for g in groups if g not in self.problems]  # "heights": the map or the cloud
        parts = [f"{', '.join(stale)} stale"] if stale else []
        return "; ".join(parts + [self.problems[g] for g in groups if g in self.problems])


@dataclass(frozen=True)
class SafetyConfig:
    stand_duration: float = 2.0  # s, measured pose -> default pose
    max_tilt: float = 0.8  # rad, |roll| or |pitch| beyond this -> PASSIVE
    blind_walk: bool = False  # keep walking on stale heights (fed as missing points)

    def __post_init__(self) -> None:
        if not (self.stand_duration > 0 and math.isfinite(self.stand_duration)):
            raise ValueError(f"stand_duration must be > 0 s, got {self.stand_duration}")
        if not (0 < self.max_tilt <= math.pi):
            raise ValueError(f"max_tilt must be in (0, pi] rad, got {self.max_tilt}")


class StandTrajectory:
    """Smooth interpolation ``start [J] -> goal [J]`` over ``duration`` seconds."""

    def __init__(self, start: np.ndarray, goal: np.ndarray, t0: float, duration: float) -> None:
        self.start = np.asarray(start, dtype=np.float64).copy()
        self.goal = np.asarray(goal, dtype=np.float64).copy()
        if self.start.shape != self.goal.shape:
            raise ValueError(f"start {self.start.shape} and goal {self.goal.shape} differ")
        self.t0 = t0
        self.duration = duration

    def progress(self, now: float) -> float:
        """Fraction of the way, in [0, 1]."""
        return float(np.clip((now - self.t0) / self.duration, 0.0, 1.0))

    def done(self, now: float) -> bool:
        return self.progress(now) >= 1.0

    def at(self, now: float) -> np.ndarray:
        """``[J]`` target at time ``now`` (smooth-step: zero velocity at both ends)."""
        s = self.progress(now)
        blend = s * s * (3.0 - 2.0 * s)
        return self.start + blend * (self.goal - self.start)


def roll_pitch_from_gravity(gravity: np.ndarray) -> tuple[float, float]:
    """Roll and pitch (rad) of the base from the unit gravity direction in the base frame.

    Upright, gravity is ``(0, 0, -1)``; a pitch ``p`` about the base y axis makes it
    ``(sin p, 0, -cos p)`` and a roll ``r`` about x makes it ``(0, -sin r, -cos r)``, so
    both angles are read off without a yaw ambiguity (upside down reads as roll pi).
    """
    gx, gy, gz = (float(v) for v in gravity)
    pitch = math.atan2(gx, math.hypot(gy, gz))
    roll = math.atan2(-gy, -gz)
    return roll, pitch


class SafetyStateMachine:
    """Decides the node's mode from requests, input health, tilt and action sanity.

    Args:
        config: timing and thresholds.
        default_pose: ``[J]`` stand goal (the policy's default joint positions).
        history: number of transitions kept for diagnostics.
    """

    def __init__(self, config: SafetyConfig, default_pose: np.ndarray, history: int = 8) -> None:
        self.config = config
        self.default_pose = np.asarray(default_pose, dtype=np.float64).copy()
        self.mode = Mode.PASSIVE
        self.stand: StandTrajectory | None = None
        self.transitions: deque[Transition] = deque(maxlen=history)
        self.walk_started = 0  # count; the node resets the policy when this changes

    @property
    def last_transition(self) -> Transition | None:
        return self.transitions[-1] if self.transitions else None

    def tilt_problem(self, gravity: np.ndarray | None) -> str | None:
        """Why the base is too tilted to be controlled (beyond ``max_tilt``), or None."""
        if gravity is None:
            return None
        roll, pitch = roll_pitch_from_gravity(gravity)
        if max(abs(roll), abs(pitch)) <= self.config.max_tilt:
            return None
        return (
            f"tilt: roll {math.degrees(roll):.0f} deg, pitch {math.degrees(pitch):.0f}"
            f" deg beyond {math.degrees(self.config.max_tilt):.0f} deg"
        )

    def _go(self, target: Mode, now: float, reason: str, joint_pos: np.ndarray | None) -> None:
        if target is Mode.STAND:
            if joint_pos is None:
                raise ValueError("entering STAND needs the measured joint positions")
            self.stand = StandTrajectory(
                joint_pos, self.default_pose, now, self.config.stand_duration
            )
        else:
            self.stand = None
        if target is Mode.WALK:
            self.walk_started += 1
        self.transitions.append(Transition(now, self.mode, target, reason))
        self.mode = target

    # --- requests (services, lifecycle) ------------------------------------------------------
    def request(
        self,
        target: Mode,
        now: float,
        health: InputHealth,
        joint_pos: np.ndarray | None,
        reason: str = "requested",
        gravity: np.ndarray | None = None,
    ) -> tuple[bool, str]:
        """Ask for ``target``; returns (accepted, message). Refusals leave the mode unchanged.

        ``gravity``: the measured unit gravity direction in the base frame; STAND and WALK are
        refused while the base is tilted beyond ``max_tilt`` (the next check would drop to
        PASSIVE at once)."""
        if target is Mode.PASSIVE:
            if self.mode is not Mode.PASSIVE:
                self._go(Mode.PASSIVE, now, reason, None)
            return True, "PASSIVE"
        if not health.proprioception or joint_pos is None:
            lost = [g for g in ("joint_states", "imu") if not getattr(health, g)]
            why = health.explain(lost) if lost else "no joint positions yet"
            return False, f"cannot enter {target.value}: joint_states/imu unusable ({why})"
        tilted = self.tilt_problem(gravity)
        if tilted is not None:
            return False, f"cannot enter {target.value}: {tilted}"
        if target is Mode.STAND:
            # Re-standing from STAND restarts the interpolation from where the joints are now.
            self._go(Mode.STAND, now, reason, joint_pos)
            return True, f"STAND: moving to the default pose over {self.config.stand_duration} s"
        # WALK
        if self.mode is Mode.WALK:
            return True, "already in WALK"
        if self.mode is not Mode.STAND or self.stand is None:
            return False, "cannot enter WALK from PASSIVE: call stand first"
        # Unusable inputs first: they last, where the stand-up ends by itself.
        if not health.odom:
            why = health.explain(["odom"])
            return False, f"cannot enter WALK: odometry is stale, missing or rejected ({why})"
        if not health.heights and not self.config.blind_walk:
            why = health.explain(["heights"])
            return False, f"cannot enter WALK: heights unusable ({why}; blind_walk is off)"
        if not self.stand.done(now):
            left = (1.0 - self.stand.progress(now)) * self.stand.duration
            return False, f"cannot enter WALK: standing up, {left:.2f} s left"
        self._go(Mode.WALK, now, reason, None)
        return True, "WALK"

    # --- checks each control tick --------------------------------------------------------------
    def check(
        self,
        now: float,
        health: InputHealth,
        joint_pos: np.ndarray | None,
        gravity: np.ndarray | None,
    ) -> Mode:
        """Watchdog and tilt check; returns the (possibly new) mode."""
        if self.mode is Mode.PASSIVE:
            return self.mode
        if not health.proprioception:
            lost = [n for n in ("joint_states", "imu") if not getattr(health, n)]
            self._go(Mode.PASSIVE, now, f"watchdog: {health.explain(lost)}", None)
            return self.mode
        tilted = self.tilt_problem(gravity)
        if tilted is not None:
            self._go(Mode.PASSIVE, now, tilted, None)
            return self.mode
        if self.mode is Mode.WALK:
            lost = []
            if not health.odom:
                lost.append("odom")
            if not health.heights and not self.config.blind_walk:
                lost.append("heights")
            if lost:
                self._go(Mode.STAND, now, f"watchdog: {health.explain(lost)}", joint_pos)
        return self.mode

    def action_failed(self, now: float, reason: str, joint_pos: np.ndarray | None) -> None:
        """The policy produced something unusable (non-finite, error): fall back to STAND."""
        if self.mode is not Mode.WALK:
            return
        if joint_pos is None:
            self._go(Mode.PASSIVE, now, f"{reason} (no joint positions to stand from)", None)
        else:
            self._go(Mode.STAND, now, reason, joint_pos)

    def stand_target(self, now: float) -> np.ndarray:
        """``[J]`` target while in STAND."""
        if self.mode is not Mode.STAND or self.stand is None:
            raise RuntimeError(f"stand_target asked in mode {self.mode.value}")
        return self.stand.at(now)


def clip_to_limits(
    targets: np.ndarray, lower: np.ndarray | None, upper: np.ndarray | None
) -> np.ndarray:
    """Joint targets ``[J]`` clipped to ``[lower, upper]`` (either may be None = unbounded)."""
    out = np.asarray(targets, dtype=np.float64)
    if lower is not None:
        out = np.maximum(out, lower)
    if upper is not None:
        out = np.minimum(out, upper)
    return out
