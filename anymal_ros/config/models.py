"""Network configuration: sizes default to the paper's (Miki et al. 2022; docs/architecture.md)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar

from anymal_ros.contract import NUM_JOINTS, NUM_LEGS


@dataclass(frozen=True)
class ActionHeadConfig:
    """How a policy turns features into actions.

    ``gaussian``: diagonal Gaussian with a state-independent log-std kept inside
    ``log_std_range``; ``num_actions`` continuous dimensions (16 for the default CPG action
    mode: 4 leg-frequency offsets + 12 joint residuals; 12 for joint residuals alone).
    ``categorical``: one categorical distribution over ``num_actions`` choices.
    """

    type: Literal["gaussian", "categorical"] = "gaussian"
    num_actions: int = NUM_JOINTS + NUM_LEGS
    init_std: float = 1.0
    log_std_range: tuple[float, float] = (-5.0, 1.0)

    def __post_init__(self) -> None:
        if self.num_actions < 1:
            raise ValueError(f"num_actions must be >= 1, got {self.num_actions}")
        lo, hi = self.log_std_range
        if not lo < hi:
            raise ValueError(f"log_std_range must be (low, high) with low < high, got {lo, hi}")
        if self.init_std <= 0:
            raise ValueError(f"init_std must be > 0, got {self.init_std}")


@dataclass(frozen=True)
class SharedNetConfig:
    """The sizes the teacher and the student share: the student re-uses the teacher's height
    encoder and policy MLP and reconstructs its privileged latent, so distillation starts the
    student from the teacher's sizes (``rl/distill_runner.py: student_config_for``)."""

    proprio_dim: int = 133
    num_feet: int = 4
    points_per_foot: int = 52
    privileged_dim: int = 50
    height_encoder: tuple[int, ...] = (80, 60)
    height_latent: int = 24
    privileged_latent: int = 24  # the student's belief has a privileged part of this size
    policy_mlp: tuple[int, ...] = (256, 160, 128)
    activation: Literal["leaky_relu", "elu", "relu", "tanh"] = "leaky_relu"
    action: ActionHeadConfig = field(default_factory=ActionHeadConfig)


@dataclass(frozen=True)
class TeacherConfig(SharedNetConfig):
    """Privileged teacher: per-foot height encoder, privileged encoder, MLP, value head."""

    privileged_encoder: tuple[int, ...] = (64, 32)
    value_mlp: tuple[int, ...] = (256, 160, 128)


@dataclass(frozen=True)
class StudentConfig(SharedNetConfig):
    """Recurrent belief-state student (the teacher's encoders and MLP are re-used)."""

    gru_layers: int = 2
    gru_hidden: int = 50
    belief_encoder: tuple[int, ...] = (64, 64)
    gate_encoder: tuple[int, ...] = (64, 64)
    belief_decoder: tuple[int, ...] = (64, 64)

    @property
    def extero_latent_dim(self) -> int:
        return self.num_feet * self.height_latent  # 96: size of the attention gate

    @property
    def belief_dim(self) -> int:
        return self.extero_latent_dim + self.privileged_latent  # 120


_NetConfig = TypeVar("_NetConfig", TeacherConfig, StudentConfig)


def sized_for_action_mode(cfg: _NetConfig, mode: str) -> _NetConfig:
    """``cfg`` with ``proprio_dim`` and ``action.num_actions`` of the contract for ``mode``
    (``"cpg"``: 133 inputs, 16 actions; ``"joint_residual"``: 120 inputs, 12 actions)."""
    from anymal_ros.contract import action_dim, proprio_layout

    return replace(
        cfg,
        proprio_dim=proprio_layout(cpg=mode == "cpg").dim,
        action=replace(cfg.action, num_actions=action_dim(mode)),
    )
