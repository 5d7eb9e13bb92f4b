"""Retraining as a library: ``retrain(arch, data, config) -> RetrainResult`` (``docs/retrain.md``; ``nas retrain`` is a thin CLI).

It resolves the architecture (a catalog name, a spec file, an :class:`~space.ArchSpec` or ``RUN_DIR:TRIAL_ID``,
baselines' negative ids included), prepares the data (:class:`RetrainData`: fresh synthetic clips, a prepared
cache, or a dataset root decoded once at the full-scale shape), runs Ray Train (:func:`runners.retrain.retrain`)
and, when the architecture came from a run and no ``out_dir`` was asked for, writes the result back into
``RUN_DIR/retrain/<trial_id>/`` with the scale it ran at, so the run's report shows proxy vs full accuracy
(docs/retrain.md, "Written back into the run"). ``nas bench retrain`` calls it in-process.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from nas.arch import resolve_arch
from nas.runmodel import RunDir, parse_run_trial, trial_row
from nas.searchlog import RETRAIN_LOG, SearchLog
from space import ArchSpec
from space.errors import UserInputError
from space.files import atomic_write

SYNTHETIC_DEFAULT_FRAMES = 16
SYNTHETIC_DEFAULT_SIZE = 64
REAL_DEFAULT_FRAMES = 16  # torchvision's r3d / r(2+1)d protocol: 16 x 112 x 112
REAL_DEFAULT_SIZE = 112




@dataclass(frozen=True)
class RetrainData:
    """Where the clips come from: ``data`` synthetic (fresh clips) or a real dataset (``cache`` or ``root``)."""

    data: str = "synthetic"
    root: Path | None = None
    split: int = 1
    cache: Path | None = None
    frames: int | None = None
    size: int | None = None
    num_clips: int = 1000
    num_test_clips: int | None = None
    num_classes: int | None = None
    seed: int = 0


def retrain(
    arch: str | ArchSpec,
    data: RetrainData,
    config: Any,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    address: str | None = None,
    console: Console | None = None,
    max_failures: int = 2,
) -> Any:
    """Train ``arch`` at full scale on ``data`` with ``config`` (a :class:`runners.retrain.RetrainConfig`).

    Returns the :class:`runners.retrain.RetrainResult`. ``out_dir`` defaults to ``RUN_DIR/retrain/ID`` for a
    run's trial (the result is then written back into the run), else ``retrains/NAME``; an ``out_dir`` elsewhere
    is the only place written. ``on_event`` receives the workers' progress events (the CLI's bar); warnings
    (:func:`retrain_warnings`) go to ``console`` as ``warning:`` lines once training starts.
    """
    from runners.retrain import retrain as train_full_scale

    spec = arch if isinstance(arch, ArchSpec) else resolve_arch(arch)
    label = arch if isinstance(arch, str) else spec.key()
    from_run = parse_run_trial(label)
    if data.root is not None and not data.root.exists():
        raise UserInputError(f"--root {data.root} does not exist")
    if data.num_classes is None and from_run is not None and data.data == "synthetic":
        data = _replace(data, num_classes=_run_num_classes(from_run[0]))
    in_run = from_run[0] / "retrain" / str(from_run[1]) if from_run else None
    # --out elsewhere: the run is never touched (docs/retrain.md, "Written back into the run")
    write_into_run = in_run is not None and (out_dir is None or Path(out_dir).resolve() == in_run.resolve())
    if out_dir is None:
        out_dir = in_run or Path("retrains") / _safe_name(label, spec)
    say = console or Console(stderr=True)
    pending = retrain_warnings(from_run, config)

    def relay(event: dict[str, Any]) -> None:  # warnings once training starts: bad input stays one error line
        while pending:
            say.print(f"warning: {pending.pop(0)}", highlight=False, markup=False, soft_wrap=True)
        if on_event is not None:
            on_event(event)

    cache = data.cache
    if data.root is not None and cache is None and data.data != "synthetic":
        cache = decode_once(data.data, data.root, data.split, data.frames or REAL_DEFAULT_FRAMES,
                            data.size or REAL_DEFAULT_SIZE, say)
    train, test, info = load_retrain_data(
        data=data.data, root=data.root, cache=cache, frames=data.frames, size=data.size, num_clips=data.num_clips,
        num_test_clips=data.num_test_clips, num_classes=data.num_classes, seed=data.seed,
    )  # fmt: skip
    result = _logged(Path(out_dir), relay, lambda on_event: train_full_scale(
        spec, config, train=train, test=test, out_dir=out_dir, resume=resume, on_event=on_event, data_info=info,
        address=address, max_failures=max_failures))
    if write_into_run:
        scale = retrain_scale(config, data, train_clips=len(train))
        write_back(from_run[0], from_run[1], label, result, Path(out_dir).resolve(), scale=scale)
    return result


def _logged(out_dir: Path, relay: Callable[[dict[str, Any]], None],
            train: Callable[[Callable[[dict[str, Any]], None]], Any]) -> Any:
    """``train(on_event)`` with Ray's log lines going to ``out_dir/retrain.log``, not the terminal (docs/retrain.md).

    Lines are held until training starts (the first event) or ends: a retrain refused before its folder exists
    leaves no log, as a search refused at its start leaves no ``search.log`` (:mod:`nas.searchlog`).
    """
    import ray  # noqa: F401 - Ray sets up its loggers when imported: before the log takes them over

    path = out_dir / RETRAIN_LOG
    with SearchLog() as log:

        def on_event(event: dict[str, Any]) -> None:
            log.write_to(path)
            relay(event)

        try:
            return train(on_event)
        finally:
            if out_dir.is_dir():
                log.write_to(path)


def retrain_warnings(from_run: tuple[Path, int] | None, config: Any) -> list[str]:
    """What a retrain should say before it runs: a trial the search did not finish, a warm-up as long as the run."""
    said = []
    if from_run is not None:
        status = str(trial_row(*from_run).get("status") or "?")
        if status != "COMPLETE":
            said.append(f"trial {from_run[1]} of {from_run[0]} is {status}, not COMPLETE (the search did not finish "
                        "training it, or it broke a constraint); retraining it anyway")
    if config.warmup_epochs >= config.epochs:
        said.append(f"the learning-rate warm-up ({config.warmup_epochs:g} epochs) covers the whole schedule "
                    f"({config.epochs} epoch{'s' if config.epochs != 1 else ''}): the learning rate never reaches "
                    "its full value; pass more --epochs or a shorter --warmup-epochs")
    return said


def retrain_scale(config: Any, data: RetrainData, *, train_clips: int) -> dict[str, Any]:
    """The scale a retrain ran at, as the run records it: ``full_scale`` only at the defaults' epochs and
    clips, at width 1 (docs/retrain.md, "Full-scale or short")."""
    from runners.retrain import RetrainConfig

    defaults = RetrainConfig()
    all_clips = data.cache is not None or data.root is not None  # a dataset: its whole training split
    full = (config.epochs == defaults.epochs and config.width_mult == defaults.width_mult
            and (all_clips or data.num_clips == RetrainData().num_clips))
    return {"full_scale": full, "epochs": config.epochs, "train_clips": train_clips, "width_mult": config.width_mult}


def _replace(data: RetrainData, **changes: Any) -> RetrainData:
    import dataclasses

    return dataclasses.replace(data, **changes)


def full_scale_cache_dir(data: str, root: Path, split: int, frames: int, size: int) -> Path:
    """Where ``--root`` videos are decoded once at the full-scale shape, shared by every retrain of them.

    ``$VIDEONAS_CACHE`` or ``$XDG_CACHE_HOME/videonas`` (default ``~/.cache/videonas``), one folder per
    (dataset, root, split, frames, size).
    """
    import hashlib
    import os

    base = os.environ.get("VIDEONAS_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "videonas"
    key = hashlib.sha256(f"{data}|{root.resolve()}|{split}|{frames}|{size}".encode()).hexdigest()[:12]
    return Path(base) / f"{data}-split{split}-{frames}x{size}-{key}"


def decode_once(data: str, root: Path, split: int, frames: int, size: int, console: Console) -> Path:
    """Decode ``root`` into the full-scale cache unless it is already there (a progress bar while decoding)."""
    from runners.cache import MANIFEST_NAME, prepare_dataset

    folder = full_scale_cache_dir(data, root, split, frames, size)
    if (folder / MANIFEST_NAME).is_file():
        return folder
    with Progress(
        TextColumn("[bold]decoding {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console,
    ) as bar:  # fmt: skip
        task = bar.add_task(f"{data} at {frames}x{size}x{size}", total=None)
        prepare_dataset(
            data, out=folder, frames=frames, size=size, root=root, split=split,
            progress=lambda done, total, _path: bar.update(task, completed=done, total=total),
        )  # fmt: skip
    return folder


def load_retrain_data(
    *, data: str, root: Path | None, cache: Path | None, frames: int | None, size: int | None,
    num_clips: int, num_test_clips: int | None, num_classes: int | None, seed: int,
) -> tuple[Any, Any, dict[str, Any]]:
    """(train, test, description): the train / test splits of a prepared cache, or fresh synthetic clips."""
    if cache is not None:
        from runners.cache import open_cache, read_manifest

        if not cache.is_dir():
            raise UserInputError(f"--cache {cache} does not exist; prepare it with `nas data prepare --out {cache}`")
        manifest = read_manifest(cache)
        if manifest.get("dataset") != data:
            raise UserInputError(f"--cache {cache} holds {manifest.get('dataset')!r}, not --data {data!r}")
        prepared = open_cache(cache)
        if "test" not in prepared or len(prepared["test"]) == 0:
            raise UserInputError(f"--cache {cache} has no test split; allowed: a cache prepared with a test split")
        # the search's validation clips stay held out: retraining learns from the training split only
        return prepared["train"], prepared["test"], {"name": data, "cache": str(cache.resolve())}
    if data != "synthetic":
        raise UserInputError(f"--data {data} needs --root PATH (its videos) or --cache DIR (`nas data prepare`)")
    from runners.synthetic import SyntheticConfig, synthetic_splits

    synthetic = SyntheticConfig(
        frames=frames or SYNTHETIC_DEFAULT_FRAMES,
        size=size or SYNTHETIC_DEFAULT_SIZE,
        **({"num_classes": num_classes} if num_classes else {}),
    )
    test_count = num_test_clips or max(synthetic.num_classes, num_clips // 4)
    # seed + 1000: a draw of its own, never the clips a search with the same seed trained on
    splits = synthetic_splits(train=num_clips, val=0, test=test_count, config=synthetic, seed=seed + 1000)
    info = {"name": "synthetic", "num_clips": num_clips, "num_test_clips": test_count, "seed": seed,
            "num_classes": synthetic.num_classes, "frames": synthetic.frames, "size": synthetic.size}  # fmt: skip
    return splits["train"], splits["test"], info


def write_back(run_dir: Path, trial_id: int, arch: str, result: Any, out_dir: Path, *, scale: dict[str, Any]) -> Path:
    """``RUN_DIR/retrain/<trial_id>/result.json`` (+ metrics.csv): what the run's report compares, with the
    ``scale`` the retrain ran at (:func:`retrain_scale`)."""
    row = trial_row(run_dir, trial_id)
    proxy = row.get("accuracy")
    proxy = None if proxy is None or (isinstance(proxy, float) and math.isnan(proxy)) else float(proxy)
    target = run_dir / "retrain" / str(trial_id)
    target.mkdir(parents=True, exist_ok=True)
    payload = {
        "arch": arch,
        "trial_id": trial_id,
        "spec_key": result.spec.key(),
        "proxy_accuracy": proxy,
        **{k: v for k, v in result.to_json().items() if k not in ("spec_key",)},
        "out_dir": str(out_dir),
        "scale": scale,
    }
    if (out_dir / "metrics.csv").resolve() != (target / "metrics.csv").resolve():
        shutil.copyfile(out_dir / "metrics.csv", target / "metrics.csv")
    atomic_write(target / "result.json", json.dumps(payload, indent=2))
    return target / "result.json"


def _safe_name(arch: str, spec: Any) -> str:
    name = Path(arch).stem if arch.endswith((".yaml", ".yml", ".json")) else arch
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or spec.key()


def _run_num_classes(run_dir: Path) -> int | None:
    """The synthetic class count the search used, so the full model learns the same task."""
    try:
        config = RunDir(run_dir).read_search()
    except UserInputError:
        return None
    value = config.get("num_classes") if isinstance(config, dict) else None
    if value is None and isinstance(config.get("config"), dict):
        value = config["config"].get("num_classes")
    return int(value) if isinstance(value, int) else None
