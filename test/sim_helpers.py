"""Small simulator settings shared by the tests that step the real MuJoCo model."""

from __future__ import annotations

# Two levels of seven 4 m columns: every terrain type, built in a fraction of a second.
SMALL_TERRAIN = {
    "num_levels": 2,
    "num_columns": 7,
    "tile_size": 4.0,
    "border": 2.0,
    "max_init_level": 1,
}


def tiny_sim(episode_length_s: float) -> dict:
    """A SimConfig mapping: the small terrain, short episodes, joint-residual actions."""
    return {
        "terrain": dict(SMALL_TERRAIN),
        "termination": {"episode_length_s": episode_length_s},
        "actions": {"mode": "joint_residual"},
    }
