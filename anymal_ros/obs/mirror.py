"""Left-right mirror images of observations and actions, for a symmetry loss in training.

ANYmal is mirror-symmetric about its sagittal plane (the base's x-z plane): a state mirrored
across that plane is a state the robot can be in, and the mirror image of a good action there
is the mirror image of the action taken in the original state. A policy that honours this
walks the same gait on both sides; nothing in a reward asks for that, and our teachers learned
lopsided ones (one diagonal pair of feet stubs ten times as often as the other).

The mirror swaps the legs LF <-> RF and LH <-> RH and reflects every vector across the x-z
plane: an ordinary vector (velocity, gravity, force) negates its y component, an axial one
(angular velocity, torque) its x and z components. A hip abduction angle changes sign (all
four HAA axes point along +x); flexion angles do not. Each map is built from the contract's
layouts term by term, so a term added to a layout without a mirror rule is refused here.

Vectors given in the world frame cannot be mirrored without the robot's heading, so the
privileged mirror needs the simulator's ``privileged_frame: yaw``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from anymal_ros.contract import (
    EXTERO_SHAPE,
    HEIGHT_RINGS,
    JOINT_NAMES,
    LEGS,
    NUM_JOINTS,
    NUM_LEGS,
    PRIVILEGED_LAYOUT,
    ObsLayout,
    action_dim,
    proprio_layout,
)

_MIRROR_LEG = {"LF": "RF", "RF": "LF", "LH": "RH", "RH": "LH"}
#: For each leg in LEGS order, the position of its mirror image.
_MIRRORED_LEGS = [LEGS.index(_MIRROR_LEG[leg]) for leg in LEGS]
#: Sign of a joint's angle in the mirror image, by joint kind.
_JOINT_SIGN = {"HAA": -1.0, "HFE": 1.0, "KFE": 1.0}


@dataclass(frozen=True)
class Mirror:
    """``mirrored[..., i] = sign[i] * x[..., index[i]]`` over a vector's last axis."""

    index: np.ndarray  # [D] int
    sign: np.ndarray  # [D] +1 / -1

    def __post_init__(self) -> None:
        if self.index.shape != self.sign.shape or sorted(self.index) != list(range(self.dim)):
            raise ValueError("a mirror's index must be a permutation of its sign's positions")

    @property
    def dim(self) -> int:
        return int(self.index.size)

    def __call__(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.dim:
            raise ValueError(f"mirror of size {self.dim} given a vector of {x.shape[-1]}")
        index = torch.as_tensor(self.index, device=x.device)
        sign = torch.as_tensor(self.sign, dtype=x.dtype, device=x.device)
        return x[..., index] * sign

    @staticmethod
    def concat(parts: list[Mirror]) -> Mirror:
        """The mirror of a vector made of ``parts`` laid end to end."""
        offsets = np.cumsum([0] + [p.dim for p in parts[:-1]])
        index = np.concatenate([p.index + o for p, o in zip(parts, offsets, strict=True)])
        return Mirror(index, np.concatenate([p.sign for p in parts]))

    @staticmethod
    def repeat(part: Mirror, times: int) -> Mirror:
        return Mirror.concat([part] * times)


def _legs(each: Mirror | None = None) -> Mirror:
    """A block per leg in LEGS order, each mirrored by ``each`` (default: one value as it
    is): the blocks swapped between mirror legs."""
    each = each or _vector((1.0,))
    index = np.concatenate([each.index + each.dim * j for j in _MIRRORED_LEGS])
    return Mirror(index, np.tile(each.sign, NUM_LEGS))


def _joints() -> Mirror:
    """The 12 joints in JOINT_NAMES order: legs swapped, abduction negated."""
    index = []
    for name in JOINT_NAMES:
        leg, kind = name.split("_")
        index.append(JOINT_NAMES.index(f"{_MIRROR_LEG[leg]}_{kind}"))
    sign = [_JOINT_SIGN[name.split("_")[1]] for name in JOINT_NAMES]
    return Mirror(np.array(index), np.array(sign))


def _vector(sign: tuple[float, ...]) -> Mirror:
    return Mirror(np.arange(len(sign)), np.asarray(sign, dtype=np.float64))


_POLAR = (1.0, -1.0, 1.0)  # x, y, z of an ordinary vector
_AXIAL = (-1.0, 1.0, -1.0)  # x, y, z of an angular velocity or torque


def _ring_points() -> Mirror:
    """The 52 samples around one foot: each ring runs counter-clockwise from +x, so the point
    at angle a goes to the one at -a, index k of n to (n - k) mod n."""
    index, start = [], 0
    for _, n in HEIGHT_RINGS:
        index.extend(start + (n - k) % n for k in range(n))
        start += n
    return Mirror(np.array(index), np.ones(start))


#: Mirror rule of every observation term, by name: its size -> its mirror.
_TERM_RULES: dict[str, Callable[[int], Mirror]] = {
    # proprioception (base frame)
    "command": lambda n: _vector((1.0, -1.0, -1.0)),  # vx, vy, yaw rate
    "gravity": lambda n: _vector(_POLAR),
    "base_lin_vel": lambda n: _vector(_POLAR),
    "base_ang_vel": lambda n: _vector(_AXIAL),
    "joint_pos": lambda n: _joints(),
    "joint_vel": lambda n: _joints(),
    "joint_pos_error_history": lambda n: Mirror.repeat(_joints(), n // NUM_JOINTS),
    "joint_vel_history": lambda n: Mirror.repeat(_joints(), n // NUM_JOINTS),
    "joint_target_history": lambda n: Mirror.repeat(_joints(), n // NUM_JOINTS),
    "cpg_phase": lambda n: Mirror.repeat(_legs(), 2),  # sines, then cosines
    "cpg_frequency": lambda n: Mirror.concat([_legs(), _vector((1.0,))]),  # legs, then base
    # privileged state (the base's yaw frame)
    "foot_contact": lambda n: _legs(),
    "foot_contact_force": lambda n: _legs(_vector(_POLAR)),
    "foot_contact_normal": lambda n: _legs(_vector(_POLAR)),
    "foot_friction": lambda n: _legs(),
    "thigh_shank_contact": lambda n: Mirror.repeat(_legs(), 2),  # thighs, then shanks
    "external_wrench": lambda n: Mirror.concat([_vector(_POLAR), _vector(_AXIAL)]),
    "foot_air_time": lambda n: _legs(),
}


def layout_mirror(layout: ObsLayout) -> Mirror:
    """The mirror of a vector laid out as ``layout``; a term without a rule is refused."""
    missing = [t.name for t in layout.terms if t.name not in _TERM_RULES]
    if missing:
        raise KeyError(f"no mirror rule for observation terms {missing}")
    parts = [_TERM_RULES[t.name](t.size) for t in layout.terms]
    for term, part in zip(layout.terms, parts, strict=True):
        if part.dim != term.size:
            raise ValueError(f"mirror rule of {term.name!r} has {part.dim} values, not {term.size}")
    return Mirror.concat(parts)


def extero_mirror() -> Mirror:
    """The height samples ``[4, 52]``, flattened: feet swapped, each foot's rings reflected."""
    rings = _ring_points()
    if (NUM_LEGS, rings.dim) != EXTERO_SHAPE:
        raise ValueError(f"height rings give {rings.dim} points a foot, not {EXTERO_SHAPE[1]}")
    return _legs(rings)


def action_mirror(mode: str) -> Mirror:
    """Actions of ``mode``: the CPG's four leg frequencies (legs swapped), then the joints."""
    joints = _joints()
    mirror = Mirror.concat([_legs(), joints]) if mode == "cpg" else joints
    if mirror.dim != action_dim(mode):
        raise ValueError(f"mirror of {mode!r} actions has {mirror.dim} values")
    return mirror


@dataclass(frozen=True)
class ObsActionMirror:
    """Mirrors of a teacher's observation dict (``proprio``, ``extero``, ``privileged``) and of
    its actions."""

    proprio: Mirror
    extero: Mirror
    privileged: Mirror
    action: Mirror

    @classmethod
    def for_quadruped(cls, action_mode: str, privileged_frame: str) -> ObsActionMirror:
        if privileged_frame != "yaw":
            raise ValueError(
                "a mirror of the privileged state needs its vectors in the yaw frame "
                f"(env.sim.privileged_frame: yaw), not {privileged_frame!r}"
            )
        return cls(
            proprio=layout_mirror(proprio_layout(action_mode == "cpg")),
            extero=extero_mirror(),
            privileged=layout_mirror(PRIVILEGED_LAYOUT),
            action=action_mirror(action_mode),
        )

    def observations(self, obs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        unknown = set(obs) - {"proprio", "extero", "privileged"}
        if unknown:
            raise KeyError(f"no mirror for observation keys {sorted(unknown)}")
        extero = obs["extero"]
        return {
            "proprio": self.proprio(obs["proprio"]),
            "extero": self.extero(extero.flatten(-2)).reshape(extero.shape),
            "privileged": self.privileged(obs["privileged"]),
        }
