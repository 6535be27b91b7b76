"""Encoders shared by the teacher and the student."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from anymal_ros.models.mlp import make_mlp


class HeightEncoder(nn.Module):
    """One MLP applied to every foot's height samples; latents concatenated in foot order.

    ``[..., F, N] -> [..., F * latent]`` with feet in the order of ``contract.LEGS``
    (LF, RF, LH, RH): the same weights see every foot, so the latent of foot ``i`` always
    occupies columns ``[i * latent, (i + 1) * latent)``.
    """

    def __init__(
        self,
        num_feet: int,
        points_per_foot: int,
        hidden: Sequence[int],
        latent: int,
        activation: str,
    ) -> None:
        super().__init__()
        self.num_feet = num_feet
        self.points_per_foot = points_per_foot
        self.latent = latent
        self.mlp = make_mlp(points_per_foot, hidden, latent, activation)

    @property
    def out_dim(self) -> int:
        return self.num_feet * self.latent

    def forward(self, heights: Tensor) -> Tensor:
        expected = (self.num_feet, self.points_per_foot)
        if tuple(heights.shape[-2:]) != expected:
            raise ValueError(
                f"height encoder expects [..., {expected[0]}, {expected[1]}], "
                f"got {tuple(heights.shape)}"
            )
        per_foot = self.mlp(heights)  # [..., F, latent]
        return per_foot.flatten(-2)  # [..., F * latent], foot-major
