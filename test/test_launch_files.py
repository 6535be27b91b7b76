"""Launch files and parameter files, checked without a ROS installation.

`launch`/`launch_ros` are not installable from PyPI, so the launch files are parsed, not run:
every executable they start must be a console script of setup.py (installed to
lib/anymal_ros), every parameter file they default to must exist in config/ with the
``node_name: ros__parameters:`` layout and only parameters the node declares, and every
LaunchConfiguration they read must be declared.
"""

import ast
from pathlib import Path

import pytest
import yaml

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


def test_policy_launch_reads_parameter_blocks_whatever_the_namespace():
    """Run the launch file's own YAML helper (extracted by AST) on the shipped files."""
    tree = ast.parse((REPO / "launch/policy.launch.py").read_text())
    func = next(
        n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "node_parameters"
    )
    namespace: dict = {"yaml": yaml}
    exec(compile(ast.Module([func], type_ignores=[]), "policy.launch.py", "exec"), namespace)
    params = namespace["node_parameters"](str(REPO / "config/policy_node.yaml"), "policy_node")
    assert params["command_topic"] == "joint_group_position_controller/commands"


@pytest.mark.parametrize("node", ["policy_node", "sim_node", "train_node"])
def test_parameter_files_use_declared_parameters(node):
    data = yaml.safe_load((REPO / "config" / f"{node}.yaml").read_text())
    assert list(data) == [node], "layout is `node_name: ros__parameters: ...`"
    params = data[node]["ros__parameters"]
    import importlib

    PARAMETERS = importlib.import_module(f"anymal_ros.nodes.{node}").PARAMETERS
    unknown = set(params) - set(PARAMETERS)
    assert not unknown, f"config/{node}.yaml: parameters the node does not declare: {unknown}"
    for name, value in params.items():
        default = PARAMETERS[name][0]
        if isinstance(default, (bool, str, list)):
            assert type(value) is type(default), f"{node}.{name}: {value!r} vs {default!r}"


def test_policy_node_takes_the_missing_height_fill_from_the_policy_file():
    from anymal_ros.nodes.policy_node import PARAMETERS

    # One source of truth: a parameter could only disagree with what the student was trained on.
    assert "missing_height_fill" not in PARAMETERS


def test_bundled_policy_falls_back_to_the_source_tree(monkeypatch):
    from anymal_ros.nodes.policy_node import bundled_policy_path

    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    assert bundled_policy_path() == REPO / "policies" / "student.onnx"
