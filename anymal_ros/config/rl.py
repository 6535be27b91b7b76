"""Configuration of reinforcement-learning runs: algorithm, environment, model and runner.

A YAML file for ``anymal-ros train`` has the sections of :class:`TrainConfig`; defaults are the
paper's teacher settings (Miki et al. 2022: gamma 0.996, lambda 0.95, clip 0.2, entropy 0.005,
learning rate 5e-4) and the PPG paper's phase lengths (Cobbe et al. 2020).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from anymal_ros.config.models import TeacherConfig
from anymal_ros.config.ros_env import RosEnvConfig
from anymal_ros.config.sim import SimConfig


@dataclass(frozen=True)
class PPOConfig:
    """Proximal policy optimisation (also the policy phase of PPG)."""

    num_steps: int = 24  # rollout length per environment and iteration
    num_epochs: int = 5
    num_minibatches: int = 4
    gamma: float = 0.996
    lam: float = 0.95
    clip: float = 0.2
    value_clip: float | None = 0.2  # None: plain squared error
    value_loss_coef: float = 1.0
    entropy_coef: float = 0.005
    learning_rate: float = 5e-4
    # adaptive: scale lr by 1.5 to keep the measured KL within [kl/2, 2 kl];
    # constant: keep it; linear: anneal to zero over runner.iterations.
    lr_schedule: Literal["adaptive", "constant", "linear"] = "adaptive"
    desired_kl: float = 0.01
    lr_range: tuple[float, float] = (1e-5, 1e-2)
    max_grad_norm: float = 1.0
    normalize_advantages: bool = True
    # Weight of the left-right symmetry loss: the mean squared gap between the policy's mean
    # action in each state's mirror image and the mirror image of its mean action there
    # (anymal_ros.obs.mirror; quadruped teacher, env.sim.privileged_frame: yaw). 0: off.
    symmetry_coef: float = 0.0

    def __post_init__(self) -> None:
        if self.symmetry_coef < 0:
            raise ValueError(f"symmetry_coef must be >= 0, got {self.symmetry_coef}")
        for name in ("num_steps", "num_epochs", "num_minibatches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.gamma <= 1.0 or not 0.0 <= self.lam <= 1.0:
            raise ValueError(
                f"gamma must be in (0, 1] and lam in [0, 1], got {self.gamma}, {self.lam}"
            )
        if self.clip <= 0 or self.learning_rate <= 0 or self.desired_kl <= 0:
            raise ValueError("clip, learning_rate and desired_kl must be > 0")


@dataclass(frozen=True)
class PPGConfig:
    """Phasic policy gradient: phase lengths and auxiliary-phase settings (paper defaults)."""

    policy_iterations: int = 32  # N_pi: PPO iterations per phase
    policy_epochs: int = 1  # E_pi
    value_epochs: int = 1  # E_V
    aux_epochs: int = 6  # E_aux
    clone_coef: float = 1.0  # beta_clone: weight of KL(pi_old || pi) in the auxiliary loss
    aux_value_coef: float = 1.0
    aux_minibatch_size: int | None = None  # None: the policy phase's minibatch size

    def __post_init__(self) -> None:
        if self.policy_iterations < 1 or self.aux_epochs < 0:
            raise ValueError("policy_iterations must be >= 1 and aux_epochs >= 0")
        if self.policy_epochs < 0 or self.value_epochs < 0:
            raise ValueError("policy_epochs and value_epochs must be >= 0")


@dataclass(frozen=True)
class EnvConfig:
    """``gymnasium``: any registered id with a flat Box observation and a Discrete or Box action
    space; ``quadruped``: the built-in MuJoCo robot (``sim`` is its configuration); ``ros``:
    robots of a simulator speaking the package's topics (``ros`` holds the bridge's settings;
    ``sim`` still gives commands, rewards, terminations and the action mode). Both sections
    are parsed and checked when the config is loaded, whatever the kind."""

    kind: Literal["gymnasium", "quadruped", "ros"] = "gymnasium"
    id: str = "CartPole-v1"
    num_envs: int = 8
    kwargs: dict[str, Any] = field(default_factory=dict)  # passed to gymnasium.make
    sim: SimConfig = field(default_factory=SimConfig)
    ros: RosEnvConfig = field(default_factory=RosEnvConfig)
    # Simulator processes for ``quadruped`` (robots split evenly); 1 keeps it in-process.
    # Collection and the update alternate, so workers = cores also speeds a 2-core machine.
    num_workers: int = 1

    def __post_init__(self) -> None:
        if self.num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {self.num_envs}")
        if self.num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {self.num_workers}")


@dataclass(frozen=True)
class MLPPolicyConfig:
    """Flat-observation actor-critic for Gymnasium environments."""

    actor_hidden: tuple[int, ...] = (64, 64)
    critic_hidden: tuple[int, ...] = (64, 64)
    activation: Literal["leaky_relu", "elu", "relu", "tanh"] = "tanh"
    init_std: float = 1.0
    log_std_range: tuple[float, float] = (-5.0, 1.0)
    obs_clip: float = 10.0


@dataclass(frozen=True)
class ModelConfig:
    type: Literal["mlp", "teacher"] = "mlp"
    mlp: MLPPolicyConfig = field(default_factory=MLPPolicyConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)


@dataclass(frozen=True)
class LoopConfig:
    """The ``runner`` settings every trainer has (teacher and student, see ``rl.loop``)."""

    iterations: int = 1000
    checkpoint_interval: int = 50  # iterations; 0 disables periodic checkpoints
    return_window: int = 100  # episodes in the moving mean of logged returns
    seed: int = 0
    log_dir: str = "runs"
    device: str = "cpu"
    torch_threads: int = 1
    tensorboard: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if self.iterations < 0 or self.checkpoint_interval < 0 or self.return_window < 1:
            raise ValueError("iterations, checkpoint_interval >= 0 and return_window >= 1")


@dataclass(frozen=True)
class RunnerConfig(LoopConfig):
    """The teacher trainer's ``runner`` section: the shared settings and early stops."""

    max_env_steps: int | None = None  # stop earlier once this many env steps were taken
    stop_at_return: float | None = None  # stop once the return_window mean reaches this


@dataclass(frozen=True)
class TrainConfig:
    algorithm: Literal["ppo", "ppg"] = "ppo"
    ppo: PPOConfig = field(default_factory=PPOConfig)
    ppg: PPGConfig = field(default_factory=PPGConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)

    def __post_init__(self) -> None:
        if self.ppo.symmetry_coef > 0:
            where = (self.algorithm, self.env.kind, self.model.type)
            if where != ("ppo", "quadruped", "teacher"):
                raise ValueError(
                    "ppo.symmetry_coef needs algorithm ppo, env.kind quadruped and model.type "
                    f"teacher (the observations it can mirror), got {where}"
                )
            if self.env.sim.privileged_frame != "yaw":
                raise ValueError(
                    "ppo.symmetry_coef needs env.sim.privileged_frame: yaw (world-frame forces "
                    "cannot be mirrored without the robot's heading)"
                )
