"""`anymal-ros average CHECKPOINT CHECKPOINT... --out FILE`: one checkpoint whose weights are
the mean of several of one run's (``anymal_ros.models.checkpoint.average_checkpoints``)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoints",
        nargs="+",
        help="two or more checkpoints of one run; the last one "
        "gives the config, counters and optimiser state",
    )
    parser.add_argument("--out", required=True, help="path of the averaged checkpoint")


def run(args: argparse.Namespace) -> int:
    from anymal_ros.models.checkpoint import (
        CheckpointError,
        average_checkpoints,
        write_checkpoint_payload,
    )

    try:
        payload = average_checkpoints(args.checkpoints)
    except CheckpointError as err:
        print(f"error: {err}")
        return 2
    path = write_checkpoint_payload(args.out, payload)
    iterations = [entry["iteration"] for entry in payload["extra"]["averaged_from"]]
    print(f"{path}: mean of {len(iterations)} checkpoints (iterations {iterations})")
    return 0
