"""What the legs did before a fall: any policy on one field of the scorecard, its feet's
contacts watched step by step, and what came in the seconds before each fall against what
walking robots meet anyway.

Per control step and foot, from the simulator's privileged state and the CPG phase:

* an **edge touch**: the foot touches the terrain with a contact normal more than
  ``EDGE_DEG`` from vertical (the side or corner of a block or riser, not its top);
* a **stub**: the foot touches the terrain in the middle two thirds of its swing (CPG sine
  above 0.5), when it should be in the air; of those, **held in swing**: the foot has not
  left the ground since its swing began (a late lift-off, or a foot caught on an edge from the
  start); the rest touched down again after lifting;
* a **limb touch**: a thigh or shank touches the terrain;
* a **stance void**: the foot touches nothing in the middle two thirds of its stance (CPG
  sine below -0.5), when it should bear weight: a foot over a dip, or a robot tipping.

The JSON gives each fall with its counts over the last ``--window`` seconds, and rates (steps
with the event, summed over feet or limbs, per robot-second) in four windows back from the
falls, over all walking robots, and over those told as fast as the fallers (``|vx|`` of 0.6
m/s or more). For those fast robots it also gives each leg's CPG phase at lift-off and
touch-down (circular means over swings of at least ``MIN_SWING_S``; the CPG swings a foot from
0 to 180 degrees), which shows whether the two diagonal pairs step alike. The figure shows
the first fallers' feet over the last four windows: stance (by the CPG) shaded, contacts
drawn, the events marked, the fall at the right edge.

    .venv/bin/python benchmarks/before_a_fall.py \\
        policies/training/teacher_governed/teacher_governed_from_speed_limit_mean_211.0M.pt \\
        --row "rough 6 cm" --out benchmarks/results/before_a_fall.json \\
        --figure benchmarks/results/before_a_fall.png
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
from anymal_ros.config.scorecard import ScorecardConfig  # noqa: E402
from anymal_ros.contract import LEGS, NUM_LEGS, PRIVILEGED_LAYOUT, proprio_layout  # noqa: E402
from anymal_ros.eval.evaluate import run_field  # noqa: E402
from anymal_ros.eval.falls import fall_step  # noqa: E402
from anymal_ros.eval.figures import pyplot, save_figure  # noqa: E402
from anymal_ros.eval.gait import MIN_SWING_S  # noqa: E402
from anymal_ros.eval.scorecard import field_sim  # noqa: E402

EDGE_DEG = 30.0  # a contact normal this far from vertical meets a side, not a top
STUB_SIN = 0.5  # mid-swing: the foot should be clear of the ground, not touching it
FAST = 0.6  # m/s of commanded |vx|: the fallers' speeds on rough ground
EVENTS = ("edge_touch", "swing_touch", "held_in_swing", "limb_touch", "stance_void")


class Watch:
    """A policy that notes, each step of each robot's first episode, its feet's contacts, the
    events above, and whether the CPG has each foot in swing."""

    def __init__(self, policy, cpg: bool) -> None:
        self.policy = policy
        self.kind, self.head, self.num_envs = policy.kind, policy.head, policy.num_envs
        self.has_belief = getattr(policy, "has_belief", False)
        priv = PRIVILEGED_LAYOUT.slices()
        self._contact, self._normal = priv["foot_contact"], priv["foot_contact_normal"]
        self._limbs = priv["thigh_shank_contact"]
        proprio = proprio_layout(cpg).slices()
        self._command = proprio["command"]
        start = proprio["cpg_phase"].start if cpg else None
        self._sin = None if start is None else slice(start, start + NUM_LEGS)
        self._cos = None if start is None else slice(start + NUM_LEGS, start + 2 * NUM_LEGS)
        self.first_episode = np.ones(policy.num_envs, dtype=bool)
        # Whether each foot has left the ground since its swing began.
        self._was_swing = np.zeros((policy.num_envs, NUM_LEGS), dtype=bool)
        self._lifted = np.zeros((policy.num_envs, NUM_LEGS), dtype=bool)
        self.trace: dict[str, list[np.ndarray]] = {
            k: [] for k in ("on", "contact", "swing", "phase", *EVENTS, "vx")
        }

    def reset(self, env_ids: np.ndarray) -> None:
        if self.trace["contact"]:  # not the reset that starts every robot's first episode
            self.first_episode[np.asarray(env_ids, dtype=np.int64)] = False
        self.policy.reset(env_ids)

    def act(self, obs) -> np.ndarray:
        priv, proprio = np.asarray(obs["privileged"]), np.asarray(obs["proprio"])
        on = self.first_episode[:, None]
        contact = priv[:, self._contact] > 0.5
        normal_z = priv[:, self._normal].reshape(-1, NUM_LEGS, 3)[..., 2]
        edge = contact & (normal_z < np.cos(np.radians(EDGE_DEG)))
        if self._sin is None:  # no CPG: swing unknown, no stubs
            sin = phase = np.full(contact.shape, np.nan)
        else:
            sin = proprio[:, self._sin]
            phase = np.degrees(np.arctan2(sin, proprio[:, self._cos])) % 360.0
        swing = sin >= 0.0  # swing is [0, pi) of the phase
        self._lifted &= ~(swing & ~self._was_swing)  # a new swing
        self._lifted |= swing & ~contact
        self._was_swing = swing
        self.trace["on"].append(self.first_episode.copy())
        self.trace["contact"].append(contact & on)
        self.trace["swing"].append(swing & on)
        self.trace["phase"].append(phase.astype(np.float32))
        self.trace["edge_touch"].append(edge & on)  # [N, feet]
        stub = contact & (sin > STUB_SIN) & on
        self.trace["swing_touch"].append(stub)
        self.trace["held_in_swing"].append(stub & ~self._lifted)
        limbs = priv[:, self._limbs] > 0.5  # [N, thighs then shanks]
        self.trace["limb_touch"].append(limbs & on[:, :1])
        self.trace["stance_void"].append(~contact & (sin < -STUB_SIN) & on)
        self.trace["vx"].append(proprio[:, self._command][:, 0])
        return self.policy.act(obs)

    def belief(self):
        return self.policy.belief()


def step_phases(parts, min_steps: int) -> dict[str, dict[str, float]]:
    """Per leg, the circular mean CPG phase (degrees) at the lift-offs and touch-downs of the
    swings (``min_steps`` or more off the ground: not a standing foot's flicker) in the
    robot-steps masked in ``parts``, and how many there were."""
    sums = {e: np.zeros(NUM_LEGS, dtype=complex) for e in ("lift_off", "touch_down")}
    counts = {e: np.zeros(NUM_LEGS, dtype=np.int64) for e in sums}
    for trace, mask in parts:
        contact = trace["contact"]  # [T, N, legs], False outside the first episode
        off = np.concatenate([~contact, np.zeros((min_steps, *contact.shape[1:]), bool)])
        ran = np.concatenate([np.zeros((1, *contact.shape[1:])), np.cumsum(off, axis=0)])
        stays_off = (ran[min_steps:] - ran[:-min_steps])[: len(contact)] == min_steps  # t on
        at = {
            "lift_off": contact[:-1] & stays_off[1:],  # the step after the last contact
            "touch_down": np.zeros_like(contact[1:]),
        }
        at["touch_down"][min_steps - 1 :] = contact[min_steps:] & stays_off[:-min_steps]
        angle = np.exp(1j * np.radians(trace["phase"][1:]))
        for e, hit in at.items():
            hit = hit & mask[1:, :, None]
            sums[e] += np.where(hit, angle, 0).sum(axis=(0, 1))
            counts[e] += hit.sum(axis=(0, 1))
    return {
        f"{e}_deg": dict(zip(LEGS, np.round(np.degrees(np.angle(s)) % 360.0, 1).tolist(),
                             strict=True))
        for e, s in sums.items()
    } | {"swings": dict(zip(LEGS, counts["lift_off"].tolist(), strict=True))}  # fmt: skip


def figure(trace, falls, window_steps: int, dt: float, title: str, path: Path) -> None:
    plt = pyplot()
    shown = falls[:6]
    fig, axes = plt.subplots(len(shown), 1, figsize=(11, 1.5 * len(shown) + 0.6), squeeze=False)
    for ax, fall in zip(axes[:, 0], shown, strict=False):
        r, end = fall["robot"], fall["step"]
        start = max(end - 4 * window_steps, 0)
        t = (np.arange(start, end + 1) - end) * dt
        for leg in range(NUM_LEGS):
            y = NUM_LEGS - 1 - leg
            swing = trace["swing"][start : end + 1, r, leg]
            contact = trace["contact"][start : end + 1, r, leg]
            ax.fill_between(t, y - 0.4, y + 0.4, where=~swing, color="0.85", step="mid")
            ax.fill_between(t, y - 0.2, y + 0.2, where=contact, color="k", step="mid")
        marks = (("edge_touch", 0.3, "r|", 8, "edge touch"), ("swing_touch", -0.3, "bv", 4, "stub"))
        for leg in range(NUM_LEGS):
            y = NUM_LEGS - 1 - leg
            limbs = trace["limb_touch"][start : end + 1, r][:, [leg, NUM_LEGS + leg]].any(axis=1)
            for event, dy, style, size, label in (*marks, ("", 0.0, "mx", 5, "thigh/shank")):
                hit = limbs if not event else trace[event][start : end + 1, r, leg]
                ax.plot(t[hit], np.full(hit.sum(), y + dy), style, ms=size,
                        label=label if leg == 0 else None)  # fmt: skip
        ax.axvline(-window_steps * dt, color="tab:red", lw=0.6, ls=":")
        ax.set_yticks(range(NUM_LEGS), list(reversed(LEGS)))
        ax.set_ylim(-0.6, NUM_LEGS + 0.4)
        ax.set_ylabel(f"robot {r}\nvx {fall['vx']:+.1f}", fontsize=8)
    axes[0, 0].legend(loc="upper left", fontsize=7, ncol=3)
    axes[-1, 0].set_xlabel("time before the fall [s] (grey: stance by the CPG; black: contact)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("policy", help="a checkpoint or ONNX file")
    parser.add_argument("--spec", default="config/scorecard_edition2.yaml")
    parser.add_argument("--row", default="rough 6 cm")
    parser.add_argument("--noise", default="none", choices=("none", "noisy"))
    parser.add_argument("--robots", type=int, default=90)
    parser.add_argument("--seeds", type=int, nargs="+", default=[201, 202])
    parser.add_argument("--window", type=float, default=0.5, help="s before a fall")
    parser.add_argument("--out", default="benchmarks/results/before_a_fall.json")
    parser.add_argument("--figure", default=None, help="PNG of the first fallers' feet")
    args = parser.parse_args(argv)
    spec = load_config(ScorecardConfig, args.spec)
    try:
        row = spec.only([args.row]).rows[0]
    except ValueError as err:
        raise SystemExit(f"--row: {err}") from err
    policy = eval_policy(args.policy, None, [])
    cpg = policy.sim.actions.mode == "cpg"
    dt = policy.sim.control_dt
    window = max(int(round(args.window / dt)), 1)
    spans = 4  # windows back from each fall: when the trouble starts
    before = [[] for _ in range(spans)]
    walking, fast, falls, traces = [], [], [], []
    for seed in args.seeds:
        watch = Watch(policy.make(args.robots), cpg)
        figures = run_field(field_sim(policy.sim, spec, row), row.terrain, watch, args.noise,
                            seed, args.robots)  # fmt: skip
        trace = {k: np.stack(v) for k, v in watch.trace.items()}
        steps = trace["vx"].shape[0]
        on = trace["on"]
        ended = np.zeros((spans, *on.shape), dtype=bool)
        for f in figures["fall_log"]:
            end = fall_step(f, dt, steps)
            # window k: the steps from (k + 1) windows to k windows before the fall
            spans_back = [slice(max(end - (k + 1) * window + 1, 0), max(end - k * window + 1, 0))
                          for k in range(spans)]  # fmt: skip
            for k, steps_k in enumerate(spans_back):
                ended[k, steps_k, f["robot"]] = True
            counts = {e: int(trace[e][spans_back[0], f["robot"]].sum())
                      for e in EVENTS}  # foot- (limb-) steps with the event  # fmt: skip
            falls.append({"seed": seed, "robot": f["robot"], "time_s": f["time_s"],
                          "step": end, "vx": f["vx"], "cause": f["cause"], **counts})  # fmt: skip
        for k in range(spans):
            before[k].append((trace, ended[k]))
        walking.append((trace, on))
        fast.append((trace, on & (np.abs(trace["vx"]) >= FAST)))
        traces.append(trace)
        print(f"seed {seed}: {figures['falls']} falls", flush=True)

    def leg_rates(parts) -> tuple[dict[str, np.ndarray], float]:
        """Per event, ``[legs]`` steps with it per robot-second over the robot-steps of the
        masks in ``parts`` (a thigh or shank counts for its foot's leg), and those seconds."""
        seconds = sum(float(m.sum()) for _, m in parts) * dt
        rates = {e: sum(t[e][m].reshape(-1, t[e].shape[-1] // NUM_LEGS, NUM_LEGS).sum(axis=(0, 1))
                        for t, m in parts) / max(seconds, 1e-9)
                 for e in EVENTS}  # fmt: skip
        return rates, seconds

    def pooled(parts):
        rates, seconds = leg_rates(parts)
        return {e: round(float(r.sum()), 3) for e, r in rates.items()} | {
            "robot_seconds": round(seconds, 1)
        }

    def by_leg(parts):
        rates, _ = leg_rates(parts)
        return {e: dict(zip(LEGS, np.round(r, 3).tolist(), strict=True)) for e, r in rates.items()}

    all_before = [(t, m) for b in before for t, m in b]
    result = {
        "policy": args.policy, "row": args.row, "noise": args.noise, "seeds": args.seeds,
        "robots": args.robots, "window_s": args.window, "edge_deg": EDGE_DEG,
        "falls": len(falls),
        "falls_with": {e: sum(f[e] > 0 for f in falls) for e in EVENTS},
        "rate_before_falls": {f"{k * args.window:g}-{(k + 1) * args.window:g} s": pooled(b)
                              for k, b in enumerate(before)},
        "rate_walking": pooled(walking),
        f"rate_walking_vx_{FAST}": pooled(fast),
        f"by_leg_before_falls_0-{spans * args.window:g} s": by_leg(all_before),
        f"by_leg_walking_vx_{FAST}": by_leg(fast),
        f"cpg_phase_walking_vx_{FAST}": step_phases(fast, int(round(MIN_SWING_S / dt))),
        "fall_log": [{k: v for k, v in f.items() if k != "step"} for f in falls],
    }  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "fall_log"}, indent=2))
    if args.figure and falls:
        first_seed = [f for f in falls if f["seed"] == args.seeds[0]]
        title = (f"{Path(args.policy).name} on {args.row}, {args.noise} heights, seed "
                 f"{args.seeds[0]}: the feet before each fall (dotted: the window)")  # fmt: skip
        figure(traces[0], first_seed, window, dt, title, Path(args.figure))
        print(f"wrote {out} and {args.figure}")
    else:
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
