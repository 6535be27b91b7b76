"""Falls against speed: for each scorecard given, the falls on its clean rows (in all and on
the stairs) against how fast its robot walks on flat ground (tracking error, distance in the
episode). One point per policy, a JSON and a figure.

Every limit on speed tried on the ANYmal C teacher (policies/MODEL_CARD.md, "A speed limit on
the stairs" and after) bought fewer falls with a slower robot, on flat ground too, where no
limit applied; this puts the runs on one picture to show the trade they made.

    .venv/bin/python benchmarks/speed_vs_falls.py \\
        "firm mean=policies/training/teacher_firm_ground/firm_mean_30600_31000/scorecard.json" \\
        "control=policies/training/teacher_speed_limit/control_mean_33250_33650/scorecard.json" \\
        --out benchmarks/results/speed_vs_falls.json --plot speed_vs_falls.png

Only the candidate's clean-height cells in the training physics count; every card must hold
the same rows (a teacher's look, ``--noise none``, or a whole card's clean half).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anymal_ros.eval.figures import pyplot, save_figure  # noqa: E402
from anymal_ros.eval.scorecard import TRAINING, pooled, read_cells  # noqa: E402

FLAT = "flat"


def summary(path: str | Path) -> dict:
    """A card's candidate on clean heights: falls per row, in all and on the stairs, and its
    flat row's tracking error and mean distance walked (m per episode)."""
    mine = ("candidate", "none", TRAINING)
    rows = {p["row"]: p for p in pooled(read_cells(path))
            if (p["role"], p["noise"], p["physics"]) == mine}  # fmt: skip
    if FLAT not in rows:
        raise SystemExit(f"{path}: no clean flat row for the candidate")
    falls = {row: int(p["falls"]) for row, p in rows.items()}
    return {
        "falls": falls,
        "falls_in_all": sum(falls.values()),
        "falls_on_stairs": sum(n for row, n in falls.items() if row.startswith("stairs")),
        "flat_tracking_error": round(float(rows[FLAT]["tracking_error"]), 4),
        "flat_distance": round(float(rows[FLAT]["distance"]), 2),
    }


def plot(points: dict[str, dict], path: str | Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10.0, 5.0))
    # The default cycle repeats after ten colours; tab20 gives twenty distinct ones.
    colours = plt.get_cmap("tab20").colors if len(points) > 10 else [f"C{i}" for i in range(10)]
    for i, (label, p) in enumerate(points.items()):
        x, colour = p["flat_tracking_error"], colours[i % len(colours)]
        ax.scatter([x], [p["falls_in_all"]], color=colour, marker="o", s=40, label=label)
        ax.scatter([x], [p["falls_on_stairs"]], color=colour, marker="s", s=40,
                   facecolors="none")  # fmt: skip
        ax.plot([x, x], [p["falls_on_stairs"], p["falls_in_all"]], color=colour, lw=0.8)
    ax.axvline(0.10, color="red", linestyle="--", linewidth=1.0, label="flat tracking target")
    ax.set_title("falls in all (dots) and on the stairs (squares), clean heights", fontsize=10)
    ax.set_xlabel("tracking error on flat ground [m/s] (a slower robot: right)")
    ax.set_ylabel("falls on the card's clean rows (180 robots x 20 s each)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cards", nargs="+", metavar="LABEL=SCORECARD_JSON")
    parser.add_argument("--out", default="benchmarks/results/speed_vs_falls.json")
    parser.add_argument("--plot", help="also draw the points to this PNG")
    args = parser.parse_args(argv)
    points, rows = {}, None
    for item in args.cards:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            raise SystemExit(f"{item!r}: give LABEL=SCORECARD_JSON")
        if label in points:  # a second card under one label would hide the first
            raise SystemExit(f"label {label!r} is given twice: give each card its own")
        points[label] = {"scorecard": path, **summary(path)}
        if rows is None:
            rows = sorted(points[label]["falls"])
        elif sorted(points[label]["falls"]) != rows:
            raise SystemExit(f"{path}: rows {sorted(points[label]['falls'])}, the first card's "
                             f"{rows}: compare cards of the same rows")  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(points, indent=2) + "\n")
    for label, p in points.items():
        print(
            f"{label}: {p['falls_in_all']} falls ({p['falls_on_stairs']} on the stairs), "
            f"flat tracking {p['flat_tracking_error']:.3f} m/s, {p['flat_distance']:.1f} m"
        )
    print(f"wrote {out}")
    if args.plot:
        print(f"wrote {plot(points, args.plot)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
