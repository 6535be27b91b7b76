"""The nodes as processes, started with the command lines the launch files give them
(``launch_harness``) and stopped the way a terminal and ``ros2 launch`` stop them: SIGINT to
the whole process group, then SIGINT again (launch forwards the signal to nodes the terminal
has already signalled). Each must shut down in order: no traceback, no error, exit code 0.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import rclpy
from launch_harness import REPO, describe
from rclpy.context import Context
from rclpy.node import Node
from std_srvs.srv import Trigger

pytestmark = pytest.mark.ros

#: What must never appear in a node's output while it shuts down.
CRASH = re.compile(r"Traceback|RCLError|KeyboardInterrupt|\[FATAL\]|context is invalid")
#: Two quick PPO iterations at a time on CartPole (the node's default environment).
TINY_PPO = (
    "ppo.num_steps=16 ppo.num_epochs=1 ppo.num_minibatches=2 runner.progress=false "
    "runner.tensorboard=false runner.checkpoint_interval=0 env.num_envs=2"
)


class NodeRun:
    """One node process in process group ``group`` (a new one if None), output collected."""

    def __init__(self, argv: list[str], group: int | None = None) -> None:
        self.proc = subprocess.Popen(
            argv,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            process_group=0 if group is None else group,
        )
        self.group = os.getpgid(self.proc.pid) if group is None else group
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.output):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} within {timeout} s:\n{self.output[-3000:]}")

    def finish(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"still running after {timeout} s:\n{self.output[-3000:]}"
            ) from None
        self._reader.join(timeout=5.0)
        return code


@pytest.fixture
def start_node():
    """``start_node(argv, group=None) -> NodeRun``; whatever still runs at the end is killed."""
    runs: list[NodeRun] = []

    def start(argv: list[str], group: int | None = None) -> NodeRun:
        runs.append(NodeRun(argv, group))
        return runs[-1]

    yield start
    for run in runs:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()


def interrupt_group(runs: list[NodeRun], times: int = 6, interval: float = 0.15) -> None:
    """SIGINT to the process group, repeatedly, as long as any of ``runs`` is alive."""
    for _ in range(times):
        if all(r.proc.poll() is not None for r in runs):
            return
        try:
            os.killpg(runs[0].group, signal.SIGINT)
        except ProcessLookupError:
            return
        time.sleep(interval)


def test_sim_and_policy_nodes_shut_down_in_order_on_repeated_sigint(start_node, tmp_path):
    """policy.launch.py sim:=true, both nodes in one process group, the policy standing the
    simulated robot up; then SIGINT to the group, six times. Before the nodes stopped their
    threads and timers before the context went, this printed RCLError tracebacks from the
    physics thread, '[FATAL] Exception in timers callback', or KeyboardInterrupt raised inside
    destroy_node."""
    launched = describe("policy.launch.py", sim="true")
    sim = start_node(launched.node("sim_node").module_command(tmp_path))
    policy = start_node(launched.node("policy_node").module_command(tmp_path), group=sim.group)
    sim.wait_for(r"simulating: 400 Hz physics", 60.0)
    policy.wait_for(r"STAND: moving", 60.0)  # configured, active, inputs flowing, standing up
    time.sleep(0.5)
    interrupt_group([sim, policy])
    for run, name in ((sim, "sim_node"), (policy, "policy_node")):
        code = run.finish(timeout=20.0)
        assert not CRASH.search(run.output), f"{name}:\n{run.output[-4000:]}"
        assert code == 0, f"{name} exited {code}:\n{run.output[-3000:]}"


def train_command(tmp_path: Path, **arguments: str) -> list[str]:
    launched = describe(
        "train.launch.py", run_dir=str(tmp_path / "run"), overrides=TINY_PPO, **arguments
    )
    return launched.node("train_node").module_command(tmp_path)


def test_interrupted_training_checkpoints_and_exits_0(start_node, tmp_path):
    """Ctrl-C in a training launch: the iteration ends, latest.pt is written, the node's last
    progress and diagnostics go out while its context is still valid, and the exit code is 0
    (it was 1: 'publisher's context is invalid' in the worker's publish)."""
    run = start_node(train_command(tmp_path, iterations="100000"))
    run.wait_for(r"run directory", 90.0)
    time.sleep(1.0)  # well inside training
    interrupt_group([run], times=2)
    code = run.finish(timeout=60.0)
    assert not CRASH.search(run.output), run.output[-4000:]
    assert code == 0, f"exit {code}:\n{run.output[-3000:]}"
    assert "training ended (interrupted)" in run.output
    assert (tmp_path / "run/checkpoints/latest.pt").is_file()


def test_train_node_exits_after_its_stop_service(ros, start_node, tmp_path):
    """~/stop ends training and the node's process (the launch's OnProcessExit handler then
    ends the launch: test_launch_files). The reply names the checkpoint; rmw drops a reply sent
    before the server has discovered the caller's reply reader, and the node is gone right
    after it (so no second request can be answered): the exit with its checkpoint is what is
    required, and a reply, when one arrives, must name that checkpoint."""
    run = start_node(train_command(tmp_path, iterations="100000"))
    run.wait_for(r"run directory", 90.0)
    probe = ros.add(Node("stop_probe", context=ros.context))
    stop = probe.create_client(Trigger, "/train_node/stop")
    assert stop.wait_for_service(timeout_sec=60.0), "no /train_node/stop"
    future = stop.call_async(Trigger.Request())
    ended = ros.spin_until(lambda: future.done() or run.proc.poll() is not None, 90.0)
    assert ended, f"neither a reply nor an exit within 90 s:\n{run.output[-3000:]}"
    ros.spin_until(future.done, 2.0)  # a reply sent just before the exit
    if future.done():
        reply = future.result()
        assert reply.success, reply.message
        assert Path(reply.message) == tmp_path / "run/checkpoints/latest.pt"
    code = run.finish(timeout=30.0)
    assert "training ended (stop service)" in run.output, run.output[-3000:]
    assert (tmp_path / "run/checkpoints/latest.pt").is_file()
    assert code == 0, run.output[-3000:]
    assert not CRASH.search(run.output), run.output[-4000:]


def test_the_ros_topic_bridge_keeps_its_name_in_a_launched_train_node(monkeypatch, tmp_path):
    """train_node's process has the launch's `--ros-args -r __node:=train_node --params-file
    ...` in sys.argv. Its node takes them (node_process: rclpy.init with sys.argv); the
    ROS-topic bridge it trains through makes a context of its own, which took them too: the
    graph had two /train_node."""
    from anymal_ros.bridges.ros_topics import RosTopicVecEnv
    from anymal_ros.config.ros_env import RosEnvConfig
    from anymal_ros.config.sim import SimConfig
    from anymal_ros.nodes.train_node import TrainNode

    launched = describe("train.launch.py", sim="true", iterations="7")
    monkeypatch.setattr(sys, "argv", launched.node("train_node").command(tmp_path))
    context = Context()
    rclpy.init(context=context)  # args=None: sys.argv, as the process's own node does
    train = TrainNode(context=context, start=False)
    bridge = RosTopicVecEnv(SimConfig(), RosEnvConfig(), num_envs=1)
    try:
        assert train.get_fully_qualified_name() == "/train_node"
        assert train.p("iterations") == 7  # the process's parameters reach its node
        assert bridge.node.get_fully_qualified_name() == "/ros_vec_env"
        graph = bridge.node.get_node_names_and_namespaces
        deadline = time.monotonic() + 10.0
        while ("train_node", "/") not in graph() and time.monotonic() < deadline:
            time.sleep(0.05)  # discovery of the other context's node
        time.sleep(0.5)
        assert graph().count(("train_node", "/")) == 1, graph()
    finally:
        bridge.close()
        train.destroy_node()
        rclpy.shutdown(context=context)


def test_every_rclpy_context_the_package_starts_names_its_arguments():
    """rclpy.init(args=None) reads sys.argv: only the node process's own context may (on
    purpose, in node_process); every other init says which arguments it wants."""
    import ast

    for path in (REPO / "anymal_ros").rglob("*.py"):
        for call in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "init"
                and isinstance(call.func.value, ast.Name)
                and call.func.value.id == "rclpy"
            ):
                where = f"{path.relative_to(REPO)}:{call.lineno}"
                assert "args" in {k.arg for k in call.keywords}, f"{where}: rclpy.init without args"
