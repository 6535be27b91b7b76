"""Height-noise model settings (the student's exteroception only; Miki et al. 2022).

Three noise modes are drawn per environment at every episode start (nominal / offset / noisy,
60 / 30 / 10 % by default) and redrawn mid-episode with a small per-step probability. Each
mode has its own :class:`NoiseLevels`. The noisy mode is blended with the nominal one by a
curriculum factor ``c`` in [0, 1]: ``levels = nominal + c * (noisy - nominal)``, so ``c = 0``
means every environment sees at most nominal noise. ``c`` ramps linearly from
``curriculum_start`` to ``curriculum_end`` (training iterations).

The standard deviations are our defaults (metres); the paper names the structure of the
model but its exact table is not reproduced here. Tune them in YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Value written into a height sample that is "missing" (no map cell, occlusion). It lies far
#: outside the heights a foot can reach relative to the robot, so the policy can tell it from
#: terrain; the deployed node must fill missing map cells with the same value.
MISSING_HEIGHT_FILL = -2.0

MODE_NAMES: tuple[str, ...] = ("nominal", "offset", "noisy")


@dataclass(frozen=True)
class NoiseLevels:
    """Standard deviations (m) and rates of one noise mode.

    ``point_*`` are drawn for every sample point at every step, ``foot_*`` for every foot at
    every step (shifting all 52 points of a foot together: foot-position estimation error),
    ``episode_*`` once per episode per environment (a map offset that stays for the episode).
    ``outlier_prob``: per point and step, the height is replaced by the true height plus a
    random large offset. ``missing_prob``: per point and step, the height is replaced by
    :attr:`HeightNoiseConfig.missing_fill`.
    """

    point_xy_std: float = 0.0
    point_z_std: float = 0.0
    foot_xy_std: float = 0.0
    foot_z_std: float = 0.0
    episode_xy_std: float = 0.0
    episode_z_std: float = 0.0
    outlier_prob: float = 0.0
    missing_prob: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "point_xy_std",
            "point_z_std",
            "foot_xy_std",
            "foot_z_std",
            "episode_xy_std",
            "episode_z_std",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("outlier_prob", "missing_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.outlier_prob + self.missing_prob > 1.0:
            raise ValueError("outlier_prob + missing_prob must be <= 1")


def _nominal() -> NoiseLevels:
    return NoiseLevels(
        point_xy_std=0.004,
        point_z_std=0.005,
        foot_xy_std=0.01,
        foot_z_std=0.01,
        episode_xy_std=0.0,
        episode_z_std=0.01,
    )


def _offset() -> NoiseLevels:
    return NoiseLevels(
        point_xy_std=0.004,
        point_z_std=0.005,
        foot_xy_std=0.01,
        foot_z_std=0.02,
        episode_xy_std=0.05,
        episode_z_std=0.1,
    )


def _noisy() -> NoiseLevels:
    return NoiseLevels(
        point_xy_std=0.03,
        point_z_std=0.08,
        foot_xy_std=0.05,
        foot_z_std=0.1,
        episode_xy_std=0.05,
        episode_z_std=0.1,
        outlier_prob=0.03,
        missing_prob=0.05,
    )


@dataclass(frozen=True)
class HeightNoiseConfig:
    """Height-noise model; see the module docstring for how the pieces combine."""

    enabled: bool = True
    #: Probabilities of nominal / offset / noisy when a mode is drawn.
    mode_probs: tuple[float, float, float] = (0.6, 0.3, 0.1)
    #: Per control step probability of redrawing an environment's mode mid-episode
    #: (0.004 at 50 Hz: on average one redraw every 5 s).
    mode_resample_prob: float = 0.004
    nominal: NoiseLevels = field(default_factory=_nominal)
    offset: NoiseLevels = field(default_factory=_offset)
    noisy: NoiseLevels = field(default_factory=_noisy)
    #: An outlier adds +-U(outlier_min, outlier_max) metres to the true height.
    outlier_min: float = 0.3
    outlier_max: float = 1.0
    missing_fill: float = MISSING_HEIGHT_FILL
    #: Curriculum: factor 0 before ``curriculum_start``, 1 after ``curriculum_end``.
    curriculum_start: int = 0
    curriculum_end: int = 1000

    def __post_init__(self) -> None:
        if len(self.mode_probs) != 3 or any(p < 0 for p in self.mode_probs):
            raise ValueError(
                f"mode_probs must be three non-negative numbers, got {self.mode_probs}"
            )
        if abs(sum(self.mode_probs) - 1.0) > 1e-6:
            raise ValueError(f"mode_probs must sum to 1, got {sum(self.mode_probs)}")
        if not 0.0 <= self.mode_resample_prob <= 1.0:
            raise ValueError(f"mode_resample_prob must be in [0, 1], got {self.mode_resample_prob}")
        if not 0.0 <= self.outlier_min <= self.outlier_max:
            raise ValueError(
                f"need 0 <= outlier_min <= outlier_max, got {self.outlier_min, self.outlier_max}"
            )
        if self.curriculum_end < self.curriculum_start:
            raise ValueError(
                f"curriculum_end ({self.curriculum_end}) < curriculum_start "
                f"({self.curriculum_start})"
            )

    def curriculum_factor(self, iteration: int) -> float:
        """Linear ramp in [0, 1] over ``[curriculum_start, curriculum_end]`` iterations."""
        if iteration <= self.curriculum_start:
            return 0.0
        if iteration >= self.curriculum_end:
            return 1.0
        span = self.curriculum_end - self.curriculum_start
        return (iteration - self.curriculum_start) / span
