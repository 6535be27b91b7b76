"""`anymal-ros record POLICY --episodes N --out STORE`: record a policy's episodes in the
simulator into an episode store (see anymal_ros.eval.record for the fields).

POLICY is a teacher or student checkpoint or an ONNX file. ``--teacher`` fills the
``teacher_action`` labels (a teacher policy labels itself). ``--epsilon START [END]``:
exploration, linear over the recorded episodes (epsilon-greedy for categorical heads, added
Gaussian noise of that std for continuous ones). ``--noise MODE`` corrupts the heights the
policy perceives (the store keeps the clean ones).
"""

from __future__ import annotations

import argparse

from anymal_ros.commands._args import add_overrides_option


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("policy", help="checkpoint (.pt) or ONNX file (.onnx)")
    parser.add_argument("--out", required=True, help="episode store (created or appended)")
    parser.add_argument("--episodes", type=int, required=True, help="episodes to record")
    parser.add_argument("--teacher", default=None, help="teacher checkpoint/ONNX for the labels")
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--epsilon", type=float, nargs="+", default=[0.0], metavar="EPS",
                        help="exploration: START [END]")  # fmt: skip
    parser.add_argument("--noise", default="none", choices=("none", "nominal", "offset", "noisy"))
    parser.add_argument("--sim-config", default=None, help="SimConfig YAML (default: checkpoint's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-fsync", action="store_true", help="faster, process-crash safe only")
    add_overrides_option(parser, "SimConfig overrides, e.g. actions.mode=joint")


def run(args: argparse.Namespace) -> int:
    import json

    from anymal_ros.commands._policy_sim import check_policy_fits, resolve_sim_config
    from anymal_ros.eval.evaluate import noise_config
    from anymal_ros.eval.policies import load_policy
    from anymal_ros.eval.record import record_episodes
    from anymal_ros.replay.store import EpisodeStore, quadruped_fields
    from anymal_ros.sim.env import QuadrupedVecEnv

    if len(args.epsilon) > 2:
        raise SystemExit("--epsilon takes START or START END")
    eps = (args.epsilon[0], args.epsilon[-1])
    sim = resolve_sim_config(args.policy, args.sim_config, args.overrides)
    env = QuadrupedVecEnv(sim, args.num_envs, seed=args.seed)
    policy = load_policy(args.policy, args.num_envs)
    check_policy_fits(policy, env)
    teacher = load_policy(args.teacher, args.num_envs) if args.teacher else None
    if teacher is not None:
        if teacher.kind != "teacher":
            raise SystemExit(f"--teacher {args.teacher}: is a {teacher.kind}, not a teacher")
        check_policy_fits(teacher, env)
    store = EpisodeStore.create(
        args.out,
        quadruped_fields(env.proprio_dim, env.action_dim),
        env.max_episode_steps,
        exist_ok=True,
        fsync=not args.no_fsync,
    )
    try:
        stats = record_episodes(
            env, policy, store, args.episodes, teacher, noise_config(args.noise), eps, args.seed
        )
    finally:
        store.close()
    print(json.dumps({"store": str(args.out), **stats}, indent=2))
    return 0
