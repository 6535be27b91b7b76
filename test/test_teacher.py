"""Teacher: interface shapes, normalisation inside the model, separate actor/critic."""

import pytest
import torch
from model_helpers import fit_normalizers, random_obs

from anymal_ros.config.models import ActionHeadConfig, TeacherConfig
from anymal_ros.models.teacher import Teacher


def test_interface_shapes_are_per_sample():
    teacher = Teacher()
    fit_normalizers(teacher)
    obs = random_obs(7)
    dist = teacher.distribution(obs)
    assert dist.batch_shape == (7,)
    a = dist.sample()
    assert a.shape == (7, 16)  # default CPG actions: 4 + 12
    assert dist.log_prob(a).shape == (7,)  # never [7, 7] or [7, 1]
    assert teacher.value(obs).shape == (7,)
    assert teacher.aux_value(obs).shape == (7,)
    assert teacher.act_deterministic(obs).shape == (7, 16)
    assert teacher.latent(obs).shape == (7, 120)


def test_paper_sizes():
    teacher = Teacher()
    assert [m.out_features for m in teacher.height_encoder.mlp if hasattr(m, "out_features")] == [
        80,
        60,
        24,
    ]
    assert teacher.policy_mlp[0].in_features == 133 + 96 + 24
    assert [m.out_features for m in teacher.policy_mlp if hasattr(m, "out_features")] == [
        256,
        160,
        128,
    ]


def test_latent_is_extero_then_privileged_in_foot_order():
    teacher = Teacher()
    obs = random_obs(3)
    latent = teacher.latent(obs)
    _, extero_n, priv_n = teacher.normalized(obs)
    # foot 2 (LH) alone through the encoder's MLP lands in columns 48:72
    torch.testing.assert_close(latent[:, 48:72], teacher.height_encoder.mlp(extero_n[:, 2]))
    torch.testing.assert_close(latent[:, 96:], teacher.encoders.privileged(priv_n))


def test_normalisation_is_inside_the_model():
    teacher = Teacher()
    obs = random_obs(4)
    before = teacher.value(obs)
    fit_normalizers(teacher)
    after = teacher.value(obs)
    assert not torch.allclose(before, after)
    assert "proprio_norm.mean" in teacher.state_dict()
    assert float(teacher.state_dict()["privileged_norm.count"]) == 256


def test_actor_and_critic_parameters_are_disjoint_and_complete():
    teacher = Teacher()
    actor = {id(p) for p in teacher.actor_parameters()}
    critic = {id(p) for p in teacher.critic_parameters()}
    assert not actor & critic
    assert actor | critic == {id(p) for p in teacher.parameters()}
    assert id(teacher.aux_value_head.weight) in actor


def test_categorical_teacher_and_configurable_sizes():
    cfg = TeacherConfig(
        proprio_dim=10,
        height_encoder=(16,),
        height_latent=4,
        privileged_encoder=(8,),
        privileged_latent=3,
        policy_mlp=(32, 16),
        value_mlp=(8,),
        activation="elu",
        action=ActionHeadConfig(type="categorical", num_actions=5),
    )
    teacher = Teacher(cfg)
    obs = random_obs(6, proprio_dim=10)
    dist = teacher.distribution(obs)
    assert dist.batch_shape == (6,)
    assert teacher.act_deterministic(obs).shape == (6,)
    assert teacher.latent(obs).shape == (6, 4 * 4 + 3)


def test_bad_observations_name_the_key():
    teacher = Teacher()
    obs = random_obs(2)
    with pytest.raises(KeyError, match="privileged"):
        teacher.distribution({k: v for k, v in obs.items() if k != "privileged"})
    with pytest.raises(ValueError, match="extero"):
        teacher.distribution({**obs, "extero": obs["extero"][:, :3]})
