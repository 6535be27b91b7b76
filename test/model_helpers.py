"""Shared test helpers: observations with realistic scales and models with non-trivial
normaliser statistics (so a test notices normalisation that is skipped or misplaced)."""

from __future__ import annotations

import torch
from sim_helpers import tiny_sim

from anymal_ros.config import to_dict
from anymal_ros.config.models import ActionHeadConfig, TeacherConfig
from anymal_ros.models.checkpoint import save_checkpoint
from anymal_ros.models.student import Student
from anymal_ros.models.teacher import Teacher

#: A teacher small enough for a test's training run (hidden sizes of its networks).
SMALL_TEACHER = {"policy_mlp": [32], "value_mlp": [32], "height_encoder": [16]}


def random_obs(batch: int, proprio_dim: int = 133, gen: torch.Generator | None = None):
    g = gen or torch.Generator().manual_seed(0)
    return {
        "proprio": torch.randn(batch, proprio_dim, generator=g) * 2.0 + 0.5,
        "extero": torch.randn(batch, 4, 52, generator=g) * 0.1 - 0.3,
        "privileged": torch.randn(batch, 50, generator=g) * 30.0,
    }


def fit_normalizers(model: Teacher | Student, seed: int = 1) -> None:
    """Give the normalisers non-trivial statistics."""
    obs = random_obs(256, model.cfg.proprio_dim, torch.Generator().manual_seed(seed))
    model.update_normalizers(obs)


def tiny_teacher_checkpoint(path):
    """A small untrained teacher checkpoint for the ANYmal C simulator (joint-residual
    actions, 20 s episodes): a real policy file for the evaluation commands."""
    torch.manual_seed(0)
    cfg = TeacherConfig(
        proprio_dim=120, height_encoder=(16,), height_latent=4, privileged_latent=4,
        policy_mlp=(32,), action=ActionHeadConfig(num_actions=12, init_std=0.3),
        privileged_encoder=(16,), value_mlp=(16,),
    )  # fmt: skip
    sim = tiny_sim(episode_length_s=20.0)  # on anymal_c, the default robot
    return save_checkpoint(
        path, models={"teacher": Teacher(cfg)}, config={"teacher": to_dict(cfg), "sim": sim}
    )
