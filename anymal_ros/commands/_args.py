"""Options and steps several sub-commands share: ``--set`` overrides (``distill``, ``eval``,
``record``), and the run directory and report of the training commands (``train``,
``distill``)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any


def _override(item: str) -> str:
    """One ``--set`` item, its syntax checked here so every command names a malformed one."""
    from anymal_ros.config import ConfigError, parse_override

    try:
        parse_override(item)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from err
    return item


def add_overrides_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--set key=value ...`` (repeatable) into ``args.overrides``."""
    parser.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        type=_override,
        default=[],
        metavar="key=value",
        help=help_text,
    )


def resume_run_dir(run_dir: str | None, resume: str | None) -> str | Path | None:
    """``--run-dir``; else, resuming, the run directory of the checkpoint
    (``RUN/checkpoints/x.pt`` -> ``RUN``), so that a resumed run keeps writing where it was."""
    if run_dir is None and resume is not None:
        ckpt = Path(resume).resolve()
        return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    return run_dir


def learn_and_report(runner: Any) -> int:
    """Train to the end and print the run directory and the summary (JSON); under
    ``torchrun`` rank 0 prints."""
    import json

    d = runner.dist
    if d.is_main:
        print(f"run directory: {runner.run_dir}")
        if d.active:
            print(runner.distributed_summary())
    summary = runner.learn()  # a failing rank says which and how to resume (rl.loop)
    d.close()
    if d.is_main:
        print(json.dumps(summary, indent=2))
    if d.active:
        # Every checkpoint is written and the process group is gone, yet twice a rank has
        # aborted in the interpreter's teardown after this point ("terminate called without
        # an active exception", torchrun then failing the run): a rank leaves without it.
        # Its simulator workers end on the closed pipe, as they do when a trainer dies.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0
