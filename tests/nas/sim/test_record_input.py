"""``nas bench record`` refuses bad input with one `error:` line before it creates anything (no Ray started)."""

from __future__ import annotations

import pytest

from tests.nas.cli_helpers import assert_one_line_error, run_nas


@pytest.mark.parametrize("args, needle", [
    (["record"], "needs a space"),
    (["record", "demo", "--seeds", "0"], "--seeds 0 is not allowed"),
    (["search", "--table", "no-such-table.parquet"], "no recorded table"),
    (["fidelity", "--table", "nas/sim/tables/small.parquet"], "needs --run"),
])
def test_bad_input_is_one_error_line_and_nothing_is_written(tmp_path, args, needle):
    out = tmp_path / "out"
    result = run_nas("bench", *args, "--out", str(out))
    assert_one_line_error(result, needle)
    assert not out.exists()
