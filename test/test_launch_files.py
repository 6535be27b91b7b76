"""Launch files and parameter files, checked without a ROS installation.

`launch`/`launch_ros` are not installable from PyPI. The files are parsed (every executable
they start must be a console script of setup.py, installed to lib/anymal_ros; every parameter
file they default to must exist in config/ and set only parameters the node declares; every
LaunchConfiguration they read must be declared), and evaluated by ``launch_harness``, whose
stand-ins build each node's command line as launch_ros does; the real rcl/rclpy then read
those command lines here.
"""

import ast
import contextlib
import functools
from collections.abc import Callable
from pathlib import Path

import pytest
import rclpy
import yaml
from launch_harness import NodeAction, OnProcessExit, Shutdown, describe
from rclpy.context import Context
from rclpy.node import Node

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))


def console_scripts() -> set[str]:
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    return {ast.literal_eval(e).split("=")[0].strip() for e in value.elts}
    raise AssertionError("setup.py has no console_scripts")


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    def called(c: ast.Call) -> str:
        f = c.func
        return f.id if isinstance(f, ast.Name) else getattr(f, "attr", "")

    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and called(n) == name]


def constants(tree: ast.Module) -> dict[str, object]:
    """Module-level ``NAME = <literal>`` assignments."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node.value.value
    return out


def value(node: ast.AST, names: dict[str, object]):
    if isinstance(node, ast.Name):
        return names[node.id]
    return ast.literal_eval(node)


def keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def test_expected_launch_files_exist():
    names = {p.name for p in LAUNCH_FILES}
    assert {"policy.launch.py", "sim.launch.py"} <= names


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_structure(path):
    source = path.read_text()
    tree = ast.parse(source)
    compile(source, str(path), "exec")
    assert any(
        isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description"
        for n in tree.body
    )
    scripts = console_scripts()
    names = constants(tree)
    started = 0
    for kind in ("Node", "LifecycleNode"):
        for call in calls(tree, kind):
            started += 1
            assert value(keyword(call, "package"), names) == "anymal_ros"
            executable = value(keyword(call, "executable"), names)
            assert executable in scripts, f"{path.name}: {executable} is not a console script"
    assert started > 0, f"{path.name} starts no node"
    declared = {ast.literal_eval(c.args[0]) for c in calls(tree, "DeclareLaunchArgument")}
    used = set()
    for c in calls(tree, "LaunchConfiguration"):
        if isinstance(c.args[0], ast.Constant):
            used.add(c.args[0].value)
    for c in calls(tree, "arg"):  # the files' shorthand for LaunchConfiguration(...).perform
        used.add(ast.literal_eval(c.args[0]))
    assert used <= declared, f"{path.name}: undeclared launch arguments {used - declared}"
    for c in calls(tree, "DeclareLaunchArgument"):
        default = keyword(c, "default_value")
        if isinstance(default, ast.JoinedStr):  # f"{share}/config/x.yaml"
            tail = "".join(v.value for v in default.values if isinstance(v, ast.Constant))
            assert (REPO / tail.lstrip("/")).is_file(), f"{path.name}: {tail} not in the repo"


@pytest.mark.parametrize("node", ["policy_node", "sim_node", "train_node"])
def test_parameter_files_use_declared_parameters(node):
    data = yaml.safe_load((REPO / "config" / f"{node}.yaml").read_text())
    key = f"/**/{node}"  # the node in any namespace, as launch namespace:= puts it
    assert list(data) == [key], f"layout is `{key}: ros__parameters: ...`"
    params = data[key]["ros__parameters"]
    import importlib

    PARAMETERS = importlib.import_module(f"anymal_ros.nodes.{node}").PARAMETERS
    unknown = set(params) - set(PARAMETERS)
    assert not unknown, f"config/{node}.yaml: parameters the node does not declare: {unknown}"
    for name, value in params.items():
        default = PARAMETERS[name][0]
        if isinstance(default, (bool, str, list)):
            assert type(value) is type(default), f"{node}.{name}: {value!r} vs {default!r}"


def test_policy_node_yaml_spells_out_every_default_the_node_declares():
    from rclpy.parameter import Parameter

    from anymal_ros.nodes.policy_node import PARAMETERS

    data = yaml.safe_load((REPO / "config" / "policy_node.yaml").read_text())
    params = data["/**/policy_node"]["ros__parameters"]
    # Parameters declared by type only (unset = the policy file's limits, all CPUs) stay
    # commented out in the YAML; every other one is there with the node's default.
    defaults = {
        name: default
        for name, (default, _) in PARAMETERS.items()
        if not isinstance(default, Parameter.Type)
    }
    assert params == defaults


def test_policy_node_takes_the_missing_height_fill_from_the_policy_file():
    from anymal_ros.nodes.policy_node import PARAMETERS

    # One source of truth: a parameter could only disagree with what the student was trained on.
    assert "missing_height_fill" not in PARAMETERS


def test_bundled_policy_falls_back_to_the_source_tree(monkeypatch):
    from anymal_ros.nodes.policy_node import bundled_policy_path

    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    assert bundled_policy_path() == REPO / "policies" / "student.onnx"


@contextlib.contextmanager
def node_from_launch(action: NodeAction, workdir: Path, make: Callable[[Context], Node]):
    """The node ``make`` builds in a context initialised with the command line that launch_ros
    gives ``action`` (remappings and parameter files, applied by rcl as in the process)."""
    context = Context()
    rclpy.init(args=action.command(workdir), context=context)
    try:
        node = make(context)
        try:
            yield node
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


@pytest.mark.parametrize(
    ("namespace", "key"),
    [
        ("anymal", "/anymal/policy_node"),  # the fully qualified name
        ("anymal", "/**"),
        ("anymal", "/**/policy_node"),
        ("anymal", "/anymal/*"),
        ("anymal", "/*/policy_node"),
        ("anymal", "/anymal/**"),
        ("", "policy_node"),
        ("", "/policy_node"),
    ],
)
def test_policy_launch_applies_every_form_of_parameter_file(namespace, key, tmp_path):
    """Every key `ros2 run --params-file` matches works through the launch file (the file
    used to be read by the launch file, which knew only policy_node, /policy_node and /**),
    and the launch arguments still win over the file."""
    from anymal_ros.nodes.policy_node import PolicyNode

    params = tmp_path / "params.yaml"
    block = {"stand_duration": 4.5, "autostart": False, "cmd_vel_timeout": 0.25}
    params.write_text(yaml.safe_dump({key: {"ros__parameters": block}}))
    launched = describe("policy.launch.py", namespace=namespace, params_file=str(params))
    policy = launched.node("policy_node")
    with node_from_launch(policy, tmp_path, lambda c: PolicyNode(context=c)) as node:
        expected_name = f"/{namespace}/policy_node" if namespace else "/policy_node"
        assert node.get_fully_qualified_name() == expected_name
        assert node.p("stand_duration") == 4.5 and node.p("cmd_vel_timeout") == 0.25
        assert node.p("autostart") is True  # autostart:=true (the default) over the file


@pytest.mark.parametrize("node", ["policy_node", "sim_node", "train_node"])
def test_shipped_parameter_files_apply_in_any_namespace(node, tmp_path):
    """Each launch file's default parameter file reaches its node, also under a namespace."""
    from anymal_ros.nodes.policy_node import PolicyNode
    from anymal_ros.nodes.sim_node import SimNode
    from anymal_ros.nodes.train_node import TrainNode

    launch_file, arguments, make = {
        "policy_node": ("policy.launch.py", {"namespace": "a"}, PolicyNode),
        "sim_node": ("sim.launch.py", {"namespace": "a"}, SimNode),
        "train_node": ("train.launch.py", {}, functools.partial(TrainNode, start=False)),
    }[node]
    file_values = yaml.safe_load((REPO / "config" / f"{node}.yaml").read_text())
    (block,) = file_values.values()
    (action,) = describe(launch_file, **arguments).nodes
    with node_from_launch(action, tmp_path, lambda c: make(context=c)) as started:
        launch_set = set().union(*(p for p in action.parameters if isinstance(p, dict)))
        for name, value in block["ros__parameters"].items():
            if name not in launch_set:
                assert started.get_parameter(name).value == value, name


@pytest.mark.parametrize("sim", ["false", "true"])
def test_train_launch_ends_when_train_node_exits(sim):
    """train_node's process ends when training does (done, ~/stop, failed: see
    test_node_processes); the launch must then shut down, sim_node included, instead of
    running until Ctrl-C."""
    launched = describe("train.launch.py", sim=sim)
    train = launched.node("train_node")
    on_exit = [
        action
        for handler in launched.handlers
        if isinstance(handler, OnProcessExit) and handler.target_action is train
        for action in handler.on_exit
    ]
    assert any(isinstance(action, Shutdown) for action in on_exit), launched.handlers


@pytest.mark.parametrize(
    ("launch_file", "arguments"),
    [
        ("policy.launch.py", {"sim": "true", "use_sim_time": "true"}),
        ("sim.launch.py", {"use_sim_time": "true"}),
        ("train.launch.py", {"sim": "true"}),
    ],
)
def test_launch_files_set_only_parameters_their_nodes_declare(launch_file, arguments, tmp_path):
    """A parameter the node does not declare is dropped without a word by rclpy: a launch
    argument feeding one does nothing (sim.launch.py's render:= did, for a while)."""
    from anymal_ros.nodes.policy_node import PolicyNode
    from anymal_ros.nodes.sim_node import SimNode
    from anymal_ros.nodes.train_node import TrainNode

    makers = {
        "policy_node": PolicyNode,
        "sim_node": SimNode,
        "train_node": functools.partial(TrainNode, start=False),
    }
    for action in describe(launch_file, **arguments).nodes:
        launch_set = set().union(*(p for p in action.parameters if isinstance(p, dict)))
        make = makers[action.executable]
        with node_from_launch(action, tmp_path, lambda c, make=make: make(context=c)) as node:
            unknown = sorted(n for n in launch_set if not node.has_parameter(n))
            assert not unknown, f"{launch_file} sets {unknown} on {action.executable}"
