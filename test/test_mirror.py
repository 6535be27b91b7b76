"""Left-right mirror images of observations and actions, checked against the real MuJoCo
robot: a robot started in the mirror image of another's state and given the mirror image of
its actions must observe the mirror image of what the other observes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_helpers import SMALL_TEACHER, random_obs
from sim_helpers import SMALL_TERRAIN

from anymal_ros.config import from_dict
from anymal_ros.config.rl import TrainConfig
from anymal_ros.config.sim import SimConfig
from anymal_ros.contract import LEGS, PRIVILEGED_LAYOUT, height_sample_offsets, proprio_layout
from anymal_ros.models.teacher import Teacher
from anymal_ros.obs.mirror import (
    ObsActionMirror,
    action_mirror,
    extero_mirror,
    layout_mirror,
)
from anymal_ros.rl.logger import plot_run
from anymal_ros.rl.ppo import symmetry_loss
from anymal_ros.sim.env import QuadrupedVecEnv

LEG_SWAP = [LEGS.index(m) for m in ("RF", "LF", "RH", "LH")]


def _all_mirrors():
    return {
        "proprio cpg": layout_mirror(proprio_layout(True)),
        "proprio residual": layout_mirror(proprio_layout(False)),
        "privileged": layout_mirror(PRIVILEGED_LAYOUT),
        "extero": extero_mirror(),
        "cpg actions": action_mirror("cpg"),
        "residual actions": action_mirror("joint_residual"),
    }


@pytest.mark.parametrize("name", list(_all_mirrors()))
def test_every_mirror_undoes_itself_and_moves_something(name):
    mirror = _all_mirrors()[name]
    x = torch.randn(5, mirror.dim)
    torch.testing.assert_close(mirror(mirror(x)), x, rtol=0, atol=0)
    assert not torch.equal(mirror(x), x)


def test_height_samples_mirror_to_the_points_across_the_sagittal_plane():
    offsets = height_sample_offsets()  # [52, 2] around one foot
    mirror = extero_mirror()
    feet = np.broadcast_to(offsets, (4, *offsets.shape)).copy()
    feet[..., 0] += np.arange(4)[:, None]  # tell the feet apart
    mirrored = feet.reshape(-1, 2)[mirror.index].reshape(feet.shape)
    # The sample a mirrored foot reads is its mirror foot's sample, reflected in y.
    np.testing.assert_allclose(mirrored[..., 0], feet[LEG_SWAP][..., 0], atol=1e-6)
    np.testing.assert_allclose(mirrored[..., 1], -feet[LEG_SWAP][..., 1], atol=1e-6)


def test_a_term_without_a_rule_and_world_frame_forces_are_refused():
    from anymal_ros.contract import ObsLayout, ObsTerm

    with pytest.raises(KeyError, match="base_height"):
        layout_mirror(ObsLayout((ObsTerm("gravity", 3), ObsTerm("base_height", 1))))
    with pytest.raises(ValueError, match="privileged_frame: yaw"):
        ObsActionMirror.for_quadruped("cpg", "world")
    with pytest.raises(ValueError, match="privileged_frame: yaw"):
        from_dict(TrainConfig, _train_cfg(privileged_frame="world"))
    with pytest.raises(ValueError, match="algorithm ppo"):
        from_dict(TrainConfig, {**_train_cfg(), "algorithm": "ppg"})


def _train_cfg(privileged_frame: str = "yaw") -> dict:
    return {
        "ppo": {"symmetry_coef": 1.0},
        "env": {"kind": "quadruped", "sim": {"privileged_frame": privileged_frame}},
        "model": {"type": "teacher"},
    }


def _mirror_robot(env: QuadrupedVecEnv, src: int, dst: int) -> None:
    """Put robot ``dst`` in the mirror image of robot ``src``'s state (about its own spot)."""
    d, idx = env.data, env.index
    joints = action_mirror("joint_residual")
    q = d.qpos[idx.qpos_base[src]].copy()
    d.qpos[idx.qpos_base[dst, 2]] = q[2]
    w, x, y, z = q[3:7]
    d.qpos[idx.qpos_base[dst, 3:7]] = [w, -x, y, -z]
    v = d.qvel[idx.qvel_base[src]].copy()  # world linear, local angular velocity
    d.qvel[idx.qvel_base[dst]] = v * [1, -1, 1, -1, 1, -1]
    for arr, rows in ((d.qpos, idx.qpos_joint), (d.qvel, idx.qvel_joint)):
        arr[rows[dst]] = arr[rows[src]][joints.index] * joints.sign
    env.decoder.phase[dst] = env.decoder.phase[src][LEG_SWAP]
    env.decoder.frequency[dst] = env.decoder.frequency[src][LEG_SWAP]


def test_a_mirrored_robot_observes_the_mirror_image_in_the_simulator():
    cfg = from_dict(
        SimConfig,
        {
            "terrain": {**SMALL_TERRAIN, "kind": "flat"},
            "randomization": {"enabled": False, "latency_steps": [0, 0]},
            "robot": {"init_joint_noise": 0.0},
            "privileged_frame": "yaw",
        },
    )
    env = QuadrupedVecEnv(cfg, 2, seed=3)
    env.reset()
    mirror = ObsActionMirror.for_quadruped("cpg", "yaw")
    env.commands.set(np.array([[0.6, 0.3, 0.5], [0.6, -0.3, -0.5]]))
    _mirror_robot(env, 0, 1)
    rng = np.random.default_rng(0)
    for _ in range(25):  # 0.5 s: the feet land, the histories fill with mirrored steps
        a = rng.normal(0.0, 0.5, env.action_dim).astype(np.float32)
        actions = np.stack([a, mirror.action(torch.from_numpy(a)).numpy()])
        obs, *_ = env.step(actions)
    obs = {k: torch.from_numpy(np.asarray(v)) for k, v in obs.items()}
    mirrored = mirror.observations({k: v[:1] for k, v in obs.items()})
    assert obs["privileged"][0, PRIVILEGED_LAYOUT.slices()["foot_contact"]].sum() >= 1
    for key in ("proprio", "privileged"):
        gap = (mirrored[key][0] - obs[key][1]).abs().max()
        unmirrored = (obs[key][0] - obs[key][1]).abs().max()
        assert gap < 1e-3 * unmirrored, (key, float(gap), float(unmirrored))


def test_symmetry_loss_is_zero_for_a_mirror_symmetric_policy_only():
    mirror = ObsActionMirror.for_quadruped("cpg", "yaw")
    teacher = Teacher()
    obs = random_obs(8)
    mean = teacher.distribution(obs).mode
    assert symmetry_loss(teacher, obs, mean, mirror) > 0

    class Symmetrised(torch.nn.Module):
        """The mean of a policy and its mirror image: symmetric by construction."""

        def distribution(self, o):
            here = teacher.distribution(o).mode
            there = mirror.action(teacher.distribution(mirror.observations(o)).mode)
            return type("D", (), {"mode": 0.5 * (here + there)})()

    sym = Symmetrised()
    assert symmetry_loss(sym, obs, sym.distribution(obs).mode, mirror) < 1e-10


def _tiny_teacher_run(run_dir, symmetry_coef: float):
    """A real (tiny) PPO run on the MuJoCo robot with CPG actions, from a policy that steps
    its left front leg faster than its right."""
    from anymal_ros.rl.runner import train_runner

    cfg = from_dict(
        TrainConfig,
        {
            "env": {
                "kind": "quadruped",
                "num_envs": 4,
                "sim": {"terrain": {**SMALL_TERRAIN, "kind": "flat"}, "privileged_frame": "yaw"},
            },
            "model": {"type": "teacher", "teacher": SMALL_TEACHER},
            "ppo": {
                "num_steps": 8,
                "num_epochs": 4,
                "num_minibatches": 1,
                "symmetry_coef": symmetry_coef,
                "learning_rate": 2e-3,
                "lr_schedule": "constant",
            },
            "runner": {"progress": False, "tensorboard": False, "checkpoint_interval": 0},
        },
    )
    runner = train_runner(cfg, run_dir=run_dir)
    with torch.no_grad():
        runner.policy.action_head.mean.bias[LEGS.index("LF")] += 0.3  # LF's CPG frequency
    runner.learn(iterations=6)
    return runner


def test_a_teacher_trained_with_the_symmetry_loss_is_more_symmetric(tmp_path):
    import csv

    mirror = ObsActionMirror.for_quadruped("cpg", "yaw")
    with_loss = _tiny_teacher_run(tmp_path / "with", 10.0)
    without = _tiny_teacher_run(tmp_path / "without", 0.0)
    logged = [
        float(r["symmetry_loss"]) for r in csv.DictReader(open(tmp_path / "with/metrics.csv"))
    ]
    assert len(logged) == 6 and all(np.isfinite(logged))
    assert plot_run(tmp_path / "with").is_file()  # with a symmetry-loss panel
    obs = with_loss.obs  # the same states for both policies
    with torch.no_grad():
        gaps = [
            float(symmetry_loss(run.policy, obs, run.policy.distribution(obs).mode, mirror))
            for run in (with_loss, without)
        ]
    assert gaps[0] < 0.5 * gaps[1], gaps
