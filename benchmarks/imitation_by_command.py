"""How well a student imitates its teacher, by terrain type and band of commanded speed, on
the student's own rollouts; and how often it falls there.

Off the stairs the students fall about five times as often as their teacher when told to walk
backwards faster than 0.6 m/s, and no more at other speeds (policies/MODEL_CARD.md, "Off the
stairs"). This asks whether the imitation error says so too: it rebuilds the distillation of a
student checkpoint (its config, its teacher, the teacher's simulator), puts the robots on the
terrain levels the teacher's checkpoint had reached (where it saved them; else where the
curriculum starts them), lets the student act alone (DAgger's ``beta`` 0, its mean action, the
run's height noise), labels every step with the teacher's mean action and reports, per (terrain
type, band of commanded vx), the robot time, the behaviour loss (the distillation's per-step
MSE), the teacher's own action spread (RMS of its label about the band's mean, the scale the
error is measured against) and the falls per 10 min.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/imitation_by_command.py \\
        runs/student/checkpoints/latest.pt --seconds 60 \\
        --out benchmarks/results/imitation_by_command.json

Each step counts towards the command in force during it (the simulator's ``info["command"]``).
A fall is a termination other than the episode's time limit.

``before_falls`` says what the falls look like coming: the base's largest tilt and the largest
behaviour loss in the half second up to each fall, against every step's, and for tilt
thresholds how many steps exceed each and how far ahead of the falls it is first exceeded
(within the second before; a window never reaches into the robot's previous episode). That is
what a teacher taking over tipped robots during distillation (``dagger.takeover_tilt``) acts on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


TILT_THRESHOLDS = (0.4, 0.5, 0.6, 0.7, 0.8)  # rad from upright


def before_falls(
    fell: np.ndarray,
    tilt: np.ndarray,
    loss: np.ndarray,
    episode_start: np.ndarray,
    dt: float,
    window_s: float = 0.5,
    lead_s: float = 1.0,
) -> dict:
    """The run's falls against the steps before them. Every input is ``[T, N]`` in time order:
    ``fell[t]`` the step from state ``t`` ended in a fall, ``tilt[t]`` the base's tilt (rad)
    and ``loss[t]`` the behaviour loss in state ``t``, ``episode_start[t]`` state ``t`` begins
    an episode."""
    steps = np.arange(len(fell))[:, None]
    first = np.maximum.accumulate(np.where(episode_start, steps, 0), axis=0)  # episode's start
    windows = []
    for t, n in zip(*np.nonzero(fell), strict=True):
        span = slice(max(first[t, n], t + 1 - round(window_s / dt)), t + 1)
        lead = slice(max(first[t, n], t + 1 - round(lead_s / dt)), t + 1)
        windows.append((tilt[span, n].max(), loss[span, n].max(), tilt[lead, n]))

    def quartiles(values: list[float] | np.ndarray) -> list[float] | None:
        return np.percentile(values, [25, 50, 75]).round(3).tolist() if len(values) else None

    thresholds = {}
    for limit in TILT_THRESHOLDS:
        over = [w > limit for _, _, w in windows]
        leads = [(len(o) - 1 - np.argmax(o)) * dt for o in over if o.any()]  # first step over
        thresholds[f"{limit}"] = {
            "share_of_steps": round(float(np.mean(tilt > limit)), 5),
            "share_of_falls_preceded": round(len(leads) / len(windows), 3) if windows else None,
            "median_lead_s": round(float(np.median(leads)), 3) if leads else None,
        }
    return {
        "falls": len(windows),
        "window_s": window_s,
        "max_tilt_quartiles": quartiles([w[0] for w in windows]),
        "max_loss_quartiles": quartiles([w[1] for w in windows]),
        "every_step_loss_percentiles_50_90_99": np.percentile(loss, [50, 90, 99]).round(4).tolist(),
        "every_step_tilt_percentiles_50_99": np.percentile(tilt, [50, 99]).round(3).tolist(),
        "tilt_thresholds": thresholds,
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("student", help="a distillation checkpoint (.pt)")
    p.add_argument("--teacher", default=None, help="default: the one it was distilled from")
    p.add_argument("--config", default=str(ROOT / "config/distill.yaml"))
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[])
    p.add_argument("--seconds", type=float, default=60.0, help="simulated time (s)")
    p.add_argument("--noise", type=float, default=1.0, help="height-noise curriculum factor")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/imitation_by_command.json"))
    a = p.parse_args(argv)

    import torch

    from anymal_ros.contract import proprio_layout
    from anymal_ros.eval.falls import VX_BANDS, VX_EDGES
    from anymal_ros.models.checkpoint import load_checkpoint
    from anymal_ros.obs.rotations import tilt_from_gravity
    from anymal_ros.rl.dagger import as_numpy
    from anymal_ros.rl.distill import behaviour_loss
    from anymal_ros.rl.distill_runner import distill_runner, load_distill_config
    from anymal_ros.rl.distill_storage import time_chunks

    torch.set_num_threads(1)
    extra = load_checkpoint(a.student).get("extra", {})
    teacher_path = a.teacher or extra.get("teacher_checkpoint")
    if not teacher_path:
        raise SystemExit(f"{a.student}: no teacher named; pass --teacher")
    teacher_env = load_checkpoint(teacher_path).get("extra", {}).get("env") or {}
    levels = teacher_env["levels"].numpy() if "levels" in teacher_env else None
    if levels is None:
        print(f"{teacher_path}: no terrain levels saved; robots start where the curriculum does")

    overrides = [
        *a.overrides,
        *([f"env.num_envs={len(levels)}"] if levels is not None else []),
        "env.num_workers=1",
        f"runner.seed={a.seed}",
        "runner.tensorboard=false",
        "runner.progress=false",
    ]
    cfg = load_distill_config(a.config, overrides)
    with tempfile.TemporaryDirectory() as run_dir:
        runner = distill_runner(cfg, teacher_path, run_dir, resume=a.student)
        source, student = runner.source, runner.student
        collector, rollout, env = source.collector, source.rollout, source.env
        student.eval()
        if levels is not None:
            env.set_terrain_levels(levels)
            collector.host_obs = env.reset()  # every robot starts on its level
            collector.episode_start[:] = True
        collector.set_noise_curriculum(a.noise)
        types = np.asarray(env.terrain_types())
        kinds = sorted(set(types.tolist()))

        # The collector steps the environment itself; wrapping its step keeps, per step of
        # the rollout being collected, the command band and whether the robot fell.
        seen: dict[str, list[np.ndarray]] = {"band": [], "fell": []}
        step = env.step

        def step_and_record(action):  # type: ignore[no-untyped-def]
            out = step(action)
            _, _, terminated, truncated, info = out
            seen["band"].append(np.digitize(as_numpy(info["command"])[:, 0], VX_EDGES))
            fell = as_numpy(terminated).astype(bool) & ~as_numpy(truncated).astype(bool)
            seen["fell"].append(fell)
            return out

        env.step = step_and_record
        shape = (len(kinds), len(VX_BANDS))
        steps, falls = np.zeros(shape), np.zeros(shape)
        loss_sum = np.zeros(shape)
        actions = rollout.teacher_target.shape[-1]
        label_sum, label_sq = np.zeros((*shape, actions)), np.zeros(shape)
        kind_of = np.array([kinds.index(t) for t in types])
        over_time: dict[str, list[np.ndarray]] = {"fell": [], "tilt": [], "loss": [], "start": []}
        gravity_slice = proprio_layout(cpg=False).slices()["gravity"]  # same with CPG terms
        rollouts = max(1, round(a.seconds / (rollout.T * runner.sim.control_dt)))
        t0 = time.perf_counter()
        for k in range(rollouts):
            seen["band"].clear()
            seen["fell"].clear()
            collector.collect(rollout, beta=0.0)
            with torch.no_grad():
                (chunk,) = time_chunks(rollout, rollout.T, torch.arange(rollout.N))
                out, _ = student.forward_sequence(
                    chunk.proprio, chunk.extero, rollout.hidden0, chunk.episode_start
                )
                loss = behaviour_loss(
                    out.deterministic, chunk.teacher_target, student.cfg.action.type
                )
            loss = loss.numpy().T  # [T, N]
            label = chunk.teacher_target.numpy().transpose(1, 0, 2)  # [T, N, A]
            band = np.stack(seen["band"])  # [T, N]
            fell = np.stack(seen["fell"])
            cell = (np.broadcast_to(kind_of, band.shape), band)
            np.add.at(steps, cell, 1)
            np.add.at(falls, cell, fell)
            np.add.at(loss_sum, cell, loss)
            np.add.at(label_sum, cell, label)
            np.add.at(label_sq, cell, (label**2).sum(-1))
            gravity = chunk.proprio[..., gravity_slice].numpy()  # [N, T, 3]
            over_time["tilt"].append(tilt_from_gravity(gravity).T)
            over_time["start"].append(chunk.episode_start.numpy().T)
            over_time["fell"].append(fell)
            over_time["loss"].append(loss)
            done = (k + 1) * rollout.T * rollout.N
            rate = done / (time.perf_counter() - t0)
            eta = (rollouts - k - 1) * rollout.T * rollout.N / rate
            print(f"{k + 1}/{rollouts} rollouts, {rate:.0f} robot-steps/s, ETA {eta:.0f} s",
                  flush=True)  # fmt: skip
        env.close()

    n = np.where(steps > 0, steps, np.nan)
    mean_label = label_sum / n[..., None]
    # RMS about the band's mean action, per action dimension (the behaviour loss's units).
    spread = np.sqrt(np.maximum(label_sq / n - (mean_label**2).sum(-1), 0) / actions)
    minutes = steps * runner.sim.control_dt / 60
    per_10min = 10 * falls / (n * runner.sim.control_dt / 60)

    def table(values: np.ndarray, digits: int) -> dict[str, dict[str, float | None]]:
        return {
            kind: {
                band: (None if np.isnan(v) else round(float(v), digits))
                for band, v in zip(VX_BANDS, values[i], strict=True)
            }
            for i, kind in enumerate(kinds)
        }

    result = {
        "student": str(a.student),
        "teacher": str(teacher_path),
        "robots": rollout.N,
        "levels": "the teacher's" if levels is not None else "the curriculum's start",
        "seconds": rollouts * rollout.T * runner.sim.control_dt,
        "noise_curriculum": a.noise,
        "seed": a.seed,
        "vx_bands": list(VX_BANDS),
        "robot_steps": table(steps, 0),
        "robot_minutes": table(minutes, 2),
        "behaviour_loss": table(loss_sum / n, 4),
        "teacher_action_spread": table(spread, 4),
        "falls_per_10min": table(per_10min, 1),
        "falls": table(falls, 0),
        "before_falls": before_falls(
            *(np.concatenate(over_time[k]) for k in ("fell", "tilt", "loss", "start")),
            dt=runner.sim.control_dt,
        ),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'terrain':>12} {'vx band':>13} {'robot-min':>9} {'loss':>7} {'spread':>7} falls/10min")
    for i, kind in enumerate(kinds):
        for j, band in enumerate(VX_BANDS):
            print(f"{kind:>12} {band:>13} {minutes[i, j]:9.1f} {loss_sum[i, j] / n[i, j]:7.4f} "
                  f"{spread[i, j]:7.4f} {per_10min[i, j]:6.1f}")  # fmt: skip
    return result


if __name__ == "__main__":
    main()
