"""Error bars and front points within noise of each other (reports/uncertainty.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from reports.uncertainty import accuracy_error_bars, indistinguishable


def front(*points: tuple[int, float, float | None]) -> pd.DataFrame:
    return pd.DataFrame([{"trial_id": t, "accuracy": a, "accuracy_se": se} for t, a, se in points])


def test_points_within_two_standard_errors_of_their_group_top_are_one_group():
    se = 0.02  # the difference of two readings has sd 0.028: within 2 sd is a gap up to 0.0566
    groups = indistinguishable(front((1, 0.70, se), (2, 0.66, se), (3, 0.64, se), (4, 0.50, se), (5, 0.46, se)))
    assert groups == [[1, 2], [4, 5]]  # 3 is 0.06 below 1: a group of its own (one point: nothing to say)
    assert indistinguishable(front((1, 0.70, se), (2, 0.60, se))) == []
    assert indistinguishable(front((1, 0.70, None), (2, 0.69, None))) == []  # unknown noise: nothing claimed


def test_error_bars_are_two_standard_errors_in_percent_and_absent_without_the_column():
    bars = accuracy_error_bars(front((1, 0.5, 0.025), (2, 0.6, None)))
    assert bars["visible"] and bars["array"] == pytest.approx([5.0, 0.0])
    assert accuracy_error_bars(pd.DataFrame({"accuracy": [0.5]})) is None
