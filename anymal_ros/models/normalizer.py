"""Running observation normaliser that travels with the policy (checkpoint and ONNX export).

Statistics are merged batch by batch with the parallel variance formula (Chan et al.), kept
in float64 buffers so they survive millions of updates, and stored in ``state_dict`` so they
are saved with the weights and never reset between episodes.

Data-parallel training (several processes, each with its own robots) pools the statistics:
inside :func:`pooled_statistics` every ``update`` hands its batch's ``(mean, var, count)`` to
a gather function and merges what comes back, every process's batch in the same order, so
all processes hold the same statistics (``anymal_ros.rl.distributed`` supplies the gather).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import Tensor, nn

BatchStats = tuple[Tensor, Tensor, float]  # mean [*shape], var [*shape], count
StatsGather = Callable[[Tensor, Tensor, float], list[BatchStats]]

_gather: ContextVar[StatsGather | None] = ContextVar("normalizer_gather", default=None)


@contextmanager
def pooled_statistics(gather: StatsGather) -> Iterator[None]:
    """Within the block, :meth:`RunningNormalizer.update` merges ``gather(mean, var, count)``
    (every participant's batch statistics, the same list everywhere) instead of its own."""
    token = _gather.set(gather)
    try:
        yield
    finally:
        _gather.reset(token)


class RunningNormalizer(nn.Module):
    """``(x - mean) / sqrt(var + eps)``, optionally clipped, over trailing ``shape``."""

    mean: Tensor
    var: Tensor
    count: Tensor
    frozen: Tensor

    def __init__(
        self, shape: int | Sequence[int], clip: float | None = 10.0, eps: float = 1e-8
    ) -> None:
        super().__init__()
        self.shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.clip = clip
        self.eps = eps
        self.register_buffer("mean", torch.zeros(self.shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(self.shape, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("frozen", torch.zeros((), dtype=torch.bool))

    def _check(self, x: Tensor) -> None:
        if tuple(x.shape[x.dim() - len(self.shape) :]) != self.shape:
            raise ValueError(
                f"normaliser expects trailing shape {self.shape}, got {tuple(x.shape)}"
            )

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Fold a batch ``[..., *shape]`` into the statistics (no-op when frozen)."""
        self._check(x)
        if bool(self.frozen):
            return
        flat = x.detach().reshape(-1, *self.shape).to(torch.float64)
        gather = _gather.get()
        if gather is None:
            if flat.shape[0] == 0:
                return
            self.merge(flat.mean(0), flat.var(0, unbiased=False), float(flat.shape[0]))
            return
        if flat.shape[0] == 0:  # still take part: the others wait for this batch's share
            mean, var = torch.zeros_like(self.mean), torch.zeros_like(self.var)
        else:
            mean, var = flat.mean(0), flat.var(0, unbiased=False)
        for other_mean, other_var, count in gather(mean, var, float(flat.shape[0])):
            self.merge(other_mean, other_var, count)

    @torch.no_grad()
    def merge(self, mean: Tensor, var: Tensor, count: float) -> None:
        """Merge statistics of another population (e.g. another worker's normaliser)."""
        if count <= 0:
            return
        mean = mean.to(self.mean)
        var = var.to(self.var)
        total = self.count + count
        delta = mean - self.mean
        new_mean = self.mean + delta * (count / total)
        m2 = self.var * self.count + var * count + delta.pow(2) * self.count * count / total
        self.mean.copy_(new_mean)
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def freeze(self, frozen: bool = True) -> None:
        self.frozen.fill_(frozen)

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        mean = self.mean.to(x.dtype)
        std = (self.var + self.eps).sqrt().to(x.dtype)
        y = (x - mean) / std
        if self.clip is not None:
            y = y.clamp(-self.clip, self.clip)
        return y

    def denormalize(self, y: Tensor) -> Tensor:
        """Inverse of :meth:`forward` (without its clip): normalised ``y`` back to raw units."""
        self._check(y)
        std = (self.var + self.eps).sqrt().to(y.dtype)
        return y * std + self.mean.to(y.dtype)

    def extra_repr(self) -> str:
        return f"shape={self.shape}, clip={self.clip}"
