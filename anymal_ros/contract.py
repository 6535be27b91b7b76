"""The observation contract as data: joint names, default pose, and the named terms of each
observation vector.

Everything that builds or consumes a policy input (the simulator, the ROS policy node, the
ONNX exporter that writes the layout into the file's metadata, the node that checks it) reads
these definitions, so the order of every term is fixed in exactly one place. Sizes follow
Miki et al. 2022 (see docs/architecture.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

#: Version of the observation/action contract; bump when a layout or meaning changes.
#: 2: the policy file carries its robot (name, leg kinematics, foot radius), the height rings
#: and the missing-height fill value.
CONTRACT_VERSION = 2

LEGS: tuple[str, ...] = ("LF", "RF", "LH", "RH")
JOINT_KINDS: tuple[str, ...] = ("HAA", "HFE", "KFE")
#: Actuated joints in policy order (leg-major). Messages are mapped by these names.
JOINT_NAMES: tuple[str, ...] = tuple(f"{leg}_{kind}" for leg in LEGS for kind in JOINT_KINDS)
NUM_JOINTS = len(JOINT_NAMES)
NUM_LEGS = len(LEGS)

#: Nominal standing pose (rad), ANYmal-C-like "X" configuration: front knees bend backwards,
#: hind knees forwards.
DEFAULT_JOINT_POS: dict[str, float] = {
    **{f"{leg}_HAA": 0.0 for leg in LEGS},
    "LF_HFE": 0.4, "RF_HFE": 0.4, "LH_HFE": -0.4, "RH_HFE": -0.4,
    "LF_KFE": -0.8, "RF_KFE": -0.8, "LH_KFE": 0.8, "RH_KFE": 0.8,
}  # fmt: skip


def default_joint_positions(dtype: type = np.float64) -> np.ndarray:
    """Default pose in :data:`JOINT_NAMES` order (float64: the exact values the ONNX metadata
    carries, so simulator and robot compute identical targets)."""
    return np.array([DEFAULT_JOINT_POS[n] for n in JOINT_NAMES], dtype=dtype)


@dataclass(frozen=True)
class ObsTerm:
    """One named, contiguous block of an observation vector."""

    name: str
    size: int


@dataclass(frozen=True)
class ObsLayout:
    """An ordered list of terms; offsets follow from the order."""

    terms: tuple[ObsTerm, ...]

    @property
    def dim(self) -> int:
        return sum(t.size for t in self.terms)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.terms)

    def slices(self) -> dict[str, slice]:
        """Term name -> slice into the flat vector."""
        out, start = {}, 0
        for t in self.terms:
            out[t.name] = slice(start, start + t.size)
            start += t.size
        return out

    def to_json(self) -> str:
        return json.dumps([[t.name, t.size] for t in self.terms])

    @classmethod
    def from_json(cls, text: str) -> ObsLayout:
        try:
            items = json.loads(text)
            return cls(tuple(ObsTerm(str(n), int(s)) for n, s in items))
        except (ValueError, TypeError) as err:
            msg = f"observation layout is not a JSON list of [name, size]: {err}"
            raise ValueError(msg) from err


# --- actions ------------------------------------------------------------------------------

#: Action modes, the same names in the simulator config and in an exported policy's metadata
#: (decoded by anymal_ros.obs.actions.ActionDecoder).
ACTION_MODES: tuple[str, ...] = ("joint_residual", "cpg")


def action_dim(mode: str) -> int:
    """Number of policy outputs for ``mode``: 12 residuals, plus 4 leg frequencies for CPG."""
    if mode not in ACTION_MODES:
        raise ValueError(f"action mode must be one of {ACTION_MODES}, got {mode!r}")
    return NUM_JOINTS + (NUM_LEGS if mode == "cpg" else 0)


# --- proprioception -------------------------------------------------------------------------

#: History lengths of the proprioceptive buffers (paper: 3 steps of joint-position error,
#: 2 of joint velocity, 2 of joint targets).
POS_ERROR_HISTORY = 3
VEL_HISTORY = 2
TARGET_HISTORY = 2

_PROPRIO_TERMS: tuple[ObsTerm, ...] = (
    ObsTerm("command", 3),  # vx, vy, yaw rate in the base frame
    ObsTerm("gravity", 3),  # unit gravity direction in the base frame
    ObsTerm("base_lin_vel", 3),  # base frame
    ObsTerm("base_ang_vel", 3),  # base frame
    ObsTerm("joint_pos", NUM_JOINTS),  # relative to the default pose
    ObsTerm("joint_vel", NUM_JOINTS),
    ObsTerm("joint_pos_error_history", POS_ERROR_HISTORY * NUM_JOINTS),  # target - pos
    ObsTerm("joint_vel_history", VEL_HISTORY * NUM_JOINTS),
    ObsTerm("joint_target_history", TARGET_HISTORY * NUM_JOINTS),
)
#: CPG terms: sin/cos of each leg's phase, each leg's frequency, and the base frequency.
_CPG_TERMS: tuple[ObsTerm, ...] = (
    ObsTerm("cpg_phase", 2 * NUM_LEGS),
    ObsTerm("cpg_frequency", NUM_LEGS + 1),
)


def proprio_layout(cpg: bool) -> ObsLayout:
    """Proprioceptive layout: 120 values, or 133 with the CPG action mode."""
    return ObsLayout(_PROPRIO_TERMS + (_CPG_TERMS if cpg else ()))


# --- exteroception --------------------------------------------------------------------------

#: Rings of height samples around each foot: (radius m, number of points).
HEIGHT_RINGS: tuple[tuple[float, int], ...] = (
    (0.08, 6),
    (0.16, 8),
    (0.26, 10),
    (0.36, 12),
    (0.48, 16),
)
POINTS_PER_FOOT = sum(n for _, n in HEIGHT_RINGS)  # 52
EXTERO_SHAPE: tuple[int, int] = (NUM_LEGS, POINTS_PER_FOOT)


def height_sample_offsets() -> np.ndarray:
    """``[52, 2]`` x/y offsets (m) of the sample points around a foot, in the yaw frame.

    Rings are listed innermost first, each ring counter-clockwise from the +x axis.
    """
    pts = []
    for radius, n in HEIGHT_RINGS:
        angles = np.arange(n) * (2.0 * np.pi / n)
        pts.append(np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=-1))
    return np.concatenate(pts).astype(np.float32)


# --- privileged state -----------------------------------------------------------------------

# Its vectors (contact forces and normals, the external wrench) are in the world frame, or in
# the base's yaw frame where the simulator's ``privileged_frame`` says so: the frame in which a
# state's left-right mirror image can be formed (anymal_ros.obs.mirror).
PRIVILEGED_LAYOUT = ObsLayout(
    (
        ObsTerm("foot_contact", NUM_LEGS),  # 0/1
        ObsTerm("foot_contact_force", 3 * NUM_LEGS),  # N, world or yaw frame (above)
        ObsTerm("foot_contact_normal", 3 * NUM_LEGS),
        ObsTerm("foot_friction", NUM_LEGS),
        ObsTerm("thigh_shank_contact", 2 * NUM_LEGS),  # thighs then shanks, 0/1
        ObsTerm("external_wrench", 6),  # force then torque on the base
        ObsTerm("foot_air_time", NUM_LEGS),  # s
    )
)
PRIVILEGED_DIM = PRIVILEGED_LAYOUT.dim  # 50
#: Unit of each privileged term (what a decoded estimate of it is expressed in).
PRIVILEGED_UNITS: dict[str, str] = {
    "foot_contact": "1 (0 = no contact, 1 = contact)",
    "foot_contact_force": "N (x, y, z per foot, world frame)",
    "foot_contact_normal": "1 (unit vector x, y, z per foot, world frame)",
    "foot_friction": "1 (friction coefficient)",
    "thigh_shank_contact": "1 (0/1; four thighs then four shanks)",
    "external_wrench": "N, N m (force x, y, z then torque x, y, z on the base)",
    "foot_air_time": "s",
}


def index_by_name(names: list[str] | tuple[str, ...], wanted: tuple[str, ...] = JOINT_NAMES):
    """Indices into ``names`` that pick ``wanted`` in order (extra names are ignored).

    Raises ``KeyError`` listing every wanted joint that is absent, so a robot whose joint
    names do not match the policy is refused instead of being driven with a wrong mapping.
    """
    position = {n: i for i, n in enumerate(names)}
    missing = [n for n in wanted if n not in position]
    if missing:
        raise KeyError(f"joints missing from message: {missing}")
    return np.array([position[n] for n in wanted], dtype=np.intp)
