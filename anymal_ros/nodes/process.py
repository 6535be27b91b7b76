"""The life of a node's process, shared by the nodes' ``main()``: rclpy started, the node
built and spun by the caller, and everything shut down however the spinning ends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

N = TypeVar("N", bound=Node)


@contextmanager
def node_process(make_node: Callable[[], N], args: list[str] | None = None) -> Iterator[N]:
    """``rclpy.init(args)``, then yield ``make_node()`` for the block to spin. Ctrl-C and an
    external shutdown end the block quietly (the caller's code after the block runs); on the
    way out the node is destroyed and rclpy shut down unless it already is."""
    rclpy.init(args=args)
    node = make_node()
    try:
        yield node
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
