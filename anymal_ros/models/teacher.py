"""Privileged teacher policy (Miki et al. 2022): sees proprioception, clean height samples
and privileged simulator state.

Actor::

    proprio [B, P] ----------------------------- normalise --------------------------+
    extero  [B, 4, 52] -> normalise -> height encoder (per foot 52->80->60->24) -> 96 -+-> MLP
    privileged [B, 50] -> normalise -> privileged encoder (50->64->32->24)      -> 24 -+   |
                                                                  {256,160,128} features <-+
                                                        action head, aux value (PPG) <-+

The *latent* ``[extero_latent(96), priv_latent(24)]`` is exactly the layout of the student's
belief, so the student can reuse :attr:`Teacher.policy_mlp` and :attr:`Teacher.action_head`
unchanged (see ``student.init_student_from_teacher``). The critic is a separate network with
its own encoders; the three observation normalisers are shared and live inside the model.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import Tensor, nn

from anymal_ros.config.models import TeacherConfig
from anymal_ros.models.encoders import HeightEncoder
from anymal_ros.models.heads import ActionDistribution, make_action_head
from anymal_ros.models.mlp import make_mlp
from anymal_ros.models.normalizer import RunningNormalizer

ObsDict = Mapping[str, Tensor]


def require_obs(obs: ObsDict, key: str, trailing: tuple[int, ...]) -> Tensor:
    """``obs[key]`` after checking it exists and ends in ``trailing``; errors name the key."""
    if key not in obs:
        raise KeyError(f"observation {key!r} missing; got keys {sorted(obs)}")
    x = obs[key]
    if tuple(x.shape[x.dim() - len(trailing) :]) != trailing or x.dim() <= len(trailing):
        raise ValueError(
            f"observation {key!r} must have shape [B, {', '.join(map(str, trailing))}], "
            f"got {tuple(x.shape)}"
        )
    return x


class _Encoders(nn.Module):
    """Height + privileged encoders: normalised inputs -> latent ``[B, F*h + p]``."""

    def __init__(self, cfg: TeacherConfig) -> None:
        super().__init__()
        self.height = HeightEncoder(
            cfg.num_feet, cfg.points_per_foot, cfg.height_encoder, cfg.height_latent, cfg.activation
        )
        self.privileged = make_mlp(
            cfg.privileged_dim, cfg.privileged_encoder, cfg.privileged_latent, cfg.activation
        )
        self.out_dim = self.height.out_dim + cfg.privileged_latent

    def forward(self, extero_n: Tensor, privileged_n: Tensor) -> Tensor:
        return torch.cat([self.height(extero_n), self.privileged(privileged_n)], dim=-1)


class Teacher(nn.Module):
    """Actor-critic teacher; implements the actor-critic interface of BRIEF.md.

    Observation keys: ``proprio [B, P]``, ``extero [B, 4, 52]``, ``privileged [B, 50]``.
    """

    def __init__(self, cfg: TeacherConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or TeacherConfig()
        self.cfg = cfg
        self.extero_shape = (cfg.num_feet, cfg.points_per_foot)
        self.proprio_norm = RunningNormalizer(cfg.proprio_dim)
        self.extero_norm = RunningNormalizer(self.extero_shape)
        self.privileged_norm = RunningNormalizer(cfg.privileged_dim)

        # Actor.
        self.encoders = _Encoders(cfg)
        self.latent_dim = self.encoders.out_dim  # 120
        self.policy_mlp = make_mlp(
            cfg.proprio_dim + self.latent_dim, cfg.policy_mlp, activation=cfg.activation
        )
        features = cfg.policy_mlp[-1] if cfg.policy_mlp else cfg.proprio_dim + self.latent_dim
        self.action_head = make_action_head(features, cfg.action)
        self.aux_value_head = nn.Linear(features, 1)

        # Critic: its own encoders, so value learning does not disturb the actor's features.
        self.critic_encoders = _Encoders(cfg)
        self.value_mlp = make_mlp(
            cfg.proprio_dim + self.latent_dim, cfg.value_mlp, 1, activation=cfg.activation
        )

    # --- pieces the student reuses -------------------------------------------------------
    @property
    def height_encoder(self) -> HeightEncoder:
        """The actor's per-foot height encoder (copied into the student)."""
        return self.encoders.height

    def normalized(self, obs: ObsDict) -> tuple[Tensor, Tensor, Tensor]:
        """Normalised ``(proprio [B, P], extero [B, 4, 52], privileged [B, 50])``."""
        proprio = require_obs(obs, "proprio", (self.cfg.proprio_dim,))
        extero = require_obs(obs, "extero", self.extero_shape)
        privileged = require_obs(obs, "privileged", (self.cfg.privileged_dim,))
        return (
            self.proprio_norm(proprio),
            self.extero_norm(extero),
            self.privileged_norm(privileged),
        )

    def latent(self, obs: ObsDict) -> Tensor:
        """Actor latent ``[B, 120] = [extero_latent(96) | priv_latent(24)]``: the target
        layout of the student's belief."""
        _, extero_n, privileged_n = self.normalized(obs)
        return self.encoders(extero_n, privileged_n)

    def policy_from_latent(self, proprio_n: Tensor, latent: Tensor) -> Tensor:
        """Policy features ``[B, 128]`` from normalised proprio ``[B, P]`` and latent
        ``[B, 120]``."""
        return self.policy_mlp(torch.cat([proprio_n, latent], dim=-1))

    def features(self, obs: ObsDict) -> Tensor:
        proprio_n, extero_n, privileged_n = self.normalized(obs)
        return self.policy_from_latent(proprio_n, self.encoders(extero_n, privileged_n))

    # --- actor-critic interface ----------------------------------------------------------
    def distribution(self, obs: ObsDict) -> ActionDistribution:
        """Action distribution with batch shape ``[B]``."""
        return self.action_head(self.features(obs))

    def act_deterministic(self, obs: ObsDict) -> Tensor:
        """Gaussian mean ``[B, A]`` or, for a categorical head, the argmax ``[B]``."""
        out = self.action_head.deterministic(self.features(obs))
        return out.argmax(-1) if self.cfg.action.type == "categorical" else out

    def aux_value(self, obs: ObsDict) -> Tensor:
        """PPG auxiliary value ``[B]`` from the policy network's features."""
        return self.aux_value_head(self.features(obs)).squeeze(-1)

    def value(self, obs: ObsDict) -> Tensor:
        """Critic value ``[B]`` (on normalised observations)."""
        proprio_n, extero_n, privileged_n = self.normalized(obs)
        latent = self.critic_encoders(extero_n, privileged_n)
        return self.value_mlp(torch.cat([proprio_n, latent], dim=-1)).squeeze(-1)

    def update_normalizers(self, obs: ObsDict) -> None:
        """Fold a batch of raw observations into the running statistics."""
        self.proprio_norm.update(require_obs(obs, "proprio", (self.cfg.proprio_dim,)))
        self.extero_norm.update(require_obs(obs, "extero", self.extero_shape))
        self.privileged_norm.update(require_obs(obs, "privileged", (self.cfg.privileged_dim,)))

    def actor_parameters(self) -> Iterator[nn.Parameter]:
        """Encoders, policy MLP, action head and the PPG auxiliary value head."""
        for module in (self.encoders, self.policy_mlp, self.action_head, self.aux_value_head):
            yield from module.parameters()

    def critic_parameters(self) -> Iterator[nn.Parameter]:
        for module in (self.critic_encoders, self.value_mlp):
            yield from module.parameters()
