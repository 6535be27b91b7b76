"""Checkpoints: atomic, weights-only, exact round trip, and loud about size mismatches."""

import random

import numpy as np
import pytest
import torch
from torch import nn

from anymal_ros.models.checkpoint import (
    CheckpointError,
    capture_rng_state,
    generator_state,
    load_checkpoint,
    load_model_state,
    restore_rng_state,
    save_checkpoint,
    set_generator_state,
)
from anymal_ros.models.normalizer import RunningNormalizer


class Tiny(nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.norm = RunningNormalizer(3)
        self.net = nn.Sequential(nn.Linear(3, width), nn.Tanh(), nn.Linear(width, 2))

    def forward(self, x):
        return self.net(self.norm(x))


def test_round_trip_restores_weights_normaliser_optimiser_and_counters(tmp_path):
    torch.manual_seed(0)
    model = Tiny()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(32, 3)
    model.norm.update(x * 3)
    model(x).pow(2).mean().backward()
    opt.step()
    path = save_checkpoint(
        tmp_path / "ck.pt",
        models={"policy": model},
        optimizers={"policy": opt},
        config={"lr": 1e-3, "sizes": [8]},
        counters={"iteration": 7, "env_steps": 1234},
    )
    data = load_checkpoint(path)
    fresh = Tiny()
    load_model_state(fresh, data, "policy")
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    fresh_opt.load_state_dict(data["optimizers"]["policy"])
    torch.testing.assert_close(fresh(x), model(x), rtol=0, atol=0)
    torch.testing.assert_close(fresh.norm.mean, model.norm.mean)
    assert data["counters"] == {"iteration": 7, "env_steps": 1234}
    assert data["config"]["sizes"] == [8]
    assert fresh_opt.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    assert not list(tmp_path.glob("*.tmp"))


def test_size_mismatch_names_the_parameter(tmp_path):
    save_checkpoint(tmp_path / "ck.pt", models={"policy": Tiny(8)})
    data = load_checkpoint(tmp_path / "ck.pt")
    with pytest.raises(
        CheckpointError, match=r"net\.0\.weight: checkpoint \[8, 3\] vs model \[16, 3\]"
    ):
        load_model_state(Tiny(16), data, "policy")
    with pytest.raises(CheckpointError, match="has no model 'critic'"):
        load_model_state(Tiny(8), data, "critic")


def test_corrupt_and_foreign_files_are_refused(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not an anymal_ros checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    good = save_checkpoint(tmp_path / "good.pt", models={"policy": Tiny()})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(truncated)


def test_rng_state_round_trip_continues_identically(tmp_path):
    rng = np.random.default_rng(123)
    rng.normal(size=5)
    torch.manual_seed(5)
    save_checkpoint(tmp_path / "ck.pt", models={}, extra={"env_rng": generator_state(rng)})
    legacy = np.random.rand  # noqa: NPY002 (the global generator is what we restore)
    expected = (torch.rand(3), legacy(3), random.random(), rng.normal(size=3))
    data = load_checkpoint(tmp_path / "ck.pt")
    restore_rng_state(data["rng"])
    set_generator_state(rng, data["extra"]["env_rng"])
    got = (torch.rand(3), legacy(3), random.random(), rng.normal(size=3))
    torch.testing.assert_close(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    assert got[2] == expected[2]
    np.testing.assert_array_equal(got[3], expected[3])
    assert set(capture_rng_state()) == {"torch", "numpy", "python"}


def test_atomic_write_gives_the_permissions_of_a_new_file(tmp_path):
    """Not mkstemp's private 0600: an exported policy must be readable like any file."""
    import os

    from anymal_ros.files import atomic_write

    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "policy.onnx") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "policy.onnx").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("fsync", [True, False])
def test_atomic_write_syncs_the_file_and_then_its_directory(tmp_path, monkeypatch, fsync):
    """A rename reaches the disk only with its directory: without that fsync a power cut
    can leave the old file (or none) even though the new one's data was synced."""
    import os

    from anymal_ros.files import atomic_write

    synced = []  # what the real os.fsync was called on, in order
    real_fsync = os.fsync

    def recording_fsync(fd):
        synced.append(os.path.realpath(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    target = tmp_path / "out" / "latest.pt"
    with atomic_write(target, fsync=fsync) as tmp:
        tmp.write_bytes(b"x")
    assert target.read_bytes() == b"x"
    if fsync:
        assert synced[-1] == str(target.parent)  # the directory, after the renamed file
        assert os.path.dirname(synced[-2]) == str(target.parent)
    else:
        assert synced == []


def test_average_of_checkpoints_means_the_weights_and_keeps_the_last_files_state(tmp_path):
    from anymal_ros.cli import main

    torch.manual_seed(1)
    models = [Tiny(), Tiny()]
    for i, model in enumerate(models):
        model.norm.update(torch.randn(16, 3) + i)
        save_checkpoint(
            tmp_path / f"ck{i}.pt", models={"policy": model}, counters={"iteration": 10 * i}
        )
    out = tmp_path / "mean.pt"
    assert (
        main(["average", str(tmp_path / "ck0.pt"), str(tmp_path / "ck1.pt"), "--out", str(out)])
        == 0
    )
    data = load_checkpoint(out)
    mean = Tiny()
    load_model_state(mean, data, "policy")
    a, b = (m.state_dict() for m in models)
    torch.testing.assert_close(mean.net[0].weight, (a["net.0.weight"] + b["net.0.weight"]) / 2)
    torch.testing.assert_close(mean.norm.mean, (a["norm.mean"] + b["norm.mean"]) / 2)
    assert data["counters"] == {"iteration": 10}
    assert [e["iteration"] for e in data["extra"]["averaged_from"]] == [0, 10]


def test_average_refuses_one_file_and_checkpoints_of_other_models(tmp_path, capsys):
    from anymal_ros.cli import main

    save_checkpoint(tmp_path / "a.pt", models={"policy": Tiny(8)})
    save_checkpoint(tmp_path / "b.pt", models={"policy": Tiny(16)})
    save_checkpoint(tmp_path / "c.pt", models={"critic": Tiny(8)})
    out = str(tmp_path / "mean.pt")
    assert main(["average", str(tmp_path / "a.pt"), "--out", out]) == 2
    assert "at least two checkpoints" in capsys.readouterr().out
    assert main(["average", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--out", out]) == 2
    assert "net.0.weight is [8, 3], not [16, 3]" in capsys.readouterr().out
    assert main(["average", str(tmp_path / "a.pt"), str(tmp_path / "c.pt"), "--out", out]) == 2
    assert "only checkpoints of one model" in capsys.readouterr().out
    assert not (tmp_path / "mean.pt").exists()
