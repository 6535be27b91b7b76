"""`anymal-ros export` from a real checkpoint (the demo is tested in test_demo.py)."""

import numpy as np
import pytest
import torch

from anymal_ros.cli import main
from anymal_ros.config import to_dict
from anymal_ros.config.models import ActionHeadConfig, StudentConfig, TeacherConfig
from anymal_ros.deploy.runtime import OnnxPolicy
from anymal_ros.models.checkpoint import save_checkpoint
from anymal_ros.models.student import Student
from anymal_ros.models.teacher import Teacher


def test_export_student_uses_stored_model_and_deploy_config(tmp_path):
    cfg = StudentConfig(proprio_dim=120, gru_hidden=32, action=ActionHeadConfig(num_actions=12))
    student = Student(cfg)
    deploy = {"actions": {"mode": "joint_residual", "scale": 0.25}, "control_period": 0.01,
              "joint_pos_lower": [-2.0] * 12, "joint_pos_upper": [2.0] * 12}  # fmt: skip
    ckpt = save_checkpoint(
        tmp_path / "run.pt",
        models={"student": student, "teacher": Teacher()},
        config={"student": to_dict(cfg), "deploy": deploy,
                "sim": {"physics": {"cone": "elliptic", "impratio": 10.0},
                        "randomization": {"com_offset": [-0.02, 0.02]}}},
    )  # fmt: skip
    out = tmp_path / "policy.onnx"
    assert main(["export", str(ckpt), "--out", str(out)]) == 0
    policy = OnnxPolicy(out)
    meta = policy.metadata
    assert meta.kind == "student" and meta.hidden_shape == (2, 1, 32)
    assert meta.action_type == "joint_residual"  # proprio 120: no CPG
    assert meta.action_scale == 0.25 and meta.control_period == 0.01
    assert meta.joint_pos_upper == (2.0,) * 12
    assert meta.extra["source_checkpoint"] == str(ckpt)
    assert meta.training_physics.cone == "elliptic" and meta.training_physics.impratio == 10.0
    assert meta.training_randomization.com_offset == (-0.02, 0.02)
    proprio, extero = np.ones(120, np.float32), np.zeros((4, 52), np.float32)
    with torch.no_grad():
        ref, _ = student.step_deterministic(
            torch.from_numpy(proprio)[None],
            torch.from_numpy(extero)[None],
            student.initial_hidden(1),
        )
    np.testing.assert_allclose(policy.step(proprio, extero), ref[0].numpy(), atol=1e-5)
    assert policy.belief() is not None  # the student's belief decoder travels with it
    plain = tmp_path / "plain.onnx"
    assert main(["export", str(ckpt), "--out", str(plain), "--no-belief"]) == 0
    assert OnnxPolicy(plain).belief_decoder is None


def test_export_teacher_with_defaults(tmp_path):
    ckpt = save_checkpoint(tmp_path / "t.pt", models={"teacher": Teacher()})
    out = tmp_path / "teacher.onnx"
    assert main(["export", str(ckpt), "--out", str(out)]) == 0  # no student -> teacher
    meta = OnnxPolicy(out).metadata
    assert meta.kind == "teacher" and meta.action_type == "cpg"  # 133 proprio -> CPG
    assert meta.control_period == 0.02 and meta.action_scale == 0.5
    assert meta.training_physics is None  # the checkpoint stored no simulator settings
    assert meta.training_randomization is None


def test_export_refuses_mismatched_checkpoint(tmp_path):
    ckpt = save_checkpoint(
        tmp_path / "bad.pt",
        models={"teacher": Teacher(TeacherConfig(policy_mlp=(64, 32)))},
        config={},  # the config that says (64, 32) was not stored: paper sizes are assumed
    )
    # The command exits with the loader's message (no traceback), naming the mismatch.
    with pytest.raises(SystemExit, match="policy_mlp.0.weight: checkpoint \\[64, 253\\]"):
        main(["export", str(ckpt), "--out", str(tmp_path / "x.onnx"), "--kind", "teacher"])
    with pytest.raises(SystemExit, match="no student in this checkpoint"):
        main(["export", str(ckpt), "--out", str(tmp_path / "x.onnx"), "--kind", "student"])
    bad_cfg = save_checkpoint(
        tmp_path / "cfg.pt", models={"teacher": Teacher()}, config={"deploy": {"scale": 1}}
    )
    with pytest.raises(SystemExit, match="deploy.scale: unknown key"):
        main(["export", str(bad_cfg), "--out", str(tmp_path / "y.onnx")])
