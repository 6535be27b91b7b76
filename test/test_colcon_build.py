"""The package builds with colcon as a ROS user would, and installs where ROS tools look.

`ros2 launch` finds launch files under share/<pkg>/launch, parameter files under
share/<pkg>/config, and `ros2 run` finds executables under lib/<pkg>. Every console script
declared in setup.py must land there and start.
"""

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SKIP = {".git", ".venv", "build", "install", "log", "runs", "out", ".pytest_cache", ".ruff_cache"}


def _colcon() -> str:
    exe = Path(sys.executable).with_name("colcon")
    if exe.exists():
        return str(exe)
    found = shutil.which("colcon")
    if not found:
        pytest.fail("colcon is not installed (make install provides colcon-core/colcon-ros)")
    return found


@pytest.fixture(scope="module")
def install_tree(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("ws")
    shutil.copytree(
        REPO,
        ws / "src" / "anymal_ros",
        ignore=lambda d, names: {n for n in names if n in SKIP or n.startswith(".venv")},
    )
    env = {**os.environ, "COLCON_HOME": str(ws / ".colcon")}
    result = subprocess.run(
        [_colcon(), "--log-base", str(ws / "log"), "build", "--base-paths", "src"],
        cwd=ws,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return ws / "install" / "anymal_ros"


def test_workspace_has_the_setup_scripts_a_ros_user_sources(install_tree):
    """`source install/setup.bash` (README, every ROS tutorial) needs colcon's bash extension;
    the POSIX setup.sh alone is what colcon-core writes."""
    ws = install_tree.parents[1]
    for script in ("setup.sh", "setup.bash", "local_setup.bash"):
        assert (ws / "install" / script).is_file(), f"install/{script} missing"
    assert (install_tree / "share/anymal_ros/package.bash").is_file()
    check = subprocess.run(
        ["bash", "-c", f"source {ws}/install/setup.bash && echo $AMENT_PREFIX_PATH"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    assert str(install_tree) in check.stdout.strip().split(":")


def test_share_tree_has_package_xml_launch_and_config(install_tree):
    share = install_tree / "share" / "anymal_ros"
    assert (share / "package.xml").is_file()
    assert (install_tree / "share/ament_index/resource_index/packages/anymal_ros").is_file()
    for folder, pattern in (("launch", "*.launch.py"), ("config", "*.yaml")):
        expected = {p.name for p in (REPO / folder).glob(pattern)}
        installed = {p.name for p in (share / folder).glob(pattern)}
        assert expected <= installed, f"{folder}: {sorted(expected - installed)} not installed"


def test_every_console_script_is_an_executable_under_lib(install_tree):
    egg_infos = list(install_tree.glob("lib/python*/site-packages/anymal_ros*.egg-info"))
    assert egg_infos, "no egg-info installed"
    entry_points = configparser.ConfigParser()
    entry_points.read(egg_infos[0] / "entry_points.txt")
    scripts = set(entry_points["console_scripts"])
    assert "anymal-ros" in scripts
    for name in scripts:
        exe = install_tree / "lib" / "anymal_ros" / name
        assert exe.is_file() and os.access(exe, os.X_OK), f"{name} missing from lib/anymal_ros"


def test_installed_cli_runs_from_the_install_tree(install_tree):
    site = next(install_tree.glob("lib/python*/site-packages"))
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [str(install_tree / "lib/anymal_ros/anymal-ros"), "--help"],
        env=env,
        cwd=install_tree,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "usage: anymal-ros" in out.stdout


def test_bundled_policy_is_installed_and_found_by_the_node(install_tree):
    """`ros2 launch anymal_ros policy.launch.py` with no model_path runs the installed file."""
    share = install_tree / "share" / "anymal_ros" / "policies"
    assert (share / "student.onnx").is_file() and (share / "MODEL_CARD.md").is_file()
    site = next(install_tree.glob("lib/python*/site-packages"))
    env = {**os.environ, "PYTHONPATH": str(site), "AMENT_PREFIX_PATH": str(install_tree)}
    code = (
        "from anymal_ros.nodes.policy_node import bundled_policy_path; print(bundled_policy_path())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=install_tree, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == str(share / "student.onnx")
