"""Reward terms: small named functions of one policy step's state, each ``[N]``.

The environment multiplies each term by its weight from the config and by ``control_dt`` and
sums them; ``info["reward_terms"]`` reports the weighted terms so they add up to the reward.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from anymal_ros.config.sim import RewardConfig


@dataclass
class RewardState:
    """Everything the terms read, for N robots (base frame unless stated)."""

    command: np.ndarray  # [N, 3] vx, vy, yaw rate tracked (rewards.speed_limits applied)
    base_lin_vel: np.ndarray  # [N, 3]
    base_ang_vel: np.ndarray  # [N, 3]
    joint_vel: np.ndarray  # [N, 12]
    prev_joint_vel: np.ndarray  # [N, 12]
    torques: np.ndarray  # [N, 12]
    action: np.ndarray  # [N, A]
    prev_action: np.ndarray  # [N, A]
    thigh_shank_contact: np.ndarray  # [N, 8] 0/1
    foot_contact: np.ndarray  # [N, 4] bool
    foot_vel_xy: np.ndarray  # [N, 4, 2] world frame
    first_contact: np.ndarray  # [N, 4] bool: touched down this step
    air_time_at_touchdown: np.ndarray  # [N, 4] s
    base_height: np.ndarray  # [N] m, base above the mean sole height of the feet
    joint_pos: np.ndarray  # [N, 12]
    control_dt: float
    joint_velocity_limit: float
    nominal_base_height: float  # m, the robot's default stance
    default_joint_pos: np.ndarray  # [12]
    # [N, 4] m, soles above the terrain directly below (or the highest ahead: rewards.
    # swing_clearance_lookahead); None where the simulator does not know its terrain (robots
    # over ROS topics)
    foot_clearance: np.ndarray | None = None
    # [N, P] m, points of the trunk's underside above the terrain directly below; None where
    # the simulator does not know its terrain or the term is off
    trunk_clearance: np.ndarray | None = None
    # [N] m/s, the planar speed allowed where each robot is (rewards.speed_limits, inf where
    # none); None where the simulator has no limits
    speed_limit: np.ndarray | None = None
    # [N, 4] m, the spread of terrain heights under each foot, from its centre to
    # rewards.foothold_margin around it; None where the simulator does not know its terrain or
    # the term is off
    foothold_relief: np.ndarray | None = None


Term = Callable[[RewardState, RewardConfig], np.ndarray]


def lin_vel_tracking(s: RewardState, cfg: RewardConfig) -> np.ndarray:
    err = np.sum((s.command[:, :2] - s.base_lin_vel[:, :2]) ** 2, axis=1)
    return np.exp(-err / cfg.tracking_sigma)


def ang_vel_tracking(s: RewardState, cfg: RewardConfig) -> np.ndarray:
    err = (s.command[:, 2] - s.base_ang_vel[:, 2]) ** 2
    return np.exp(-err / cfg.tracking_sigma)


def lin_vel_z(s: RewardState, cfg: RewardConfig) -> np.ndarray:
    return s.base_lin_vel[:, 2] ** 2


def ang_vel_xy(s: RewardState, cfg: RewardConfig) -> np.ndarray:
    return np.sum(s.base_ang_vel[:, :2] ** 2, axis=1)


def torques(s: RewardState, cfg: RewardConfig) -> np.ndarray:
    return np.sum(s.torques**2, axis=1)


def joint_acc(s: RewardState, cfg: RewardConfig) -> np.ndarray:
    return np.sum(((s.joint_vel - s.prev_joint_vel) / s.control_dt) ** 2, axis=1)


def action_rate(s: RewardState, cfg: RewardConfig) -> np.ndarray:
    return np.sum((s.action - s.prev_action) ** 2, axis=1)


def collision(s: RewardState, cfg: RewardConfig) -> np.ndarray:
    return np.sum(s.thigh_shank_contact, axis=1)


def foot_slip(s: RewardState, cfg: RewardConfig) -> np.ndarray:
    return np.sum(s.foot_contact * np.sum(s.foot_vel_xy**2, axis=2), axis=1)


def feet_air_time(s: RewardState, cfg: RewardConfig) -> np.ndarray:
    """Rewards steps longer than ``air_time_target`` at touchdown, only when asked to move."""
    gain = np.sum((s.air_time_at_touchdown - cfg.air_time_target) * s.first_contact, axis=1)
    moving = np.linalg.norm(s.command[:, :2], axis=1) > 0.1
    return gain * moving


def joint_vel_limit(s: RewardState, cfg: RewardConfig) -> np.ndarray:
    return np.sum(np.maximum(np.abs(s.joint_vel) - s.joint_velocity_limit, 0.0), axis=1)


def base_height(s: RewardState, cfg: RewardConfig) -> np.ndarray:
    """Squared deviation (m^2) of the base height from the robot's nominal stance: a crouch
    costs, whatever the terrain (the height is measured from the feet)."""
    return (s.base_height - s.nominal_base_height) ** 2


def hip_abduction(s: RewardState, cfg: RewardConfig) -> np.ndarray:
    """Squared HAA deviation (rad^2) from the default pose: legs stay under the hips."""
    haa = slice(0, None, 3)  # HAA is the first joint of each leg in JOINT_NAMES order
    return np.sum((s.joint_pos[:, haa] - s.default_joint_pos[haa]) ** 2, axis=1)


def foot_clearance(s: RewardState, cfg: RewardConfig) -> np.ndarray:
    """Swinging feet below ``swing_clearance`` (m above the terrain directly below them, or
    the highest within ``swing_clearance_lookahead`` ahead), squared, weighted by how fast the
    foot moves over the ground: a foot that shuffles forward close to the ground (and catches
    a stair's edge) costs; one being set down slowly does not.
    """
    if s.foot_clearance is None:
        raise ValueError(
            "the foot_clearance reward needs the terrain under the feet, which this simulator "
            "does not report: set its weight to 0"
        )
    deficit = np.maximum(cfg.swing_clearance - s.foot_clearance, 0.0)
    speed = np.tanh(2.0 * np.linalg.norm(s.foot_vel_xy, axis=2))  # ~1 above 1 m/s
    return np.sum(deficit**2 * speed * ~s.foot_contact, axis=1)


def trunk_clearance(s: RewardState, cfg: RewardConfig) -> np.ndarray:
    """Points of the trunk's underside closer than ``trunk_margin`` to the terrain under them,
    squared and summed: on stairs a level trunk's ends come down on the steps ahead or behind
    (a fall); pitching with the flight, or standing taller, keeps them clear."""
    if s.trunk_clearance is None:
        raise ValueError(
            "the trunk_clearance reward needs the terrain under the trunk, which this simulator "
            "does not report: set its weight to 0"
        )
    deficit = np.maximum(cfg.trunk_margin - s.trunk_clearance, 0.0)
    return np.sum(deficit**2, axis=1)


def speeding(s: RewardState, cfg: RewardConfig) -> np.ndarray:
    """Planar speed over the limit where the robot is (``rewards.speed_limits``), m/s. The
    tracked command is capped there too, but the tracking kernel barely tells 0.55 m/s from
    0.4 (1 - exp(-0.15^2 / 0.25) = 9 %): this term charges the excess itself."""
    if s.speed_limit is None:
        return np.zeros(s.command.shape[0])
    speed = np.linalg.norm(s.base_lin_vel[:, :2], axis=1)
    return np.maximum(speed - s.speed_limit, 0.0)  # an infinite limit: never over it


def foothold_edge(s: RewardState, cfg: RewardConfig) -> np.ndarray:
    """Feet in contact where the ground under them is not level, m summed: the spread of the
    terrain's heights from each foot's centre to ``foothold_margin`` around it. A sole over a
    block's edge or on the ramp between two blocks rolls or slides; one on a block's top or in
    the middle of a tread costs nothing. A slope's own tilt costs too (2 margin tan slope), the
    same wherever the foot stands on it, so it does not move the feet."""
    if s.foothold_relief is None:
        raise ValueError(
            "the foothold_edge reward needs the terrain under the feet, which this simulator "
            "does not report: set its weight to 0"
        )
    return np.sum(s.foothold_relief * s.foot_contact, axis=1)


# Each term is the function of its name; the names and their order are config.sim.REWARD_TERMS'
# (a test checks that every term there has its function here and no other).
TERMS: dict[str, Term] = {
    term.__name__: term
    for term in (
        lin_vel_tracking,
        ang_vel_tracking,
        lin_vel_z,
        ang_vel_xy,
        torques,
        joint_acc,
        action_rate,
        collision,
        foot_slip,
        feet_air_time,
        joint_vel_limit,
        base_height,
        hip_abduction,
        foot_clearance,
        trunk_clearance,
        speeding,
        foothold_edge,
    )
}


def compute_rewards(s: RewardState, cfg: RewardConfig) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(reward [N] float32, weighted terms name -> [N] float32)``; zero weights are skipped.

    The reward is the terms' sum, clipped at zero when ``cfg.only_positive``; the terms are
    reported unclipped, so logs show every penalty."""
    total = np.zeros(s.command.shape[0])
    terms = {}
    for name, weight in cfg.weights.items():
        if weight == 0.0:
            continue
        value = TERMS[name](s, cfg) * (weight * s.control_dt)
        terms[name] = value.astype(np.float32)
        total += value
    if cfg.only_positive:
        total = np.maximum(total, 0.0)
    return total.astype(np.float32), terms
