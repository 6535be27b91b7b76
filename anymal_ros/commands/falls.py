"""`anymal-ros falls RESULT.json [--role ROLE] [--rows ROW ...] [--pool] [--plot PNG]`: who
fell in the cells of a `scorecard` or `eval` result: the commands and randomised physics of the
robots that fell against those of all, the falls per band of commanded forward speed and where
on the field they fell (the flat centre, walking away from it or towards it, another tile);
``--pool`` sums the rows into one (the 17 cm stairs up and down together, say), ``--plot``
draws where on their start tiles they fell."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("result", help="a scorecard.json or eval.json")
    parser.add_argument(
        "--role", help="a scorecard's cells of this role only (candidate, teacher, baseline)"
    )
    parser.add_argument(
        "--rows", nargs="+", metavar="ROW",
        help="these rows only: a scorecard's row names ('stairs 17 cm up'), an eval's terrains",
    )  # fmt: skip
    parser.add_argument(
        "--plot", metavar="PNG",
        help="also draw where on their start tiles the robots fell, a panel per row",
    )  # fmt: skip
    parser.add_argument(
        "--pool", action="store_true",
        help="sum the rows (--rows, else all) into one per role, noise and physics",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from anymal_ros.eval import falls

    path = Path(args.result)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        print(f"error: {path}: {err}")
        return 2
    cells = data.get("cells", data.get("rows")) if isinstance(data, dict) else None
    if not isinstance(cells, list):
        print(f"error: {path}: not a scorecard.json or eval.json (no 'cells' or 'rows')")
        return 2
    if args.role is not None:
        cells = [c for c in cells if c.get("role") == args.role]
    if args.rows:
        known = list(dict.fromkeys(falls.row_name(c) for c in cells))
        unknown = [r for r in args.rows if r not in known]
        if unknown:
            print(f"error: {path}: no row {', '.join(map(repr, unknown))}; it has {known}")
            return 2
        cells = [c for c in cells if falls.row_name(c) in args.rows]
    if args.pool:
        cells = falls.pool_rows(cells)
    rows = falls.summary(cells)
    if not rows:
        which = f" of role {args.role!r}" if args.role is not None else ""
        print(f"error: {path}: no cell{which} has a fall log (files written before it have none)")
        return 2
    print(falls.markdown(rows))
    by_vx = falls.markdown_by_vx(rows)
    if by_vx:
        print("\nFalls / robots by commanded forward speed:\n")
        print(by_vx)
    by_place = falls.markdown_by_place(rows)
    if by_place:
        print(
            "\nFalls by place (mean ground speed over the second before, m/s; all: every"
            " robot's mean ground speed there, measured alike):\n"
        )
        print(by_place)
    if args.plot:
        drawn = falls.plot_places(cells, args.plot)
        print(f"\nwrote {drawn}" if drawn else "\nno plot: no fall in these cells has a place")
    return 0
