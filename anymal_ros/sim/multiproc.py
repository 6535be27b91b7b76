"""MultiProcessVecEnv: the QuadrupedVecEnv interface with robots split over worker processes
(one per core), so physics and observation work run in parallel.

Each worker owns a QuadrupedVecEnv with a share of the robots (same terrain, its own seed);
results are concatenated in worker order, so robot ``i`` of this env is always the same robot.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import traceback
from typing import Any

import numpy as np

from anymal_ros.config.sim import SimConfig
from anymal_ros.obs.governor import checked_caps


def _worker(conn, cfg: SimConfig, num_envs: int, seed: int, terrain_seed: int) -> None:
    # A process group of its own: Ctrl-C in a terminal, or SIGTERM to the trainer's group,
    # reaches the trainer alone, which then finishes its iteration with these simulators and
    # saves a checkpoint (they died with it before). The parent's close() ends the worker,
    # and so does its death: the pipe's far end closes.
    os.setpgrp()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from anymal_ros.sim.env import QuadrupedVecEnv

    try:
        env = QuadrupedVecEnv(cfg, num_envs, seed=seed, terrain_seed=terrain_seed)
        conn.send(("ok", {k: getattr(env, k) for k in _ATTRS}))
        while True:
            cmd, args = conn.recv()
            if cmd == "close":
                break
            conn.send(("ok", getattr(env, cmd)(*args)))
    except (KeyboardInterrupt, EOFError):  # EOF: the parent is gone
        pass
    except Exception:  # report to the parent instead of dying silently
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


_ATTRS = (
    "proprio_dim",
    "action_dim",
    "extero_shape",
    "privileged_dim",
    "observation_shapes",
    "control_dt",
    "max_episode_steps",
)


def _concat(parts: list[Any]) -> Any:
    first = parts[0]
    if isinstance(first, dict):
        return {k: _concat([p[k] for p in parts]) for k in first}
    if isinstance(first, np.ndarray):
        return np.concatenate(parts, axis=0)
    return parts


class MultiProcessVecEnv:
    """Same interface as :class:`anymal_ros.sim.env.QuadrupedVecEnv`, over worker processes
    (:class:`anymal_ros.sim.interface.VecEnv`, ``TerrainCurriculum``, ``ShiftedHeights`` and
    ``CommandCaps``).

    Args:
        cfg, num_envs, seed: as for QuadrupedVecEnv (worker ``w`` is seeded from
            ``(seed, w)``; the terrain from ``terrain_seed``, default ``seed``, in all).
        num_workers: processes (default: the number of CPU cores, at most ``num_envs``).
    """

    # Reported by the first worker (_ATTRS), as its QuadrupedVecEnv has them.
    proprio_dim: int
    action_dim: int
    extero_shape: tuple[int, int]
    privileged_dim: int
    observation_shapes: dict[str, tuple[int, ...]]
    control_dt: float
    max_episode_steps: int

    def __init__(
        self,
        cfg: SimConfig,
        num_envs: int,
        seed: int = 0,
        num_workers: int | None = None,
        terrain_seed: int | None = None,
    ):
        workers = num_workers or os.cpu_count() or 1
        workers = max(1, min(workers, num_envs))
        self.cfg = cfg
        self.num_envs = num_envs
        self.num_workers = workers
        sizes = [len(a) for a in np.array_split(np.arange(num_envs), workers)]
        self._starts = np.cumsum([0] + sizes)
        ctx = mp.get_context("spawn")
        self._conns = []
        self._procs = []
        tseed = seed if terrain_seed is None else terrain_seed
        for w, size in enumerate(sizes):
            parent, child = ctx.Pipe()
            wseed = int(np.random.SeedSequence([seed, w]).generate_state(1)[0])
            proc = ctx.Process(target=_worker, args=(child, cfg, size, wseed, tseed), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        attrs = [self._receive(c) for c in self._conns]
        for key, value in attrs[0].items():
            setattr(self, key, value)
        self.closed = False

    def _receive(self, conn) -> Any:
        status, payload = conn.recv()
        if status == "error":
            self.close()
            raise RuntimeError(f"simulator worker failed:\n{payload}")
        return payload

    def _call_all(self, method: str, args_per_worker: list[tuple]) -> list[Any]:
        for conn, args in zip(self._conns, args_per_worker, strict=True):
            conn.send((method, args))
        return [self._receive(c) for c in self._conns]

    def _split_ids(self, env_ids: np.ndarray | None) -> list[np.ndarray]:
        """Global robot ids -> each worker's local ids."""
        ids = np.arange(self.num_envs) if env_ids is None else np.asarray(env_ids, np.intp)
        bounds = zip(self._starts[:-1], self._starts[1:], strict=True)
        return [ids[(ids >= lo) & (ids < hi)] - lo for lo, hi in bounds]

    def _scatter(self, value: Any, env_ids: np.ndarray | None, row_ndim: int) -> list[tuple]:
        """Split ``value`` (one row per selected robot, or one value for all) by worker."""
        value = np.asarray(value)
        ids = np.arange(self.num_envs) if env_ids is None else np.asarray(env_ids, np.intp)
        per_row = value.ndim == row_ndim + 1
        if per_row and value.shape[0] != ids.size:
            raise ValueError(f"expected {ids.size} rows, got {value.shape[0]}")
        out = []
        for lo, hi in zip(self._starts[:-1], self._starts[1:], strict=True):
            mask = (ids >= lo) & (ids < hi)
            out.append((value[mask] if per_row else value, ids[mask] - lo))
        return out

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        seeds = [
            None if seed is None else int(np.random.SeedSequence([seed, w]).generate_state(1)[0])
            for w in range(self.num_workers)
        ]
        return _concat(self._call_all("reset", [(s,) for s in seeds]))

    def step(self, action: np.ndarray):
        a = np.asarray(action)
        if a.shape != (self.num_envs, self.action_dim):
            raise ValueError(
                f"action: expected shape {(self.num_envs, self.action_dim)}, got {a.shape}"
            )
        parts = [(a[lo:hi],) for lo, hi in zip(self._starts[:-1], self._starts[1:], strict=True)]
        results = self._call_all("step", parts)
        obs, reward, terminated, truncated, info = (
            _concat([r[i] for r in results]) for i in range(5)
        )
        return obs, reward, terminated, truncated, info

    def heights_at_offsets(self, xy: np.ndarray) -> np.ndarray:
        """As :meth:`QuadrupedVecEnv.heights_at_offsets`: ``xy [N, 4, 52, 2]`` -> ``[N, 4, 52]``."""
        shifts = np.asarray(xy)
        expected = (self.num_envs, *self.extero_shape, 2)
        if shifts.shape != expected:  # checked here: a worker's error would end the workers
            raise ValueError(f"xy: expected shape {expected}, got {shifts.shape}")
        bounds = zip(self._starts[:-1], self._starts[1:], strict=True)
        parts = [(shifts[lo:hi],) for lo, hi in bounds]
        return np.concatenate(self._call_all("heights_at_offsets", parts), axis=0)

    def deploy_config(self):
        """As :meth:`QuadrupedVecEnv.deploy_config` (every worker has the same robot)."""
        self._conns[0].send(("deploy_config", ()))
        return self._receive(self._conns[0])

    def terrain_levels(self) -> np.ndarray:
        return np.concatenate(self._call_all("terrain_levels", [()] * self.num_workers))

    def terrain_types(self) -> np.ndarray:
        return np.concatenate(self._call_all("terrain_types", [()] * self.num_workers))

    def set_terrain_levels(
        self, levels: int | np.ndarray, env_ids: np.ndarray | None = None
    ) -> None:
        self._call_all("set_terrain_levels", self._scatter(levels, env_ids, 0))

    def set_terrain_types(self, terrain_type: str, env_ids: np.ndarray | None = None) -> None:
        self._call_all("set_terrain_types", [(terrain_type, i) for i in self._split_ids(env_ids)])

    def set_commands(
        self, command: np.ndarray, env_ids: np.ndarray | None = None, fixed: bool = True
    ) -> None:
        self._call_all("set_commands", [a + (fixed,) for a in self._scatter(command, env_ids, 1)])

    def resample_commands(self, env_ids: np.ndarray | None = None) -> None:
        self._call_all("resample_commands", [(i,) for i in self._split_ids(env_ids)])

    def set_command_caps(self, caps: np.ndarray | None) -> None:
        if caps is None:
            self._call_all("set_command_caps", [(None,)] * self.num_workers)
            return
        caps = checked_caps(caps, self.num_envs)  # here: a worker's error would end them all
        bounds = zip(self._starts[:-1], self._starts[1:], strict=True)
        self._call_all("set_command_caps", [(caps[lo:hi],) for lo, hi in bounds])

    def close(self) -> None:
        if not getattr(self, "_procs", None):
            return
        for conn in self._conns:
            try:
                conn.send(("close", ()))
            except (BrokenPipeError, OSError):
                pass
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
        self._procs = []
        self.closed = True

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def make_quadruped_env(cfg: SimConfig, num_envs: int, seed: int = 0, num_workers: int = 1):
    """The MuJoCo quadruped vector env: in this process for ``num_workers`` 1, else split
    over that many worker processes (the same interface either way)."""
    if num_workers > 1:
        return MultiProcessVecEnv(cfg, num_envs, seed, num_workers)
    from anymal_ros.sim.env import QuadrupedVecEnv

    return QuadrupedVecEnv(cfg, num_envs, seed=seed)
