"""Small teacher/student pairs and synthetic rollouts for the distillation tests."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from anymal_ros.config.models import ActionHeadConfig, StudentConfig, TeacherConfig
from anymal_ros.config.noise import HeightNoiseConfig
from anymal_ros.models.student import Student, init_student_from_teacher
from anymal_ros.models.teacher import Teacher
from anymal_ros.obs.height_noise import HeightNoise
from anymal_ros.rl.dagger import teacher_target
from anymal_ros.rl.distill_storage import DistillRollout

SMALL = dict(
    proprio_dim=20,
    height_encoder=(16,),
    height_latent=4,
    privileged_latent=4,
    policy_mlp=(32, 32),
)


def small_pair(
    action: ActionHeadConfig | None = None, proprio_dim: int = 20, seed: int = 0
) -> tuple[Teacher, Student]:
    """A tiny teacher with fitted normalisers and a student initialised from it."""
    torch.manual_seed(seed)
    action = action or ActionHeadConfig(num_actions=6)
    shared = {**SMALL, "proprio_dim": proprio_dim, "action": action}
    teacher = Teacher(TeacherConfig(**shared, privileged_encoder=(16,), value_mlp=(16,)))
    student = Student(
        StudentConfig(
            **shared, gru_hidden=16, belief_encoder=(16,), gate_encoder=(16,), belief_decoder=(16,)
        )
    )
    g = torch.Generator().manual_seed(seed + 1)
    teacher.update_normalizers(
        {
            "proprio": torch.randn(512, proprio_dim, generator=g) * 2.0 + 0.5,
            "extero": torch.randn(512, 4, 52, generator=g) * 0.1 - 0.3,
            "privileged": torch.randn(512, 50, generator=g) * 5.0,
        }
    )
    # Make the teacher's output depend strongly on heights and privileged state, so the
    # student cannot match it without its belief.
    with torch.no_grad():
        for p in teacher.parameters():
            p.mul_(2.0)
        head = teacher.action_head
        layer = head.mean if hasattr(head, "mean") else head.logits
        torch.nn.init.normal_(layer.weight, std=2.0 / layer.weight.shape[1] ** 0.5)
    init_student_from_teacher(student, teacher)
    return teacher, student


def synthetic_rollout(
    teacher: Teacher,
    student: Student,
    num_steps: int = 30,
    num_envs: int = 8,
    seed: int = 0,
    episode_len: tuple[int, int] = (8, 25),
) -> DistillRollout:
    """Smooth random observation sequences with episode boundaries, teacher-labelled.

    Within an episode the privileged state and heights are fixed per episode plus small
    drift, and proprioception carries a fixed random projection of the privileged state, so
    a recurrent student can infer it from its history.
    """
    fixed = np.random.default_rng(1234)
    to_priv = fixed.normal(size=(50, 6)) / 6**0.5  # the privileged state has 6 causes ...
    to_proprio = fixed.normal(size=(student.cfg.proprio_dim, 6))  # ... that proprio shows
    rng = np.random.default_rng(seed)
    cfg = student.cfg
    T, N = num_steps, num_envs
    proprio = np.zeros((T, N, cfg.proprio_dim), np.float32)
    clean = np.zeros((T, N, 4, 52), np.float32)
    priv = np.zeros((T, N, 50), np.float32)
    starts = np.zeros((T, N), bool)
    for n in range(N):
        t = 0
        while t < T:
            length = int(rng.integers(*episode_len))
            starts[t, n] = True
            base_h = rng.normal(-0.3, 0.1, size=(4, 52))
            cause = rng.normal(size=6)
            base_p = 5.0 * to_priv @ cause
            for k in range(t, min(t + length, T)):
                proprio[k, n] = 0.5 + to_proprio @ cause + rng.normal(0.0, 0.5, cfg.proprio_dim)
                clean[k, n] = base_h + rng.normal(0.0, 0.01, size=(4, 52))
                priv[k, n] = base_p + rng.normal(0.0, 0.5, size=50)
            t += length
    starts[0] = True
    noise = HeightNoise(HeightNoiseConfig(), N, seed=seed)
    noisy = np.zeros_like(clean)
    for t in range(T):
        noise.reset(np.flatnonzero(starts[t]))
        noise.sample_xy_offsets()
        noisy[t] = noise.apply_z(clean[t])
    rollout = DistillRollout(
        T, N, cfg.proprio_dim, (4, 52), 50, cfg.action.num_actions,
        (cfg.gru_layers, cfg.gru_hidden),
    )  # fmt: skip
    rollout.clear(student.initial_hidden(N))
    for t in range(T):
        obs = {
            "proprio": torch.from_numpy(proprio[t]),
            "extero": torch.from_numpy(clean[t]),
            "privileged": torch.from_numpy(priv[t]),
        }
        rollout.add(
            obs["proprio"],
            torch.from_numpy(noisy[t]),
            obs["extero"],
            obs["privileged"],
            teacher_target(teacher, obs),
            torch.from_numpy(starts[t]),
        )
    return rollout


def with_action(cfg: ActionHeadConfig, **kw) -> ActionHeadConfig:
    return dataclasses.replace(cfg, **kw)
