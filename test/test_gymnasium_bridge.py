"""Gymnasium adapter: the vector-env interface, autoreset semantics, final observations."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from anymal_ros.bridges.gymnasium import GymnasiumVecEnv


def test_cartpole_interface_and_same_step_autoreset():
    env = GymnasiumVecEnv("CartPole-v1", 3, seed=1)
    assert (env.action_type, env.num_actions, env.obs_dim) == ("categorical", 2, 4)
    obs = env.reset()
    assert set(obs) == {"obs"} and obs["obs"].shape == (3, 4) and obs["obs"].dtype == torch.float32
    # A reference copy of env 0 (same seed) tells us what the true final observation is.
    seeds = np.random.default_rng(1).integers(0, 2**31 - 1, size=3)
    ref = gym.make("CartPole-v1")
    ref_obs, _ = ref.reset(seed=int(seeds[0]))
    np.testing.assert_allclose(obs["obs"][0].numpy(), ref_obs)
    ended = False
    for _ in range(200):
        action = torch.ones(3, dtype=torch.long)  # always push right: falls within ~10 steps
        obs, rew, term, trunc, info = env.step(action)
        ref_obs, _, ref_term, _, _ = ref.step(1)
        assert rew.shape == term.shape == trunc.shape == (3,)
        assert term.dtype == torch.bool
        if term[0]:
            # Final obs is the pre-reset state; the returned obs already starts a new episode.
            np.testing.assert_allclose(info["final_obs"]["obs"][0].numpy(), ref_obs, rtol=1e-6)
            assert ref_term
            assert not torch.allclose(obs["obs"][0], info["final_obs"]["obs"][0])
            assert obs["obs"][0].abs().max() <= 0.05  # CartPole resets inside [-0.05, 0.05]
            assert info["episode_length"][0].item() == info["episode_return"][0].item() > 0
            ended = True
            break
        torch.testing.assert_close(info["final_obs"]["obs"], obs["obs"])
    assert ended


def test_episode_accumulators_restart_after_an_episode():
    env = GymnasiumVecEnv("CartPole-v1", 2, seed=0)
    env.reset()
    lengths = []
    for _ in range(60):
        _, _, term, trunc, info = env.step(torch.zeros(2, dtype=torch.long))
        done = term | trunc
        lengths += info["episode_length"][done].tolist()
    assert len(lengths) >= 4 and all(5 <= n <= 30 for n in lengths)


def test_box_actions_are_clipped_and_truncation_is_reported():
    env = GymnasiumVecEnv("Pendulum-v1", 2, seed=0, env_kwargs={"max_episode_steps": 5})
    assert env.action_type == "gaussian" and env.num_actions == 1
    env.reset()
    for _ in range(5):
        _, rew, term, trunc, info = env.step(torch.full((2, 1), 100.0))  # far outside [-2, 2]
    assert trunc.all() and not term.any()
    assert info["episode_length"].tolist() == [5, 5]
    with pytest.raises(ValueError, match="action shape"):
        env.step(torch.zeros(2))


def test_exact_snapshot_round_trip_mid_episode():
    a = GymnasiumVecEnv("CartPole-v1", 2, seed=3)
    a.reset()
    for _ in range(7):
        a.step(torch.randint(0, 2, (2,)))
    b = GymnasiumVecEnv("CartPole-v1", 2, seed=99)
    obs_b = b.load_state_dict(a.state_dict())
    torch.testing.assert_close(obs_b["obs"], a._obs)
    for _ in range(40):
        act = torch.randint(0, 2, (2,))
        oa, ra, ta, _, ia = a.step(act)
        ob, rb, tb, _, ib = b.step(act)
        assert torch.equal(oa["obs"], ob["obs"]) and torch.equal(ta, tb)
        assert torch.equal(ia["episode_length"], ib["episode_length"])


def test_non_snapshot_env_resumes_from_seeded_resets():
    a = GymnasiumVecEnv("LunarLander-v3", 2, seed=3)
    assert not a.exact_resume
    a.reset()
    state = a.state_dict()
    assert state["envs"] is None
    o1 = GymnasiumVecEnv("LunarLander-v3", 2, seed=5).load_state_dict(state)
    o2 = GymnasiumVecEnv("LunarLander-v3", 2, seed=6).load_state_dict(state)
    torch.testing.assert_close(o1["obs"], o2["obs"])  # same seeds from the same saved generator
    with pytest.raises(ValueError, match="CartPole"):
        GymnasiumVecEnv("CartPole-v1", 2, seed=0).load_state_dict(state)
