"""Action heads and the distributions they produce.

Both distribution classes return one log-probability and one entropy *per sample* (shape
``[B]``) and refuse an action whose batch shape differs from theirs. That refusal is what
stops the reference implementation's defect of a ``[T, 1]`` log-prob meeting a ``[T]``
advantage and silently broadcasting into a ``[T, T]`` matrix.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from anymal_ros.config.models import ActionHeadConfig


class DiagGaussian:
    """Diagonal Gaussian over ``[..., A]`` continuous actions."""

    def __init__(self, mean: Tensor, std: Tensor) -> None:
        self.mean = mean
        self.std = std.expand_as(mean)

    @property
    def batch_shape(self) -> torch.Size:
        return self.mean.shape[:-1]

    @property
    def mode(self) -> Tensor:
        return self.mean

    def sample(self) -> Tensor:
        return self.mean + self.std * torch.randn_like(self.mean)

    def log_prob(self, action: Tensor) -> Tensor:
        if action.shape != self.mean.shape:
            raise ValueError(
                f"action shape {tuple(action.shape)} does not match the distribution's "
                f"{tuple(self.mean.shape)}"
            )
        z = (action - self.mean) / self.std
        per_dim = -0.5 * z.pow(2) - self.std.log() - 0.5 * math.log(2.0 * math.pi)
        return per_dim.sum(-1)

    def entropy(self) -> Tensor:
        return (0.5 + 0.5 * math.log(2.0 * math.pi) + self.std.log()).sum(-1)

    def kl(self, other: DiagGaussian) -> Tensor:
        """KL(self || other), summed over action dims: shape = batch shape."""
        var_ratio = (self.std / other.std).pow(2)
        mean_term = ((self.mean - other.mean) / other.std).pow(2)
        return 0.5 * (var_ratio + mean_term - 1.0 - var_ratio.log()).sum(-1)

    def detach(self) -> DiagGaussian:
        return DiagGaussian(self.mean.detach(), self.std.detach())


class Categorical:
    """One categorical distribution over the last axis of ``logits`` (``[..., K]``)."""

    def __init__(self, logits: Tensor) -> None:
        self.logits = logits - logits.logsumexp(-1, keepdim=True)

    @property
    def batch_shape(self) -> torch.Size:
        return self.logits.shape[:-1]

    @property
    def mode(self) -> Tensor:
        return self.logits.argmax(-1)

    @property
    def probs(self) -> Tensor:
        return self.logits.exp()

    def sample(self) -> Tensor:
        flat = self.logits.reshape(-1, self.logits.shape[-1])
        return torch.multinomial(flat.exp(), 1).reshape(self.batch_shape)

    def log_prob(self, action: Tensor) -> Tensor:
        if action.shape != self.batch_shape:
            raise ValueError(
                f"categorical action shape {tuple(action.shape)} must equal the batch shape "
                f"{tuple(self.batch_shape)} (one integer per sample)"
            )
        return self.logits.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> Tensor:
        return -(self.probs * self.logits).sum(-1)

    def kl(self, other: Categorical) -> Tensor:
        return (self.probs * (self.logits - other.logits)).sum(-1)

    def detach(self) -> Categorical:
        return Categorical(self.logits.detach())


ActionDistribution = DiagGaussian | Categorical


class GaussianHead(nn.Module):
    """Linear mean and a state-independent log-std, clamped into a safe range."""

    def __init__(self, in_dim: int, cfg: ActionHeadConfig) -> None:
        super().__init__()
        self.mean = nn.Linear(in_dim, cfg.num_actions)
        self.log_std = nn.Parameter(torch.full((cfg.num_actions,), math.log(cfg.init_std)))
        self.log_std_range = cfg.log_std_range
        # Small initial means: a fresh policy starts near the default pose.
        nn.init.orthogonal_(self.mean.weight, gain=0.01)
        nn.init.zeros_(self.mean.bias)

    def forward(self, features: Tensor) -> DiagGaussian:
        return DiagGaussian(self.mean(features), self.std())

    def std(self) -> Tensor:
        return self.log_std.clamp(*self.log_std_range).exp()

    def deterministic(self, features: Tensor) -> Tensor:
        """The action used at deployment (the mean); export-friendly."""
        return self.mean(features)


class CategoricalHead(nn.Module):
    """Linear logits over ``num_actions`` choices."""

    def __init__(self, in_dim: int, cfg: ActionHeadConfig) -> None:
        super().__init__()
        self.logits = nn.Linear(in_dim, cfg.num_actions)
        nn.init.orthogonal_(self.logits.weight, gain=0.01)
        nn.init.zeros_(self.logits.bias)

    def forward(self, features: Tensor) -> Categorical:
        return Categorical(self.logits(features))

    def deterministic(self, features: Tensor) -> Tensor:
        """Logits; the caller takes the argmax (kept differentiable for distillation)."""
        return self.logits(features)


def make_action_head(in_dim: int, cfg: ActionHeadConfig) -> GaussianHead | CategoricalHead:
    if cfg.type == "gaussian":
        return GaussianHead(in_dim, cfg)
    if cfg.type == "categorical":
        return CategoricalHead(in_dim, cfg)
    raise ValueError(f"unknown action head type {cfg.type!r}")
