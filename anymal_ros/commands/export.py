"""`anymal-ros export CKPT --out FILE [--kind student|teacher] [--speed-governor [key=value ...]]`:
checkpoint -> ONNX policy.

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

``--speed-governor`` writes a speed governor into a student's file
(:mod:`anymal_ros.obs.governor`; ``key=value`` items override the defaults of
:class:`~anymal_ros.config.sim.SpeedGovernorConfig`): evaluation and the policy node then run
it governed. A student distilled under a training-time governor (``commands.governor`` in
its simulator settings) carries that governor's settings unless ``--speed-governor`` says
otherwise or ``--no-speed-governor`` leaves it out: it learned the stairs at that speed. Given
an ONNX file instead of a checkpoint, the command copies it with its governor set
(``--speed-governor``) or removed (``--no-speed-governor``), graphs unchanged.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint", type=Path, help="checkpoint file (.pt), or a student's ONNX file to copy"
    )
    parser.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    parser.add_argument("--kind", choices=("student", "teacher"), default=None)
    parser.add_argument(
        "--no-belief", action="store_true", help="student: leave the belief decoder out"
    )
    governor = parser.add_mutually_exclusive_group()
    governor.add_argument(
        "--speed-governor",
        nargs="*",
        metavar="key=value",
        default=None,
        help="student: cap its speed where its belief shows steps (settings: spread_threshold "
        "m, slow_speed m/s, hold s, spread_percentile; defaults 0.12, 0.4, 1.0, 10)",
    )
    governor.add_argument(
        "--no-speed-governor",
        action="store_true",
        help="a student trained under a speed governor: export it without one; an ONNX "
        "file: copy it without its speed governor",
    )


def _speed_governor(items: list[str] | None):
    """The ``--speed-governor`` settings, or None when not asked for."""
    from anymal_ros.config import ConfigError, apply_overrides, from_dict
    from anymal_ros.config.sim import SpeedGovernorConfig

    if items is None:
        return None
    try:
        return from_dict(SpeedGovernorConfig, apply_overrides({}, items), "speed_governor")
    except ConfigError as err:
        raise SystemExit(f"--speed-governor: {err}") from err


def _copy_onnx(args: argparse.Namespace) -> int:
    from anymal_ros.deploy.export import set_speed_governor
    from anymal_ros.deploy.runtime import PolicyFileError

    if args.speed_governor is None and not args.no_speed_governor:
        raise SystemExit(
            f"{args.checkpoint} is an ONNX file: say --speed-governor or --no-speed-governor "
            "(exporting needs a checkpoint)"
        )
    governor = _speed_governor(args.speed_governor)
    try:
        path = set_speed_governor(args.checkpoint, args.out, governor)
    except (PolicyFileError, ValueError) as err:
        raise SystemExit(str(err)) from err
    print(f"wrote {path}: {args.checkpoint} with " + _describe(governor))
    return 0


def _describe(governor) -> str:
    if governor is None:
        return "no speed governor"
    feet = ""
    if governor.stance_threshold is not None:
        feet = f" or its stance feet stray {governor.stance_threshold} m"
    return (
        f"speed governor: {governor.slow_speed} m/s for {governor.hold} s after its belief's "
        f"spread exceeds {governor.spread_threshold} m{feet}"
    )


def run(args: argparse.Namespace) -> int:
    from anymal_ros.deploy.export import export_student, export_teacher
    from anymal_ros.deploy.runtime import OnnxPolicy
    from anymal_ros.models import loading
    from anymal_ros.models.checkpoint import CheckpointError, load_checkpoint

    if args.checkpoint.suffix == ".onnx":
        return _copy_onnx(args)
    governor = _speed_governor(args.speed_governor)
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
        trained = loading.training_governor_of(ckpt, args.checkpoint)
    except CheckpointError as err:
        raise SystemExit(str(err)) from err
    source = str(args.checkpoint)
    if kind == "student" and governor is None and not args.no_speed_governor:
        governor = trained  # it learned the stairs at that speed
        if trained is not None:
            print(f"note: {source} trained under a speed governor: the file carries its "
                  "settings (--no-speed-governor leaves it out)")  # fmt: skip
    if kind == "student":
        try:
            path = export_student(model.eval(), args.out, deploy, belief=not args.no_belief,
                                  physics=physics, randomization=randomization,
                                  speed_governor=governor, source_checkpoint=source)  # fmt: skip
        except ValueError as err:  # a governor without the belief it reads
            raise SystemExit(str(err)) from err
    else:
        if governor is not None:
            raise SystemExit("--speed-governor: a teacher has no belief to govern by")
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
        + ("" if kind == "teacher" else f", {_describe(meta.speed_governor)}")
    )
    return 0
