"""A robot is data: an MJCF file plus a small YAML that says how the policy drives it.

The YAML (``anymal_ros/robots/<name>.yaml``, or any path) names the MJCF beside it, the joints
in policy order, the default pose, the PD loop and the actuator limits, the bodies the code
needs (base, feet) and the nominal stance height. Everything about the legs' geometry (the
CPG's inverse kinematics, the node's forward kinematics, the feet for the height samples) is
derived from the MJCF when it is loaded (:func:`anymal_ros.sim.robot.derive_leg_chains`) and
travels with an exported policy as :class:`LegChains`; nothing here repeats the model's numbers.

Choosing the robot is one key: ``env.sim.robot.description`` (a bundled robot's name or a
path to a robot YAML).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from anymal_ros.config.base import ConfigError, from_dict, load_yaml
from anymal_ros.contract import JOINT_NAMES, LEGS, NUM_JOINTS, NUM_LEGS

#: Bundled robot descriptions (``<name>.yaml`` + its MJCF).
ROBOT_DIR = Path(__file__).resolve().parent.parent / "robots"
DEFAULT_ROBOT = "anymal_c"

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class RobotDescription:
    """What the code needs to know about a robot beyond its MJCF (SI units, radians).

    ``joint_names`` are the MJCF's actuated joints in policy order; this version of the
    observation contract drives 12 joints named ``<leg>_<HAA|HFE|KFE>`` for legs LF, RF, LH,
    RH (the ANYmal convention), so they must equal :data:`~anymal_ros.contract.JOINT_NAMES`.
    """

    name: str
    mjcf: str  # path, relative to the YAML file unless absolute
    joint_names: tuple[str, ...]
    default_joint_pos: dict[str, float]  # rad, by joint name
    kp: float  # N*m/rad, PD stiffness of the position loop
    kd: float  # N*m*s/rad
    torque_limit: float  # N*m
    joint_velocity_limit: float  # rad/s (MuJoCo has none: penalised by a reward term)
    nominal_base_height: float  # m, base above flat ground in the default pose
    base_body: str = "base"
    imu_site: str = "imu"  # must sit at the base origin (the simulator's IMU is the base frame)
    foot_bodies: tuple[str, ...] = tuple(f"{leg}_FOOT" for leg in LEGS)  # LEGS order
    # N*m, the motors' torque at stall, falling to 0 at joint_velocity_limit (capped at
    # torque_limit); the simulator's physics.actuator 'dc_motor' needs it (sim/actuator.py).
    saturation_torque: float | None = None
    source: str = ""  # where the numbers come from (shown in model cards)

    def __post_init__(self) -> None:
        if tuple(self.joint_names) != JOINT_NAMES:
            raise ValueError(
                f"joint_names must be {list(JOINT_NAMES)} in this order (the policy's joint "
                f"contract); got {list(self.joint_names)}: rename the MJCF's joints"
            )
        if set(self.default_joint_pos) != set(JOINT_NAMES):
            extra = sorted(set(self.default_joint_pos) - set(JOINT_NAMES))
            missing = sorted(set(JOINT_NAMES) - set(self.default_joint_pos))
            raise ValueError(f"default_joint_pos: missing {missing}, unknown {extra}")
        if len(self.foot_bodies) != NUM_LEGS:
            raise ValueError(f"foot_bodies needs {NUM_LEGS} names (LEGS order {list(LEGS)})")
        for key in ("kp", "kd", "torque_limit", "joint_velocity_limit", "nominal_base_height"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key} must be > 0, got {getattr(self, key)}")
        if self.saturation_torque is not None and not self.saturation_torque > 0:
            raise ValueError(f"saturation_torque must be > 0, got {self.saturation_torque}")

    def default_pose(self) -> tuple[float, ...]:
        """The default pose in policy (:data:`JOINT_NAMES`) order."""
        return tuple(float(self.default_joint_pos[n]) for n in self.joint_names)


@dataclass(frozen=True)
class LegChains:
    """The four legs as serial chains of three revolute joints, in the base frame at the zero
    pose (every joint angle 0), legs in LEGS order and joints in JOINT_NAMES order.

    ``joint_anchors[j]`` is a point on joint ``j``'s axis, ``joint_axes[j]`` its unit axis;
    ``foot_centres[leg]`` the centre of the foot's contact sphere; ``foot_radius`` its radius
    (the sole lies that far below the centre). Any leg whose joints are revolute and
    chained HAA -> HFE -> KFE -> foot is described exactly, offsets included (a foot off the
    knee's line, a thigh offset along the joint axis).
    """

    joint_anchors: tuple[Vec3, ...]
    joint_axes: tuple[Vec3, ...]
    foot_centres: tuple[Vec3, ...]
    foot_radius: float

    def __post_init__(self) -> None:
        for key, n in (("joint_anchors", NUM_JOINTS), ("joint_axes", NUM_JOINTS),
                       ("foot_centres", NUM_LEGS)):  # fmt: skip
            rows = getattr(self, key)
            if len(rows) != n or any(len(r) != 3 for r in rows):
                raise ValueError(f"{key}: expected {n} rows of 3 numbers")
        for axis in self.joint_axes:
            norm = sum(v * v for v in axis) ** 0.5
            if abs(norm - 1.0) > 1e-6:
                raise ValueError(f"joint_axes must be unit vectors, got {axis}")
        if not self.foot_radius >= 0:
            raise ValueError(f"foot_radius must be >= 0, got {self.foot_radius}")


def robot_yaml_path(name_or_path: str) -> Path:
    """The YAML of a bundled robot name, or ``name_or_path`` itself if it is a file path."""
    if name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path:
        path = Path(name_or_path)
    else:
        path = ROBOT_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        bundled = sorted(p.stem for p in ROBOT_DIR.glob("*.yaml"))
        raise ConfigError(
            f"robot description {name_or_path!r} not found ({path}); bundled robots: {bundled}"
        )
    return path


@lru_cache(maxsize=16)
def load_robot(name_or_path: str = DEFAULT_ROBOT) -> RobotDescription:
    """Read and validate a robot description (cached: descriptions are immutable)."""
    path = robot_yaml_path(name_or_path)
    data = load_yaml(path)
    robot = from_dict(RobotDescription, data, f"robot {path.name}")
    mjcf = Path(robot.mjcf)
    if not mjcf.is_absolute():
        mjcf = path.parent / mjcf
    if not mjcf.is_file():
        raise ConfigError(f"robot {path.name}: mjcf {robot.mjcf!r} not found ({mjcf})")
    return RobotDescription(**{**robot.__dict__, "mjcf": str(mjcf)})
