"""Torch view of a numpy vector environment (the MuJoCo ``QuadrupedVecEnv``).

The simulator works in numpy; the learner in torch. This adapter converts observations,
rewards, flags and the ``info`` entries the runner reads (``final_obs``, ``episode_return``,
``episode_length``, ``reward_terms``), and saves what can be saved of the environment for
``--resume``: its terrain-curriculum levels and its random generator. (The physics state is not
saved: a resumed run starts fresh episodes on the restored levels, drawn from the restored
generator.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from anymal_ros.models.checkpoint import generator_state, set_generator_state


class TorchVecEnv:
    """``reset() -> obs``, ``step(action [N, A]) -> obs, reward, terminated, truncated, info``
    with torch tensors on ``device``; the wrapped env is at ``.env``."""

    action_type = "gaussian"

    def __init__(self, env: Any, device: str | torch.device = "cpu") -> None:
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

    def step(self, action: Tensor) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor, dict]:
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
        if hasattr(self.env, "terrain_levels"):
            state["levels"] = torch.from_numpy(np.asarray(self.env.terrain_levels()))
        if isinstance(getattr(self.env, "rng", None), np.random.Generator):
            state["rng"] = generator_state(self.env.rng)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> dict[str, Tensor]:
        if state.get("num_envs") != self.num_envs:
            raise ValueError(f"env state is for {state.get('num_envs')} envs, not {self.num_envs}")
        if "rng" in state and isinstance(getattr(self.env, "rng", None), np.random.Generator):
            # Absent when the run continues with simulator workers (each seeds its own).
            set_generator_state(self.env.rng, state["rng"])
        if "levels" in state:
            # Curriculum progress survives: the resets below place robots on these levels.
            self.env.set_terrain_levels(state["levels"].numpy())
        return self.reset()

    def close(self) -> None:
        if hasattr(self.env, "close"):
            self.env.close()
