"""Same-seed determinism across refactors: a sequential fixed-seed search against recorded values.

``tests/nas/data/determinism.json`` was recorded (``python -m tests.nas.record_determinism``) at c7c1dd2, the code
before the search core was split out of the Ray Tune classes (issue 12). The same search must sample
the same architectures, settle them the same way and measure the same proxy accuracies and losses.
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
