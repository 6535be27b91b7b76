"""Configuration of student distillation (``anymal-ros distill``), Miki et al. 2022.

The student is trained on its own rollouts (DAgger): it acts in the batched simulator, a
frozen teacher labels every visited state from privileged observations, and the student is
fitted to the labels with truncated back-propagation through time over contiguous time.
``config/distill.yaml`` spells out every default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from anymal_ros.config.deploy import DeployConfig
from anymal_ros.config.models import StudentConfig
from anymal_ros.config.noise import HeightNoiseConfig
from anymal_ros.config.rl import LoopConfig
from anymal_ros.config.sim import SpeedGovernorConfig


@dataclass(frozen=True)
class DAggerConfig:
    """Who acts while the data is collected.

    The executed action mixes the teacher's and the student's with a weight ``beta`` that
    falls linearly from ``beta_start`` to ``beta_end`` over ``beta_decay_iterations``:

    * ``switch``: each environment executes the teacher's action with probability ``beta``
      and the student's otherwise, redrawn every step (the DAgger mixture policy
      ``beta * pi_teacher + (1 - beta) * pi_student``);
    * ``blend``: every environment executes ``beta * a_teacher + (1 - beta) * a_student``
      (Gaussian heads only; a categorical head always switches).

    Early teacher control keeps the (random-GRU) student from falling at once, so the first
    labels come from states worth learning; with ``beta = 0`` the student alone acts, as in
    the paper. Every visited state is labelled by the teacher whoever acted.

    ``takeover_tilt > 0`` hands a robot to the teacher once its base tilts more than that (rad
    from upright), until ``takeover_steps`` control steps after it is back within it, so the
    data holds what the teacher does from the student's own errors, labelled like every other
    step. (Past 0.45-0.6 rad the ANYmal C teacher cannot save a robot its student has tipped:
    ``policies/MODEL_CARD.md``, "The teacher cannot catch a robot the student has tipped".)
    """

    num_steps: int = 50  # rollout length T per environment and iteration
    beta_start: float = 0.5
    beta_end: float = 0.0
    beta_decay_iterations: int = 100
    beta_mode: Literal["switch", "blend"] = "switch"
    # The student's executed action: its mean/argmax (what is deployed) or a sample.
    student_action: Literal["mean", "sample"] = "mean"
    takeover_tilt: float = 0.0  # rad; 0: the teacher never takes a robot over
    takeover_steps: int = 25
    # A speed governor on the student's own belief (anymal_ros.obs.governor), off by default:
    # the command the student and the teacher observe is capped where the heights the student
    # reconstructs show steps, as the deployed governor caps it. Unlike the simulator's
    # commands.governor (true heights), the cap then tells the student nothing it does not
    # already believe. The simulator is told the caps and judges the robots against them.
    governor: SpeedGovernorConfig | None = None

    def __post_init__(self) -> None:
        if self.num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {self.num_steps}")
        if not 0.0 <= self.takeover_tilt < math.pi:
            raise ValueError(f"takeover_tilt must be in [0, pi) rad, got {self.takeover_tilt}")
        if self.takeover_steps < 1:
            raise ValueError(f"takeover_steps must be >= 1, got {self.takeover_steps}")
        for name in ("beta_start", "beta_end"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.beta_decay_iterations < 0:
            raise ValueError(
                f"beta_decay_iterations must be >= 0, got {self.beta_decay_iterations}"
            )

    def beta(self, iteration: int) -> float:
        """Teacher share at ``iteration`` (linear from beta_start to beta_end)."""
        if self.beta_decay_iterations == 0 or iteration >= self.beta_decay_iterations:
            return self.beta_end
        frac = max(iteration, 0) / self.beta_decay_iterations
        return self.beta_start + frac * (self.beta_end - self.beta_start)


@dataclass(frozen=True)
class DistillLossConfig:
    """The student update: behaviour cloning + reconstruction, truncated BPTT.

    ``loss = behaviour + reconstruction_coef * (heights MSE + privileged MSE)``, with the
    reconstruction targets in the student's normalised units. Behaviour: MSE between action
    means for a Gaussian head; for a categorical head ``kl`` = KL(teacher || student) or
    ``logit_mse`` = MSE between (log-softmax-centred) logits.
    """

    tbptt_steps: int = 10  # K: steps back-propagated through before the hidden is detached
    num_epochs: int = 1  # passes over each rollout
    num_minibatches: int = 4  # groups of environments per pass (each row one environment)
    learning_rate: float = 5e-4
    max_grad_norm: float = 1.0
    reconstruction_coef: float = 0.5
    categorical_loss: Literal["kl", "logit_mse"] = "kl"

    def __post_init__(self) -> None:
        for name in ("tbptt_steps", "num_epochs", "num_minibatches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0 or self.max_grad_norm <= 0:
            raise ValueError("learning_rate and max_grad_norm must be > 0")
        if self.reconstruction_coef < 0:
            raise ValueError(f"reconstruction_coef must be >= 0, got {self.reconstruction_coef}")


@dataclass(frozen=True)
class OfflineConfig:
    """Distillation from recorded teacher episodes (``--from-store``): each update samples
    ``episodes_per_batch`` whole episodes, pads them to a common length (padding is masked
    out of the loss) and runs truncated BPTT over them from their first step."""

    episodes_per_batch: int = 16
    updates_per_iteration: int = 4

    def __post_init__(self) -> None:
        if self.episodes_per_batch < 1 or self.updates_per_iteration < 1:
            raise ValueError("episodes_per_batch and updates_per_iteration must be >= 1")


@dataclass(frozen=True)
class DistillEnvConfig:
    """Simulator for DAgger rollouts. ``sim`` (a SimConfig mapping) is merged over the
    teacher checkpoint's own ``env.sim`` section, so by default the student trains in the
    environment the teacher was trained in."""

    num_envs: int = 256
    sim: dict[str, Any] = field(default_factory=dict)
    num_workers: int = 1  # simulator processes (as the teacher trainer's env.num_workers)

    def __post_init__(self) -> None:
        if self.num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {self.num_envs}")
        if self.num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {self.num_workers}")


@dataclass(frozen=True)
class DistillRunnerConfig(LoopConfig):
    """The student trainer's ``runner`` section: the settings shared with the teacher's."""


@dataclass(frozen=True)
class DistillConfig:
    """Everything ``anymal-ros distill`` reads. ``student`` sets the student's recurrent
    parts; the sizes it shares with the teacher are the teacher's, and setting one of them to
    something else is an error (``rl/distill_runner.py: student_config_for``)."""

    dagger: DAggerConfig = field(default_factory=DAggerConfig)
    loss: DistillLossConfig = field(default_factory=DistillLossConfig)
    noise: HeightNoiseConfig = field(default_factory=HeightNoiseConfig)
    offline: OfflineConfig = field(default_factory=OfflineConfig)
    env: DistillEnvConfig = field(default_factory=DistillEnvConfig)
    student: StudentConfig | None = None  # None: the paper's recurrent parts
    # None: the teacher checkpoint's ``deploy`` section, else the simulator's deploy_config().
    deploy: DeployConfig | None = None
    runner: DistillRunnerConfig = field(default_factory=DistillRunnerConfig)
