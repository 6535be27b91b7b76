"""`anymal-ros demo`: interim main job (a later issue replaces it with a closed-loop simulator
demo). Builds a freshly initialised paper-size student, exports it to ``out/``, loads it with
the onnxruntime policy, and prints a short latency comparison against torch eager."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out-dir", type=Path, default=Path("out"), help="where files go")
    parser.add_argument("--steps", type=int, default=2000, help="timed steps per row")


def run(args: argparse.Namespace) -> int:
    import json

    import torch

    from anymal_ros.deploy.export import export_student
    from anymal_ros.deploy.latency import LatencyRow, format_table, run_student_benchmark
    from anymal_ros.deploy.runtime import OnnxPolicy
    from anymal_ros.models.student import Student

    torch.manual_seed(0)
    student = Student().eval()
    path = export_student(student, args.out_dir / "demo_student.onnx")
    meta = OnnxPolicy(path).metadata
    print(
        f"exported {path}: {meta.kind}, proprio {meta.proprio_dim}, extero "
        f"{list(meta.extero_shape)}, hidden {list(meta.hidden_shape)}, action "
        f"{meta.action_dim} ({meta.action_type}), contract v{meta.contract_version}"
    )
    result = run_student_benchmark(path, student, args.steps, warmup=200)
    print(format_table([LatencyRow(**r) for r in result["rows"]]))
    print(f"onnxruntime median speed-up vs torch eager: {result['speedup_p50_vs_best_torch']:.1f}x")
    (args.out_dir / "demo_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0
