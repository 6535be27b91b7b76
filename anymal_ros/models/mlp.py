"""Small building blocks shared by all networks."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

_ACTIVATIONS = {
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
}


def make_activation(name: str) -> nn.Module:
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        known = sorted(_ACTIVATIONS)
        raise ValueError(f"unknown activation {name!r}; choose from {known}") from None


def make_mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int | None = None,
    activation: str = "leaky_relu",
    activate_output: bool = False,
) -> nn.Sequential:
    """Linear/activation stack ``in_dim -> hidden... [-> out_dim]``.

    With ``out_dim`` the last layer is linear unless ``activate_output``; without it the
    output is the last hidden layer, activated.
    """
    layers: list[nn.Module] = []
    prev = in_dim
    for width in hidden:
        layers += [nn.Linear(prev, width), make_activation(activation)]
        prev = width
    if out_dim is not None:
        layers.append(nn.Linear(prev, out_dim))
        if activate_output:
            layers.append(make_activation(activation))
    return nn.Sequential(*layers)


def mlp_out_dim(in_dim: int, hidden: Sequence[int], out_dim: int | None = None) -> int:
    if out_dim is not None:
        return out_dim
    return hidden[-1] if hidden else in_dim
