"""The driver: ``retrain()`` checks its input, starts Ray Train, relays progress and collects the result."""

from __future__ import annotations

import csv
import json
import threading
import time
from pathlib import Path
from typing import Any, Callable


from runners.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from runners.clips import ClipSet
from runners.sampling import ViewConfig
from space import ArchSpec
from space.errors import UserInputError
from runners.retrain.artifacts import CHECKPOINT_FILE, write_metrics_csv
from runners.retrain.config import METRICS_COLUMNS, RetrainConfig, RetrainResult
from runners.retrain.schedule import epoch_plans
from runners.retrain.worker import AfterStep, history_rows, share, train_worker


def _prepare_out_dir(out_dir: Path, spec: ArchSpec, config: RetrainConfig, resume: bool, data_info: dict[str, Any]) -> None:
    """Refuse to mix runs: a fresh run needs an empty folder, ``resume`` needs the same settings."""
    record = {"config": config.to_dict(), "spec_key": spec.key(), "data": data_info}
    config_file = out_dir / "retrain.json"
    if resume:
        if not config_file.is_file():
            raise UserInputError(f"--resume: {out_dir} holds no retraining run to resume (no retrain.json)")
        previous = json.loads(config_file.read_text())
        if previous != record:
            changed = sorted(
                k for k in set(previous["config"]) | set(record["config"])
                if previous["config"].get(k) != record["config"].get(k)
            )
            what = ", ".join(changed) or ("the architecture" if previous["spec_key"] != spec.key() else "the data")
            raise UserInputError(f"--resume: {out_dir} was started with other settings ({what}); resume with the same ones")
        return
    if out_dir.exists() and any(out_dir.iterdir()):
        raise UserInputError(f"output folder {out_dir} is not empty; pass --resume to continue it or choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "spec.yaml").write_text(spec.to_yaml())
    config_file.write_text(json.dumps(record, indent=2, sort_keys=True))


def _ensure_ray(config: RetrainConfig, address: str | None) -> None:
    """Reuse the caller's Ray; else join ``address`` (a cluster) or start a private local instance."""
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        return
    import os

    ray.init(
        address="local",  # never attach to some other process's cluster by accident
        num_cpus=max(os.cpu_count() or 1, config.workers * config.cpus_per_worker),
        include_dashboard=False,
        log_to_driver=False,
    )


def retrain(
    spec: ArchSpec,
    config: RetrainConfig,
    *,
    train: ClipSet,
    test: ClipSet,
    out_dir: str | Path,
    resume: bool = False,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    data_info: dict[str, Any] | None = None,
    address: str | None = None,
    max_failures: int = 2,
    after_step: AfterStep | None = None,
) -> RetrainResult:
    """Train ``spec`` on ``train`` with Ray Train, evaluate on ``test``, write the output folder.

    ``on_event`` receives progress events from rank 0 (``step``, ``epoch``, ``init``, ``resumed``) in the
    calling thread; the CLI draws its progress bar from them. ``resume`` continues the run in ``out_dir``
    from its last checkpoint. Ray: the caller's if initialised, else ``address`` (an existing cluster), else
    a private local instance. A worker that dies (SIGKILL, lost node) restarts the whole worker group, up
    to ``max_failures`` times, from the last reported checkpoint (Ray Train's ``FailureConfig``). ``after_step``
    (:data:`runners.retrain.worker.AfterStep`, picklable) runs on every rank after each training step: the
    fault tests kill a worker there (``tests/runners/retrain_faults.py``); the library injects nothing itself.
    """
    from ray.util.queue import Queue

    frames, size = _check_input(spec, config, train, test, resume=resume, max_failures=max_failures)
    out_dir = Path(out_dir).resolve()
    _prepare_out_dir(out_dir, spec, config, resume, data_info or {})
    _ensure_ray(config, address)

    started = time.time()
    queue = Queue(actor_options={"num_cpus": 0})
    loop_config = {
        "config": config.to_dict(),
        "spec": spec.to_dict(),
        "train": share(train),
        "test": share(test),
        "frames": frames,
        "size": size,
        "queue": queue,
        "after_step": after_step,
    }
    trainer = _trainer(config, loop_config, out_dir, max_failures)
    result, events = _fit_relaying_events(trainer, queue, out_dir, on_event)
    return _finish(out_dir, spec, result, events, time.time() - started)


def _check_input(spec: ArchSpec, config: RetrainConfig, train: ClipSet, test: ClipSet, *, resume: bool,
                 max_failures: int) -> tuple[int, int]:
    """Every check that can fail on the caller's input, before anything is written; returns (frames, size)."""
    if train.classes != test.classes:
        raise UserInputError("train and test splits have different classes")
    if max_failures < 0:
        raise UserInputError(f"--max-failures {max_failures} is not allowed; allowed: an integer >= 0")
    frames = config.frames or train.clip_shape[0]
    size = config.size or min(train.clip_shape[1:])
    view = ViewConfig(frames=frames, size=size, max_stride=config.max_stride)
    view.check_fits(train.clip_shape)
    view.check_fits(test.clip_shape)
    epoch_plans(config, spec, frames, size)  # a bad schedule fails here, before anything is written
    if config.init and not resume:
        load_checkpoint(config.init)  # so does a bad --init file
    return frames, size


def _trainer(config: RetrainConfig, loop_config: dict[str, Any], out_dir: Path, max_failures: int) -> Any:
    """The Ray Train ``TorchTrainer``: ``config.workers`` workers, checkpoints under ``out_dir/ray``, and a
    restart of the worker group from the last checkpoint up to ``max_failures`` times."""
    import ray.train
    from ray.train.torch import TorchTrainer

    resources = {"CPU": config.cpus_per_worker}
    if config.use_gpu:
        resources["GPU"] = config.gpus_per_worker
    return TorchTrainer(
        train_worker,
        train_loop_config=loop_config,
        scaling_config=ray.train.ScalingConfig(
            num_workers=config.workers, use_gpu=config.use_gpu, resources_per_worker=resources
        ),
        run_config=ray.train.RunConfig(
            name="train",
            storage_path=str(out_dir / "ray"),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            failure_config=ray.train.FailureConfig(max_failures=max_failures),
        ),
    )


def _fit_relaying_events(trainer: Any, queue: Any, out_dir: Path,
                         on_event: Callable[[dict[str, Any]], None] | None) -> tuple[Any, list[dict[str, Any]]]:
    """Run ``trainer.fit()`` in a thread while this one relays rank 0's events from ``queue`` (to ``on_event``
    and, per epoch, to metrics.csv); returns (Ray's result, every event). A failure of the fit is re-raised here."""
    from ray.util.queue import Empty

    outcome: dict[str, Any] = {}

    def fit() -> None:
        try:
            outcome["result"] = trainer.fit()
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    events: list[dict[str, Any]] = []
    thread = threading.Thread(target=fit, name="ray-train-fit", daemon=True)
    thread.start()
    while thread.is_alive() or not queue.empty():
        try:
            event = queue.get(timeout=0.2)
        except Empty:
            continue
        events.append(event)
        if event["kind"] == "epoch":
            done = [e["row"] for e in events if e["kind"] == "epoch"]
            _write_partial_metrics(out_dir, done)
        if on_event is not None:
            on_event(event)
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"], events


def _write_partial_metrics(out_dir: Path, rows: list[dict[str, float]]) -> None:
    """Keep metrics.csv current while training (rows of a resumed run are completed by the checkpoint)."""
    existing = []
    path = out_dir / "metrics.csv"
    if path.is_file():
        with path.open() as f:
            existing = [r for r in csv.DictReader(f)]
    by_epoch = {int(r["epoch"]): r for r in existing}
    for row in rows:
        by_epoch[row["epoch"]] = row
    merged = [by_epoch[e] for e in sorted(by_epoch)]
    write_metrics_csv(path, [{c: _parse(r[c]) for c in METRICS_COLUMNS} for r in merged])


def _parse(value: Any) -> Any:
    if isinstance(value, str):
        return int(value) if value.lstrip("-").isdigit() else float(value)
    return value


def _finish(out_dir: Path, spec: ArchSpec, result: Any, events: list[dict[str, Any]], seconds: float) -> RetrainResult:
    """Copy the final weights and the authoritative metrics out of the last checkpoint."""
    if result.checkpoint is None:
        raise CheckpointError(f"the run in {out_dir} finished without a checkpoint")
    with result.checkpoint.as_directory() as folder:
        state = load_checkpoint(Path(folder) / CHECKPOINT_FILE)
    final = state["final"]
    history = history_rows(state["history"])
    save_checkpoint(
        out_dir / "model.pt",
        {
            "model": state["model"],
            "num_classes": state["num_classes"],
            "width_mult": state["config"]["width_mult"],
            "spec": state["spec"],
            "epochs": len(history),  # load_model sets warm-up gates as at the last of them
        },
    )
    write_metrics_csv(out_dir / "metrics.csv", history)
    resumed = next((e["epoch"] for e in events if e["kind"] == "resumed"), None)
    init = next((e["summary"] for e in events if e["kind"] == "init"), None)
    last = history[-1] if history else {}
    outcome = RetrainResult(
        out_dir=out_dir,
        spec=spec,
        epochs=len(history),
        history=tuple(history),
        test_top1=float(last.get("test_top1", float("nan"))),
        test_top5=float(last.get("test_top5", float("nan"))),
        multiview_top1=float(final["multiview_top1"]),
        multiview_top5=float(final["multiview_top5"]),
        multiview=str(final["multiview"]),
        gate_open_rates=json.loads(final["gate_open_rates"]),
        resumed_from_epoch=resumed,
        init_report=init,
        seconds=seconds,
    )
    (out_dir / "result.json").write_text(json.dumps(outcome.to_json(), indent=2))
    return outcome
