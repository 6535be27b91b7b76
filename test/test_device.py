"""The learner's device (anymal_ros.rl.device): ``runner.device`` resolved in one place with
clear errors, and the packed host-to-device copy of a step -- the GPU code path, exercised on
the CPU (these tests never need a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anymal_ros.config import from_dict
from anymal_ros.config.models import ActionHeadConfig
from anymal_ros.config.rl import TrainConfig
from anymal_ros.rl.device import HostToDevice, resolve_device
from anymal_ros.rl.runner import train_runner

needs_no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")


def test_cpu_resolves_and_bad_names_are_named():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="'gpu0' is not a torch device"):
        resolve_device("gpu0")
    with pytest.raises(ValueError, match="'cpu', 'cuda' or 'cuda:N'"):
        resolve_device("meta")


@needs_no_gpu
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_fails_clearly(name):
    with pytest.raises(RuntimeError, match=rf"runner.device is '{name}' but no CUDA GPU.*cpu"):
        resolve_device(name)


@needs_no_gpu
def test_a_trainer_asked_for_cuda_without_one_fails_before_building_anything(tmp_path):
    cfg = from_dict(TrainConfig, {"runner": {"device": "cuda", "log_dir": str(tmp_path)}})
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        train_runner(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_packed_copy_keeps_values_shapes_and_dtypes():
    rng = np.random.default_rng(0)
    items = {
        "proprio": rng.normal(size=(3, 5)).astype(np.float32),
        "extero": torch.randn(3, 4, 6),
        "reward": rng.normal(size=3),  # float64 from the simulator
        "terminated": np.array([True, False, True]),
        "length": np.array([7, 1000, 123456], dtype=np.int64),
    }
    dtypes = {"terminated": torch.bool, "length": torch.int64}
    plain = HostToDevice("cpu")
    packed = HostToDevice("cpu", packed=True)
    assert not plain.packed and packed.packed and not packed.pin
    a, b = plain(items, dtypes), packed(items, dtypes)
    assert a.keys() == b.keys() == items.keys()
    for k in items:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert torch.equal(a[k], b[k]), k
    assert b["length"].tolist() == [7, 1000, 123456] and b["reward"].dtype == torch.float32
    # The staging buffer is reused: a second, smaller step does not see the first one's data.
    again = packed({"reward": np.zeros(2)})
    assert torch.equal(again["reward"], torch.zeros(2))
    assert torch.equal(b["reward"], a["reward"])  # ... nor overwrites what it handed out


def _cartpole(tmp_path, name):
    cfg = from_dict(
        TrainConfig,
        {
            # Episodes cut at 15 steps: time-outs bootstrap from moved final observations.
            "env": {"id": "CartPole-v1", "num_envs": 4, "kwargs": {"max_episode_steps": 15}},
            "ppo": {"num_steps": 32, "num_epochs": 2},
            "runner": {"seed": 1, "progress": False, "tensorboard": False},
        },
    )
    return train_runner(cfg, tmp_path / name)


def test_runner_trains_the_same_through_the_packed_copy(tmp_path):
    # The GPU path of collect_rollout (one packed copy per step, final observations moved
    # separately) on the CPU must learn exactly what the plain path learns.
    plain, packed = _cartpole(tmp_path, "a"), _cartpole(tmp_path, "b")
    packed._to_learner = HostToDevice("cpu", packed=True)
    plain.learn(iterations=3)
    packed.learn(iterations=3)
    assert bool((plain.storage.truncated & ~plain.storage.terminated).any())
    theirs = packed.policy.state_dict()
    for k, x in plain.policy.state_dict().items():
        assert torch.equal(x, theirs[k]), k


def test_dagger_collects_the_same_through_the_packed_copy():
    # DAgger's GPU path: observations and noisy heights travel together in one copy.
    from distill_helpers import small_pair
    from test_sim_env import QUIET, make_cfg

    from anymal_ros.config.distill import DAggerConfig
    from anymal_ros.config.noise import HeightNoiseConfig
    from anymal_ros.rl.dagger import DAggerCollector
    from anymal_ros.rl.distill_storage import DistillRollout
    from anymal_ros.sim.env import QuadrupedVecEnv

    teacher, student = small_pair(ActionHeadConfig(num_actions=12), proprio_dim=120)
    rollouts = []
    for packed in (False, True):
        env = QuadrupedVecEnv(make_cfg(QUIET), 3, seed=2)
        collector = DAggerCollector(
            env, student, teacher, HeightNoiseConfig(), DAggerConfig(num_steps=6), seed=0
        )
        if packed:
            collector._to_device = HostToDevice("cpu", packed=True)
        rollout = DistillRollout(
            6, 3, 120, (4, 52), 50, 12, (student.cfg.gru_layers, student.cfg.gru_hidden)
        )
        collector.collect(rollout, beta=0.5)
        rollouts.append(rollout)
    for name in ("proprio", "extero", "clean_extero", "privileged", "teacher_target"):
        assert torch.equal(getattr(rollouts[0], name), getattr(rollouts[1], name)), name
    assert not torch.equal(rollouts[0].extero, rollouts[0].clean_extero)  # noise was applied
