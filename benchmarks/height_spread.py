"""How far apart the heights a policy sees lie on each field of a scorecard: what a speed
governor, one that slows the robot where its height samples show steps, would have to tell
apart (flat ground from the stairs, with clean and with noisy heights).

Robots walk one episode on each field of the card with the given policy. At every control step
each robot's height samples (52 points around each of its four feet, as the policy sees them:
noisy where the mode is) give one spread: the largest over the feet of the 90th minus the 10th
percentile of a foot's samples, missing points left out; with ``--belief``, the heights a
student's belief decoder reconstructs give another. Reported per field, mode and source: the
spread's percentiles over all robot-steps.

    .venv/bin/python benchmarks/height_spread.py \\
        policies/training/student_speed_limit_206.7M/student.onnx \\
        --belief --out benchmarks/results/height_spread.json

Told at most 0.4 m/s forward, teacher and student fall 9-28 times less often on the card's
stairs (policies/MODEL_CARD.md, "Told to walk slower"): this measures whether the heights
alone can say where to slow down.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anymal_ros.commands._policy_sim import eval_policy  # noqa: E402
from anymal_ros.config import load_config  # noqa: E402
from anymal_ros.config.noise import MISSING_HEIGHT_FILL  # noqa: E402
from anymal_ros.config.scorecard import ScorecardConfig  # noqa: E402
from anymal_ros.eval.evaluate import run_field  # noqa: E402
from anymal_ros.eval.scorecard import field_sim  # noqa: E402

PERCENTILES = (1, 5, 50, 95, 99)


def spread(heights: np.ndarray) -> np.ndarray:
    """``[N]`` m: per robot, the largest over its feet of the 90th minus the 10th percentile
    of a foot's height samples ``heights [N, feet, points]``, missing points left out. Per
    foot: its samples share one reference (and, noisy, one offset), which a spread across
    feet would count as terrain."""
    heights = np.array(heights, dtype=np.float64)
    heights[np.isclose(heights, MISSING_HEIGHT_FILL)] = np.nan
    low, high = np.nanpercentile(heights, [10, 90], axis=2)
    return np.nanmax(high - low, axis=1)


class SpreadRecorder:
    """A batched policy that notes the spread of the heights it is given (and, ``belief``,
    of those its belief decoder reconstructs from them), then acts as the policy it wraps."""

    def __init__(self, policy, belief: bool) -> None:
        self.policy = policy
        self.head, self.kind, self.num_envs = policy.head, policy.kind, policy.num_envs
        self.belief = belief
        self.spreads: dict[str, list[np.ndarray]] = {"sensed": [], "believed": []}

    def reset(self, env_ids: np.ndarray) -> None:
        self.policy.reset(env_ids)

    def act(self, obs) -> np.ndarray:
        self.spreads["sensed"].append(spread(obs["extero"]))
        action = self.policy.act(obs)
        if self.belief:
            self.spreads["believed"].append(spread(self.policy.belief()[0]))
        return action


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("policy", help="checkpoint (.pt) or ONNX file")
    parser.add_argument("--spec", default="config/scorecard_edition2.yaml")
    parser.add_argument("--robots", type=int, default=32)
    parser.add_argument("--seed", type=int, default=201)
    parser.add_argument("--out", default="benchmarks/results/height_spread.json")
    parser.add_argument("--belief", action="store_true",
                        help="also the spread of the student's believed heights")  # fmt: skip
    args = parser.parse_args(argv)
    spec = load_config(ScorecardConfig, args.spec)
    policy = eval_policy(args.policy, None, [])
    sources = ("sensed", "believed") if args.belief else ("sensed",)
    fields = []
    for row in spec.rows:
        sim = field_sim(policy.sim, spec, row)
        for mode in row.noise:
            recorder = SpreadRecorder(policy.make(args.robots), args.belief)
            run_field(sim, row.terrain, recorder, mode, args.seed, args.robots)
            for source in sources:
                spreads = np.concatenate(recorder.spreads[source])
                spreads = spreads[np.isfinite(spreads)]
                cuts = np.percentile(spreads, PERCENTILES)
                named = dict(zip((f"p{p}" for p in PERCENTILES), cuts, strict=True))
                fields.append({"row": row.name, "noise": mode, "heights": source,
                               "robot_steps": int(spreads.size),
                               **{k: round(float(c), 4) for k, c in named.items()}})  # fmt: skip
                line = " ".join(f"{k} {c:.3f}" for k, c in named.items())
                print(f"{row.name:20s} {mode:6s} {source:8s} spread [m]: {line}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"policy": args.policy, "spec": args.spec, "robots": args.robots,
              "seed": args.seed, "fields": fields}  # fmt: skip
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
