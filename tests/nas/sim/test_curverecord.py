"""Recording a benchmark table without Ray: plan, pool, resume, schema (nas/sim/curverecord.py, curvetable.py)."""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import psutil
import pytest

from nas.sim.curverecord import BENCH_SETTINGS, BenchSettings, record_curves, record_plan
from nas.sim.curvetable import CURVE_COLUMNS, CurveTable, read_curve_table, unpack_correct, unpack_loss
from runners.proxy import ProxyConfig
from space.errors import UserInputError

TINY = BenchSettings(proxy=ProxyConfig(epochs=2, batch_size=8, width_mult=0.125, frames=4, size=16, threads=1, lr=0.05),
                     budgets=(0.5, 1.0, 2.0), train_clips=32, val_clips=20, num_classes=4)

SPACE = """\
name: two
families:
  resnet3d:
    conv: r3d
    depth: 18
    srtg:
      placement: [none, final]
      recurrent: gru
"""


@pytest.fixture()
def space_file(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text(SPACE)
    return str(path)


@pytest.mark.slow
def test_a_recording_resumes_and_holds_every_run(space_file, tmp_path) -> None:
    out = tmp_path / "rec"
    first = record_curves(space_file, out, seeds=2, workers=2, settings=TINY, limit=3, measure_latency=False)
    assert len(first.done()) == 3
    assert {s for _, s in first.done()} == {0, 1}  # the first architecture's second seed comes right after its first
    table = record_curves(space_file, out, seeds=2, workers=1, settings=TINY, measure_latency=False)
    assert len(table.done()) == 4
    again = read_curve_table(out / "table.parquet")
    assert list(again.rows.columns) == CURVE_COLUMNS
    assert len(again.rows) == 4 * len(TINY.budgets)
    assert again.rows.groupby(["spec_key", "seed"]).size().eq(3).all()
    row = again.rows.iloc[0]
    correct = unpack_correct(row["correct"], TINY.val_clips)
    assert correct.mean() == pytest.approx(row["accuracy"])
    assert unpack_loss(row["clip_loss"]).mean() == pytest.approx(row["val_loss"], rel=1e-2)
    assert (again.rows["peak_rss_mib"] > 0).all() and (again.rows["cpu_seconds"] > 0).all()
    truth = again.truth()
    key = again.architectures()[0]
    assert truth[key] == pytest.approx(np.mean([again.curve(key, s).accuracy[-1] for s in (0, 1)]))


def _kill_workers(count: int, killed: list[int], stop: threading.Event) -> None:
    """SIGKILL (the out-of-memory killer's signal) the first ``count`` pool workers seen training, one at a time.

    The recorder's forkserver is this process's child and its workers are the forkserver's children.
    """
    while not stop.is_set() and len(killed) < count:
        servers = [p for p in psutil.Process().children() if "forkserver" in " ".join(p.cmdline())]
        for worker in (w for server in servers for w in server.children()):
            if worker.pid not in killed and time.time() - worker.create_time() > 0.3:
                worker.kill()
                killed.append(worker.pid)
                break
        time.sleep(0.05)


@pytest.mark.slow
def test_a_killed_worker_fails_only_the_run_that_dies_alone(space_file, tmp_path) -> None:
    """A killed worker breaks the pool for both runs in flight; each is retried alone; killed alone it fails."""
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_workers, args=(3, killed, stop), daemon=True)
    killer.start()
    try:
        table = record_curves(space_file, tmp_path / "rec", seeds=2, workers=2, settings=TINY, measure_latency=False)
    finally:
        stop.set()
        killer.join()
    assert len(killed) == 3  # the pair's pool, then each of the two retried alone
    assert len(table.done()) == 4  # every run of the plan is in the table: none lost, the recording completed
    failed = table.rows[table.rows["error"].notna()]
    assert len(failed) == 2 and failed["error"].str.contains("died while it trained alone").all()
    trained = table.rows[table.rows["error"].isna()]
    assert trained.groupby(["spec_key", "seed"]).size().eq(len(TINY.budgets)).all() and len(trained) == 2 * 3
    plan = [(job.spec_key, job.seed) for job in record_plan(space_file, TINY, 2)[0]]
    assert set(zip(failed["spec_key"], failed["seed"])) == set(plan[:2])  # the two that were in flight


@pytest.mark.slow
def test_a_table_of_other_settings_is_refused(space_file, tmp_path) -> None:
    out = tmp_path / "rec"
    record_curves(space_file, out, seeds=1, settings=TINY, limit=0, measure_latency=False)
    other = dataclasses.replace(TINY, val_clips=24)
    with pytest.raises(UserInputError, match="other settings"):
        record_curves(space_file, out, seeds=1, settings=other, limit=0, measure_latency=False)


@pytest.mark.slow
def test_the_plan_is_stratified_from_the_start() -> None:
    """Any prefix of a recording is a stratified sample; a third of it has its second seed early."""
    jobs, _ = record_plan("bench", BENCH_SETTINGS, seeds=2)
    assert len(jobs) == 380 and len({(j.spec_key, j.seed) for j in jobs}) == 380
    first = jobs[:40]
    strata = {(j.spec["family"], j.spec.get("depth")) for j in first if j.seed == 0}
    assert {("mtnet", 32), ("mtnet", 64), ("resnet3d", 18), ("resnet3d", 50)} <= strata
    last_first_seed = max(i for i, j in enumerate(jobs) if j.seed == 0)
    twice = [j for j in jobs[:last_first_seed] if j.seed == 1]
    assert len(twice) >= 190 / 3 and {j.spec["family"] for j in twice} == {"resnet3d", "mtnet"}
    assert {j.seed for j in jobs[last_first_seed + 1:]} == {1}
    for i, job in enumerate(jobs[:last_first_seed]):
        if job.seed == 1:
            assert (jobs[i - 1].spec_key, jobs[i - 1].seed) == (job.spec_key, 0)
