"""The fall log of an evaluation cell (anymal_ros.eval.falls) and `anymal-ros falls`: each fall
with the command and randomised physics of the robot that fell, set against all robots."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from anymal_ros.cli import main
from anymal_ros.config.sim import SimConfig
from anymal_ros.eval.evaluate import EvalSettings, make_eval_env, run_cell
from anymal_ros.eval.falls import (
    CONDITIONS,
    PLACES,
    SPEED_WINDOW_S,
    VX_BANDS,
    FallLog,
    fall_step,
    markdown,
    markdown_by_place,
    markdown_by_vx,
    summary,
)


class _StandStill:
    head, kind = "gaussian", "teacher"

    def __init__(self, num_envs: int, num_actions: int) -> None:
        self.num_envs, self.num_actions = num_envs, num_actions

    def reset(self, env_ids):
        pass

    def act(self, obs):
        return np.zeros((self.num_envs, self.num_actions), dtype=np.float32)


def test_every_fall_is_logged_with_the_conditions_its_robot_was_drawn():
    # A tilt limit of 0.5 mrad: every robot "falls" as it settles after the drop, each one a
    # record; an identical twin simulator shows what the first reset drew for each robot.
    base = SimConfig()
    sim = dataclasses.replace(
        base, termination=dataclasses.replace(base.termination, max_tilt=5e-4)
    )
    settings = EvalSettings(num_envs=4, seed=3, episode_length_s=1.0)
    env, twin = make_eval_env(sim, "flat", settings), make_eval_env(sim, "flat", settings)
    try:
        cell = run_cell(env, _StandStill(4, env.action_dim), "none", seed=3)
        twin.reset()
        r = twin.randomizer
        friction = r.foot_friction.mean(axis=1)
        strength = r.motor_strength[:, 0]
        added = twin.model.body_mass[twin.index.base_body] - r.nominal_mass
        latency, command = r.latency, twin.commands.command
        start, centre = twin.start_xy, twin.origins[:, :2]
        dt, end = twin.control_dt, twin.max_episode_steps * twin.control_dt
    finally:
        env.close()
        twin.close()
    assert cell["falls"] == 4 and len(cell["fall_log"]) == 4
    assert sorted(f["robot"] for f in cell["fall_log"]) == [0, 1, 2, 3]
    for f in cell["fall_log"]:
        i = f["robot"]
        assert f["cause"] == "tilt"  # no trunk on the ground: the limit, not a fall, ended it
        assert 0 < f["time_s"] < end and f["time_s"] / dt == pytest.approx(round(f["time_s"] / dt))
        assert (f["vx"], f["vy"], f["yaw_rate"]) == pytest.approx(tuple(command[i]), abs=1e-3)
        assert f["speed"] == pytest.approx(np.hypot(*command[i, :2]), abs=1e-3)
        assert f["friction"] == pytest.approx(friction[i], abs=1e-3)
        assert f["motor_strength"] == pytest.approx(strength[i], abs=1e-3)
        assert f["added_mass"] == pytest.approx(added[i], abs=1e-3)
        assert f["latency_steps"] == latency[i]
        assert VX_BANDS[f["vx_band"]] == _band(command[i, 0])
        # Each settled where it was dropped: on its tile's flat centre, about where it started.
        assert PLACES[f["place"]] == "platform"
        assert f["from_centre"] == pytest.approx(np.abs(start[i] - centre[i]).max(), abs=0.05)
        if f["time_s"] > SPEED_WINDOW_S[1] + dt / 2:  # its window has begun: a small speed
            assert 0 <= f["ground_speed"] < 0.5 and abs(f["outward_speed"]) <= f["ground_speed"]
        else:
            assert f["ground_speed"] is None and f["outward_speed"] is None
    assert len({f["friction"] for f in cell["fall_log"]}) == 4  # drawn per robot
    assert cell["conditions"]["friction"] == pytest.approx(friction.mean(), abs=1e-4)
    assert cell["conditions"]["turn_rate"] == pytest.approx(np.abs(command[:, 2]).mean(), abs=1e-4)
    bands = [_band(vx) for vx in command[:, 0]]
    assert cell["robots_by_vx"] == [bands.count(b) for b in VX_BANDS]


def test_a_fall_record_gives_back_the_step_it_was_taken_on():
    # The log keeps the time at the end of the falling step, rounded to the millisecond; the
    # step comes back from it at control periods from 2.5 to 20 ms, and a fall on the last
    # step of a trace that ends there stays inside it.
    for dt in (0.02, 0.0025, 1 / 60):
        for step in (0, 1, 149, 999):
            record = {"time_s": round((step + 1) * dt, 3)}
            assert fall_step(record, dt, 1000) == step
    assert fall_step({"time_s": 20.02}, 0.02, 1000) == 999


def test_a_fall_is_placed_on_its_field_with_the_speeds_of_the_second_before():
    """Four robots on a field of stairs down, moved along set paths for 2 s: one walks down the
    steps (away from its tile's centre) at 0.5 m/s, one up them at 0.3 m/s, one stands on the
    flat centre, one has walked onto the next tile. Their walk counts once the speed window no
    longer reaches back to their start (their jump from it to their paths would read as speed);
    the one on the centre stops counting at 1.6 s and does not fall, the others fall at the end."""
    settings = EvalSettings(num_envs=4, seed=1, episode_length_s=2.0)
    env = make_eval_env(SimConfig(), "stairs_down", settings)
    try:
        env.reset()
        log = FallLog(env)
        centre, dt = env.origins[:, :2], env.control_dt
        steps = round(2.0 / dt)
        platform, tile = env.terrain.cfg.platform_size, env.terrain.cfg.tile_size
        first, stop = round(SPEED_WINDOW_S[0] / dt), round(1.6 / dt)  # counted steps
        for k in range(1, steps + 1):
            t = k * dt
            xy = centre + np.array([[platform / 2 + 0.5 * t, 0.0],  # +x, down the steps
                                    [0.0, -(tile / 2 - 0.2) + 0.3 * t],  # -y side, going up
                                    [0.1, 0.2],  # on the platform
                                    [tile / 2 + 0.3, 0.0]])  # fmt: skip
            walking = np.array([k > first, k > first, first < k <= stop, k > first])
            log.update(walking & (k == steps), np.zeros(4, bool), t, xy, walking)
        result = log.result()
        records = result["fall_log"]
    finally:
        env.close()
    assert [PLACES[f["place"]] for f in records] == ["walking out", "walking in", "another tile"]
    down, up, beyond = records
    assert (down["ground_speed"], down["outward_speed"]) == pytest.approx((0.5, 0.5))
    assert (up["ground_speed"], up["outward_speed"]) == pytest.approx((0.3, -0.3))
    assert down["from_centre"] == pytest.approx(platform / 2 + 1.0)
    assert up["from_centre"] == pytest.approx(tile / 2 - 0.2 - 0.6)
    assert beyond["from_centre"] == pytest.approx(tile / 2 - 0.3)
    # Every counted step, placed and timed as a fall would be: seconds and mean speed per place.
    seconds, still = (steps - first) * dt, (stop - first) * dt
    assert result["walking_by_place"] == [
        [pytest.approx(still), 0.0], [pytest.approx(seconds), pytest.approx(0.5)],
        [pytest.approx(seconds), pytest.approx(0.3)], [pytest.approx(seconds), 0.0]]  # fmt: skip


def _band(vx: float) -> str:
    """The band of VX_BANDS a forward command falls in, written out independently."""
    if vx < -0.6:
        return "< -0.6"
    if vx < -0.2:
        return "-0.6 to -0.2"
    if vx < 0.2:
        return "-0.2 to 0.2"
    return "0.2 to 0.6" if vx < 0.6 else ">= 0.6"


def _fall(robot: int, cause: str, speed: float, friction: float, band: int = 4) -> dict:
    vx = speed if band >= 2 else -speed  # straight ahead or straight back
    f = {"robot": robot, "time_s": 1.0, "cause": cause, "vx": vx, "vy": 0.0, "yaw_rate": 0.0}
    return {**f, **{n: 0.0 for n in CONDITIONS}, "speed": speed, "friction": friction,
            "vx_band": band}  # fmt: skip


def _cell(seed: int, log: list[dict], speed: float, role: str = "candidate") -> dict:
    conditions = {**{n: 0.0 for n in CONDITIONS}, "speed": speed, "friction": 0.8}
    return {"role": role, "row": "slope 20 deg down", "terrain": "slope_down", "noise": "none",
            "physics": "training", "seed": seed, "episodes": 10, "fall_log": log,
            "conditions": conditions, "robots_by_vx": [1, 2, 3, 2, 2]}  # fmt: skip


def test_summary_pools_the_seeds_and_sets_the_fallen_against_all():
    cells = [
        _cell(1, [_fall(0, "trunk", 1.0, 0.5), _fall(4, "tilt", 0.8, 0.7, band=0)], speed=0.5),
        _cell(2, [_fall(2, "trunk", 0.9, 0.6)], speed=0.3),
        _cell(1, [], speed=0.5, role="baseline"),
        {"role": "candidate", "row": "flat", "episodes": 10},  # a file from before the log
    ]
    cand, base = summary(cells)
    assert (cand["role"], cand["row"], cand["robots"], cand["falls"], cand["trunk"]) == (
        "candidate", "slope 20 deg down", 20, 3, 2)  # fmt: skip
    assert cand["fell/speed"] == pytest.approx(0.9) and cand["all/speed"] == pytest.approx(0.4)
    assert cand["fell/friction"] == pytest.approx(0.6) and cand["all/friction"] == 0.8
    assert "terrain" not in cand  # the row names it
    assert base["falls"] == 0 and base["fell/speed"] is None
    table = markdown([cand, base]).splitlines()
    assert len(table) == 4 and "3 (2) / 20" in table[2] and "0.90 / 0.40" in table[2]
    assert "- / 0.50" in table[3]
    # Two seeds of 10 robots each: 2 + 4 + 6 + 4 + 4 by band; one fall backwards, two forwards.
    assert cand["by_vx"] == [[1, 2], [0, 4], [0, 6], [0, 4], [2, 4]]
    assert base["by_vx"] == [[0, 1], [0, 2], [0, 3], [0, 2], [0, 2]]
    bands = markdown_by_vx([cand, base]).splitlines()
    assert "vx < -0.6 m/s" in bands[0]
    assert bands[2].endswith("| 1 / 2 | 0 / 4 | 0 / 6 | 0 / 4 | 2 / 4 |")


def test_summary_counts_the_falls_by_place_with_their_speed_before(tmp_path, capsys):
    def placed(robot: int, place: str, speed: float | None) -> dict:
        where = {"place": PLACES.index(place), "from_centre": 2.0, "ground_speed": speed,
                 "outward_speed": speed}  # fmt: skip
        return {**_fall(robot, "tilt", 0.8, 0.7), **where}

    log = [placed(0, "walking out", 0.6), placed(1, "walking out", 0.4),
           placed(2, "platform", None), placed(3, "another tile", 0.9)]  # fmt: skip
    (row,) = summary([_cell(1, log, speed=0.5)])
    assert row["by_place"] == [[1, None], [2, pytest.approx(0.5)], [0, None], [1, 0.9]]
    table = markdown_by_place([row]).splitlines()
    assert "| platform | walking out | walking in | another tile |" in table[0]
    assert table[2].endswith("| 1 | 2 (0.50) | 0 | 1 (0.90) |")
    result = tmp_path / "eval.json"
    result.write_text(json.dumps({"rows": [_cell(1, log, speed=0.5)]}))
    assert main(["falls", str(result), "--plot", str(tmp_path / "places.png")]) == 0
    out = capsys.readouterr().out
    assert "Falls by place" in out and table[2] in out
    assert f"wrote {tmp_path / 'places.png'}" in out and (tmp_path / "places.png").stat().st_size
    old_log = tmp_path / "old.json"
    old_log.write_text(json.dumps({"rows": [_cell(1, [_fall(0, "trunk", 1.0, 0.5)], 0.5)]}))
    assert main(["falls", str(old_log), "--plot", str(tmp_path / "none.png")]) == 0
    assert "no plot: no fall in these cells has a place" in capsys.readouterr().out
    assert not (tmp_path / "none.png").exists()
    # A log from before the places has none, and no table.
    (old,) = summary([_cell(1, [_fall(0, "trunk", 1.0, 0.5)], speed=0.5)])
    assert old["by_place"] is None and markdown_by_place([old]) == ""
    # Where the cells timed every robot's walk, the seeds pool by robot-seconds.
    first = {"walking_by_place": [[10, 0.2], [20, 0.4], [0, None], [5, 0.1]]}
    second = {"walking_by_place": [[30, 0.2], [20, 0.6], [0, None], [5, 0.3]]}
    (row,) = summary([_cell(1, log, 0.5) | first, _cell(2, [], 0.5) | second])
    expected = [[40, 0.2], [40, 0.5], [0, None], [10, 0.2]]
    assert row["walking_by_place"] == [
        [t, v if v is None else pytest.approx(v)] for t, v in expected
    ]
    table = markdown_by_place([row]).splitlines()
    assert table[2].endswith("| 1 (all 0.20) | 2 (0.50; all 0.50) | 0 | 1 (0.90; all 0.20) |")


def test_a_group_with_a_cell_from_before_the_bands_has_none():
    old = _cell(2, [], speed=0.3)
    del old["robots_by_vx"]
    (row,) = summary([_cell(1, [_fall(0, "trunk", 1.0, 0.5)], speed=0.5), old])
    assert row["falls"] == 1 and row["by_vx"] is None
    assert markdown_by_vx([row]) == ""


def test_falls_command_prints_the_table_and_names_what_it_cannot_read(tmp_path, capsys):
    result = tmp_path / "scorecard.json"
    cells = [_cell(1, [_fall(0, "trunk", 1.0, 0.5)], 0.5), _cell(1, [], 0.5, role="baseline")]
    result.write_text(json.dumps({"cells": cells}))
    assert main(["falls", str(result), "--role", "candidate"]) == 0
    out = capsys.readouterr().out
    assert "1 (1) / 10" in out and "baseline" not in out
    assert "by commanded forward speed" in out
    assert "| 0 / 1 | 0 / 2 | 0 / 3 | 0 / 2 | 1 / 2 |" in out
    assert main(["falls", str(result), "--role", "teacher"]) == 2
    assert "no cell of role 'teacher' has a fall log" in capsys.readouterr().out
    (tmp_path / "other.json").write_text(json.dumps({"iterations": 3}))
    assert main(["falls", str(tmp_path / "other.json")]) == 2
    assert "not a scorecard.json or eval.json" in capsys.readouterr().out
    assert main(["falls", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().out


def test_falls_command_picks_rows_and_pools_them_per_role_noise_and_physics(tmp_path, capsys):
    up = {**_cell(1, [_fall(0, "trunk", 1.0, 0.5, band=0)], 0.5), "row": "stairs 17 cm up"}
    down = {**_cell(1, [_fall(1, "tilt", 0.9, 0.4)], 0.5), "row": "stairs 17 cm down"}
    flat = {**_cell(1, [_fall(2, "tilt", 0.9, 0.4)], 0.5), "row": "flat"}
    noisy = {**down, "noise": "noisy"}
    result = tmp_path / "scorecard.json"
    result.write_text(json.dumps({"cells": [up, down, flat, noisy]}))
    argv = ["falls", str(result), "--rows", "stairs 17 cm up", "stairs 17 cm down", "--pool"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    # Up and down with clean heights in one row, the noisy cell (down alone) in another;
    # flat left out.
    assert "| stairs 17 cm up + stairs 17 cm down | none | training | 2 (1) / 20 |" in out
    assert "| stairs 17 cm down | noisy | training | 1 (0) / 10 |" in out
    assert "flat" not in out
    assert "| 1 / 2 | 0 / 4 | 0 / 6 | 0 / 4 | 1 / 4 |" in out  # the pooled bands
    assert main(["falls", str(result), "--rows", "stairs 17 cm"]) == 2
    assert "no row 'stairs 17 cm'; it has ['stairs 17 cm up'" in capsys.readouterr().out
