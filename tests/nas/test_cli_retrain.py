"""`nas retrain RUN:ID --data synthetic --epochs 2 --workers 2`: two Ray Train workers on CPU, odd datasets.

One Ray instance for the module. The uninterrupted run is made in-process; a second run is started as a
separate driver process on the same cluster, SIGKILLed after its epoch-1 checkpoint, resumed with `--resume`,
and must end bitwise equal.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray
import torch

from nas.cli import main
from nas.runmodel import RunDir, trials_table
from runners.retrain import evaluate, load_model
from runners.sampling import ViewConfig
from runners.synthetic import SyntheticConfig, synthetic_splits
from space import build_model, catalog_spec
from space.errors import UserInputError

pytestmark = pytest.mark.slow  # Ray Train runs with two workers

TRIAL_ID = 3
BASELINE_ID = -1  # baselines have negative ids (nas.runmodel.baseline_trial_id)
PRUNED_ID = 4
PROXY_ACCURACY = 0.4375
PRINTED: dict[str, str] = {}  # what the module-scoped retrain printed (stdout and stderr)
SPEC = catalog_spec("r3d-18")
# odd training set (81: 2 ranks x 40, one left over) and odd test set (23: shards of 12 and 11)
ARGS = [
    "--data", "synthetic", "--epochs", "2", "--workers", "2", "--num-clips", "81", "--num-test-clips", "23",
    "--num-classes", "4", "--frames", "8", "--size", "32", "--batch-size", "4", "--width-mult", "0.125",
    "--test-clips", "2", "--test-crops", "3", "--seed", "5",
]  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _ray(ray_address):
    """Every test here drives Ray Train through the session's Ray head (tests/conftest.py)."""
    return ray_address


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A minimal search run by hand (the run model's table): a COMPLETE trial, a COMPLETE baseline, a PRUNED trial."""
    run = tmp_path_factory.mktemp("runs") / "demo"
    run.mkdir()
    RunDir(run).write_search({"objectives": [{"name": "accuracy", "direction": "maximize"},
                                             {"name": "gmacs", "direction": "minimize"}],
                              "config": {"data": "synthetic", "num_classes": 4}})
    baseline = catalog_spec("r2plus1d-18")
    row = {
        "trial_id": TRIAL_ID, "status": "COMPLETE", "spec": SPEC.to_json(), "spec_key": SPEC.key(),
        "family": SPEC.family, "baseline": None, "accuracy": PROXY_ACCURACY, "gmacs": 1.0, "latency_ms": 5.0,
        "params": 1000, "recurrent_params": 0, "feasible": True, "fidelity": 4, "max_fidelity": 4,
        "started_at": 0.0, "finished_at": 1.0, "train_seconds": 1.0, "error": None, "duplicate_of": None,
        "gate_open_rates": "{}", "params_json": "{}", "latency_profile": "quick", "deploy_shape": "1x3x8x32x32",
        "history": "[]",
    }  # fmt: skip
    baseline_row = {**row, "trial_id": BASELINE_ID, "baseline": "r2plus1d-18", "spec": baseline.to_json(),
                    "spec_key": baseline.key(), "accuracy": 0.25}
    pruned_row = {**row, "trial_id": PRUNED_ID, "status": "PRUNED", "fidelity": 1, "accuracy": 0.3}
    RunDir(run).write_trials(trials_table([row, baseline_row, pruned_row]))
    return run


def _nas(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


@pytest.fixture(scope="module")
def init_file(tmp_path_factory) -> Path:
    """A depth-18 checkpoint saved torchvision-style (a bare state dict) with a 400-class head."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("init") / "r3d18_400.pth"
    torch.save(build_model(SPEC, num_classes=400, width_mult=0.125).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def args(init_file) -> list[str]:
    return [*ARGS, "--init", str(init_file)]


@pytest.fixture(scope="module")
def uninterrupted(run_dir, args, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("retrain") / "full"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        assert _nas(["retrain", f"{run_dir}:{TRIAL_ID}", *args, "--out", str(out)]) == 0
    PRINTED["uninterrupted"] = printed.getvalue()
    return out


def test_init_loads_every_matching_tensor_and_names_the_skipped_head(uninterrupted, init_file):
    report = json.loads((uninterrupted / "result.json").read_text())["init_report"]
    source = torch.load(init_file, weights_only=True)
    assert report.startswith(f"loaded {len(source) - 2} tensors; skipped: fc.weight (shape (400, ")
    assert "fc.bias (shape (400,) != (4,))" in report


def _rows(path: Path) -> list[dict]:
    return pd.read_csv(path).to_dict("records")


def test_two_workers_train_disjoint_shards_and_evaluate_every_clip_once(uninterrupted):
    rows = _rows(uninterrupted / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2]
    for r in rows:
        # 2 ranks x 40 clips: as many distinct clips as trained clips -> the shards never overlap
        assert r["train_clips"] == r["train_unique_clips"] == 80
        # 23 test clips split 12 + 11 without padding, each counted exactly once
        assert r["test_clips"] == r["test_unique_clips"] == 23
        assert 0 <= r["test_top1"] <= r["test_top5"] <= 1
        assert round(r["test_top1"] * 23, 9) == round(r["test_top1"] * 23)  # a count over 23 clips
    result = json.loads((uninterrupted / "result.json").read_text())
    assert result["test_top1"] == rows[-1]["test_top1"]
    # synthetic clips are exactly the crop size and the sampled span: the 2 x 3 views are one view, evaluated once
    assert result["multiview"] == "1 clip x 1 crop (the 2 clips x 3 crops requested repeat identical views of these clips)"
    assert (result["multiview_top1"], result["multiview_top5"]) == (rows[-1]["test_top1"], rows[-1]["test_top5"])
    printed = PRINTED["uninterrupted"]
    assert "multi-view test: the 2 x 3 requested views of these clips repeat identical views" in printed
    assert "; 2 epochs;" in printed and "1 epochs" not in printed


def test_a_retrain_with_out_elsewhere_leaves_the_run_untouched(run_dir, uninterrupted):
    """docs/retrain.md, "Written back into the run": --out is the only place written."""
    assert (uninterrupted / "result.json").is_file()
    assert not (run_dir / "retrain" / str(TRIAL_ID)).exists()
    assert "warning" not in PRINTED["uninterrupted"]  # a COMPLETE trial, 2 epochs after a 1-epoch warm-up


def test_load_model_gives_the_outputs_of_the_end_of_training(uninterrupted):
    model = load_model(uninterrupted)
    # the last Ray checkpoint holds the weights the workers ended with
    checkpoints = sorted((uninterrupted / "ray" / "train").glob("checkpoint_*/checkpoint.pt"))
    final = torch.load(checkpoints[-1], weights_only=True)["model"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in final.items())
    # and it reproduces the last epoch's single-view test accuracy over the same 23 clips
    test = synthetic_splits(
        train=81, val=0, test=23, config=SyntheticConfig(num_classes=4, frames=8, size=32), seed=5 + 1000
    )["test"]
    counts = evaluate(model, test, np.arange(23), view=ViewConfig(frames=8, size=32))["counts"].tolist()
    last = _rows(uninterrupted / "metrics.csv")[-1]
    assert counts[1] / 23 == pytest.approx(last["test_top1"], abs=1e-12)
    assert counts[2] / 23 == pytest.approx(last["test_top5"], abs=1e-12)


def _snapshot_epoch(out: Path) -> int | None:
    snapshot = out / "ray" / "train" / "checkpoint_manager_snapshot.json"
    try:
        latest = json.loads(snapshot.read_text()).get("latest_checkpoint_result")
    except (OSError, json.JSONDecodeError):
        return None
    return int(latest["metrics"]["epoch"]) if latest else None


def _settle(out: Path, quiet_seconds: float = 3.0, limit: float = 60.0) -> None:
    """Wait until nothing under ``out/ray`` changes for ``quiet_seconds`` (the dead job's actors are gone)."""
    def state():
        return sorted((str(p), p.stat().st_mtime_ns) for p in (out / "ray").rglob("*") if p.is_file())

    last, since, deadline = state(), time.time(), time.time() + limit
    while time.time() - since < quiet_seconds and time.time() < deadline:
        time.sleep(0.2)
        now = state()
        if now != last:
            last, since = now, time.time()


def test_killed_after_epoch_one_and_resumed_ends_bitwise_equal(run_dir, args, uninterrupted, tmp_path):
    """The run is a separate driver process on this module's Ray cluster, SIGKILLed once its epoch-1
    checkpoint is registered; Ray then ends the dead driver's job (controller and workers)."""
    out = tmp_path / "killed"
    address = ray.get_runtime_context().gcs_address
    command = [sys.executable, "-m", "nas", "retrain", f"{run_dir}:{TRIAL_ID}", *args, "--out", str(out), "--address", address]
    log = tmp_path / "killed.log"
    with log.open("w") as stderr:
        child = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.time() + 240
        while _snapshot_epoch(out) is None:
            assert child.poll() is None, f"the run ended before it could be killed: {log.read_text()[-2000:]}"
            assert time.time() < deadline, "no checkpoint after 240 s"
            time.sleep(0.02)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    _settle(out)
    killed_at = _snapshot_epoch(out)
    assert killed_at == 1
    assert not (out / "model.pt").exists()

    assert _nas(["retrain", f"{run_dir}:{TRIAL_ID}", *args, "--out", str(out), "--resume"]) == 0
    assert json.loads((out / "result.json").read_text())["resumed_from_epoch"] == killed_at
    assert (out / "metrics.csv").read_bytes() == (uninterrupted / "metrics.csv").read_bytes()
    ours, theirs = (torch.load(p / "model.pt", weights_only=True)["model"] for p in (out, uninterrupted))
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_bad_input_is_a_one_line_error(run_dir, tmp_path, capsys):
    assert _nas(["retrain", f"{run_dir}:99", "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert _nas(["retrain", "r3d-18", "--batch-size", "5", "--workers", "2", "--out", str(tmp_path / "y")]) == 2
    assert "multiple of workers" in capsys.readouterr().err
    assert _nas(["retrain", "r3d-18", "--resume", "--out", str(tmp_path / "z")]) == 2
    assert "no retraining run to resume" in capsys.readouterr().err
    assert _nas(["retrain", "r3d-18", "--multigrid", "--epochs", "1", "--num-clips", "4", "--out", str(tmp_path / "m")]) == 2
    assert "long cycle needs at least one lr step" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()  # nothing written on bad input
    evil = tmp_path / "evil.pt"
    torch.save({"x": _Evil()}, evil)
    assert _nas(["retrain", "r3d-18", "--init", str(evil), "--num-clips", "8", "--out", str(tmp_path / "w")]) == 2
    assert "refused" in capsys.readouterr().err


def test_a_prepared_cache_gives_its_train_and_test_splits(tmp_path):
    from nas.retrain import load_retrain_data
    from runners.cache import prepare_dataset

    prepare_dataset("synthetic", out=tmp_path / "c", frames=8, size=32, synthetic=SyntheticConfig(num_classes=4), synthetic_clips=12)
    train, test, info = load_retrain_data(
        data="synthetic", root=None, cache=tmp_path / "c", frames=None, size=None, num_clips=1,
        num_test_clips=None, num_classes=None, seed=0,
    )  # fmt: skip
    assert (len(train), len(test), info["cache"]) == (12, 3, str((tmp_path / "c").resolve()))
    with pytest.raises(UserInputError, match="holds 'synthetic', not --data 'ucf101'"):
        load_retrain_data(
            data="ucf101", root=None, cache=tmp_path / "c", frames=None, size=None, num_clips=1,
            num_test_clips=None, num_classes=None, seed=0,
        )  # fmt: skip
    with pytest.raises(UserInputError, match="needs --root PATH"):
        load_retrain_data(
            data="ucf101", root=tmp_path, cache=None, frames=None, size=None, num_clips=1,
            num_test_clips=None, num_classes=None, seed=0,
        )  # fmt: skip


def test_root_videos_are_decoded_once_at_the_full_scale_shape(tmp_path, monkeypatch):
    from rich.console import Console

    from nas.retrain import decode_once, full_scale_cache_dir, load_retrain_data
    from runners.video import write_video

    monkeypatch.setenv("VIDEONAS_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for c in ("jump", "run"):
        for j in range(5):
            write_video(tmp_path / "videos" / c / f"{c}_{j}.mp4", rng.integers(0, 255, (10, 24, 32, 3), dtype=np.uint8))
    folder = decode_once("folder", tmp_path / "videos", 1, 8, 16, Console(quiet=True))
    assert folder == full_scale_cache_dir("folder", tmp_path / "videos", 1, 8, 16) and folder.parent == tmp_path / "cache"
    stamp = (folder / "manifest.json").stat().st_mtime_ns
    assert decode_once("folder", tmp_path / "videos", 1, 8, 16, Console(quiet=True)) == folder
    assert (folder / "manifest.json").stat().st_mtime_ns == stamp  # reused, not decoded again
    train, test, _ = load_retrain_data(
        data="folder", root=tmp_path / "videos", cache=folder, frames=None, size=None, num_clips=1,
        num_test_clips=None, num_classes=None, seed=0,
    )  # fmt: skip
    assert len(test) == 2 and len(train) >= 4  # 20% per class tested; validation clips held out
    assert train.clip_shape == (8, 16, 16) and train.classes == ("jump", "run")


class _Evil:
    def __reduce__(self):
        return (print, ("never",))


TINY = ["--data", "synthetic", "--epochs", "1", "--workers", "1", "--num-clips", "16", "--num-test-clips", "8",
        "--frames", "8", "--size", "32", "--batch-size", "4", "--width-mult", "0.125", "--test-clips", "1",
        "--test-crops", "1"]  # fmt: skip


def _nas_printing(args: list[str]) -> tuple[int, str]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        code = _nas(args)
    return code, printed.getvalue()


def test_a_retrained_baseline_is_written_back_and_reported_as_short(run_dir):
    """Issue 11.6: `nas retrain RUN:-1` (a baseline) without --out writes its result into the run, and the report
    reads it, labelled with the scale it ran at (docs/retrain.md, "Full-scale or short")."""
    from reports.load import load_run

    code, printed = _nas_printing(["retrain", f"{run_dir}:{BASELINE_ID}", *TINY])
    assert code == 0, printed[-3000:]
    warnings = [line for line in printed.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: the learning-rate warm-up (1 epochs) covers the whole schedule (1 epoch): the "
                        "learning rate never reaches its full value; pass more --epochs or a shorter --warmup-epochs"]
    folder = run_dir / "retrain" / str(BASELINE_ID)
    back = json.loads((folder / "result.json").read_text())
    assert back["trial_id"] == BASELINE_ID and back["proxy_accuracy"] == 0.25
    assert back["spec_key"] == catalog_spec("r2plus1d-18").key() and (folder / "model.pt").is_file()
    assert back["scale"] == {"full_scale": False, "epochs": 1, "train_clips": 16, "width_mult": 0.125}
    [result] = [r for r in load_run(run_dir).retrain if r.trial_id == BASELINE_ID]
    assert (result.full_scale, result.scale) == (False, "short: 1 epoch, 16 clips, width 0.125")


def test_a_pruned_trial_is_retrained_with_a_warning_and_out_stays_out_of_the_run(run_dir, tmp_path):
    code, printed = _nas_printing(["retrain", f"{run_dir}:{PRUNED_ID}", *TINY, "--warmup-epochs", "0.5",
                                   "--out", str(tmp_path / "p")])
    assert code == 0, printed[-3000:]
    warnings = [line for line in printed.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"trial {PRUNED_ID} of {run_dir} is PRUNED, not COMPLETE" in warnings[0], printed
    assert (tmp_path / "p" / "result.json").is_file()
    assert not (run_dir / "retrain" / str(PRUNED_ID)).exists()


def test_a_truncated_newest_checkpoint_is_named_and_the_previous_one_is_used(run_dir, args, uninterrupted, tmp_path):
    """A finished run whose newest checkpoint (the one with the final test results) was cut short: resuming
    says so, continues from the checkpoint before it, and ends bitwise equal to the uninterrupted run."""
    import shutil

    from runners.checkpoint import load_checkpoint

    out = tmp_path / "damaged"
    shutil.copytree(uninterrupted, out)
    (out / "model.pt").unlink()
    previous, newest = sorted((out / "ray" / "train").glob("checkpoint_*/checkpoint.pt"))[-2:]
    previous_epoch = int(load_checkpoint(previous)["epoch"])
    newest.write_bytes(newest.read_bytes()[:1000])
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        assert _nas(["retrain", f"{run_dir}:{TRIAL_ID}", *args, "--out", str(out), "--resume"]) == 0
    said = "".join(printed.getvalue().split())  # rich wraps long lines
    assert "".join(f"warning: checkpoint {newest} cannot be read".split()) in said, printed.getvalue()[-3000:]
    assert "resumingfromthepreviousone" in said
    assert json.loads((out / "result.json").read_text())["resumed_from_epoch"] == previous_epoch
    ours, theirs = (torch.load(p / "model.pt", weights_only=True)["model"] for p in (out, uninterrupted))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_only_the_default_epochs_and_clips_at_width_one_are_full_scale():
    from nas.retrain import RetrainData, retrain_scale
    from runners.retrain import RetrainConfig

    assert retrain_scale(RetrainConfig(), RetrainData(), train_clips=1000)["full_scale"]
    assert retrain_scale(RetrainConfig(), RetrainData(data="ucf101", cache=Path("c"), num_clips=1), train_clips=9537)["full_scale"]
    assert not retrain_scale(RetrainConfig(epochs=1), RetrainData(), train_clips=1000)["full_scale"]
    assert not retrain_scale(RetrainConfig(), RetrainData(num_clips=8), train_clips=8)["full_scale"]
    assert not retrain_scale(RetrainConfig(width_mult=0.5), RetrainData(), train_clips=1000)["full_scale"]


def test_warnings_name_the_status_and_the_warm_up(run_dir):
    from nas.retrain import retrain_warnings
    from runners.retrain import RetrainConfig

    assert retrain_warnings((run_dir, TRIAL_ID), RetrainConfig()) == []
    status, warm_up = retrain_warnings((run_dir, PRUNED_ID), RetrainConfig(epochs=2, warmup_epochs=2.5))
    assert "is PRUNED, not COMPLETE" in status and "warm-up (2.5 epochs) covers the whole schedule (2 epochs)" in warm_up


@pytest.mark.slow
def test_ray_start_up_notes_go_to_the_retrain_log_not_the_terminal(run_dir, tmp_path):
    """A retrain that starts its own Ray: the terminal shows the retrain; Ray's notes are kept in retrain.log."""
    from tests.nas.cli_helpers import run_nas

    out = tmp_path / "full"
    small = ["--data", "synthetic", "--epochs", "1", "--workers", "1", "--num-clips", "20", "--num-test-clips", "8",
             "--num-classes", "4", "--frames", "8", "--size", "32", "--batch-size", "4", "--width-mult", "0.125",
             "--test-clips", "1", "--test-crops", "1", "--warmup-epochs", "0"]
    env_address = os.environ.pop("RAY_ADDRESS", None)  # never the session's head: this retrain starts Ray itself
    try:
        result = run_nas("retrain", f"{run_dir}:{TRIAL_ID}", *small, "--out", str(out))
    finally:
        if env_address is not None:
            os.environ["RAY_ADDRESS"] = env_address
    assert result.returncode == 0, result.stderr
    terminal = result.stdout + result.stderr
    assert "test top-1" in terminal and "Started a local Ray instance" not in terminal
    assert "Token authentication" not in terminal
    assert "Started a local Ray instance" in (out / "retrain.log").read_text()
