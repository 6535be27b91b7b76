"""Action distributions give one value per sample and refuse mis-shaped actions, so the
reference's (T,1) vs (B,) broadcasting into (B,B) cannot happen silently."""

import math

import pytest
import torch

from anymal_ros.config.models import ActionHeadConfig
from anymal_ros.models.heads import Categorical, make_action_head


def test_gaussian_log_prob_matches_torch_and_has_batch_shape():
    head = make_action_head(8, ActionHeadConfig(num_actions=3, init_std=0.7))
    feats = torch.randn(5, 8)
    dist = head(feats)
    a = dist.sample()
    ref = torch.distributions.Normal(dist.mean, dist.std).log_prob(a).sum(-1)
    torch.testing.assert_close(dist.log_prob(a), ref)
    assert dist.log_prob(a).shape == (5,) and dist.entropy().shape == (5,)
    with pytest.raises(ValueError, match="does not match"):
        dist.log_prob(a[:, :1])
    with pytest.raises(ValueError, match="does not match"):
        dist.log_prob(a.unsqueeze(1))


def test_log_std_is_kept_in_range():
    head = make_action_head(4, ActionHeadConfig(num_actions=2, log_std_range=(-2.0, 0.5)))
    with torch.no_grad():
        head.log_std.fill_(10.0)
    assert torch.allclose(head.std(), torch.full((2,), math.exp(0.5)))
    with torch.no_grad():
        head.log_std.fill_(-10.0)
    assert torch.allclose(head.std(), torch.full((2,), math.exp(-2.0)))


def test_categorical_refuses_column_actions():
    dist = Categorical(torch.randn(6, 4))
    a = dist.sample()
    assert a.shape == (6,) and dist.log_prob(a).shape == (6,)
    ref = torch.distributions.Categorical(logits=dist.logits).log_prob(a)
    torch.testing.assert_close(dist.log_prob(a), ref)
    with pytest.raises(ValueError, match="one integer per sample"):
        dist.log_prob(a.unsqueeze(-1))  # (B,1): the reference's broadcasting trap


def test_kl_is_zero_to_self_and_positive_otherwise():
    head = make_action_head(4, ActionHeadConfig(num_actions=2))
    d1, d2 = head(torch.randn(3, 4)), head(torch.randn(3, 4))
    assert torch.allclose(d1.kl(d1), torch.zeros(3), atol=1e-6)
    assert (d1.kl(d2) >= 0).all()
    c1, c2 = Categorical(torch.randn(3, 5)), Categorical(torch.randn(3, 5))
    ref = torch.distributions.kl_divergence(
        torch.distributions.Categorical(logits=c1.logits),
        torch.distributions.Categorical(logits=c2.logits),
    )
    torch.testing.assert_close(c1.kl(c2), ref)
