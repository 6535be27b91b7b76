"""What a teacher trains on, by commanded speed: robot-time and falls per terrain tile under
the robot (type and step height), per band of the forward command.

The scorecard's stairs falls come from robots commanded fast (policies/MODEL_CARD.md, "The
stairs falls are fast-command falls"). This asks whether training ever shows a fast robot
high steps: it rebuilds a checkpoint's training simulator (its own config, its robots on the
terrain levels they had reached), runs the checkpoint's policy on it as training does
(actions sampled from the policy's distribution; ``--deterministic`` for its mean) with the
curriculum moving robots as usual, and counts, every control step, which tile each robot
stands on and what forward speed it is commanded. A fall is charged to the tile the robot
stood on in the step it fell.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/curriculum_by_speed.py \\
        runs/teacher_anymal_c/checkpoints/latest.pt --seconds 60 \\
        --out benchmarks/results/curriculum_by_speed.json

The tile under a robot, not its episode's column, is what counts: at 1 m/s a robot leaves its
8 m tile's centre for a neighbour (another level along x, another terrain type along y) within
about 4 s, while the scorecard's fields are one terrain type for the whole 20 s episode.

It also counts how the curriculum moved the robots at the end of each episode, per terrain type
of the episode's column (``curriculum_moves``): up a level, down a level (after a fall, or
after walking the whole episode), or kept. Robots that were on the top level are counted apart:
one that masters it restarts at a random level, which a level's change cannot tell from a
demotion.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Forward-command bands (m/s), as the card's fall tables split them.
VX_EDGES = (-1.0, -0.6, -0.2, 0.2, 0.6, 1.0)
VX_BANDS = ("vx<-0.6", "-0.6..-0.2", "|vx|<0.2", "0.2..0.6", "vx>=0.6")
STEPPED = ("stairs_up", "stairs_down")


def per_band(values: np.ndarray, digits: int = 2) -> dict[str, float | None]:
    """``[bands]`` figures as band name -> value (NaN, where a band had no time, as None)."""
    return {b: (None if np.isnan(v) else round(float(v), digits))
            for b, v in zip(VX_BANDS, values, strict=True)}  # fmt: skip


def vx_band(vx: np.ndarray) -> np.ndarray:
    """``[N]`` int: the band of each forward command (edges in :data:`VX_EDGES`)."""
    return np.clip(np.searchsorted(VX_EDGES[1:-1], vx, side="right"), 0, len(VX_BANDS) - 1)


MOVES = ("episodes", "up", "down_after_fall", "down_walked", "kept", "on_top_level")


def count_moves(moves: dict, types: np.ndarray, before: np.ndarray, after: np.ndarray,
                fell: np.ndarray, done: np.ndarray, top: int) -> None:  # fmt: skip
    """Add the curriculum's moves of the robots whose episode ended (``done [N]``) to
    ``moves[type]`` (keys :data:`MOVES`); ``before``/``after`` their levels around the step."""
    change = after - before
    for i in np.flatnonzero(done):
        m = moves[types[i]]
        m["episodes"] += 1
        if before[i] == top:
            m["on_top_level"] += 1
        elif change[i] > 0:
            m["up"] += 1
        elif change[i] < 0:
            m["down_after_fall" if fell[i] else "down_walked"] += 1
        else:
            m["kept"] += 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a teacher checkpoint saved by training (.pt)")
    p.add_argument("--seconds", type=float, default=60.0, help="simulated time (s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--deterministic", action="store_true", help="the policy's mean action")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/curriculum_by_speed.json"))
    a = p.parse_args()

    import torch

    from anymal_ros.config import from_dict
    from anymal_ros.config.sim import SimConfig
    from anymal_ros.models import loading
    from anymal_ros.models.checkpoint import load_checkpoint
    from anymal_ros.sim.env import QuadrupedVecEnv

    torch.set_num_threads(1)
    torch.manual_seed(a.seed)  # the sampled actions
    ckpt = load_checkpoint(a.checkpoint)
    stored = loading.sim_config_of(ckpt)
    if stored is None:
        raise SystemExit(f"{a.checkpoint}: no simulator settings stored")
    sim = from_dict(SimConfig, stored, f"simulator settings of {a.checkpoint}")
    state = ckpt.get("extra", {}).get("env") or {}
    if "levels" not in state:
        raise SystemExit(f"{a.checkpoint}: no terrain levels saved (not a training checkpoint)")
    levels = state["levels"].numpy()
    teacher = loading.teacher_from_checkpoint(ckpt, a.checkpoint).eval()
    env = QuadrupedVecEnv(sim, len(levels), seed=a.seed)
    env.set_terrain_levels(levels)
    obs = env.reset()

    t = sim.terrain
    lo, hi = t.step_height
    step_cm = [100 * (lo + (hi - lo) * lv / max(t.num_levels - 1, 1)) for lv in range(t.num_levels)]
    types = list(env.terrain.column_types)
    # Counts per (column type, level, band); a robot off the grid (the flat border) is skipped.
    steps = np.zeros((len(types), t.num_levels, len(VX_BANDS)), dtype=np.int64)
    falls = np.zeros_like(steps)
    # The reward as training sees it (clipped at zero with rewards.only_positive) and the
    # steps where the clip left nothing: a fall there forgoes no reward.
    reward_sum = np.zeros(steps.shape)
    zero_reward = np.zeros_like(steps)
    robot_types = env.terrain_types()  # per robot: the type of its column, where it restarts
    moves = {kind: dict.fromkeys(MOVES, 0) for kind in sorted(set(types))}
    qpos_xy = env.index.qpos_base[:, :2]
    total = int(round(a.seconds / sim.control_dt))
    t0 = time.perf_counter()
    for k in range(total):
        xy = env.data.qpos[qpos_xy]
        level = np.floor((xy[:, 0] - t.border) / t.tile_size).astype(int)
        column = np.floor((xy[:, 1] - t.border) / t.tile_size).astype(int)
        on_grid = (level >= 0) & (level < t.num_levels) & (column >= 0) & (column < len(types))
        with torch.no_grad():
            o = {key: torch.as_tensor(obs[key]) for key in ("proprio", "extero", "privileged")}
            dist = teacher.distribution(o)
            action = dist.mode() if a.deterministic else dist.sample()
        before = env.terrain_levels()
        obs, reward, terminated, truncated, info = env.step(action.numpy())
        count_moves(moves, robot_types, before, env.terrain_levels(), terminated,
                    terminated | truncated, t.num_levels - 1)  # fmt: skip
        band = vx_band(info["command"][:, 0])
        cell = (column[on_grid], level[on_grid], band[on_grid])
        np.add.at(steps, cell, 1)
        np.add.at(falls, cell, terminated[on_grid].astype(np.int64))
        np.add.at(reward_sum, cell, reward[on_grid])
        np.add.at(zero_reward, cell, (reward[on_grid] <= 0).astype(np.int64))
        if (k + 1) % 250 == 0 or k + 1 == total:
            rate = (k + 1) * len(levels) / (time.perf_counter() - t0)
            eta = (total - k - 1) * len(levels) / rate
            print(f"{k + 1}/{total} control steps, {rate:.0f} robot-steps/s, ETA {eta:.0f} s",
                  flush=True)  # fmt: skip

    minutes = steps * sim.control_dt / 60.0
    kinds = sorted(set(types))
    by_type: dict[str, dict] = {}
    for kind in kinds:
        cols = [i for i, c in enumerate(types) if c == kind]
        m, f = minutes[cols].sum(axis=0), falls[cols].sum(axis=0)  # [levels, bands]
        by_type[kind] = {
            "robot_minutes": m.round(2).tolist(),
            "falls": f.tolist(),
            "robot_minutes_by_band": per_band(m.sum(axis=0)),
        }
    summary = {}
    for kind in STEPPED:
        cols = [i for i, c in enumerate(types) if c == kind]
        high = [lv for lv in range(t.num_levels) if step_cm[lv] >= 16.5]  # the 17 cm rows
        m = minutes[cols][:, high].sum(axis=(0, 1))
        f = falls[cols][:, high].sum(axis=(0, 1))
        n = steps[cols][:, high].sum(axis=(0, 1)).astype(float)
        n[n == 0] = np.nan
        r = reward_sum[cols][:, high].sum(axis=(0, 1)) / n / sim.control_dt
        z = zero_reward[cols][:, high].sum(axis=(0, 1)) / n
        share = minutes[cols][:, high].sum() / max(minutes[cols].sum(), 1e-9)
        summary[kind] = {
            "levels_of_17cm_and_up": high,
            "share_of_robot_time_there": round(float(share), 3),
            "robot_minutes_there_by_band": per_band(m),
            "falls_per_10min_there_by_band": per_band(10 * f / (m + np.where(m > 0, 0, np.nan))),
            "reward_per_s_there_by_band": per_band(r, 3),
            "share_of_steps_with_zero_reward_by_band": per_band(z, 3),
        }
    result = {
        "checkpoint": str(a.checkpoint),
        "iteration": ckpt["counters"]["iteration"],
        "env_steps": ckpt["counters"]["env_steps"],
        "robots": len(levels),
        "seconds": a.seconds,
        "seed": a.seed,
        "actions": "mean" if a.deterministic else "sampled",
        "vx_bands": list(VX_BANDS),
        "step_height_cm_by_level": [round(h, 1) for h in step_cm],
        "stepped_tiles_17cm_and_up": summary,
        "by_type": by_type,
        "curriculum_moves": moves,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    for kind, s in summary.items():
        print(f"{kind}: {100 * s['share_of_robot_time_there']:.0f} % of its robot time on "
              f"steps >= 17 cm")  # fmt: skip
        for b in VX_BANDS:
            print(f"  {b:>11}: {s['robot_minutes_there_by_band'][b]} robot-min, "
                  f"{s['falls_per_10min_there_by_band'][b]} falls / 10 min, reward "
                  f"{s['reward_per_s_there_by_band'][b]} / s, zero on "
                  f"{s['share_of_steps_with_zero_reward_by_band'][b]} of its steps")  # fmt: skip
    for kind, m in moves.items():
        print(f"{kind}: " + ", ".join(f"{k} {v}" for k, v in m.items()))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
