"""What the runners drive (:class:`LearnerEnv`, and :class:`Resumable` for ``--resume``), and
the torch view of a numpy vector environment that gives it (:class:`TorchVecEnv`).

The interface the runners drive: N environments, torch tensors in and out. It is implemented
by :class:`TorchVecEnv` around any :class:`anymal_ros.sim.interface.VecEnv` (the MuJoCo env, its
multi-process wrapper, the ROS-topic bridge) and by the Gymnasium adapter
(:class:`anymal_ros.bridges.gymnasium.GymnasiumVecEnv`).

The simulator works in numpy; the learner in torch. This adapter converts observations,
rewards, flags and the ``info`` entries the runner reads (``final_obs``, ``episode_return``,
``episode_length``, ``reward_terms``), and saves what can be saved of the environment for
``--resume``: its terrain-curriculum levels and its random generator. (The physics state is not
saved: a resumed run starts fresh episodes on the restored levels, drawn from the restored
generator.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from anymal_ros.models.checkpoint import generator_state, set_generator_state
from anymal_ros.sim.interface import RandomStream, TerrainCurriculum, VecEnv

#: ``(obs, reward [N], terminated [N] bool, truncated [N] bool, info)``; ``info`` holds
#: ``final_obs`` (obs dict), ``episode_return [N]``, ``episode_length [N]`` int64 and, from a
#: quadruped simulator, ``reward_terms`` (name -> ``[N]``).
TorchStep = tuple[dict[str, Tensor], Tensor, Tensor, Tensor, dict[str, Any]]


@runtime_checkable
class LearnerEnv(Protocol):
    """N environments stepped together, torch in and out (see the module docstring).

    Episodes reset automatically, as in :class:`anymal_ros.sim.interface.VecEnv`."""

    num_envs: int
    num_actions: int
    action_type: str  # "gaussian" (actions [N, A]) or "categorical" (actions [N] int)
    obs_shapes: dict[str, tuple[int, ...]]  # name -> shape of one environment's entry

    def reset(self) -> dict[str, Tensor]: ...

    def step(self, action: Tensor) -> TorchStep: ...

    def close(self) -> None: ...


@runtime_checkable
class Resumable(Protocol):
    """An environment whose state a checkpoint can hold (``--resume``)."""

    def state_dict(self) -> dict[str, Any]:
        """What can be saved: at least ``num_envs``; ``envs`` is None unless every
        environment's full state is in it (then the run continues exactly)."""
        ...

    def load_state_dict(self, state: Mapping[str, Any]) -> dict[str, Tensor]:
        """Restore ``state``; the observation to continue from."""
        ...


class TorchVecEnv:
    """A :class:`LearnerEnv` (and :class:`Resumable`) around a numpy :class:`VecEnv`:
    ``reset() -> obs``, ``step(action [N, A]) -> obs, reward, terminated, truncated, info``
    with torch tensors on ``device``; the wrapped simulator is at ``.env``."""

    action_type = "gaussian"

    def __init__(self, env: VecEnv, device: str | torch.device = "cpu") -> None:
        self.env = env
        self.device = torch.device(device)
        self.num_envs = int(env.num_envs)
        self.num_actions = int(env.action_dim)
        self.obs_shapes = {k: tuple(v) for k, v in env.observation_shapes.items()}
        self.proprio_dim = int(self.obs_shapes["proprio"][0])

    def _t(self, x: Any, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.tensor(np.asarray(x), dtype=dtype, device=self.device)

    def _obs(self, obs: Mapping[str, np.ndarray]) -> dict[str, Tensor]:
        return {k: self._t(v) for k, v in obs.items()}

    def reset(self) -> dict[str, Tensor]:
        return self._obs(self.env.reset())

    def step(self, action: Tensor) -> TorchStep:
        if tuple(action.shape) != (self.num_envs, self.num_actions):
            raise ValueError(
                f"action shape {tuple(action.shape)} != {(self.num_envs, self.num_actions)}"
            )
        obs, reward, terminated, truncated, info = self.env.step(
            action.detach().cpu().numpy().astype(np.float64)
        )
        out = {
            "final_obs": self._obs(info["final_obs"]),
            "episode_return": self._t(info["episode_return"]),
            "episode_length": self._t(info["episode_length"], torch.int64),
            "reward_terms": {k: self._t(v) for k, v in info.get("reward_terms", {}).items()},
        }
        return (
            self._obs(obs),
            self._t(reward),
            self._t(terminated, torch.bool),
            self._t(truncated, torch.bool),
            out,
        )

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"num_envs": self.num_envs, "envs": None}
        if isinstance(self.env, TerrainCurriculum):
            state["levels"] = torch.from_numpy(np.asarray(self.env.terrain_levels()))
        if isinstance(self.env, RandomStream):
            state["rng"] = generator_state(self.env.rng)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> dict[str, Tensor]:
        if state.get("num_envs") != self.num_envs:
            raise ValueError(f"env state is for {state.get('num_envs')} envs, not {self.num_envs}")
        if "rng" in state and isinstance(self.env, RandomStream):
            # Absent when the run continues with simulator workers (each seeds its own).
            set_generator_state(self.env.rng, state["rng"])
        if "levels" in state:
            # Curriculum progress survives: the resets below place robots on these levels.
            self.env.set_terrain_levels(state["levels"].numpy())
        return self.reset()

    def close(self) -> None:
        self.env.close()
