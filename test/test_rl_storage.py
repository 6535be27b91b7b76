"""Rollout storage and GAE: hand-computed values, time-outs vs terminations, no graphs."""

import pytest
import torch

from anymal_ros.rl.storage import RolloutStorage, compute_gae


def _gae(rewards, values, last, term, trunc, tvals, gamma, lam):
    t = torch.tensor
    return compute_gae(
        t(rewards).unsqueeze(1),
        t(values).unsqueeze(1),
        t([last]),
        t(term).unsqueeze(1),
        t(trunc).unsqueeze(1),
        t(tvals).unsqueeze(1),
        gamma,
        lam,
    )


def test_gae_matches_hand_computation_with_termination_and_timeout():
    g, lam = 0.9, 0.5
    r = [1.0, 2.0, 3.0, 4.0]
    v = [0.5, 1.0, 1.5, 2.0]
    # step 1 times out (final obs worth 10), step 2 terminates, step 3 continues (last value 3).
    term = [False, False, True, False]
    trunc = [False, True, False, False]
    tv = [0.0, 10.0, 0.0, 0.0]
    adv, ret = _gae(r, v, 3.0, term, trunc, tv, g, lam)
    d3 = 4.0 + g * 3.0 - 2.0  # ordinary step bootstrapping from the last value
    a3 = d3
    d2 = 3.0 + 0.0 - 1.5  # termination: no future, no recursion
    a2 = d2
    d1 = 2.0 + g * 10.0 - 1.0  # time-out: bootstrap from the final observation's value
    a1 = d1  # ... but the next stored step is another episode: no recursion
    d0 = 1.0 + g * 1.0 - 0.5
    a0 = d0 + g * lam * a1
    expected = torch.tensor([a0, a1, a2, a3])
    torch.testing.assert_close(adv[:, 0], expected)
    torch.testing.assert_close(ret[:, 0], expected + torch.tensor(v))


def test_gae_terminated_and_truncated_together_is_a_termination():
    adv, _ = _gae([1.0], [0.5], 7.0, [True], [True], [100.0], 0.99, 0.95)
    torch.testing.assert_close(adv[:, 0], torch.tensor([0.5]))


def test_gae_lambda_one_is_discounted_return_minus_value():
    r = [1.0, 1.0, 1.0]
    adv, ret = _gae(r, [0.0, 0.0, 0.0], 2.0, [False] * 3, [False] * 3, [0.0] * 3, 0.5, 1.0)
    torch.testing.assert_close(ret[:, 0], torch.tensor([1.75 + 0.25, 1.5 + 0.5, 1.0 + 1.0]))


def test_gae_refuses_mismatched_shapes():
    T, N = 3, 2
    z = torch.zeros(T, N)
    b = torch.zeros(T, N, dtype=torch.bool)
    with pytest.raises(ValueError, match="values"):
        compute_gae(z, torch.zeros(T, N, 1), torch.zeros(N), b, b, z, 0.9, 0.9)
    with pytest.raises(ValueError, match="last_values"):
        compute_gae(z, z, torch.zeros(N, 1), b, b, z, 0.9, 0.9)


def _fill(storage, policy_out_requires_grad=True):
    lin = torch.nn.Linear(3, 1)
    for _ in range(storage.T):
        obs = torch.randn(storage.N, 3)
        v = lin(obs).squeeze(-1)  # carries a graph: storage must not keep it
        assert v.requires_grad == policy_out_requires_grad
        storage.add(
            {"obs": obs},
            torch.randn(storage.N, 2, requires_grad=True) * 1.0,
            v * 0.1,
            v,
            torch.ones(storage.N),
            torch.zeros(storage.N, dtype=torch.bool),
            torch.zeros(storage.N, dtype=torch.bool),
            truncation_values=v,
            episode_start=torch.zeros(storage.N, dtype=torch.bool),
            hidden=torch.randn(storage.N, 2, 5, requires_grad=True) * 1.0
            if storage.hidden_shape
            else None,
        )


def test_storage_keeps_no_autograd_graph():
    s = RolloutStorage(8, 4, {"obs": (3,)}, (2,), hidden_shape=(2, 5), chunk_len=4)
    _fill(s)
    s.compute_returns(torch.zeros(4, requires_grad=True) * 1.0, 0.99, 0.95)
    tensors = [*s.obs.values(), s.actions, s.log_probs, s.values, s.rewards, s.hidden]
    tensors += [s.truncation_values, s.advantages, s.returns, s.terminated, s.episode_start]
    for x in tensors:
        assert x.requires_grad is False and x.grad_fn is None


def test_storage_refuses_misshaped_inputs_and_overflow():
    s = RolloutStorage(1, 4, {"obs": (3,)}, ())
    ok = dict(
        obs={"obs": torch.zeros(4, 3)},
        actions=torch.zeros(4, dtype=torch.long),
        log_probs=torch.zeros(4),
        values=torch.zeros(4),
        rewards=torch.zeros(4),
        terminated=torch.zeros(4, dtype=torch.bool),
        truncated=torch.zeros(4, dtype=torch.bool),
    )
    with pytest.raises(ValueError, match="values"):
        s.add(**{**ok, "values": torch.zeros(4, 1)})
    with pytest.raises(ValueError, match="obs"):
        s.add(**{**ok, "obs": {"obs": torch.zeros(4, 2)}})
    s.add(**ok)
    with pytest.raises(RuntimeError, match="full"):
        s.add(**ok)


def test_minibatches_cover_every_sample_once():
    s = RolloutStorage(5, 3, {"obs": (1,)}, ())
    for t in range(5):
        s.add(
            {"obs": (torch.arange(3) + 10 * t).float().unsqueeze(1)},
            torch.zeros(3, dtype=torch.long),
            torch.zeros(3),
            torch.zeros(3),
            torch.zeros(3),
            torch.zeros(3, dtype=torch.bool),
            torch.zeros(3, dtype=torch.bool),
        )
    s.compute_returns(torch.zeros(3), 0.9, 0.9)
    seen = torch.cat([mb.obs["obs"][:, 0] for mb in s.minibatches(4)])
    assert sorted(seen.tolist()) == sorted(
        (torch.arange(3) + 10 * torch.arange(5)[:, None]).flatten().float().tolist()
    )


def test_recurrent_chunks_are_contiguous_time_with_their_hidden_state():
    T, N, L = 6, 2, 3
    s = RolloutStorage(T, N, {"obs": (1,)}, (), hidden_shape=(1,), chunk_len=L)
    for t in range(T):
        code = torch.tensor([100.0 * n + t for n in range(N)])  # env n, time t
        s.add(
            {"obs": code.unsqueeze(1)},
            torch.zeros(N, dtype=torch.long),
            torch.zeros(N),
            torch.zeros(N),
            torch.zeros(N),
            torch.zeros(N, dtype=torch.bool),
            torch.zeros(N, dtype=torch.bool),
            episode_start=torch.tensor([t == 4, False]),
            hidden=code.unsqueeze(1) if t % L == 0 else None,
        )
    s.compute_returns(torch.zeros(N), 0.9, 0.9)
    rows = 0
    for mb in s.sequence_minibatches(2):
        x = mb.obs["obs"][..., 0]  # [L, B]
        assert x.shape[0] == L
        assert torch.equal(x[1:] - x[:-1], torch.ones(L - 1, x.shape[1]))  # contiguous time
        assert torch.equal(mb.hidden[:, 0], x[0])  # hidden state stored at the chunk start
        assert torch.equal(mb.episode_start, (x == 4))
        rows += x.shape[1]
    assert rows == (T // L) * N
