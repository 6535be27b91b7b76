"""Flat-observation actor-critic for Gymnasium environments (observation key ``obs``).

Separate actor and critic MLPs (so PPG can train them with separate optimisers), an auxiliary
value head on the actor's features for PPG's distillation phase, a running observation
normaliser applied inside every forward pass, and an action head from ``heads.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from anymal_ros.config.models import ActionHeadConfig
from anymal_ros.models.heads import ActionDistribution, make_action_head
from anymal_ros.models.mlp import make_mlp, mlp_out_dim
from anymal_ros.models.normalizer import RunningNormalizer


class MLPActorCritic(nn.Module):
    """``obs [B, D]`` -> action distribution (batch ``[B]``), value ``[B]``, aux value ``[B]``."""

    obs_key = "obs"

    def __init__(
        self,
        obs_dim: int,
        action: ActionHeadConfig,
        actor_hidden: Sequence[int] = (64, 64),
        critic_hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        obs_clip: float | None = 10.0,
    ) -> None:
        super().__init__()
        self.obs_dim = obs_dim
        self.normalizer = RunningNormalizer(obs_dim, clip=obs_clip)
        self.actor = make_mlp(obs_dim, actor_hidden, activation=activation)
        actor_features = mlp_out_dim(obs_dim, actor_hidden)
        self.action_head = make_action_head(actor_features, action)
        self.aux_value_head = nn.Linear(actor_features, 1)
        self.critic = make_mlp(obs_dim, critic_hidden, out_dim=1, activation=activation)
        for seq in (self.actor, self.critic):
            for m in seq:
                if isinstance(m, nn.Linear):
                    nn.init.orthogonal_(m.weight, gain=2**0.5)
                    nn.init.zeros_(m.bias)
        nn.init.orthogonal_(self.critic[-1].weight, gain=1.0)
        nn.init.orthogonal_(self.aux_value_head.weight, gain=1.0)
        nn.init.zeros_(self.aux_value_head.bias)

    def _input(self, obs: Mapping[str, Tensor]) -> Tensor:
        if self.obs_key not in obs:
            raise KeyError(
                f"MLPActorCritic needs observation key {self.obs_key!r}, got {sorted(obs)}"
            )
        x = obs[self.obs_key]
        if x.dim() != 2 or x.shape[1] != self.obs_dim:
            raise ValueError(f"obs must be [B, {self.obs_dim}], got {tuple(x.shape)}")
        return self.normalizer(x)

    def distribution(self, obs: Mapping[str, Tensor]) -> ActionDistribution:
        return self.action_head(self.actor(self._input(obs)))

    def distribution_and_aux_value(
        self, obs: Mapping[str, Tensor]
    ) -> tuple[ActionDistribution, Tensor]:
        """One actor pass for PPG's auxiliary phase: ``(dist, aux_value [B])``."""
        features = self.actor(self._input(obs))
        return self.action_head(features), self.aux_value_head(features).squeeze(-1)

    def value(self, obs: Mapping[str, Tensor]) -> Tensor:
        return self.critic(self._input(obs)).squeeze(-1)

    def aux_value(self, obs: Mapping[str, Tensor]) -> Tensor:
        return self.aux_value_head(self.actor(self._input(obs))).squeeze(-1)

    @torch.no_grad()
    def update_normalizers(self, obs: Mapping[str, Tensor]) -> None:
        """Fold observations ``[..., D]`` (e.g. a whole rollout ``[T, N, D]``) into the stats."""
        self.normalizer.update(obs[self.obs_key])

    def actor_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.actor.parameters()
        yield from self.action_head.parameters()
        yield from self.aux_value_head.parameters()

    def critic_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.critic.parameters()

    @torch.no_grad()
    def act_deterministic(self, obs: Mapping[str, Tensor]) -> Tensor:
        """Mean action ``[B, A]`` (Gaussian) or argmax ``[B]`` (categorical)."""
        return self.distribution(obs).mode
