"""Shared test helpers: observations with realistic scales and models with non-trivial
normaliser statistics (so a test notices normalisation that is skipped or misplaced)."""

from __future__ import annotations

import torch

from anymal_ros.models.student import Student
from anymal_ros.models.teacher import Teacher


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
