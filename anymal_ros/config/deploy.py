"""Deployment settings written into an exported policy's metadata (``deploy`` section).

Trainers store this section in their checkpoints (``QuadrupedVecEnv.deploy_config()`` gives
the one matching the simulator that trained the policy), so the robot decodes actions with
exactly the training-time action mode, scale and CPG parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from anymal_ros.config.noise import MISSING_HEIGHT_FILL
from anymal_ros.config.robot import LegChains
from anymal_ros.config.sim import ActionConfig


@dataclass(frozen=True)
class DeployConfig:
    """How the robot turns the policy's action into joint targets.

    ``actions`` ``None`` means the simulator's default action settings with the mode implied
    by the proprio vector: ``"cpg"`` for the 133 CPG-mode terms, else ``"joint_residual"``.
    Joint limits are optional; when given (one value per joint, in ``contract.JOINT_NAMES``
    order) the ROS policy node clips targets to them.

    The robot travels with the policy: its name, default pose and leg kinematics (derived from
    its MJCF: the node's forward kinematics and the CPG's inverse kinematics need them), and
    ``missing_height_fill``, the height a student was trained to read as "no map here".
    """

    actions: ActionConfig | None = None
    control_period: float = 0.02
    joint_pos_lower: tuple[float, ...] | None = None
    joint_pos_upper: tuple[float, ...] | None = None
    robot: str | None = None
    default_joint_pos: tuple[float, ...] | None = None
    leg_chains: LegChains | None = None
    joint_velocity_limit: float | None = None  # rad/s; None: the named robot's
    missing_height_fill: float = MISSING_HEIGHT_FILL

    def __post_init__(self) -> None:
        if not self.control_period > 0:
            raise ValueError(f"control_period must be > 0 s, got {self.control_period}")
