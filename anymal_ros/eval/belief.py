"""How well a student's belief reconstructs what it cannot see (``anymal-ros eval``).

For a student with its belief decoder, every step of every robot still in its episode
compares the decoder's reconstruction (``policy.belief()``, raw units) with the simulator's
truth:

* ``belief_height_rmse``: believed heights vs the true noise-free heights (m, RMS over all
  4 x 52 samples);
* ``input_height_rmse``: the heights the policy was fed (noisy in a noise mode, missing points
  at the fill value) vs the same truth: the belief helps when it is below this;
* ``belief_vs_input_rmse``: believed vs fed heights (what the node's disagreement shows);
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

HEIGHT_METRICS = (
    "belief_height_rmse",
    "input_height_rmse",
    "belief_vs_input_rmse",
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
            "belief vs input [m]", "belief vs truth, input present [m]",
            "input vs truth, present [m]"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["terrain"], r["noise"], *(f"{r[m]:.3f}" for m in HEIGHT_METRICS)]
        lines.append("| " + " | ".join(cells) + " |")
    head = ["terrain", "noise", *(f"{n} rmse (spread)" for n in PRIVILEGED_LAYOUT.names)]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["terrain"], r["noise"]] + [
            f"{r[f'privileged_rmse.{n}']:.3f} ({r[f'privileged_spread.{n}']:.3f})"
            for n in PRIVILEGED_LAYOUT.names
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sample_xy(env, robot: int = 0) -> np.ndarray:
    """``[4, 52, 2]`` world x/y of robot ``robot``'s height samples in the current state."""
    from anymal_ros.obs.extero import sample_points
    from anymal_ros.obs.rotations import yaw_from_quat

    idx = env.index
    feet = env.data.xpos[idx.foot_body][robot : robot + 1]  # [1, 4, 3]
    yaw = yaw_from_quat(env.data.qpos[idx.qpos_base[robot : robot + 1, 3:7]])
    return sample_points(feet[..., :2], yaw)[0]


def plot_belief(
    path: str | Path,
    xy: np.ndarray,
    truth: np.ndarray,
    fed: np.ndarray,
    believed: np.ndarray,
    title: str,
) -> Path:
    """PNG of one robot's samples ``xy [4, 52, 2]`` coloured by height (m, relative to each
    sole): the true terrain, the input the policy was fed, what it believes; and the errors of
    input and belief against the truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (
        ("truth", truth),
        ("input (noisy)", fed),
        ("belief", believed),
        ("input - truth", fed - truth),
        ("belief - truth", believed - truth),
    )
    values = np.concatenate([truth.ravel(), believed.ravel()])
    lo, hi = float(np.percentile(values, 1)), float(np.percentile(values, 99))
    err = max(float(np.abs(fed - truth).max()), 1e-3)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.0 * len(panels), 4.2), sharey=True)
    for ax, (label, z) in zip(axes, panels, strict=True):
        is_error = "-" in label
        kw = dict(cmap="coolwarm", vmin=-err, vmax=err) if is_error else dict(vmin=lo, vmax=hi)
        image = ax.scatter(xy[..., 0].ravel(), xy[..., 1].ravel(), c=z.ravel(), s=14, **kw)
        rms = f" (RMS {np.sqrt(np.mean(z**2)):.3f} m)" if is_error else ""
        ax.set_title(label + rms)
        ax.set_aspect("equal")
        ax.set_xlabel("x [m]")
        fig.colorbar(image, ax=ax, shrink=0.7, label="m")
    axes[0].set_ylabel("y [m]")
    fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
