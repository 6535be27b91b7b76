"""Gait quality of one evaluation cell: how the robot walks, not only whether it tracks.

A policy can track its command in a deep crouch, on its shanks or at the joint limits; none of
that shows in the tracking error, all of it matters before hardware. :class:`GaitMeter` reads
each step's ``info["gait"]`` (what :class:`~anymal_ros.sim.env.QuadrupedVecEnv` reports) for
the robots still in their first episode and reduces it to:

* ``base_height`` (m): mean height of the base above the terrain under it, and
  ``base_height_ratio``: that over the robot's nominal stance height;
* ``limb_contacts_per_minute``: touch-downs of a thigh or shank (contact onsets, all eight
  bodies) per simulated minute and robot;
* ``foot_clearance`` (m): 10th percentile over every completed swing of the swing's apex (the
  highest the sole rose above the terrain below it between lift-off and touch-down): a scuffing
  gait has a low tail. A foot off the ground for less than :data:`MIN_SWING_S` is a stance
  foot's flicker on stiff contacts, not a step, and does not count;
* ``trunk_clearance`` (m): 10th percentile over every robot-step of the lowest point of the
  trunk's underside above the terrain directly below it: a trunk carried level over a flight of
  stairs has a low tail (its ends meet the steps);
* ``foothold_relief`` (m): mean over every touch-down from a swing of the spread of the terrain's
  heights within ``rewards.foothold_margin`` of the landing foot (what the foothold_edge reward
  charges): 0 where feet land on level ground, more where they land over edges or on ramps
  between blocks;
* ``mean_torque`` (N*m): mean absolute joint torque;
* ``cost_of_transport``: mean positive mechanical joint power over (mass * g * mean speed);
* ``joint_limit_hits_per_minute``: steps with some joint within 0.02 rad of its range's end,
  per simulated minute and robot;
* ``over_speed_limit``: the share of robot-steps with some joint turning faster than the
  robot's joint speed limit. MuJoCo's joints have no such limit (training only penalises
  it), a real actuator does: a gait that needs it will not run as simulated.

:class:`GaitTrace` and :func:`plot_gait` draw one robot's gait: its footfall diagram, how high
its soles lift and how high its base stands (``anymal-ros eval --gait-plot``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from anymal_ros.eval.figures import pyplot, save_figure

GAIT_METRICS: tuple[str, ...] = (
    "base_height",
    "base_height_ratio",
    "limb_contacts_per_minute",
    "foot_clearance",
    "trunk_clearance",
    "foothold_relief",
    "mean_torque",
    "cost_of_transport",
    "joint_limit_hits_per_minute",
    "over_speed_limit",
)
LIMIT_MARGIN = 0.02  # rad from a range's end that counts as "at the limit"
# s: the shortest loss of contact counted as a swing. On MuJoCo's stiffest contacts a standing
# foot loses contact for a control step or two (the 135.2 M ANYmal C teacher on flat ground
# at 0.01 s: the swings' p10 apex 0.16 cm with them, 6.3 cm without); a trot's swing lasts
# about 0.4 s.
MIN_SWING_S = 0.1
GRAVITY = 9.81


class GaitMeter:
    """Accumulates the gait metrics of ``num_envs`` robots over one episode each.

    Args:
        num_envs: robots N.
        control_dt: s per step.
        nominal_base_height: m, the robot's default stance.
        mass: kg, the robot's total mass.
        joint_lower, joint_upper: ``[12]`` joint ranges (rad).
        joint_velocity_limit: rad/s, the robot's joint speed limit.
    """

    def __init__(
        self,
        num_envs: int,
        control_dt: float,
        nominal_base_height: float,
        mass: float,
        joint_lower: np.ndarray,
        joint_upper: np.ndarray,
        joint_velocity_limit: float,
    ) -> None:
        n = num_envs
        self.dt, self.nominal, self.mass = control_dt, nominal_base_height, mass
        self.lower, self.upper = np.asarray(joint_lower), np.asarray(joint_upper)
        self.steps = 0  # robot-steps counted
        self.height_sum = 0.0
        self.limb_onsets = 0
        self.prev_limbs = np.zeros((n, 8), dtype=bool)
        self.torque_sum = 0.0
        self.power_sum = 0.0
        self.speed_sum = 0.0
        self.limit_hits = 0
        self.speed_limit = joint_velocity_limit
        self.over_speed = 0
        self.swing_apex = np.full((n, 4), -np.inf)  # running apex of each foot's swing
        self.swing_steps = np.zeros((n, 4), dtype=np.int64)  # steps each foot has been up
        self.apexes: list[np.ndarray] = []
        self.trunk_lows: list[np.ndarray] = []
        self.footholds: list[np.ndarray] = []  # relief under each foot as it lands

    def update(self, gait: dict[str, np.ndarray], speed: np.ndarray, active: np.ndarray) -> None:
        """One step: ``gait`` is ``info["gait"]``, ``speed [N]`` the planar base speed (m/s),
        ``active [N]`` the robots still in their first episode."""
        a = np.asarray(active, dtype=bool)
        k = int(a.sum())
        if k == 0:
            return
        self.steps += k
        self.height_sum += float(gait["base_height"][a].sum())
        limbs = gait["thigh_shank_contact"] > 0.5
        self.limb_onsets += int((limbs & ~self.prev_limbs)[a].sum())
        self.prev_limbs = limbs
        torque, vel = gait["joint_effort"], gait["joint_vel"]
        self.torque_sum += float(np.abs(torque[a]).mean(axis=1).sum())
        self.power_sum += float(np.maximum(torque * vel, 0.0)[a].sum(axis=1).sum())
        self.speed_sum += float(speed[a].sum())
        q = gait["joint_pos"]
        at_limit = (q < self.lower + LIMIT_MARGIN) | (q > self.upper - LIMIT_MARGIN)
        self.limit_hits += int(at_limit.any(axis=1)[a].sum())
        self.over_speed += int((np.abs(vel) > self.speed_limit).any(axis=1)[a].sum())
        self.trunk_lows.append(gait["trunk_clearance"][a].copy())
        # Swings: from lift-off to touch-down, the highest the sole got above the terrain.
        contact, clearance = gait["foot_contact"].astype(bool), gait["foot_clearance"]
        # A foot that was up long enough and is down now has landed from a swing.
        long_enough = self.swing_steps * self.dt >= MIN_SWING_S - 1e-9
        landed = contact & long_enough & a[:, None]
        if landed.any():
            self.apexes.append(self.swing_apex[landed].copy())
            self.footholds.append(gait["foothold_relief"][landed].copy())
        self.swing_steps = np.where(contact, 0, self.swing_steps + 1)
        self.swing_apex = np.where(contact, -np.inf, np.maximum(self.swing_apex, clearance))

    def result(self) -> dict[str, Any]:
        minutes = max(self.steps * self.dt / 60.0, 1e-9)
        steps = max(self.steps, 1)
        apexes = np.concatenate(self.apexes) if self.apexes else np.empty(0)
        trunk = np.concatenate(self.trunk_lows) if self.trunk_lows else np.empty(0)
        footholds = np.concatenate(self.footholds) if self.footholds else np.empty(0)
        height = self.height_sum / steps
        speed = max(self.speed_sum / steps, 1e-3)
        return {
            "base_height": height,
            "base_height_ratio": height / self.nominal,
            "limb_contacts_per_minute": self.limb_onsets / minutes,
            "foot_clearance": float(np.percentile(apexes, 10)) if apexes.size else 0.0,
            "trunk_clearance": float(np.percentile(trunk, 10)) if trunk.size else 0.0,
            "foothold_relief": float(footholds.mean()) if footholds.size else 0.0,
            "mean_torque": self.torque_sum / steps,
            "cost_of_transport": (self.power_sum / steps) / (self.mass * GRAVITY * speed),
            "joint_limit_hits_per_minute": self.limit_hits / minutes,
            "over_speed_limit": self.over_speed / steps,
        }


LEG_NAMES: tuple[str, ...] = ("LF", "RF", "LH", "RH")


class GaitTrace:
    """Robot 0's gait, step by step, for :func:`plot_gait`: foot contacts, sole heights above
    the terrain below them, base height, thigh/shank contacts (until its first episode ends)."""

    def __init__(self, control_dt: float, nominal_base_height: float) -> None:
        self.dt, self.nominal = control_dt, nominal_base_height
        self.contact: list[np.ndarray] = []
        self.clearance: list[np.ndarray] = []
        self.base: list[float] = []
        self.limbs: list[bool] = []
        self.fell = False

    def update(self, gait: dict[str, np.ndarray], active: bool, fell: bool = False) -> None:
        if not active or self.fell:
            return
        self.contact.append(gait["foot_contact"][0].astype(bool))
        self.clearance.append(np.asarray(gait["foot_clearance"][0], dtype=float))
        self.base.append(float(gait["base_height"][0]))
        self.limbs.append(bool((gait["thigh_shank_contact"][0] > 0.5).any()))
        self.fell = fell


def plot_gait(trace: GaitTrace, path: str | Path, title: str, window_s: float = 4.0,
              skip_s: float = 2.0) -> Path:  # fmt: skip
    """One PNG of ``window_s`` seconds of robot 0 after ``skip_s`` (the start-up): the footfall
    diagram (a bar per leg while its foot is on the ground, thigh/shank contacts marked), each
    sole's height above the terrain below it, and the base height over the robot's stance."""
    plt = pyplot()

    n = len(trace.base)
    if n == 0:
        raise ValueError("the gait trace is empty")
    first = min(int(round(skip_s / trace.dt)), max(n - int(round(window_s / trace.dt)), 0))
    last = min(n, first + int(round(window_s / trace.dt)))
    t = np.arange(first, last) * trace.dt
    contact = np.array(trace.contact[first:last])
    clearance = np.array(trace.clearance[first:last])
    base = np.array(trace.base[first:last]) / trace.nominal
    limbs = np.array(trace.limbs[first:last])
    fig, (ax_feet, ax_lift, ax_base) = plt.subplots(
        3, 1, figsize=(9.0, 6.4), sharex=True, gridspec_kw={"height_ratios": [1.1, 1.3, 0.9]}
    )
    for leg, name in enumerate(LEG_NAMES):
        y = len(LEG_NAMES) - 1 - leg
        on = contact[:, leg]
        starts = np.flatnonzero(on & ~np.r_[False, on[:-1]])
        ends = np.flatnonzero(on & ~np.r_[on[1:], False])
        ax_feet.broken_barh([(t[a], t[b] - t[a] + trace.dt) for a, b in zip(starts, ends,
                                                                            strict=True)],
                            (y - 0.35, 0.7), color="0.25")  # fmt: skip
        ax_lift.plot(t, 100 * clearance[:, leg], linewidth=1.3, label=name)
    if limbs.any():
        ax_feet.plot(t[limbs], np.full(limbs.sum(), len(LEG_NAMES) - 0.4), "rv", markersize=4,
                     label="thigh/shank touches")  # fmt: skip
        ax_feet.legend(loc="upper right", fontsize=7)
    ax_feet.set_yticks(range(len(LEG_NAMES)), LEG_NAMES[::-1])
    ax_feet.set_ylim(-0.6, len(LEG_NAMES) - 0.1)
    ax_feet.set_title("feet on the ground (dark)", fontsize=9)
    ax_lift.set_ylabel("sole above terrain [cm]")
    ax_lift.legend(loc="upper right", fontsize=7, ncol=4)
    ax_lift.grid(alpha=0.3)
    ax_base.plot(t, base, color="tab:purple")
    ax_base.axhline(1.0, color="0.5", linestyle=":", linewidth=1)
    ax_base.set_ylabel("base / stance")
    ax_base.set_xlabel("time [s]" + ("  (robot 0 fell at the end)" if trace.fell and
                                     last == n else ""))  # fmt: skip
    ax_base.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
