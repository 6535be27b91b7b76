"""Batched policies for recording and evaluation: teacher or student checkpoints, ONNX files.

Every policy here has the same small interface over ``N`` environments::

    policy.reset(env_ids)          # new episodes: zero those rows' recurrent state
    out = policy.act(obs)          # [N, A] float32: Gaussian mean, or categorical logits
    policy.head                    # "gaussian" | "categorical"

``obs`` holds numpy arrays ``proprio [N, P]``, ``extero [N, 4, 52]`` (the heights the policy
perceives: noisy when a noise mode is evaluated, for teacher and student alike) and
``privileged [N, 50]`` (read by teachers only).

A student whose checkpoint or file has its belief decoder also offers ``policy.belief()``:
after ``act``, what it believes ``(heights [N, 4, 52] m, privileged [N, 50])`` in raw units
(``has_belief`` says whether it can; :mod:`anymal_ros.eval.belief` scores it).

Checkpoints are read through :mod:`anymal_ros.models.loading` (a ``student`` is preferred
over a ``teacher`` when a checkpoint holds both). A student file that carries a speed governor
is run governed (:class:`GovernedPolicy`), as the policy node runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from anymal_ros.config.sim import SimConfig
from anymal_ros.models import loading
from anymal_ros.models.checkpoint import load_checkpoint
from anymal_ros.models.student import Student
from anymal_ros.models.teacher import Teacher
from anymal_ros.obs.governor import SpeedGovernor


class BatchPolicy(Protocol):
    head: str
    kind: str  # "teacher" | "student"
    num_envs: int

    def reset(self, env_ids: np.ndarray) -> None: ...

    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray: ...


@dataclass(frozen=True)
class EvalPolicy:
    """A policy file under evaluation: its label in tables and figures, its path, its own
    simulator settings (its checkpoint's, or its ONNX file's robot and actions) and a factory
    of its batched policy for ``N`` robots."""

    label: str
    path: str
    sim: SimConfig
    make: Callable[[int], BatchPolicy]


def _t(x: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)


class TeacherPolicy:
    """A torch :class:`Teacher` (memoryless)."""

    kind = "teacher"
    has_belief = False

    def __init__(self, teacher: Teacher, num_envs: int, device: str = "cpu") -> None:
        self.model = teacher.eval()
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.head = teacher.cfg.action.type

    def reset(self, env_ids: np.ndarray) -> None:
        pass

    @torch.no_grad()
    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        o = {k: _t(obs[k], self.device) for k in ("proprio", "extero", "privileged")}
        return self.model.action_head.deterministic(self.model.features(o)).cpu().numpy()


class StudentPolicy:
    """A torch :class:`Student` with one hidden state per environment."""

    kind = "student"
    has_belief = True  # a torch student always has its decoder

    def __init__(self, student: Student, num_envs: int, device: str = "cpu") -> None:
        self.model = student.eval()
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.head = student.cfg.action.type
        self.hidden = student.initial_hidden(num_envs)
        self._extero: torch.Tensor | None = None

    def reset(self, env_ids: np.ndarray) -> None:
        self.hidden[:, torch.as_tensor(np.asarray(env_ids, dtype=np.int64))] = 0.0

    @torch.no_grad()
    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        self._extero = _t(obs["extero"], self.device)
        out, self.hidden = self.model.step_deterministic(
            _t(obs["proprio"], self.device), self._extero, self.hidden
        )
        return out.cpu().numpy()

    @torch.no_grad()
    def belief(self) -> tuple[np.ndarray, np.ndarray]:
        """After :meth:`act`: ``(heights [N, 4, 52], privileged [N, 50])``, raw units."""
        if self._extero is None:
            raise RuntimeError("belief() before act(): nothing has been perceived yet")
        heights, privileged = self.model.decode_in_units(self.hidden[-1], self._extero)
        return heights.cpu().numpy(), privileged.cpu().numpy()


class OnnxBatchPolicy:
    """One :class:`~anymal_ros.deploy.runtime.OnnxPolicy` per environment (the deployed
    runtime, batch 1, exactly as on the robot)."""

    def __init__(self, path: str | Path, num_envs: int) -> None:
        from anymal_ros.deploy.runtime import OnnxPolicy

        self.policies = [OnnxPolicy(path) for _ in range(num_envs)]
        meta = self.policies[0].metadata
        self.kind = meta.kind
        self.head = meta.action_head
        self.num_envs = num_envs
        self.metadata = meta
        self.has_belief = self.policies[0].belief_decoder is not None

    def reset(self, env_ids: np.ndarray) -> None:
        for i in np.asarray(env_ids).reshape(-1):
            self.policies[int(i)].reset()

    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        teacher = self.kind == "teacher"
        return np.stack(
            [
                p.step(
                    obs["proprio"][i],
                    obs["extero"][i],
                    obs["privileged"][i] if teacher else None,
                )
                for i, p in enumerate(self.policies)
            ]
        )

    def belief(self) -> tuple[np.ndarray, np.ndarray]:
        """After :meth:`act`: ``(heights [N, 4, 52], privileged [N, 50])`` from the file's
        belief graph, raw units."""
        if not self.has_belief:
            raise RuntimeError(self.policies[0].belief_unavailable)
        beliefs = [p.belief() for p in self.policies]
        return np.stack([b.heights for b in beliefs]), np.stack([b.privileged for b in beliefs])


class GovernedPolicy:
    """A student with belief whose planar command is capped where its belief shows steps
    (:class:`~anymal_ros.obs.governor.SpeedGovernor`): the operator's command in ``obs`` is
    what the robot is told, the capped one what the policy sees."""

    def __init__(self, policy: OnnxBatchPolicy, governor: SpeedGovernor) -> None:
        if not policy.has_belief:
            raise ValueError("a speed governor reads the student's belief: the file has none")
        self.policy, self.governor = policy, governor
        self.kind, self.head, self.num_envs = policy.kind, policy.head, policy.num_envs
        self.metadata, self.has_belief = policy.metadata, True
        slices = policy.metadata.proprio_layout.slices()
        if "command" not in slices:
            raise ValueError("a speed governor caps the command: the file's proprio has none")
        self._command = slices["command"]
        #: ``[N, 3]`` the command the policy was given at the last step (capped where it was).
        self.command_given = np.zeros((policy.num_envs, 3), dtype=np.float32)
        self._belief: tuple[np.ndarray, np.ndarray] | None = None

    def reset(self, env_ids: np.ndarray) -> None:
        self.policy.reset(env_ids)
        self.governor.reset(env_ids)

    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        proprio = np.array(obs["proprio"], dtype=np.float32)
        proprio[:, self._command] = self.governor.limit(proprio[:, self._command])
        self.command_given = proprio[:, self._command]
        action = self.policy.act({**obs, "proprio": proprio})
        self._belief = self.policy.belief()  # decoded once: the governor's, and belief()'s
        self.governor.observe(self._belief[0], proprio=obs["proprio"])
        return action

    def belief(self) -> tuple[np.ndarray, np.ndarray]:
        """After :meth:`act`: what the student believes, as the wrapped policy's ``belief``."""
        if self._belief is None:
            raise RuntimeError("belief() before act(): nothing has been perceived yet")
        return self._belief


def load_policy(path: str | Path, num_envs: int, device: str = "cpu") -> BatchPolicy:
    """A batched policy from a ``.onnx`` file (governed where the file says so) or a
    checkpoint (student preferred)."""
    path = Path(path)
    if path.suffix == ".onnx":
        policy = OnnxBatchPolicy(path, num_envs)
        governor = policy.metadata.governor(num_envs)
        return policy if governor is None else GovernedPolicy(policy, governor)
    ckpt = load_checkpoint(path)
    if "student" in ckpt.get("models", {}):
        return StudentPolicy(
            loading.student_from_checkpoint(ckpt, path).to(device), num_envs, device
        )
    return TeacherPolicy(loading.teacher_from_checkpoint(ckpt, path).to(device), num_envs, device)


def sim_config_of(path: str | Path) -> dict[str, Any] | None:
    """The simulator settings a checkpoint was trained with, or None (ONNX file, none stored)."""
    path = Path(path)
    return None if path.suffix == ".onnx" else loading.sim_config_of(load_checkpoint(path))


def action_from_output(out: np.ndarray, head: str) -> np.ndarray:
    """The executed action: the mean itself, or the argmax of categorical logits."""
    return out.argmax(-1) if head == "categorical" else out


def explore(out: np.ndarray, head: str, epsilon: float, rng: np.random.Generator) -> np.ndarray:
    """Exploration around a policy's output ``[N, A]`` (mean or logits).

    Categorical: epsilon-greedy (a uniformly random choice with probability ``epsilon``,
    else the argmax). Gaussian: the mean plus ``N(0, epsilon^2)`` per action dimension.
    """
    if epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    if head == "categorical":
        greedy = out.argmax(-1)
        random = rng.integers(0, out.shape[-1], size=greedy.shape)
        return np.where(rng.random(greedy.shape) < epsilon, random, greedy)
    return (out + epsilon * rng.standard_normal(out.shape)).astype(np.float32)
