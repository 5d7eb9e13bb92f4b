"""``nas bench export-syne`` (nas/bench/synetune.py): recorded tables as Syne Tune blackboxes, read back with Syne
Tune's own loader and searched with its own simulated baselines (docs/bench/bench-table.md, "Using the table in
Syne Tune"). The round trips skip only where Syne Tune (the ``synetune`` extra) is not installed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nas.bench.synetune import BLACKBOX_FILES, NOT_APPLICABLE
from nas.sim.curvetable import CurveTable
from nas.sim.table import read_table, write_table
from tests.nas.test_hostile_input import nas

REPO = Path(__file__).resolve().parents[3]
TABLES = REPO / "nas" / "sim" / "tables"
DOC = REPO / "docs" / "bench" / "bench-table.md"


def _export(table: str, out: Path) -> dict:
    code, stdout, err = nas("bench", "export-syne", "--table", table, "--out", str(out))
    assert code == 0, err
    return json.loads(stdout[:stdout.rindex("}") + 1])


def _load(out: Path):
    """The blackbox as Syne Tune reads it (its own deserialiser), and the metadata it was written with."""
    pytest.importorskip("syne_tune")
    pytest.importorskip("fastparquet")
    from syne_tune.blackbox_repository.blackbox_tabular import BlackboxTabular, deserialize

    blackboxes = deserialize(str(out))
    assert list(blackboxes) == ["synthetic"] and isinstance(blackboxes["synthetic"], BlackboxTabular)
    return blackboxes["synthetic"], json.loads((out / "metadata.json").read_text())


def _check_configurations(blackbox, meta: dict, specs: dict[str, dict]) -> list[str]:
    """Every configuration is one of the table's architectures (its spec's fields), each exactly once, inside the
    configuration space; returns the spec keys in the blackbox's row order."""
    videonas = meta["videonas"]
    keys = videonas["spec_keys"]
    configs = blackbox.all_configurations()
    assert sorted(keys) == sorted(specs) and len(configs) == len(keys) == len(set(keys))
    for key, config in zip(keys, configs):
        flat = _flat(specs[key])
        for name, value in config.items():
            assert value in blackbox.configuration_space[name].categories
            assert value == flat.get(videonas["hyperparameter_fields"][name], NOT_APPLICABLE), (key, name)
        for field, value in videonas["constant_hyperparameters"].items():
            assert flat.get(field, value) == value
    return keys


def _flat(spec: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for name, value in spec.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{name}."))
        else:
            out[prefix + name] = value if isinstance(value, str) else "none" if value is None else json.dumps(value)
    return out


@pytest.mark.slow
def test_the_bench_table_round_trips_through_syne_tunes_loader(tmp_path):
    figures = _export("bench", tmp_path / "bb")
    blackbox, meta = _load(tmp_path / "bb")
    table = CurveTable.load("bench")
    keys = _check_configurations(blackbox, meta, {k: table.spec(k) for k in table.architectures()})
    steps = table.ok_rows().groupby("budget")["steps"].first()
    assert blackbox.fidelity_values.tolist() == [int(steps[b]) for b in table.budgets] == figures["fidelity_values"]
    assert blackbox.fidelity_name() == meta["time_attr"] == "hp_steps"
    assert meta["videonas"]["fidelity"]["epochs"] == table.budgets
    assert meta["videonas"]["seeds"] == sorted(int(s) for s in table.rows["seed"].unique())
    assert blackbox.num_seeds == len(meta["videonas"]["seeds"]) == figures["seeds"]
    assert "metric_latency_ms" in blackbox.objectives_names  # every architecture of the shipped table has one
    configs = blackbox.all_configurations()
    for a, key in enumerate(keys):
        slots = meta["videonas"]["seed_slots"][a]
        assert slots == [table.seeds_of(key)[i % len(table.seeds_of(key))] for i in range(blackbox.num_seeds)]
        costs = table.costs(key)
        for slot, seed in enumerate(slots):
            curve = table.curve(key, seed)
            for f, fidelity in enumerate(blackbox.fidelity_values):
                got = blackbox.objective_function(configs[a], fidelity=int(fidelity), seed=slot)
                assert got["metric_valid_accuracy"] == curve.accuracy[f]
                assert got["metric_valid_error"] == 1.0 - curve.accuracy[f]
                assert got["metric_valid_loss"] == curve.val_loss[f] and got["metric_train_loss"] == curve.train_loss[f]
                assert got["metric_elapsed_time"] == pytest.approx(curve.cpu_seconds[: f + 1].sum(), rel=1e-12)
                assert got["metric_elapsed_wall_time"] == pytest.approx(curve.seconds[: f + 1].sum(), rel=1e-12)
                assert got["metric_gmacs"] == costs["gmacs"] and got["metric_params"] == costs["params"]
                assert got["metric_latency_ms"] == costs["latency_ms"]
    # the shipped table is complete: every architecture has both seeds, no slot is filled (filling: the test below)
    assert all(len(table.seeds_of(key)) == 2 for key in keys) and figures["filled_seed_slots"] == 0


@pytest.mark.slow
def test_the_demo_table_round_trips_with_epochs_latency_and_its_baseline(tmp_path):
    _export("demo", tmp_path / "bb")
    blackbox, meta = _load(tmp_path / "bb")
    table = read_table(TABLES / "demo.parquet")
    first = table.rows.drop_duplicates("spec_key").set_index("spec_key")
    keys = _check_configurations(blackbox, meta, {k: json.loads(s) for k, s in first["spec"].items()})
    assert blackbox.fidelity_values.tolist() == [1, 2, 3] and blackbox.fidelity_name() == "hp_epoch"
    assert "metric_valid_loss" not in blackbox.objectives_names and "metric_latency_ms" in blackbox.objectives_names
    assert list(meta["videonas"]["baselines"].values()) == ["srtg-r3d-18-final"]
    for a, (key, config) in enumerate(zip(keys, blackbox.all_configurations())):
        for slot, seed in enumerate(meta["videonas"]["seed_slots"][a]):
            curve = table.curve(key, seed)
            values = blackbox.objective_function(config, seed=slot)  # all fidelities at once
            names = blackbox.objectives_names
            assert values[:, names.index("metric_valid_accuracy")].tolist() == curve["accuracy"].tolist()
            assert values[:, names.index("metric_train_loss")].tolist() == curve["loss"].tolist()
            assert (values[:, names.index("metric_latency_ms")] == first.loc[key, "latency_ms"]).all()
            assert (values[:, names.index("metric_params")] == first.loc[key, "params"]).all()


def test_failed_and_unfinished_runs_are_left_out_and_the_seed_slot_repeats_the_one_left(tmp_path):
    table = read_table(TABLES / "small.parquet")
    rows = table.rows
    key_failed, key_unfinished = list(dict.fromkeys(rows["spec_key"]))[:2]
    failed = rows[(rows["spec_key"] == key_failed) & (rows["seed"] == 1)].iloc[:1].assign(
        epoch=0, accuracy=np.nan, loss=np.nan, seconds=np.nan, report_seconds=np.nan, error="RuntimeError: out of memory")
    keep = ~((rows["spec_key"] == key_failed) & (rows["seed"] == 1))
    keep &= ~((rows["spec_key"] == key_unfinished) & (rows["seed"] == 1) & (rows["epoch"] == rows["epoch"].max()))
    rows = rows[keep]
    write_table(tmp_path / "table.parquet", type(table)(rows=pd.concat([rows, failed]), manifest=table.manifest))
    figures = _export(str(tmp_path), tmp_path / "bb")
    meta = json.loads((tmp_path / "bb" / "metadata.json").read_text())["videonas"]
    assert meta["dropped_runs"] == {f"{key_failed} seed 1": "failed: RuntimeError: out of memory",
                                    f"{key_unfinished} seed 1": "unfinished: not evaluated at the largest budget"}
    slots = dict(zip(meta["spec_keys"], meta["seed_slots"]))
    assert slots[key_failed] == slots[key_unfinished] == [0, 0] and figures["filled_seed_slots"] == 2
    assert figures["architectures"] == 8 and figures["dropped_runs"] == 2


def test_an_earlier_export_is_replaced_whole(tmp_path):
    out = tmp_path / "bb"
    _export("small", out)
    (out / "stale.txt").write_text("from before")
    _export("small", out)
    assert sorted(p.name for p in out.iterdir()) == sorted(BLACKBOX_FILES)


def _one_line_error(args: list[str], *needles: str) -> None:
    code, _, err = nas("bench", "export-syne", *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "internal" not in lines[0], err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_bad_input_is_one_error_line_and_writes_nothing(tmp_path):
    out = tmp_path / "bb"
    _one_line_error(["--table", "no-such-table", "--out", str(out)], "no recorded table", "demo, small, bench")
    _one_line_error(["--table", str(tmp_path / "missing.parquet"), "--out", str(out)], "missing.parquet")
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    _one_line_error(["--table", str(garbage), "--out", str(out)], "cannot read table")
    _one_line_error(["--table", "small", "--seeds", "2", "--out", str(out)], "takes no --seeds")
    assert not out.exists()
    a_file = tmp_path / "a-file"
    a_file.write_text("mine")
    _one_line_error(["--table", "small", "--out", str(a_file)], "is a file")
    _one_line_error(["--table", "small", "--out", str(a_file / "bb")], "a-file is a file, not a folder")
    assert a_file.read_text() == "mine"
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    _one_line_error(["--table", "small", "--out", str(foreign)], "holds other files")
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "foreign", "garbage.parquet"]


def _doc_section() -> str:
    text = DOC.read_text()
    start = text.index("## Using the table in Syne Tune")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


@pytest.mark.slow
def test_the_syne_tune_example_of_the_datasheet_runs_and_its_results_come_from_the_table(tmp_path, monkeypatch):
    """The section's Python runs as written (after its export command), in a fresh folder: Syne Tune's ASHA on
    the simulated backend completes trials, and every reported accuracy is the table's at that step count."""
    pytest.importorskip("syne_tune")
    pytest.importorskip("fastparquet")
    section = _doc_section()
    assert "nas bench export-syne --table bench --out bench-syne" in section
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SYNETUNE_FOLDER", str(tmp_path / "syne-tune"))
    _export("bench", Path("bench-syne"))
    namespace: dict = {}
    for number, code in enumerate(re.findall(r"```python\n(.*?)```", section, flags=re.S), start=1):
        exec(compile(code, f"bench-table.md Syne Tune example {number}", "exec"), namespace)  # noqa: S102 (our page)
    results, blackbox = namespace["results"], namespace["blackbox"]
    assert results["trial_id"].nunique() >= 4 and (tmp_path / "syne-tune").is_dir()
    assert (results["hp_steps"] == blackbox.fidelity_values[-1]).any()  # a trial ran to the largest fidelity
    table = CurveTable.load("bench")
    meta = json.loads(Path("bench-syne/metadata.json").read_text())["videonas"]
    names = list(blackbox.configuration_space)
    key_of = {_normal(c[n] for n in names): k for c, k in zip(blackbox.all_configurations(), meta["spec_keys"])}
    steps_to_budget = dict(zip(blackbox.fidelity_values.tolist(), table.budgets))
    for _, row in results.iterrows():
        key = key_of[_normal(row[f"config_{n}"] for n in names)]
        budget = steps_to_budget[int(row["hp_steps"])]
        recorded = {float(table.curve(key, s).accuracy[table.budgets.index(budget)]) for s in table.seeds_of(key)}
        assert row["metric_valid_accuracy"] in recorded and row["metric_valid_error"] == 1.0 - row["metric_valid_accuracy"]


def _normal(values) -> tuple:
    """A configuration as Syne Tune's results CSV gives it back (pandas turns "8" into 8.0) and as written."""
    out = []
    for value in values:
        try:
            out.append(float(value))
        except ValueError:
            out.append(str(value))
    return tuple(out)
