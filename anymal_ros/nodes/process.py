"""The life of a node's process, shared by the nodes' ``main()``: rclpy started, the node
built and spun by the caller, and everything shut down in order however the spinning ends.

Shutdown order is the point. rclpy's own signal handlers invalidate the context the moment
SIGINT or SIGTERM arrives, while timers, worker threads and the physics thread may still be
publishing ("publisher's context is invalid"), and raise ``KeyboardInterrupt`` wherever the
main thread happens to be, even inside ``destroy_node`` when a second signal follows (``ros2
launch`` forwards SIGINT to a process group the terminal already signalled). Here a signal
only asks the spin loop to end; then the caller's code after the loop runs (a training node
finishes its iteration and checkpoints), the node stops its threads and timers and is
destroyed, and only then is the context shut down. Signals that arrive meanwhile are noted,
never raised.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

import rclpy
from rclpy.executors import Executor, ExternalShutdownException
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

N = TypeVar("N", bound=Node)

SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: s a spin loop may wait for work before it looks for a signal again.
SPIN_PERIOD = 0.1


class NodeProcess(Generic[N]):
    """The running node and whether the process was asked to stop (SIGINT/SIGTERM)."""

    def __init__(self, node: N, signalled: threading.Event) -> None:
        self.node = node
        self.signalled = signalled

    @property
    def running(self) -> bool:
        return not self.signalled.is_set() and self.node.context.ok()

    def spin(
        self,
        executor: Executor,
        until: Callable[[], bool] = lambda: False,
        through_signals: bool = False,
    ) -> None:
        """Spin ``executor`` until ``until()`` is true, the context is shut down from outside,
        or (unless ``through_signals``) a signal asks the process to stop."""
        context = self.node.context
        try:
            while context.ok() and not until():
                if self.signalled.is_set() and not through_signals:
                    return
                executor.spin_once(timeout_sec=SPIN_PERIOD)
        except ExternalShutdownException:
            pass


@contextmanager
def node_process(
    make_node: Callable[[], N], args: list[str] | None = None
) -> Iterator[NodeProcess[N]]:
    """``rclpy.init(args)`` (``None``: the process's own ``sys.argv``, as ``ros2 run`` and
    ``ros2 launch`` pass them) without rclpy's signal handlers, then yield a
    :class:`NodeProcess` for the block to spin. SIGINT/SIGTERM set ``signalled``; on the way
    out the node is destroyed (its ``destroy_node`` stops its threads and timers first) and
    rclpy shut down, with further signals ignored."""
    signalled = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}

    received: list[int] = []

    def on_signal(signum: int, frame: object) -> None:  # nothing that could raise or block
        received.append(signum)
        signalled.set()

    for sig in SIGNALS:
        signal.signal(sig, on_signal)
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        try:
            node = make_node()
            try:
                yield NodeProcess(node, signalled)
            finally:
                if received:
                    node.get_logger().info(f"{signal.Signals(received[0]).name}: shut down")
                node.destroy_node()
        finally:
            if rclpy.ok():
                rclpy.shutdown()
    finally:
        # A signalled process is on its way out. Python's exit resets signals that have a
        # Python handler to the default (die by the signal, exit code -2), so later signals
        # are ignored outright.
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_IGN if received else handler)
