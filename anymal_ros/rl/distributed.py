"""Data-parallel training with ``torch.distributed``: what the trainers need, in one place.

``torchrun --nproc-per-node N -m anymal_ros.cli train ppo ...`` starts N processes (ranks);
:func:`init_distributed` joins them into a process group (gloo for a CPU learner, NCCL for a
GPU one). Every rank simulates its own share of the robots with its own seed, and the ranks
stay identical learners because

* the initial weights are rank 0's (:meth:`Distributed.broadcast_module`),
* every optimiser step averages the gradients over the ranks, and the scalars that steer the
  step (the PPO KL that adapts the learning rate) travel in the same all-reduce
  (:meth:`Distributed.average_gradients`),
* advantages are normalised with the mean and std of all ranks' rollouts
  (:meth:`Distributed.mean_std`), and the observation normalisers pool every rank's batch
  statistics (:meth:`Distributed.pooled_statistics`),
* stop decisions (signals, targets) are agreed (:meth:`Distributed.any_rank`).

This is the scheme of ``DistributedDataParallel`` done by hand with its own collectives:
DDP hooks ``forward()``, which the actor-critics here do not use (they are called through
``distribution``/``value``/``forward_sequence``), and one flat all-reduce per step is what
DDP does with a single bucket anyway.

``env.num_envs`` and ``env.num_workers`` are totals for the run, divided evenly among the
ranks (:meth:`Distributed.share`): a config describes the same experiment, the same batch
per update, on any number of ranks. Rank ``r`` seeds with ``seed + r * RANK_SEED_STRIDE``.

Without ``torchrun`` (or with one process) nothing is initialised and every method of
:class:`Distributed` is the identity: a single-process run computes exactly what it did
before this module existed.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from anymal_ros.models.normalizer import BatchStats, pooled_statistics

RANK_SEED_STRIDE = 1_000_003  # a prime, so ranks of nearby seeds never share a stream


class Distributed:
    """A world of one process: every collective is the identity. :class:`TorchDistributed`
    is the same interface over a ``torch.distributed`` process group."""

    rank = 0
    world_size = 1
    local_rank = 0
    backend = "none"

    @property
    def active(self) -> bool:
        """Whether several ranks take part (a process group exists)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that logs, plots and writes checkpoints."""
        return self.rank == 0

    def rank_seed(self, seed: int) -> int:
        return seed + self.rank * RANK_SEED_STRIDE

    def share(self, total: int, what: str) -> int:
        """This rank's part of ``total`` (robots, episodes per batch); must divide evenly."""
        if total % self.world_size:
            raise ValueError(
                f"{what} is {total}, which {self.world_size} ranks cannot share evenly "
                f"({what} is the total over all ranks: make it a multiple of "
                f"{self.world_size})"
            )
        return total // self.world_size

    def worker_share(self, total: int) -> int:
        """This rank's simulator worker processes: ``total`` divided, at least 1 (in-process)."""
        return max(1, total // self.world_size)

    # -- collectives (identities here) ---------------------------------------------------------

    def average_gradients(
        self, params: Iterable[nn.Parameter], scalars: Sequence[float] = ()
    ) -> list[float]:
        """Average the ``.grad`` of ``params`` and the ``scalars`` over the ranks, in place
        and in one all-reduce; returns the averaged scalars."""
        return [float(s) for s in scalars]

    def mean_std(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and (unbiased) std of ``x`` over every element on every rank."""
        return x.mean(), x.std()

    def pooled_statistics(self) -> contextlib.AbstractContextManager[None]:
        """Within the block, running normalisers merge every rank's batch statistics."""
        return contextlib.nullcontext()

    def any_rank(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag, true if it is true on any rank (stop requests, signals)."""
        return tuple(bool(f) for f in flags)

    def broadcast_module(self, module: nn.Module) -> None:
        """Make ``module``'s parameters and buffers rank 0's."""

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (picklable objects)."""
        return obj

    def gather_objects(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` in rank order on rank 0; ``None`` on the others."""
        return [obj]

    def describe(self) -> str:
        return "single process"

    def close(self) -> None:
        """Leave the process group (nothing to do for one process)."""


class TorchDistributed(Distributed):
    """:class:`Distributed` over an initialised ``torch.distributed`` process group."""

    def __init__(self, device: torch.device) -> None:
        import torch.distributed as dist

        self.dist = dist
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.local_rank = int(os.environ.get("LOCAL_RANK", self.rank))
        self.backend = str(dist.get_backend())
        # NCCL moves tensors between GPUs; gloo between CPUs.
        self.device = device if self.backend == "nccl" else torch.device("cpu")

    def average_gradients(
        self, params: Iterable[nn.Parameter], scalars: Sequence[float] = ()
    ) -> list[float]:
        # Parameters without a gradient (e.g. PPG's auxiliary head in a PPO step) have none on
        # every rank alike, as all ranks run the same graph; they stay without one.
        grads = [p.grad for p in params if p.grad is not None]
        if not grads and not scalars:
            return []
        device = grads[0].device if grads else self.device
        parts = [g.reshape(-1) for g in grads]
        parts.append(torch.tensor([float(s) for s in scalars], dtype=torch.float32, device=device))
        flat = self._reduce_sum(torch.cat(parts).to(torch.float32))
        flat /= self.world_size
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset : offset + n].view_as(g))
            offset += n
        return flat[offset:].tolist()

    def mean_std(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x64 = x.detach().to(torch.float64)
        count = torch.tensor(x.numel(), dtype=x64.dtype, device=x.device)
        total = self._reduce_sum(torch.stack([x64.sum(), count]))
        mean = total[0] / total[1]
        ssd = self._reduce_sum((x64 - mean).pow(2).sum().reshape(1))[0]
        std = (ssd / (total[1] - 1).clamp_min(1.0)).sqrt()
        return mean.to(x.dtype), std.to(x.dtype)

    def pooled_statistics(self) -> contextlib.AbstractContextManager[None]:
        return pooled_statistics(self._gather_stats)

    def _gather_stats(self, mean: Tensor, var: Tensor, count: float) -> list[BatchStats]:
        n = mean.numel()
        mine = torch.cat(
            [
                mean.reshape(-1).to(torch.float64),
                var.reshape(-1).to(torch.float64),
                torch.tensor([count], dtype=torch.float64, device=mean.device),
            ]
        ).to(self.device)
        everyone = [torch.empty_like(mine) for _ in range(self.world_size)]
        self.dist.all_gather(everyone, mine)
        return [
            (s[:n].reshape(mean.shape), s[n : 2 * n].reshape(var.shape), float(s[2 * n]))
            for s in everyone
        ]

    def any_rank(self, *flags: bool) -> tuple[bool, ...]:
        t = torch.tensor([1.0 if f else 0.0 for f in flags], device=self.device)
        self.dist.all_reduce(t, op=self.dist.ReduceOp.MAX)
        return tuple(bool(v > 0.5) for v in t.tolist())

    def broadcast_module(self, module: nn.Module) -> None:
        with torch.no_grad():
            for t in module.state_dict().values():  # views of the parameters and buffers
                moved = t.to(self.device)
                self.dist.broadcast(moved, src=0)
                if moved is not t:
                    t.copy_(moved)

    def broadcast_object(self, obj: Any) -> Any:
        box = [obj]
        self.dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]

    def gather_objects(self, obj: Any) -> list[Any] | None:
        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        self.dist.gather_object(obj, out, dst=0)
        return out

    def describe(self) -> str:
        return f"rank {self.rank} of {self.world_size} ({self.backend})"

    def close(self) -> None:
        if self.dist.is_initialized():
            # Ranks leave together. The others finish before rank 0 has written its last
            # checkpoint; once in a CI run rank 1 aborted at the end ("terminate called
            # without an active exception", rank 0 still in the group), not seen in 75 runs
            # since: the barrier keeps a rank from tearing down while another is a member.
            self.dist.barrier()
            self.dist.destroy_process_group()

    def _reduce_sum(self, t: Tensor) -> Tensor:
        moved = t.to(self.device)
        self.dist.all_reduce(moved)
        return moved.to(t.device)


SINGLE = Distributed()


def launched_world_size() -> int:
    """The number of ranks ``torchrun`` started (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device: torch.device, timeout_s: float = 600.0) -> Distributed:
    """Join the ``torchrun`` process group when there is one (``WORLD_SIZE > 1``), choosing
    NCCL for a CUDA learner and gloo otherwise; else :data:`SINGLE`. An already initialised
    group (a test that spawned its ranks) is used as it is.

    ``timeout_s`` bounds how long a collective waits for a rank that does not arrive (a rank
    that died): the others then fail with an error instead of hanging.
    """
    import torch.distributed as dist

    if not dist.is_available():
        if launched_world_size() > 1:
            raise RuntimeError("this torch build has no torch.distributed; run one process")
        return SINGLE
    if not dist.is_initialized():
        if launched_world_size() <= 1:
            return SINGLE
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    if dist.get_world_size() <= 1:
        return SINGLE
    return TorchDistributed(device)


def report_rank_failure(d: Distributed, err: BaseException, resume_hint: str) -> None:
    """Say which rank failed and how to resume (a collective that fails because another rank
    died lands here too). Printed at once: torchrun soon stops the surviving ranks."""
    if not d.active:
        return
    if os.path.exists(resume_hint):
        how = (
            f"its last checkpoint is intact: resume with the same command and "
            f"--resume {resume_hint}"
        )
    else:
        how = "no checkpoint was written yet: start it again"
    print(
        f"\nrank {d.rank} of {d.world_size} stopped: {type(err).__name__}: {err}\n"
        f"The run ends on every rank (torchrun stops the others); {how}",
        flush=True,
    )
