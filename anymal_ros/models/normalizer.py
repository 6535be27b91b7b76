"""Running observation normaliser that travels with the policy (checkpoint and ONNX export).

Statistics are merged batch by batch with the parallel variance formula (Chan et al.), kept
in float64 buffers so they survive millions of updates, and stored in ``state_dict`` so they
are saved with the weights and never reset between episodes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


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
        if flat.shape[0] == 0:
            return
        self.merge(flat.mean(0), flat.var(0, unbiased=False), float(flat.shape[0]))

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
