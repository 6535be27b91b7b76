"""`anymal-ros export CKPT --out FILE [--kind student|teacher]`: checkpoint -> ONNX policy.

The checkpoint follows the convention of ``anymal_ros.models.loading``: a model named after
the kind (``models["student"]`` or ``models["teacher"]``) and config sections read as follows:

* ``config["student"]`` / ``config["teacher"]``: the network's StudentConfig/TeacherConfig
  (paper sizes when absent);
* ``config["deploy"]``: a DeployConfig (the simulator's ``actions`` section, control period,
  joint limits), as trainers store it from ``QuadrupedVecEnv.deploy_config()``. When absent:
  the simulator's default action settings (CPG if proprio_dim == 133, else joint residuals),
  control period 0.02 s, no joint limits.
* ``config["sim"]["physics"]`` and ``["randomization"]``: the simulator physics and the spread
  of robots it trained in, stored in the file as ``training_physics`` and
  ``training_randomization`` so that evaluations simulate it as trained (absent: none stored).

Without ``--kind`` the student is exported if the checkpoint has one, else the teacher. A
student's file carries its belief decoder as a second graph (``anymal_ros.deploy.belief``;
the control graph is the same either way) unless ``--no-belief``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="checkpoint file (.pt)")
    parser.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    parser.add_argument("--kind", choices=("student", "teacher"), default=None)
    parser.add_argument(
        "--no-belief", action="store_true", help="student: leave the belief decoder out"
    )


def run(args: argparse.Namespace) -> int:
    from anymal_ros.deploy.export import export_student, export_teacher
    from anymal_ros.deploy.runtime import OnnxPolicy
    from anymal_ros.models import loading
    from anymal_ros.models.checkpoint import CheckpointError, load_checkpoint

    try:
        ckpt = load_checkpoint(args.checkpoint)
        kind = args.kind or ("student" if "student" in ckpt.get("models", {}) else "teacher")
        read = (
            loading.student_from_checkpoint
            if kind == "student"
            else loading.teacher_from_checkpoint
        )
        model = read(ckpt, args.checkpoint)
        deploy = loading.deploy_config_of(ckpt, args.checkpoint)
        physics = loading.physics_of(ckpt, args.checkpoint)
        randomization = loading.randomization_of(ckpt, args.checkpoint)
    except CheckpointError as err:
        raise SystemExit(str(err)) from err
    source = str(args.checkpoint)
    if kind == "student":
        path = export_student(model.eval(), args.out, deploy, belief=not args.no_belief,
                              physics=physics, randomization=randomization,
                              source_checkpoint=source)  # fmt: skip
    else:
        path = export_teacher(model.eval(), args.out, deploy, physics, randomization,
                              source_checkpoint=source)  # fmt: skip
    policy = OnnxPolicy(path)  # re-open: the file we wrote must load
    meta = policy.metadata
    belief = "" if kind == "teacher" else (
        ", belief decoder" if policy.belief_decoder is not None else ", no belief decoder"
    )  # fmt: skip
    print(
        f"wrote {path} ({kind}): proprio {meta.proprio_dim}, extero {list(meta.extero_shape)}, "
        f"action {meta.action_dim} ({meta.action_type}, {meta.action_head}, scale "
        f"{meta.action_scale}), control period {meta.control_period} s{belief}"
    )
    return 0
