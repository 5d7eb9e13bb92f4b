"""``nas bench record``: a tiny space recorded through the real executor (Ray Tune + run_trial), then resumed."""

from __future__ import annotations

import pytest

from nas.core.searchcore import trial_seed
from nas.sim.record import record_table
from nas.sim.table import read_table
from space.errors import UserInputError
from space.searchspace import load_space
from tests.nas.search_helpers import tiny_config

TWO_ARCHS = """\
name: two
description: two MTNet-32 ratios, for recorder tests
families:
  mtnet:
    depth: 32
    ratio: [0.75, 1.0]
    substreams: [1]
    recurrent: gru
"""


def two_arch_recording(tmp_path):
    """The two-architecture space file, a one-epoch config with a latency objective over it, the output folder."""
    space_file = tmp_path / "two.yaml"
    space_file.write_text(TWO_ARCHS)
    config = tiny_config(tmp_path, space=str(space_file), proxy_epochs=1, objectives=("accuracy", "gmacs", "latency"))
    return space_file, config, tmp_path / "rec"


@pytest.mark.slow
def test_a_recording_writes_every_epoch_and_resumes_where_it_stopped(tmp_path, ray_address):
    space_file, config, out = two_arch_recording(tmp_path)
    first = record_table(config=config, out_dir=out, seeds=1, show_progress=False)
    assert (first.recorded, first.done, first.total) == (2, 2, 2)
    table = read_table(out)
    keys = sorted(s.key() for s in load_space(str(space_file)).enumerate())
    assert sorted(table.rows["spec_key"]) == keys and table.rows["epoch"].tolist() == [1, 1]
    assert (table.rows["latency_ms"] > 0).all() and (table.rows["seconds"] > 0).all()
    assert (table.rows["latency_seconds"] > 0).all() and table.rows["startup_seconds"].notna().all()
    for row in table.rows.itertuples():
        assert row.trial_seed == trial_seed(0, row.spec_key)  # the seed a search with seed 0 trains it with
    assert table.manifest["settings"]["proxy_epochs"] == 1 and table.manifest["space_yaml"] == TWO_ARCHS
    # resumed with a second seed: only the two new (architecture, seed) pairs are trained, the old rows kept
    second = record_table(config=config, out_dir=out, seeds=2, show_progress=False)
    assert (second.recorded, second.done, second.total) == (2, 4, 4)
    resumed = read_table(out)
    assert resumed.seeds == [0, 1]
    old = resumed.rows[resumed.rows["seed"] == 0].reset_index(drop=True)
    assert old.equals(table.rows.reset_index(drop=True))
    # and a table recorded with other settings is not resumed
    with pytest.raises(UserInputError, match="other settings: proxy_epochs 1 != 2"):
        record_table(config=config.replace(proxy_epochs=2), out_dir=out, seeds=2, show_progress=False)


@pytest.mark.slow
def test_with_several_workers_every_latency_is_measured_before_any_trial_trains(tmp_path, ray_address):
    """--workers 2: trials may then train on the measurer's core, so no measurement may overlap a trial."""
    import json

    space_file, config, out = two_arch_recording(tmp_path)
    outcome = record_table(config=config, out_dir=out, seeds=1, workers=2, show_progress=False)
    assert outcome.done == 2
    log = [json.loads(line) for line in (out / "costs" / "measurer-log.jsonl").read_text().splitlines()]
    keys = sorted(s.key() for s in load_space(str(space_file)).enumerate())
    assert sorted(entry["spec_key"] for entry in log[:2]) == keys  # the first two calls: each architecture once
    first_trial_started = min(entry["start"] for entry in log[2:])  # then each trial asks, answered from the cache
    assert len(log) == 4 and max(entry["end"] for entry in log[:2]) <= first_trial_started
    table = read_table(out)
    measured = {entry["spec_key"]: entry["fwd_ms_median"] for entry in log[:2]}
    assert {row.spec_key: row.latency_ms for row in table.rows.itertuples()} == measured
    assert (table.rows["latency_seconds"] > 0).all()
