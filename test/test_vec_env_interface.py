"""The vector-env interface as code: every simulator bridge implements the protocols of
anymal_ros.sim.interface, and what the runners drive implements those of anymal_ros.rl.vec_env.
The optional parts are implemented exactly where the runners rely on them."""

from __future__ import annotations

import pytest
import torch
from test_sim_env import QUIET, make_cfg

from anymal_ros.rl.vec_env import LearnerEnv, Resumable, TorchVecEnv
from anymal_ros.sim.interface import (
    CommandCaps,
    RandomStream,
    ShiftedHeights,
    TerrainCurriculum,
    VecEnv,
)


def _learner_view_steps(sim: VecEnv) -> None:
    """The torch view of ``sim`` is a resumable LearnerEnv whose step has the documented
    shapes."""
    env = TorchVecEnv(sim)
    assert isinstance(env, LearnerEnv) and isinstance(env, Resumable)
    obs = env.reset()
    assert {k: tuple(v.shape[1:]) for k, v in obs.items()} == env.obs_shapes
    obs, reward, terminated, truncated, info = env.step(torch.zeros(sim.num_envs, sim.action_dim))
    n = sim.num_envs
    assert reward.shape == terminated.shape == truncated.shape == (n,)
    assert terminated.dtype == truncated.dtype == torch.bool
    assert {"final_obs", "episode_return", "episode_length"} <= set(info)


def test_the_mujoco_env_implements_every_part():
    from anymal_ros.sim.env import QuadrupedVecEnv

    sim = QuadrupedVecEnv(make_cfg(QUIET), 2, seed=0)
    assert isinstance(sim, VecEnv)
    assert isinstance(sim, TerrainCurriculum) and isinstance(sim, ShiftedHeights)
    assert isinstance(sim, RandomStream)  # its generator is saved for --resume
    assert isinstance(sim, CommandCaps)  # DAgger's belief governor tells it its caps
    _learner_view_steps(sim)
    sim.close()


def test_the_multiprocess_env_implements_every_part():
    from anymal_ros.sim.multiproc import MultiProcessVecEnv

    sim = MultiProcessVecEnv(make_cfg(QUIET), 2, seed=0, num_workers=2)
    try:
        assert isinstance(sim, VecEnv)
        assert isinstance(sim, TerrainCurriculum) and isinstance(sim, ShiftedHeights)
        assert not isinstance(sim, RandomStream)  # each worker draws from its own generator
        assert isinstance(sim, CommandCaps)
        _learner_view_steps(sim)
    finally:
        sim.close()


@pytest.mark.ros
def test_the_ros_topic_bridge_is_a_vec_env_without_terrain_access():
    from anymal_ros.bridges.ros_topics import RosTopicVecEnv
    from anymal_ros.config.ros_env import RosEnvConfig

    sim = RosTopicVecEnv(make_cfg(), RosEnvConfig(), num_envs=2, seed=0)
    try:
        assert isinstance(sim, VecEnv)
        # Its robots live elsewhere: no levels to set, no terrain to sample at moved points.
        assert not isinstance(sim, TerrainCurriculum) and not isinstance(sim, ShiftedHeights)
        assert isinstance(sim, CommandCaps)  # it tracks and rewards the command here
        assert isinstance(sim, RandomStream)  # commands are drawn here
        view = TorchVecEnv(sim)
        assert isinstance(view, LearnerEnv) and isinstance(view, Resumable)
        assert view.obs_shapes == {k: tuple(v) for k, v in sim.observation_shapes.items()}
    finally:
        sim.close()


def test_the_gymnasium_adapter_is_a_resumable_learner_env():
    from anymal_ros.bridges.gymnasium import GymnasiumVecEnv

    env = GymnasiumVecEnv("CartPole-v1", 2, seed=0)
    try:
        assert isinstance(env, LearnerEnv) and isinstance(env, Resumable)
        assert not isinstance(env, VecEnv)  # not a quadruped: no proprio, no deploy section
        obs = env.reset()
        assert {k: tuple(v.shape[1:]) for k, v in obs.items()} == env.obs_shapes
    finally:
        env.close()


_TYPED_CHECK = """
from anymal_ros.bridges.gymnasium import GymnasiumVecEnv
from anymal_ros.bridges.ros_topics import RosTopicVecEnv
from anymal_ros.obs.height_noise import HeightLookup
from anymal_ros.rl.distill_sources import DAggerSource, DistillSource, EpisodeStoreSource
from anymal_ros.rl.vec_env import LearnerEnv, Resumable, TorchVecEnv
from anymal_ros.sim.env import QuadrupedVecEnv
from anymal_ros.sim.interface import (
    CommandCaps, RandomStream, ShiftedHeights, TerrainCurriculum, VecEnv,
)
from anymal_ros.sim.multiproc import MultiProcessVecEnv


def sources(online: DAggerSource, offline: EpisodeStoreSource) -> list[DistillSource]:
    return [online, offline]


def lookups(s: ShiftedHeights) -> HeightLookup:
    return s.heights_at_offsets


def check(
    a: QuadrupedVecEnv, b: MultiProcessVecEnv, c: RosTopicVecEnv, t: TorchVecEnv,
    g: GymnasiumVecEnv,
) -> tuple[list[VecEnv], list[TerrainCurriculum], list[ShiftedHeights], list[RandomStream],
           list[CommandCaps], list[LearnerEnv], list[Resumable]]:
    return [a, b, c], [a, b], [a, b], [a, c], [a, b, c], [t, g], [t, g]
"""


@pytest.mark.slow
def test_a_type_checker_agrees_with_the_signatures(tmp_path, monkeypatch):
    """isinstance sees only the names; mypy also checks the members' types and signatures
    (and that both distillation data sources are a DistillSource, and that a simulator's
    shifted-height look-up is what the height-noise view takes)."""
    api = pytest.importorskip("mypy.api", reason="mypy is not installed (pip install mypy)")
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    module = tmp_path / "typed_check.py"
    module.write_text(_TYPED_CHECK)
    monkeypatch.setenv("MYPYPATH", str(repo))  # this checkout's package, not an installed one
    # Errors are reported for this module only; the package is read for its types.
    out, err, status = api.run(
        [
            "--follow-imports=silent", "--ignore-missing-imports", "--no-error-summary",
            "--cache-dir", str(tmp_path / "cache"), str(module),
        ]
    )  # fmt: skip
    assert status == 0, out + err
