"""Real-time scheduling of a node's process: a SCHED_FIFO priority and a CPU set (Linux).

On the robot the policy node's latency tail comes from being preempted and from sharing a
core whose caches other processes keep cold. ``chrt``/``taskset`` around ``ros2 run`` fix
that from outside; :func:`apply_scheduling` does the same from the node's parameters, for every
thread the process has (rclpy's executor, the DDS threads, onnxruntime), and threads started
later inherit it from their creator.

Asking for real-time scheduling without the privilege (root, ``CAP_SYS_NICE`` or an ``rtprio``
limit) is not an error that stops the node: it keeps running with the default scheduler and
says so, in the log and on ``/diagnostics``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

#: SCHED_FIFO priorities Linux accepts.
PRIORITY_RANGE = (1, 99)


def _threads() -> list[int]:
    """Thread ids of this process (just the caller's where /proc is missing)."""
    try:
        return [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


def apply_scheduling(priority: int, cpus: Sequence[int]) -> str:
    """Give every thread of this process SCHED_FIFO ``priority`` (0 = leave the scheduler
    alone) and the CPU set ``cpus`` (empty = leave the affinity alone).

    Returns a one-line description of the scheduling in force, for the log and diagnostics.
    Raises ValueError for a priority outside 0 or 1..99 or an unknown CPU. Missing privileges
    do not raise: the description then says what was refused and why.
    """
    lo, hi = PRIORITY_RANGE
    if priority != 0 and not lo <= priority <= hi:
        raise ValueError(f"realtime_priority must be 0 (off) or {lo}..{hi}, got {priority}")
    cpus = sorted({int(c) for c in cpus})
    if cpus:
        available = os.sched_getaffinity(0)
        unknown = [c for c in cpus if c not in available]
        if unknown:
            have = sorted(available)
            raise ValueError(f"cpu_affinity: CPUs {unknown} not available (have {have})")
    parts, refused = [], []
    threads = _threads()
    if cpus:
        try:
            for tid in threads:
                os.sched_setaffinity(tid, cpus)
            parts.append(f"CPUs {cpus}")
        except OSError as err:
            refused.append(f"cpu_affinity {cpus} refused ({err.strerror})")
    if priority:
        try:
            for tid in threads:
                os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(priority))
            parts.append(f"SCHED_FIFO priority {priority}")
        except OSError as err:
            # Undo a partial change: threads of one process at mixed priorities help no one.
            for tid in threads:
                try:
                    os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
                except OSError:
                    pass
            refused.append(
                f"realtime_priority {priority} refused ({err.strerror}; needs root, "
                "CAP_SYS_NICE or an rtprio limit)"
            )
    text = ", ".join(parts) if parts else "default scheduler"
    return text + ("; " + "; ".join(refused) if refused else "")
