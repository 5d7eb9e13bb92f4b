"""``nas profile``: exact JSON keys, labelled table, latency cache reuse, one-line errors."""

from __future__ import annotations

import json

import pytest
import torch

from runners.costs import count_gmacs
from space import CATALOG
from tests.nas.cli_helpers import assert_one_line_error, run_nas

KEYS = {"arch", "key", "params", "recurrent_params", "gmacs", "shape", "latency"}
LATENCY_KEYS = {"profile", "fwd_ms_median", "fwd_ms_p90", "train_ms_median", "train_ms_p90", "cv"}


@pytest.mark.slow
def test_json_without_latency_has_exactly_the_keys():
    result = run_nas("profile", "r3d-18", "srtg-r3d-18-final", "--json", "--no-latency", "--shape", "8x64x64")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["arch"] for row in rows] == ["r3d-18", "srtg-r3d-18-final"]
    for row in rows:
        assert set(row) == KEYS
        assert row["latency"] is None and row["shape"] == "1x3x8x64x64"
        assert row["key"] == CATALOG[row["arch"]].key()
        assert row["gmacs"] == pytest.approx(count_gmacs(CATALOG[row["arch"]], (8, 64, 64)))
    assert rows[0]["recurrent_params"] == 0 < rows[1]["recurrent_params"]


@pytest.mark.slow
def test_second_call_hits_the_latency_cache(tmp_path):
    args = ("profile", "r3d-18", "--json", "--profile", "cpu-quick", "--cache-dir", str(tmp_path))
    first = run_nas(*args)
    assert first.returncode == 0, first.stderr
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    second = run_nas(*args)
    assert second.returncode == 0, second.stderr
    row, again = json.loads(first.stdout)[0], json.loads(second.stdout)[0]
    assert set(row) == KEYS and set(row["latency"]) == LATENCY_KEYS
    assert row["shape"] == "1x3x8x112x112"  # GMACs default to the profile's clip
    assert row["latency"]["profile"] == "cpu-quick"
    assert row["latency"]["train_ms_median"] is None and row["latency"]["train_ms_p90"] is None  # forward-only
    assert row["latency"]["fwd_ms_p90"] >= row["latency"]["fwd_ms_median"] > 0
    assert again == row  # the same float timings: read back, not measured again
    assert files[0].stat().st_mtime_ns == stamp and len(list(tmp_path.glob("*.json"))) == 1
    table = run_nas("profile", "r3d-18", "--profile", "cpu-quick", "--cache-dir", str(tmp_path))
    assert table.returncode == 0, table.stderr
    assert "GMACs @ 1x3x8x112x112" in table.stdout and "(cached)" in table.stdout


@pytest.mark.slow
def test_bad_input_is_one_line_error():
    assert_one_line_error(run_nas("profile", "r3d-18", "--no-latency", "--shape", "16x112"), "TxHxW")
    assert_one_line_error(run_nas("profile", "r3d-18", "--profile", "fastest"), "latency profile")
    assert_one_line_error(run_nas("profile", "r3d-1800", "--no-latency"), "unknown architecture")
    if not torch.cuda.is_available():
        assert_one_line_error(run_nas("profile", "r3d-18", "--profile", "cuda"), "CUDA")


@pytest.mark.slow
def test_piped_json_shows_a_progress_line_per_architecture_on_stderr():
    result = run_nas("profile", "r3d-18", "mtnet-32", "--json", "--no-latency", "--shape", "8x32x32")
    assert result.returncode == 0, result.stderr
    assert [row["arch"] for row in json.loads(result.stdout)] == ["r3d-18", "mtnet-32"]  # stdout stays pure JSON
    lines = result.stderr.splitlines()
    assert any(line.startswith("profiling r3d-18: counting GMACs: 1/2") for line in lines), lines
    assert any(line.startswith("profiling mtnet-32: counting GMACs: 2/2") for line in lines), lines


def _rendered(cv: float) -> str:
    from rich.console import Console

    from nas.cli.profile import rows_table
    from runners.latency import get_profile

    latency = {"profile": "cpu-quick", "fwd_ms_median": 10.0, "fwd_ms_p90": 14.0, "train_ms_median": None,
               "train_ms_p90": None, "cv": cv}
    row = {"arch": "r3d-18", "key": "k", "params": 1e6, "recurrent_params": 0, "gmacs": 1.0, "shape": "1x3x8x112x112",
           "latency": latency}
    console = Console(record=True, width=400)
    console.print(rows_table([row], get_profile("cpu-quick")))
    return console.export_text()


def test_a_noisy_latency_is_flagged_in_the_table():
    noisy, quiet = _rendered(0.40), _rendered(0.05)
    assert "40.0% NOISY" in noisy and "NOISY: CV above 15%" in noisy
    assert "NOISY" not in quiet and "5.0%" in quiet
