"""Latency of one student control step (batch 1, paper sizes): torch eager vs onnxruntime.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/latency.py --steps 10000 \
        --out benchmarks/results/latency.json

Rows: torch eager ``Student.step`` with torch's default thread count (what a reference
control loop does: one module call per step under ``no_grad``; note that the Makefile's
OMP_NUM_THREADS=1 makes the default 1, run without it to see torch's own default), the same
with ``torch.set_num_threads(1)``, and :class:`anymal_ros.deploy.runtime.OnnxPolicy.step`
(1 intra-op thread). Warm-up steps are excluded. The student is freshly initialised (latency
does not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anymal_ros.deploy.latency import format_table, run_student_benchmark  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000, help="timed steps per row")
    parser.add_argument("--warmup", type=int, default=500, help="untimed steps first")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/latency.json"))
    args = parser.parse_args(argv)
    if args.steps < 100:
        parser.error("--steps must be >= 100 for a meaningful p99")

    import torch

    from anymal_ros.deploy.export import export_student
    from anymal_ros.models.student import Student

    torch.manual_seed(0)
    student = Student().eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = export_student(student, Path(tmp) / "student.onnx")
        print(f"timing {args.steps} steps per row after {args.warmup} warm-up steps ...")
        result = run_student_benchmark(path, student, args.steps, args.warmup)
    from anymal_ros.deploy.latency import LatencyRow

    print(format_table([LatencyRow(**r) for r in result["rows"]]))
    print(
        f"median speed-up of onnxruntime: {result['speedup_p50_vs_default_torch']:.1f}x vs "
        f"default torch, {result['speedup_p50_vs_best_torch']:.1f}x vs the faster torch row"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
