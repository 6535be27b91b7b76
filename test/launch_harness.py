"""Evaluate the package's launch files without the ROS `launch` library (not on PyPI).

Stand-ins for the few `launch` / `launch_ros` classes the launch files use record what they
are given; :func:`describe` runs a file's ``generate_launch_description()`` the way ``ros2
launch`` does (declared defaults, then the user's ``name:=value`` arguments, then the opaque
functions), and :meth:`NodeAction.command` builds a node's command line as ``launch_ros``
does: ``--ros-args -r __node:=NAME [-r __ns:=/NS] --params-file FILE...``, where a path in
``parameters`` is passed as it is and a dict is written to a file keyed by the node's full
name (``/**`` without a namespace). What the nodes then make of that command line is the
real rcl/rclpy code.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]


class LaunchContext:
    def __init__(self) -> None:
        self.launch_configurations: dict[str, str] = {}


@dataclass
class DeclareLaunchArgument:
    name: str
    default_value: str | None = None
    description: str = ""


@dataclass
class LaunchConfiguration:
    name: str

    def perform(self, context: LaunchContext) -> str:
        return context.launch_configurations[self.name]


@dataclass
class OpaqueFunction:
    function: Any


@dataclass
class Shutdown:
    reason: str = ""


@dataclass
class OnProcessExit:
    target_action: Any = None
    on_exit: list = field(default_factory=list)


@dataclass
class RegisterEventHandler:
    event_handler: Any


@dataclass(eq=False)
class NodeAction:
    package: str
    executable: str
    name: str | None = None
    namespace: str | None = None
    parameters: list = field(default_factory=list)
    output: str = "log"
    emulate_tty: bool = False

    def command(self, workdir: Path) -> list[str]:
        """``[executable, '--ros-args', ...]`` as launch_ros starts the node."""
        ros_args = []
        if self.name is not None:
            ros_args += ["-r", f"__node:={self.name}"]
        if self.namespace is not None:
            ros_args += ["-r", f"__ns:=/{self.namespace.strip('/')}"]
        # launch_ros keys a dict's file by the node's full name when name and namespace are
        # both given, else by /**.
        key = "/**"
        if self.name is not None and self.namespace is not None:
            key = "/" + "/".join(p for p in (*self.namespace.split("/"), self.name) if p)
        for i, params in enumerate(self.parameters):
            if isinstance(params, dict):
                path = workdir / f"{self.executable}_params_{i}.yaml"
                path.write_text(yaml.safe_dump({key: {"ros__parameters": params}}))
                params = str(path)
            ros_args += ["--params-file", str(params)]
        return [self.executable, "--ros-args", *ros_args]

    def module_command(self, workdir: Path) -> list[str]:
        """:meth:`command` run as ``python -m anymal_ros.nodes.<executable>``."""
        _, *rest = self.command(workdir)
        return [sys.executable, "-m", f"{self.package}.nodes.{self.executable}", *rest]


class LifecycleNode(NodeAction):
    pass


class LaunchDescription(list):
    pass


def _stand_ins() -> dict[str, types.ModuleType]:
    def module(name: str, **attrs: Any) -> types.ModuleType:
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        return m

    return {
        "launch": module("launch", LaunchDescription=LaunchDescription),
        "launch.actions": module(
            "launch.actions",
            DeclareLaunchArgument=DeclareLaunchArgument,
            OpaqueFunction=OpaqueFunction,
            RegisterEventHandler=RegisterEventHandler,
            Shutdown=Shutdown,
        ),
        "launch.substitutions": module(
            "launch.substitutions", LaunchConfiguration=LaunchConfiguration
        ),
        "launch.event_handlers": module("launch.event_handlers", OnProcessExit=OnProcessExit),
        "launch_ros": module("launch_ros"),
        "launch_ros.actions": module(
            "launch_ros.actions", Node=NodeAction, LifecycleNode=LifecycleNode
        ),
        "ament_index_python": module("ament_index_python"),
        "ament_index_python.packages": module(
            "ament_index_python.packages", get_package_share_directory=lambda pkg: str(REPO)
        ),
    }


@contextlib.contextmanager
def _stand_in_modules():
    stand_ins = _stand_ins()
    saved = {name: sys.modules.get(name) for name in stand_ins}
    sys.modules.update(stand_ins)
    try:
        yield
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


@dataclass
class Launched:
    """What a launch file started: its node actions and its event handlers."""

    nodes: list[NodeAction]
    handlers: list[Any]

    def node(self, executable: str) -> NodeAction:
        (found,) = [n for n in self.nodes if n.executable == executable]
        return found


def describe(launch_file: str, **arguments: str) -> Launched:
    """Evaluate ``launch/<launch_file>`` with ``arguments`` (``name=value`` as ``name:=value``).
    The share directory is the repository (``config/`` defaults resolve to the source tree)."""
    path = REPO / "launch" / launch_file
    with _stand_in_modules():
        spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        description = module.generate_launch_description()
        context = LaunchContext()
        launched = Launched([], [])
        pending = list(description)
        while pending:
            entity = pending.pop(0)
            if isinstance(entity, DeclareLaunchArgument):
                value = arguments.pop(entity.name, entity.default_value)
                assert value is not None, f"{launch_file}: argument {entity.name} is required"
                context.launch_configurations[entity.name] = value
            elif isinstance(entity, OpaqueFunction):
                pending = list(entity.function(context) or []) + pending
            elif isinstance(entity, NodeAction):
                launched.nodes.append(entity)
            elif isinstance(entity, RegisterEventHandler):
                launched.handlers.append(entity.event_handler)
            else:
                raise AssertionError(f"{launch_file}: no stand-in for {entity!r}")
        assert not arguments, f"{launch_file} declares no {sorted(arguments)}"
    return launched
