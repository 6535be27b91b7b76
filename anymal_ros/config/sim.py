"""Settings of the built-in MuJoCo quadruped simulator (anymal_ros.sim).

Defaults follow legged-robot practice and Miki et al. 2022 (sim dt 0.005 s, decimation 4 ->
50 Hz policy). ``config/sim.yaml`` spells them out; ``load_config(SimConfig, path)`` reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from anymal_ros.config.robot import robot_yaml_path

TERRAIN_TYPES = ("flat", "rough", "slope_up", "slope_down", "stairs_up", "stairs_down", "boxes")
# Types with vertical faces (risers, box sides): what ``TerrainConfig.sharp_resolution`` refines.
SHARP_TERRAIN_TYPES = ("stairs_up", "stairs_down", "boxes")


def _check_range(name: str, pair: tuple[float, float]) -> None:
    if pair[0] > pair[1]:
        raise ValueError(f"{name}: range must be (low, high) with low <= high, got {pair}")


@dataclass(frozen=True)
class RobotConfig:
    """Which robot, and how episodes place it.

    ``description``: a bundled robot's name (``anymal_c``, the default; ``anymal_c_like``, the
    first edition's model) or the path of a robot YAML (see :mod:`anymal_ros.config.robot`:
    the MJCF, joints, default pose, PD gains and limits live there).
    """

    description: str = "anymal_c"
    init_height: float = 0.6  # m above the terrain at the spawn point
    init_joint_noise: float = 0.1  # rad, uniform around the default pose
    init_xy_noise: float = 0.5  # m, uniform around the tile centre (inside the platform)

    def __post_init__(self) -> None:
        if self.init_height <= 0:
            raise ValueError(f"init_height must be > 0, got {self.init_height}")
        robot_yaml_path(self.description)  # fails early, naming the bundled robots


@dataclass(frozen=True)
class PhysicsConfig:
    """MuJoCo step and solver (Newton, implicitfast integrator).

    ``cone``: friction cone of every contact. Pyramidal (MuJoCo's default) costs about 14 %
    fewer instructions per physics step than elliptic on the terrain with N robots (Newton's
    elliptic-cone Hessian updates dominate the solver); both model Coulomb friction with the
    same coefficients, the pyramid approximating the circle with 4 facets.

    ``contact_timeconst``: MuJoCo's contact ``solref`` time constant (damping ratio 1) for every
    geom. MuJoCo's default 0.02 s lets a standing robot sink ~2.6 mm into the ground, so a foot
    sphere overlaps several height-field prisms and gets ~2 contacts; 0.01 s (the stiffest
    stable value, 2 physics steps) gives ~0.9 mm, ~1.5 contacts per foot and ~10 % fewer
    instructions per physics step: closer to a rubber foot on hard ground, not further.
    """

    dt: float = 0.005  # s, physics step
    decimation: int = 4  # physics steps per policy step
    solver_iterations: int = 20
    line_search_iterations: int = 10
    cone: Literal["pyramidal", "elliptic"] = "pyramidal"
    contact_timeconst: float = 0.01  # s, >= 2 * dt
    # Other choices a second simulator makes (config/sim_to_sim.yaml uses them): MuJoCo's
    # integrator, the elliptic cones' impedance ratio, and scales on the MJCF's joint damping,
    # friction loss and armature (applied when the model is built; randomisation multiplies on).
    integrator: Literal["implicitfast", "implicit", "Euler", "RK4"] = "implicitfast"
    impratio: float = 1.0
    joint_damping_scale: float = 1.0
    joint_frictionloss_scale: float = 1.0
    armature_scale: float = 1.0
    # The motors' torque against joint speed (anymal_ros/sim/actuator.py): 'ideal_pd' the
    # robot's torque_limit at any speed, 'dc_motor' a torque that fades to zero at its
    # joint_velocity_limit, as a real drive's does (needs the robot's saturation_torque).
    actuator: Literal["ideal_pd", "dc_motor"] = "ideal_pd"

    def __post_init__(self) -> None:
        if self.dt <= 0 or self.decimation < 1:
            raise ValueError(f"dt must be > 0 and decimation >= 1, got {self.dt, self.decimation}")
        if self.integrator not in ("implicitfast", "implicit", "Euler", "RK4"):
            raise ValueError(f"integrator must be implicitfast, implicit, Euler or RK4, got "
                             f"{self.integrator!r}")  # fmt: skip
        for name in ("impratio", "joint_damping_scale", "joint_frictionloss_scale",
                     "armature_scale"):  # fmt: skip
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.actuator not in ("ideal_pd", "dc_motor"):
            raise ValueError(f"actuator must be 'ideal_pd' or 'dc_motor', got {self.actuator!r}")
        if self.cone not in ("pyramidal", "elliptic"):
            raise ValueError(f"cone must be 'pyramidal' or 'elliptic', got {self.cone!r}")
        if self.contact_timeconst < 2 * self.dt - 1e-12:
            raise ValueError(
                f"contact_timeconst ({self.contact_timeconst}) must be >= 2 * dt ({2 * self.dt}): "
                "MuJoCo would silently stiffen it no further"
            )


#: ``curriculum_promotion: path``: the share of its commanded path a robot must walk.
PATH_PROMOTION_SHARE = 0.8


@dataclass(frozen=True)
class TerrainConfig:
    """A grid of square tiles: rows are difficulty levels, columns terrain types."""

    kind: Literal["heightfield", "flat"] = "heightfield"
    tile_size: float = 8.0  # m
    resolution: float = 0.1  # m between height samples
    # MuJoCo joins a height field's samples with planes, so a riser is a ramp one sample wide
    # (10 cm at 0.1). A finer spacing (e.g. 0.025: near-vertical risers) for the columns of
    # SHARP_TERRAIN_TYPES only, on height fields of their own; 0 keeps them on ``resolution``.
    # Costs simulator time only for the robots on those columns (benchmarks/
    # terrain_resolution_cost.py).
    sharp_resolution: float = 0.0
    num_levels: int = 10
    num_columns: int = 14
    # Share of columns per terrain type (normalised); zero removes a type.
    proportions: dict[str, float] = field(
        default_factory=lambda: {
            "flat": 0.1,
            "rough": 0.2,
            "slope_up": 0.1,
            "slope_down": 0.1,
            "stairs_up": 0.2,
            "stairs_down": 0.15,
            "boxes": 0.15,
        }
    )
    # Difficulty (0..1 along the ranges below) of level 0 and of the top level; equal ends
    # give every level the same terrain (the evaluation's uniform field).
    difficulty: tuple[float, float] = (0.0, 1.0)
    border: float = 4.0  # m of flat ground around the grid
    platform_size: float = 2.0  # m, flat square at each tile centre (spawn area)
    rough_amplitude: tuple[float, float] = (0.02, 0.10)  # m at level 0 and the top level
    slope: tuple[float, float] = (0.0, 0.45)  # rad
    step_height: tuple[float, float] = (0.05, 0.20)  # m
    step_width: float = 0.3  # m
    box_height: tuple[float, float] = (0.05, 0.20)  # m
    box_size: tuple[float, float] = (0.4, 1.0)  # m, side of a box (min, max)
    num_boxes: int = 20
    max_init_level: int = 3
    curriculum: bool = True  # move robots up/down levels by distance walked
    # A robot goes up a level when it ends an episode more than half a tile from its start,
    # and down when it got less than half as far as: "displacement", where its commands would
    # have taken it (a robot told to turn is judged on the turn); "speed", its last command's
    # speed times the episode's time (the first edition's: at 0.5 rad/s and 0.75 m/s a robot
    # that turns perfectly ends 1.8 m from its start in 10 s, under half of 7.5 m: demoted).
    curriculum_demotion: Literal["displacement", "speed"] = "displacement"
    # "path" also moves a robot up when it walked at least PATH_PROMOTION_SHARE of where its
    # commands would have taken it and at least a quarter tile (off the platform, into the
    # steps). Under a speed governor a robot walks the stairs at 0.4 m/s at most, and half a
    # tile then asks for most of an episode in a straight line. Tried on a governed teacher
    # whose stairs-up levels sank from 7.0 to 4.3 in 700 iterations: to 4.8 with it
    # (policies/MODEL_CARD.md, "Promotion on the commanded path").
    curriculum_promotion: Literal["half_tile", "path"] = "half_tile"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.proportions) - set(TERRAIN_TYPES))
        if unknown:
            raise ValueError(f"proportions: unknown terrain types {unknown}; known {TERRAIN_TYPES}")
        if sum(self.proportions.values()) <= 0 or min(self.proportions.values()) < 0:
            raise ValueError("proportions must be >= 0 and not all zero")
        if self.num_levels < 1 or self.num_columns < 1:
            raise ValueError("num_levels and num_columns must be >= 1")
        if not 0 <= self.max_init_level < self.num_levels:
            raise ValueError(f"max_init_level must be in [0, {self.num_levels - 1}]")
        if self.resolution <= 0 or self.tile_size <= self.platform_size:
            raise ValueError("resolution must be > 0 and tile_size > platform_size")
        for name in ("resolution", "sharp_resolution"):  # the tiles and border are whole cells
            spacing = getattr(self, name)
            for length in ("tile_size", "border") if spacing > 0 else ():
                cells = getattr(self, length) / spacing
                if abs(cells - round(cells)) > 1e-6:
                    raise ValueError(f"{length} ({getattr(self, length)} m) must be a whole "
                                     f"number of {name} cells ({spacing} m)")  # fmt: skip
        if self.sharp_resolution != 0.0:
            ratio = self.resolution / self.sharp_resolution
            if self.sharp_resolution < 0 or ratio < 2 - 1e-6 or abs(ratio - round(ratio)) > 1e-6:
                raise ValueError(f"sharp_resolution must be 0 (off) or resolution "
                                 f"({self.resolution}) / n for a whole n >= 2, got "
                                 f"{self.sharp_resolution}")  # fmt: skip
        for name in ("rough_amplitude", "slope", "step_height", "box_height", "box_size"):
            _check_range(name, getattr(self, name))
        _check_range("difficulty", self.difficulty)
        if not 0.0 <= min(self.difficulty) <= max(self.difficulty) <= 1.0:
            raise ValueError(f"difficulty must lie in [0, 1], got {self.difficulty}")

    def spacing_of(self, kind: str) -> float:
        """The height grid's spacing (m) the tiles of terrain type ``kind`` are built on."""
        sharp = self.sharp_resolution > 0 and kind in SHARP_TERRAIN_TYPES
        return self.sharp_resolution if sharp else self.resolution


@dataclass(frozen=True)
class SpeedGovernorConfig:
    """A speed governor (:mod:`anymal_ros.obs.governor`): in a student's file, or in training.

    For ``hold`` seconds after the spread of the heights around the feet (a student's belief
    on the robot, the true ones in training) exceeds ``spread_threshold`` m, the planar command
    is capped to ``slow_speed`` m/s. The spread is the largest over the feet of the 90th minus
    the 10th percentile of a foot's points (``spread_percentile``: 10): a student of the second
    edition believes at most 0.06 m on flat ground and 0.27-0.35 m on stairs with noisy
    heights; the true heights read 0 on flat ground and at most 0.10 m on 6 cm rough ground
    (benchmarks/results/height_spread.json).
    """

    spread_threshold: float = 0.12  # m
    slow_speed: float = 0.4  # m/s, planar
    hold: float = 1.0  # s
    #: The spread is the (100 - p)th minus the pth percentile of a foot's points: lower sees a
    #: step edge sooner (fewer of the outer rings' points need to lie beyond it).
    spread_percentile: float = 10.0
    #: The stance cue (None: off), blind to the heights: the cap also holds after the mean over
    #: ``stance_window`` s of how far the height between the feet of a standing diagonal pair
    #: strayed from its slow mean exceeded ``stance_threshold`` m (CPG policies only;
    #: :class:`anymal_ros.obs.governor.StanceCue`). A student's noisy belief of 6 cm rough
    #: ground spreads no wider than that of flat ground; its feet do
    #: (benchmarks/roughness_cue.py).
    stance_threshold: float | None = None  # m
    stance_window: float = 0.5  # s

    def __post_init__(self) -> None:
        for name in ("spread_threshold", "slow_speed", "hold", "stance_window"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        stance = self.stance_threshold
        if stance is not None and not (math.isfinite(stance) and stance >= 0):
            raise ValueError(f"stance_threshold must be None or a finite number >= 0, got {stance}")
        if not 0 <= self.spread_percentile < 50:
            raise ValueError(f"spread_percentile must be in [0, 50), got {self.spread_percentile}")


@dataclass(frozen=True)
class CommandConfig:
    """Velocity commands (base frame), resampled every ``resample_time`` seconds."""

    lin_vel_x: tuple[float, float] = (-1.0, 1.0)  # m/s
    lin_vel_y: tuple[float, float] = (-1.0, 1.0)  # m/s
    ang_vel_yaw: tuple[float, float] = (-1.0, 1.0)  # rad/s
    resample_time: float = 10.0  # s
    standing_fraction: float = 0.1  # share of zero commands
    small_threshold: float = 0.2  # m/s: smaller planar commands are set to zero
    # Heading commands (legged_gym's): instead of a yaw rate, each command draws a heading
    # (world frame, uniform) and the yaw rate steers towards it, heading_gain rad/s per rad of
    # error within ang_vel_yaw; a robot turns, then walks straight and can earn promotion
    # (4 m from its start), where a constant yaw rate walks it in circles.
    heading: bool = False
    heading_gain: float = 0.5  # 1/s
    # A speed governor in training (off by default): the command the policy sees, and the
    # tracking reward asks for, is capped where the true heights around the feet show steps,
    # as a governed student's is on the robot where its belief shows them
    # (anymal_ros.obs.governor). The policy then need not learn where to slow down by itself.
    governor: SpeedGovernorConfig | None = None

    def __post_init__(self) -> None:
        for name in ("lin_vel_x", "lin_vel_y", "ang_vel_yaw"):
            _check_range(name, getattr(self, name))
        if self.resample_time <= 0 or not 0 <= self.standing_fraction <= 1:
            raise ValueError("resample_time must be > 0 and standing_fraction in [0, 1]")
        if self.heading_gain <= 0:
            raise ValueError(f"heading_gain must be > 0 (1/s), got {self.heading_gain}")


def default_reward_weights() -> dict[str, float]:
    """Weights of the terms in anymal_ros.sim.rewards (legged-robot practice)."""
    return {
        "lin_vel_tracking": 1.0,
        "ang_vel_tracking": 0.5,
        "lin_vel_z": -2.0,
        "ang_vel_xy": -0.05,
        "torques": -1.0e-5,
        "joint_acc": -2.5e-7,
        "action_rate": -0.01,
        "collision": -1.0,
        "foot_slip": -0.1,
        "feet_air_time": 1.0,
        "joint_vel_limit": -1.0,
        # Posture (off by default; config/teacher_anymal_c.yaml weighs them): the nominal stance's
        # height and hips under the body, against the crouch a policy otherwise settles in.
        "base_height": 0.0,
        "hip_abduction": 0.0,
        # Swing feet kept clear of the terrain under them (off by default; the ANYmal C teacher
        # weighs it, config/teacher_anymal_c.yaml, since its stairs have vertical risers).
        "foot_clearance": 0.0,
        # The trunk's underside kept clear of the terrain under it (off by default): on stairs
        # a trunk carried level meets the steps ahead or behind unless it pitches with them.
        "trunk_clearance": 0.0,
        # Planar speed over rewards.speed_limits where one applies (off by default).
        "speeding": 0.0,
        # Feet standing on uneven ground: a block's or a riser's edge (off by default). At -3
        # for 700 iterations the governed teacher's feet landed where they had, and it fell
        # more (policies/MODEL_CARD.md, "Feet kept off edges").
        "foothold_edge": 0.0,
    }


# The reward terms' names, in the order they are summed: the default weights name every term
# (anymal_ros.sim.rewards implements one function per name; a test ties the two).
REWARD_TERMS: tuple[str, ...] = tuple(default_reward_weights())


@dataclass(frozen=True)
class RewardConfig:
    """Weights of the named reward terms (see anymal_ros.sim.rewards); scaled by control_dt.

    ``weights`` given in a config update the defaults term by term (``{joint_vel_limit: 0}``
    switches one term off and keeps the others), so a YAML names only what it changes."""

    weights: dict[str, float] = field(default_factory=default_reward_weights)
    tracking_sigma: float = 0.25  # (m/s)^2 and (rad/s)^2
    air_time_target: float = 0.5  # s
    swing_clearance: float = 0.08  # m above the terrain under a swinging foot (foot_clearance)
    # m: foot_clearance measures a swinging foot against the highest terrain from directly
    # below it to this far ahead along its path over the ground (three points), not only
    # directly below: on rough ground a foot clear of its own block still runs into the next,
    # up to 12 cm higher one cell (10 cm) ahead on 6 cm blocks. 0: directly below only. At
    # 0.1 m it doubled the governed teacher's falls there in 700 iterations against a control
    # (policies/MODEL_CARD.md, "A swing clearance that looks ahead").
    swing_clearance_lookahead: float = 0.0
    trunk_margin: float = 0.3  # m above the terrain under the trunk's underside (trunk_clearance)
    # m: how far around a foot in contact foothold_edge reads the terrain (four points, along
    # x and y): the radius of ANYmal C's sole, so a foot is charged when part of it hangs over
    # an edge or stands on a ramp between blocks.
    foothold_margin: float = 0.03
    contact_force_threshold: float = 1.0  # N: a body "touches" above this
    # Clip each step's total at zero. With mostly-penalty terms the per-step sum starts
    # negative, and a policy then learns that ending the episode early (falling) pays; the
    # clip removes that incentive (legged_gym does the same for ANYmal with these terms).
    only_positive: bool = True
    # Reward added once, on the step a robot falls (terminated; < 0 is a penalty), after the
    # clip above: with the clip alone a fall costs only the clipped reward it forgoes, which
    # on steep stairs at speed is about half of what a slow robot forgoes and nothing on a
    # third of its steps (benchmarks/curriculum_by_speed.py; MODEL_CARD.md).
    fall: float = 0.0
    # The planar speed (m/s) the tracking reward asks for at most on these terrain types (the
    # tile under the robot): a faster command is tracked as its direction at this speed. The
    # policy sees the command unchanged and learns where it may not go as fast as told. Empty
    # by default: every command is tracked at its speed.
    speed_limits: dict[str, float] = field(default_factory=dict)
    # m: a limit starts this far inside the flat platform at a tile's centre, about as far as
    # the robot sees the tile's first steps (its feet 0.3-0.4 m ahead of the base, their
    # farthest height samples 0.48 m beyond). Nearer the centre it tracks its full command,
    # as on flat ground, which looks the same.
    speed_limit_lead: float = 0.7
    # Each limit above binds on its type's hardest tiles (difficulty 1) and is divided by the
    # difficulty on easier ones, none at difficulty 0: a tile's heights grow with its
    # difficulty, so this holds the climb rate about constant, and the easiest tiles, which
    # look like flat ground, are as free as flat ground. Off: one limit on every level.
    speed_limits_by_difficulty: bool = False

    def __post_init__(self) -> None:
        unknown = sorted(set(self.weights) - set(REWARD_TERMS))
        if unknown:
            raise ValueError(f"weights: unknown reward terms {unknown}; known {REWARD_TERMS}")
        unknown = sorted(set(self.speed_limits) - set(TERRAIN_TYPES))
        if unknown:
            raise ValueError(
                f"speed_limits: unknown terrain types {unknown}; known {TERRAIN_TYPES}"
            )
        slow = {t: v for t, v in self.speed_limits.items() if not v > 0}
        if slow:
            raise ValueError(f"speed_limits must be > 0 m/s, got {slow}")
        if self.speed_limit_lead < 0:
            raise ValueError(f"speed_limit_lead must be >= 0 m, got {self.speed_limit_lead}")
        if self.swing_clearance < 0:
            raise ValueError(f"swing_clearance must be >= 0 m, got {self.swing_clearance}")
        if self.swing_clearance_lookahead < 0:
            raise ValueError(
                f"swing_clearance_lookahead must be >= 0 m, got {self.swing_clearance_lookahead}"
            )
        if self.trunk_margin < 0:
            raise ValueError(f"trunk_margin must be >= 0 m, got {self.trunk_margin}")
        if not self.foothold_margin > 0:
            raise ValueError(f"foothold_margin must be > 0 m, got {self.foothold_margin}")
        if self.fall > 0:
            raise ValueError(f"fall is a penalty: must be <= 0, got {self.fall}")
        object.__setattr__(self, "weights", {**default_reward_weights(), **self.weights})


@dataclass(frozen=True)
class TerminationConfig:
    episode_length_s: float = 20.0  # time limit, reported as truncation
    max_tilt: float = 1.0  # rad between base z and world z
    base_contact: bool = True

    def __post_init__(self) -> None:
        if self.episode_length_s <= 0 or self.max_tilt <= 0:
            raise ValueError("episode_length_s and max_tilt must be > 0")


@dataclass(frozen=True)
class RandomizationConfig:
    """Domain randomisation, sampled per robot at every reset (pushes during episodes)."""

    enabled: bool = True
    friction: tuple[float, float] = (0.4, 1.2)
    added_base_mass: tuple[float, float] = (-5.0, 5.0)  # kg
    com_offset: tuple[float, float] = (-0.05, 0.05)  # m per axis
    motor_strength: tuple[float, float] = (0.9, 1.1)  # scales torque and limit
    kp_factor: tuple[float, float] = (0.9, 1.1)
    kd_factor: tuple[float, float] = (0.9, 1.1)
    push_interval_s: tuple[float, float] = (5.0, 15.0)  # time between pushes
    push_duration_s: float = 0.2
    push_force: float = 150.0  # N, max horizontal force of a push
    push_torque: float = 20.0  # N*m, max torque of a push
    latency_steps: tuple[int, int] = (0, 2)  # physics steps the new target is delayed
    # What another simulator or the real robot most likely does differently, as factors on
    # the MJCF's values (per robot; joints of one robot share a factor): joint damping,
    # friction loss and rotor armature, the leg links' masses; and the contact softness
    # (MuJoCo solref time constant, s, of every robot geom: larger is softer).
    joint_damping_factor: tuple[float, float] = (1.0, 1.0)
    joint_frictionloss_factor: tuple[float, float] = (1.0, 1.0)
    armature_factor: tuple[float, float] = (1.0, 1.0)
    link_mass_factor: tuple[float, float] = (1.0, 1.0)
    contact_timeconst: tuple[float, float] | None = None  # None: physics.contact_timeconst

    def __post_init__(self) -> None:
        for name in (
            "friction",
            "added_base_mass",
            "com_offset",
            "motor_strength",
            "kp_factor",
            "kd_factor",
            "push_interval_s",
            "joint_damping_factor",
            "joint_frictionloss_factor",
            "armature_factor",
            "link_mass_factor",
        ):
            _check_range(name, getattr(self, name))
        if self.friction[0] <= 0 or self.motor_strength[0] <= 0:
            raise ValueError("friction and motor_strength must be > 0")
        for name in ("joint_damping_factor", "joint_frictionloss_factor", "armature_factor"):
            if getattr(self, name)[0] < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.link_mass_factor[0] <= 0:
            raise ValueError("link_mass_factor must be > 0")
        if self.contact_timeconst is not None:
            _check_range("contact_timeconst", self.contact_timeconst)
        lo, hi = self.latency_steps
        if lo < 0 or hi < lo:
            raise ValueError(f"latency_steps must be 0 <= low <= high, got {self.latency_steps}")


@dataclass(frozen=True)
class ActionConfig:
    """How actions become joint targets (anymal_ros.obs.actions.ActionDecoder)."""

    mode: Literal["joint_residual", "cpg"] = "cpg"
    scale: float = 0.5  # rad per unit action (joint residuals)
    clip: float = 10.0
    base_frequency: float = 1.25  # Hz
    frequency_scale: float = 1.0  # Hz per unit action
    max_frequency: float = 4.0  # Hz
    swing_height: float = 0.08  # m

    def __post_init__(self) -> None:
        if self.scale <= 0 or self.clip <= 0:
            raise ValueError("scale and clip must be > 0")


@dataclass(frozen=True)
class SimConfig:
    robot: RobotConfig = field(default_factory=RobotConfig)
    physics: PhysicsConfig = field(default_factory=PhysicsConfig)
    terrain: TerrainConfig = field(default_factory=TerrainConfig)
    commands: CommandConfig = field(default_factory=CommandConfig)
    rewards: RewardConfig = field(default_factory=RewardConfig)
    termination: TerminationConfig = field(default_factory=TerminationConfig)
    randomization: RandomizationConfig = field(default_factory=RandomizationConfig)
    actions: ActionConfig = field(default_factory=ActionConfig)
    # Frame of the privileged state's vectors (contact forces and normals, the push's
    # wrench): "world", as the first teachers trained, or "yaw", the base's heading frame,
    # in which a state and its left-right mirror image can be told apart (ppo.symmetry_coef).
    privileged_frame: Literal["world", "yaw"] = "world"

    def __post_init__(self) -> None:
        soft = self.randomization.contact_timeconst
        if soft is not None and soft[0] < 2 * self.physics.dt - 1e-12:
            raise ValueError(
                f"randomization.contact_timeconst low ({soft[0]}) must be >= 2 * physics.dt "
                f"({2 * self.physics.dt}): MuJoCo would silently stiffen it no further"
            )
        hi = self.randomization.latency_steps[1]
        if hi > self.physics.decimation:
            raise ValueError(
                f"randomization.latency_steps high ({hi}) exceeds physics.decimation "
                f"({self.physics.decimation})"
            )

    @property
    def control_dt(self) -> float:
        return self.physics.dt * self.physics.decimation

    @property
    def max_episode_steps(self) -> int:
        """Policy steps of a full episode."""
        return int(round(self.termination.episode_length_s / self.control_dt))
