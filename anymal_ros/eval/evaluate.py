"""Policy evaluation over a terrain set and height-noise modes (``anymal-ros eval``).

For each cell (terrain type x noise mode) a fresh simulator with the same seed is built on a
uniform field: 5 x 5 tiles, all of that terrain type at the difficulty of the chosen level of
the policy's terrain. Every robot starts on the centre tile, so wherever its command takes it
within an episode (20 m at most at 1 m/s), it walks that terrain and no other, and never a
harder level. Each robot gets a fixed velocity command drawn from a seeded generator
(identical for every policy evaluated with the same settings) and runs exactly one episode.
Metrics per cell:

* ``mean_return``: mean episode return;
* ``tracking_reward``: mean per-episode sum of the ``lin_vel_tracking`` and
  ``ang_vel_tracking`` reward terms;
* ``tracking_error``: mean over all steps of ``|v_cmd,xy - v_xy|`` (m/s, Euclidean norm of the
  planar velocity error in the base frame);
* ``falls_per_minute``: episodes ended by termination (a fall) per simulated minute (the count
  itself is ``falls``, of them ``falls_base_contact`` with the trunk or a hip on the terrain, the
  others tilted past ``termination.max_tilt``; ``steps`` is the control steps walked, all robots
  together);
* ``distance``: mean path length per episode (m), the integral of the planar base speed;
* the gait-quality metrics of :mod:`anymal_ros.eval.gait` (base height and its ratio to the
  robot's nominal stance, thigh/shank contacts, foot and trunk clearance, torque, cost of
  transport, joint-limit hits, steps over the joint speed limit).

For a student with its belief decoder, each cell also reports how well the belief
reconstructs the true terrain and privileged state (:mod:`anymal_ros.eval.belief`). Each cell
also lists its falls with the command and randomised physics of the robots that fell and
where and how fast they were walking, and how many robots it commanded per band of forward
speed (``fall_log``, ``conditions``, ``robots_by_vx``: :mod:`anymal_ros.eval.falls`).

Noise modes: ``none`` (clean heights) or one of the height-noise model's ``nominal`` /
``offset`` / ``noisy`` modes at curriculum factor 1, applied to the heights *every* policy
perceives (a teacher evaluated under noise sees the same corrupted map as the student): the
sample points move in x/y and the heights get z noise, outliers and holes, as in distillation.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anymal_ros.config.noise import MODE_NAMES, HeightNoiseConfig
from anymal_ros.config.sim import SimConfig
from anymal_ros.eval.belief import BeliefMeter, belief_table, plot_belief, sample_xy
from anymal_ros.eval.falls import FallLog
from anymal_ros.eval.gait import GAIT_METRICS, GaitMeter, GaitTrace, plot_gait
from anymal_ros.eval.policies import BatchPolicy, action_from_output
from anymal_ros.eval.tables import pipe_table
from anymal_ros.obs.height_noise import HeightNoiseView
from anymal_ros.sim.env import QuadrupedVecEnv

NOISE_MODES: tuple[str, ...] = ("none", *MODE_NAMES)
METRICS: tuple[str, ...] = (
    "mean_return",
    "tracking_reward",
    "tracking_error",
    "falls_per_minute",
    "distance",
    *GAIT_METRICS,
)
#: Metrics that result files written before them lack: pooled only where every row has them.
LATER_METRICS: tuple[str, ...] = ("trunk_clearance", "over_speed_limit", "foothold_relief")


@dataclass(frozen=True)
class EvalSettings:
    terrains: tuple[str, ...] = ("flat", "rough", "stairs_up")
    noise_modes: tuple[str, ...] = ("none", "noisy")
    level: int = 0  # terrain difficulty level of every robot
    num_envs: int = 8
    seed: int = 0
    episode_length_s: float | None = None  # None: the simulator config's

    def __post_init__(self) -> None:
        bad = [m for m in self.noise_modes if m not in NOISE_MODES]
        if bad:
            raise ValueError(f"unknown noise modes {bad}; choose from {list(NOISE_MODES)}")
        if self.num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {self.num_envs}")


def noise_config(mode: str, base: HeightNoiseConfig | None = None) -> HeightNoiseConfig | None:
    """The height-noise model fixed to one mode (``none``: no model)."""
    if mode == "none":
        return None
    if mode not in MODE_NAMES:
        raise ValueError(f"unknown noise mode {mode!r}; choose from {list(NOISE_MODES)}")
    probs = tuple(1.0 if m == mode else 0.0 for m in MODE_NAMES)
    return dataclasses.replace(
        base or HeightNoiseConfig(), enabled=True, mode_probs=probs, mode_resample_prob=0.0
    )


EVAL_FIELD_TILES = 5  # the uniform field is this many tiles per side


def eval_sim_config(sim: SimConfig, settings: EvalSettings, terrain_type: str) -> SimConfig:
    """The evaluation's simulator: the uniform field of ``terrain_type`` at the difficulty of
    ``settings.level`` in ``sim``'s terrain, no curriculum, optional episode length."""
    t = sim.terrain
    level = min(max(settings.level, 0), t.num_levels - 1)
    lo, hi = t.difficulty
    difficulty = lo + (hi - lo) * level / max(t.num_levels - 1, 1)
    terrain = dataclasses.replace(
        t,
        curriculum=False,
        proportions={terrain_type: 1.0},
        num_levels=EVAL_FIELD_TILES,
        num_columns=EVAL_FIELD_TILES,
        difficulty=(difficulty, difficulty),
        max_init_level=0,
    )
    termination = sim.termination
    if settings.episode_length_s is not None:
        termination = dataclasses.replace(termination, episode_length_s=settings.episode_length_s)
    return dataclasses.replace(sim, terrain=terrain, termination=termination)


def fixed_commands(sim: SimConfig, num_envs: int, seed: int) -> np.ndarray:
    """``[N, 3]`` commands (vx, vy, yaw rate) uniform in the configured ranges, seeded."""
    rng = np.random.default_rng(seed + 1_000_003)
    c = sim.commands
    lo = np.array([c.lin_vel_x[0], c.lin_vel_y[0], c.ang_vel_yaw[0]])
    hi = np.array([c.lin_vel_x[1], c.lin_vel_y[1], c.ang_vel_yaw[1]])
    return rng.uniform(lo, hi, size=(num_envs, 3)).astype(np.float32)


def make_eval_env(sim: SimConfig, terrain: str, settings: EvalSettings) -> QuadrupedVecEnv:
    sim = eval_sim_config(sim, settings, terrain)
    env = QuadrupedVecEnv(sim, settings.num_envs, seed=settings.seed)
    centre = EVAL_FIELD_TILES // 2
    env.set_terrain_levels(centre)
    env.columns[:] = centre
    env.set_commands(fixed_commands(sim, settings.num_envs, settings.seed), fixed=True)
    return env


def run_cell(
    env: QuadrupedVecEnv,
    policy: BatchPolicy,
    noise_mode: str,
    seed: int = 0,
    on_step: Callable[[], None] | None = None,
    snapshot_step: int | None = None,
    gait_trace: GaitTrace | None = None,
) -> dict[str, Any]:
    """One episode per robot; returns the cell's metrics (see the module docstring).

    ``snapshot_step``: with a belief, keep robot 0's samples under ``"_belief_snapshot"``
    (``xy``, ``truth``, ``fed``, ``believed``, ``step``): of its steps from ``snapshot_step``
    on (the memory's warm-up), the one where the true terrain around its feet varies most
    (on stairs: where its feet meet a riser).
    ``gait_trace``: records robot 0's first episode step by step.
    """
    n = env.num_envs
    env.report_gait = True
    gait = GaitMeter(
        n, env.control_dt, env.robot.nominal_base_height, env.mass,
        env.index.joint_lower, env.index.joint_upper, env.robot.joint_velocity_limit,
    )  # fmt: skip
    obs = env.reset()
    falls = FallLog(env)
    policy.reset(np.arange(n))
    noise_cfg = noise_config(noise_mode)
    noise = (
        HeightNoiseView(noise_cfg, n, seed, env.heights_at_offsets)
        if noise_cfg is not None
        else None
    )
    if noise is not None:  # the mode at its full level (the training curriculum's end)
        noise.model.set_curriculum(1.0)
    active = np.ones(n, dtype=bool)
    meter = BeliefMeter() if getattr(policy, "has_belief", False) else None
    snapshot, relief = None, -1.0
    ret = np.zeros(n)
    track_reward = np.zeros(n)
    err_sum = np.zeros(n)
    steps = np.zeros(n, dtype=np.int64)
    distance = np.zeros(n)
    dt = env.control_dt
    for step in range(env.max_episode_steps + 1):
        seen = dict(obs)
        if noise is not None:  # shifted sample points and z noise, as in distillation
            seen["extero"] = noise(obs["extero"])
        action = action_from_output(policy.act(seen), policy.head)
        if meter is not None:  # the belief of this step against this step's truth
            belief = policy.belief()
            meter.update(belief, obs["extero"], seen["extero"], obs["privileged"], active)
            in_window = snapshot_step is not None and step >= snapshot_step and active[0]
            if in_window and float(np.std(obs["extero"][0])) > relief:
                relief = float(np.std(obs["extero"][0]))
                snapshot = {"xy": sample_xy(env), "truth": np.array(obs["extero"][0]),
                            "fed": np.array(seen["extero"][0]),
                            "believed": np.array(belief[0][0]), "step": step}  # fmt: skip
        obs, reward, terminated, truncated, info = env.step(action)
        if on_step is not None:
            on_step()
        v_xy = info["base_lin_vel"][:, :2]
        terms = info["reward_terms"]
        a = active
        g = info["gait"]
        gait.update(g, np.linalg.norm(v_xy, axis=-1), a)
        if gait_trace is not None:
            gait_trace.update(g, bool(a[0]), bool(terminated[0]))
        ret[a] += reward[a]
        tracking = terms.get("lin_vel_tracking", 0.0) + terms.get("ang_vel_tracking", 0.0)
        track_reward[a] += np.broadcast_to(tracking, (n,))[a]
        err_sum[a] += np.linalg.norm(info["command"][:, :2] - v_xy, axis=-1)[a]
        distance[a] += np.linalg.norm(v_xy, axis=-1)[a] * dt
        steps[a] += 1
        done = terminated | truncated
        falls.update(a & terminated, g["base_contact"], (step + 1) * dt, g["base_xy"], a)
        ended = np.flatnonzero(done)
        if ended.size:
            policy.reset(ended)
            if noise is not None:
                noise.reset(ended)
        active = active & ~done
        if not active.any():
            break
    minutes = steps.sum() * dt / 60.0
    return {
        "mean_return": float(ret.mean()),
        "tracking_reward": float(track_reward.mean()),
        "tracking_error": float(err_sum.sum() / max(steps.sum(), 1)),
        "falls_per_minute": float(falls.count / max(minutes, 1e-9)),
        "distance": float(distance.mean()),
        **gait.result(),
        "episodes": int(n),
        "falls": falls.count,
        "falls_base_contact": falls.trunk_count,
        "steps": int(steps.sum()),
        **falls.result(),
        **(meter.result() if meter is not None else {}),
        **({"_belief_snapshot": snapshot} if snapshot is not None else {}),
    }


def run_field(
    sim: SimConfig,
    terrain: str,
    policy: BatchPolicy,
    noise_mode: str,
    seed: int,
    num_envs: int,
    episode_length_s: float | None = None,
    on_step: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """One episode for each of ``num_envs`` robots on the uniform field of ``terrain`` at level
    0 of ``sim``'s terrain (a range with equal ends gives exact dimensions, e.g. a riser):
    :func:`run_cell`'s metrics and the field's ``episode_length_s``, the ``minutes`` walked
    and ``falls_per_10min``."""
    settings = EvalSettings(
        terrains=(terrain,), noise_modes=(noise_mode,), level=0, num_envs=num_envs, seed=seed,
        episode_length_s=episode_length_s,
    )  # fmt: skip
    env = make_eval_env(sim, terrain, settings)
    try:
        metrics = run_cell(env, policy, noise_mode, seed, on_step)
        dt, steps = env.control_dt, env.max_episode_steps
    finally:
        env.close()
    return {
        **metrics,
        "episode_length_s": float(steps * dt),
        "minutes": metrics["steps"] * dt / 60.0,
        "falls_per_10min": 10.0 * metrics["falls_per_minute"],
    }


def pool_seeds(
    rows: Sequence[dict[str, Any]], keys: Sequence[str], carry: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Rows of :func:`run_field` (with ``seed`` and ``robots``) summed over seeds, one per
    value of ``keys``: ``falls_per_10min`` from the summed falls and walked minutes, ``robots``,
    ``steps`` and ``falls_base_contact`` summed (the last only where every row has it: older
    result files do not), the other metrics weighted by each row's walked steps (those of
    ``LATER_METRICS`` only where every row has them); ``carry``:
    fields copied from the group's first row. Order: as the rows first name the groups."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, rs in groups.items():
        steps = sum(r["steps"] for r in rs)
        minutes = sum(r["minutes"] for r in rs)
        falls = sum(r["falls"] for r in rs)
        mean = {
            m: sum(r[m] * r["steps"] for r in rs) / max(steps, 1)
            for m in METRICS
            if m != "falls_per_minute" and (m not in LATER_METRICS or all(m in r for r in rs))
        }  # fmt: skip
        causes = (
            {"falls_base_contact": sum(r["falls_base_contact"] for r in rs)}
            if all("falls_base_contact" in r for r in rs) else {}
        )  # fmt: skip
        out.append({
            **dict(zip(keys, key, strict=True)), **{c: rs[0][c] for c in carry},
            "seeds": sorted({r["seed"] for r in rs}), "robots": sum(r["robots"] for r in rs),
            "falls": falls, "minutes": minutes, "steps": steps,
            "falls_per_10min": 10.0 * falls / max(minutes, 1e-9), **causes, **mean,
        })  # fmt: skip
    return out


def second_physics(sim: SimConfig, path: str | Path) -> SimConfig:
    """``sim`` with the sections of a sim-to-sim YAML (``config/sim_to_sim.yaml``) merged over
    it: the same robot, terrain and commands in another physics setting."""
    from anymal_ros.config import deep_merge, from_dict, load_yaml, to_dict

    return from_dict(SimConfig, deep_merge(to_dict(sim), load_yaml(path)), f"sim-to-sim {path}")


def evaluate(
    make_policy: Callable[[int], BatchPolicy],
    sim: SimConfig,
    settings: EvalSettings,
    render: str | Path | None = None,
    progress: bool = True,
    belief_plot: str | Path | None = None,
    belief_plot_warmup: int = 100,
    gait_plot: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Rows ``{terrain, noise, <metrics>}`` for every terrain x noise mode.

    ``render``: write a video of robot 0 in the first cell (MP4/GIF) to this path.
    ``gait_plot``: a PNG of robot 0's gait in the first cell (:func:`plot_gait`).
    ``belief_plot``: for a student with a belief, a PNG of robot 0's truth, input and belief
    in the first stairs cell with noise (else the first cell with noise, else the first
    cell), at the step after ``belief_plot_warmup`` where its terrain varies most.
    """
    from tqdm import tqdm

    rows = []
    cells = [(t, m) for t in settings.terrains for m in settings.noise_modes]
    noisy = [c for c in cells if c[1] != "none"] or cells
    plot_cell = next((c for c in noisy if "stairs" in c[0]), noisy[0])
    for i, (terrain, mode) in enumerate(tqdm(cells, desc="eval", disable=not progress)):
        env = make_eval_env(sim, terrain, settings)
        policy = make_policy(settings.num_envs)
        camera, frames, step_hook = None, [], None
        if render is not None and i == 0:
            from anymal_ros.sim.render import FollowCamera

            camera = FollowCamera(env)

            def step_hook(camera=camera, frames=frames) -> None:
                frames.append(camera.frame())

        try:
            snap = None
            if belief_plot and (terrain, mode) == plot_cell:  # within even a short episode
                snap = min(belief_plot_warmup, env.max_episode_steps // 2)
            trace = None
            if gait_plot is not None and i == 0:
                trace = GaitTrace(env.control_dt, env.robot.nominal_base_height)
            metrics = run_cell(env, policy, mode, settings.seed, step_hook, snap, trace)
            if trace is not None:
                vx, vy, yaw = env.commands.command[0]
                heights = "clean" if mode == "none" else mode
                plot_gait(
                    trace,
                    gait_plot,
                    f"gait of robot 0: {terrain} (level {settings.level}), "
                    f"{heights} heights, command {vx:.2f} / {vy:.2f} m/s, {yaw:.2f} rad/s",
                )
        finally:
            if camera is not None:
                camera.close()
        if frames:
            from anymal_ros.sim.render import save_frames

            save_frames(frames, render, fps=1.0 / env.control_dt)
        env.close()
        snapshot = metrics.pop("_belief_snapshot", None)
        if snapshot is not None:
            t = snapshot.pop("step") * env.control_dt
            title = (f"belief of robot 0, {terrain} (level {settings.level}), {mode} heights, "
                     f"t = {t:.2f} s")  # fmt: skip
            plot_belief(belief_plot, **snapshot, title=title)
        rows.append({"terrain": terrain, "noise": mode, **metrics})
    return rows


def column_names(policy: str | Path, compare: str | Path) -> tuple[str, str]:
    """Labels of the two policies of a comparison: their kinds (``student``, ``teacher``),
    or, for two of a kind, their file names."""
    from anymal_ros.eval.policies import load_policy

    kinds = (load_policy(policy, 1).kind, load_policy(compare, 1).kind)
    return kinds if kinds[0] != kinds[1] else (Path(policy).name, Path(compare).name)


def _figure(row: dict[str, Any], metric: str) -> str:
    """A table cell: ``row``'s value of ``metric``, "-" where a file older than the metric
    (``LATER_METRICS``) lacks it."""
    return f"{row[metric]:.3f}" if metric in row or metric not in LATER_METRICS else "-"


def markdown_table(
    rows: Sequence[dict[str, Any]], compare: Sequence[dict[str, Any]] | None = None,
    names: tuple[str, str] | None = None,
) -> str:  # fmt: skip
    """Markdown table of :func:`evaluate` rows; with ``compare``, the two side by side, each
    column labelled with ``names`` (the first policy's, the compared one's; default
    ``("student", "teacher")``)."""
    names = names or ("student", "teacher")
    short = {
        "mean_return": "return",
        "tracking_reward": "track. reward",
        "tracking_error": "track. err [m/s]",
        "falls_per_minute": "falls/min",
        "distance": "distance [m]",
        "base_height": "base height [m]",
        "base_height_ratio": "height / nominal",
        "limb_contacts_per_minute": "limb contacts/min",
        "foot_clearance": "clearance p10 [m]",
        "trunk_clearance": "trunk clear. p10 [m]",
        "foothold_relief": "foothold relief [m]",
        "mean_torque": "torque [N m]",
        "cost_of_transport": "CoT",
        "joint_limit_hits_per_minute": "limit hits/min",
        "over_speed_limit": "over speed limit",
    }
    if compare is None:
        head = ["terrain", "noise", *(short[m] for m in METRICS)]
        return pipe_table(
            head, ([r["terrain"], r["noise"], *(_figure(r, m) for m in METRICS)] for r in rows)
        )
    head = ["terrain", "noise"]
    for m in METRICS:
        head += [f"{short[m]} ({names[0]})", f"{short[m]} ({names[1]})"]
    other = {(r["terrain"], r["noise"]): r for r in compare}

    def cells(r: dict[str, Any]) -> list[str]:
        o = other[(r["terrain"], r["noise"])]
        return [r["terrain"], r["noise"], *(_figure(x, m) for m in METRICS for x in (r, o))]

    return pipe_table(head, (cells(r) for r in rows))


def write_results(
    out_dir: str | Path,
    rows: Sequence[dict[str, Any]],
    compare: Sequence[dict[str, Any]] | None = None,
    meta: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """``eval.md`` (the table, columns labelled by ``meta["columns"]`` if given) and
    ``eval.json`` (rows, compare rows, settings)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = out / "eval.md"
    text = markdown_table(rows, compare, (meta or {}).get("columns")) + "\n"
    beliefs = belief_table(rows)
    if beliefs:
        text += "\nBelief reconstruction (RMS errors):\n\n" + beliefs + "\n"
    md.write_text(text)
    js = out / "eval.json"
    js.write_text(json.dumps({"rows": list(rows), "compare": compare, **(meta or {})}, indent=2))
    return md, js
