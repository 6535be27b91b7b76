"""The policy shipped in ``policies/``: it loads, describes itself, and walks in the simulator.

This is the file ``policy_node`` and ``make demo`` run by default, so these tests guard the
package's main job: a missing, stale or non-walking file fails here.
"""

import dataclasses

import numpy as np
import pytest

from anymal_ros.config import from_dict
from anymal_ros.config.sim import SimConfig
from anymal_ros.contract import CONTRACT_VERSION, JOINT_NAMES
from anymal_ros.deploy.runtime import OnnxPolicy
from anymal_ros.nodes.policy_node import bundled_policy_path
from anymal_ros.sim.env import QuadrupedVecEnv

POLICY = bundled_policy_path()


def test_bundled_student_loads_small_with_the_expected_metadata():
    assert POLICY.is_file(), f"no bundled policy at {POLICY}"
    assert POLICY.stat().st_size < 5 * 2**20
    assert (POLICY.parent / "MODEL_CARD.md").is_file()
    meta = OnnxPolicy(POLICY).metadata
    assert meta.kind == "student"
    assert meta.contract_version == CONTRACT_VERSION
    assert tuple(meta.joint_names) == JOINT_NAMES
    assert meta.action_type == "cpg" and meta.action_dim == 16
    assert meta.control_period == pytest.approx(0.02)
    assert meta.joint_pos_lower is not None and meta.joint_pos_upper is not None


def test_bundled_student_walks_forward_for_10s_without_falling():
    """Flat ground, domain randomisation and pushes off, 0.5 m/s forward: every robot stays
    up for 10 s (500 policy steps) and covers most of the commanded 5 m."""
    meta = OnnxPolicy(POLICY).metadata
    policy_actions = meta.action_config()
    num = 3
    cfg = from_dict(
        SimConfig,
        {
            "robot": {"description": meta.robot},  # the robot the policy was trained for
            "terrain": {"kind": "flat", "num_levels": 1, "num_columns": 1, "max_init_level": 0},
            "randomization": {"enabled": False},
            "termination": {"episode_length_s": 30.0},
        },
    )
    env = QuadrupedVecEnv(dataclasses.replace(cfg, actions=policy_actions), num, seed=0)
    env.set_commands(np.tile([0.5, 0.0, 0.0], (num, 1)), fixed=True)
    obs = env.reset(seed=0)
    policies = [OnnxPolicy(POLICY) for _ in range(num)]

    def base_xy():
        return env.data.qpos[env.index.qpos_base][:, :2].copy()

    start = base_xy()
    forward = []
    for _ in range(500):
        action = np.stack(
            [p.step(obs["proprio"][i], obs["extero"][i]) for i, p in enumerate(policies)]
        )
        obs, _, terminated, truncated, info = env.step(action)
        assert not terminated.any(), "a robot fell"
        assert not truncated.any()
        forward.append(info["base_lin_vel"][:, 0])
    travelled = np.linalg.norm(base_xy() - start, axis=1)
    assert np.all(travelled > 3.5), travelled
    assert np.mean(forward[250:]) == pytest.approx(0.5, abs=0.15)
