"""Same-seed determinism across refactors: a sequential fixed-seed search against recorded values.

``tests/nas/data/determinism.json`` holds what a ``--max-concurrent 1`` fixed-seed search samples and measures
(``python -m tests.nas.record_determinism`` records it). History: recorded at c7c1dd2, the code before the
search core was split out of the Ray Tune classes (issue 12); the refactored code reproduced it exactly.
Re-recorded at ef12f33 after the SRTG gate change of issue 14 (new spec fields, new defaults) changed what the
search samples. Re-recorded after MO-ASHA took Syne Tune's inclusive keep rule (``p <= n/eta``, docs/search-space.md):
trial 1, second of two at its rung with eta 2, now continues to epoch 2 (its epoch-1 loss is unchanged); the
executor refactor (nas/executors) before it reproduced the old fixture exactly. Re-record only when a change is
meant to alter what a search does, and say so in the commit.
"""

import json

import pytest

from tests.nas.record_determinism import FIXTURE, determinism_config, search_outcome


@pytest.mark.slow
def test_fixed_seed_sequential_search_matches_the_recorded_values(ray_address, tmp_path):
    from nas.search import run_search

    recorded = json.loads(FIXTURE.read_text())["trials"]
    outcome = run_search(determinism_config(tmp_path), show_progress=False)
    assert search_outcome(outcome.run_dir) == recorded
