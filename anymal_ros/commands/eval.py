"""`anymal-ros eval POLICY [--compare TEACHER]`: evaluate over terrains and noise modes.

Prints a markdown table and writes ``eval.md`` and ``eval.json`` to ``--out``: mean return,
tracking reward, velocity-tracking error (m/s), falls per minute and distance travelled per
terrain x noise mode (see anymal_ros.eval.evaluate). ``--compare`` evaluates a second
policy (usually the teacher) on the same cells, seeds and commands, side by side.
``--render FILE.mp4`` records robot 0 of the first cell. For a student with its belief
decoder (a checkpoint, or an ONNX file exported with one) the table also shows the belief's
reconstruction errors, and ``--belief-plot FILE.png`` draws robot 0's true, fed and believed
heights on the first stairs cell with noise. ``--gait-plot FILE.png`` draws robot 0's gait in
the first cell: its footfall diagram, how high each sole lifts, and its base height over the
robot's stance (a crouch, a shuffle or a stumble shows at a glance).

``--sim-to-sim [YAML]`` evaluates the policy twice instead: in its training physics and in a
second physics setting of the same robot (``config/sim_to_sim.yaml`` by default: another
integrator and time step, elliptic cones, softer contacts, more joint damping and friction),
side by side with the ratio of the tracking errors: how much the policy depends on our
simulator's choices.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from anymal_ros.commands._args import add_overrides_option

#: The second physics setting of ``--sim-to-sim`` (installed beside the other configs).
SIM_TO_SIM = Path(__file__).resolve().parents[2] / "config" / "sim_to_sim.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("policy", help="checkpoint (.pt) or ONNX file (.onnx)")
    parser.add_argument("--compare", default=None, help="second policy, shown side by side")
    parser.add_argument("--terrains", nargs="+", default=["flat", "rough", "stairs_up"])
    parser.add_argument("--noise", nargs="+", default=["none", "noisy"],
                        help="noise modes: none nominal offset noisy")  # fmt: skip
    parser.add_argument("--level", type=int, default=0, help="terrain difficulty level")
    parser.add_argument("--num-envs", type=int, default=8, help="robots (episodes) per cell")
    parser.add_argument("--episode-length", type=float, default=None, help="seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="eval", help="directory for eval.md and eval.json")
    parser.add_argument(
        "--render",
        default=None,
        help="robot 0 of the first cell: video (.mp4/.gif) or a strip of frames (.png)",
    )
    parser.add_argument(
        "--belief-plot",
        default=None,
        help="student with a belief decoder: PNG of robot 0's true, noisy and believed heights",
    )
    parser.add_argument(
        "--gait-plot",
        default=None,
        help="robot 0 of the first cell: PNG of its footfalls, foot lift and base height",
    )
    parser.add_argument("--sim-config", default=None, help="SimConfig YAML (default: checkpoint's)")
    parser.add_argument(
        "--sim-to-sim",
        nargs="?",
        const=str(SIM_TO_SIM),
        default=None,
        metavar="YAML",
        help="also run in a second physics setting (default config/sim_to_sim.yaml)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_overrides_option(parser, "SimConfig overrides, e.g. actions.mode=joint")


def run(args: argparse.Namespace) -> int:
    from anymal_ros.commands._policy_sim import (
        action_differences,
        check_policy_fits,
        resolve_sim_config,
        trained_actions,
    )
    from anymal_ros.eval.belief import belief_table
    from anymal_ros.eval.evaluate import (
        EvalSettings,
        column_names,
        evaluate,
        markdown_table,
        write_results,
    )
    from anymal_ros.eval.policies import load_policy
    from anymal_ros.sim.env import QuadrupedVecEnv

    try:
        settings = EvalSettings(
            terrains=tuple(args.terrains),
            noise_modes=tuple(args.noise),
            level=args.level,
            num_envs=args.num_envs,
            seed=args.seed,
            episode_length_s=args.episode_length,
        )
    except ValueError as err:
        raise SystemExit(str(err)) from err
    sim = resolve_sim_config(args.policy, args.sim_config, args.overrides)
    probe = QuadrupedVecEnv(sim, 1, seed=args.seed)
    unknown = [t for t in settings.terrains if t not in probe.terrain.column_types]
    if unknown:
        raise SystemExit(f"terrains {unknown} not in this simulator's {probe.terrain.column_types}")
    # Both policies' actions are decoded with the simulator's settings (taken from the first
    # policy): a policy trained with other CPG settings would be judged on a gait it never saw.
    for role, path in (("policy", args.policy), ("--compare", args.compare)):
        trained = trained_actions(path) if path else None
        diff = action_differences(trained, sim.actions) if trained is not None else []
        if diff and role == "--compare":
            raise SystemExit(
                f"--compare {path} was trained with other action settings than the simulator "
                f"uses ({'; '.join(diff)}); evaluate the two separately"
            )
        if diff:  # the first policy differs only through --set / --sim-config: asked for
            print(f"note: {path} runs with other action settings than it was trained with: "
                  f"{'; '.join(diff)}")  # fmt: skip

    def factory(path):
        def make(n):
            policy = load_policy(path, n)
            check_policy_fits(policy, probe)
            return policy

        return make

    progress = not args.quiet
    if args.compare and args.sim_to_sim:
        raise SystemExit("--compare and --sim-to-sim each fill the second column: choose one")
    rows = evaluate(
        factory(args.policy), sim, settings, args.render, progress,
        belief_plot=args.belief_plot, gait_plot=args.gait_plot,
    )  # fmt: skip
    compare, names = None, None
    if args.compare:
        compare = evaluate(factory(args.compare), sim, settings, None, progress)
        names = column_names(args.policy, args.compare)
    if args.sim_to_sim:
        second = second_physics(sim, args.sim_to_sim)
        compare = evaluate(factory(args.policy), second, settings, None, progress)
        names = ("training physics", "second physics")
        for row, other in zip(rows, compare, strict=True):
            ratio = other["tracking_error"] / max(row["tracking_error"], 1e-9)
            other["tracking_error_ratio"] = ratio
    print(markdown_table(rows, compare, names))
    beliefs = belief_table(rows)
    if beliefs:
        print("\nBelief reconstruction (RMS errors):\n" + beliefs)
    if args.sim_to_sim:
        for other in compare:
            print(f"{other['terrain']} / {other['noise']}: tracking error x"
                  f"{other['tracking_error_ratio']:.2f} in the second physics")  # fmt: skip
    md, js = write_results(
        args.out, rows, compare,
        {"policy": str(args.policy), "compare_policy": args.compare, "columns": names,
         "settings": settings.__dict__ | {"terrains": list(settings.terrains),
                                          "noise_modes": list(settings.noise_modes)}},
    )  # fmt: skip
    print(f"wrote {md} and {js}")
    return 0


def second_physics(sim, path: str):
    """``sim`` in the physics setting of a sim-to-sim YAML (errors as a clean exit)."""
    from anymal_ros.config import ConfigError
    from anymal_ros.eval.evaluate import second_physics as merged

    if not Path(path).is_file():
        raise SystemExit(f"--sim-to-sim: no such file {path}")
    try:
        return merged(sim, path)
    except ConfigError as err:
        raise SystemExit(f"--sim-to-sim: {err}") from err
