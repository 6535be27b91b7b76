"""`anymal-ros distill --teacher CKPT [--config config/distill.yaml] [--set key=value ...]`:
train the recurrent student from a teacher (DAgger + truncated BPTT).

``--from-store PATH`` distils offline from recorded episodes with teacher labels (see
``anymal-ros record --teacher``). ``--resume CKPT`` continues a run (its run directory
by default). The resulting checkpoint exports with ``anymal-ros export CKPT --out f.onnx``.
Data-parallel DAgger: ``torchrun --nproc-per-node N -m anymal_ros.cli distill ...``
(``env.num_envs`` is then the total over the N processes).
"""

from __future__ import annotations

import argparse

from anymal_ros.commands._args import add_overrides_option, learn_and_report, resume_run_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", required=True, help="teacher checkpoint (anymal-ros train)")
    parser.add_argument("--config", default=None, help="YAML with the DistillConfig sections")
    parser.add_argument(
        "--from-store",
        default=None,
        metavar="PATH",
        help="distil offline from an episode store with teacher labels",
    )
    parser.add_argument("--resume", default=None, metavar="PATH", help="checkpoint to continue")
    parser.add_argument(
        "--run-dir",
        default=None,
        metavar="DIR",
        help="logs and checkpoints (default: runner.log_dir/distill_<time>)",
    )
    add_overrides_option(parser, "config overrides, e.g. runner.iterations=10")


def run(args: argparse.Namespace) -> int:
    from anymal_ros.config import ConfigError
    from anymal_ros.rl.distill_runner import distill_runner, load_distill_config

    try:
        cfg = load_distill_config(args.config, args.overrides)
    except ConfigError as err:
        print(f"config error: {err}")
        return 2
    run_dir = resume_run_dir(args.run_dir, args.resume)
    runner = distill_runner(cfg, args.teacher, run_dir, args.resume, args.from_store)
    return learn_and_report(runner)
