"""How well a student's belief reconstructs what it cannot see (``anymal-ros eval``).

For a student with its belief decoder, every step of every robot still in its episode
compares the decoder's reconstruction (``policy.belief()``, raw units) with the simulator's
truth:

* ``belief_height_rmse``: believed heights vs the true noise-free heights (m, RMS over all
  4 x 52 samples);
* ``input_height_rmse``: the heights the policy was fed (noisy in a noise mode, missing points
  at the fill value) vs the same truth: the belief helps when it is below this;
* ``belief_vs_input_rmse``: believed vs fed heights (what the node's disagreement shows);
* ``flat_height_rmse``: the truth vs 0, the error of a belief that says "flat ground level
  with each sole" whatever it saw: a belief must beat this too to have learnt the terrain;
* ``belief_height_rmse_present``, ``input_height_rmse_present``: the same two errors over the
  samples the input has (not missing): missing samples (-2 m) dominate the input's RMSE in the
  noisy mode, and these say whether the belief also beats the heights that were measured;
* ``privileged_rmse.<term>``: per term of
  :data:`~anymal_ros.contract.PRIVILEGED_LAYOUT`, believed vs true (units of
  :data:`~anymal_ros.contract.PRIVILEGED_UNITS`);
* ``privileged_spread.<term>``: the true values' RMS deviation from their mean over the cell
  (per component): the error of the best constant guess, the scale to read the RMSE against.

:func:`plot_belief` draws one robot's truth, input and belief side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anymal_ros.config.noise import MISSING_HEIGHT_FILL
from anymal_ros.contract import PRIVILEGED_LAYOUT
from anymal_ros.eval.figures import pyplot, save_figure
from anymal_ros.eval.tables import pipe_table

HEIGHT_METRICS = (
    "belief_height_rmse",
    "input_height_rmse",
    "belief_vs_input_rmse",
    "flat_height_rmse",
    "belief_height_rmse_present",
    "input_height_rmse_present",
)
PRIVILEGED_METRICS = tuple(f"privileged_rmse.{name}" for name in PRIVILEGED_LAYOUT.names)
PRIVILEGED_SPREADS = tuple(f"privileged_spread.{name}" for name in PRIVILEGED_LAYOUT.names)
BELIEF_METRICS = HEIGHT_METRICS + PRIVILEGED_METRICS + PRIVILEGED_SPREADS


class BeliefMeter:
    """Accumulates squared reconstruction errors of the robots still in their episode."""

    def __init__(self) -> None:
        self._sums = dict.fromkeys(HEIGHT_METRICS + PRIVILEGED_METRICS, 0.0)
        self._counts = dict.fromkeys(HEIGHT_METRICS + PRIVILEGED_METRICS, 0)
        self._slices = PRIVILEGED_LAYOUT.slices()
        # Per component of the true privileged vector: count, sum, sum of squares (spread).
        self._truth_moments = np.zeros((3, PRIVILEGED_LAYOUT.dim))

    def _add(self, key: str, error: np.ndarray) -> None:
        self._sums[key] += float(np.sum(np.square(error, dtype=np.float64)))
        self._counts[key] += error.size

    def update(
        self,
        belief: tuple[np.ndarray, np.ndarray],
        true_heights: np.ndarray,
        fed_heights: np.ndarray,
        true_privileged: np.ndarray,
        active: np.ndarray,
    ) -> None:
        """``belief`` = (heights ``[N, 4, 52]``, privileged ``[N, 50]``), truth and input of
        the same step, ``active [N]`` bool: which robots count."""
        heights, privileged = belief
        a = np.asarray(active, dtype=bool)
        self._add("belief_height_rmse", heights[a] - true_heights[a])
        self._add("input_height_rmse", fed_heights[a] - true_heights[a])
        self._add("belief_vs_input_rmse", heights[a] - fed_heights[a])
        self._add("flat_height_rmse", true_heights[a])
        present = fed_heights[a] != MISSING_HEIGHT_FILL
        self._add("belief_height_rmse_present", (heights[a] - true_heights[a])[present])
        self._add("input_height_rmse_present", (fed_heights[a] - true_heights[a])[present])
        for name, cols in self._slices.items():
            self._add(f"privileged_rmse.{name}", privileged[a, cols] - true_privileged[a, cols])
        truth = np.asarray(true_privileged[a], dtype=np.float64)
        self._truth_moments[0] += len(truth)
        self._truth_moments[1] += truth.sum(0)
        self._truth_moments[2] += np.square(truth).sum(0)

    def result(self) -> dict[str, float]:
        out = {k: float(np.sqrt(self._sums[k] / max(self._counts[k], 1))) for k in self._sums}
        n, total, squares = self._truth_moments
        n = np.maximum(n, 1)
        variance = np.maximum(squares / n - np.square(total / n), 0.0)
        for name, cols in self._slices.items():
            out[f"privileged_spread.{name}"] = float(np.sqrt(np.mean(variance[cols])))
        return out


def belief_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown tables of the belief metrics of :func:`~anymal_ros.eval.evaluate.evaluate`
    rows (empty when no row has them): the heights, then the privileged terms as "RMSE
    (spread)"."""
    rows = [r for r in rows if "belief_height_rmse" in r]
    if not rows:
        return ""
    head = ["terrain", "noise", "heights: belief vs truth [m]", "input vs truth [m]",
            "belief vs input [m]", "flat ground vs truth [m]",
            "belief vs truth, input present [m]",
            "input vs truth, present [m]"]  # fmt: skip
    heights = pipe_table(
        head, ([r["terrain"], r["noise"], *(f"{r[m]:.3f}" for m in HEIGHT_METRICS)] for r in rows)
    )
    head = ["terrain", "noise", *(f"{n} rmse (spread)" for n in PRIVILEGED_LAYOUT.names)]
    privileged = pipe_table(
        head,
        (
            [r["terrain"], r["noise"]]
            + [
                f"{r[f'privileged_rmse.{n}']:.3f} ({r[f'privileged_spread.{n}']:.3f})"
                for n in PRIVILEGED_LAYOUT.names
            ]
            for r in rows
        ),
    )
    return heights + "\n\n" + privileged


def sample_xy(env, robot: int = 0) -> np.ndarray:
    """``[4, 52, 2]`` world x/y of robot ``robot``'s height samples in the current state."""
    from anymal_ros.obs.extero import sample_points
    from anymal_ros.obs.rotations import yaw_from_quat

    idx = env.index
    feet = env.data.xpos[idx.foot_body][robot : robot + 1]  # [1, 4, 3]
    yaw = yaw_from_quat(env.data.qpos[idx.qpos_base[robot : robot + 1, 3:7]])
    return sample_points(feet[..., :2], yaw)[0]


def _rms(error: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(error)))) if error.size else 0.0


def plot_belief(
    path: str | Path,
    xy: np.ndarray,
    truth: np.ndarray,
    fed: np.ndarray,
    believed: np.ndarray,
    title: str,
) -> Path:
    """PNG of one robot's samples ``xy [4, 52, 2]`` (heights ``[4, 52]`` in m, relative to
    each sole). Top: the true terrain, the input the policy was fed (missing samples as
    crosses), what it believes, on one colour scale. Bottom: the input's and the belief's
    errors against the truth, on one diverging scale, and the distribution of both."""
    plt = pyplot()

    x, y = xy[..., 0].ravel(), xy[..., 1].ravel()
    truth, fed, believed = (np.asarray(a, dtype=np.float64).ravel() for a in (truth, fed, believed))
    present = fed != MISSING_HEIGHT_FILL
    input_error, belief_error = (fed - truth)[present], believed - truth
    # Heights: the range of the truth and the belief (the input's outliers saturate).
    lo, hi = np.percentile(np.concatenate([truth, believed]), [1, 99])
    pad = max(0.02, 0.1 * (hi - lo))
    heights = dict(cmap="viridis", vmin=lo - pad, vmax=hi + pad)
    # Errors: most of the input's (outliers saturate), at least 5 cm either way.
    limit = max(0.05, float(np.percentile(np.abs(input_error), 95)) if input_error.size else 0)
    errors = dict(cmap="coolwarm", vmin=-limit, vmax=limit)

    fig, axes = plt.subplots(2, 3, figsize=(13.5, 8.6))
    panels = (
        (axes[0, 0], "true terrain", truth, heights, "height [m]"),
        (axes[0, 1], f"input (noisy), {int((~present).sum())} missing (x)", fed, heights,
         "height [m]"),
        (axes[0, 2], "belief (decoded from memory)", believed, heights, "height [m]"),
        (axes[1, 0], f"input - truth: RMS {_rms(input_error):.3f} m", fed - truth, errors,
         "error [m]"),
        (axes[1, 1], f"belief - truth: RMS {_rms(belief_error):.3f} m", believed - truth, errors,
         "error [m]"),
    )  # fmt: skip
    for ax, label, z, scale, unit in panels:
        shown = present if ax in (axes[0, 1], axes[1, 0]) else np.ones_like(present)
        image = ax.scatter(x[shown], y[shown], c=z[shown], s=18, **scale)
        if ax in (axes[0, 1], axes[1, 0]):
            ax.scatter(x[~present], y[~present], marker="x", c="black", s=22, linewidths=1)
        ax.set_title(label, fontsize=11)
        ax.set_aspect("equal")
        ax.set_xlabel("x [m]")
        ax.set_ylabel("y [m]")
        fig.colorbar(image, ax=ax, shrink=0.85, label=unit, extend="both")
    ax = axes[1, 2]
    bins = np.linspace(0.0, 2.0 * limit, 25)
    for e, label, colour in ((input_error, "input (present samples)", "tab:orange"),
                             (belief_error, "belief (all samples)", "tab:blue")):  # fmt: skip
        ax.hist(np.clip(np.abs(e), 0.0, bins[-1]), bins=bins, alpha=0.6, label=label,
                color=colour)  # fmt: skip
    ax.set_title("|error| against the truth (last bin: beyond)", fontsize=11)
    ax.set_xlabel("|error| [m]")
    ax.set_ylabel("samples")
    ax.legend()
    fig.suptitle(f"{title}\nheights relative to each foot's sole; 4 feet x 52 samples, world x/y")
    fig.tight_layout()
    return save_figure(fig, path, dpi=80)
