"""ROS 2 node that trains a policy: PPO/PPG teachers (:class:`anymal_ros.rl.runner.Runner`) or
the distilled student (:class:`anymal_ros.rl.distill_runner.DistillRunner`), with progress on
topics and services to checkpoint and stop.

The runner's own ``learn()`` loop (logs, ``metrics.csv``, periodic checkpoints, ``latest.pt``
when it ends) runs in a worker thread; the node's executor stays free for services and
diagnostics. Training through ROS topics needs ``env.kind: ros`` in the config (see
``config/teacher_ros.yaml``) and a simulator in lockstep mode (``launch/train.launch.py
sim:=true``); any other environment kind trains in-process as ``anymal-ros train`` would.

Topics and services:

* ``~/progress`` (std_msgs/String, JSON, once per iteration): ``algorithm``, ``iteration``,
  ``iterations`` (the target), ``env_steps``, ``steps_per_second``, ``eta_s``,
  ``mean_return`` (null until an episode ended), ``run_dir`` and ``stats`` (every numeric
  statistic of the iteration: losses, KL, entropy, learning rate, reward terms, ...; non-finite
  values are null);
* ``/diagnostics`` (diagnostic_msgs/DiagnosticArray, every ``diagnostics_period`` s and each
  iteration): status ``train_node: training`` with the state (starting, training, stopping,
  done, failed) and the progress values;
* ``~/save_checkpoint`` (std_srvs/Trigger): writes ``checkpoints/requested_iter_NNNNNN.pt``
  after the current iteration (waits up to ``service_timeout`` s) and answers its path;
* ``~/stop`` (std_srvs/Trigger): stops after the current iteration, writes
  ``checkpoints/latest.pt``, answers its path; the node then exits (``exit_when_done``).
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import String
from std_srvs.srv import Trigger

from anymal_ros.nodes.diagnostics import ERROR, OK, WARN
from anymal_ros.nodes.process import node_process

if TYPE_CHECKING:
    from anymal_ros.rl.distill_runner import DistillRunner
    from anymal_ros.rl.runner import Runner

ALGORITHMS = ("ppo", "ppg", "distill")

PARAMETERS: dict[str, tuple[object, str]] = {
    "algorithm": ("ppo", "ppo | ppg (teacher, anymal_ros.rl.runner) | distill (student)"),
    "config_file": ("", "YAML: TrainConfig (ppo/ppg) or DistillConfig (distill); empty = defaults"),
    "overrides": ([], "config overrides 'section.key=value', e.g. ['runner.seed=3']"),
    "run_dir": ("", "logs and checkpoints; empty = runner.log_dir/<algorithm>_<env>_<time>"),
    "resume": ("", "checkpoint to continue from; empty = a new run"),
    "teacher_checkpoint": ("", "distill: the teacher checkpoint (anymal-ros train)"),
    "iterations": (0, "target iteration count (runner.iterations); 0 = the config's"),
    "exit_when_done": (True, "shut the node down when training ends or is stopped"),
    "diagnostics_period": (1.0, "s between /diagnostics messages"),
    "service_timeout": (120.0, "s ~/save_checkpoint and ~/stop wait for the iteration to end"),
}


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class TrainNode(Node):
    """See the module docstring. ``start=False`` leaves the worker to :meth:`start`."""

    def __init__(self, node_name: str = "train_node", start: bool = True, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        for name, (default, description) in PARAMETERS.items():
            descriptor = ParameterDescriptor(description=description)
            if isinstance(default, list):  # an empty list has no type of its own
                self.declare_parameter(name, Parameter.Type.STRING_ARRAY, descriptor)
            else:
                self.declare_parameter(name, default, descriptor)
        self.algorithm = str(self.p("algorithm"))
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        self.state = "starting"
        self.error = ""
        self.progress: dict[str, Any] = {}
        self.summary: dict[str, Any] | None = None
        self.runner: Runner | DistillRunner | None = None
        self._save_request = threading.Event()
        self._saved = threading.Event()
        self._saved_path = ""
        self._stop_reason: str | None = None  # set when asked to stop
        self._learn_start = 0.0
        self._first_iteration = 0
        self.pub_progress = self.create_publisher(String, "~/progress", 10)
        self.pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(Trigger, "~/save_checkpoint", self._on_save)
        self.create_service(Trigger, "~/stop", self._on_stop)
        self.create_timer(float(self.p("diagnostics_period")), self.publish_diagnostics)
        self.worker = threading.Thread(target=self._train, name="train_worker", daemon=True)
        if start:
            self.start()

    def p(self, name: str) -> Any:
        try:
            value = self.get_parameter(name).value
        except ParameterUninitializedException:
            return PARAMETERS[name][0]
        return value

    def start(self) -> None:
        self.worker.start()

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")

    # --- the worker -------------------------------------------------------------------------

    def make_runner(self) -> Runner | DistillRunner:
        """The runner the parameters describe (config errors name the bad key)."""
        overrides = [o for o in (self.p("overrides") or []) if o]
        if int(self.p("iterations")) > 0:
            overrides.append(f"runner.iterations={int(self.p('iterations'))}")
        config = self.p("config_file") or None
        run_dir = self.p("run_dir") or None
        resume = self.p("resume") or None
        if self.algorithm == "distill":
            from anymal_ros.rl.distill_runner import distill_runner, load_distill_config

            teacher = self.p("teacher_checkpoint")
            if not teacher:
                raise ValueError("algorithm 'distill' needs the teacher_checkpoint parameter")
            return distill_runner(load_distill_config(config, overrides), teacher, run_dir, resume)
        from anymal_ros.config import load_config
        from anymal_ros.config.rl import TrainConfig
        from anymal_ros.rl.runner import train_runner

        cfg = load_config(TrainConfig, config, [*overrides, f"algorithm={self.algorithm}"])
        return train_runner(cfg, run_dir, resume)

    def _train(self) -> None:
        log = self.get_logger()
        try:
            self.runner = self.make_runner()
            if self._stop_reason is not None:  # asked while the runner was being built
                self.runner.request_stop(self._stop_reason)
            log.info(f"{self.algorithm}: run directory {self.runner.run_dir}")
            self._first_iteration = self.runner.iteration
            self._learn_start = time.monotonic()
            self.state = "training"
            self.summary = self.runner.learn(on_iteration=self._on_iteration)
            log.info(f"training ended ({self.summary.get('stopped_by')}): {self.summary}")
            self.state = "done"
        except Exception as err:  # report, never hang the node
            self.error = f"{type(err).__name__}: {err}"
            log.error(f"training failed: {self.error}")
            self.state = "failed"
        finally:
            if self.runner is not None and self.runner.env is not None:
                self.runner.env.close()  # simulator workers, the ROS bridge's node
            self._saved.set()  # nobody waits forever on a save that cannot happen
            self.publish_diagnostics()

    def _on_iteration(self, stats: dict[str, Any]) -> None:
        runner = self.runner
        assert runner is not None  # runner.learn calls this
        target = int(runner.cfg.runner.iterations)
        done_here = runner.iteration - self._first_iteration
        per_iteration = (time.monotonic() - self._learn_start) / max(done_here, 1)
        self.progress = {
            "algorithm": self.algorithm,
            "iteration": int(runner.iteration),
            "iterations": target,
            "env_steps": int(stats.get("env_steps", 0)),
            "steps_per_second": _finite_or_none(float(stats.get("steps_per_second", math.nan))),
            "eta_s": max(0.0, (target - runner.iteration) * per_iteration),
            "mean_return": _finite_or_none(float(stats.get("mean_return", math.nan))),
            "run_dir": str(runner.run_dir),
            "stats": {
                k: _finite_or_none(float(v))
                for k, v in stats.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
            },
        }
        self.pub_progress.publish(String(data=json.dumps(self.progress)))
        if self._save_request.is_set():
            self._save_request.clear()
            path = runner.run_dir / "checkpoints" / f"requested_iter_{runner.iteration:06d}.pt"
            self._saved_path = str(runner.save(path))
            self._saved.set()
        self.publish_diagnostics()

    # --- services ---------------------------------------------------------------------------

    def _on_save(self, request, response):
        if self.finished or self.state != "training":
            response.success = False
            response.message = f"not training (state {self.state})"
            return response
        self._saved.clear()
        self._save_request.set()
        if not self._saved.wait(float(self.p("service_timeout"))) or not self._saved_path:
            response.success = False
            response.message = "no checkpoint: the iteration did not end in time"
            return response
        response.success, response.message = True, self._saved_path
        self._saved_path = ""
        return response

    def request_stop(self, reason: str) -> None:
        """End training after the current iteration (``latest.pt`` is written)."""
        self._stop_reason = reason
        if self.runner is not None:
            self.runner.request_stop(reason)
        if self.state == "training":
            self.state = "stopping"

    def destroy_node(self) -> None:
        # The worker publishes: it must be done before the node and its context go.
        if self.worker.is_alive():
            self.request_stop("node destroyed")
            self.worker.join()
        super().destroy_node()

    def _on_stop(self, request, response):
        self.request_stop("stop service")
        self.worker.join(float(self.p("service_timeout")))
        if self.worker.is_alive():
            response.success = False
            response.message = "still finishing the current iteration"
        elif self.state == "failed" or self.runner is None:
            response.success = False
            response.message = f"training failed: {self.error}"
        else:
            response.success = True
            response.message = str(self.runner.run_dir / "checkpoints" / "latest.pt")
        return response

    # --- diagnostics ------------------------------------------------------------------------

    def publish_diagnostics(self) -> None:
        status = DiagnosticStatus()
        status.name = f"{self.get_name()}: training"
        status.hardware_id = self.algorithm
        if self.state == "failed":
            status.level, status.message = bytes([ERROR]), f"failed: {self.error}"
        else:
            nan = self.progress and self.progress.get("stats", {}).get("policy_loss", 0) is None
            status.level = bytes([WARN if nan else OK])
            it = self.progress.get("iteration", 0)
            status.message = f"{self.state}; iteration {it}/{self.progress.get('iterations', '?')}"
        values = [KeyValue(key="state", value=self.state)]
        for key, value in self.progress.items():
            if key != "stats":
                values.append(KeyValue(key=key, value=str(value)))
        for key, value in self.progress.get("stats", {}).items():
            values.append(KeyValue(key=f"stats.{key}", value=str(value)))
        status.values = values
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [status]
        self.pub_diagnostics.publish(msg)


def main(args: list[str] | None = None) -> int:
    """Train until done (the process then exits, and ``train.launch.py`` with it) or until
    SIGINT/SIGTERM: then the runner finishes its iteration and writes ``latest.pt`` while
    the node keeps answering and publishing; exit code 1 if training failed."""
    with node_process(TrainNode, args) as process:
        node = process.node
        executor = SingleThreadedExecutor(context=node.context)
        executor.add_node(node)
        try:
            exit_when_done = bool(node.p("exit_when_done"))
            process.spin(executor, until=lambda: exit_when_done and node.finished)
            if process.signalled.is_set():
                node.request_stop("interrupted")
                done = lambda: not node.worker.is_alive()  # noqa: E731
                process.spin(executor, until=done, through_signals=True)
        finally:
            executor.shutdown()
        failed = node.state == "failed"
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
