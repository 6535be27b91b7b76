"""Record episodes of a policy in the simulator into an :class:`EpisodeStore`.

Each step of each environment stores the fields of
:func:`anymal_ros.replay.store.quadruped_fields`: the observation the step started from
(``extero`` = the *clean* heights; a student trained offline adds its noise on the fly),
the executed ``action`` (after exploration), the teacher's label ``teacher_action`` (the
teacher's Gaussian mean on clean heights; zeros when no teacher is given and the recorded
policy is not itself a teacher), ``reward``, ``terminated`` and ``truncated``. Episodes are
committed as they end; when enough are recorded the ones still running are discarded.

Exploration (``epsilon``, linear from ``epsilon_start`` to ``epsilon_end`` over the
recorded episodes): epsilon-greedy for categorical heads, added Gaussian noise of standard
deviation ``epsilon`` for continuous ones (see :func:`anymal_ros.eval.policies.explore`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from anymal_ros.config.noise import HeightNoiseConfig
from anymal_ros.eval.policies import BatchPolicy, explore
from anymal_ros.obs.height_noise import HeightNoiseView
from anymal_ros.replay.store import EpisodeStore
from anymal_ros.sim.interface import ShiftedHeights


def epsilon_at(episodes_done: int, total: int, start: float, end: float) -> float:
    """Linear schedule over the recorded episodes."""
    if total <= 1:
        return start
    frac = min(max(episodes_done / (total - 1), 0.0), 1.0)
    return start + frac * (end - start)


def record_episodes(
    env: Any,
    policy: BatchPolicy,
    store: EpisodeStore,
    num_episodes: int,
    teacher: BatchPolicy | None = None,
    noise: HeightNoiseConfig | None = None,
    epsilon: tuple[float, float] = (0.0, 0.0),
    seed: int = 0,
    progress: bool = True,
) -> dict[str, float]:
    """Record ``num_episodes`` episodes of ``policy`` in ``env`` (a quadruped vector env);
    returns summary statistics."""
    from tqdm import tqdm

    if num_episodes < 1:
        raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")
    n = env.num_envs
    if teacher is None and policy.kind == "teacher":
        teacher = policy  # a teacher (memoryless) labels its own states
    rng = np.random.default_rng(seed)
    height_noise = None
    if noise is not None:
        lookup = env.heights_at_offsets if isinstance(env, ShiftedHeights) else None
        height_noise = HeightNoiseView(noise, n, seed + 1, lookup)
        height_noise.model.set_curriculum(1.0)  # the mode at its full level (the curriculum's end)
    writer = store.vec_writer(n)
    obs = env.reset()
    policy.reset(np.arange(n))
    committed, returns, lengths = 0, [], []
    bar = tqdm(total=num_episodes, unit="episode", disable=not progress)
    try:
        while committed < num_episodes:
            seen = dict(obs)
            if height_noise is not None:
                seen["extero"] = height_noise(obs["extero"])
            eps = epsilon_at(committed, num_episodes, *epsilon)
            action = explore(policy.act(seen), policy.head, eps, rng)
            label = teacher.act(obs) if teacher is not None else np.zeros_like(action)
            next_obs, reward, terminated, truncated, info = env.step(action)
            writer.add_step(
                proprio=obs["proprio"],
                extero=obs["extero"],
                privileged=obs["privileged"],
                action=action,
                teacher_action=label,
                reward=reward,
                terminated=terminated,
                truncated=truncated,
            )
            done = np.flatnonzero(terminated | truncated)
            if done.size:
                keep = done[: num_episodes - committed]
                if keep.size:
                    writer.commit(keep)
                    returns += info["episode_return"][keep].tolist()
                    lengths += info["episode_length"][keep].tolist()
                    committed += keep.size
                    bar.update(keep.size)
                if keep.size < done.size:
                    writer.discard(done[keep.size :])
                policy.reset(done)
                if height_noise is not None:
                    height_noise.reset(done)
            obs = next_obs
    finally:
        bar.close()
        writer.discard(np.arange(n))  # episodes still running are not complete
    return {
        "episodes": committed,
        "mean_return": float(np.mean(returns)),
        "mean_length": float(np.mean(lengths)),
        "store_episodes": len(store),
    }
