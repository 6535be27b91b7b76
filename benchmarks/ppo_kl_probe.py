"""How far one PPO update moves a trained policy: KL(old || new) against learning rate.

    OMP_NUM_THREADS=1 python benchmarks/ppo_kl_probe.py \
        --checkpoint policies/training/anymal_c_teacher.pt \
        --config config/teacher_anymal_c.yaml --out benchmarks/results/ppo_kl_probe.json

Resumes the checkpoint's run (its simulator, robots' terrain levels and optimiser state), collects
one rollout, and from the same weights and Adam state runs the run's update (epochs x
minibatches, gradient clipping) at each ``--lrs`` with the learning rate held fixed, then
reports the KL of the whole rollout's actions between the policy before and after. Two
controls separate the gradient's direction from its noise: the same number of steps on the
whole rollout at once (no minibatch noise), and a fresh Adam state. The adaptive schedule keeps
the per-minibatch KL near ``desired_kl`` (0.01); where even the floor of its range overshoots
it, the run is limited by how sensitive the policy is, not by its learning rate.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from anymal_ros.config import load_config  # noqa: E402
from anymal_ros.config.rl import TrainConfig  # noqa: E402
from anymal_ros.rl.ppo import approx_kl, normalize_advantages  # noqa: E402
from anymal_ros.rl.runner import train_runner  # noqa: E402


def update_kl(runner, weights, adam, lr: float, minibatches: int, epochs: int, fresh: bool):
    """KL of the rollout's actions after ``epochs`` x ``minibatches`` Adam steps at ``lr``."""
    policy, algo = runner.policy, runner.algorithm
    policy.load_state_dict(weights)
    algo.optimizer.load_state_dict(adam)
    if fresh:
        algo.optimizer.state.clear()
    for group in algo.optimizer.param_groups:
        group["lr"] = lr
    minibatch_kl = []
    for _ in range(epochs):
        for mb in runner.storage.minibatches(minibatches):
            loss, stats = algo.loss(mb)
            minibatch_kl.append(float(stats["approx_kl"]))
            algo.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(algo.params, runner.cfg.ppo.max_grad_norm)
            algo.optimizer.step()
    flat = runner.storage.flat()
    with torch.no_grad():
        log_probs = policy.distribution(flat.obs).log_prob(flat.actions)
    return float(approx_kl(log_probs, flat.log_probs)), minibatch_kl


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--config", required=True, help="the run's training config")
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-5, 3e-5, 1e-4, 3e-4])
    p.add_argument("--workers", type=int, default=1, help="simulator processes")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ppo_kl_probe.json"))
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(TrainConfig, args.config, [f"env.num_workers={args.workers}"])
    runner = train_runner(cfg, run_dir=tempfile.mkdtemp(prefix="kl_probe_"),
                          resume=args.checkpoint)  # fmt: skip
    try:
        runner.collect_rollout()
    finally:
        runner.env.close()
    normalize_advantages(runner.storage)
    weights = copy.deepcopy(runner.policy.state_dict())
    adam = copy.deepcopy(runner.algorithm.optimizer.state_dict())
    ppo = cfg.ppo
    steps = ppo.num_epochs * ppo.num_minibatches
    cases = [(f"lr {lr:g}", lr, ppo.num_minibatches, ppo.num_epochs, False) for lr in args.lrs]
    low = min(args.lrs)
    cases += [
        (f"lr {low:g}, whole rollout per step", low, 1, steps, False),
        (f"lr {low:g}, fresh Adam state", low, ppo.num_minibatches, ppo.num_epochs, True),
    ]
    rows = []
    for label, lr, minibatches, epochs, fresh in cases:
        kl, per_minibatch = update_kl(runner, weights, adam, lr, minibatches, epochs, fresh)
        rows.append({"case": label, "lr": lr, "minibatches": minibatches, "epochs": epochs,
                     "fresh_adam": fresh, "kl_after_update": kl,
                     "minibatch_kl_mean": sum(per_minibatch) / len(per_minibatch)})  # fmt: skip
        print(
            f"{label:40s} KL after the update {kl:.4f} (per-minibatch mean "
            f"{rows[-1]['minibatch_kl_mean']:.4f})",
            flush=True,
        )
    result = {
        "checkpoint": args.checkpoint, "config": args.config, "iteration": runner.iteration,
        "rollout_samples": runner.steps_per_iteration, "desired_kl": ppo.desired_kl,
        "lr_range": list(ppo.lr_range), "rows": rows,
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
