"""What the evaluation figures share: a display-free pyplot, saving, and the falls axis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Tick marks of a falls-per-10-min axis (those up to the axis' end are used).
FALLS_TICKS: tuple[float, ...] = (0, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500)


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def falls_axis(ax: Any, top: float, axis: str = "y", headroom: float = 1.3) -> str:
    """Scale ``ax``'s ``axis`` ("x" or "y") for falls per 10 min up to ``top``: linear, or,
    above 8, linear to 1 and logarithmic beyond (symlog), so 0.3 and 30 falls are both
    readable. Returns the label's suffix that says so."""
    if top <= 8:
        getattr(ax, f"set_{axis}lim")(0, 1.08 * top)
        return ""
    getattr(ax, f"set_{axis}scale")("symlog", linthresh=1.0, linscale=1.0)
    ticks = [t for t in FALLS_TICKS if t <= headroom * top]
    getattr(ax, f"set_{axis}ticks")(ticks, [f"{t:g}" for t in ticks])
    getattr(ax, f"set_{axis}lim")(0, headroom * top)
    return " (log above 1)"


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` (folders made as needed) and close it."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    pyplot().close(fig)
    return out
