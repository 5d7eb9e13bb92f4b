"""``nas confirm RUN`` (nas/confirm.py): the front's candidates trained with further seeds, averaged and re-ranked."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from nas.confirm import rerank
from nas.runmodel import trials_table
from nas.search import run_search
from nas.sim.table import read_table
from reports.build import build_report
from tests.nas.cli_helpers import assert_one_line_error, run_nas
from tests.nas.search_helpers import tiny_config


def _trial(trial_id: int, key: str, accuracy: float, gmacs: float) -> dict:
    return {"trial_id": trial_id, "status": "COMPLETE", "spec": "{}", "spec_key": key, "family": "resnet3d",
            "accuracy": accuracy, "gmacs": gmacs, "params": 1000, "feasible": True, "fidelity": 3, "max_fidelity": 3}


def _seed_rows(key: str, seed: int, accuracy: float) -> dict:
    return {"spec_key": key, "seed": seed, "epoch": 3, "accuracy": accuracy, "error": None}


def test_a_second_seed_that_reverses_the_order_changes_the_front():
    """Hand-made: A (60%, 2 GMACs) and B (55%, 1 GMAC) share the front; A's second seed reads 40%, B's 65%. Averaged,
    B (60%) is cheaper and more accurate than A (50%): A leaves the front."""
    trials = trials_table([_trial(0, "a", 0.60, 2.0), _trial(1, "b", 0.55, 1.0), _trial(2, "c", 0.20, 3.0)])
    seeds = pd.DataFrame([_seed_rows("a", 1, 0.40), _seed_rows("b", 1, 0.65), _seed_rows("a", 0, 0.99)])
    confirmed = rerank(trials, seeds, ("accuracy", "gmacs"), epochs=3, search_seed=0).set_index("trial_id")
    assert list(confirmed.loc[[0, 1], "front_before"]) == [True, True]
    assert list(confirmed.loc[[0, 1], "front_after"]) == [False, True]
    assert confirmed.loc[0, "accuracy"] == pytest.approx(0.50) and confirmed.loc[1, "accuracy"] == pytest.approx(0.60)
    assert confirmed.loc[0, "accuracy_search"] == pytest.approx(0.60)  # the search's own run, not the seed-0 row
    assert json.loads(confirmed.loc[0, "accuracies"]) == [0.60, 0.40] and confirmed.loc[0, "seeds"] == 2
    assert confirmed.loc[0, "accuracy_se"] == pytest.approx(pd.Series([0.60, 0.40]).std() / 2 ** 0.5)
    assert 2 not in confirmed.index  # dominated before and after, never confirmed: not shown


def test_an_unfinished_or_failed_seed_is_not_averaged():
    trials = trials_table([_trial(0, "a", 0.60, 2.0)])
    seeds = pd.DataFrame([{**_seed_rows("a", 1, 0.1), "epoch": 2}, {**_seed_rows("a", 2, 0.1), "error": "diverged"}])
    confirmed = rerank(trials, seeds, ("accuracy", "gmacs"), epochs=3, search_seed=0)
    assert confirmed.loc[0, "seeds"] == 1 and confirmed.loc[0, "accuracy"] == pytest.approx(0.60)


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    root = tmp_path_factory.mktemp("confirm")
    return run_search(tiny_config(root, trials=4, executor="local"), show_progress=False).run_dir


@pytest.mark.slow
def test_confirm_trains_the_front_with_further_seeds_and_the_report_shows_before_and_after(searched):
    trials = pd.read_parquet(searched / "trials.parquet")
    result = run_nas("confirm", str(searched), "--seeds", "1", "--executor", "local", "--quiet")
    assert result.returncode == 0, result.stderr
    table = read_table(searched / "confirm" / "table.parquet")
    confirmed = pd.read_parquet(searched / "confirmed.parquet")
    before = confirmed[confirmed["front_before"]]
    # every front candidate trained once more, with search seed 0 + 1, to the full proxy budget
    assert set(table.trials()["spec_key"]) == set(before["spec_key"]) and set(table.rows["seed"]) == {1}
    finals = table.trials().set_index("spec_key")["accuracy"]
    for row in before.itertuples():
        search = float(trials.loc[trials["trial_id"] == row.trial_id, "accuracy"].iloc[0])
        assert row.accuracy == pytest.approx((search + finals[row.spec_key]) / 2) and row.seeds == 2
    # a second call with more seeds trains only the new seed
    again = run_nas("confirm", str(searched), "--seeds", "2", "--executor", "local", "--quiet")
    assert again.returncode == 0 and f"trained {len(before)} proxy run(s)" in again.stdout
    assert set(read_table(searched / "confirm" / "table.parquet").rows["seed"]) == {1, 2}
    build_report(searched)
    page = (searched / "report" / "index.html").read_text()
    assert 'id="confirm-table"' in page or "id=confirm-table" in page
    assert "front points stay on the front" in (searched / "report" / "summary.md").read_text()


@pytest.mark.parametrize("argv, needle", [
    (("--seeds", "0"), "--seeds 0"),
    (("--top", "0"), "--top 0"),
    (("--executor", "slurm"), "--executor"),
])
def test_bad_input_is_one_error_line(tmp_path, argv, needle):
    run = tmp_path / "run"
    run.mkdir()
    assert_one_line_error(run_nas("confirm", str(run), *argv), needle)


def test_a_folder_that_is_not_a_run_is_one_error_line(tmp_path):
    assert_one_line_error(run_nas("confirm", str(tmp_path)), "not a run directory")
    assert list(tmp_path.iterdir()) == []
