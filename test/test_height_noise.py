"""Height-noise model: statistics of each component, episode structure, curriculum, seeding."""

import numpy as np
import pytest

from anymal_ros.config import ConfigError, from_dict
from anymal_ros.config.noise import HeightNoiseConfig, NoiseLevels
from anymal_ros.obs.height_noise import NOISY, HeightNoise

ZERO = NoiseLevels()


def only(levels: NoiseLevels, mode: str = "nominal", **kw) -> HeightNoiseConfig:
    """Config whose every environment is in ``mode`` with ``levels`` and no redraws."""
    probs = {"nominal": (1.0, 0.0, 0.0), "offset": (0.0, 1.0, 0.0), "noisy": (0.0, 0.0, 1.0)}
    base = {"nominal": ZERO, "offset": ZERO, "noisy": ZERO, mode: levels}
    return HeightNoiseConfig(mode_probs=probs[mode], mode_resample_prob=0.0, **base, **kw)


def step(noise: HeightNoise, heights: np.ndarray | None = None):
    xy = noise.sample_xy_offsets()
    h = np.zeros(noise.shape, np.float32) if heights is None else heights
    return xy, noise.apply_z(h)


def test_mode_frequencies_match_config_over_many_episodes():
    noise = HeightNoise(HeightNoiseConfig(), num_envs=2000, seed=0)
    counts = np.zeros(3)
    for _ in range(10):
        noise.reset()
        counts += np.bincount(noise.modes, minlength=3)
    freq = counts / counts.sum()
    np.testing.assert_allclose(freq, [0.6, 0.3, 0.1], atol=0.012)


def test_reset_only_touches_the_given_envs():
    noise = HeightNoise(HeightNoiseConfig(mode_resample_prob=0.0), num_envs=500, seed=1)
    before_modes = noise.modes
    before_xy, before_z = noise.episode_offsets()
    ids = np.arange(0, 500, 2)
    noise.reset(ids)
    xy, z = noise.episode_offsets()
    odd = np.arange(1, 500, 2)
    np.testing.assert_array_equal(noise.modes[odd], before_modes[odd])
    np.testing.assert_array_equal(z[odd], before_z[odd])
    np.testing.assert_array_equal(xy[odd], before_xy[odd])
    assert np.mean(z[ids] != before_z[ids]) > 0.5  # nominal has episode_z_std > 0


def test_episode_offsets_are_constant_within_an_episode_and_differ_across_episodes():
    cfg = only(NoiseLevels(episode_xy_std=0.05, episode_z_std=0.1))
    noise = HeightNoise(cfg, num_envs=64, seed=2)
    first_xy, first_z = step(noise)
    for _ in range(20):
        xy, z = step(noise)
        np.testing.assert_array_equal(xy, first_xy)
        np.testing.assert_array_equal(z, first_z)
    # One value per environment, shared by every foot and point.
    assert np.all(first_z == first_z[:, :1, :1])
    assert np.all(first_xy == first_xy[:, :1, :1, :])
    assert np.std(first_z[:, 0, 0]) == pytest.approx(0.1, rel=0.3)
    noise.reset()
    xy2, z2 = step(noise)
    assert not np.any(z2[:, 0, 0] == first_z[:, 0, 0])
    assert not np.any(xy2[:, 0, 0] == first_xy[:, 0, 0])


@pytest.mark.parametrize("mode", ["nominal", "offset"])
def test_per_point_and_per_foot_std_match_config(mode):
    levels = NoiseLevels(point_xy_std=0.02, point_z_std=0.05, foot_xy_std=0.03, foot_z_std=0.07)
    noise = HeightNoise(only(levels, mode), num_envs=200, seed=3)
    xys, zs = zip(*(step(noise) for _ in range(20)), strict=True)
    xy, z = np.stack(xys), np.stack(zs)  # [T, N, F, P(, 2)]
    # The mean over a foot's points isolates the per-foot part; the deviation from it the
    # per-point part.
    foot_z = z.mean(axis=-1, keepdims=True)
    point_z = z - foot_z
    p = z.shape[-1]
    assert point_z.std() == pytest.approx(0.05 * np.sqrt((p - 1) / p), rel=0.03)
    assert foot_z.std() == pytest.approx(np.sqrt(0.07**2 + 0.05**2 / p), rel=0.05)
    point_xy = xy - xy.mean(axis=-2, keepdims=True)
    assert point_xy.std() == pytest.approx(0.02 * np.sqrt((p - 1) / p), rel=0.03)
    assert abs(z.mean()) < 0.01
    # Fresh every step: consecutive steps are uncorrelated.
    assert abs(np.corrcoef(z[1:].ravel(), z[:-1].ravel())[0, 1]) < 0.02


def test_outlier_and_missing_rates_and_values():
    levels = NoiseLevels(outlier_prob=0.1, missing_prob=0.05)
    cfg = only(levels, "noisy", outlier_min=0.5, outlier_max=1.5)
    noise = HeightNoise(cfg, num_envs=200, seed=4)
    noise.set_curriculum(1.0)
    true = np.random.default_rng(0).uniform(-0.3, 0.3, noise.shape).astype(np.float32)
    outs = np.stack([step(noise, true)[1] for _ in range(10)])
    missing = outs == cfg.missing_fill
    dev = np.abs(outs - true)
    outlier = ~missing & (dev > 1e-6)
    assert missing.mean() == pytest.approx(0.05, abs=0.003)
    assert outlier.mean() == pytest.approx(0.1, abs=0.004)
    assert dev[outlier].min() >= 0.5 - 1e-5 and dev[outlier].max() <= 1.5 + 1e-5
    signs = np.sign((outs - true)[outlier])
    assert np.mean(signs > 0) == pytest.approx(0.5, abs=0.02)
    np.testing.assert_array_equal(
        outs[~missing & ~outlier], np.broadcast_to(true, outs.shape)[~missing & ~outlier]
    )


def test_curriculum_zero_gives_noisy_envs_nominal_levels():
    nominal = NoiseLevels(point_z_std=0.01)
    noisy = NoiseLevels(point_z_std=0.2, outlier_prob=0.2, missing_prob=0.2)
    cfg = HeightNoiseConfig(
        mode_probs=(0.0, 0.0, 1.0),
        mode_resample_prob=0.0,
        nominal=nominal,
        offset=ZERO,
        noisy=noisy,
    )
    noise = HeightNoise(cfg, num_envs=100, seed=5)
    assert np.all(noise.modes == NOISY)
    _, z = step(noise)
    assert not np.any(z == cfg.missing_fill)
    assert z.std() == pytest.approx(0.01, rel=0.05)
    noise.set_curriculum(0.5)
    _, z = step(noise)
    assert np.mean(z == cfg.missing_fill) == pytest.approx(0.1, abs=0.01)
    noise.set_curriculum(1.0)
    _, z = step(noise)
    assert np.mean(z == cfg.missing_fill) == pytest.approx(0.2, abs=0.01)


def test_curriculum_factor_ramps_linearly():
    cfg = HeightNoiseConfig(curriculum_start=100, curriculum_end=300)
    assert [cfg.curriculum_factor(i) for i in (0, 100, 200, 300, 1000)] == [0, 0, 0.5, 1, 1]


def test_modes_are_redrawn_mid_episode_at_the_configured_rate():
    cfg = HeightNoiseConfig(mode_resample_prob=0.01)
    noise = HeightNoise(cfg, num_envs=1000, num_feet=1, points_per_foot=1, seed=6)
    changes = 0
    for _ in range(100):
        before = noise.modes
        noise.sample_xy_offsets()
        changes += int(np.sum(noise.modes != before))
    # A redraw changes the mode with probability 1 - sum(p^2) = 0.54.
    assert changes / (1000 * 100) == pytest.approx(0.01 * 0.54, rel=0.15)


def test_same_seed_same_noise_and_state_dict_resumes_the_sequence():
    a = HeightNoise(HeightNoiseConfig(), num_envs=8, seed=7)
    b = HeightNoise(HeightNoiseConfig(), num_envs=8, seed=7)
    c = HeightNoise(HeightNoiseConfig(), num_envs=8, seed=8)
    h = np.zeros(a.shape, np.float32)
    for noise in (a, b, c):
        noise.set_curriculum(1.0)
    for _ in range(3):
        xa, za = step(a, h)
        xb, zb = step(b, h)
        xc, _ = step(c, h)
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(za, zb)
        assert not np.array_equal(xa, xc)
    state = a.state_dict()
    expected = [step(a, h) for _ in range(2)]
    d = HeightNoise(HeightNoiseConfig(), num_envs=8, seed=123)
    d.load_state_dict(state)
    for (xe, ze), (xd, zd) in zip(expected, [step(d, h) for _ in range(2)], strict=True):
        np.testing.assert_array_equal(xe, xd)
        np.testing.assert_array_equal(ze, zd)


def test_disabled_model_is_the_identity():
    noise = HeightNoise(HeightNoiseConfig(enabled=False), num_envs=3, seed=0)
    h = np.random.default_rng(0).normal(size=noise.shape).astype(np.float32)
    xy, out = step(noise, h)
    assert not xy.any()
    np.testing.assert_array_equal(out, h)


def test_bad_inputs_are_refused_with_clear_errors():
    noise = HeightNoise(HeightNoiseConfig(), num_envs=4, seed=0)
    with pytest.raises(RuntimeError, match="sample_xy_offsets"):
        noise.apply_z(np.zeros(noise.shape))
    noise.sample_xy_offsets()
    with pytest.raises(ValueError, match=r"shape \(4, 4, 52\)"):
        noise.apply_z(np.zeros((4, 4, 51)))
    bad = np.zeros(noise.shape)
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        noise.apply_z(bad)
    with pytest.raises(ValueError, match="curriculum"):
        noise.set_curriculum(1.5)
    with pytest.raises(ValueError, match="out of range"):
        noise.reset([4])
    with pytest.raises(ConfigError, match="mode_probs"):
        from_dict(HeightNoiseConfig, {"mode_probs": [0.5, 0.5, 0.5]})
    with pytest.raises(ConfigError, match="noisy.point_z_sdt: unknown key"):
        from_dict(HeightNoiseConfig, {"noisy": {"point_z_sdt": 0.1}})
    with pytest.raises(ConfigError, match="missing_prob"):
        from_dict(HeightNoiseConfig, {"noisy": {"missing_prob": 1.5}})
