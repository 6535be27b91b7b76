"""Episode-store throughput next to plain ``np.save`` / ``np.load`` of the same arrays.

    OMP_NUM_THREADS=1 python benchmarks/store_io.py                # 200 episodes x 1000 steps
    OMP_NUM_THREADS=1 python benchmarks/store_io.py --episodes 50 --out store_io.json

Fields are the quadruped set (proprio 133, extero 4x52, privileged 50, action 12, teacher
action 12 float32; reward, terminated, truncated): ~1.67 kB per step, ~333 MB for 200 x 1000.
Measured:

* ``store_write``: one episode per ``add_steps`` + ``commit_episode`` (msync + atomic index
  with fsync); ``store_write_nofsync``: the same with ``fsync=False`` (safe against a killed
  process, not against a power cut);
* ``store_write_vec``: ``vec_writer`` with one ``add_step`` per control step for N envs;
* ``npsave_write``: ``np.save`` of one ``[E, T, ...]`` array per field, then fsync (the bound);
* ``*_read_cold`` / ``*_read_warm``: reading everything back (``store.episode(i)`` copies vs.
  ``np.load``), with the files evicted from the page cache (posix_fadvise DONTNEED, after
  fsync and with no mapping left) or still cached;
* ``dataset_random_windows``: random 10-step windows with next state from ``WindowDataset``.

Prints one JSON object and writes it to ``--out`` when given; temporary files are removed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from anymal_ros.replay.dataset import WindowDataset
from anymal_ros.replay.store import EpisodeStore, quadruped_fields


def evict(paths: list[Path]) -> None:
    """Drop the files' clean pages from the page cache (no root needed)."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--chunk", type=int, default=16, help="episodes per chunk file")
    ap.add_argument("--vec-envs", type=int, default=32)
    ap.add_argument("--windows", type=int, default=2000)
    ap.add_argument("--dir", default=None, help="where to put temporary files (default: TMPDIR)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args()

    fields = quadruped_fields()
    E, T = args.episodes, args.steps
    rng = np.random.default_rng(0)
    # One random episode per field, re-used with the episode id stamped in (no compression
    # anywhere, so repeated content costs the same I/O).
    base = {
        n: (
            rng.random((T, *s.shape)) < 0.01 if s.dtype == bool else rng.normal(size=(T, *s.shape))
        ).astype(s.dtype)
        for n, s in fields.items()
    }
    step_bytes = sum(a[0].nbytes for a in base.values())
    total_mb = step_bytes * T * E / 1e6

    def episode(e: int) -> dict[str, np.ndarray]:
        ep = {n: a.copy() for n, a in base.items()}
        ep["proprio"][0, 0] = e
        ep["terminated"][:] = False
        ep["terminated"][-1] = True
        return ep

    root = Path(tempfile.mkdtemp(prefix="store_io_", dir=args.dir))
    results: dict[str, object] = {
        "episodes": E,
        "steps": T,
        "bytes_per_step": step_bytes,
        "total_mb": round(total_mb, 1),
        "chunk_episodes": args.chunk,
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
    }
    try:
        # --- store: one episode per add_steps + commit, with and without fsync ------------
        eps = [episode(e) for e in range(min(E, 8))]  # prepared outside the timer
        for fsync in (False, True):
            path = root / ("store" if fsync else "store_nosync")
            store = EpisodeStore.create(path, fields, T, chunk_episodes=args.chunk, fsync=fsync)
            writer = store.writer()
            t0 = time.perf_counter()
            for e in range(E):
                writer.add_steps(**eps[e % len(eps)])
                writer.commit_episode()
                if (e + 1) % max(1, E // 5) == 0:
                    rate = (e + 1) * T * step_bytes / 1e6 / (time.perf_counter() - t0)
                    print(f"store write (fsync={fsync}): {e + 1}/{E}, {rate:.0f} MB/s", flush=True)
            dt = time.perf_counter() - t0
            results[f"store_write{'' if fsync else '_nofsync'}_mb_s"] = round(total_mb / dt, 1)
            store.close()
            if not fsync:
                shutil.rmtree(path)
        store_path = root / "store"

        # --- store: vectorised per-step writes (the collection pattern) ---------------------
        n_envs = min(args.vec_envs, E)
        vec_path = root / "vec"
        vstore = EpisodeStore.create(vec_path, fields, T, chunk_episodes=args.chunk)
        vw = vstore.vec_writer(n_envs)
        batch = {n: np.broadcast_to(a[:, None], (T, n_envs, *a.shape[1:])) for n, a in base.items()}
        t0 = time.perf_counter()
        for t in range(T):
            vw.add_step(**{n: a[t] for n, a in batch.items()})
        vw.commit(np.arange(n_envs))
        dt = time.perf_counter() - t0
        results["store_write_vec_envs"] = n_envs
        results["store_write_vec_mb_s"] = round(n_envs * T * step_bytes / 1e6 / dt, 1)
        results["store_write_vec_env_steps_s"] = round(n_envs * T / dt)
        vstore.close()
        shutil.rmtree(vec_path)

        # --- np.save bound ------------------------------------------------------------------
        stacked = {n: np.stack([eps[e % len(eps)][n] for e in range(E)]) for n in fields}
        np_dir = root / "npy"
        np_dir.mkdir()
        t0 = time.perf_counter()
        for n, a in stacked.items():
            with open(np_dir / f"{n}.npy", "wb") as f:
                np.save(f, a)
                f.flush()
                os.fsync(f.fileno())
        dt = time.perf_counter() - t0
        results["npsave_write_mb_s"] = round(total_mb / dt, 1)
        del stacked

        # --- reads, cold then warm ----------------------------------------------------------
        for temp in ("cold", "warm"):
            if temp == "cold":
                evict(files_under(store_path) + files_under(np_dir))
            reader = EpisodeStore.open(store_path, "r")
            t0 = time.perf_counter()
            nbytes = 0
            for e in range(len(reader)):
                nbytes += sum(a.nbytes for a in reader.episode(e).values())
            dt = time.perf_counter() - t0
            results[f"store_read_{temp}_mb_s"] = round(nbytes / 1e6 / dt, 1)
            reader.close()
            del reader
            t0 = time.perf_counter()
            nbytes = 0
            for n in fields:
                nbytes += np.load(np_dir / f"{n}.npy").nbytes
            dt = time.perf_counter() - t0
            results[f"npload_read_{temp}_mb_s"] = round(nbytes / 1e6 / dt, 1)

        # --- random windows through the dataset (warm cache) --------------------------------
        ds = WindowDataset(store_path, window=10)
        idx = np.random.default_rng(1).integers(0, len(ds), size=args.windows)
        t0 = time.perf_counter()
        for k in idx:
            ds[int(k)]
        dt = time.perf_counter() - t0
        results["dataset_random_windows_per_s"] = round(args.windows / dt)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
