"""Gymnasium environments behind the package's vector-env interface.

``GymnasiumVecEnv(env_id, num_envs, seed)`` offers what the MuJoCo ``QuadrupedVecEnv`` offers:
``reset() -> obs``, ``step(action) -> obs, reward [N], terminated [N], truncated [N], info``
with observations as a dict of float32 tensors (single key ``obs [N, D]``), automatic reset,
``info["final_obs"]`` (the last observation of every episode that just ended, for
bootstrapping through time-outs) and ``info["episode_return"] / ["episode_length"]`` (valid
where ``terminated | truncated``).

It wraps ``gymnasium.vector.SyncVectorEnv`` in ``SAME_STEP`` autoreset mode: an ended
environment is reset inside the same ``step`` call, the returned observation is already the
new episode's first one and the ended episode's last observation is in ``info["final_obs"]``.
(The gymnasium 1.x default, ``NEXT_STEP``, would instead return the final observation and spend
the following ``step`` call on the reset, ignoring its action; storing that no-op step as
experience is a classic bug, so other modes are refused.)

Saving and resuming: :meth:`state_dict` holds the seed generator, the current observation and
episode accumulators. Gymnasium cannot export an arbitrary environment's internal state, so
:meth:`load_state_dict` resets all environments with seeds drawn from the saved generator and
training continues from fresh episodes. For the classic-control environments whose whole
state is a few attributes (CartPole, Acrobot, MountainCar, Pendulum) those attributes, the
time-limit counters and the per-environment generators are saved too, and the restore is exact
mid-episode.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from torch import Tensor

from anymal_ros.models.checkpoint import generator_state, set_generator_state

# Environment class -> attributes that make up its complete simulation state.
_SNAPSHOT_ATTRS: dict[str, tuple[str, ...]] = {
    "CartPoleEnv": ("state", "steps_beyond_terminated"),
    "AcrobotEnv": ("state",),
    "MountainCarEnv": ("state",),
    "Continuous_MountainCarEnv": ("state",),
    "PendulumEnv": ("state", "last_u"),
}


class GymnasiumVecEnv:
    """A batch of ``num_envs`` copies of a Gymnasium environment, torch in and out."""

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        seed: int,
        env_kwargs: Mapping[str, Any] | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        kwargs = dict(env_kwargs or {})
        self.env_id = env_id
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.vec = gym.vector.SyncVectorEnv(
            [lambda: gym.make(env_id, **kwargs) for _ in range(num_envs)],
            autoreset_mode=AutoresetMode.SAME_STEP,
        )
        if self.vec.metadata.get("autoreset_mode") != AutoresetMode.SAME_STEP:
            raise RuntimeError("the vector env did not accept autoreset_mode=SAME_STEP")
        obs_space = self.vec.single_observation_space
        if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
            raise ValueError(f"{env_id}: need a flat Box observation space, got {obs_space}")
        self.obs_dim = int(obs_space.shape[0])
        act_space = self.vec.single_action_space
        if isinstance(act_space, gym.spaces.Discrete):
            self.action_type = "categorical"
            self.num_actions = int(act_space.n)
            self.action_shape: tuple[int, ...] = ()
        elif isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1:
            self.action_type = "gaussian"
            self.num_actions = int(act_space.shape[0])
            self.action_shape = (self.num_actions,)
            self._low, self._high = act_space.low, act_space.high
        else:
            raise ValueError(f"{env_id}: need a Discrete or 1-D Box action space, got {act_space}")
        self.obs_shapes: dict[str, tuple[int, ...]] = {"obs": (self.obs_dim,)}
        self.rng = np.random.default_rng(seed)
        self._obs: Tensor | None = None
        self._ep_return = np.zeros(num_envs, dtype=np.float64)
        self._ep_length = np.zeros(num_envs, dtype=np.int64)

    def _tensor(self, x: np.ndarray, dtype: torch.dtype = torch.float32) -> Tensor:
        # Always a copy: numpy buffers (accumulators, the vector env's outputs) are reused.
        return torch.tensor(np.asarray(x), dtype=dtype, device=self.device)

    def reset(self) -> dict[str, Tensor]:
        """Reset every environment with a fresh seed from this adapter's generator."""
        seeds = [int(s) for s in self.rng.integers(0, 2**31 - 1, size=self.num_envs)]
        obs, _ = self.vec.reset(seed=seeds)
        self._ep_return[:] = 0.0
        self._ep_length[:] = 0
        self._obs = self._tensor(obs)
        return {"obs": self._obs}

    def step(
        self, action: Tensor
    ) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor, dict[str, Any]]:
        """``action``: ``[N]`` integers (Discrete) or ``[N, A]`` (Box, clipped to the bounds)."""
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        if tuple(action.shape) != (self.num_envs, *self.action_shape):
            raise ValueError(
                f"action shape {tuple(action.shape)} != {(self.num_envs, *self.action_shape)}"
            )
        a = action.detach().cpu().numpy()
        if self.action_type == "categorical":
            a = a.astype(np.int64)
        else:
            a = np.clip(a, self._low, self._high).astype(self.vec.single_action_space.dtype)
        obs, reward, terminated, truncated, info = self.vec.step(a)
        self._ep_return += reward
        self._ep_length += 1
        done = np.logical_or(terminated, truncated)
        final_obs = np.array(obs, dtype=np.float32, copy=True)
        if done.any():
            for i in np.flatnonzero(done):
                final_obs[i] = info["final_obs"][i]
        out_info: dict[str, Any] = {
            "final_obs": {"obs": self._tensor(final_obs)},
            "episode_return": self._tensor(self._ep_return),
            "episode_length": self._tensor(self._ep_length, torch.int64),
        }
        self._ep_return[done] = 0.0
        self._ep_length[done] = 0
        self._obs = self._tensor(obs)
        return (
            {"obs": self._obs},
            self._tensor(reward),
            self._tensor(terminated, torch.bool),
            self._tensor(truncated, torch.bool),
            out_info,
        )

    # -- saving and resuming ---------------------------------------------------------------

    @property
    def exact_resume(self) -> bool:
        """True when every environment's full state can be saved (classic control)."""
        return all(type(e.unwrapped).__name__ in _SNAPSHOT_ATTRS for e in self.vec.envs)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "env_id": self.env_id,
            "num_envs": self.num_envs,
            "rng": generator_state(self.rng),
            "envs": None,
        }
        if self.exact_resume and self._obs is not None:
            state["obs"] = self._obs.cpu().clone()
            state["episode_return"] = torch.from_numpy(self._ep_return.copy())
            state["episode_length"] = torch.from_numpy(self._ep_length.copy())
            state["envs"] = [_snapshot(e) for e in self.vec.envs]
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> dict[str, Tensor]:
        """Restore a saved state and return the observation to continue from.

        Always resets every environment with seeds from the restored generator; then, when the
        state holds snapshots, puts each environment back exactly where it was.
        """
        if state.get("env_id") != self.env_id or state.get("num_envs") != self.num_envs:
            raise ValueError(
                f"env state is for {state.get('num_envs')} x {state.get('env_id')!r}, "
                f"this adapter runs {self.num_envs} x {self.env_id!r}"
            )
        set_generator_state(self.rng, state["rng"])
        obs = self.reset()
        if state.get("envs") is not None:
            for env, snap in zip(self.vec.envs, state["envs"], strict=True):
                _restore(env, snap)
            self._obs = state["obs"].to(self.device, torch.float32)
            self._ep_return[:] = state["episode_return"].numpy()
            self._ep_length[:] = state["episode_length"].numpy()
            obs = {"obs": self._obs}
        return obs

    def close(self) -> None:
        self.vec.close()


def _wrappers(env: gym.Env) -> list[gym.Env]:
    chain = [env]
    while isinstance(chain[-1], gym.Wrapper):
        chain.append(chain[-1].env)
    return chain


def _to_plain(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.array(x, copy=True))
    if isinstance(x, np.generic):
        return x.item()
    return x


def _snapshot(env: gym.Env) -> dict[str, Any]:
    base = env.unwrapped
    attrs = {a: _to_plain(getattr(base, a)) for a in _SNAPSHOT_ATTRS[type(base).__name__]}
    limits = [w._elapsed_steps for w in _wrappers(env) if isinstance(w, gym.wrappers.TimeLimit)]
    return {"attrs": attrs, "np_random": generator_state(base.np_random), "elapsed": limits}


def _restore(env: gym.Env, snap: Mapping[str, Any]) -> None:
    base = env.unwrapped
    for name, value in snap["attrs"].items():
        setattr(base, name, value.numpy().copy() if isinstance(value, Tensor) else value)
    set_generator_state(base.np_random, snap["np_random"])
    limits = [w for w in _wrappers(env) if isinstance(w, gym.wrappers.TimeLimit)]
    for w, elapsed in zip(limits, snap["elapsed"], strict=True):
        w._elapsed_steps = elapsed
