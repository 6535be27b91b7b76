"""Offscreen rendering of the simulator to PNG, GIF or MP4 for evaluation and the README.

Needs an OpenGL backend without a display: set ``MUJOCO_GL=egl`` (default here) or
``MUJOCO_GL=osmesa`` before MuJoCo is imported. MP4 needs ``imageio-ffmpeg``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402


class FollowCamera:
    """Renders frames of one robot of a QuadrupedVecEnv from a camera that follows it."""

    def __init__(
        self,
        env,
        env_id: int = 0,
        width: int = 640,
        height: int = 480,
        distance: float = 2.5,
        elevation: float = -20.0,
        azimuth: float = 135.0,
    ):
        self.env = env
        self.renderer = mujoco.Renderer(env.model, height=height, width=width)
        self.camera = mujoco.MjvCamera()
        self.camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        self.camera.trackbodyid = int(env.index.base_body[env_id])
        self.camera.distance = distance
        self.camera.elevation = elevation
        self.camera.azimuth = azimuth

    def frame(self) -> np.ndarray:
        """``[H, W, 3]`` uint8 image of the current state."""
        self.renderer.update_scene(self.env.data, camera=self.camera)
        return self.renderer.render().copy()

    def close(self) -> None:
        self.renderer.close()


def record_episode(
    env,
    policy: Callable[[dict[str, np.ndarray]], np.ndarray] | None,
    num_steps: int,
    env_id: int = 0,
    width: int = 640,
    height: int = 480,
    every: int = 1,
) -> list[np.ndarray]:
    """Step ``env`` (a QuadrupedVecEnv) with ``policy(obs) -> [N, A]`` (zeros if None) and
    return the frames of robot ``env_id``, one every ``every`` control steps."""
    cam = FollowCamera(env, env_id, width, height)
    obs = env.reset()
    frames = [cam.frame()]
    try:
        for step in range(num_steps):
            if policy is None:
                action = np.zeros((env.num_envs, env.action_dim), dtype=np.float32)
            else:
                action = policy(obs)
            obs, *_ = env.step(action)
            if (step + 1) % every == 0:
                frames.append(cam.frame())
    finally:
        cam.close()
    return frames


#: Frames side by side in a ``.png`` written by :func:`save_frames`.
STRIP_FRAMES = 6


def frame_strip(frames: list[np.ndarray], count: int = STRIP_FRAMES) -> np.ndarray:
    """``count`` frames evenly spaced over the recording (first and last included), side by
    side: a still picture of a whole motion, e.g. for a README."""
    picks = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
    return np.concatenate([frames[i] for i in picks], axis=1)


def save_frames(frames: list[np.ndarray], path: str | Path, fps: float) -> Path:
    """Write frames to ``path``: ``.mp4`` (H.264), ``.gif`` or ``.png`` (a strip of
    :data:`STRIP_FRAMES` frames spread over the recording, see :func:`frame_strip`)."""
    import imageio.v2 as imageio

    path = Path(path)
    if not frames:
        raise ValueError("no frames to save")
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".png":
        imageio.imwrite(path, frame_strip(frames))
    elif suffix == ".gif":
        imageio.mimsave(path, frames, duration=1.0 / fps, loop=0)
    elif suffix == ".mp4":
        imageio.mimsave(path, frames, fps=fps, codec="libx264", macro_block_size=1)
    else:
        raise ValueError(f"unsupported output {path}: use .mp4, .gif or .png")
    return path
