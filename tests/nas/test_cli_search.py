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
def test_bad_search_input_is_one_line_and_writes_nothing(tmp_path, args, needles):
    runs = tmp_path / "runs"
    result = run_nas("search", "--runs-dir", str(runs), "--space", "demo", *args, cwd=tmp_path)
    assert_one_line_error(result, *needles)
    assert not runs.exists()
