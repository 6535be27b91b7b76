"""`anymal-ros demo`: sim_node + policy_node closed loop in one process."""

import json

import pytest

pytest.importorskip(
    "anymal_ros.sim.env", reason="the MuJoCo env (anymal_ros.sim, branch sim) is not merged yet"
)

from anymal_ros.cli import main  # noqa: E402

pytestmark = pytest.mark.ros


@pytest.mark.parametrize("terrain", ["stairs", "flat"])
def test_demo_runs_closed_loop_and_writes_plot(tmp_path, capsys, terrain):
    argv = ["demo", "--seconds", "3", "--terrain", terrain, "--out-dir", str(tmp_path)]
    assert main([*argv, "--no-video"]) == 0
    out = capsys.readouterr().out
    assert "policy:" in out and "walk: WALK" in out
    summary = json.loads((tmp_path / "demo.json").read_text())
    assert summary["terrain"] == terrain and summary["height_source"] == "elevation_map"
    assert summary["falls"] == 0 and summary["seconds"] >= 2.9
    assert summary["lin_vel_error_mean"] >= 0.0
    assert (tmp_path / "demo_velocity.png").stat().st_size > 1000


def test_demo_says_when_a_callback_ended_the_nodes_executor(tmp_path, capsys, monkeypatch):
    # Every node spins on one executor thread; a callback that raises ends it and with it
    # every node. The demo says so and stops, rather than waiting on silent topics.
    from anymal_ros.nodes.policy_node import PolicyNode

    def broken(self):
        raise RuntimeError("diagnostics broke")

    monkeypatch.setattr(PolicyNode, "_publish_diagnostics", broken)
    argv = ["demo", "--seconds", "5", "--terrain", "flat", "--out-dir", str(tmp_path)]
    assert main([*argv, "--no-video"]) == 1
    out = capsys.readouterr().out
    assert "executor thread ended: RuntimeError('diagnostics broke')" in out
    assert not (tmp_path / "demo.json").exists()
