"""Height-noise model for the student's exteroception (numpy only, batched over environments).

A control step with noise has two halves, because x/y noise moves *where* the terrain is
sampled while z noise changes *what* is read there::

    noise = HeightNoise(cfg, num_envs=N, seed=0)
    ...
    xy = noise.sample_xy_offsets()          # [N, 4, 52, 2]: draws this step's noise
    heights = terrain_height(points_xy + xy)  # the simulator looks the heights up
    student_heights = noise.apply_z(heights)  # [N, 4, 52]: z offsets, outliers, missing
    ...
    noise.reset(done_env_ids)               # new episode: new mode and per-episode offsets

The teacher always sees the clean heights; only the student's copy goes through
:meth:`HeightNoise.apply_z`. Missing points are set to ``cfg.missing_fill``
(:data:`anymal_ros.config.noise.MISSING_HEIGHT_FILL`, -2.0 m by default), which the deployed
node must also write into cells its elevation map does not cover.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from anymal_ros.config.noise import MODE_NAMES, HeightNoiseConfig, NoiseLevels

NOMINAL, OFFSET, NOISY = 0, 1, 2

# Column order of the per-mode level table: NoiseLevels' fields.
_LEVEL_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(NoiseLevels))
_COL = {name: i for i, name in enumerate(_LEVEL_FIELDS)}


def _row(levels: NoiseLevels) -> np.ndarray:
    return np.array([getattr(levels, f) for f in _LEVEL_FIELDS], dtype=np.float64)


class HeightNoise:
    """Batched, seeded height-noise model (Miki et al. 2022); see the module docstring.

    Args:
        cfg: noise settings.
        num_envs: number of environments ``N``.
        num_feet, points_per_foot: sample layout ``F x P`` (4 x 52 by default).
        seed: seed of the model's own ``np.random.Generator``; same seed, same noise.
    """

    def __init__(
        self,
        cfg: HeightNoiseConfig,
        num_envs: int,
        num_feet: int = 4,
        points_per_foot: int = 52,
        seed: int | None = None,
    ) -> None:
        if num_envs < 1 or num_feet < 1 or points_per_foot < 1:
            raise ValueError(
                f"num_envs, num_feet and points_per_foot must be >= 1, got "
                f"{num_envs, num_feet, points_per_foot}"
            )
        self.cfg = cfg
        self.num_envs = num_envs
        self.shape = (num_envs, num_feet, points_per_foot)
        self.rng = np.random.default_rng(seed)
        self._probs = np.asarray(cfg.mode_probs, dtype=np.float64)
        self._curriculum = 0.0
        self._mode = np.zeros(num_envs, dtype=np.int64)
        # Per-episode offsets are stored as unit normals and scaled by the current mode's std,
        # so they stay fixed within an episode and follow a mid-episode mode change.
        self._episode_xy_unit = np.zeros((num_envs, 2))
        self._episode_z_unit = np.zeros(num_envs)
        self._step: dict[str, np.ndarray] | None = None
        self.reset()

    # --- episode and curriculum -------------------------------------------------------------

    def reset(self, env_ids: np.ndarray | list[int] | None = None) -> None:
        """Start new episodes for ``env_ids`` (all when None): new mode and episode offsets."""
        ids = self._ids(env_ids)
        n = len(ids)
        self._mode[ids] = self.rng.choice(3, size=n, p=self._probs)
        self._episode_xy_unit[ids] = self.rng.standard_normal((n, 2))
        self._episode_z_unit[ids] = self.rng.standard_normal(n)

    @property
    def curriculum(self) -> float:
        return self._curriculum

    def set_curriculum(self, factor: float) -> None:
        """Scale of the noisy mode, in [0, 1] (0: noisy environments get nominal levels)."""
        factor = float(factor)
        if not 0.0 <= factor <= 1.0 or not np.isfinite(factor):
            raise ValueError(f"curriculum factor must be in [0, 1], got {factor}")
        self._curriculum = factor

    @property
    def modes(self) -> np.ndarray:
        """``[N]`` current mode per environment (0 nominal, 1 offset, 2 noisy)."""
        return self._mode.copy()

    def mode_counts(self) -> dict[str, int]:
        """Environments per mode, for logging."""
        counts = np.bincount(self._mode, minlength=3)
        return {name: int(c) for name, c in zip(MODE_NAMES, counts, strict=True)}

    def levels(self) -> np.ndarray:
        """``[N, 8]`` effective levels per environment (columns in ``_LEVEL_FIELDS`` order)."""
        nominal, noisy = _row(self.cfg.nominal), _row(self.cfg.noisy)
        table = np.stack(
            [nominal, _row(self.cfg.offset), nominal + self._curriculum * (noisy - nominal)]
        )
        return table[self._mode]

    def episode_offsets(self) -> tuple[np.ndarray, np.ndarray]:
        """Current per-episode offsets: x/y ``[N, 2]`` and z ``[N]`` (m)."""
        lv = self.levels()
        xy = lv[:, _COL["episode_xy_std"], None] * self._episode_xy_unit
        z = lv[:, _COL["episode_z_std"]] * self._episode_z_unit
        return xy, z

    # --- one control step -------------------------------------------------------------------

    def sample_xy_offsets(self) -> np.ndarray:
        """Draw this step's noise and return the sample-point shifts ``[N, F, P, 2]`` (m).

        Add them to the x/y positions where heights are looked up, then pass the heights to
        :meth:`apply_z`. Also redraws modes mid-episode with ``cfg.mode_resample_prob``.
        """
        n, f, p = self.shape
        if not self.cfg.enabled:
            self._step = {}
            return np.zeros((n, f, p, 2), dtype=np.float32)
        switch = np.flatnonzero(self.rng.random(n) < self.cfg.mode_resample_prob)
        if len(switch):
            self._mode[switch] = self.rng.choice(3, size=len(switch), p=self._probs)
        lv = self.levels()
        ep_xy, ep_z = self.episode_offsets()

        def std(name: str) -> np.ndarray:
            return lv[:, _COL[name], None, None, None]

        rng = self.rng
        xy = (
            std("point_xy_std") * rng.standard_normal((n, f, p, 2))
            + std("foot_xy_std") * rng.standard_normal((n, f, 1, 2))
            + ep_xy[:, None, None, :]
        )
        z = (
            std("point_z_std")[..., 0] * rng.standard_normal((n, f, p))
            + std("foot_z_std")[..., 0] * rng.standard_normal((n, f, 1))
            + ep_z[:, None, None]
        )
        # One uniform per point decides missing / outlier / neither (mutually exclusive).
        u = rng.random((n, f, p))
        p_missing = lv[:, _COL["missing_prob"], None, None]
        p_outlier = lv[:, _COL["outlier_prob"], None, None]
        missing = u < p_missing
        outlier = (u >= p_missing) & (u < p_missing + p_outlier)
        magnitude = rng.uniform(self.cfg.outlier_min, self.cfg.outlier_max, size=(n, f, p))
        sign = np.where(rng.random((n, f, p)) < 0.5, -1.0, 1.0)
        self._step = {
            "z": z.astype(np.float32),
            "missing": missing,
            "outlier": outlier,
            "outlier_offset": (sign * magnitude).astype(np.float32),
        }
        return xy.astype(np.float32)

    def apply_z(self, heights: np.ndarray) -> np.ndarray:
        """Corrupt heights ``[N, F, P]`` (looked up at the shifted points) for the student.

        Returns a new float32 array: heights + z offsets; outliers are the true height plus
        a large random offset; missing points hold ``cfg.missing_fill``. Uses the noise drawn
        by the last :meth:`sample_xy_offsets` (calling twice gives the same result).
        """
        heights = np.asarray(heights)
        if heights.shape != self.shape:
            raise ValueError(f"heights must have shape {self.shape} [N, F, P], got {heights.shape}")
        if not np.all(np.isfinite(heights)):
            raise ValueError("heights contain NaN or inf; the terrain lookup is broken")
        if self._step is None:
            raise RuntimeError("call sample_xy_offsets() before apply_z() in every step")
        out = heights.astype(np.float32, copy=True)
        if not self._step:  # disabled
            return out
        step = self._step
        outlier_values = out + step["outlier_offset"]
        out += step["z"]
        out = np.where(step["outlier"], outlier_values, out)
        out[step["missing"]] = self.cfg.missing_fill
        return out

    # --- checkpointing ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the exact same noise sequence after a restart."""
        return {
            "rng": self.rng.bit_generator.state,
            "curriculum": self._curriculum,
            "mode": self._mode.copy(),
            "episode_xy_unit": self._episode_xy_unit.copy(),
            "episode_z_unit": self._episode_z_unit.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if np.shape(state["mode"]) != (self.num_envs,):
            raise ValueError(
                f"noise state is for {np.shape(state['mode'])} environments, "
                f"this model has {self.num_envs}"
            )
        self.rng.bit_generator.state = state["rng"]
        self.set_curriculum(state["curriculum"])
        self._mode[:] = state["mode"]
        self._episode_xy_unit[:] = state["episode_xy_unit"]
        self._episode_z_unit[:] = state["episode_z_unit"]
        self._step = None

    # --- helpers ----------------------------------------------------------------------------

    def _ids(self, env_ids: np.ndarray | list[int] | None) -> np.ndarray:
        if env_ids is None:
            return np.arange(self.num_envs)
        ids = np.asarray(env_ids)
        if ids.dtype == bool:
            if ids.shape != (self.num_envs,):
                raise ValueError(f"boolean env mask must have shape ({self.num_envs},)")
            return np.flatnonzero(ids)
        ids = ids.reshape(-1)
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"env_ids must be integers, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_envs):
            raise ValueError(f"env_ids out of range [0, {self.num_envs}): {ids}")
        return ids.astype(np.int64)


class HeightNoiseView:
    """The student's view of an environment's heights: both halves of a noisy step.

    Shifts every sample point by this step's x/y noise through the environment's terrain
    look-up (``env.heights_at_offsets``, when it has one; otherwise the clean heights stand in),
    then applies the z noise. Training (DAgger), evaluation and recording all use it, so a
    policy is scored under the same noise it was trained with.
    """

    def __init__(self, cfg: HeightNoiseConfig, env: Any, seed: int) -> None:
        self.env = env
        self.model = HeightNoise(cfg, env.num_envs, seed=seed)
        self.shifts_xy = hasattr(env, "heights_at_offsets")

    def __call__(self, clean: Any) -> np.ndarray:
        """``clean [N, 4, 52]`` -> noisy ``[N, 4, 52]`` float32 (draws this step's noise)."""
        xy = self.model.sample_xy_offsets()
        heights = self.env.heights_at_offsets(xy) if self.shifts_xy else clean
        return self.model.apply_z(np.asarray(heights))  # a CPU tensor converts too

    def reset(self, env_ids: np.ndarray) -> None:
        if len(env_ids):
            self.model.reset(env_ids)
