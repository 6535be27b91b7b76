"""The policy controller's WALK joint-target rate limit: clipped steps, a count, STAND after
clipping for long, and STAND's own ramp left alone. A real exported student runs every tick."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("anymal_ros.obs.proprio", reason="needs the observation contract")

from test_command_ramp import DT, feed_robot, run  # noqa: E402

from anymal_ros.deploy.runtime import OnnxPolicy  # noqa: E402
from anymal_ros.nodes.controller import ControllerConfig, PolicyController  # noqa: E402
from anymal_ros.nodes.safety import Mode, SafetyConfig  # noqa: E402


def walking(student_path, **config) -> tuple[PolicyController, float]:
    c = PolicyController(
        OnnxPolicy(student_path),
        # feed_robot sends a height cloud: the cloud is the height source
        ControllerConfig(
            safety=SafetyConfig(stand_duration=0.1), height_source="height_samples", **config
        ),
    )
    now = 1.0
    feed_robot(c, now)
    assert c.request(Mode.STAND, now)[0]
    now = run(c, now, 10)
    assert c.request(Mode.WALK, now)[0]
    return c, now


def test_walk_targets_are_rate_limited_then_stand_takes_over_unlimited(student_path):
    free, now_free = walking(student_path, joint_target_rate_limit=0.0)  # 0 = no limit
    rate = 1e-4  # rad/s: far below this student's steps, so every tick clips
    c, now = walking(student_path, joint_target_rate_limit=rate, rate_limit_stand_after=0.1)
    previous = c.last_targets.copy()
    for tick in range(5):
        now += DT
        now_free += DT
        feed_robot(c, now)
        feed_robot(free, now_free)
        targets, unlimited = c.tick(now), free.tick(now_free)
        assert c.mode is Mode.WALK and c.rate_limited == tick + 1
        assert np.abs(targets - previous).max() <= rate * DT + 1e-15
        assert np.abs(unlimited - previous).max() > rate * DT  # what it would have sent
        previous = targets
    assert free.rate_limited == 0
    now = run(c, now, 1)  # 0.1 s of clipping on every tick: STAND
    assert c.mode is Mode.STAND
    assert "joint target rate limit (0.0001 rad/s)" in c.safety.last_transition.reason
    # STAND's ramp is the same as ever: from the measured pose, not rate limited.
    np.testing.assert_allclose(c.last_targets, c.safety.stand.start)
    count = c.rate_limited
    run(c, now, 10)
    assert c.rate_limited == count


@pytest.mark.parametrize("name", ["joint_target_rate_limit", "rate_limit_stand_after"])
def test_bad_rate_limit_settings_are_refused(name):
    with pytest.raises(ValueError, match=f"{name} must be a finite number >= 0"):
        ControllerConfig(**{name: -1.0})
