"""tools/build_grid_map_msgs.py: make install's step that gives the venv grid_map_msgs."""

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_build_is_idempotent_and_quick_when_up_to_date():
    script = [sys.executable, str(REPO / "tools/build_grid_map_msgs.py"), sys.prefix]
    first = subprocess.run(script, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    start = time.monotonic()
    again = subprocess.run(script, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "up to date" in again.stdout, again.stdout + again.stderr
    assert time.monotonic() - start < 10.0
    check = "from grid_map_msgs.msg import GridMap; print(GridMap().outer_start_index)"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert out.stdout.strip() == "0", out.stderr


def test_a_missing_venv_is_refused_naming_it(tmp_path):
    script = [sys.executable, str(REPO / "tools/build_grid_map_msgs.py"), str(tmp_path / "nope")]
    result = subprocess.run(script, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "nope/bin/python does not exist" in result.stderr
