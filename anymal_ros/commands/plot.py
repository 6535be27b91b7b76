"""`anymal-ros plot RUN_DIR [--out FILE]`: learning curves of a training run as a PNG."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="training run directory (holds metrics.csv)")
    parser.add_argument("--out", help="PNG path (default: RUN_DIR/learning_curves.png)")


def run(args: argparse.Namespace) -> int:
    from anymal_ros.rl.logger import plot_run

    try:
        path = plot_run(args.run_dir, args.out)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}")
        return 2
    print(path)
    return 0
