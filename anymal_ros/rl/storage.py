"""Rollout storage (``[T, N, ...]``: time x environment) and generalised advantage estimation.

Everything is written under ``torch.no_grad`` semantics: :meth:`RolloutStorage.add` detaches
its inputs, so no stored tensor keeps an autograd graph alive (a defect of the reference code).
Recurrent policies additionally store their hidden state at the start of every chunk of
``chunk_len`` steps and a per-step episode-start mask, which is what truncated BPTT needs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

Obs = dict[str, Tensor]


def check_shape(name: str, x: Tensor, shape: tuple[int, ...]) -> None:
    """Raise a ValueError naming ``name`` unless ``x.shape == shape`` (no silent broadcast)."""
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(x.shape)}")


@torch.no_grad()
def compute_gae(
    rewards: Tensor,
    values: Tensor,
    last_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    truncation_values: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """GAE(gamma, lambda) over a rollout; returns ``(advantages, returns)``, both ``[T, N]``.

    ``rewards, values, terminated, truncated, truncation_values``: ``[T, N]``; ``last_values``:
    ``[N]`` (value of the observation after the last step). At a *termination* the future is
    worth zero. At a *time-out* the episode was cut, not finished: the step bootstraps from
    ``truncation_values`` (the critic on ``info["final_obs"]``), and in both cases the
    advantage recursion stops, because the next stored step belongs to a new episode.
    """
    T, N = rewards.shape
    for name, x in (
        ("values", values),
        ("terminated", terminated),
        ("truncated", truncated),
        ("truncation_values", truncation_values),
    ):
        check_shape(name, x, (T, N))
    check_shape("last_values", last_values, (N,))
    terminated = terminated.bool()
    done = terminated | truncated.bool()
    zeros = torch.zeros_like(last_values)
    advantages = torch.empty_like(rewards)
    gae = zeros
    next_values = last_values
    for t in reversed(range(T)):
        bootstrap = torch.where(done[t], truncation_values[t], next_values)
        bootstrap = torch.where(terminated[t], zeros, bootstrap)
        delta = rewards[t] + gamma * bootstrap - values[t]
        gae = delta + gamma * lam * (~done[t]).to(rewards.dtype) * gae
        advantages[t] = gae
        next_values = values[t]
    return advantages, advantages + values


@dataclass
class Batch:
    """A flat minibatch ``[B, ...]`` for a feed-forward update."""

    obs: Obs
    actions: Tensor
    log_probs: Tensor
    values: Tensor
    advantages: Tensor
    returns: Tensor


@dataclass
class SequenceBatch:
    """A minibatch of time chunks ``[L, B, ...]`` for a recurrent update.

    ``hidden``: ``[B, *hidden_shape]``, the state before the chunk's first step;
    ``episode_start``: ``[L, B]``, True where the hidden state must be reset to zero first.
    """

    obs: Obs
    actions: Tensor
    log_probs: Tensor
    values: Tensor
    advantages: Tensor
    returns: Tensor
    hidden: Tensor
    episode_start: Tensor


class RolloutStorage:
    """Fixed-size buffer of one rollout of ``num_steps`` steps from ``num_envs`` environments.

    ``obs_shapes`` maps observation keys to per-sample shapes; ``action_shape`` is ``()`` for a
    categorical policy and ``(A,)`` for a Gaussian one. With ``hidden_shape`` the storage also
    keeps recurrent state ``[num_steps // chunk_len, N, *hidden_shape]`` at chunk starts.
    """

    def __init__(
        self,
        num_steps: int,
        num_envs: int,
        obs_shapes: Mapping[str, tuple[int, ...]],
        action_shape: tuple[int, ...],
        action_dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        hidden_shape: tuple[int, ...] | None = None,
        chunk_len: int | None = None,
    ) -> None:
        self.T, self.N = num_steps, num_envs
        self.device = torch.device(device)
        TN = (num_steps, num_envs)
        f32 = {"dtype": torch.float32, "device": self.device}
        self.obs = {k: torch.zeros(*TN, *s, **f32) for k, s in obs_shapes.items()}
        self.obs_shapes = {k: tuple(s) for k, s in obs_shapes.items()}
        self.action_shape = tuple(action_shape)
        self.actions = torch.zeros(*TN, *action_shape, dtype=action_dtype, device=self.device)
        self.log_probs = torch.zeros(TN, **f32)
        self.values = torch.zeros(TN, **f32)
        self.rewards = torch.zeros(TN, **f32)
        self.terminated = torch.zeros(TN, dtype=torch.bool, device=self.device)
        self.truncated = torch.zeros(TN, dtype=torch.bool, device=self.device)
        self.truncation_values = torch.zeros(TN, **f32)
        self.episode_start = torch.zeros(TN, dtype=torch.bool, device=self.device)
        self.advantages = torch.zeros(TN, **f32)
        self.returns = torch.zeros(TN, **f32)
        self.hidden_shape = tuple(hidden_shape) if hidden_shape is not None else None
        self.chunk_len = chunk_len or num_steps
        if self.hidden_shape is not None:
            if num_steps % self.chunk_len:
                raise ValueError(
                    f"num_steps {num_steps} must be a multiple of chunk_len {self.chunk_len}"
                )
            n_chunks = num_steps // self.chunk_len
            self.hidden = torch.zeros(n_chunks, num_envs, *self.hidden_shape, **f32)
        self.step = 0

    @property
    def full(self) -> bool:
        return self.step == self.T

    def clear(self) -> None:
        self.step = 0

    @torch.no_grad()
    def add(
        self,
        obs: Mapping[str, Tensor],
        actions: Tensor,
        log_probs: Tensor,
        values: Tensor,
        rewards: Tensor,
        terminated: Tensor,
        truncated: Tensor,
        truncation_values: Tensor | None = None,
        episode_start: Tensor | None = None,
        hidden: Tensor | None = None,
    ) -> None:
        """Store one step; every input is ``[N, ...]``, checked, detached and copied.

        ``episode_start``: True where ``obs`` is the first of an episode; ``hidden``
        ``[N, *hidden_shape]`` (the state the policy used for ``obs``) is required at chunk
        starts of a recurrent storage and ignored elsewhere.
        """
        if self.full:
            raise RuntimeError(f"rollout storage is full ({self.T} steps); call clear()")
        t, N = self.step, self.N
        if set(obs) != set(self.obs):
            raise ValueError(f"observation keys {sorted(obs)} != storage keys {sorted(self.obs)}")
        for k, v in obs.items():
            check_shape(f"obs[{k!r}]", v, (N, *self.obs_shapes[k]))
            self.obs[k][t].copy_(v.detach())
        check_shape("actions", actions, (N, *self.action_shape))
        self.actions[t].copy_(actions.detach())
        for name, x, dst in (
            ("log_probs", log_probs, self.log_probs),
            ("values", values, self.values),
            ("rewards", rewards, self.rewards),
            ("terminated", terminated, self.terminated),
            ("truncated", truncated, self.truncated),
        ):
            check_shape(name, x, (N,))
            dst[t].copy_(x.detach())
        if truncation_values is not None:
            check_shape("truncation_values", truncation_values, (N,))
            self.truncation_values[t].copy_(truncation_values.detach())
        else:
            self.truncation_values[t].zero_()
        if episode_start is not None:
            check_shape("episode_start", episode_start, (N,))
            self.episode_start[t].copy_(episode_start.detach())
        if self.hidden_shape is not None and t % self.chunk_len == 0:
            if hidden is None:
                raise ValueError(f"step {t} starts a chunk: the recurrent hidden state is required")
            check_shape("hidden", hidden, (N, *self.hidden_shape))
            self.hidden[t // self.chunk_len].copy_(hidden.detach())
        self.step += 1

    def compute_returns(self, last_values: Tensor, gamma: float, lam: float) -> None:
        """Fill ``advantages`` and ``returns`` with GAE; ``last_values``: ``[N]``."""
        if not self.full:
            raise RuntimeError(f"rollout incomplete: {self.step}/{self.T} steps stored")
        self.advantages, self.returns = compute_gae(
            self.rewards,
            self.values,
            last_values.detach(),
            self.terminated,
            self.truncated,
            self.truncation_values,
            gamma,
            lam,
        )

    def flat(self) -> Batch:
        """The whole rollout as one ``[T * N, ...]`` batch (views, no copies)."""
        B = self.T * self.N
        return Batch(
            obs={k: v.reshape(B, *self.obs_shapes[k]) for k, v in self.obs.items()},
            actions=self.actions.reshape(B, *self.action_shape),
            log_probs=self.log_probs.reshape(B),
            values=self.values.reshape(B),
            advantages=self.advantages.reshape(B),
            returns=self.returns.reshape(B),
        )

    def minibatches(
        self, num_minibatches: int, generator: torch.Generator | None = None
    ) -> Iterator[Batch]:
        """Shuffled flat minibatches covering the rollout once (one epoch)."""
        yield from shuffled_minibatches(self.flat(), num_minibatches, generator)

    def sequence_minibatches(
        self, num_minibatches: int, generator: torch.Generator | None = None
    ) -> Iterator[SequenceBatch]:
        """Shuffled minibatches of whole chunks ``[chunk_len, B, ...]`` (recurrent storage).

        Each row is a contiguous piece of one environment's time line, starting at a chunk
        boundary where the stored hidden state is valid.
        """
        if self.hidden_shape is None:
            raise RuntimeError("sequence minibatches need a storage built with hidden_shape")
        L, C = self.chunk_len, self.T // self.chunk_len

        def chunks(x: Tensor) -> Tensor:  # [T, N, ...] -> [L, C * N, ...]
            x = x.reshape(C, L, self.N, *x.shape[2:]).transpose(0, 1)
            return x.reshape(L, C * self.N, *x.shape[3:])

        total = C * self.N
        if num_minibatches > total:
            raise ValueError(f"{num_minibatches} minibatches but only {total} chunks")
        hidden = self.hidden.reshape(total, *self.hidden_shape)
        perm = torch.randperm(total, generator=generator, device="cpu").to(self.device)
        for idx in perm.chunk(num_minibatches):
            yield SequenceBatch(
                obs={k: chunks(v)[:, idx] for k, v in self.obs.items()},
                actions=chunks(self.actions)[:, idx],
                log_probs=chunks(self.log_probs)[:, idx],
                values=chunks(self.values)[:, idx],
                advantages=chunks(self.advantages)[:, idx],
                returns=chunks(self.returns)[:, idx],
                hidden=hidden[idx],
                episode_start=chunks(self.episode_start)[:, idx],
            )


def shuffled_minibatches(
    batch: Batch, num_minibatches: int, generator: torch.Generator | None = None
) -> Iterator[Batch]:
    """Split a flat batch into ``num_minibatches`` random, disjoint minibatches."""
    B = batch.returns.shape[0]
    if not 1 <= num_minibatches <= B:
        raise ValueError(f"num_minibatches must be in [1, {B}], got {num_minibatches}")
    perm = torch.randperm(B, generator=generator, device="cpu").to(batch.returns.device)
    for idx in perm.chunk(num_minibatches):
        yield Batch(
            obs={k: v[idx] for k, v in batch.obs.items()},
            actions=batch.actions[idx],
            log_probs=batch.log_probs[idx],
            values=batch.values[idx],
            advantages=batch.advantages[idx],
            returns=batch.returns[idx],
        )
