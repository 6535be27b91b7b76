"""Self-description of an exported policy, stored in the ONNX file's ``metadata_props``.

numpy only (no torch, no onnx): the onboard runtime reads it through onnxruntime's
``custom_metadata_map``. Every value is a string; lists and layouts are JSON. Reading
validates every key and raises :class:`PolicyFileError` naming what is missing or wrong, so a
robot never runs a policy whose contract it does not understand.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from anymal_ros.config.base import ConfigError, from_dict, to_dict
from anymal_ros.config.noise import MISSING_HEIGHT_FILL
from anymal_ros.config.robot import LegChains
from anymal_ros.config.sim import (
    ActionConfig,
    PhysicsConfig,
    RandomizationConfig,
    SpeedGovernorConfig,
)
from anymal_ros.contract import (
    ACTION_MODES,
    CONTRACT_VERSION,
    EXTERO_SHAPE,
    HEIGHT_RINGS,
    JOINT_NAMES,
    PRIVILEGED_DIM,
    ObsLayout,
    action_dim,
    proprio_layout,
)
from anymal_ros.obs.actions import ActionDecoder
from anymal_ros.obs.governor import SpeedGovernor, StanceFeet
from anymal_ros.obs.kinematics import LegKinematics

#: Prefix of every key we write, so our keys never collide with a tool's own metadata.
PREFIX = "anymal_ros."
KINDS = ("student", "teacher")
ACTION_TYPES = ACTION_MODES
#: Decoder settings stored in ``action_params``: every field of ``config.sim.ActionConfig``
#: but ``mode`` and ``scale`` (stored as ``action_type`` and ``action_scale``), so a new
#: setting of the simulator's decoder travels to the robot by itself.
ACTION_PARAMS: tuple[str, ...] = tuple(
    f.name for f in fields(ActionConfig) if f.name not in ("mode", "scale")
)
ACTION_HEADS = ("gaussian", "categorical")


class PolicyFileError(ValueError):
    """A policy file is unreadable, incomplete, or of a contract this code does not speak."""


@dataclass(frozen=True)
class PolicyMetadata:
    """What a runtime needs to drive a robot with an exported policy.

    ``hidden_shape`` is ``(layers, 1, H)`` for a student and ``()`` for a teacher (no
    recurrent state). ``action_output`` says what the graph's ``action`` output holds:
    ``"mean"`` (Gaussian) or ``"logits"`` (categorical; take the argmax).

    The robot the policy was trained for travels with it: ``robot`` (its description's name),
    ``default_joint_pos``, ``leg_chains`` (the legs' kinematics, derived from its MJCF: the
    node's forward kinematics and the CPG's inverse kinematics), ``joint_velocity_limit``
    (rad/s, the node's plausibility check), ``height_rings`` (the sample
    rings around each foot, radius m and point count; yaw-aligned, heights relative to the
    sole) and ``missing_height_fill`` (the height the policy was trained to read as "no data").

    ``training_physics``: the simulator's physics settings the policy trained in (friction
    cones, contact softness, actuator model), so that ``anymal-ros eval`` and its kin simulate
    a file as it was trained; the robot never reads it. None in files exported before it was
    stored: the simulator's defaults then. ``training_randomization`` likewise: the spread of
    robots it trained on (payload, centre of mass, friction, motors, latency, pushes, ...).

    ``speed_governor``: how a student's command is to be capped where its belief shows steps
    (:mod:`anymal_ros.obs.governor`), or None: run it ungoverned. Evaluation and the policy
    node both follow it, so a file is measured as the robot runs it.
    """

    kind: str
    proprio_dim: int
    action_dim: int
    proprio_layout: ObsLayout
    robot: str
    default_joint_pos: tuple[float, ...]
    leg_chains: LegChains
    joint_velocity_limit: float  # rad/s, the robot's
    extero_shape: tuple[int, int] = EXTERO_SHAPE
    privileged_dim: int = 0  # teacher only
    hidden_shape: tuple[int, ...] = ()
    joint_names: tuple[str, ...] = JOINT_NAMES
    height_rings: tuple[tuple[float, int], ...] = HEIGHT_RINGS
    missing_height_fill: float = MISSING_HEIGHT_FILL
    joint_pos_lower: tuple[float, ...] | None = None
    joint_pos_upper: tuple[float, ...] | None = None
    action_type: str = "joint_residual"
    action_head: str = "gaussian"
    action_scale: float = 0.5
    action_params: dict[str, float] = field(
        default_factory=lambda: {k: getattr(ActionConfig(), k) for k in ACTION_PARAMS}
    )
    control_period: float = 0.02
    training_physics: PhysicsConfig | None = None
    training_randomization: RandomizationConfig | None = None
    speed_governor: SpeedGovernorConfig | None = None
    contract_version: int = CONTRACT_VERSION
    extra: dict[str, str] = field(default_factory=dict)  # free text (e.g. source checkpoint)

    @property
    def action_output(self) -> str:
        return "logits" if self.action_head == "categorical" else "mean"

    @property
    def recurrent(self) -> bool:
        return len(self.hidden_shape) > 0

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def kinematics(self) -> LegKinematics:
        """Forward/inverse kinematics of the robot's legs (base frame)."""
        return LegKinematics(self.leg_chains)

    def governor(self, num_envs: int = 1) -> SpeedGovernor | None:
        """The speed governor this file asks for, for ``num_envs`` robots (None: none)."""
        settings = self.speed_governor
        if settings is None:
            return None
        stance = (
            StanceFeet(self.leg_chains, self.default_joint_pos, self.proprio_layout)
            if settings.stance_threshold is not None
            else None
        )
        return SpeedGovernor(settings, self.control_period, num_envs, stance)

    @property
    def foot_radius(self) -> float:
        """m from a foot's centre to its sole (heights are relative to the sole)."""
        return self.leg_chains.foot_radius

    def action_config(self) -> ActionConfig:
        """The training-time ``actions`` settings this policy was exported with."""
        return ActionConfig(mode=self.action_type, scale=self.action_scale, **self.action_params)

    def action_decoder(self, num_envs: int = 1) -> ActionDecoder:
        """Decoder turning this policy's actions into joint targets (clipped to the limits)."""
        return ActionDecoder.from_config(
            self.action_config(),
            num_envs,
            self.control_period,
            joint_lower=None if self.joint_pos_lower is None else list(self.joint_pos_lower),
            joint_upper=None if self.joint_pos_upper is None else list(self.joint_pos_upper),
            default_joint_pos=list(self.default_joint_pos),
            kinematics=self.kinematics,
        )

    # --- (de)serialisation ---------------------------------------------------------------
    def to_props(self) -> dict[str, str]:
        """String key/values for ONNX ``metadata_props``."""
        values: dict[str, Any] = {
            "contract_version": str(self.contract_version),
            "kind": self.kind,
            "proprio_dim": str(self.proprio_dim),
            "extero_shape": json.dumps(list(self.extero_shape)),
            "privileged_dim": str(self.privileged_dim),
            "hidden_shape": json.dumps(list(self.hidden_shape)),
            "proprio_layout": self.proprio_layout.to_json(),
            "joint_names": json.dumps(list(self.joint_names)),
            "robot": self.robot,
            "default_joint_pos": json.dumps(list(self.default_joint_pos)),
            "leg_chains": json.dumps(
                {
                    "joint_anchors": [list(v) for v in self.leg_chains.joint_anchors],
                    "joint_axes": [list(v) for v in self.leg_chains.joint_axes],
                    "foot_centres": [list(v) for v in self.leg_chains.foot_centres],
                    "foot_radius": self.leg_chains.foot_radius,
                }
            ),
            "height_rings": json.dumps([[float(r), int(n)] for r, n in self.height_rings]),
            "missing_height_fill": repr(float(self.missing_height_fill)),
            "joint_velocity_limit": repr(float(self.joint_velocity_limit)),
            "joint_pos_lower": json.dumps(_opt_list(self.joint_pos_lower)),
            "joint_pos_upper": json.dumps(_opt_list(self.joint_pos_upper)),
            "action_type": self.action_type,
            "action_head": self.action_head,
            "action_output": self.action_output,
            "action_dim": str(self.action_dim),
            "action_scale": repr(float(self.action_scale)),
            "action_params": json.dumps(self.action_params),
            "control_period": repr(float(self.control_period)),
            "training_physics": _opt_json(self.training_physics),
            "training_randomization": _opt_json(self.training_randomization),
            "extra": json.dumps(self.extra),
        }
        if self.speed_governor is not None:  # none: the key left out, as before it existed
            values["speed_governor"] = _opt_json(self.speed_governor)
        return {PREFIX + k: v for k, v in values.items()}

    @classmethod
    def from_props(cls, props: Mapping[str, str]) -> PolicyMetadata:
        """Parse and validate; raises :class:`PolicyFileError` naming the bad key."""
        reader = _Reader(props)
        version = reader.integer("contract_version")
        if version != CONTRACT_VERSION:
            raise PolicyFileError(
                f"unsupported contract version {version} (key {PREFIX}contract_version); "
                f"this anymal_ros understands version {CONTRACT_VERSION}: re-export the policy "
                "with a matching anymal_ros"
            )
        try:
            layout = ObsLayout.from_json(reader.text("proprio_layout"))
        except ValueError as err:
            raise PolicyFileError(f"metadata key {PREFIX}proprio_layout: {err}") from err
        kwargs = dict(
            kind=reader.text("kind"),
            proprio_dim=reader.integer("proprio_dim"),
            extero_shape=tuple(reader.int_list("extero_shape")),
            privileged_dim=reader.integer("privileged_dim"),
            hidden_shape=tuple(reader.int_list("hidden_shape")),
            proprio_layout=layout,
            joint_names=tuple(reader.json("joint_names", list, "a list of joint names")),
            robot=reader.text("robot"),
            default_joint_pos=tuple(reader.float_list("default_joint_pos")),
            leg_chains=reader.leg_chains(),
            height_rings=reader.height_rings(),
            missing_height_fill=reader.number("missing_height_fill"),
            joint_velocity_limit=reader.number("joint_velocity_limit"),
            joint_pos_lower=reader.opt_float_list("joint_pos_lower"),
            joint_pos_upper=reader.opt_float_list("joint_pos_upper"),
            action_type=reader.text("action_type"),
            action_head=reader.text("action_head"),
            action_dim=reader.integer("action_dim"),
            action_scale=reader.number("action_scale"),
            action_params=reader.action_params(),
            control_period=reader.number("control_period"),
            training_physics=reader.settings("training_physics", PhysicsConfig),
            training_randomization=reader.settings("training_randomization", RandomizationConfig),
            speed_governor=reader.settings("speed_governor", SpeedGovernorConfig),
            contract_version=version,
            extra=reader.json("extra", dict, "a JSON object", optional=True) or {},
        )
        try:
            return cls(**kwargs)
        except PolicyFileError:
            raise
        except (ValueError, TypeError) as err:
            raise PolicyFileError(f"policy metadata is inconsistent: {err}") from err


def _opt_json(settings: Any) -> str:
    return json.dumps(None if settings is None else to_dict(settings))


def _opt_list(v: tuple[float, ...] | None) -> list[float] | None:
    return None if v is None else [float(x) for x in v]


def _validate(m: PolicyMetadata) -> None:
    def bad(key: str, why: str) -> PolicyFileError:
        return PolicyFileError(f"metadata key {PREFIX}{key}: {why}")

    if m.kind not in KINDS:
        raise bad("kind", f"{m.kind!r} is not one of {list(KINDS)}")
    if m.action_type not in ACTION_TYPES:
        raise bad("action_type", f"{m.action_type!r} is not one of {list(ACTION_TYPES)}")
    if m.action_head not in ACTION_HEADS:
        raise bad("action_head", f"{m.action_head!r} is not one of {list(ACTION_HEADS)}")
    if m.proprio_dim < 1:
        raise bad("proprio_dim", f"must be >= 1, got {m.proprio_dim}")
    if m.proprio_layout.dim != m.proprio_dim:
        raise bad(
            "proprio_layout",
            f"terms add up to {m.proprio_layout.dim} but proprio_dim is {m.proprio_dim}",
        )
    if len(m.extero_shape) != 2 or min(m.extero_shape) < 1:
        raise bad("extero_shape", f"expected [feet, points], got {list(m.extero_shape)}")
    if m.kind == "teacher" and m.privileged_dim < 1:
        raise bad("privileged_dim", "a teacher policy needs privileged_dim >= 1")
    if m.kind == "student":
        if len(m.hidden_shape) != 3 or m.hidden_shape[1] != 1 or min(m.hidden_shape) < 1:
            raise bad("hidden_shape", f"expected [layers, 1, H], got {list(m.hidden_shape)}")
    elif m.hidden_shape:
        raise bad("hidden_shape", f"a teacher has no hidden state, got {list(m.hidden_shape)}")
    if m.action_dim < 1:
        raise bad("action_dim", f"must be >= 1, got {m.action_dim}")
    n = len(m.joint_names)
    if n == 0 or len(set(m.joint_names)) != n:
        raise bad("joint_names", f"must be non-empty and unique, got {list(m.joint_names)}")
    if len(m.default_joint_pos) != n:
        raise bad("default_joint_pos", f"has {len(m.default_joint_pos)} values for {n} joints")
    for key in ("joint_pos_lower", "joint_pos_upper"):
        lim = getattr(m, key)
        if lim is not None and len(lim) != n:
            raise bad(key, f"has {len(lim)} values for {n} joints")
    if m.joint_pos_lower is not None and m.joint_pos_upper is not None:
        if any(lo > hi for lo, hi in zip(m.joint_pos_lower, m.joint_pos_upper, strict=True)):
            raise bad("joint_pos_lower", "a lower limit exceeds its upper limit")
    if m.action_head == "gaussian" and m.action_dim != action_dim(m.action_type):
        raise bad(
            "action_dim",
            f"{m.action_type} actions have {action_dim(m.action_type)} values, got {m.action_dim}",
        )
    if sorted(m.action_params) != sorted(ACTION_PARAMS):
        keys = sorted(m.action_params)
        raise bad("action_params", f"expected keys {list(ACTION_PARAMS)}, got {keys}")
    try:
        m.action_config()
    except ValueError as err:
        raise bad("action_params", str(err)) from None
    if not (math.isfinite(m.action_scale) and m.action_scale > 0):
        raise bad("action_scale", f"must be a positive number, got {m.action_scale}")
    rings = tuple((float(r), int(n)) for r, n in m.height_rings)
    if rings != tuple((float(r), int(n)) for r, n in HEIGHT_RINGS):
        raise bad(
            "height_rings",
            f"the policy samples heights on rings {list(rings)}; this anymal_ros samples "
            f"{[list(r) for r in HEIGHT_RINGS]} (yaw-aligned, relative to the sole)",
        )
    if not (math.isfinite(m.joint_velocity_limit) and m.joint_velocity_limit > 0):
        why = f"must be a positive number of rad/s, got {m.joint_velocity_limit}"
        raise bad("joint_velocity_limit", why)
    if not math.isfinite(m.missing_height_fill):
        raise bad("missing_height_fill", f"must be finite, got {m.missing_height_fill}")
    if len(m.leg_chains.joint_anchors) != n:
        raise bad("leg_chains", f"describes {len(m.leg_chains.joint_anchors)} joints for {n}")
    if not (math.isfinite(m.control_period) and m.control_period > 0):
        raise bad("control_period", f"must be a positive number of seconds, got {m.control_period}")
    if m.speed_governor is not None and m.kind != "student":
        raise bad("speed_governor", "only a student has the belief a speed governor reads")
    stance_cue = m.speed_governor is not None and m.speed_governor.stance_threshold is not None
    if stance_cue and "cpg_phase" not in m.proprio_layout.names:
        raise bad("speed_governor", "its stance cue reads the CPG phase, which this policy lacks")


class _Reader:
    """Typed access to string properties; every failure names the key."""

    def __init__(self, props: Mapping[str, str]) -> None:
        self.props = props

    def text(self, key: str, optional: bool = False) -> str | None:
        full = PREFIX + key
        if full not in self.props:
            if optional:
                return None
            ours = sorted(k for k in self.props if k.startswith(PREFIX))
            hint = "" if ours else " (the file has no anymal_ros metadata: not exported by us?)"
            raise PolicyFileError(f"policy metadata is missing key {full!r}{hint}")
        return self.props[full]

    def _fail(self, key: str, what: str) -> PolicyFileError:
        value = self.props.get(PREFIX + key)
        return PolicyFileError(f"metadata key {PREFIX}{key}: expected {what}, got {value!r}")

    def integer(self, key: str) -> int:
        text = self.text(key)
        try:
            return int(text)
        except ValueError:
            raise self._fail(key, "an integer") from None

    def number(self, key: str) -> float:
        text = self.text(key)
        try:
            return float(text)
        except ValueError:
            raise self._fail(key, "a number") from None

    def json(self, key: str, kind: type, what: str, optional: bool = False) -> Any:
        text = self.text(key, optional)
        if text is None:
            return None
        try:
            value = json.loads(text)
        except ValueError:
            raise self._fail(key, what) from None
        if value is None and optional:
            return None
        if not isinstance(value, kind):
            raise self._fail(key, what)
        return value

    def settings(self, key: str, cls: type) -> Any:
        """An optional settings section (a JSON object of ``cls``'s fields)."""
        value = self.json(key, dict, f"a JSON object of {cls.__name__} fields", optional=True)
        if value is None:
            return None
        try:
            return from_dict(cls, value, key)
        except (ConfigError, ValueError) as err:  # err names the key and the field
            raise PolicyFileError(f"metadata key {PREFIX}{err}") from None

    def int_list(self, key: str) -> list[int]:
        value = self.json(key, list, "a JSON list of integers")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise self._fail(key, "a JSON list of integers")
        return value

    def float_list(self, key: str) -> list[float]:
        value = self.json(key, list, "a JSON list of numbers")
        try:
            out = [float(v) for v in value]
        except (TypeError, ValueError):
            raise self._fail(key, "a JSON list of numbers") from None
        if not all(math.isfinite(v) for v in out):
            raise self._fail(key, "a JSON list of finite numbers")
        return out

    def action_params(self) -> dict[str, float]:
        value = self.json("action_params", dict, "a JSON object of decoder settings")
        try:
            return {str(k): float(v) for k, v in value.items()}
        except (TypeError, ValueError):
            raise self._fail("action_params", "a JSON object of numbers") from None

    def leg_chains(self) -> LegChains:
        what = "a JSON object with joint_anchors, joint_axes, foot_centres, foot_radius"
        value = self.json("leg_chains", dict, what)
        try:
            return LegChains(
                joint_anchors=tuple(tuple(float(x) for x in v) for v in value["joint_anchors"]),
                joint_axes=tuple(tuple(float(x) for x in v) for v in value["joint_axes"]),
                foot_centres=tuple(tuple(float(x) for x in v) for v in value["foot_centres"]),
                foot_radius=float(value["foot_radius"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise PolicyFileError(f"metadata key {PREFIX}leg_chains: {err}") from None

    def height_rings(self) -> tuple[tuple[float, int], ...]:
        value = self.json("height_rings", list, "a JSON list of [radius, points]")
        try:
            return tuple((float(r), int(n)) for r, n in value)
        except (TypeError, ValueError):
            raise self._fail("height_rings", "a JSON list of [radius, points]") from None

    def opt_float_list(self, key: str) -> tuple[float, ...] | None:
        if PREFIX + key not in self.props or self.props[PREFIX + key] == "null":
            return None
        return tuple(self.float_list(key))


def default_action_config(proprio_dim: int) -> ActionConfig:
    """Action settings used when a checkpoint stores none (see ``anymal-ros export``): the
    simulator's defaults, CPG iff the proprio vector carries the CPG terms (133)."""
    mode = "cpg" if proprio_dim == proprio_layout(cpg=True).dim else "joint_residual"
    return ActionConfig(mode=mode)


__all__ = [
    "CONTRACT_VERSION",
    "PRIVILEGED_DIM",
    "PolicyFileError",
    "PolicyMetadata",
    "default_action_config",
]
