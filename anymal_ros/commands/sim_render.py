"""`anymal-ros sim-render`: record the built-in simulator to MP4, GIF or PNG (offscreen)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", required=True, help="output file: .mp4, .gif or .png (a strip of frames)"
    )
    parser.add_argument("--config", default=None, help="SimConfig YAML (default: built-in)")
    parser.add_argument("--steps", type=int, default=250, help="control steps to record")
    parser.add_argument("--terrain", default=None, help="terrain type, e.g. stairs_up")
    parser.add_argument("--level", type=int, default=None, help="terrain difficulty level")
    parser.add_argument("--command", type=float, nargs=3, default=None, metavar=("VX", "VY", "WZ"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, nargs=2, default=(640, 480), metavar=("W", "H"))
    parser.add_argument("--every", type=int, default=2, help="keep one frame every N steps")
    parser.add_argument("override", nargs="*", help="config overrides key.path=value")


def run(args: argparse.Namespace) -> int:
    from anymal_ros.config import load_config
    from anymal_ros.config.sim import SimConfig
    from anymal_ros.sim.env import QuadrupedVecEnv
    from anymal_ros.sim.render import record_episode, save_frames

    cfg = load_config(SimConfig, args.config, args.override)
    env = QuadrupedVecEnv(cfg, 1, seed=args.seed)
    if args.terrain is not None:
        env.set_terrain_types(args.terrain)
    if args.level is not None:
        env.set_terrain_levels(args.level)
    if args.command is not None:
        env.set_commands(args.command)
    frames = record_episode(env, None, args.steps, width=args.size[0], height=args.size[1],
                            every=args.every)  # fmt: skip
    path = save_frames(frames, args.out, fps=1.0 / (env.control_dt * args.every))
    print(f"wrote {len(frames)} frames to {path}")
    return 0
