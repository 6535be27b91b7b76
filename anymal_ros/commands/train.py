"""`anymal-ros train ppo|ppg --config FILE [key=value ...] [--resume PATH] [--run-dir DIR]`.

Overrides may also follow ``--set``, as in ``distill`` and ``eval``. Data-parallel over N
processes (or machines): ``torchrun --nproc-per-node N -m anymal_ros.cli train ppo ...``
(``env.num_envs`` and ``env.num_workers`` are then totals; see ``anymal_ros.rl.distributed``)."""

from __future__ import annotations

import argparse

from anymal_ros.commands._args import learn_and_report, resume_run_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("algorithm", choices=["ppo", "ppg"], help="training algorithm")
    parser.add_argument("--config", help="YAML file with the TrainConfig sections")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides, e.g. runner.iterations=200 ppo.learning_rate=3e-4 (bare or "
        "after --set, as in distill and eval)",
    )
    parser.add_argument("--resume", metavar="PATH", help="checkpoint to continue from")
    parser.add_argument(
        "--reshard",
        action="store_true",
        help="with --resume: continue a PPO checkpoint written by another number of torchrun "
        "ranks (same env.num_envs; each robot keeps its terrain level; new random streams, so "
        "not bit-exact)",
    )
    parser.add_argument(
        "--run-dir",
        metavar="DIR",
        help="where logs and checkpoints go (default: runner.log_dir/<algo>_<env>_<time>; "
        "with --resume: the checkpoint's run directory)",
    )
    # argparse matches consecutive positionals in one go, so `ppo --config f.yaml a=1` would
    # leave `a=1` unmatched; moving the overrides next to the algorithm lets them go anywhere.
    parse = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):  # type: ignore[no-untyped-def]
        if args is not None:
            args = _overrides_after_algorithm(list(args))
        return parse(args, namespace)

    parser.parse_known_args = parse_known_args  # type: ignore[method-assign]


def _overrides_after_algorithm(tokens: list[str]) -> list[str]:
    # `--set` only marks overrides (the other commands need it); here they are positional.
    tokens = [t for t in tokens if t != "--set"]
    first = next((i for i, t in enumerate(tokens) if t in ("ppo", "ppg")), None)
    if first is None:
        return tokens
    overrides = [t for t in tokens if "=" in t and not t.startswith("-")]
    rest = [
        t for i, t in enumerate(tokens) if i != first and not ("=" in t and not t.startswith("-"))
    ]
    return [tokens[first], *overrides, *rest]


def run(args: argparse.Namespace) -> int:
    from anymal_ros.config import ConfigError, load_config
    from anymal_ros.config.rl import TrainConfig
    from anymal_ros.rl.runner import train_runner

    try:
        cfg = load_config(
            TrainConfig, args.config, [*args.overrides, f"algorithm={args.algorithm}"]
        )
    except ConfigError as err:
        print(f"config error: {err}")
        return 2
    run_dir = resume_run_dir(args.run_dir, args.resume)
    if args.reshard and args.resume is None:
        print("--reshard continues a checkpoint: give it with --resume")
        return 2
    return learn_and_report(train_runner(cfg, run_dir, args.resume, args.reshard))
