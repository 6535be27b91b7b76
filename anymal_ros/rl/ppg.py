"""Phasic policy gradient (Cobbe et al. 2020): PPO with separate policy and value networks,
interleaved with an auxiliary phase that distils the value function into the policy network.

Policy phase (``policy_iterations`` = N_pi rollouts): the clipped surrogate and entropy train
the actor for E_pi epochs, the value loss trains the critic for E_V epochs, each network with
its own Adam optimiser. Every rollout's observations and value targets are kept. Auxiliary
phase (E_aux epochs over everything kept): the actor's auxiliary value head regresses the
targets while ``clone_coef * KL(pi_old || pi)`` holds the action distribution where it was at
the start of the phase, and the critic trains further on the same targets.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from anymal_ros.config.rl import PPGConfig, PPOConfig
from anymal_ros.models.heads import ActionDistribution, Categorical, DiagGaussian
from anymal_ros.rl.distributed import SINGLE, Distributed
from anymal_ros.rl.ppo import (
    LearningRateController,
    _clip_and_step,
    approx_kl,
    check_per_sample,
    clipped_surrogate_loss,
    normalize_advantages,
    value_loss,
)
from anymal_ros.rl.storage import RolloutStorage


def aux_losses(
    aux_values: Tensor, returns: Tensor, new_dist: ActionDistribution, old_dist: ActionDistribution
) -> tuple[Tensor, Tensor]:
    """``(0.5 * (V_aux - R)^2, KL(pi_old || pi))``, each a mean over per-sample ``[B]`` terms."""
    check_per_sample(aux_values=aux_values, returns=returns)
    kl = old_dist.kl(new_dist)
    check_per_sample(kl=kl, returns=returns)
    return 0.5 * (aux_values - returns).pow(2).mean(), kl.mean()


def _dist_parts(dist: ActionDistribution) -> tuple[Tensor, ...]:
    if isinstance(dist, DiagGaussian):
        return (dist.mean.detach(), dist.std.detach())
    if isinstance(dist, Categorical):
        return (dist.logits.detach(),)
    raise TypeError(f"unsupported action distribution {type(dist).__name__}")


def _dist_from_parts(parts: tuple[Tensor, ...]) -> ActionDistribution:
    return DiagGaussian(*parts) if len(parts) == 2 else Categorical(parts[0])


class PPG:
    """Two optimisers (actor, critic); ``update`` runs a policy-phase iteration and, every
    ``policy_iterations`` calls, the auxiliary phase. With ``dist`` every step averages the
    gradients (and the policy phase's KL) over the ranks; the phase counter advances with the
    iterations, so all ranks enter the auxiliary phase together, each over its own rollouts."""

    def __init__(
        self,
        policy: nn.Module,
        ppo_cfg: PPOConfig,
        cfg: PPGConfig,
        total_iterations: int | None = None,
        dist: Distributed = SINGLE,
    ) -> None:
        self.policy = policy
        self.dist = dist
        self.ppo_cfg = ppo_cfg
        self.cfg = cfg
        self.actor_params = list(policy.actor_parameters())
        self.critic_params = list(policy.critic_parameters())
        if {id(p) for p in self.actor_params} & {id(p) for p in self.critic_params}:
            raise ValueError("PPG needs disjoint actor and critic parameters")
        lr = ppo_cfg.learning_rate
        self.policy_optimizer = torch.optim.Adam(self.actor_params, lr=lr)
        self.value_optimizer = torch.optim.Adam(self.critic_params, lr=lr)
        self.lr = LearningRateController(ppo_cfg, total_iterations)
        self.phase_iteration = 0
        self.aux_obs: list[dict[str, Tensor]] = []
        self.aux_returns: list[Tensor] = []

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"ppg_policy": self.policy_optimizer, "ppg_value": self.value_optimizer}

    def _both(self) -> list[torch.optim.Optimizer]:
        return [self.policy_optimizer, self.value_optimizer]

    def update(self, storage: RolloutStorage, iteration: int = 0) -> dict[str, float]:
        cfg, pcfg = self.ppo_cfg, self.cfg
        self.lr.start_iteration(iteration)
        self.lr.apply(self._both())
        if cfg.normalize_advantages:
            normalize_advantages(storage, self.dist)
        totals: dict[str, float] = {}
        counts: dict[str, int] = {}

        def record(stats: dict[str, Any]) -> None:
            for k, v in stats.items():
                totals[k] = totals.get(k, 0.0) + float(v)
                counts[k] = counts.get(k, 0) + 1

        for epoch in range(max(pcfg.policy_epochs, pcfg.value_epochs)):
            for mb in storage.minibatches(cfg.num_minibatches):
                if epoch < pcfg.policy_epochs:
                    dist = self.policy.distribution(mb.obs)
                    log_probs = dist.log_prob(mb.actions)
                    entropy = dist.entropy()
                    check_per_sample(entropy=entropy, advantages=mb.advantages)
                    pi_loss, clip_frac = clipped_surrogate_loss(
                        log_probs, mb.log_probs, mb.advantages, cfg.clip
                    )
                    kl = float(approx_kl(log_probs.detach(), mb.log_probs))
                    loss = pi_loss - cfg.entropy_coef * entropy.mean()
                    self.policy_optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    (kl,) = self.dist.average_gradients(self.actor_params, [kl])
                    self.lr.observe_kl(kl)
                    self.lr.apply(self._both())
                    gn = _clip_and_step(self.policy_optimizer, self.actor_params, cfg.max_grad_norm)
                    record(
                        {
                            "policy_loss": pi_loss.detach(),
                            "entropy": entropy.mean().detach(),
                            "approx_kl": kl,
                            "clip_fraction": clip_frac,
                            "grad_norm": gn,
                        }
                    )
                if epoch < pcfg.value_epochs:
                    values = self.policy.value(mb.obs)
                    v_loss = value_loss(values, mb.values, mb.returns, cfg.value_clip)
                    self.value_optimizer.zero_grad(set_to_none=True)
                    v_loss.backward()
                    self.dist.average_gradients(self.critic_params)
                    _clip_and_step(self.value_optimizer, self.critic_params, cfg.max_grad_norm)
                    record({"value_loss": v_loss.detach()})

        flat = storage.flat()
        self.aux_obs.append({k: v.detach().clone() for k, v in flat.obs.items()})
        self.aux_returns.append(flat.returns.detach().clone())
        self.phase_iteration += 1
        out = {k: totals[k] / counts[k] for k in totals}
        if self.phase_iteration >= pcfg.policy_iterations:
            out.update(
                self.auxiliary_phase(minibatch_size=flat.returns.shape[0] // cfg.num_minibatches)
            )
        out["learning_rate"] = self.lr.lr
        return out

    def auxiliary_phase(self, minibatch_size: int) -> dict[str, float]:
        """E_aux epochs over every observation kept since the last auxiliary phase."""
        cfg, pcfg = self.ppo_cfg, self.cfg
        obs = {k: torch.cat([o[k] for o in self.aux_obs]) for k in self.aux_obs[0]}
        returns = torch.cat(self.aux_returns)
        self.aux_obs, self.aux_returns, self.phase_iteration = [], [], 0
        B = returns.shape[0]
        mb_size = max(1, min(B, pcfg.aux_minibatch_size or minibatch_size))
        # pi_old: the policy as it stands when the phase starts, evaluated once for all samples.
        with torch.no_grad():
            chunks = [
                _dist_parts(
                    self.policy.distribution({k: v[i : i + mb_size] for k, v in obs.items()})
                )
                for i in range(0, B, mb_size)
            ]
            old_parts = tuple(torch.cat(p) for p in zip(*chunks, strict=True))
        totals = {"aux_value_loss": 0.0, "aux_clone_kl": 0.0, "aux_critic_loss": 0.0}
        n = 0
        for _ in range(pcfg.aux_epochs):
            perm = torch.randperm(B)
            for idx in perm.split(mb_size):
                mb_obs = {k: v[idx] for k, v in obs.items()}
                old = _dist_from_parts(tuple(p[idx] for p in old_parts))
                if hasattr(self.policy, "distribution_and_aux_value"):
                    dist, aux_v = self.policy.distribution_and_aux_value(mb_obs)
                else:
                    dist, aux_v = self.policy.distribution(mb_obs), self.policy.aux_value(mb_obs)
                aux_loss, kl = aux_losses(aux_v, returns[idx], dist, old)
                joint = pcfg.aux_value_coef * aux_loss + pcfg.clone_coef * kl
                self.policy_optimizer.zero_grad(set_to_none=True)
                joint.backward()
                self.dist.average_gradients(self.actor_params)
                _clip_and_step(self.policy_optimizer, self.actor_params, cfg.max_grad_norm)
                values = self.policy.value(mb_obs)
                check_per_sample(values=values, returns=returns[idx])
                critic_loss = 0.5 * (values - returns[idx]).pow(2).mean()
                self.value_optimizer.zero_grad(set_to_none=True)
                critic_loss.backward()
                self.dist.average_gradients(self.critic_params)
                _clip_and_step(self.value_optimizer, self.critic_params, cfg.max_grad_norm)
                totals["aux_value_loss"] += float(aux_loss.detach())
                totals["aux_clone_kl"] += float(kl.detach())
                totals["aux_critic_loss"] += float(critic_loss.detach())
                n += 1
        return {k: v / max(n, 1) for k, v in totals.items()}

    def state_dict(self) -> dict[str, Any]:
        # The kept rollouts are part of the state: resuming mid-phase must see them.
        return {
            "lr": self.lr.state_dict(),
            "phase_iteration": self.phase_iteration,
            "aux_obs": self.aux_obs,
            "aux_returns": self.aux_returns,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lr.load_state_dict(state["lr"])
        self.phase_iteration = int(state["phase_iteration"])
        # Checkpoints load on the CPU; the kept rollouts belong with the learner.
        device = next(self.policy.parameters()).device
        self.aux_obs = [{k: v.to(device) for k, v in o.items()} for o in state["aux_obs"]]
        self.aux_returns = [r.to(device) for r in state["aux_returns"]]
