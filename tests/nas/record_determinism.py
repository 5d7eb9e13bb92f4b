"""Record the same-seed determinism fixture (``tests/nas/data/determinism.json``).

Run once from the code before a refactor: ``.venv/bin/python -m tests.nas.record_determinism``.
``tests/nas/test_determinism.py`` then checks that the refactored code samples the same architectures and
measures the same proxy accuracies. Re-record only when a change is *meant* to alter what a search does.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

FIXTURE = Path(__file__).parent / "data" / "determinism.json"


def determinism_config(tmp_path: Path):
    """A sequential (``max_concurrent=1``), fixed-seed TPE + MO-ASHA search over the tiny space."""
    from tests.nas.search_helpers import tiny_config

    return tiny_config(tmp_path, name="determinism", trials=4, max_concurrent=1, sampler="tpe",
                       scheduler="moasha", seed=3)


def search_outcome(run_dir: Path) -> list[dict]:
    """Per trial, in trial order: spec key, status, fidelity, proxy accuracy and per-epoch losses (6 decimals)."""
    import json

    import pandas as pd

    frame = pd.read_parquet(run_dir / "trials.parquet").sort_values("trial_id")
    return [
        {"trial_id": int(row.trial_id), "spec_key": row.spec_key, "status": row.status,
         "fidelity": int(row.fidelity), "accuracy": round(float(row.accuracy), 6),
         "losses": [round(float(epoch["loss"]), 6) for epoch in json.loads(row.history)]}
        for row in frame.itertuples()
    ]


def main() -> None:
    import ray

    from nas.search import run_search

    with tempfile.TemporaryDirectory() as tmp:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            outcome = run_search(determinism_config(Path(tmp)), show_progress=False)
            trials = search_outcome(outcome.run_dir)
        finally:
            ray.shutdown()
    revision = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    FIXTURE.write_text(json.dumps({"recorded_at_revision": revision, "trials": trials}, indent=2) + "\n")
    print(json.dumps(trials, indent=2))


if __name__ == "__main__":
    main()
