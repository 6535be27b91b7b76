"""Plausibility ranges of the policy node's inputs (pure python, no ROS).

A finite value can still be nonsense: a joint velocity of 1e30 rad/s, a joint 10 rad from its
range, a terrain 1 km below the foot, or a cloud whose bytes were read in the wrong order.
The policy was never trained on such inputs and its answer to them is arbitrary, so the node
rejects them like a NaN (the previous value is kept and ages out by the watchdog). The ranges
come from the policy and its training, widened by margins (node parameters), never from
numbers kept by hand here:

* joint positions: the joint limits the node clips targets to (the policy file's metadata, or
  the ``joint_lower_limits`` / ``joint_upper_limits`` parameters), +- ``position_margin``;
* joint velocities: ``velocity_factor`` x the joint speed limit of the robot the policy was
  trained for (its description's ``joint_velocity_limit``, carried in the policy file);
* heights: +- (:func:`training_height_range` + ``height_margin``), the most a height sample can
  differ from the foot's sole on the training terrain, with the training noise. Non-zero
  heights below float32's smallest normal number (~1.2e-38 m) are rejected as well: no
  sensor measures a sub-attometre height, but a small float read in the wrong byte order
  (a cloud flagged ``is_bigendian`` whose bytes are little endian) often lands there; the
  other wrongly ordered values land far outside the height range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from anymal_ros.config.noise import HeightNoiseConfig
from anymal_ros.config.sim import RobotConfig, TerrainConfig
from anymal_ros.contract import HEIGHT_RINGS
from anymal_ros.ros_io.inputs import InputError

_FLOAT32_TINY = float(np.finfo(np.float32).tiny)


def training_height_range(
    terrain: TerrainConfig | None = None,
    noise: HeightNoiseConfig | None = None,
    robot: RobotConfig | None = None,
) -> float:
    """Largest ``|height|`` (m) a height sample takes in training (defaults: the training
    settings' defaults): the terrain relief within the outer sample ring at the hardest level,
    plus how high the robot stands (no sole is higher above the ground than the base is
    spawned), plus the largest outlier and three standard deviations of the noisiest mode's
    height noise."""
    terrain = terrain or TerrainConfig()
    noise = noise or HeightNoiseConfig()
    robot = robot or RobotConfig()
    reach = max(radius for radius, _ in HEIGHT_RINGS)
    relief = max(
        max(terrain.step_height) * math.ceil(reach / terrain.step_width),  # stairs
        math.tan(max(terrain.slope)) * reach,
        max(terrain.box_height),
        2.0 * max(terrain.rough_amplitude),
    )
    z_std = max(
        levels.point_z_std + levels.foot_z_std + levels.episode_z_std
        for levels in (noise.nominal, noise.offset, noise.noisy)
    )
    return relief + robot.init_height + noise.outlier_max + 3.0 * z_std


@dataclass(frozen=True)
class PlausibleRanges:
    """What the node accepts. ``joint_low``/``joint_high``: ``[J]`` (rad, model joint order),
    or None where the policy has no joint limits; ``joint_speed`` (rad/s) and ``height`` (m)
    bound absolute values."""

    joint_names: tuple[str, ...]
    joint_low: np.ndarray | None
    joint_high: np.ndarray | None
    joint_speed: float
    height: float
    #: How each bound was obtained, for the rejection message (names the parameter to widen).
    joint_origin: str = ""
    speed_origin: str = ""
    height_origin: str = ""

    @classmethod
    def for_policy(
        cls,
        joint_names: Sequence[str],
        lower: np.ndarray | None,
        upper: np.ndarray | None,
        speed_limit: float,
        position_margin: float,
        velocity_factor: float,
        height_margin: float,
    ) -> PlausibleRanges:
        """The ranges of a policy with joint limits ``lower``/``upper`` (``[J]`` or None) and
        joint speed limit ``speed_limit`` (rad/s)."""
        for what, value in (
            ("plausible_joint_position_margin", position_margin),
            ("plausible_joint_velocity_factor", velocity_factor),
            ("plausible_height_margin", height_margin),
        ):
            if not value > 0:  # inf is allowed: no bound
                raise ValueError(f"{what} must be > 0, got {value}")
        trained = training_height_range()
        return cls(
            joint_names=tuple(joint_names),
            joint_low=None if lower is None else np.asarray(lower, float) - position_margin,
            joint_high=None if upper is None else np.asarray(upper, float) + position_margin,
            joint_speed=velocity_factor * speed_limit,
            height=trained + height_margin,
            joint_origin=(
                f"joint limits +- {position_margin:g} rad; parameter "
                "plausible_joint_position_margin"
            ),
            speed_origin=(
                f"{velocity_factor:g} x the training speed limit {speed_limit:g} rad/s; "
                "parameter plausible_joint_velocity_factor"
            ),
            height_origin=(
                f"training terrain and noise {trained:.2f} m + {height_margin:g} m; "
                "parameter plausible_height_margin"
            ),
        )

    def check_joints(self, position: np.ndarray, velocity: np.ndarray) -> None:
        """Raise :class:`InputError` naming the first joint whose ``[J]`` position or velocity
        (finite, model joint order) is out of range. Runs for every message: the common case
        is two comparisons."""
        limited = self.joint_low is not None and self.joint_high is not None
        in_range = not limited or (
            (position >= self.joint_low).all() and (position <= self.joint_high).all()
        )
        if in_range and (np.abs(velocity) <= self.joint_speed).all():
            return
        if limited:
            bad = np.flatnonzero((position < self.joint_low) | (position > self.joint_high))
            if bad.size:
                i = int(bad[0])
                raise InputError(
                    f"joint_states.position: {self.joint_names[i]} at {position[i]:.3g} rad, "
                    f"outside the plausible [{self.joint_low[i]:.2f}, {self.joint_high[i]:.2f}]"
                    f" ({self.joint_origin}; {bad.size} joint(s) out of range)"
                )
        bad = np.flatnonzero(np.abs(velocity) > self.joint_speed)
        if bad.size:
            i = int(bad[0])
            raise InputError(
                f"joint_states.velocity: {self.joint_names[i]} at {velocity[i]:.3g} rad/s, "
                f"beyond the plausible {self.joint_speed:.1f} rad/s ({self.speed_origin}; "
                f"{bad.size} joint(s) out of range)"
            )

    def check_heights(self, heights: np.ndarray) -> None:
        """Raise :class:`InputError` if a height (``[feet, points]`` float32, NaN = missing)
        is out of range or subnormal."""
        magnitude = np.abs(heights)  # NaN compares False below
        beyond = magnitude > self.height
        if beyond.any():
            raise InputError(
                f"height_samples: {np.count_nonzero(beyond)} height(s) beyond the plausible "
                f"+-{self.height:.2f} m (largest {np.nanmax(magnitude):.3g} m; "
                f"{self.height_origin})"
            )
        subnormal = (magnitude < _FLOAT32_TINY) & (magnitude > 0)
        if subnormal.any():
            raise InputError(
                f"height_samples: {np.count_nonzero(subnormal)} subnormal height(s) (below "
                f"{_FLOAT32_TINY:.2g} m): the bytes are probably in the other byte order than "
                "is_bigendian says"
            )
