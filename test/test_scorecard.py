"""`anymal-ros scorecard`: the spec's checks, the verdicts on hand-made figures, and a tiny
scorecard on the real simulator (the bundled ONNX student, a real teacher checkpoint) with
its reuse of earlier cells."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from model_helpers import tiny_teacher_checkpoint

from anymal_ros.cli import main
from anymal_ros.commands.eval import SIM_TO_SIM
from anymal_ros.commands.scorecard import DEFAULT_SPEC, load_spec
from anymal_ros.config import ConfigError, from_dict
from anymal_ros.config.scorecard import ScorecardConfig
from anymal_ros.eval import parallel, scorecard
from anymal_ros.eval.evaluate import METRICS
from anymal_ros.eval.figures import pyplot
from anymal_ros.nodes.policy_node import bundled_policy_path


def test_the_second_editions_scorecard_names_the_issues_targets():
    spec, quick_look = load_spec(DEFAULT_SPEC)
    assert not quick_look and load_spec(DEFAULT_SPEC, seeds=[201, 202])[1] is False
    assert load_spec(DEFAULT_SPEC, robots=10)[1] is True
    some, quick_look = load_spec(DEFAULT_SPEC, rows=["slope 20 deg down", "stairs 17 cm up"])
    assert quick_look and [r.name for r in some.rows] == ["stairs 17 cm up", "slope 20 deg down"]
    assert some.teacher_check.rows == ("stairs 17 cm up",) and some.sim_to_sim is None
    flat, _ = load_spec(DEFAULT_SPEC, rows=["flat"])
    assert flat.teacher_check is None and flat.sim_to_sim.row == "flat"
    with pytest.raises(SystemExit, match=r"no rows \['slope 20 down'\]; the rows are \['flat'"):
        load_spec(DEFAULT_SPEC, rows=["slope 20 down"])
    clean, quick_look = load_spec(DEFAULT_SPEC, noise=["none"])  # a teacher's look
    assert quick_look and [r.name for r in clean.rows] == [r.name for r in spec.rows]
    assert {r.noise for r in clean.rows} == {("none",)}
    # The teacher check is on noisy heights (gone), the sim-to-sim check on clean ones.
    assert clean.teacher_check is None and clean.sim_to_sim.row == "flat"
    with pytest.raises(SystemExit, match=r"noise \['noisey'\]: choose from"):
        load_spec(DEFAULT_SPEC, noise=["noisey"])
    with pytest.raises(SystemExit, match=r"none of the rows \['flat'\] is measured with heights"):
        load_spec(DEFAULT_SPEC, rows=["flat"], noise=["offset"])
    assert spec.seeds == (201, 202) and spec.robots_per_seed * len(spec.seeds) >= 180
    rows = {r.name: r for r in spec.rows}
    assert rows["stairs 17 cm up"].sim["terrain"]["step_height"] == [0.17, 0.17]
    # Risers and boxes as built (near vertical), not the training grid's 10 cm ramps.
    sharp = [n for n, r in rows.items() if r.sim.get("terrain", {}).get("resolution") == 0.025]
    assert sharp == [n for n in rows if n.startswith(("stairs", "boxes"))] and len(sharp) == 5
    assert rows["stairs 17 cm down"].targets["falls_per_10min"].max == 1.0
    assert {m for r in spec.rows for m in r.noise} == {"none", "noisy"}
    flat = rows["flat"].targets
    assert flat["tracking_error"].max == 0.10 and flat["falls"].max == 0
    assert flat["base_height_ratio"].min == 0.85 and flat["limb_contacts_per_minute"].max == 0
    assert spec.teacher_check.rows == tuple(n for n in rows if n.startswith("stairs"))
    assert spec.sim_to_sim.max_tracking_error_ratio == 1.5
    assert (DEFAULT_SPEC.parent / spec.sim_to_sim.physics).is_file()


def test_every_policy_meets_the_same_robots_on_a_field():
    """A teacher checkpoint brings the randomisation it trained with, an ONNX file (which
    stores none before 2026-12) the simulator's defaults: the spec must overwrite both, or a
    student is judged on heavier, more off-centre robots than its own teacher was."""
    from anymal_ros.config import to_dict
    from anymal_ros.config.sim import RandomizationConfig, SimConfig
    from anymal_ros.eval.scorecard import field_sim

    spec, _ = load_spec(DEFAULT_SPEC)
    odd = RandomizationConfig(
        enabled=False, friction=(0.1, 0.2), added_base_mass=(-9.0, 9.0), com_offset=(0.1, 0.1),
        motor_strength=(0.5, 0.6), kp_factor=(0.5, 0.6), kd_factor=(0.5, 0.6),
        latency_steps=(3, 4), joint_damping_factor=(2.0, 3.0),
        joint_frictionloss_factor=(2.0, 3.0), armature_factor=(2.0, 3.0),
        link_mass_factor=(1.2, 1.3), contact_timeconst=(0.04, 0.05),
    )  # fmt: skip
    for row in spec.rows:
        a = to_dict(field_sim(SimConfig(), spec, row).randomization)
        b = to_dict(field_sim(SimConfig(randomization=odd), spec, row).randomization)
        # Push timing does not matter without pushes; everything else must be the spec's.
        for timing in ("push_interval_s", "push_duration_s"):
            a.pop(timing), b.pop(timing)
        assert a == b, row.name
        assert a["push_force"] == 0 and a["added_base_mass"] == [-2.0, 2.0]


def test_a_set_the_spec_would_overwrite_is_refused_or_noted(capsys):
    from anymal_ros.commands.scorecard import check_overrides

    spec, _ = load_spec(DEFAULT_SPEC)
    with pytest.raises(SystemExit, match=r"--set randomization.com_offset=\[-0.05,0.05\]: .*"
                       r"sets randomization.com_offset for every field"):  # fmt: skip
        check_overrides(spec, ["randomization.com_offset=[-0.05,0.05]"], DEFAULT_SPEC)
    check_overrides(spec, ["terrain.step_width=0.25", "physics.impratio=1.0"], DEFAULT_SPEC)
    note = capsys.readouterr().out
    assert "--set terrain.step_width=0.25 does not apply on ['stairs 17 cm up'" in note
    assert "impratio" not in note  # no row sets it: it holds everywhere


@pytest.mark.parametrize("command", ["scorecard", "eval"])
def test_a_malformed_set_is_named_by_the_parser(command, capsys):
    """Every command with ``--set`` names an item without ``=`` before it loads anything."""
    with pytest.raises(SystemExit) as stop:
        main([command, "policies/student.onnx", "--set", "randomization_bad"])
    assert stop.value.code == 2
    assert "--set: override 'randomization_bad': expected key.path=value" in capsys.readouterr().err


def _spec(**changes) -> dict:
    data = {
        "seeds": [3],
        "robots_per_seed": 2,
        "episode_length_s": 1.0,
        "rows": [
            {"name": "flat", "terrain": "flat", "noise": ["none"],
             "targets": {"falls": {"max": 0}, "base_height_ratio": {"min": 0.85}}},
            {"name": "steps", "terrain": "stairs_up", "noise": ["none", "noisy"],
             "sim": {"terrain": {"step_height": [0.17, 0.17]}},
             "targets": {"falls_per_10min": {"max": 1.0}}},
        ],
        "teacher_check": {"rows": ["steps"], "noise": "noisy"},
        "sim_to_sim": {"row": "flat", "physics": str(SIM_TO_SIM)},
    }  # fmt: skip
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rows": [{"name": "x", "terrain": "lava"}]}, "terrain 'lava'"),
        ({"rows": [{"name": "x", "terrain": "flat", "noise": ["foggy"]}]}, "noise"),
        ({"rows": [{"name": "x", "terrain": "flat", "targets": {"falls": {}}}]}, "a bound needs"),
        (
            {
                "rows": [
                    {"name": "x", "terrain": "flat", "targets": {"falls": {"min": 2, "max": 1}}}
                ],
                "teacher_check": None,
                "sim_to_sim": None,
            },
            "min 2.0 > max 1.0",
        ),
        ({"teacher_check": {"rows": ["stairs"]}}, "rows \\['stairs'\\]"),
        ({"teacher_check": {"rows": ["flat"]}}, "flat \\(noisy\\)"),
        ({"seeds": [1, 1]}, "seeds must be distinct"),
        ({"rows": []}, "at least one row"),
    ],
)
def test_a_bad_spec_is_refused_by_name(changes, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(ScorecardConfig, _spec(**changes))


def test_bounds_on_unknown_metrics_are_refused_before_anything_runs(tmp_path):
    bad = _spec(rows=[{"name": "flat", "terrain": "flat", "targets": {"speed": {"min": 1}}}],
                teacher_check=None, sim_to_sim=None)  # fmt: skip
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(SystemExit, match="unknown metrics \\['flat: speed'\\]"):
        main(["scorecard", str(bundled_policy_path()), "--spec", str(path), "--quiet"])


def _cell(role, row, noise, falls, minutes=10.0, tracking=0.1, physics="training", seed=3,
          **metrics):  # fmt: skip
    figures = {m: 0.5 for m in METRICS} | {"tracking_error": tracking} | metrics
    steps = int(minutes * 60 / 0.02)
    return {"role": role, "label": role, "path": f"{role}.onnx", "robot": "anymal_c",
            "row": row, "terrain": "flat", "noise": noise, "physics": physics, "seed": seed,
            "robots": 2, "falls": falls, "minutes": minutes, "steps": steps,
            "falls_per_10min": 10 * falls / minutes, **figures}  # fmt: skip


def test_verdicts_pool_seeds_and_judge_every_check():
    spec = from_dict(ScorecardConfig, _spec())
    cells = [
        # flat: no falls, base height 0.9 and 0.8 of stance over equal steps -> 0.85, met
        _cell("candidate", "flat", "none", 0, base_height_ratio=0.9),
        _cell("candidate", "flat", "none", 0, base_height_ratio=0.8, seed=4),
        # steps: 1 fall in 5 min + 0 in 5 min -> 1 per 10 min (met, the bound is inclusive);
        # noisy: 3 falls in 10 min
        _cell("candidate", "steps", "none", 1, minutes=5.0),
        _cell("candidate", "steps", "none", 0, minutes=5.0, seed=4),
        _cell("candidate", "steps", "noisy", 3),
        _cell("teacher", "steps", "noisy", 3),  # as many falls: not fewer
        _cell("candidate", "flat", "none", 0, tracking=0.16, physics="second"),  # x1.6
        _cell("baseline", "flat", "none", 0, tracking=0.09),  # no falls either, tracks better
        _cell("baseline", "steps", "none", 2),
    ]
    got = {(v["check"], v["row"], v["noise"], v["metric"]): v for v in
           scorecard.verdicts(spec, cells)}  # fmt: skip
    flat_height = got[("target", "flat", "none", "base_height_ratio")]
    assert flat_height["value"] == pytest.approx(0.85) and flat_height["met"] is True
    assert got[("target", "flat", "none", "falls")]["met"] is True
    steps = got[("target", "steps", "none", "falls_per_10min")]
    assert steps["value"] == pytest.approx(1.0) and steps["met"] is True
    assert got[("target", "steps", "noisy", "falls_per_10min")]["met"] is False
    assert got[("teacher", "steps", "noisy", "falls_per_10min")]["met"] is False
    s2s = got[("sim_to_sim", "flat", "none", "tracking_error_ratio")]
    assert s2s["value"] == pytest.approx(1.6) and s2s["other"] == 0 and s2s["met"] is False
    assert got[("baseline", "flat", "none", "falls_per_10min")]["met"] is False  # tie on falls
    assert got[("baseline", "steps", "none", "falls_per_10min")]["met"] is True  # 1 vs 2
    assert ("baseline", "steps", "noisy", "falls_per_10min") not in got  # baseline not run there
    # Nothing of the teacher: its check is there, unjudged.
    alone = [c for c in cells if c["role"] != "teacher"]
    teacher = [v for v in scorecard.verdicts(spec, alone) if v["check"] == "teacher"]
    assert [v["met"] for v in teacher] == [None]
    assert "1 not measured" in scorecard.markdown(spec, alone)


def test_a_tiny_scorecard_on_the_real_simulator(tmp_path, monkeypatch, capsys):
    teacher = tiny_teacher_checkpoint(tmp_path / "teacher.pt")
    student = bundled_policy_path()
    spec_path = tmp_path / "card.yaml"
    spec_path.write_text(yaml.safe_dump(_spec()))
    out = tmp_path / "card"
    argv = ["scorecard", str(student), "--teacher", str(teacher), "--baseline", str(teacher),
            "--spec", str(spec_path), "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    data = json.loads((out / "scorecard.json").read_text())
    cells = data["cells"]
    plan = [(c["role"], c["row"], c["noise"], c["physics"]) for c in cells]
    assert plan == [
        ("candidate", "flat", "none", "training"), ("candidate", "steps", "none", "training"),
        ("candidate", "steps", "noisy", "training"), ("candidate", "flat", "none", "second"),
        ("teacher", "steps", "noisy", "training"),
        ("baseline", "flat", "none", "training"), ("baseline", "steps", "none", "training"),
        ("baseline", "steps", "noisy", "training"),
    ]  # fmt: skip
    # Each policy in its own simulator; one episode of 1 s (50 steps) per robot at most.
    assert {c["role"]: c["robot"] for c in cells} == {
        "candidate": "anymal_c_like",
        "teacher": "anymal_c",
        "baseline": "anymal_c",
    }
    for c in cells:
        assert c["robots"] == 2 and c["seed"] == 3 and 0 < c["steps"] <= 100
        assert c["falls_per_10min"] == pytest.approx(10 * c["falls"] / c["minutes"])
        assert np.isfinite(c["tracking_error"])
    # The teacher's noisy steps cell served as the baseline's: the same file, field and seed.
    by = {(c["role"], c["row"], c["noise"]): c for c in cells}
    for k in METRICS:
        assert by[("baseline", "steps", "noisy")][k] == by[("teacher", "steps", "noisy")][k]
    checks = data["verdicts"]
    assert [v["check"] for v in checks] == [
        "target", "target", "target", "target", "teacher", "sim_to_sim", "baseline", "baseline",
        "baseline"]  # fmt: skip
    # The first edition crouches at about 0.6 of its stance: that bound fails.
    height = next(v for v in checks if v["metric"] == "base_height_ratio")
    assert height["value"] < 0.85 and height["met"] is False
    png = out / "scorecard.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "| target | flat | clean | base_height_ratio |" in printed
    assert main([*argv, "--strict"]) == 1  # (it ran again: no --resume)
    # Two cells at a time, each in a process of its own: the same figures, in plan order.
    argv_jobs = [*argv[:-3], "--out", str(tmp_path / "jobs"), "--quiet", "--jobs", "2"]
    assert main(argv_jobs) == 0
    assert json.loads((tmp_path / "jobs" / "scorecard.json").read_text())["cells"] == cells

    # --resume measures nothing again: every cell matches one on disk.
    def no_simulation(*args, **kwargs):
        raise AssertionError("a cell was simulated again")

    monkeypatch.setattr(parallel, "run_field", no_simulation)
    assert main([*argv, "--resume"]) == 0
    assert json.loads((out / "scorecard.json").read_text())["cells"] == cells
    # --rows: a quick look at some fields (the steps field: the sim-to-sim check, on flat
    # ground, goes), every cell of it reused from the run above.
    rows_only = [*argv[:-3], "--out", str(tmp_path / "rows"), "--quiet", "--rows", "steps",
                 "--reuse", str(out / "scorecard.json")]  # fmt: skip
    assert main(rows_only) == 0
    picked = json.loads((tmp_path / "rows" / "scorecard.json").read_text())
    assert picked["cells"] == [c for c in cells if c["row"] == "steps"]
    assert picked["quick_look"] is True
    assert {v["check"] for v in picked["verdicts"]} == {"target", "teacher", "baseline"}
    # ... but a field whose settings changed is measured afresh.
    changed = _spec()
    changed["rows"][1]["sim"]["terrain"]["step_height"] = [0.15, 0.15]
    spec_path.write_text(yaml.safe_dump(changed))
    with pytest.raises(AssertionError, match="simulated again"):
        main([*argv, "--resume"])
    # A quick look says so and never passes --strict.
    monkeypatch.undo()
    quick = ["scorecard", str(teacher), "--spec", str(spec_path), "--out", str(tmp_path / "q"),
             "--quiet", "--robots", "1", "--strict"]  # fmt: skip
    spec_path.write_text(yaml.safe_dump(_spec(teacher_check=None, sim_to_sim=None)))
    assert main(quick) == 1
    assert (tmp_path / "q" / "scorecard.md").read_text().startswith("**A quick look")


def test_the_committed_first_edition_card_serves_as_the_baseline_without_a_rerun(monkeypatch):
    """The shipped student's scorecard is committed to be the second edition's baseline
    column (``--reuse``): a change to the simulator's settings (a new field, a new default)
    makes its cells stale, and the next scorecard would quietly spend 20 minutes on them."""
    from anymal_ros.commands._policy_sim import eval_policy

    spec, _ = load_spec(DEFAULT_SPEC)
    card = DEFAULT_SPEC.parents[1] / "policies" / "training" / "scorecard_edition1"
    done = scorecard.read_cells(card / "scorecard.json")
    student = eval_policy(str(bundled_policy_path()), "baseline", [])
    physics = DEFAULT_SPEC.parent / spec.sim_to_sim.physics

    def measured_again(sim, terrain, policy, noise, seed, *args):
        raise AssertionError(f"{terrain}, {noise} heights, seed {seed}: measured again, the "
                             "committed card is stale")  # fmt: skip

    monkeypatch.setattr(parallel, "run_field", measured_again)
    cells = scorecard.measure(spec, {"candidate": student}, physics, done, progress=False)
    assert len(cells) == len(done) == 38


def test_the_figure_gives_each_role_one_colour_and_a_legend_entry_in_it(tmp_path, monkeypatch):
    """A full card's cells, where the teacher has bars only with noisy heights (its check): the
    legend's swatch of every role is the colour of that role's bars in every panel."""
    card = DEFAULT_SPEC.parents[1] / "policies" / "training" / "student_speed_limit_206.7M"
    cells = scorecard.read_cells(card / "scorecard" / "scorecard.json")
    figures = []
    monkeypatch.setattr(scorecard, "save_figure", lambda fig, path: figures.append(fig))
    scorecard.plot(cells, tmp_path / "card.png")
    (fig,) = figures
    legend = fig.legends[0]
    swatch = {text.get_text().split(":")[0]: handle for text, handle
              in zip(legend.get_texts(), legend.legend_handles, strict=True)}  # fmt: skip
    assert [*swatch] == ["candidate", "teacher", "baseline", "1 fall per 10 min"]
    in_panels = [
        {tuple(p.get_facecolor()) for c in ax.containers for p in c.patches} for ax in fig.axes
    ]
    teacher = tuple(swatch["teacher"].get_facecolor())
    assert teacher not in in_panels[0] and teacher in in_panels[1]  # noisy heights only
    for role in ("candidate", "baseline"):
        colour = tuple(swatch[role].get_facecolor())
        assert all(colour in panel for panel in in_panels)
    roles = ("candidate", "teacher", "baseline")
    assert len({tuple(swatch[r].get_facecolor()) for r in roles}) == 3
    pyplot().close(fig)
