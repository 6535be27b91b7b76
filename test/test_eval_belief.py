"""`anymal-ros eval` scores a student's belief against the simulator's truth (tiny untrained
student on the real simulator: the machinery, not the figures of a trained one)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sim_helpers import tiny_sim

from anymal_ros.cli import main
from anymal_ros.config import to_dict
from anymal_ros.config.models import ActionHeadConfig, StudentConfig
from anymal_ros.config.noise import MISSING_HEIGHT_FILL
from anymal_ros.contract import PRIVILEGED_LAYOUT
from anymal_ros.eval.belief import BELIEF_METRICS, BeliefMeter
from anymal_ros.models.checkpoint import save_checkpoint
from anymal_ros.models.student import Student

TINY_SIM = tiny_sim(episode_length_s=0.3)


@pytest.fixture(scope="module")
def student_files(tmp_path_factory):
    torch.manual_seed(0)
    cfg = StudentConfig(
        proprio_dim=120, height_encoder=(16,), height_latent=4, privileged_latent=4,
        policy_mlp=(32,), action=ActionHeadConfig(num_actions=12, init_std=0.3),
        gru_hidden=8, belief_encoder=(8,), gate_encoder=(8,), belief_decoder=(8,),
    )  # fmt: skip
    student = Student(cfg)
    with torch.no_grad():  # a decoder whose output is not ~0
        for p in student.heights_decoder.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    d = tmp_path_factory.mktemp("belief_eval")
    ckpt = save_checkpoint(
        d / "student.pt",
        models={"student": student},
        config={"student": to_dict(cfg), "deploy": {}, "sim": TINY_SIM},
    )
    onnx = d / "student.onnx"
    assert main(["export", str(ckpt), "--out", str(onnx)]) == 0
    return ckpt, onnx


def run_eval(policy, out, tmp_path, *extra: str) -> list[dict]:
    sim_yaml = tmp_path / "sim.yaml"
    sim_yaml.write_text(json.dumps(TINY_SIM))
    argv = ["eval", str(policy), "--terrains", "flat", "stairs_up", "--noise", "none", "noisy",
            "--num-envs", "2", "--out", str(out), "--quiet", "--sim-config", str(sim_yaml),
            *extra]  # fmt: skip
    assert main(argv) == 0
    return json.loads((out / "eval.json").read_text())["rows"]


def test_eval_reports_the_belief_error_per_terrain_and_noise_and_plots_it(
    student_files, tmp_path, capsys
):
    ckpt, _ = student_files
    plot = tmp_path / "belief_stairs.png"
    rows = run_eval(ckpt, tmp_path / "eval", tmp_path, "--belief-plot", str(plot))
    assert [(r["terrain"], r["noise"]) for r in rows] == [
        ("flat", "none"), ("flat", "noisy"), ("stairs_up", "none"), ("stairs_up", "noisy")
    ]  # fmt: skip
    for r in rows:
        assert set(BELIEF_METRICS) <= set(r)
        assert all(np.isfinite(r[m]) and r[m] >= 0 for m in BELIEF_METRICS)
        assert r["belief_height_rmse"] > 0  # an untrained decoder is not the truth
        # Clean heights: the input is the truth; noisy: it is not.
        assert (r["input_height_rmse"] == 0) == (r["noise"] == "none")
        if r["noise"] == "noisy":  # the noisy mode at full strength (z std 0.08-0.1 m), not
            assert r["input_height_rmse_present"] > 0.1  # the nominal levels (~0.015 m)
    assert {f"privileged_rmse.{n}" for n in PRIVILEGED_LAYOUT.names} <= set(rows[0])
    assert "Belief reconstruction" in (tmp_path / "eval" / "eval.md").read_text()
    assert "Belief reconstruction" in capsys.readouterr().out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_onnx_belief_graph_scores_like_the_torch_checkpoint(student_files, tmp_path):
    ckpt, onnx = student_files
    torch_rows = run_eval(ckpt, tmp_path / "torch", tmp_path)
    onnx_rows = run_eval(onnx, tmp_path / "onnx", tmp_path)
    for a, b in zip(torch_rows, onnx_rows, strict=True):
        for m in BELIEF_METRICS:
            assert a[m] == pytest.approx(b[m], rel=1e-3, abs=1e-5), (a["terrain"], a["noise"], m)


def test_belief_meter_counts_only_active_robots():
    rng = np.random.default_rng(0)
    truth, fed = rng.normal(size=(3, 4, 52)), rng.normal(size=(3, 4, 52))
    missing = rng.random(size=fed.shape) < 0.2
    fed[missing] = MISSING_HEIGHT_FILL
    believed = truth + 0.1
    believed[missing] += 0.2  # the belief is worse where the input is missing
    priv_true, priv = rng.normal(size=(3, 50)), rng.normal(size=(3, 50))
    meter = BeliefMeter()
    active = np.array([True, False, True])
    meter.update((believed, priv), truth, fed, priv_true, active)
    out = meter.result()
    want = np.sqrt(np.mean(np.where(missing[active], 0.3, 0.1) ** 2))
    assert out["belief_height_rmse"] == pytest.approx(want)
    assert out["belief_height_rmse_present"] == pytest.approx(0.1)
    want = np.sqrt(np.mean((fed[active] - truth[active]) ** 2))
    assert out["input_height_rmse"] == pytest.approx(want)
    present = ~missing[active]
    want = np.sqrt(np.mean((fed[active] - truth[active])[present] ** 2))
    assert out["input_height_rmse_present"] == pytest.approx(want)
    assert out["flat_height_rmse"] == pytest.approx(np.sqrt(np.mean(truth[active] ** 2)))
    cols = PRIVILEGED_LAYOUT.slices()["external_wrench"]
    want = np.sqrt(np.mean((priv[active][:, cols] - priv_true[active][:, cols]) ** 2))
    assert out["privileged_rmse.external_wrench"] == pytest.approx(want)
    # The spread: the error of the best constant guess, per component, over active robots.
    want = np.sqrt(np.mean(np.var(priv_true[active][:, cols], axis=0)))
    assert out["privileged_spread.external_wrench"] == pytest.approx(want)
