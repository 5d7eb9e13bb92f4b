"""``nas search`` rejects bad input with one line and exit 2, before starting Ray or writing anything."""

import pytest

from tests.nas.cli_helpers import assert_one_line_error, run_nas


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--objectives", "accuracy"], ["--objectives", "2-4"]),
        (["--objectives", "accuracy,speed"], ["unknown speed", "allowed"]),
        (["--sampler", "cmaes"], ["--sampler", "tpe, nsga2, gp, random"]),
        (["--scheduler", "pbt"], ["--scheduler", "moasha"]),
        (["--deploy-shape", "16x112"], ["16x112", "TxHxW"]),
        (["--space", "no-such-space"], ["no-such-space"]),
        (["--baselines", "r3d-99"], ["unknown architecture", "r3d-18"]),
        (["--proxy-width", "1.5"], ["--proxy-width", "0 < w <= 1"]),
        (["--trials", "0"], ["--trials", ">= 1"]),
        (["--data", "ucf101", "--root", "/nowhere"], ["nas data prepare"]),
        (["--resume", "/nowhere/run"], ["not a run directory", "search.yaml"]),
    ],
)
@pytest.mark.slow
def test_bad_search_input_is_one_line_and_writes_nothing(tmp_path, args, needles):
    runs = tmp_path / "runs"
    result = run_nas("search", "--runs-dir", str(runs), "--space", "demo", *args, cwd=tmp_path)
    assert_one_line_error(result, *needles)
    assert not runs.exists()


@pytest.mark.parametrize("flag, value", [("--max-params", "nan"), ("--max-gmacs", "inf"), ("--max-latency-ms", "nan"),
                                         ("--proxy-lr", "-inf"), ("--time-budget", "inf")])
@pytest.mark.slow
def test_non_finite_numbers_are_bad_input(tmp_path, flag, value):
    """Issue 11.9: `--max-params nan` was written as the bound and the search then ran forever."""
    runs = tmp_path / "runs"
    result = run_nas("search", "--runs-dir", str(runs), "--space", "demo", flag, value, cwd=tmp_path)
    assert_one_line_error(result, flag, "finite")
    assert not runs.exists()


@pytest.mark.slow
def test_non_finite_numbers_are_bad_input_for_every_command(tmp_path):
    result = run_nas("retrain", "r3d-18", "--lr", "nan", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert_one_line_error(result, "--lr", "finite")
    assert not (tmp_path / "out").exists()


def test_search_config_rejects_non_finite_numbers():
    from nas.config import SearchConfig
    from space.errors import UserInputError

    for field in ("max_params", "max_gmacs", "max_latency_ms", "proxy_lr", "time_budget_s", "proxy_width"):
        with pytest.raises(UserInputError, match="finite"):
            SearchConfig.from_flags(**{field: float("nan")})


def test_search_cli_defaults_are_the_dataclass_defaults():
    """Issue 12: the CLI's defaults come from SearchConfig, not restated (so they cannot drift)."""
    import typer.main

    from nas.cli import app
    from nas.config import SearchConfig

    command = typer.main.get_command(app).commands["search"]
    defaults = {p.name: p.default for p in command.params}
    config = SearchConfig().flags()
    for field in ("space", "trials", "sampler", "scheduler", "num_clips", "proxy_epochs", "proxy_width",
                  "proxy_frames", "proxy_size", "proxy_batch_size", "proxy_lr", "latency_profile", "grace_period",
                  "reduction_factor", "cpus_per_trial", "gpus_per_trial", "seed", "retries"):
        assert defaults[field] == config[field], field
    assert defaults["objectives"] == ",".join(config["objectives"])
    assert defaults["deploy_shape"] == "x".join(map(str, config["deploy_shape"]))
