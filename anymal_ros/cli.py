"""`anymal-ros` command line: one sub-command per job, each in its own module.

Each sub-command module keeps its heavy imports inside `run()`, so that `anymal-ros --help` is
instant and a robot with only numpy and onnxruntime can still run the deployment commands.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). Each module provides `add_arguments(parser)` and `run(args)`.
COMMANDS: dict[str, tuple[str, str]] = {
    "export": ("anymal_ros.commands.export", "export a checkpoint's student/teacher to ONNX"),
    "demo": ("anymal_ros.commands.demo", "closed loop: sim_node + policy_node, tracking plot"),
    "sim-render": ("anymal_ros.commands.sim_render", "record the MuJoCo simulator to MP4/GIF/PNG"),
    "train": ("anymal_ros.commands.train", "train a policy with PPO or PPG"),
    "plot": ("anymal_ros.commands.plot", "plot a training run's learning curves"),
    "average": ("anymal_ros.commands.average", "average the weights of a run's checkpoints"),
    "record": ("anymal_ros.commands.record", "record a policy's episodes into an episode store"),
    "eval": ("anymal_ros.commands.eval", "evaluate a policy over terrains and noise modes"),
    "step-sweep": ("anymal_ros.commands.step_sweep", "falls per 10 min against stairs step height"),
    "scorecard": ("anymal_ros.commands.scorecard", "a policy against a release's targets"),
    "falls": ("anymal_ros.commands.falls", "who fell in a scorecard or eval: commands, physics"),
    "distill": ("anymal_ros.commands.distill", "distil the recurrent student from a teacher"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="anymal-ros", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(_module=module_name)
        importlib.import_module(module_name).add_arguments(p)
    args = parser.parse_args(argv)
    module = importlib.import_module(args._module)
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
