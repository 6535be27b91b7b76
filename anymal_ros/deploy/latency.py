"""Per-step latency measurement shared by ``benchmarks/latency.py`` and ``anymal-ros demo``.

Each measured call is one control step at batch 1, fed numpy observations (as the ROS node
does), timed with ``time.perf_counter_ns``; the first ``warmup`` calls are not recorded.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class LatencyRow:
    name: str
    threads: int
    steps: int
    p50_us: float
    p99_us: float
    max_us: float
    mean_us: float


def observation_pool(
    proprio_dim: int, extero_shape: tuple[int, int], n: int = 64, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` random (proprio ``[P]``, extero ``[F, N]``) float32 pairs, cycled by the timers."""
    rng = np.random.default_rng(seed)
    return [
        (
            rng.normal(size=proprio_dim).astype(np.float32),
            (rng.normal(size=extero_shape) * 0.1).astype(np.float32),
        )
        for _ in range(n)
    ]


def time_steps(
    name: str,
    step: Callable[[np.ndarray, np.ndarray], Any],
    pool: list[tuple[np.ndarray, np.ndarray]],
    steps: int,
    warmup: int,
    threads: int,
) -> LatencyRow:
    for i in range(warmup):
        step(*pool[i % len(pool)])
    samples = np.empty(steps, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(steps):
        proprio, extero = pool[i % len(pool)]
        t0 = clock()
        step(proprio, extero)
        samples[i] = clock() - t0
    us = samples / 1e3
    return LatencyRow(
        name=name,
        threads=threads,
        steps=steps,
        p50_us=float(np.percentile(us, 50)),
        p99_us=float(np.percentile(us, 99)),
        max_us=float(us.max()),
        mean_us=float(us.mean()),
    )


def format_table(rows: list[LatencyRow]) -> str:
    cols = ("threads", "steps", "p50 us", "p99 us", "max us")
    head = f"{'implementation':<46}" + "".join(f" {c:>8}" for c in cols)
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.name:<46} {r.threads:>8} {r.steps:>8} {r.p50_us:>8.1f} {r.p99_us:>8.1f} "
            f"{r.max_us:>8.1f}"
        )
    return "\n".join(lines)


def run_student_benchmark(onnx_path: str | Path, student: Any, steps: int, warmup: int) -> dict:
    """Time torch eager (default threads, then 1 thread) and :class:`OnnxPolicy` on the same
    student; returns a JSON-ready dict with the rows and the median speed-up."""
    import torch

    from anymal_ros.deploy.runtime import OnnxPolicy

    policy = OnnxPolicy(onnx_path, intra_op_threads=1)
    meta = policy.metadata
    pool = observation_pool(meta.proprio_dim, meta.extero_shape)
    student = student.float().cpu().eval()
    rows = []

    def torch_rows(label: str) -> LatencyRow:
        # What a reference loop does: a full module call per step under no_grad, numpy in,
        # hidden state carried, action converted back to numpy.
        hidden = [student.initial_hidden(1)]

        def step(proprio: np.ndarray, extero: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                out, hidden[0] = student.step(
                    torch.from_numpy(proprio)[None], torch.from_numpy(extero)[None], hidden[0]
                )
            return out.deterministic[0].numpy()

        return time_steps(label, step, pool, steps, warmup, torch.get_num_threads())

    default_threads = torch.get_num_threads()
    rows.append(torch_rows("torch eager Student.step (default threads)"))
    torch.set_num_threads(1)
    try:
        rows.append(torch_rows("torch eager Student.step (set_num_threads(1))"))
    finally:
        torch.set_num_threads(default_threads)
    rows.append(time_steps("onnxruntime OnnxPolicy.step", policy.step, pool, steps, warmup, 1))
    best_torch = min(r.p50_us for r in rows[:2])
    return {
        "benchmark": "student one-step latency, batch 1, paper sizes",
        "steps": steps,
        "warmup": warmup,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "torch": torch.__version__,
            "onnxruntime": __import__("onnxruntime").__version__,
        },
        "rows": [asdict(r) for r in rows],
        "speedup_p50_vs_default_torch": rows[0].p50_us / rows[2].p50_us,
        "speedup_p50_vs_best_torch": best_torch / rows[2].p50_us,
    }
