"""The markdown (pipe) table every evaluation report prints and writes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def pipe_table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A markdown table: the header ``head``, its rule, then one line per row of cells.
    A row with another number of cells than ``head`` is refused: it would shift columns."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, cells in enumerate(rows):
        if len(cells) != len(head):
            raise ValueError(f"table row {i} has {len(cells)} cells for {len(head)} columns")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
