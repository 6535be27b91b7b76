"""PPO and PPG losses: shapes, signs, clipping, refusals, and what each phase trains."""

import pytest
import torch

from anymal_ros.config.models import ActionHeadConfig
from anymal_ros.config.rl import PPGConfig, PPOConfig
from anymal_ros.models.heads import Categorical, DiagGaussian
from anymal_ros.models.mlp_policy import MLPActorCritic
from anymal_ros.rl.ppg import PPG, aux_losses
from anymal_ros.rl.ppo import PPO, approx_kl, clipped_surrogate_loss, value_loss
from anymal_ros.rl.storage import RolloutStorage


def test_surrogate_gradient_raises_probability_of_good_actions():
    lp = torch.zeros(4, requires_grad=True)
    adv = torch.tensor([1.0, -1.0, 2.0, 0.0])
    loss, clip_frac = clipped_surrogate_loss(lp, torch.zeros(4), adv, 0.2)
    assert loss.shape == () and clip_frac.shape == ()
    loss.backward()
    # d loss / d logp = -A / B at ratio 1: descent raises logp where A > 0, lowers it where A < 0.
    torch.testing.assert_close(lp.grad, -adv / 4)


def test_surrogate_clips_beyond_the_trust_region():
    lp = torch.log(torch.tensor([1.5, 0.5])).requires_grad_()
    adv = torch.tensor([1.0, -1.0])  # both ratios already past the clip in the helpful direction
    loss, clip_frac = clipped_surrogate_loss(lp, torch.zeros(2), adv, 0.2)
    loss.backward()
    assert torch.all(lp.grad == 0)
    assert clip_frac.item() == 1.0
    torch.testing.assert_close(loss, -(1.2 * 1.0 + 0.8 * -1.0) / 2 * torch.ones(()))


def test_value_loss_clipping_is_pessimistic():
    v, old, ret = torch.tensor([2.0]), torch.tensor([0.0]), torch.tensor([3.0])
    plain = value_loss(v, old, ret, None)
    clipped = value_loss(v, old, ret, 0.5)
    assert plain.item() == pytest.approx(0.5)
    assert clipped.item() == pytest.approx(0.5 * 2.5**2)
    assert clipped >= plain


@pytest.mark.parametrize(
    "bad",
    [
        lambda: clipped_surrogate_loss(torch.zeros(8, 1), torch.zeros(8), torch.zeros(8), 0.2),
        lambda: clipped_surrogate_loss(torch.zeros(8), torch.zeros(8), torch.zeros(7), 0.2),
        lambda: value_loss(torch.zeros(8, 1), torch.zeros(8), torch.zeros(8), 0.2),
        lambda: approx_kl(torch.zeros(8), torch.zeros(8, 1)),
    ],
)
def test_misshaped_tensors_are_refused_not_broadcast(bad):
    with pytest.raises(ValueError, match="per-sample|batch size"):
        bad()


def test_approx_kl_is_non_negative_and_zero_at_identity():
    old = torch.randn(100)
    assert approx_kl(old, old).item() == 0.0
    assert approx_kl(old + 0.3 * torch.randn(100), old).item() > 0.0


def test_aux_losses_shapes_and_kl_sign():
    g = DiagGaussian(torch.zeros(5, 2), torch.ones(2))
    v, kl = aux_losses(torch.ones(5), torch.zeros(5), g, g)
    assert v.item() == pytest.approx(0.5) and kl.item() == pytest.approx(0.0, abs=1e-7)
    moved = DiagGaussian(torch.ones(5, 2), torch.ones(2))
    assert aux_losses(torch.ones(5), torch.zeros(5), moved, g)[1].item() > 0
    c = Categorical(torch.zeros(5, 3))
    with pytest.raises(ValueError):
        aux_losses(torch.ones(5, 1), torch.zeros(5), c, c)


def _rollout(policy, head: str, T=16, N=8, seed=0):
    torch.manual_seed(seed)
    action_shape = () if head == "categorical" else (2,)
    s = RolloutStorage(
        T, N, {"obs": (4,)}, action_shape,
        action_dtype=torch.int64 if head == "categorical" else torch.float32,
    )  # fmt: skip
    with torch.no_grad():
        for _ in range(T):
            obs = {"obs": torch.randn(N, 4)}
            d = policy.distribution(obs)
            a = d.sample()
            s.add(obs, a, d.log_prob(a), policy.value(obs), obs["obs"][:, 0],
                  torch.zeros(N, dtype=torch.bool), torch.zeros(N, dtype=torch.bool))  # fmt: skip
    s.compute_returns(torch.zeros(N), 0.9, 0.9)
    return s


@pytest.mark.parametrize("head", ["gaussian", "categorical"])
def test_ppo_update_runs_with_both_heads_and_improves_surrogate(head):
    torch.manual_seed(0)
    n = 2 if head == "gaussian" else 3
    policy = MLPActorCritic(4, ActionHeadConfig(type=head, num_actions=n))
    storage = _rollout(policy, head)
    ppo = PPO(policy, PPOConfig(num_epochs=4, num_minibatches=2, lr_schedule="constant"))
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    stats = ppo.update(storage)
    for key in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction"):
        assert torch.isfinite(torch.tensor(stats[key]))
    assert any(not torch.equal(before[k], v) for k, v in policy.state_dict().items())
    # The new policy is more likely to take the actions with positive advantage.
    flat = storage.flat()
    with torch.no_grad():
        new_lp = policy.distribution(flat.obs).log_prob(flat.actions)
    gain = ((new_lp - flat.log_probs) * flat.advantages).mean()
    assert gain.item() > 0


def test_adaptive_learning_rate_follows_kl():
    torch.manual_seed(0)
    policy = MLPActorCritic(4, ActionHeadConfig(type="gaussian", num_actions=2))
    storage = _rollout(policy, "gaussian")
    cfg = PPOConfig(num_epochs=1, num_minibatches=1, learning_rate=1e-3, desired_kl=1e-9)
    ppo = PPO(policy, cfg)
    ppo.update(storage)  # first minibatch: KL 0 < desired/2 -> lr up; then far above -> down
    assert ppo.optimizer.param_groups[0]["lr"] == pytest.approx(1.5e-3)
    storage2 = _rollout(policy, "gaussian", seed=1)
    ppo.cfg = PPOConfig(num_epochs=3, num_minibatches=2, learning_rate=1e-3, desired_kl=1e-9)
    ppo.lr.cfg = ppo.cfg
    ppo.update(storage2)
    assert ppo.optimizer.param_groups[0]["lr"] < 1.5e-3


def test_a_resume_takes_the_rate_settings_of_its_config():
    """A run resumed with a new constant rate or adaptive range gets it, not the saved rate."""
    policy = MLPActorCritic(4, ActionHeadConfig(type="gaussian", num_actions=2))
    saved = PPO(policy, PPOConfig(learning_rate=1e-5)).state_dict()
    constant = PPO(policy, PPOConfig(lr_schedule="constant", learning_rate=3e-6))
    constant.load_state_dict(saved)
    adaptive = PPO(policy, PPOConfig(learning_rate=1e-3, lr_range=(2e-5, 1e-2)))
    adaptive.load_state_dict(saved)
    same = PPO(policy, PPOConfig(learning_rate=1e-3))
    same.load_state_dict(saved)
    assert (constant.lr.lr, adaptive.lr.lr, same.lr.lr) == (3e-6, 2e-5, 1e-5)


def test_ppg_policy_phase_leaves_critic_alone_and_aux_phase_distils_value():
    torch.manual_seed(0)
    policy = MLPActorCritic(4, ActionHeadConfig(type="categorical", num_actions=3))
    ppg = PPG(
        policy,
        PPOConfig(num_minibatches=4, lr_schedule="constant", learning_rate=3e-3),
        PPGConfig(policy_iterations=2, policy_epochs=1, value_epochs=0, aux_epochs=0),
    )
    critic_before = [p.clone() for p in policy.critic_parameters()]
    s = _rollout(policy, "categorical")
    stats = ppg.update(s)
    assert "aux_value_loss" not in stats and ppg.phase_iteration == 1
    critic_after = list(policy.critic_parameters())
    assert all(torch.equal(a, b) for a, b in zip(critic_before, critic_after, strict=True))

    # Now a full phase with the paper's auxiliary epochs.
    ppg.cfg = PPGConfig(policy_iterations=2, aux_epochs=6, clone_coef=1.0)
    s2 = _rollout(policy, "categorical", seed=1)
    obs = {"obs": torch.cat([ppg.aux_obs[0]["obs"], s2.flat().obs["obs"]])}
    returns = torch.cat([ppg.aux_returns[0], s2.flat().returns.clone()])
    with torch.no_grad():
        pi_before = policy.distribution(obs)
    with torch.no_grad():
        aux_err_before = (policy.aux_value(obs) - returns).pow(2).mean()
    stats = ppg.update(s2)
    assert {"aux_value_loss", "aux_clone_kl", "aux_critic_loss"} <= set(stats)
    assert ppg.phase_iteration == 0 and ppg.aux_obs == []
    with torch.no_grad():
        aux_err_after = (policy.aux_value(obs) - returns).pow(2).mean()
        kl_moved = pi_before.kl(policy.distribution(obs)).mean()
    assert aux_err_after < 0.7 * aux_err_before
    assert kl_moved < 0.05  # the clone term kept the action distribution close


@pytest.mark.parametrize("algorithm", ["ppo", "ppg"])
def test_updates_run_on_the_quadruped_teacher(algorithm):
    from anymal_ros.config.models import TeacherConfig
    from anymal_ros.models.teacher import Teacher

    torch.manual_seed(0)
    cfg = TeacherConfig()
    teacher = Teacher(cfg)
    T, N = 4, 8
    shapes = {"proprio": (cfg.proprio_dim,), "extero": (4, 52), "privileged": (50,)}
    s = RolloutStorage(T, N, shapes, (cfg.action.num_actions,))
    with torch.no_grad():
        for _ in range(T):
            obs = {k: torch.randn(N, *v) for k, v in shapes.items()}
            d = teacher.distribution(obs)
            a = d.sample()
            s.add(obs, a, d.log_prob(a), teacher.value(obs), torch.randn(N),
                  torch.zeros(N, dtype=torch.bool), torch.zeros(N, dtype=torch.bool))  # fmt: skip
    s.compute_returns(torch.zeros(N), 0.996, 0.95)
    ppo_cfg = PPOConfig(num_epochs=2, num_minibatches=2)
    if algorithm == "ppo":
        stats = PPO(teacher, ppo_cfg).update(s)
    else:
        stats = PPG(teacher, ppo_cfg, PPGConfig(policy_iterations=1, aux_epochs=1)).update(s)
        assert "aux_clone_kl" in stats
    teacher.update_normalizers(s.obs)  # rollout-shaped [T, N, ...] observations
    assert teacher.proprio_norm.count.item() == T * N
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())
