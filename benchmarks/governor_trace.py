"""What a speed governor does over time: a governed student's robots on one field of the
scorecard, step by step, the spread of the heights its belief reconstructs against the
governor's threshold (and, with a stance cue, the stray of its standing feet against its own),
and the planar speed the operator commands, the policy is given and the robot walks.

A figure of ``--show`` robots (those that fell first), and in JSON, over every robot's first
episode: how long the robots take to come down to the capped speed once the governor caps
(from above the cap + 0.1 m/s to below it), and how many of the falls came while it capped,
with each faller's commanded and walked speed when it fell.

    anymal-ros export policies/training/student_speed_limit_206.7M/student.onnx \\
        --out /tmp/governed.onnx --speed-governor
    .venv/bin/python benchmarks/governor_trace.py /tmp/governed.onnx --row "stairs 17 cm down" \\
        --out benchmarks/results/governor_trace.json --figure benchmarks/results/governor_trace.png
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anymal_ros.commands._policy_sim import eval_policy  # noqa: E402
from anymal_ros.config import load_config  # noqa: E402
from anymal_ros.config.scorecard import ScorecardConfig  # noqa: E402
from anymal_ros.eval.evaluate import run_field  # noqa: E402
from anymal_ros.eval.falls import fall_step  # noqa: E402
from anymal_ros.eval.figures import pyplot, save_figure  # noqa: E402
from anymal_ros.eval.scorecard import field_sim  # noqa: E402

MARGIN = 0.1  # m/s above the cap that still counts as "slowed"


class Tracer:
    """A governed policy that notes, each step of each robot's first episode, the belief's
    spread, whether the command was capped, and the planar speeds commanded, given and walked."""

    def __init__(self, policy) -> None:
        self.policy, self.governor = policy, policy.governor
        self.kind, self.head, self.num_envs = policy.kind, policy.head, policy.num_envs
        self.has_belief = True
        slices = policy.metadata.proprio_layout.slices()
        self._command, self._velocity = slices["command"], slices["base_lin_vel"]
        self.first_episode = np.ones(policy.num_envs, dtype=bool)
        self.trace: dict[str, list[np.ndarray]] = {
            k: [] for k in ("spread", "stance", "capped", "commanded", "given", "walked")
        }

    def reset(self, env_ids: np.ndarray) -> None:
        if self.trace["spread"]:  # not the reset that starts every robot's first episode
            self.first_episode[np.asarray(env_ids, dtype=np.int64)] = False
        self.policy.reset(env_ids)

    def act(self, obs) -> np.ndarray:
        capped = self.governor.capped.copy()  # what this step's command is capped by
        action = self.policy.act(obs)
        on = self.first_episode

        def planar(v: np.ndarray) -> np.ndarray:
            return np.where(on, np.linalg.norm(v[:, :2], axis=1), np.nan)

        proprio = obs["proprio"]
        self.trace["spread"].append(np.where(on, self.governor.spread, np.nan))
        self.trace["stance"].append(np.where(on, self.governor.stance_stray, np.nan))
        self.trace["capped"].append(capped & on)
        self.trace["commanded"].append(planar(proprio[:, self._command]))
        self.trace["given"].append(planar(self.policy.command_given))
        self.trace["walked"].append(planar(proprio[:, self._velocity]))
        return action

    def belief(self):
        return self.policy.belief()


def slowing_times(capped: np.ndarray, walked: np.ndarray, slow: float, dt: float) -> list[float]:
    """Seconds from each onset of the cap (a robot walking faster than ``slow + MARGIN``) until
    its planar speed is below that, for onsets it came down within the cap."""
    times = []
    for r in range(capped.shape[1]):
        onsets = np.flatnonzero(capped[1:, r] & ~capped[:-1, r]) + 1
        for t in onsets:
            if not walked[t, r] > slow + MARGIN:
                continue
            after = np.flatnonzero(~(walked[t:, r] > slow + MARGIN) | ~capped[t:, r])
            if after.size and capped[t + after[0], r]:
                times.append(float(after[0] * dt))
    return times


def figure(trace: dict[str, np.ndarray], falls: list[dict], shown: list[int], threshold: float,
           slow: float, dt: float, title: str, path: Path,
           stance_threshold: float | None = None) -> None:  # fmt: skip
    plt = pyplot()
    rows = len(shown)
    fig, axes = plt.subplots(2 * rows, 1, figsize=(10, 2.6 * rows), sharex=True, squeeze=False)
    t = np.arange(trace["spread"].shape[0]) * dt
    for i, r in enumerate(shown):
        speed_ax, spread_ax = axes[2 * i, 0], axes[2 * i + 1, 0]
        speed_ax.plot(t, trace["commanded"][:, r], "k--", lw=1, label="commanded")
        speed_ax.plot(
            t, trace["given"][:, r], color="tab:blue", lw=1.2, label="given to the policy"
        )
        speed_ax.plot(t, trace["walked"][:, r], color="tab:green", lw=0.8, label="walked")
        speed_ax.axhline(slow, color="tab:red", lw=0.6, ls=":")
        speed_ax.set_ylabel(f"robot {r}\nspeed [m/s]")
        spread_ax.plot(t, trace["spread"][:, r], color="tab:purple", lw=0.8)
        spread_ax.axhline(threshold, color="tab:red", lw=0.6, ls=":")
        spread_ax.fill_between(t, 0, 1, where=trace["capped"][:, r], color="tab:orange",
                               alpha=0.2, transform=spread_ax.get_xaxis_transform())  # fmt: skip
        spread_ax.set_ylabel("belief\nspread [m]")
        if stance_threshold is not None:  # the stance cue on an axis of its own (centimetres)
            stance_ax = spread_ax.twinx()
            stance_ax.plot(t, trace["stance"][:, r], color="tab:brown", lw=0.8)
            stance_ax.axhline(stance_threshold, color="tab:brown", lw=0.6, ls=":")
            stance_ax.set_ylabel("stance\nstray [m]", color="tab:brown")
        for fall in falls:
            if fall["robot"] == r:
                speed_ax.plot(fall["time_s"], fall["ground_speed"], "rx", ms=9, mew=2)
    axes[0, 0].legend(loc="upper right", fontsize=7, ncol=3)
    axes[-1, 0].set_xlabel("time [s] (shaded: the command capped; x: a fall)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("policy", help="a student's ONNX file with a speed governor")
    parser.add_argument("--spec", default="config/scorecard_edition2.yaml")
    parser.add_argument("--row", default="stairs 17 cm down")
    parser.add_argument("--noise", default="noisy", choices=("none", "noisy"))
    parser.add_argument("--robots", type=int, default=60)
    parser.add_argument("--seed", type=int, default=201)
    parser.add_argument("--show", type=int, default=3, help="robots in the figure, fallers first")
    parser.add_argument("--out", default="benchmarks/results/governor_trace.json")
    parser.add_argument("--figure", default="benchmarks/results/governor_trace.png")
    args = parser.parse_args(argv)
    spec = load_config(ScorecardConfig, args.spec)
    try:
        row = spec.only([args.row]).rows[0]
    except ValueError as err:
        raise SystemExit(f"--row: {err}") from err
    policy = eval_policy(args.policy, None, [])
    tracer_policy = policy.make(args.robots)
    if getattr(tracer_policy, "governor", None) is None:
        raise SystemExit(
            f"{args.policy} has no speed governor: anymal-ros export ... --speed-governor"
        )
    tracer = Tracer(tracer_policy)
    sim = field_sim(policy.sim, spec, row)
    figures = run_field(sim, row.terrain, tracer, args.noise, args.seed, args.robots)
    trace = {k: np.stack(v) for k, v in tracer.trace.items()}
    settings = tracer.governor.config
    dt = policy.sim.control_dt
    times = slowing_times(trace["capped"], trace["walked"], settings.slow_speed, dt)
    falls = figures["fall_log"]
    fall_steps = [fall_step(f, dt, trace["capped"].shape[0]) for f in falls]
    capped_at_fall = [bool(trace["capped"][i, f["robot"]])
                      for f, i in zip(falls, fall_steps, strict=True)]  # fmt: skip
    walking = ~np.isnan(trace["spread"])
    result = {
        "policy": args.policy, "row": args.row, "noise": args.noise, "seed": args.seed,
        "robots": args.robots, "governor": dataclasses.asdict(settings),
        "falls": figures["falls"], "falls_while_capped": sum(capped_at_fall),
        "fallers": [{"robot": f["robot"], "time_s": f["time_s"], "capped": c,
                     "commanded_m_s": round(float(trace["commanded"][i, f["robot"]]), 2),
                     "walked_m_s": round(float(trace["walked"][i, f["robot"]]), 2)}
                    for f, c, i in zip(falls, capped_at_fall, fall_steps, strict=True)],
        "capped_share": round(float(trace["capped"][walking].mean()), 4),
        "slowing_onsets": len(times),
        "slowing_s": {f"p{q}": round(float(np.percentile(times, q)), 3) for q in (10, 50, 90)}
        if times else None,
    }  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    title = (f"{Path(args.policy).name} governed on {args.row}, {args.noise} heights (seed "
             f"{args.seed}): cap {settings.slow_speed} m/s for {settings.hold} s after the "
             f"spread exceeds {settings.spread_threshold} m"
             + ("" if settings.stance_threshold is None
                else f" or the stance stray {settings.stance_threshold} m"))  # fmt: skip
    # The robots that fell first (what the governor did before a fall), then the others.
    fell = list(dict.fromkeys(f["robot"] for f in falls))
    shown = (fell + [r for r in range(args.robots) if r not in fell])[: args.show]
    figure(trace, falls, shown, settings.spread_threshold, settings.slow_speed, dt, title,
           Path(args.figure), settings.stance_threshold)  # fmt: skip
    print(json.dumps(result, indent=2))
    print(f"wrote {out} and {args.figure}")


if __name__ == "__main__":
    main()
