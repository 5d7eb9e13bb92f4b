"""How far a proxy accuracy can be trusted: error bars, and front points that one proxy run cannot tell apart.

A trial's ``accuracy_se`` (``trials.parquet``, docs/proxy.md) is the binomial standard error of its accuracy
over the validation clips. Figures draw +-:data:`NOISE_Z` standard errors around each accuracy; the summary names
the front points whose accuracies are within that noise of the most accurate point of their group
(docs/reports.md, "Findings first"): a trade-off between them may be noise. Runs written before the column
existed show neither.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

NOISE_Z = 2.0  # standard errors: about a 95% interval on one reading


def accuracy_error_bars(frame: pd.DataFrame) -> dict | None:
    """Plotly ``error_y`` for accuracies shown in percent: +-NOISE_Z standard errors, or None when unknown."""
    if "accuracy_se" not in frame.columns:
        return None
    se = pd.to_numeric(frame["accuracy_se"], errors="coerce").astype(float).to_numpy()
    if np.isnan(se).all():
        return None
    bars = np.nan_to_num(NOISE_Z * 100.0 * se, nan=0.0).tolist()  # a list: Plotly.js reads error arrays plain
    return {"type": "data", "array": bars, "visible": True, "thickness": 1}


def indistinguishable(front: pd.DataFrame) -> list[list[int]]:
    """Groups (trial ids, most accurate first) of two or more front points whose accuracies are within noise of
    the most accurate point of their group: ``a_top - a <= NOISE_Z * sqrt(se_top^2 + se^2)``."""
    if front.empty or "accuracy_se" not in front.columns:
        return []
    rows = front.assign(noise_se=pd.to_numeric(front["accuracy_se"], errors="coerce").astype(float))
    rows = rows[rows["noise_se"].notna()].sort_values("accuracy", ascending=False)
    groups: list[list[int]] = []
    top = None
    for row in rows.itertuples():
        if top is not None and top.accuracy - row.accuracy <= NOISE_Z * math.hypot(top.noise_se, row.noise_se):
            groups[-1].append(int(row.trial_id))
            continue
        top = row
        groups.append([int(row.trial_id)])
    return [group for group in groups if len(group) > 1]
