"""Time-major storage of distillation data and the truncated-BPTT chunks cut from it.

A rollout is stored ``[T, N, ...]``: row ``n`` of every field is environment ``n``'s
consecutive steps ``0 .. T-1``. Truncated BPTT cuts the time axis into chunks of ``K`` steps
and hands the learner, for a group of environments, ``[B, K, ...]`` tensors whose row ``b``
is environment ``env_ids[b]``'s steps ``t0 .. t0+K-1`` -- contiguous time, never a shuffle of
unrelated steps (the reference implementation's defect). The learner carries the hidden
state from one chunk to the next of the same rows (detached) and resets it where
``episode_start`` is set, i.e. exactly at the first step of every new episode.

Fields:

* ``proprio [T, N, P]``, ``extero [T, N, 4, 52]``: the student's inputs (noisy heights);
* ``clean_extero [T, N, 4, 52]``, ``privileged [T, N, 50]``: reconstruction targets (raw);
* ``teacher_target [T, N, A]``: the teacher's label (Gaussian mean, or categorical logits);
* ``episode_start [T, N]`` bool: step ``t`` is the first of an episode (hidden reset);
* ``valid [T, N]`` bool: real data (False only for padding of offline episodes).

``hidden0 [L, N, H]`` is the student's hidden state before step 0 (zeros where step 0
starts an episode).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

STEP_FIELDS: tuple[str, ...] = (
    "proprio",
    "extero",
    "clean_extero",
    "privileged",
    "teacher_target",
)


@dataclass
class TBPTTChunk:
    """One truncated-BPTT chunk: ``[B, K, ...]`` rows of contiguous time.

    ``env_ids [B]`` are the rows' environments (columns of the rollout), ``start`` the
    rollout step of column 0, so ``data[f][b, k]`` is ``rollout[f][start + k, env_ids[b]]``.
    """

    env_ids: Tensor  # [B] int64
    start: int
    proprio: Tensor  # [B, K, P]
    extero: Tensor  # [B, K, 4, 52]
    clean_extero: Tensor  # [B, K, 4, 52]
    privileged: Tensor  # [B, K, 50]
    teacher_target: Tensor  # [B, K, A]
    episode_start: Tensor  # [B, K] bool
    valid: Tensor  # [B, K] bool

    @property
    def steps(self) -> int:
        return self.proprio.shape[1]


class DistillRollout:
    """Fixed-size ``[T, N, ...]`` buffers filled one step at a time (see module docstring)."""

    def __init__(
        self,
        num_steps: int,
        num_envs: int,
        proprio_dim: int,
        extero_shape: tuple[int, int],
        privileged_dim: int,
        target_dim: int,
        hidden_shape: tuple[int, int],
        device: torch.device | str = "cpu",
    ) -> None:
        if num_steps < 1 or num_envs < 1:
            raise ValueError(f"num_steps and num_envs must be >= 1, got {num_steps, num_envs}")
        T, N = num_steps, num_envs
        self.T, self.N = T, N
        self.device = torch.device(device)
        z = dict(device=self.device, dtype=torch.float32)
        self.proprio = torch.zeros(T, N, proprio_dim, **z)
        self.extero = torch.zeros(T, N, *extero_shape, **z)
        self.clean_extero = torch.zeros(T, N, *extero_shape, **z)
        self.privileged = torch.zeros(T, N, privileged_dim, **z)
        self.teacher_target = torch.zeros(T, N, target_dim, **z)
        self.episode_start = torch.zeros(T, N, dtype=torch.bool, device=self.device)
        self.valid = torch.ones(T, N, dtype=torch.bool, device=self.device)
        layers, hidden = hidden_shape
        self.hidden0 = torch.zeros(layers, N, hidden, **z)
        self.step = 0

    def clear(self, hidden0: Tensor) -> None:
        """Start a new rollout whose step 0 follows the hidden state ``hidden0 [L, N, H]``."""
        if hidden0.shape != self.hidden0.shape:
            raise ValueError(
                f"hidden0 must be {list(self.hidden0.shape)}, got {list(hidden0.shape)}"
            )
        self.hidden0.copy_(hidden0.detach())
        self.valid.fill_(True)
        self.step = 0

    def add(
        self,
        proprio: Tensor,
        extero: Tensor,
        clean_extero: Tensor,
        privileged: Tensor,
        teacher_target: Tensor,
        episode_start: Tensor,
    ) -> None:
        """Store one step ``[N, ...]`` per field. Tensors are detached: nothing stored keeps
        an autograd graph alive."""
        if self.step >= self.T:
            raise IndexError(f"rollout is full ({self.T} steps); call clear() first")
        t = self.step
        for name, value in (
            ("proprio", proprio),
            ("extero", extero),
            ("clean_extero", clean_extero),
            ("privileged", privileged),
            ("teacher_target", teacher_target),
        ):
            buf = getattr(self, name)
            if tuple(value.shape) != tuple(buf.shape[1:]):
                raise ValueError(f"{name}: expected {list(buf.shape[1:])}, got {list(value.shape)}")
            buf[t].copy_(value.detach())
        if tuple(episode_start.shape) != (self.N,):
            raise ValueError(f"episode_start: expected [{self.N}], got {list(episode_start.shape)}")
        self.episode_start[t].copy_(episode_start)
        self.step += 1

    @property
    def full(self) -> bool:
        return self.step == self.T

    def chunks(self, tbptt_steps: int, env_ids: Sequence[int] | Tensor) -> Iterator[TBPTTChunk]:
        """The chunks of environments ``env_ids`` in time order; see :func:`time_chunks`."""
        if not self.full:
            raise RuntimeError(f"rollout has {self.step} of {self.T} steps; fill it first")
        return time_chunks(self, tbptt_steps, env_ids)


def chunk_bounds(num_steps: int, tbptt_steps: int) -> list[tuple[int, int]]:
    """``[(t0, t1), ...]`` covering ``0 .. num_steps`` in order with ``t1 - t0 <= K`` (the
    last chunk is shorter when ``K`` does not divide ``T``)."""
    if tbptt_steps < 1:
        raise ValueError(f"tbptt_steps must be >= 1, got {tbptt_steps}")
    return [(t, min(t + tbptt_steps, num_steps)) for t in range(0, num_steps, tbptt_steps)]


def time_chunks(
    data: DistillRollout, tbptt_steps: int, env_ids: Sequence[int] | Tensor
) -> Iterator[TBPTTChunk]:
    """Yield ``[B, K, ...]`` chunks of the rows ``env_ids``, in time order.

    The caller runs them in the order given and carries the hidden state of the same rows
    from one chunk to the next; ``episode_start`` tells it where to zero it.
    """
    ids = torch.as_tensor(env_ids, dtype=torch.int64, device=data.device).reshape(-1)
    if ids.numel() == 0:
        raise ValueError("env_ids is empty")
    if ids.min() < 0 or ids.max() >= data.N:
        raise ValueError(f"env_ids out of range [0, {data.N})")
    for t0, t1 in chunk_bounds(data.T, tbptt_steps):

        def rows(buf: Tensor, t0: int = t0, t1: int = t1) -> Tensor:
            # [T, N, ...] -> [t1-t0, B, ...] -> [B, t1-t0, ...]: row b = env ids[b]'s steps.
            return buf[t0:t1, ids].transpose(0, 1)

        yield TBPTTChunk(
            env_ids=ids,
            start=t0,
            proprio=rows(data.proprio),
            extero=rows(data.extero),
            clean_extero=rows(data.clean_extero),
            privileged=rows(data.privileged),
            teacher_target=rows(data.teacher_target),
            episode_start=rows(data.episode_start),
            valid=rows(data.valid),
        )


def rollout_from_episodes(
    episodes: Sequence[dict[str, Tensor]],
    hidden_shape: tuple[int, int],
    device: torch.device | str = "cpu",
) -> DistillRollout:
    """Pack whole episodes (each ``{field: [L_i, ...]}`` with the :data:`STEP_FIELDS`) into
    a rollout ``[max L_i, B, ...]``: row ``b`` is episode ``b`` from its first step
    (``episode_start[0] = True``), padded with zeros and ``valid = False`` after its end."""
    if not episodes:
        raise ValueError("no episodes to pack")
    missing = [f for f in STEP_FIELDS if f not in episodes[0]]
    if missing:
        raise KeyError(f"episodes lack fields {missing}")
    T = max(int(ep["proprio"].shape[0]) for ep in episodes)
    first = episodes[0]
    r = DistillRollout(
        T,
        len(episodes),
        first["proprio"].shape[-1],
        tuple(first["extero"].shape[-2:]),
        first["privileged"].shape[-1],
        first["teacher_target"].shape[-1],
        hidden_shape,
        device,
    )
    r.valid.fill_(False)
    for b, ep in enumerate(episodes):
        length = int(ep["proprio"].shape[0])
        for name in STEP_FIELDS:
            if ep[name].shape[0] != length:
                raise ValueError(f"episode {b}: field {name} has {ep[name].shape[0]} steps, "
                                 f"proprio has {length}")  # fmt: skip
            getattr(r, name)[:length, b] = torch.as_tensor(ep[name], device=r.device)
        r.valid[:length, b] = True
    r.episode_start[0] = True
    r.step = T
    return r
