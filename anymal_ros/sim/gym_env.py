"""A single quadruped as a Gymnasium environment (a QuadrupedVecEnv with N = 1).

Observations are a Dict of ``proprio [P]``, ``extero [4, 52]`` and ``privileged [50]``
(float32); actions are ``[A]`` floats in ``[-clip, clip]``. When an episode ends, ``step``
returns its last observation (as Gymnasium expects) and the caller calls ``reset``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from anymal_ros.config.sim import SimConfig
from anymal_ros.sim.env import QuadrupedVecEnv


class QuadrupedGymEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(
        self,
        cfg: SimConfig | None = None,
        seed: int = 0,
        render_mode: str | None = None,
        width: int = 640,
        height: int = 480,
    ):
        self.cfg = cfg or SimConfig()
        self.vec = QuadrupedVecEnv(self.cfg, 1, seed=seed)
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": int(round(1.0 / self.vec.control_dt))}
        inf = np.float32(np.inf)
        self.observation_space = gym.spaces.Dict(
            {
                name: gym.spaces.Box(-inf, inf, shape=shape, dtype=np.float32)
                for name, shape in self.vec.observation_shapes.items()
            }
        )
        clip = np.float32(self.cfg.actions.clip)
        self.action_space = gym.spaces.Box(
            -clip, clip, shape=(self.vec.action_dim,), dtype=np.float32
        )
        self._size = (width, height)
        self._renderer = None
        self._needs_reset = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        obs = self.vec.reset(seed=seed)
        self._needs_reset = False
        return {k: v[0] for k, v in obs.items()}, {}

    def step(self, action):
        a = np.asarray(action, dtype=np.float32).reshape(1, -1)
        obs, reward, terminated, truncated, info = self.vec.step(a)
        done = bool(terminated[0] or truncated[0])
        source = info["final_obs"] if done else obs
        out_info = {
            "command": info["command"][0],
            "base_lin_vel": info["base_lin_vel"][0],
            "base_ang_vel": info["base_ang_vel"][0],
            "reward_terms": {k: float(v[0]) for k, v in info["reward_terms"].items()},
        }
        if done:
            out_info["episode_return"] = float(info["episode_return"][0])
            out_info["episode_length"] = int(info["episode_length"][0])
        return (
            {k: v[0] for k, v in source.items()},
            float(reward[0]),
            bool(terminated[0]),
            bool(truncated[0]),
            out_info,
        )

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        from anymal_ros.sim.render import FollowCamera

        if self._renderer is None:
            self._renderer = FollowCamera(self.vec, width=self._size[0], height=self._size[1])
        return self._renderer.frame()

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
