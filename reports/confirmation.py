"""The report's "Front confirmed with more seeds" section: ``RUN/confirmed.parquet`` of ``nas confirm`` (docs/search.md).

The same rows in the page and in ``summary.md``: each trial on the front before or after confirmation, its
search accuracy, its mean over the seeds trained with the standard error of that mean, and which front it is on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

HEADERS = ("trial", "spec key", "search top-1 (%)", "mean top-1 (%) ± SE", "seeds", "GMACs", "front before",
           "front after")
NOT_CONFIRMED = ("Not confirmed yet: `nas confirm RUN --seeds 2` trains the front's candidates with further seeds, "
                 "averages them and computes the front again.")


@dataclass(frozen=True)
class Confirmation:
    rows: list[list[object]]
    sentence: str  # what changed, in words


def confirmation(confirmed: pd.DataFrame | None) -> Confirmation | None:
    """The section's table and sentence; None when the run was not confirmed."""
    if confirmed is None or confirmed.empty:
        return None
    rows = []
    for r in confirmed.itertuples():
        se = f" ± {100 * r.accuracy_se:.1f}" if isinstance(r.accuracy_se, float) and math.isfinite(r.accuracy_se) else ""
        rows.append([int(r.trial_id), str(r.spec_key), round(100 * float(r.accuracy_search), 1),
                     f"{100 * float(r.accuracy):.1f}{se}", int(r.seeds), float(r.gmacs),
                     "yes" if r.front_before else "-", "yes" if r.front_after else "-"])
    before = set(confirmed.loc[confirmed["front_before"], "trial_id"].astype(int))
    after = set(confirmed.loc[confirmed["front_after"], "trial_id"].astype(int))
    seeds = int(confirmed["seeds"].max())
    parts = [f"{len(before & after)} of the {len(before)} front points stay on the front after averaging over up to "
             f"{seeds} seeds"]
    if before - after:
        parts.append(f"left the front: trial {', '.join(map(str, sorted(before - after)))}")
    if after - before:
        parts.append(f"entered it: trial {', '.join(map(str, sorted(after - before)))}")
    return Confirmation(rows, "; ".join(parts) + ".")
