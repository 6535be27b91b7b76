"""Deployment settings written into an exported policy's metadata (``deploy`` section)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class DeployConfig:
    """How the robot turns the policy's action into joint targets.

    ``action_type`` ``None`` means: ``"cpg"`` when the proprio vector has the 133 CPG-mode
    terms, else ``"joint_residual"``. Joint limits are optional; when given (one value per
    joint, in ``obs.layout.JOINT_NAMES`` order) the ROS policy node clips targets to them.
    """

    action_type: Literal["joint_residual", "cpg"] | None = None
    action_scale: float = 0.5
    control_period: float = 0.02
    joint_pos_lower: tuple[float, ...] | None = None
    joint_pos_upper: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not self.action_scale > 0:
            raise ValueError(f"action_scale must be > 0, got {self.action_scale}")
        if not self.control_period > 0:
            raise ValueError(f"control_period must be > 0 s, got {self.control_period}")
