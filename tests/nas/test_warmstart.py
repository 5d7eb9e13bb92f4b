"""``nas search --warm-start RUN|TABLE`` (nas/warmstart.py): known results enter the new study before its first trial."""

from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest

from nas.search import run_search
from space.errors import UserInputError
from tests.nas.cli_helpers import assert_one_line_error, run_nas
from tests.nas.search_helpers import tiny_config


def _trials(run_dir) -> pd.DataFrame:
    return pd.read_parquet(run_dir / "trials.parquet").sort_values("trial_id")


def _known(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["warm_start"].notna() & (frame["warm_start"] != "None")]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """A finished three-trial search of the six-architecture tiny space, on the Ray-free executor."""
    root = tmp_path_factory.mktemp("warm-first")
    return root, run_search(tiny_config(root, trials=3, executor="local"), show_progress=False).run_dir


@pytest.mark.slow
def test_a_second_search_starts_with_the_first_runs_results_and_never_trains_them_again(first_run):
    root, first = first_run
    earlier = _trials(first)
    complete = earlier[earlier["status"] == "COMPLETE"]
    assert len(complete) >= 2

    second = run_search(tiny_config(root, name="second", seed=1, trials=2, executor="local", warm_start=str(first)),
                        show_progress=False)
    frame = _trials(second.run_dir)
    known = _known(frame)
    # every COMPLETE result of the first run is in the new study, first, with its accuracy and costs
    assert list(known["trial_id"]) == list(range(len(complete)))
    pd.testing.assert_frame_equal(
        known[["spec_key", "accuracy", "gmacs", "params"]].reset_index(drop=True),
        complete[["spec_key", "accuracy", "gmacs", "params"]].reset_index(drop=True))
    assert set(known["status"]) == {"COMPLETE"} and all(w.startswith(f"run {first}") for w in known["warm_start"])
    # they are known, not trained: --trials 2 trained two new trials, none of them a known architecture
    trained = frame[frame["status"].isin(["COMPLETE", "PRUNED", "FAIL"]) & ~frame.index.isin(known.index)]
    assert len(trained) == 2 and second.counted == 2
    assert not set(trained["spec_key"]) & set(known["spec_key"])
    duplicates = frame[frame["status"] == "DUPLICATE"]
    assert set(duplicates["duplicate_of"].astype(int)) <= set(known["trial_id"]) | set(trained["trial_id"])
    # the sampler sees them as completed trials with their parameters and objective values
    study = optuna.load_study(study_name="second", storage=f"sqlite:///{second.run_dir / 'study.db'}")
    added = study.trials[0]
    assert added.state == optuna.trial.TrialState.COMPLETE and added.params
    assert added.values == [pytest.approx(known.iloc[0]["accuracy"]), pytest.approx(known.iloc[0]["gmacs"])]
    assert json.loads(known.iloc[0]["history"])[-1]["epoch"] == 2  # the rung rules replay its curve

    # a resume neither adds them again nor counts them
    resumed = run_search(tiny_config(root, name="second", seed=1, trials=3, executor="local",
                                     warm_start=str(first)), resume=True, show_progress=False)
    again = _trials(resumed.run_dir)
    assert len(_known(again)) == len(known) and resumed.counted == 3


@pytest.mark.slow
@pytest.mark.parametrize("change, flag", [
    (dict(proxy_epochs=3, grace_period=1), "--proxy-epochs"),
    (dict(proxy_width=0.25), "--proxy-width"),
    (dict(num_clips=128), "--num-clips"),
    (dict(objectives=("accuracy", "params")), "objectives"),
])
def test_a_run_of_other_settings_is_refused_before_anything_is_created(first_run, change, flag):
    root, first = first_run
    config = tiny_config(root, name="mismatch", executor="local", warm_start=str(first), **change)
    with pytest.raises(UserInputError) as refused:
        run_search(config, show_progress=False)
    assert flag in str(refused.value) and "\n" not in str(refused.value)
    assert not (root / "runs" / "mismatch").exists()


@pytest.mark.slow
def test_a_run_of_another_space_is_refused_on_the_command_line(first_run, tmp_path):
    root, first = first_run
    other = tmp_path / "other.yaml"
    other.write_text((root / "tiny.yaml").read_text().replace("placement: [none, final, mid]", "placement: [none, final]"))
    result = run_nas("search", "--space", str(other), "--runs-dir", str(tmp_path / "runs"), "--warm-start", str(first),
                     "--objectives", "accuracy,gmacs", "--executor", "local", "--quiet", "--no-report")
    assert_one_line_error(result, "--warm-start", "other parameters")
    assert not (tmp_path / "runs").exists()


def test_a_source_that_is_neither_a_run_nor_a_table_is_one_error_line(tmp_path):
    result = run_nas("search", "--runs-dir", str(tmp_path / "runs"), "--warm-start", str(tmp_path / "nothing"),
                     "--quiet", "--no-report")
    assert_one_line_error(result, "--warm-start", "not a run directory")
    assert not (tmp_path / "runs").exists()


# ---- a recorded table: the simulator's own search (nas/sim/replay.py) ---------------------------------------


@pytest.fixture(scope="module")
def demo_table():
    from nas.bench.search import bench_config, load_table
    from space.searchspace import parse_space

    _, table = load_table("demo", quick=False)
    space = parse_space(table.manifest["space_yaml"], default_name=str(table.manifest["space"]))
    architectures = table.rows.loc[table.rows["baseline"].isna(), "spec_key"].nunique()
    return table, space, bench_config(table.manifest, trials=architectures)


def test_a_table_gives_every_architecture_of_the_space_at_its_seed_mean_accuracy(demo_table):
    from nas.sim.compare import mean_accuracy
    from nas.warmstart import load_warm_start

    table, space, config = demo_table
    warm = load_warm_start(config.replace(warm_start="demo"), space)
    means = mean_accuracy(table)
    assert {r.spec.key() for r in warm.results} == {k for k in means if k in {s.key() for s in space.enumerate()}}
    for result in warm.results:
        assert result.accuracy == pytest.approx(means[result.spec.key()])
        assert space.params_for(result.spec) == result.params
        assert [h["epoch"] for h in result.history] == [1, 2, 3]

    with pytest.raises(UserInputError, match="--proxy-lr"):
        load_warm_start(config.replace(warm_start="demo", proxy_lr=0.01), space)


def test_a_simulated_search_warm_started_from_the_whole_table_trains_nothing_it_knows(demo_table):
    from nas.sim.compare import table_bounds
    from nas.sim.replay import simulate
    from nas.trialsfile import trials_frame
    from nas.warmstart import load_warm_start

    table, space, config = demo_table
    config = config.replace(warm_start="demo", max_resamples=20, time_budget_s=2000.0)
    warm = load_warm_start(config, space)
    sub = type(warm)(warm.source, warm.results[: len(warm.results) // 2], warm.left_out)  # half the space known
    outcome = simulate(config=config, table=table, space=space, bounds=table_bounds(table, config.problem.objectives),
                       warm=sub)
    frame = trials_frame(config.problem, config.proxy.epochs, outcome.study, None)
    known = _known(frame)
    trained = frame[frame["status"].isin(["COMPLETE", "PRUNED", "FAIL"]) & frame["warm_start"].isin([None, "None"])]
    assert len(known) == len(sub.results) and outcome.core.counted() == len(trained) > 0
    assert not set(trained["spec_key"]) & set(known["spec_key"])



def test_nsga2_warm_started_still_breeds_every_gene(demo_table):
    """Known results carry every parameter for a sampler asked flat, or NSGA-II would breed ``family`` alone."""
    import optuna

    from nas.sim.compare import table_bounds
    from nas.sim.replay import simulate
    from nas.warmstart import load_warm_start

    table, space, config = demo_table
    config = config.replace(sampler="nsga2", warm_start="demo", trials=24)
    warm = load_warm_start(config, space)
    sub = type(warm)(warm.source, warm.results[:12], warm.left_out)
    outcome = simulate(config=config, table=table, space=space, bounds=table_bounds(table, config.problem.objectives),
                       warm=sub)
    bred = optuna.search_space.IntersectionSearchSpace().calculate(outcome.study)
    assert set(bred) == {d.name for d in space.parameters()}
    known = [t for t in outcome.study.get_trials(deepcopy=False) if t.user_attrs.get("warm_start")]
    assert len(known) == 12 and all(space.sample(lambda n, c: t.params[n]).key() == t.user_attrs["spec_key"]
                                    for t in known)
