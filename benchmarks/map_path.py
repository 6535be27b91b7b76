"""Cost of the elevation-map path in the policy node, without DDS.

Per map arrival (a 200 x 200 GridMap, 8 m at 4 cm, the size elevation_mapping_cupy publishes,
with a rotated circular buffer): ``deserialize`` (``rclpy.serialization.deserialize_message``,
what the node's subscription does) and ``decode`` (:func:`anymal_ros.ros_io.grid_map.
decode_grid_map`: layout checks, buffer unwrap, flip into the sampling layout), and both through
the controller (``PolicyController.on_elevation_map``, frame check included).

Per control tick: what the map path adds, forward kinematics + ring placement + 208 bilinear
samples + heights relative to the soles (``FootHeightSampler.sample``), at random poses on
the map. Microseconds, p50/p99 over ``--calls`` calls each.

    OMP_NUM_THREADS=1 python benchmarks/map_path.py   # -> benchmarks/results/map_path.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's anymal_ros, not an installed one

CELLS, RES = 200, 0.04


def stats(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1e6
    return {
        "p50_us": float(np.percentile(a, 50)),
        "p99_us": float(np.percentile(a, 99)),
        "mean_us": float(a.mean()),
        "calls": len(samples),
    }


def timed(fn, calls: int) -> dict[str, float]:
    for _ in range(min(50, calls)):  # warm caches and allocators
        fn()
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return stats(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per measurement")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/map_path.json")
    args = parser.parse_args()

    import torch
    from grid_map_msgs.msg import GridMap
    from nav_msgs.msg import Odometry
    from rclpy.serialization import deserialize_message, serialize_message

    from anymal_ros.config.models import StudentConfig
    from anymal_ros.contract import default_joint_positions
    from anymal_ros.deploy.export import export_student
    from anymal_ros.deploy.runtime import OnnxPolicy
    from anymal_ros.models.student import Student
    from anymal_ros.nodes.controller import ControllerConfig, PolicyController
    from anymal_ros.obs.rotations import quat_from_yaw
    from anymal_ros.ros_io.grid_map import decode_grid_map, grid_map_message

    rng = np.random.default_rng(0)
    grid = rng.normal(0.0, 0.05, size=(CELLS, CELLS)).astype(np.float32)
    grid[rng.random(grid.shape) < 0.05] = np.nan
    msg = grid_map_message(grid, (0.0, 0.0), RES, "odom", start_index=(37, 121))
    data = serialize_message(msg)
    decoded_msg = deserialize_message(data, GridMap)

    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        model = export_student(Student(StudentConfig()).eval(), Path(tmp) / "student.onnx")
        c = PolicyController(OnnxPolicy(model), ControllerConfig())
    odom = Odometry()
    odom.header.frame_id = "odom"
    odom.pose.pose.orientation.w = 1.0
    assert c.on_odom(odom, 0.0)

    result = {
        "map": {"cells": [CELLS, CELLS], "resolution_m": RES, "bytes": len(data)},
        "arrival": {
            "deserialize": timed(lambda: deserialize_message(data, GridMap), args.calls),
            "decode": timed(lambda: decode_grid_map(decoded_msg), args.calls),
            "controller_on_elevation_map": timed(
                lambda: c.on_elevation_map(deserialize_message(data, GridMap), 0.0), args.calls
            ),
        },
    }
    elevation = decode_grid_map(decoded_msg)
    poses = []
    for _ in range(64):
        q = default_joint_positions() + rng.uniform(-0.3, 0.3, 12)
        pos = np.r_[rng.uniform(-2.0, 2.0, 2), 0.5]
        poses.append((q, pos, quat_from_yaw(rng.uniform(-np.pi, np.pi, 1))[0]))
    state = iter(poses * (args.calls // 64 + 2))

    def tick_part():
        q, pos, quat = next(state)
        return c.sampler.sample(elevation, q, pos, quat)

    result["tick"] = {"fk_and_208_bilinear_samples": timed(tick_part, args.calls)}
    for part, entries in (("arrival", result["arrival"]), ("tick", result["tick"])):
        for name, r in entries.items():
            print(f"{part:8s} {name:30s} p50 {r['p50_us']:7.1f} us  p99 {r['p99_us']:7.1f} us")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
