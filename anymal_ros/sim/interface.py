"""The vector-env interface as code: what a quadruped simulator offers the learners, whichever
simulator it is.

Three classes implement :class:`VecEnv`: the MuJoCo env
(:class:`~anymal_ros.sim.env.QuadrupedVecEnv`), its multi-process wrapper
(:class:`~anymal_ros.sim.multiproc.MultiProcessVecEnv`) and the ROS-topic bridge
(:class:`~anymal_ros.bridges.ros_topics.RosTopicVecEnv`). The learners see one of them
through :class:`~anymal_ros.rl.vec_env.TorchVecEnv`, which turns it into the torch interface
they drive (:class:`~anymal_ros.rl.vec_env.LearnerEnv`, also implemented by the Gymnasium
adapter). What only some simulators can do is a protocol of its own, asked for with
``isinstance``: :class:`TerrainCurriculum` (robots on terrain levels),
:class:`ShiftedHeights` (heights at moved sample points, for the height-noise model),
:class:`CommandCaps` (caps set by a governor outside the simulator; every task) and
:class:`RandomStream` (one generator in this process, which a checkpoint saves). The
protocols are ``runtime_checkable``; ``test/test_vec_env_interface.py`` checks every
implementation against them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from anymal_ros.config.deploy import DeployConfig
    from anymal_ros.config.sim import SimConfig

#: Observation of N robots: ``proprio [N, P]``, ``extero [N, 4, 52]``, ``privileged [N, 50]``.
Obs = dict[str, np.ndarray]
#: ``(obs, reward [N] float32, terminated [N] bool, truncated [N] bool, info)``; the ``info``
#: keys are listed at :meth:`anymal_ros.sim.task.LocomotionTask.step`.
StepResult = tuple[Obs, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]


@runtime_checkable
class VecEnv(Protocol):
    """N quadrupeds stepped together, numpy in and out.

    Episodes reset automatically: where ``terminated | truncated``, ``obs`` already belongs to
    the new episode and ``info["final_obs"]`` holds the old episode's last observation.
    """

    cfg: SimConfig
    num_envs: int  # N
    proprio_dim: int  # P: 133 with CPG actions, 120 without
    action_dim: int  # A: 16 with CPG actions, 12 without
    observation_shapes: dict[str, tuple[int, ...]]  # name -> shape of one robot's entry
    control_dt: float  # s of simulated time per step
    max_episode_steps: int

    def reset(self) -> Obs:
        """Start a new episode on every robot; their first observation."""
        ...

    def step(self, action: np.ndarray) -> StepResult:
        """Advance every robot by one control period; ``action [N, A]``."""
        ...

    def set_commands(
        self, command: np.ndarray, env_ids: np.ndarray | None = None, fixed: bool = True
    ) -> None:
        """Velocity commands ``[3]`` or ``[k, 3]``; ``fixed`` keeps them through resampling."""
        ...

    def deploy_config(self) -> DeployConfig:
        """The deployment section matching this simulator (robot, actions, control period)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class TerrainCurriculum(Protocol):
    """Robots on terrain difficulty levels (the MuJoCo env and its workers; not over ROS)."""

    def terrain_levels(self) -> np.ndarray:
        """``[N]`` int: each robot's current level."""
        ...

    def terrain_types(self) -> np.ndarray:
        """``[N]`` str: the terrain type each robot walks on (its column's)."""
        ...

    def set_terrain_levels(
        self, levels: int | np.ndarray, env_ids: np.ndarray | None = None
    ) -> None:
        """Levels of ``env_ids`` (all if None), applied at their next reset."""
        ...


@runtime_checkable
class ShiftedHeights(Protocol):
    """Heights of the current state at moved sample points (the height-noise model's x/y
    errors; only a simulator that holds the terrain can answer)."""

    def heights_at_offsets(self, xy: np.ndarray) -> np.ndarray:
        """``xy [N, 4, 52, 2]`` shifts in the base's yaw frame -> heights ``[N, 4, 52]``."""
        ...


@runtime_checkable
class CommandCaps(Protocol):
    """A governor outside the simulator caps the command its robots observe (DAgger's belief
    governor): told the caps, the simulator tracks, rewards and judges the curriculum against
    the capped command, as it does under its own ``commands.governor``."""

    def set_command_caps(self, caps: np.ndarray | None) -> None:
        """``[N]`` m/s: the planar speed each robot's command is capped to for the next step
        and until set again (inf: none); None clears them."""
        ...


@runtime_checkable
class RandomStream(Protocol):
    """A simulator whose random draws (resets, commands, pushes) all come from one generator
    in this process, so that a checkpoint can save it (simulator workers each hold their own)."""

    rng: np.random.Generator
