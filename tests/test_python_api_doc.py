"""docs/python-api.md: every example runs, in order, in one interpreter, in a fresh folder (as a user would)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from nas.runs import select_trials

PAGE = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


def examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)


def test_the_page_shows_each_path_the_issue_of_the_python_api_names():
    text = "\n".join(examples())
    for call in ("run_search(", "select_trials(", "build_report(", "simulate_one(", "export_model(", "retrain(",
                 "warm_start=", "confirm_front("):
        assert call in text, call


@pytest.mark.slow
def test_every_example_of_the_python_api_page_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for number, code in enumerate(examples(), start=1):
        exec(compile(code, f"{PAGE.name} example {number}", "exec"), namespace)  # noqa: S102 (our own page)
    run_dir = Path(namespace["outcome"].run_dir).resolve()  # relative to the folder the examples ran in
    assert run_dir.is_relative_to(tmp_path.resolve()) and (run_dir / "trials.parquet").is_file()
    assert namespace["outcome"].counted == 2 and len(namespace["front"]) >= 1
    assert namespace["index"].is_file() and namespace["index"].name == "index.html"
    warm = select_trials(namespace["second"].run_dir)
    known = warm[warm["warm_start"].notna() & (warm["warm_start"] != "None")]
    assert len(known) >= 1 and set(known["status"]) == {"COMPLETE"} and namespace["second"].counted == 2
    confirmed = namespace["confirmed"]
    assert set(confirmed.loc[confirmed["front_before"], "seeds"]) == {2} and (run_dir / "confirmed.parquet").is_file()
    assert isinstance(namespace["run"].frame, pd.DataFrame) and namespace["run"].trained >= 3
    assert Path(namespace["report"].path).is_file()
    retrained = namespace["result"]
    assert 0.0 <= retrained.test_top1 <= 1.0 and retrained.epochs == 1
    assert Path(retrained.out_dir).resolve() == (tmp_path / "retrains" / "best-short").resolve()
    assert not (run_dir / "retrain").exists()  # --out elsewhere: the run is never written (docs/retrain.md)
