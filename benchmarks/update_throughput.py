"""Samples per second of one PPO update of the paper-size teacher (no simulator involved).

    OMP_NUM_THREADS=1 python benchmarks/update_throughput.py --num-envs 1024 --steps 24 \
        --out benchmarks/results/update_throughput.json

Fills a rollout storage with random observations of the teacher's shapes (proprio 133,
extero 4 x 52, privileged 50), actions sampled from the policy, and runs ``PPO.update`` with
the paper configuration (5 epochs x 4 minibatches). Reports samples processed per second
(rollout samples x epochs / update time), the median over ``--repeats`` updates.
``--model mlp`` runs a same-width flat MLP actor-critic instead, for a machine without the
Teacher model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from anymal_ros.config.models import TeacherConfig  # noqa: E402
from anymal_ros.config.rl import PPOConfig  # noqa: E402
from anymal_ros.rl.ppo import PPO  # noqa: E402
from anymal_ros.rl.storage import RolloutStorage  # noqa: E402


def build(model: str) -> tuple[torch.nn.Module, dict[str, tuple[int, ...]], int]:
    tc = TeacherConfig()
    if model == "teacher":
        from anymal_ros.models.teacher import Teacher

        shapes = {
            "proprio": (tc.proprio_dim,),
            "extero": (tc.num_feet, tc.points_per_foot),
            "privileged": (tc.privileged_dim,),
        }
        return Teacher(tc), shapes, tc.action.num_actions
    from anymal_ros.models.mlp_policy import MLPActorCritic

    dim = tc.proprio_dim + tc.num_feet * tc.points_per_foot + tc.privileged_dim
    policy = MLPActorCritic(dim, tc.action, tc.policy_mlp, tc.value_mlp, activation="leaky_relu")
    return policy, {"obs": (dim,)}, tc.action.num_actions


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=["teacher", "mlp"], default="teacher")
    p.add_argument("--num-envs", type=int, default=1024)
    p.add_argument("--steps", type=int, default=24)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "update_throughput.json"))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    policy, shapes, num_actions = build(a.model)
    policy.to(a.device)
    cfg = PPOConfig()  # paper values: 5 epochs x 4 minibatches, lr 5e-4, adaptive
    T, N = a.steps, a.num_envs
    storage = RolloutStorage(T, N, shapes, (num_actions,), device=a.device)
    times = []
    for _ in range(a.repeats):
        storage.clear()
        with torch.no_grad():
            for _ in range(T):
                obs = {k: torch.randn(N, *s, device=a.device) for k, s in shapes.items()}
                dist = policy.distribution(obs)
                act = dist.sample()
                storage.add(obs, act, dist.log_prob(act), policy.value(obs),
                            torch.randn(N, device=a.device),
                            torch.rand(N, device=a.device) < 0.01,
                            torch.zeros(N, dtype=torch.bool, device=a.device))  # fmt: skip
            storage.compute_returns(torch.zeros(N, device=a.device), cfg.gamma, cfg.lam)
        ppo = PPO(policy, cfg)
        t0 = time.perf_counter()
        ppo.update(storage)
        times.append(time.perf_counter() - t0)
    samples = T * N * cfg.num_epochs
    median = statistics.median(times)
    result = {
        "benchmark": "one PPO update of the teacher",
        "model": a.model,
        "parameters": sum(p.numel() for p in policy.parameters()),
        "rollout": {"num_envs": N, "steps": T},
        "epochs": cfg.num_epochs,
        "minibatches": cfg.num_minibatches,
        "threads": a.threads,
        "device": a.device,
        "update_seconds": times,
        "samples_per_second": samples / median,
        "rollout_samples_per_second": T * N / median,
    }
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
