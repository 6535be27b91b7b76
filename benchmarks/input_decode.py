"""Cost of the policy node's inputs without DDS: decoding per message, and the whole tick.

Per input message (real rclpy-serialized bytes of what a robot publishes), microseconds for
``deserialize`` (``rclpy.serialization.deserialize_message`` + the validator on the message
object, the path before the CDR readers) and ``read_cdr`` (:mod:`anymal_ros.ros_io.cdr` + the
same validator on plain values). ``joint_states_new_names`` alternates two joint orders, so the
reader's name cache misses on every message (the worst case).

Per tick, the policy controller as the node drives it at 400 Hz proprioception and a 50 Hz
policy: 8 joint_states, imu and odom messages received (each validated on arrival), one
height cloud and one command, then a WALK ``tick`` (ONNX included), for both paths
(``set_decoder(..., read_cdr=...)``).

    OMP_NUM_THREADS=1 python benchmarks/input_decode.py   # -> benchmarks/results/input_decode.json
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's anymal_ros, not an installed one


def messages() -> dict[str, tuple[type, object]]:
    from geometry_msgs.msg import Twist
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import Imu, JointState, PointCloud2

    from anymal_ros.contract import JOINT_NAMES, default_joint_positions
    from anymal_ros.ros_io.messages import fill_joint_state, height_cloud

    rng = np.random.default_rng(0)
    js = JointState()
    js.header.frame_id = "base"
    pos = default_joint_positions().astype(float)
    fill_joint_state(js, JOINT_NAMES, pos, rng.normal(size=12), rng.normal(size=12))
    imu = Imu()
    imu.header.frame_id = "imu_link"
    imu.orientation.w = 1.0
    imu.angular_velocity.x = 0.1
    odom = Odometry()
    odom.header.frame_id, odom.child_frame_id = "odom", "base"
    odom.twist.twist.linear.x = 0.5
    cmd = Twist()
    cmd.linear.x = 0.5
    heights = rng.normal(size=(4, 52)).astype(np.float32)
    heights[0, :5] = np.nan
    points = rng.normal(size=(4, 52, 3))
    cloud = height_cloud(heights, points, "base")
    return {
        "joint_states": (JointState, js),
        "imu": (Imu, imu),
        "odom": (Odometry, odom),
        "cmd_vel": (Twist, cmd),
        "height_samples": (PointCloud2, cloud),
    }


def per_call_us(fn, calls: int, batches: int = 7) -> dict[str, float]:
    """Median and best of ``batches`` batch means (robust to a busy machine)."""
    means = []
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        means.append((time.perf_counter() - start) / calls * 1e6)
    return {"median": float(np.median(means)), "min": float(min(means))}


def decode_costs(calls: int) -> dict[str, dict]:
    from rclpy.serialization import deserialize_message, serialize_message

    from anymal_ros.contract import JOINT_NAMES
    from anymal_ros.ros_io import cdr
    from anymal_ros.ros_io import inputs as val

    low, high = np.array([-1.0, -0.5, -1.0]), np.array([1.0, 0.5, 1.0])
    mapper = val.JointStateMapper(JOINT_NAMES)
    joints = cdr.JointStateReader()
    cloud = cdr.PointCloudReader()
    # name -> (validate a message object, read + validate the bytes)
    paths = {
        "joint_states": (mapper, lambda d: mapper.map(*joints(d, "<")[1:])),
        "imu": (val.imu_arrays, lambda d: val.imu_from_values(*cdr.read_imu(d, "<"))),
        "odom": (val.odom_twist, lambda d: val.odom_from_values(*cdr.read_odometry_twist(d, "<"))),
        "cmd_vel": (
            lambda m: val.command_from_twist(m, low, high),
            lambda d: val.command_from_values(*cdr.read_twist(d, "<"), low, high),
        ),
        "height_samples": (val.heights_from_cloud, lambda d: val.heights_from_cloud(cloud(d, "<"))),
    }
    results = {}
    for name, (msg_type, msg) in messages().items():
        data = serialize_message(msg)
        from_msg, from_bytes = paths[name]
        decode = functools.partial(deserialize_message, data, msg_type)
        old = per_call_us(lambda f=from_msg, d=decode: f(d()), calls)
        new = per_call_us(functools.partial(from_bytes, data), calls)
        results[name] = {"deserialize_us": old, "read_cdr_us": new, "bytes": len(data)}
    # Worst case for the name caches (reader and mapper): the joint order changes every time.
    msg_type, msg = messages()["joint_states"]
    first = serialize_message(msg)
    msg.name, msg.position = list(reversed(msg.name)), list(reversed(msg.position))
    msg.velocity, msg.effort = list(reversed(msg.velocity)), list(reversed(msg.effort))
    alternate = itertools.cycle([first, serialize_message(msg)])
    results["joint_states_new_names"] = {
        "deserialize_us": per_call_us(
            lambda: mapper(deserialize_message(next(alternate), msg_type)), calls
        ),
        "read_cdr_us": per_call_us(lambda: mapper.map(*joints(next(alternate), "<")[1:]), calls),
    }
    return results


def feed_and_tick(c, raw: dict[str, bytes], now: float) -> None:
    for _ in range(8):  # 400 Hz proprioception over one 20 ms period
        for name in ("joint_states", "imu", "odom"):
            c.receive(name, raw[name], now)
    c.receive("height_samples", raw["height_samples"], now)
    c.receive("cmd_vel", raw["cmd_vel"], now)
    c.tick(now)


def walking_controller(model: Path, read_cdr: bool = True):
    """A policy controller in WALK, fed by real serialized messages, and ``tick()``: one
    period of inputs (``feed_and_tick``) 20 ms of controller time after the previous one."""
    from rclpy.serialization import deserialize_message, serialize_message

    from anymal_ros.deploy.runtime import OnnxPolicy
    from anymal_ros.nodes.controller import ControllerConfig, PolicyController
    from anymal_ros.nodes.safety import Mode, SafetyConfig

    msgs = messages()
    raw = {name: serialize_message(msg) for name, (_, msg) in msgs.items()}
    config = ControllerConfig(
        safety=SafetyConfig(stand_duration=0.1), height_source="height_samples"
    )
    c = PolicyController(OnnxPolicy(model), config)
    for name, (msg_type, _) in msgs.items():
        decode = functools.partial(deserialize_message, message_type=msg_type)
        c.set_decoder(name, decode, read_cdr=read_cdr)
    clock = [100.0]

    def tick() -> None:
        clock[0] += 0.02
        feed_and_tick(c, raw, clock[0])

    tick()
    assert c.request(Mode.STAND, clock[0])[0]
    for _ in range(10):  # past stand_duration
        tick()
    ok, why = c.request(Mode.WALK, clock[0])
    assert ok, why
    return c, tick


def tick_costs(model: Path, ticks: int) -> dict[str, dict]:
    from anymal_ros.nodes.safety import Mode

    results = {}
    for read_cdr in (False, True):
        c, tick = walking_controller(model, read_cdr)
        samples = []
        for _ in range(ticks):
            start = time.perf_counter()
            tick()
            samples.append((time.perf_counter() - start) * 1e6)
            assert c.mode is Mode.WALK, c.safety.last_transition
        a = np.asarray(samples)
        results["read_cdr" if read_cdr else "deserialize"] = {
            "p50_us": float(np.percentile(a, 50)),
            "p99_us": float(np.percentile(a, 99)),
            "mean_us": float(a.mean()),
            "ticks": ticks,
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per timing batch")
    parser.add_argument("--ticks", type=int, default=2000, help="WALK ticks per path")
    parser.add_argument("--model", type=Path, help="student ONNX (default: a fresh export)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/input_decode.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            import torch

            from anymal_ros.config.models import StudentConfig
            from anymal_ros.deploy.export import export_student
            from anymal_ros.models.student import Student

            torch.manual_seed(0)
            model = export_student(Student(StudentConfig()).eval(), Path(tmp) / "student.onnx")
        result = {"decode": decode_costs(args.calls), "tick": tick_costs(model, args.ticks)}
    for name, r in result["decode"].items():
        old = r.get("deserialize_us", {}).get("median", float("nan"))
        new = r["read_cdr_us"]["median"]
        print(f"{name:24s} deserialize {old:7.1f} us   read_cdr {new:6.1f} us")
    for path, r in result["tick"].items():
        print(f"tick {path:12s} p50 {r['p50_us']:7.0f} us  p99 {r['p99_us']:7.0f} us")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
