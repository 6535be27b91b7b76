"""DAgger data collection: the student acts in a vector environment, the teacher labels.

Per control step, for all ``N`` environments at once::

    noisy = height_noise(clean extero)                 student's view (teacher: clean)
    label = teacher(proprio, clean extero, privileged) Gaussian mean or categorical logits
    out, h = student.step(proprio, noisy, h)            h zeroed where an episode starts
    action = mix(student action, teacher action, beta)  see DAggerConfig
    action = teacher action where the teacher has taken the robot over (tipped; optional)
    obs, reward, terminated, truncated, info = env.step(action)

With ``dagger.governor`` the command in ``proprio`` is first capped where the student's belief
of the step before showed steps (:class:`anymal_ros.obs.governor.SpeedGovernor`, as the
deployed governor caps it); teacher and student both observe the capped command. A simulator
that takes caps (:class:`anymal_ros.sim.interface.CommandCaps`) is told them before each step.

The environment is any object with the quadruped vector-env interface (``num_envs``,
``reset() -> obs``, ``step(action [N, A]) -> obs, reward, terminated, truncated, info`` with
auto-reset); numpy or torch outputs are both accepted.

Height noise in x/y moves *where* heights are sampled. If the environment offers
``heights_at_offsets(xy [N, 4, 52, 2]) -> [N, 4, 52]`` (heights of the current state at the
shifted sample points: :class:`anymal_ros.sim.interface.ShiftedHeights`), it is used;
otherwise only the z part of the noise model (offsets, outliers, missing points) is applied to
the clean heights.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from anymal_ros.config.distill import DAggerConfig
from anymal_ros.config.noise import HeightNoiseConfig
from anymal_ros.config.sim import SpeedGovernorConfig
from anymal_ros.contract import proprio_layout
from anymal_ros.models.student import Student
from anymal_ros.models.teacher import Teacher
from anymal_ros.obs.governor import SpeedGovernor, StanceFeet
from anymal_ros.obs.height_noise import HeightNoiseView
from anymal_ros.rl.device import HostToDevice
from anymal_ros.rl.distill_storage import DistillRollout
from anymal_ros.sim.interface import CommandCaps, ShiftedHeights


def as_numpy(x: Any) -> np.ndarray:
    """numpy view of an environment output (numpy array or torch tensor)."""
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def obs_to_torch(obs: Mapping[str, Any], device: torch.device) -> dict[str, Tensor]:
    return {
        k: torch.as_tensor(as_numpy(v), dtype=torch.float32, device=device) for k, v in obs.items()
    }


@torch.no_grad()
def teacher_target(teacher: Teacher, obs: Mapping[str, Tensor]) -> Tensor:
    """The teacher's label ``[N, A]``: the Gaussian mean, or the logits of a categorical head."""
    return teacher.action_head.deterministic(teacher.features(obs))


def mix_actions(
    student_action: Tensor,
    teacher_action: Tensor,
    beta: float,
    mode: str,
    rng: np.random.Generator,
) -> tuple[Tensor, Tensor]:
    """DAgger mixture of ``[N, ...]`` actions; returns ``(action, teacher_acted [N] bool)``.

    ``switch``: each row takes the teacher's action with probability ``beta``. ``blend``:
    ``beta * teacher + (1 - beta) * student`` (floating-point actions only).
    """
    n = student_action.shape[0]
    if mode == "blend" and student_action.is_floating_point():
        teacher_acted = torch.full((n,), beta >= 0.5, dtype=torch.bool)
        return beta * teacher_action + (1.0 - beta) * student_action, teacher_acted
    if mode not in ("switch", "blend"):
        raise ValueError(f"unknown beta mode {mode!r}")
    pick = torch.as_tensor(rng.random(n) < beta, device=student_action.device)
    shape = (n,) + (1,) * (student_action.dim() - 1)
    return torch.where(pick.view(shape), teacher_action, student_action), pick


class TeacherTakeover:
    """Which robots the teacher drives because they tipped: from the step a robot's base
    tilts more than ``tilt`` rad until ``steps`` steps after it is back within that."""

    GRAVITY = proprio_layout(cpg=False).slices()["gravity"]  # same place with CPG terms

    def __init__(self, num_envs: int, tilt: float, steps: int) -> None:
        self.cos_tilt = float(np.cos(tilt))
        self.steps = steps
        self.left = np.zeros(num_envs, dtype=np.int64)

    def __call__(self, proprio: np.ndarray) -> np.ndarray:
        """``[N]`` bool: robots the teacher drives this step, from raw ``proprio [N, P]``."""
        upright = -proprio[:, self.GRAVITY][:, 2]  # cosine of the base's tilt
        tipped = upright < self.cos_tilt
        driven = tipped | (self.left > 0)
        self.left = np.where(tipped, self.steps, np.maximum(self.left - 1, 0))
        return driven

    def reset(self, env_ids: np.ndarray) -> None:
        self.left[env_ids] = 0


def _stance_feet(env: Any, governor: SpeedGovernorConfig) -> StanceFeet | None:
    """The reader of the stance feet of ``env``'s robots, where ``governor`` asks for one."""
    if governor.stance_threshold is None:
        return None
    layout = proprio_layout(cpg=True)
    if env.proprio_dim != layout.dim:
        raise ValueError("dagger.governor.stance_threshold needs the CPG action mode")
    deploy = env.deploy_config()
    if deploy.leg_chains is None or deploy.default_joint_pos is None:
        raise ValueError("dagger.governor.stance_threshold: the simulator names no leg chains")
    return StanceFeet(deploy.leg_chains, deploy.default_joint_pos, layout)


class DAggerCollector:
    """Keeps the environment, student hidden state and episode bookkeeping between rollouts."""

    COMMAND = proprio_layout(cpg=False).slices()["command"]  # same place with CPG terms

    def __init__(
        self,
        env: Any,
        student: Student,
        teacher: Teacher,
        noise_cfg: HeightNoiseConfig,
        dagger: DAggerConfig,
        seed: int = 0,
        device: torch.device | str = "cpu",
        return_window: int = 100,
    ) -> None:
        self.env = env
        self.student = student
        self.teacher = teacher
        self.cfg = dagger
        self.device = torch.device(device)
        self.num_envs = env.num_envs
        lookup = env.heights_at_offsets if isinstance(env, ShiftedHeights) else None
        self.noise = HeightNoiseView(noise_cfg, self.num_envs, seed, lookup)
        self.rng = np.random.default_rng(seed + 7919)
        self.takeover = (
            TeacherTakeover(self.num_envs, dagger.takeover_tilt, dagger.takeover_steps)
            if dagger.takeover_tilt > 0
            else None
        )
        self.governor = (
            SpeedGovernor(
                dagger.governor, env.control_dt, self.num_envs, _stance_feet(env, dagger.governor)
            )
            if dagger.governor is not None
            else None
        )
        # Told the caps, the simulator tracks and rewards the capped command and judges the
        # terrain curriculum against the capped path. Against the uncapped one a robot slowed
        # on the steps walks less than half of it and is demoted for walking as told.
        self.caps_to_env = self.governor is not None and isinstance(env, CommandCaps)
        # Observations stay on the host until the step that uses them: the height noise is
        # drawn there, and observations and noisy heights then travel to a GPU in one copy.
        self.host_obs: Mapping[str, Any] = env.reset()
        self._to_device = HostToDevice(self.device) if self.device.type != "cpu" else None
        self.hidden = student.initial_hidden(self.num_envs)
        self.episode_start = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        self.recent_returns: deque[float] = deque(maxlen=return_window)
        self.recent_lengths: deque[float] = deque(maxlen=return_window)
        self.episodes = 0
        self.env_steps = 0

    @torch.no_grad()
    def collect(self, rollout: DistillRollout, beta: float) -> dict[str, float]:
        """Fill ``rollout`` with ``rollout.T`` steps of every environment."""
        student, teacher = self.student, self.teacher
        student.eval()
        keep = (~self.episode_start).to(self.hidden.dtype)[None, :, None]
        rollout.clear(self.hidden * keep)
        teacher_steps = 0.0
        track_err, track_n = 0.0, 0
        if self.governor is not None:
            steps0, capped0 = self.governor.steps, self.governor.capped_steps
        categorical = student.cfg.action.type == "categorical"
        for _ in range(rollout.T):
            # The caps on this step's command (read before the governor observes this step).
            caps = None if self.governor is None else self.governor.caps()
            obs, noisy = self._observe(self._governed(self.host_obs))
            clean = obs["extero"]
            label = teacher_target(teacher, obs)
            hidden = self.hidden * (~self.episode_start).to(self.hidden.dtype)[None, :, None]
            out, self.hidden = student.step(obs["proprio"], noisy, hidden)
            if self.governor is not None:  # what it believes now caps the next step's command
                believed = student.extero_norm.denormalize(out.recon_heights)
                self.governor.observe(as_numpy(believed), proprio=self.host_obs["proprio"])
            rollout.add(obs["proprio"], noisy, clean, obs["privileged"], label, self.episode_start)

            if self.cfg.student_action == "sample":
                s_act = out.distribution.sample()
            else:
                s_act = out.deterministic.argmax(-1) if categorical else out.deterministic
            t_act = label.argmax(-1) if categorical else label
            action, teacher_acted = mix_actions(s_act, t_act, beta, self.cfg.beta_mode, self.rng)
            if self.takeover is not None:
                tipped = self.takeover(as_numpy(self.host_obs["proprio"]))
                driven = torch.as_tensor(tipped, device=action.device)
                action = torch.where(driven.view(-1, *(1,) * (action.dim() - 1)), t_act, action)
                teacher_acted = teacher_acted.to(action.device) | driven
            teacher_steps += float(teacher_acted.float().mean())

            if self.caps_to_env:  # the simulator judges the robot against its capped command
                self.env.set_command_caps(caps)
            next_obs, _, terminated, truncated, info = self.env.step(as_numpy(action))
            done = as_numpy(terminated).astype(bool) | as_numpy(truncated).astype(bool)
            if "command" in info and "base_lin_vel" in info:
                v_err = as_numpy(info["command"])[:, :2] - as_numpy(info["base_lin_vel"])[:, :2]
                track_err += float(np.linalg.norm(v_err, axis=-1).mean())  # m/s
                track_n += 1
            done_ids = np.flatnonzero(done)
            if done_ids.size:
                self.noise.reset(done_ids)
                if self.takeover is not None:
                    self.takeover.reset(done_ids)
                if self.governor is not None:
                    self.governor.reset(done_ids)
                if "episode_return" in info:
                    self.recent_returns.extend(as_numpy(info["episode_return"])[done_ids].tolist())
                    self.recent_lengths.extend(
                        as_numpy(info["episode_length"])[done_ids].astype(float).tolist()
                    )
                self.episodes += int(done_ids.size)
            self.episode_start = torch.as_tensor(done, device=self.device)
            self.host_obs = next_obs
        self.env_steps += rollout.T * rollout.N
        stats = {
            "beta": beta,
            "teacher_action_share": teacher_steps / rollout.T,
            "tracking_error": track_err / track_n if track_n else float("nan"),
            "noise_curriculum": self.noise.model.curriculum,
        }
        if self.governor is not None:  # robot-steps the student's belief slowed
            g = self.governor
            stats["governor_capped_share"] = (g.capped_steps - capped0) / max(g.steps - steps0, 1)
        return stats

    def restart(self) -> None:
        """Every robot starts a new episode (where the environment's reset puts it: a resumed
        run sets the terrain levels first)."""
        every = np.arange(self.num_envs)
        self.host_obs = self.env.reset()
        self.episode_start[:] = True
        self.noise.reset(every)
        if self.takeover is not None:
            self.takeover.reset(every)
        if self.governor is not None:
            self.governor.reset(every)

    def _governed(self, host_obs: Mapping[str, Any]) -> Mapping[str, Any]:
        """``host_obs`` with the command capped by the governor (unchanged without one)."""
        if self.governor is None:
            return host_obs
        proprio = np.array(as_numpy(host_obs["proprio"]), dtype=np.float32)  # a copy
        proprio[:, self.COMMAND] = self.governor.limit(proprio[:, self.COMMAND])
        return {**host_obs, "proprio": proprio}

    def _observe(self, host_obs: Mapping[str, Any]) -> tuple[dict[str, Tensor], Tensor]:
        """The learner's view of host observations: ``(obs, noisy extero)`` on the device."""
        noisy = self.noise(as_numpy(host_obs["extero"]))
        if self._to_device is None:
            return obs_to_torch(host_obs, self.device), torch.as_tensor(noisy, device=self.device)
        moved = self._to_device({**{f"obs/{k}": v for k, v in host_obs.items()}, "noisy": noisy})
        return {k: moved[f"obs/{k}"] for k in host_obs}, moved["noisy"]

    def set_noise_curriculum(self, factor: float) -> None:
        self.noise.model.set_curriculum(factor)

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.recent_returns)) if self.recent_returns else float("nan")

    @property
    def mean_length(self) -> float:
        return float(np.mean(self.recent_lengths)) if self.recent_lengths else float("nan")
