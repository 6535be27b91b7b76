"""Training logs: one CSV row per iteration (crash-safe: appended and flushed), optional
TensorBoard scalars, and a PNG of the learning curves (``plot_run``)."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

BASE_COLUMNS = (
    "iteration",
    "env_steps",
    "wall_time",
    "steps_per_second",
    "collect_time",
    "sim_time",
    "learn_time",
    "mean_step_reward",
    "episodes",
    "mean_return",
    "mean_length",
)


class TrainingLogger:
    """Appends rows to ``run_dir/metrics.csv`` and mirrors them to TensorBoard."""

    def __init__(
        self,
        run_dir: Path,
        stat_columns: Sequence[str],
        tensorboard: bool = True,
        resume_from_iteration: int | None = None,
    ) -> None:
        self.path = Path(run_dir) / "metrics.csv"
        self.columns = list(BASE_COLUMNS) + [c for c in stat_columns if c not in BASE_COLUMNS]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_from_iteration is not None and self.path.is_file():
            self._truncate_after(resume_from_iteration)
        new = not self.path.is_file() or self.path.stat().st_size == 0
        self._file = self.path.open("a", newline="")
        self._csv = csv.DictWriter(self._file, fieldnames=self.columns, extrasaction="ignore")
        if new:
            self._csv.writeheader()
            self._file.flush()
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def _truncate_after(self, iteration: int) -> None:
        # Rows written after the checkpoint we resume from describe a future that is replayed.
        with self.path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        keep = [r for r in rows if r.get("iteration") and int(r["iteration"]) <= iteration]
        with self.path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            w.writeheader()
            w.writerows(keep)

    def log(self, row: Mapping[str, Any]) -> None:
        self._csv.writerow({k: row.get(k, "") for k in self.columns})
        self._file.flush()
        if self._tb is not None:
            step = int(row["env_steps"])
            for k, v in row.items():
                if k not in ("iteration", "env_steps") and isinstance(v, (int, float)):
                    if not math.isnan(float(v)):
                        self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: str | Path) -> dict[str, list[float]]:
    """Columns of a ``metrics.csv`` as float lists (empty cells become NaN)."""
    with Path(path).open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return {k: [float(r[k]) if r[k] not in ("", None) else math.nan for r in rows] for k in rows[0]}


def _logged(m: dict[str, list[float]], column: str) -> bool:
    """Whether ``column`` holds a value anywhere (a run's CSV has every stat column, empty
    where the run did not compute it)."""
    return column in m and any(not math.isnan(v) for v in m[column])


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``learning_curves.png`` (return vs env steps and wall-clock, losses) for a run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.csv"
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{run_dir}: no metrics.csv (is this a training run directory?)")
    m = read_metrics(metrics_path)
    if not m:
        raise ValueError(f"{metrics_path}: no rows yet")
    out = Path(out) if out is not None else run_dir / "learning_curves.png"
    panels = [
        ("env_steps", "mean_return", "env steps", "mean episode return"),
        ("wall_time", "mean_return", "wall-clock [s]", "mean episode return"),
    ]
    if "behaviour_loss" in m:  # a distillation run: how well the student imitates and tracks,
        panels += [  # and how well its belief reconstructs what it cannot see
            ("env_steps", "behaviour_loss", "env steps", "behaviour loss"),
            ("env_steps", "tracking_error", "env steps", "velocity tracking error [m/s]"),
            ("env_steps", "recon_heights_loss", "env steps", "heights reconstruction loss"),
            ("env_steps", "recon_privileged_loss", "env steps", "privileged reconstruction loss"),
        ]
        if "terrain_level" in m:  # where the curriculum takes the student's robots
            panels.append(("env_steps", "terrain_level", "env steps", "mean terrain level"))
        if "governor_capped_share" in m:  # how often its belief slowed it (dagger.governor)
            panels.append(
                ("env_steps", "governor_capped_share", "env steps", "robot-steps governed")
            )
    else:
        panels += [
            ("env_steps", "value_loss", "env steps", "value loss"),
            ("env_steps", "entropy", "env steps", "policy entropy"),
        ]
        if "terrain_level" in m:  # the legged task: how long robots walk, and how far up
            panels += [  # the terrain curriculum they are, on each terrain type
                ("env_steps", "mean_length", "env steps", "mean episode length [steps]"),
                ("env_steps", "terrain_level", "env steps", "mean terrain level"),
            ]
        if _logged(m, "symmetry_loss"):  # ppo.symmetry_coef: how far the gait is lopsided
            panels.append(("env_steps", "symmetry_loss", "env steps", "symmetry loss"))
    cols = (len(panels) + 1) // 2
    fig, axes = plt.subplots(2, cols, figsize=(5 * cols, 7))
    for ax in axes.flat[len(panels) :]:  # an odd number of panels leaves one cell empty
        ax.set_visible(False)
    for ax, (x, y, xl, yl) in zip(axes.flat[: len(panels)], panels, strict=True):
        if x in m and y in m:
            ax.plot(m[x], m[y], color="k" if y == "terrain_level" else None, label="all")
        if y == "terrain_level":
            for kind in sorted(k for k in m if k.startswith("terrain_level/")):
                ax.plot(m[x], m[kind], lw=0.8, label=kind.split("/", 1)[1])
            # Beside the panel, not on it: inside it hid the lowest type (stairs up) late on.
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
        if x == "env_steps":  # millions of steps: keep the tick labels apart
            ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    fig.suptitle(run_dir.name)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
