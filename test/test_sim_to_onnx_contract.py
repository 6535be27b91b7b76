"""The exported file carries the simulator's action contract: a policy exported with the
simulator's deploy settings decodes actions on the robot exactly as it did in training."""

import numpy as np
import pytest

from anymal_ros.config import from_dict
from anymal_ros.config.models import ActionHeadConfig, StudentConfig
from anymal_ros.config.sim import SimConfig
from anymal_ros.deploy.export import export_student
from anymal_ros.deploy.metadata import PREFIX, PolicyFileError, PolicyMetadata
from anymal_ros.deploy.runtime import OnnxPolicy
from anymal_ros.models.student import Student
from anymal_ros.sim.env import QuadrupedVecEnv


@pytest.mark.parametrize("mode", ["cpg", "joint_residual"])
def test_metadata_decoder_matches_the_simulators(tmp_path, mode):
    cfg = from_dict(
        SimConfig,
        {
            "terrain": {"kind": "flat", "num_levels": 1, "num_columns": 1, "max_init_level": 0},
            "actions": {"mode": mode, "scale": 0.3, "base_frequency": 1.6, "swing_height": 0.1},
        },
    )
    env = QuadrupedVecEnv(cfg, num_envs=1, seed=0)
    student = Student(
        StudentConfig(
            proprio_dim=env.proprio_dim, action=ActionHeadConfig(num_actions=env.action_dim)
        )
    )
    path = export_student(student, tmp_path / "p.onnx", env.deploy_config())
    meta = OnnxPolicy(path).metadata
    assert meta.action_config() == cfg.actions
    assert meta.control_period == pytest.approx(env.control_dt)
    robot_decoder = meta.action_decoder()
    rng = np.random.default_rng(0)
    for _ in range(30):  # CPG phases advance identically step after step
        a = rng.normal(size=(1, env.action_dim)).astype(np.float32)
        np.testing.assert_allclose(robot_decoder.decode(a), env.decoder.decode(a), atol=1e-12)


def test_inconsistent_action_metadata_is_refused(tmp_path):
    path = export_student(Student(), tmp_path / "p.onnx")
    props = OnnxPolicy(path).metadata.to_props()
    wrong_dim = dict(props, **{PREFIX + "action_type": "joint_residual"})  # 16 outputs
    with pytest.raises(PolicyFileError, match="joint_residual actions have 12 values, got 16"):
        PolicyMetadata.from_props(wrong_dim)
    missing = dict(props, **{PREFIX + "action_params": '{"clip": 10.0}'})
    with pytest.raises(PolicyFileError, match="action_params: expected keys"):
        PolicyMetadata.from_props(missing)
