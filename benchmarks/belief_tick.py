"""What the student's belief costs the control tick.

Two measurements, written to one JSON file:

* ``onnxruntime_outputs``: does onnxruntime compute only what the requested outputs need?
  A student graph with the decoder as extra outputs of the control graph, run asking for
  ``action, hidden_out`` only and for all four, next to the control graph alone (the file as
  exported) and the separate belief graph; and a synthetic graph with one cheap output and one
  behind eight 1024 x 1024 MatMuls (an unmistakable signal). If asking for fewer outputs
  skipped the rest, the "control outputs only" runs would cost what the graph without them
  costs. They do not (onnxruntime runs every node of the graph), which is why the decoder is a
  second graph in the file (:mod:`anymal_ros.deploy.belief`).
* ``tick``: the policy node's WALK tick (``PolicyController`` fed with real serialized
  messages, as ``input_decode.py``) at 50 Hz with a pause between ticks as on the robot, the
  belief off and on at 10 Hz in alternating blocks (a load change falls on both alike;
  :class:`~anymal_ros.nodes.belief.BeliefPublisher` on a real rclpy node, publishing after the
  tick as the node does): p50/p99 of the tick itself, of the belief work on the ticks that do
  it, and of the tick following a belief tick.

    OMP_NUM_THREADS=1 python benchmarks/belief_tick.py   # -> benchmarks/results/belief_tick.json
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
sys.path.insert(0, str(REPO / "benchmarks"))


def percentiles(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1e6
    return {"p50_us": float(np.percentile(a, 50)), "p99_us": float(np.percentile(a, 99))}


def time_runs(run, repeats: int) -> dict[str, float]:
    for _ in range(20):
        run()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return percentiles(samples)


def onnxruntime_outputs(student, folder: Path, repeats: int) -> dict[str, object]:
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper, numpy_helper

    from anymal_ros.deploy.export import STUDENT_INPUTS, _onnx_bytes
    from anymal_ros.deploy.runtime import OnnxPolicy, _session_options

    class Combined(torch.nn.Module):  # the decoder as extra outputs of the control graph
        def __init__(self) -> None:
            super().__init__()
            self.student = student

        def forward(self, proprio, extero, hidden):
            action, hidden_out = self.student.step_deterministic(proprio, extero, hidden)
            heights, privileged = self.student.decode_in_units(hidden_out[-1], extero)
            return action, hidden_out, heights, privileged

    cfg = student.cfg
    args = (torch.zeros(1, cfg.proprio_dim), torch.zeros(1, 4, 52), student.initial_hidden(1))
    outputs = ("action", "hidden_out", "belief_heights", "belief_privileged")
    combined = ort.InferenceSession(
        _onnx_bytes(Combined(), args, STUDENT_INPUTS, outputs), _session_options(1)
    )
    feeds = {k: v.numpy() for k, v in zip(STUDENT_INPUTS, args, strict=True)}
    policy = OnnxPolicy(folder / "student.onnx")
    plain = policy.session
    result = {
        "student_control_graph_alone": time_runs(
            lambda: plain.run(["action", "hidden_out"], feeds), repeats
        ),
        "student_combined_control_outputs_only": time_runs(
            lambda: combined.run(["action", "hidden_out"], feeds), repeats
        ),
        "student_combined_all_outputs": time_runs(
            lambda: combined.run(list(outputs), feeds), repeats
        ),
        "student_belief_graph_alone": time_runs(policy.belief, repeats),
    }
    # Synthetic: a cheap output next to an expensive one.
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal((1024, 1024)).astype(np.float32) / 32, f"W{i}")
        for i in range(8)
    ]
    nodes, prev = [helper.make_node("Add", ["x", "one"], ["cheap"])], "x"
    for i in range(8):
        nodes.append(helper.make_node("MatMul", [prev, f"W{i}"], [f"h{i}"]))
        prev = f"h{i}"
    value = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 1024])  # noqa: E731
    graph = helper.make_graph(
        nodes,
        "cheap_and_expensive",
        [value("x")],
        [value("cheap"), value(prev)],
        initializer=[*weights, numpy_helper.from_array(np.ones((1, 1024), np.float32), "one")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    synthetic = ort.InferenceSession(model.SerializeToString(), _session_options(1))
    x = {"x": np.ones((1, 1024), np.float32)}
    cheap_only = helper.make_model(
        helper.make_graph(
            [nodes[0]], "cheap", [value("x")], [value("cheap")], initializer=[graph.initializer[-1]]
        ),  # fmt: skip
        opset_imports=[helper.make_opsetid("", 17)],
    )
    alone = ort.InferenceSession(cheap_only.SerializeToString(), _session_options(1))
    reps = max(repeats // 10, 50)
    result["synthetic_cheap_output_only"] = time_runs(lambda: synthetic.run(["cheap"], x), reps)
    result["synthetic_both_outputs"] = time_runs(lambda: synthetic.run(["cheap", prev], x), reps)
    result["synthetic_cheap_graph_alone"] = time_runs(lambda: alone.run(["cheap"], x), reps)
    result["onnxruntime_version"] = ort.__version__
    return result


class TickSetup:
    """A walking controller and a belief publisher at ``rate`` Hz on a real rclpy node."""

    def __init__(self, model: Path, rate: float, context) -> None:
        from input_decode import walking_controller
        from nav_msgs.msg import Odometry
        from rclpy.lifecycle import LifecycleNode
        from rclpy.serialization import serialize_message

        from anymal_ros.nodes.belief import BeliefPublisher, BeliefSettings

        self.rate = rate
        self.controller, self.tick = walking_controller(model)
        self.node = LifecycleNode(f"belief_bench_{int(rate)}", context=context)
        self.belief = BeliefPublisher(self.node, self.controller, BeliefSettings(rate), "odom")
        # Its publishers are lifecycle publishers: active, as in a walking policy node.
        self.node.trigger_configure()
        self.node.trigger_activate()
        odom = Odometry()
        odom.header.frame_id = "odom"
        odom.pose.pose.position.z = 0.55
        self.belief._on_odom(serialize_message(odom))  # what the node's subscription stores
        self.clock = 0.0
        self.tick_s: list[float] = []
        self.belief_s: list[float] = []
        self.after_belief_s: list[float] = []
        self._previous_was_belief = False

    def run(self, ticks: int, pause_s: float) -> None:
        for _ in range(ticks):
            time.sleep(pause_s)
            start = time.perf_counter()
            self.tick()  # inputs of one period + the WALK tick (targets ready to publish)
            self.tick_s.append(time.perf_counter() - start)
            if self._previous_was_belief:
                self.after_belief_s.append(self.tick_s[-1])
            self.clock += 0.02
            published = self.belief.published
            start = time.perf_counter()
            self.belief.after_tick(self.clock)  # where the node calls it: targets are out
            self._previous_was_belief = self.belief.published > published
            if self._previous_was_belief:
                self.belief_s.append(time.perf_counter() - start)

    def result(self) -> dict[str, object]:
        out: dict[str, object] = {
            "belief_rate_hz": self.rate,
            "ticks": len(self.tick_s),
            "tick": percentiles(self.tick_s),
        }
        if self.belief_s:
            out["belief_work"] = {**percentiles(self.belief_s), "count": len(self.belief_s)}
            out["tick_after_a_belief_tick"] = percentiles(self.after_belief_s)
        return out


def tick_variants(model: Path, ticks: int, blocks: int, pause_s: float) -> dict[str, object]:
    """Belief off and at 10 Hz, in alternating blocks so that a change in the machine's load
    falls on both alike."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    setups = {"belief_off": TickSetup(model, 0.0, context),
              "belief_10hz": TickSetup(model, 10.0, context)}  # fmt: skip
    try:
        for _ in range(blocks):
            for setup in setups.values():
                setup.run(max(ticks // blocks, 1), pause_s)
    finally:
        for setup in setups.values():
            setup.node.destroy_node()
        rclpy.shutdown(context=context)
    return {name: setup.result() for name, setup in setups.items()}


def main() -> None:
    import torch

    from anymal_ros.deploy.export import export_student
    from anymal_ros.models.student import Student

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=2000, help="ticks per tick variant")
    parser.add_argument("--blocks", type=int, default=10, help="alternating blocks per variant")
    parser.add_argument("--pause-ms", type=float, default=20.0, help="pause between ticks")
    parser.add_argument("--repeats", type=int, default=2000, help="runs per onnxruntime variant")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/belief_tick.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    student = Student().eval()  # CPG, the bundled student's size
    folder = Path(tempfile.mkdtemp(prefix="belief_tick_"))
    model = export_student(student, folder / "student.onnx")
    result = {
        "onnxruntime_outputs": onnxruntime_outputs(student, folder, args.repeats),
        "tick": tick_variants(model, args.ticks, args.blocks, args.pause_ms * 1e-3),
        "pause_ms": args.pause_ms,
    }
    off = result["tick"]["belief_off"]["tick"]["p99_us"]
    on = result["tick"]["belief_10hz"]["tick"]["p99_us"]
    result["tick_p99_growth"] = on / off - 1.0
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
