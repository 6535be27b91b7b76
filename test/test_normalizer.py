"""Running normaliser: parallel merge equals numpy over the concatenation; state persists."""

import io

import numpy as np
import pytest
import torch

from anymal_ros.models.normalizer import RunningNormalizer


def test_batched_updates_match_numpy_over_concatenated_data():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 4, 5)) for n in (1, 7, 100, 33)]
    norm = RunningNormalizer((4, 5))
    for b in batches:
        norm.update(torch.as_tensor(b, dtype=torch.float32))
    data = np.concatenate(batches).astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(norm.mean.numpy(), data.mean(0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(norm.var.numpy(), data.var(0), rtol=1e-6, atol=1e-6)
    assert float(norm.count) == len(data)


def test_merging_two_workers_equals_one_worker_seeing_everything():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(50, 3)), rng.normal(5.0, 0.1, size=(20, 3))
    one, two, both = RunningNormalizer(3), RunningNormalizer(3), RunningNormalizer(3)
    one.update(torch.as_tensor(a))
    two.update(torch.as_tensor(b))
    both.update(torch.as_tensor(np.concatenate([a, b])))
    one.merge(two.mean, two.var, float(two.count))
    torch.testing.assert_close(one.mean, both.mean)
    torch.testing.assert_close(one.var, both.var)


def test_state_survives_save_load_and_freezing_stops_updates():
    norm = RunningNormalizer(3, clip=5.0)
    norm.update(torch.randn(64, 3) * 4 + 1)
    norm.freeze()
    buf = io.BytesIO()
    torch.save(norm.state_dict(), buf)
    buf.seek(0)
    loaded = RunningNormalizer(3, clip=5.0)
    loaded.load_state_dict(torch.load(buf, weights_only=True))
    assert bool(loaded.frozen)
    before = loaded.mean.clone()
    loaded.update(torch.randn(10, 3) + 100)
    torch.testing.assert_close(loaded.mean, before)
    x = torch.randn(8, 3) * 100
    assert loaded(x).abs().max() <= 5.0
    torch.testing.assert_close(loaded(x), norm(x))


def test_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"trailing shape \(4, 52\)"):
        RunningNormalizer((4, 52))(torch.zeros(1, 4, 51))
