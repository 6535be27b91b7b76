"""Real-time scheduling of the policy node's process (``realtime_priority``, ``cpu_affinity``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anymal_ros.nodes.scheduling import apply_scheduling

REPO = Path(__file__).resolve().parents[1]


def test_bad_scheduling_values_are_named():
    with pytest.raises(ValueError, match="realtime_priority must be 0 .off. or 1..99, got 100"):
        apply_scheduling(100, [])
    with pytest.raises(ValueError, match="realtime_priority"):
        apply_scheduling(-1, [])
    with pytest.raises(ValueError, match=r"cpu_affinity: CPUs \[4096\] not available"):
        apply_scheduling(0, [4096])


def test_zero_priority_and_no_cpus_leave_the_process_alone():
    before = (os.sched_getscheduler(0), os.sched_getaffinity(0))
    assert apply_scheduling(0, []) == "default scheduler"
    assert (os.sched_getscheduler(0), os.sched_getaffinity(0)) == before


def _threads(pid: int) -> list[int]:
    return [int(t) for t in os.listdir(f"/proc/{pid}/task")]


def test_policy_node_process_runs_every_thread_as_configured():
    """main() applies the parameters to every thread of the node's process (rclpy, DDS,
    onnxruntime), or, without the privilege, keeps running and says the request was refused."""
    cpu = min(os.sched_getaffinity(0))
    env = {**os.environ, "PYTHONPATH": f"{REPO}:{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "anymal_ros.nodes.policy_node", "--ros-args",
         "-p", "realtime_priority:=10", "-p", f"cpu_affinity:=[{cpu}]"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        line, deadline = "", time.monotonic() + 60.0
        while "scheduling:" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "policy_node exited before reporting scheduling"
        assert "scheduling:" in line, "no scheduling line in the node's log"
        threads = _threads(proc.pid)
        assert len(threads) > 1  # rclpy and DDS started their threads before main() applied it
        assert all(os.sched_getaffinity(t) == {cpu} for t in threads)
        policies = {os.sched_getscheduler(t) for t in threads}
        if "refused" in line:  # no privilege here: the default scheduler, and a warning
            assert "realtime_priority 10 refused" in line and "WARN" in line
            assert policies == {os.SCHED_OTHER}
        else:
            assert "SCHED_FIFO priority 10" in line
            assert policies == {os.SCHED_FIFO}
            assert {os.sched_getparam(t).sched_priority for t in threads} == {10}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
