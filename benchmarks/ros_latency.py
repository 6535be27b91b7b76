"""End-to-end latency and control jitter of policy_node, closed loop with sim_node.

Three processes, as on a robot: sim_node (MuJoCo, physics and proprioception at 400 Hz, an
8 m elevation map at 10 Hz), policy_node (50 Hz, the policy under test; the bundled student by
default; its heights sampled from the map at each tick) and this probe.
The policy node publishes each tick's targets twice: the command
(``std_msgs/Float64MultiArray``, what a ros2_control controller consumes) and then the echo on
``~/joint_targets`` (``sensor_msgs/JointState``, whose ``header.stamp`` is the stamp of the
joint_states message that completed the observation). The probe pairs the two by their values
and measures, per tick:

* ``e2e_ms``: the issue's measure, from that joint_states stamp to the moment the policy node
  published the command (the DDS ``source_timestamp`` of the command message): sensor message
  built and sent -> DDS -> policy node -> publish;
* ``e2e_from_publication_ms``: from the moment sim_node published that joint_states message
  (its DDS ``source_timestamp``, seen by the probe's own subscription) to the command's
  publication: the policy node's share of ``e2e_ms``, without ``sensor_publish_delay_ms``,
  the simulator's own time from stamping a state to publishing it (its map thread can hold
  the GIL in between);
* ``e2e_echo_ms``: from the stamp to the echo's publication (one publish later; what this benchmark
  reported as ``e2e_ms`` before it read the command);
* ``delivered_ms``: to the moment DDS delivered the echo to the probe (``received_timestamp``,
  one more hop), and ``probe_callback_ms``: to the probe's callback (plus the probe's own
  executor dispatch and deserialisation),
* ``period_ms``: intervals between consecutive published targets (jitter around the control
  period), ``missed_ticks``: intervals longer than 1.5 periods,
* ``cpu_percent``: CPU time of the policy node process / wall time (100 = one core),
* ``control_ms``: the node's own latency per tick as it reports on ``/diagnostics`` (entry
  of the callback of the completing joint_states message -> last publish returned), over the
  last ``seconds`` x 50 ticks; ``inference_ms`` likewise for ``OnnxPolicy.step`` alone;
* ``belief_messages``: believed-terrain clouds (``~/belief/terrain``) heard while measuring,
  so a run with ``--node-param belief_rate:=10.0`` shows the belief was published.

    OMP_NUM_THREADS=1 ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=42 \\
        python benchmarks/ros_latency.py --seconds 60   # -> benchmarks/results/ros_latency.json

Target: e2e p99 <= 2 ms, no missed ticks (``--trigger joint_states``, the default here: the
step runs on the joint_states message at each tick; ``--trigger timer`` adds the wait between
the last sensor message and the timer, up to one sensor period).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's anymal_ros, not an installed one


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "count": 0}
    a = np.asarray(values)
    return {
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
        "mean": float(a.mean()),
        "std": float(a.std()),
        "count": int(a.size),
    }


def export_policy(path: Path) -> Path:
    import torch

    from anymal_ros.config.models import StudentConfig, sized_for_action_mode
    from anymal_ros.deploy.export import export_student
    from anymal_ros.models.student import Student

    torch.manual_seed(0)
    return export_student(
        Student(sized_for_action_mode(StudentConfig(), "joint_residual")).eval(), path
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured duration")
    parser.add_argument(
        "--model",
        type=Path,
        default=REPO / "policies/student.onnx",
        help="ONNX student (default: the bundled one); 'fresh' exports an untrained "
        "joint-residual student (no CPG decoding: what results before 2026-11-21 used)",
    )
    parser.add_argument("--trigger", choices=("joint_states", "timer"), default="joint_states")
    parser.add_argument(
        "--node-param",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="extra policy_node parameter (repeatable), e.g. executor:=single_threaded",
    )
    parser.add_argument(
        "--pin-node",
        type=int,
        default=None,
        metavar="CPU",
        help="give policy_node this CPU alone (sim_node and the probe get the others), as on a "
        "robot with an isolated control core",
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/ros_latency.json")
    args = parser.parse_args()

    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(10, 200)))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    env = {**os.environ, "PYTHONPATH": f"{REPO}:{os.environ.get('PYTHONPATH', '')}"}

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from rclpy.subscription import MessageInfo
    from sensor_msgs.msg import JointState, PointCloud2
    from std_msgs.msg import Float64MultiArray
    from std_srvs.srv import Trigger

    tmp = Path(tempfile.mkdtemp(prefix="ros_latency_"))
    model = export_policy(tmp / "student.onnx") if str(args.model) == "fresh" else args.model
    py = sys.executable
    sim = subprocess.Popen(
        [py, "-m", "anymal_ros.nodes.sim_node", "--ros-args", "-p", "height_samples_rate:=50.0"],
        env=env,
    )
    policy = subprocess.Popen(
        [py, "-m", "anymal_ros.nodes.policy_node", "--ros-args",
         "-p", f"model_path:={model}", "-p", "autostart:=true",
         "-p", f"control_trigger:={args.trigger}", "-p", "stand_duration:=0.5",
         "-p", f"latency_window:={max(1, int(args.seconds * 50))}",
         *(a for param in args.node_param for a in ("-p", param))],
        env=env,
    )  # fmt: skip
    if args.pin_node is not None:
        others = os.sched_getaffinity(0) - {args.pin_node}
        if not others or args.pin_node not in os.sched_getaffinity(0):
            raise SystemExit(f"--pin-node {args.pin_node}: needs that CPU and at least one more")
        os.sched_setaffinity(policy.pid, {args.pin_node})
        os.sched_setaffinity(sim.pid, others)
        os.sched_setaffinity(0, others)  # the probe
    rclpy.init(args=[])  # our own argv is not for ROS
    probe = Node("latency_probe")
    executor = SingleThreadedExecutor()
    executor.add_node(probe)
    e2e: list[float] = []  # to the command's publication
    e2e_echo: list[float] = []
    e2e_published: list[float] = []  # from the joint_states' publication instead of its stamp
    sensor_delay: list[float] = []  # the simulator's own: stamp -> publication
    delivered: list[float] = []
    callback: list[float] = []
    published: list[float] = []
    measuring = [False]

    def on_target(msg: JointState, info: MessageInfo) -> None:
        now = time.time()
        if not measuring[0]:
            return
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        sent, received = info["source_timestamp"] * 1e-9, info["received_timestamp"] * 1e-9
        e2e_echo.append((sent - stamp) * 1e3)
        delivered.append((received - stamp) * 1e3)
        callback.append((now - stamp) * 1e3)
        published.append(sent)
        pair(tuple(msg.position), stamp=stamp)

    # A tick's command and echo carry the same values; either may reach the probe first.
    waiting: dict[tuple, dict[str, float]] = {}
    # joint_states stamp -> when the simulator published it (the DDS source_timestamp).
    sensor_sent: dict[float, float] = {}

    def pair(key: tuple, **part: float) -> None:
        entry = waiting.setdefault(key, {})
        entry.update(part)
        if len(entry) == 2:
            del waiting[key]
            e2e.append((entry["command_sent"] - entry["stamp"]) * 1e3)
            sent = sensor_sent.get(entry["stamp"])
            if sent is not None:
                e2e_published.append((entry["command_sent"] - sent) * 1e3)
                sensor_delay.append((sent - entry["stamp"]) * 1e3)
        while len(waiting) > 100:  # a lost partner: forget the oldest
            del waiting[next(iter(waiting))]

    def on_joint_states(msg: JointState, info: MessageInfo) -> None:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        sensor_sent[stamp] = info["source_timestamp"] * 1e-9
        while len(sensor_sent) > 1000:  # 2.5 s at 400 Hz: far more than a tick needs
            del sensor_sent[next(iter(sensor_sent))]

    def on_command(msg: Float64MultiArray, info: MessageInfo) -> None:
        if measuring[0]:
            pair(tuple(msg.data), command_sent=info["source_timestamp"] * 1e-9)

    diagnostics: list[dict[str, str]] = []

    def on_diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith("policy_node"):
                diagnostics.append({kv.key: kv.value for kv in status.values})

    probe.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    probe.create_subscription(JointState, "/joint_states", on_joint_states, qos_profile_sensor_data)
    beliefs = [0]  # the node's believed-terrain clouds while measuring (belief_rate > 0)

    def on_belief(msg: PointCloud2) -> None:
        beliefs[0] += measuring[0]

    probe.create_subscription(
        PointCloud2, "/policy_node/belief/terrain", on_belief, qos_profile_sensor_data
    )
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    probe.create_subscription(JointState, "/policy_node/joint_targets", on_target, reliable)
    probe.create_subscription(
        Float64MultiArray, "/joint_group_position_controller/commands", on_command, reliable
    )
    walk = probe.create_client(Trigger, "/policy_node/walk")
    result: dict = {
        "trigger": args.trigger,
        "seconds": args.seconds,
        "model": str(model),
        "node_params": args.node_param,
        "pinned_node_cpu": args.pin_node,
    }
    try:
        deadline = time.monotonic() + 60.0
        ok = False
        while time.monotonic() < deadline and not ok:  # wait for start-up and stand-up
            executor.spin_once(timeout_sec=0.1)
            if walk.service_is_ready():
                # Bounded wait: a reply sent before the node discovered us is dropped.
                future = walk.call_async(Trigger.Request())
                executor.spin_until_future_complete(future, timeout_sec=1.0)
                ok = future.done() and future.result().success
                if not future.done():
                    walk.remove_pending_request(future)
                elif not ok:
                    time.sleep(0.2)
        if not ok:
            raise RuntimeError("policy_node never accepted ~/walk (did it start?)")
        executor.spin_once(timeout_sec=0.5)
        measuring[0] = True
        cpu0, wall0 = cpu_seconds(policy.pid), time.monotonic()
        end = time.monotonic() + args.seconds
        last_report = time.monotonic()
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
            if time.monotonic() - last_report > 10.0:
                last_report = time.monotonic()
                left = end - last_report
                print(f"  {len(e2e_echo)} targets, {left:.0f} s left", flush=True)
        cpu1, wall1 = cpu_seconds(policy.pid), time.monotonic()
        measuring[0] = False
        seen = len(diagnostics)  # the next report's windows cover the measured ticks
        deadline = time.monotonic() + 5.0
        while len(diagnostics) == seen and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        node_report = diagnostics[-1] if len(diagnostics) > seen else {}
        periods = list(np.diff(published) * 1e3)
        period_ms = 20.0
        result.update(
            e2e_ms=stats(e2e),
            e2e_from_publication_ms=stats(e2e_published),
            sensor_publish_delay_ms=stats(sensor_delay),
            e2e_echo_ms=stats(e2e_echo),
            delivered_ms=stats(delivered),
            probe_callback_ms=stats(callback),
            period_ms=stats(periods),
            missed_ticks=int(sum(p > 1.5 * period_ms for p in periods)),
            expected_ticks=int(args.seconds * 1e3 / period_ms),
            cpu_percent=100.0 * (cpu1 - cpu0) / (wall1 - wall0),
            control_ms={
                k: float(node_report.get(f"control_ms.{k}", "nan")) for k in ("p50", "p99", "max")
            },
            inference_ms={
                k: float(node_report.get(f"inference_ms.{k}", "nan")) for k in ("p50", "p99", "max")
            },
            node_missed_ticks=int(node_report.get("missed_ticks", -1)),
            node_scheduling=node_report.get("scheduling", "unknown"),
            # Input rates the node saw (Hz): a loaded machine slows the simulator, and CPU use
            # scales with them.
            input_rate_hz={
                n: float(node_report.get(f"{n}.rate_hz", "nan"))
                for n in ("joint_states", "imu", "odom", "elevation_map")
            },
            targets=len(e2e_echo),
            belief_messages=beliefs[0],
            paired_commands=len(e2e),
            target={"e2e_p99_ms": 2.0, "missed_ticks": 0},
        )
    finally:
        for proc in (policy, sim):
            proc.terminate()
        for proc in (policy, sim):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        executor.shutdown()
        probe.destroy_node()
        rclpy.shutdown()
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
