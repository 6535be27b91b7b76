"""Proximal policy optimisation (Schulman et al. 2017) for any policy with the actor-critic
interface (``distribution``, ``value``, ``update_normalizers``: the teacher of
:mod:`anymal_ros.models.teacher` and the MLP policy of :mod:`anymal_ros.models.mlp_policy`).

The loss functions take per-sample tensors ``[B]`` and refuse anything else, so a ``[B, 1]``
value or log-prob can never broadcast against a ``[B]`` advantage into a ``[B, B]`` matrix.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from anymal_ros.config.rl import PPOConfig
from anymal_ros.obs.mirror import ObsActionMirror
from anymal_ros.rl.distributed import SINGLE, Distributed
from anymal_ros.rl.storage import Batch, RolloutStorage


def check_per_sample(**tensors: Tensor) -> int:
    """Every tensor must be 1-D ``[B]`` with the same ``B``; returns ``B``."""
    sizes = {}
    for name, x in tensors.items():
        if x.dim() != 1:
            raise ValueError(f"{name} must be a per-sample vector [B], got shape {tuple(x.shape)}")
        sizes[name] = x.shape[0]
    if len(set(sizes.values())) > 1:
        raise ValueError(f"per-sample tensors disagree on the batch size: {sizes}")
    return next(iter(sizes.values()))


def clipped_surrogate_loss(
    log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor, clip: float
) -> tuple[Tensor, Tensor]:
    """PPO's clipped policy loss (to minimise) and the fraction of clipped ratios; all ``[B]``."""
    check_per_sample(log_probs=log_probs, old_log_probs=old_log_probs, advantages=advantages)
    ratio = (log_probs - old_log_probs).exp()
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip, 1.0 + clip) * advantages
    loss = -torch.minimum(unclipped, clipped).mean()
    clip_fraction = ((ratio - 1.0).abs() > clip).float().mean()
    return loss, clip_fraction.detach()


def value_loss(values: Tensor, old_values: Tensor, returns: Tensor, clip: float | None) -> Tensor:
    """``0.5 * (V - R)^2``, with PPO's pessimistic clipping around the rollout's values."""
    check_per_sample(values=values, old_values=old_values, returns=returns)
    loss = (values - returns).pow(2)
    if clip is not None:
        clipped = old_values + (values - old_values).clamp(-clip, clip)
        loss = torch.maximum(loss, (clipped - returns).pow(2))
    return 0.5 * loss.mean()


def approx_kl(log_probs: Tensor, old_log_probs: Tensor) -> Tensor:
    """Unbiased, non-negative estimate of KL(old || new) from log-probs ``[B]`` (the k3
    estimator): works for any action distribution without storing its parameters."""
    check_per_sample(log_probs=log_probs, old_log_probs=old_log_probs)
    log_ratio = log_probs - old_log_probs
    return (log_ratio.exp() - 1.0 - log_ratio).mean()


def symmetry_loss(
    policy: nn.Module, obs: dict[str, Tensor], mean: Tensor, mirror: ObsActionMirror
) -> Tensor:
    """Mean squared gap between the policy's mean action in the mirrored states and the mirror
    image of its mean action ``mean [B, A]`` in the states themselves (held fixed: the loss
    pulls the mirrored branch towards the policy as it is, not both towards each other)."""
    mirrored = policy.distribution(mirror.observations(obs)).mode
    return (mirrored - mirror.action(mean.detach())).pow(2).mean()


def normalize_advantages(storage: RolloutStorage, dist: Distributed = SINGLE) -> None:
    """Zero mean, unit std over the whole rollout (not per minibatch), of every rank."""
    adv = storage.advantages
    mean, std = dist.mean_std(adv)
    storage.advantages = (adv - mean) / (std + 1e-8)


class LearningRateController:
    """KL-adaptive (x1.5 / /1.5 around ``desired_kl``), constant or linearly annealed lr."""

    def __init__(self, cfg: PPOConfig, total_iterations: int | None) -> None:
        self.cfg = cfg
        self.total_iterations = total_iterations
        self.lr = cfg.learning_rate

    def start_iteration(self, iteration: int) -> float:
        if self.cfg.lr_schedule == "linear" and self.total_iterations:
            frac = max(0.0, 1.0 - iteration / self.total_iterations)
            self.lr = self.cfg.learning_rate * frac
        return self.lr

    def observe_kl(self, kl: float) -> float:
        if self.cfg.lr_schedule == "adaptive":
            lo, hi = self.cfg.lr_range
            if kl > 2.0 * self.cfg.desired_kl:
                self.lr = max(lo, self.lr / 1.5)
            elif kl < 0.5 * self.cfg.desired_kl:
                self.lr = min(hi, self.lr * 1.5)
        return self.lr

    def apply(self, optimizers: Iterable[torch.optim.Optimizer]) -> None:
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = self.lr

    def state_dict(self) -> dict[str, Any]:
        return {"lr": self.lr}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The saved rate, within what the config allows now: a resume that changes the
        schedule's settings (a constant rate, the adaptive range) gets them, not the old rate."""
        saved = float(state["lr"])
        if self.cfg.lr_schedule == "constant":
            self.lr = self.cfg.learning_rate
        elif self.cfg.lr_schedule == "adaptive":
            lo, hi = self.cfg.lr_range
            self.lr = min(hi, max(lo, saved))
        else:  # linear: start_iteration recomputes it from the iteration
            self.lr = saved


def _clip_and_step(
    opt: torch.optim.Optimizer, params: list[nn.Parameter], max_norm: float
) -> Tensor:
    # Clipped after the all-reduce: every rank sees the same averaged gradient and norm.
    grad_norm = nn.utils.clip_grad_norm_(params, max_norm)
    opt.step()
    return grad_norm


class PPO:
    """One optimiser over all the policy's parameters; ``update`` runs the epochs. With
    ``dist`` (data-parallel ranks) each step averages the gradients and the KL over ranks."""

    def __init__(
        self,
        policy: nn.Module,
        cfg: PPOConfig,
        total_iterations: int | None = None,
        dist: Distributed = SINGLE,
        mirror: ObsActionMirror | None = None,
    ) -> None:
        if cfg.symmetry_coef > 0 and mirror is None:
            raise ValueError("ppo.symmetry_coef > 0 needs the observations' mirror")
        self.policy = policy
        self.cfg = cfg
        self.dist = dist
        self.mirror = mirror
        self.params = list(policy.parameters())
        self.optimizer = torch.optim.Adam(self.params, lr=cfg.learning_rate)
        self.lr = LearningRateController(cfg, total_iterations)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"ppo": self.optimizer}

    def loss(self, mb: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        cfg = self.cfg
        dist = self.policy.distribution(mb.obs)
        log_probs = dist.log_prob(mb.actions)
        entropy = dist.entropy()
        values = self.policy.value(mb.obs)
        pi_loss, clip_frac = clipped_surrogate_loss(
            log_probs, mb.log_probs, mb.advantages, cfg.clip
        )
        v_loss = value_loss(values, mb.values, mb.returns, cfg.value_clip)
        check_per_sample(entropy=entropy, advantages=mb.advantages)
        loss = pi_loss + cfg.value_loss_coef * v_loss - cfg.entropy_coef * entropy.mean()
        stats = {
            "policy_loss": pi_loss.detach(),
            "value_loss": v_loss.detach(),
            "entropy": entropy.mean().detach(),
            "approx_kl": approx_kl(log_probs.detach(), mb.log_probs),
            "clip_fraction": clip_frac,
        }
        if cfg.symmetry_coef > 0:
            sym = symmetry_loss(self.policy, mb.obs, dist.mode, self.mirror)
            loss = loss + cfg.symmetry_coef * sym
            stats["symmetry_loss"] = sym.detach()
        return loss, stats

    def update(self, storage: RolloutStorage, iteration: int = 0) -> dict[str, float]:
        """Several epochs of shuffled minibatches over a rollout with returns computed."""
        cfg = self.cfg
        self.lr.start_iteration(iteration)
        self.lr.apply([self.optimizer])
        if cfg.normalize_advantages:
            normalize_advantages(storage, self.dist)
        totals: dict[str, float] = {}
        n = 0
        for _ in range(cfg.num_epochs):
            for mb in storage.minibatches(cfg.num_minibatches):
                loss, stats = self.loss(mb)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                # The learning rate follows the KL of all ranks, so it stays the same on each.
                (kl,) = self.dist.average_gradients(self.params, [float(stats["approx_kl"])])
                stats["approx_kl"] = kl
                self.lr.observe_kl(kl)
                self.lr.apply([self.optimizer])
                stats["grad_norm"] = _clip_and_step(self.optimizer, self.params, cfg.max_grad_norm)
                for k, v in stats.items():
                    totals[k] = totals.get(k, 0.0) + float(v)
                n += 1
        out = {k: v / max(n, 1) for k, v in totals.items()}
        out["learning_rate"] = self.lr.lr
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"lr": self.lr.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lr.load_state_dict(state["lr"])
