"""`anymal-ros step-sweep` on a tiny run of the real simulator: the bundled ONNX student on its
own robot and a real teacher checkpoint on another, exact risers, JSON rows, table and figure."""

from __future__ import annotations

import json

import numpy as np
import pytest
from model_helpers import tiny_teacher_checkpoint
from sim_helpers import tiny_sim

from anymal_ros.cli import main
from anymal_ros.config import from_dict
from anymal_ros.config.sim import SimConfig
from anymal_ros.eval.evaluate import METRICS, EvalSettings, make_eval_env, pool_seeds
from anymal_ros.eval.gait import GAIT_METRICS
from anymal_ros.eval.step_sweep import RISER_GRID, at_step_height, riser_grid
from anymal_ros.nodes.policy_node import bundled_policy_path


@pytest.fixture(scope="module")
def teacher_path(tmp_path_factory):
    return tiny_teacher_checkpoint(tmp_path_factory.mktemp("ckpt") / "teacher.pt")


@pytest.mark.parametrize("grid", [RISER_GRID, None])
def test_the_field_has_exactly_the_asked_riser(grid):
    """Without the override the level-0 field's risers would be step_height[0] (5 cm); on the
    sweep's grid each riser is one 2.5 cm cell wide, with None on the policy's own 10 cm."""
    sim = from_dict(SimConfig, tiny_sim(episode_length_s=1.0))
    settings = EvalSettings(terrains=("stairs_up",), noise_modes=("none",), num_envs=1)
    field = at_step_height(sim, 0.13, grid)
    env = make_eval_env(field, "stairs_up", settings)
    terrain = env.terrain
    env.close()
    assert terrain.resolution == riser_grid(field) == (grid or sim.terrain.resolution)
    row = terrain.grid[terrain.grid.shape[0] // 2]  # through the centre tile, along x
    risers = np.abs(np.diff(row))
    risers = risers[risers > 1e-9]
    assert risers.size >= 10
    np.testing.assert_allclose(risers, 0.13, atol=1e-9)
    with pytest.raises(ValueError, match="step height"):
        at_step_height(sim, 0.0)


def test_sweep_rows_table_and_figure(teacher_path, tmp_path, capsys):
    student = bundled_policy_path()
    out = tmp_path / "sweep"
    argv = ["step-sweep", str(student), str(teacher_path), "--labels", "student", "teacher",
            "--heights", "0.05", "0.17", "--seeds", "3", "--num-envs", "2",
            "--episode-length", "1", "--out", str(out), "--quiet",
            "--set", "randomization.push_force=0.0"]  # fmt: skip
    assert main(argv) == 0
    data = json.loads((out / "step_sweep.json").read_text())
    rows = data["rows"]
    # policy x direction x height, in that order
    assert [(r["policy"], r["direction"], r["step_height"]) for r in rows] == [
        (p, d, h) for p in ("student", "teacher") for d in ("up", "down") for h in (0.05, 0.17)
    ]
    # Each policy in its own simulator: the first edition's student on its own robot.
    assert {r["policy"]: r["robot"] for r in rows} == {
        "student": "anymal_c_like", "teacher": "anymal_c"
    }  # fmt: skip
    for r in rows:
        assert r["seed"] == 3 and r["robots"] == 2 and r["noise"] == "none"
        assert r["tread"] == pytest.approx(0.3) and r["episode_length_s"] == pytest.approx(1.0)
        assert r["grid"] == RISER_GRID  # both policies on the same near-vertical risers
        assert 0 <= r["falls"] <= 2 and r["steps"] > 0
        assert r["minutes"] == pytest.approx(r["steps"] * 0.02 / 60)
        assert r["falls_per_10min"] == pytest.approx(10 * r["falls"] / r["minutes"])
        for k in ("tracking_error", *GAIT_METRICS):
            assert np.isfinite(r[k]), k
    assert len(data["pooled"]) == len(rows)  # one seed: nothing to pool
    table = (out / "step_sweep.md").read_text().strip().splitlines()
    assert len(table) == 2 + 2 + 2  # caption, blank, head, rule, two heights
    assert table[-1].startswith("| 17 |") and table[-1].count("|") == 6
    assert "| 17 |" in capsys.readouterr().out
    png = out / "step_sweep.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    # Two rows at a time, each in a process of its own: the same rows, in the same order.
    assert main([*argv[:-5], "--out", str(tmp_path / "jobs"), "--jobs", "2", "--quiet",
                 "--set", "randomization.push_force=0.0"]) == 0  # fmt: skip
    assert json.loads((tmp_path / "jobs" / "step_sweep.json").read_text())["rows"] == rows
    # --merge alone redraws earlier rows
    again = tmp_path / "again"
    assert main(["step-sweep", "--merge", str(out / "step_sweep.json"), "--out", str(again)]) == 0
    assert json.loads((again / "step_sweep.json").read_text())["rows"] == rows
    assert (again / "step_sweep.png").is_file()
    # Rows from before sweeps chose the grid were on the terrain's 10 cm: another series.
    old = json.loads((out / "step_sweep.json").read_text())
    for r in old["rows"]:
        del r["grid"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    both = tmp_path / "both"
    assert main(["step-sweep", "--merge", str(out / "step_sweep.json"), str(tmp_path / "old.json"),
                 "--out", str(both)]) == 0  # fmt: skip
    head = (both / "step_sweep.md").read_text().splitlines()[2]
    assert "student (2.5 cm grid): up" in head and "student (10 cm grid): up" in head
    # the same rows twice would be pooled twice
    with pytest.raises(SystemExit, match="rows repeat"):
        main(["step-sweep", "--merge", str(out / "step_sweep.json"), str(out / "step_sweep.json"),
              "--out", str(again)])  # fmt: skip


def test_sweep_refuses_bad_input(tmp_path):
    with pytest.raises(SystemExit, match="at least one POLICY"):
        main(["step-sweep", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="labels"):
        main(["step-sweep", str(bundled_policy_path()), "--labels", "a", "b"])
    with pytest.raises(SystemExit, match="share a label"):
        main(["step-sweep", str(bundled_policy_path()), str(bundled_policy_path())])
    with pytest.raises(SystemExit, match="step height"):
        main(["step-sweep", str(bundled_policy_path()), "--heights", "-0.1", "--num-envs", "1",
              "--out", str(tmp_path), "--quiet"])  # fmt: skip
    with pytest.raises(SystemExit, match="--riser-grid must be >= 0"):
        main(["step-sweep", str(bundled_policy_path()), "--riser-grid", "-0.1"])


def test_pooling_sums_falls_by_cause_and_later_metrics_only_where_every_seed_has_them():
    def row(seed, falls, **cause):
        return {"policy": "p", "seed": seed, "robots": 4, "falls": falls, "minutes": 1.0,
                "steps": 3000, **dict.fromkeys(METRICS, 0.5), **cause}  # fmt: skip

    both = pool_seeds([row(0, 3, falls_base_contact=1), row(1, 2, falls_base_contact=2)],
                      ("policy",))  # fmt: skip
    assert both[0]["falls"] == 5 and both[0]["falls_base_contact"] == 3
    older = pool_seeds([row(0, 3, falls_base_contact=1), row(1, 2)], ("policy",))
    assert older[0]["falls"] == 5 and "falls_base_contact" not in older[0]
    # A metric added later (the trunk's clearance) is averaged where every row has it only.
    assert both[0]["trunk_clearance"] == pytest.approx(0.5)
    before = row(1, 2)
    del before["trunk_clearance"]
    mixed = pool_seeds([row(0, 3), before], ("policy",))
    assert "trunk_clearance" not in mixed[0] and mixed[0]["tracking_error"] == pytest.approx(0.5)
    with pytest.raises(KeyError, match="tracking_error"):  # any other metric must be there
        pool_seeds([row(0, 3), {k: v for k, v in row(1, 2).items() if k != "tracking_error"}],
                   ("policy",))  # fmt: skip
