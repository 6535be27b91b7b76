"""`anymal-ros export CKPT --out FILE [--kind student|teacher]`: checkpoint -> ONNX policy.

The checkpoint (``anymal_ros.models.checkpoint`` format) must hold a model named after the
kind (``models["student"]`` or ``models["teacher"]``). Its stored config is read as follows:

* ``config["student"]`` / ``config["teacher"]``: the network's StudentConfig/TeacherConfig
  (paper sizes when absent);
* ``config["deploy"]``: a DeployConfig (the simulator's ``actions`` section, control period,
  joint limits), as trainers store it from ``QuadrupedVecEnv.deploy_config()``. When absent:
  the simulator's default action settings (CPG if proprio_dim == 133, else joint residuals),
  control period 0.02 s, no joint limits.

Without ``--kind`` the student is exported if the checkpoint has one, else the teacher.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="checkpoint file (.pt)")
    parser.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    parser.add_argument("--kind", choices=("student", "teacher"), default=None)


def run(args: argparse.Namespace) -> int:
    from anymal_ros.config import ConfigError, from_dict
    from anymal_ros.config.deploy import DeployConfig
    from anymal_ros.config.models import StudentConfig, TeacherConfig
    from anymal_ros.deploy.export import export_student, export_teacher
    from anymal_ros.deploy.runtime import OnnxPolicy
    from anymal_ros.models.checkpoint import load_checkpoint, load_model_state
    from anymal_ros.models.student import Student
    from anymal_ros.models.teacher import Teacher

    ckpt = load_checkpoint(args.checkpoint)
    models = ckpt.get("models", {})
    kind = args.kind or ("student" if "student" in models else "teacher")
    config = ckpt.get("config", {}) or {}
    try:
        if kind == "student":
            model = Student(from_dict(StudentConfig, config.get("student"), "student"))
        else:
            model = Teacher(from_dict(TeacherConfig, config.get("teacher"), "teacher"))
        deploy = from_dict(DeployConfig, config.get("deploy"), "deploy")
    except ConfigError as err:
        raise SystemExit(f"{args.checkpoint}: stored config is invalid: {err}") from err
    load_model_state(model, ckpt, kind)
    exporter = export_student if kind == "student" else export_teacher
    path = exporter(model.eval(), args.out, deploy, source_checkpoint=str(args.checkpoint))
    meta = OnnxPolicy(path).metadata  # re-open: the file we wrote must load
    print(
        f"wrote {path} ({kind}): proprio {meta.proprio_dim}, extero {list(meta.extero_shape)}, "
        f"action {meta.action_dim} ({meta.action_type}, {meta.action_head}, scale "
        f"{meta.action_scale}), control period {meta.control_period} s"
    )
    return 0
