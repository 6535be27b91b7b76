"""The one markdown table builder the evaluation reports share."""

from __future__ import annotations

import pytest

from anymal_ros.eval.evaluate import LATER_METRICS, METRICS, markdown_table
from anymal_ros.eval.tables import pipe_table


def test_pipe_table_has_a_rule_under_the_header_and_a_line_per_row():
    text = pipe_table(["a", "b"], [["1", "2"], ["3", "4"]])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 1 | 2 |", "| 3 | 4 |"]
    assert pipe_table(["only"], []) == "| only |\n|---|"


def test_pipe_table_refuses_a_row_that_would_shift_the_columns():
    with pytest.raises(ValueError, match="row 1 has 3 cells for 2 columns"):
        pipe_table(["a", "b"], [["1", "2"], ["1", "2", "3"]])


def test_a_comparison_puts_both_policies_of_each_metric_side_by_side():
    mine = [{"terrain": "flat", "noise": "none", **{m: 1.0 for m in METRICS}}]
    other = [{"terrain": "flat", "noise": "none", **{m: 2.0 for m in METRICS}}]
    head, rule, row = markdown_table(mine, other, ("new", "old")).splitlines()
    assert head.count("(new)") == head.count("(old)") == len(METRICS)
    assert rule.count("---") == 2 + 2 * len(METRICS)
    assert row == "| flat | none | " + " | ".join(["1.000", "2.000"] * len(METRICS)) + " |"


def test_a_row_from_a_file_older_than_a_metric_shows_a_dash_there():
    old = {"terrain": "rough", "noise": "none", **{m: 1.0 for m in METRICS}}
    for m in LATER_METRICS:
        del old[m]
    row = markdown_table([old]).splitlines()[2].strip("| ").split(" | ")
    assert row.count("-") == len(LATER_METRICS)
    assert row.count("1.000") == len(METRICS) - len(LATER_METRICS)
    del old["tracking_error"]  # a metric every file has: missing means a broken row
    with pytest.raises(KeyError, match="tracking_error"):
        markdown_table([old])
