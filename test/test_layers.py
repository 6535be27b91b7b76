"""The layers hold: every module imports only from its own layer or the layers below it
(docs/architecture.md), so the robot's runtime never drags in training code and nothing low
depends on something high."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "anymal_ros"
#: Top-level module or package of anymal_ros -> its layer (docs/architecture.md, "Layers").
LAYERS = {
    "contract": 0, "files": 0,
    "config": 1,
    "obs": 2, "models": 2, "replay": 2,
    "sim": 3, "bridges": 3, "deploy": 3, "ros_io": 3,
    "rl": 4, "eval": 4,
    "nodes": 5, "commands": 5, "cli": 5,
}  # fmt: skip


def imports_of(path: Path) -> list[str]:
    """Every ``anymal_ros.*`` module a file imports, at any depth (functions included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return [name for name in found if name.startswith("anymal_ros.")]


def test_every_module_has_a_layer():
    tops = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()}
    tops -= {"__init__", "__pycache__", "robots"}  # robots/: data files only
    assert tops == set(LAYERS), f"give these a layer: {sorted(tops ^ set(LAYERS))}"


def test_no_module_imports_from_a_higher_layer():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        top = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if top == "__init__":
            continue
        for name in imports_of(path):
            target = name.split(".")[1]
            if LAYERS[target] > LAYERS[top]:
                wrong.append(f"{path.relative_to(PACKAGE)} (layer {LAYERS[top]}) imports "
                             f"{name} (layer {LAYERS[target]})")  # fmt: skip
    assert not wrong, "\n".join(wrong)


def test_the_onboard_runtime_needs_neither_torch_nor_mujoco():
    runtime = PACKAGE / "deploy" / "runtime.py"
    seen, todo = set(), [runtime]
    while todo:  # the runtime's own modules and everything they import from the package
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        text = path.read_text()
        assert "import torch" not in text and "import mujoco" not in text, path
        for name in imports_of(path):
            module = PACKAGE.parent / Path(*name.split("."))
            todo.append(module.with_suffix(".py") if module.with_suffix(".py").exists()
                        else module / "__init__.py")  # fmt: skip
