"""Shared machinery of the paper benchmarks (``srtg-gate``, ``srtg``, ``mtnet``): seeded proxy trials that resume.

A benchmark is a list of :class:`Trial` s (an architecture, a seed and the proxy budget). :func:`run_trials`
trains each with :func:`runners.proxy.train_proxy` (the search's own proxy loop: no second training loop) in
worker processes, appends each finished trial as one JSON line to ``trials.jsonl`` in the output folder, and
skips trials already there, so an interrupted benchmark resumes where it stopped. A progress bar runs on stderr.
:func:`write_report` writes the same tables as Markdown and as a standalone HTML page.
"""

from __future__ import annotations

import html
import json
import math
import multiprocessing
import statistics
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from runners.clips import ClipSet
from runners.costs import model_costs
from runners.proxy import ProxyConfig, train_proxy
from runners.synthetic import SyntheticConfig, synthetic_splits
from space.spec import ArchSpec, spec_from_dict

__all__ = ["Trial", "run_trials", "write_report", "mean_std", "fmt_mean_std", "markdown_table"]


@dataclass(frozen=True)
class Trial:
    """One proxy training: ``spec`` at ``proxy`` (its ``seed`` also seeds the data) on ``train`` / ``val`` clips."""

    key: str
    label: str
    spec: ArchSpec
    proxy: ProxyConfig
    train: int
    val: int
    tags: dict[str, Any] = field(default_factory=dict)
    inspect: str = ""  # name of an inspector in the benchmark module (a picklable reference), "" for none

    def to_record(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "spec": self.spec.to_dict(), "proxy": self.proxy.to_dict(),
                "train": self.train, "val": self.val, "tags": self.tags}


@lru_cache(maxsize=4)
def _data(train: int, val: int, frames: int, size: int, seed: int) -> dict[str, ClipSet]:
    """The synthetic splits of one seed (cached per worker: trials of one seed share them)."""
    return synthetic_splits(train=train, val=val, config=SyntheticConfig(frames=frames, size=size), seed=seed)


def _run_one(trial: Trial, inspector: Callable | None) -> dict[str, Any]:
    """Train one trial; returns its JSON record (accuracy, top-5, per-epoch open rates, costs, inspections)."""
    data = _data(trial.train, trial.val, trial.proxy.frames, trial.proxy.size, trial.proxy.seed)
    inspect = (lambda model: inspector(model, data["val"], trial.proxy)) if inspector is not None else None
    result = train_proxy(trial.spec, data["train"], data["val"], trial.proxy, inspect=inspect)
    labels = data["val"].labels
    top5 = result.val_probabilities.argsort(axis=1)[:, -5:]
    record = trial.to_record()
    record.update({
        "top1": result.accuracy,
        "top5": float((top5 == labels[:, None]).any(axis=1).mean()),
        "train_seconds": result.train_seconds,
        "history": [e.to_dict() for e in result.history],
    })
    return record


def read_log(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    records = {}
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            records[record["key"]] = record
    return records


def run_trials(
    trials: Sequence[Trial],
    out_dir: Path,
    *,
    workers: int = 2,
    inspectors: dict[str, Callable] | None = None,
    description: str = "trials",
) -> dict[str, dict[str, Any]]:
    """Run every trial not yet in ``out_dir/trials.jsonl`` (``workers`` processes); returns all records by key."""
    keys = [t.key for t in trials]
    if len(set(keys)) != len(keys):
        raise ValueError("benchmark trial keys must be unique")
    log = out_dir / "trials.jsonl"
    out_dir.mkdir(parents=True, exist_ok=True)
    done = read_log(log)
    todo = [t for t in trials if t.key not in done]
    inspectors = inspectors or {}
    columns = (TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task(description, total=len(trials), completed=len(trials) - len(todo))
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=max(1, min(workers, len(todo) or 1)), mp_context=context) as pool:
            futures = [pool.submit(_run_one, t, inspectors.get(t.inspect)) for t in todo]
            for future in futures:
                record = future.result()
                with log.open("a") as handle:
                    handle.write(json.dumps(record) + "\n")
                done[record["key"]] = record
                progress.advance(task)
                if not progress.console.is_terminal:  # piped: one plain progress line per finished trial
                    progress.console.print(f"{description}: {len(done)}/{len(trials)} ({record['key']})")
    return {key: done[key] for key in keys}


def spec_of(record: dict[str, Any]) -> ArchSpec:
    return spec_from_dict(record["spec"])


PAPER_SHAPE = (16, 224, 224)


@lru_cache(maxsize=None)
def full_costs(spec: ArchSpec, num_classes: int = 400) -> tuple[float, float]:
    """(params in millions, GMACs @ 1 x 3 x 16 x 224 x 224) at full width: the papers' units."""
    costs = model_costs(spec, shape=PAPER_SHAPE, num_classes=num_classes)
    return costs.params / 1e6, costs.gmacs


# --------------------------------------------------------------------------------------------------
# Statistics and tables
# --------------------------------------------------------------------------------------------------


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt_mean_std(values: Iterable[float], *, scale: float = 100.0, digits: int = 1) -> str:
    mean, std = mean_std(values)
    if math.isnan(mean):
        return "-"
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _html_block(block: str) -> str:
    """One Markdown block (a table, a heading or a paragraph) as HTML."""
    lines = block.strip().splitlines()
    if lines and lines[0].startswith("|"):
        cells = [[html.escape(c.strip()) for c in line.strip().strip("|").split("|")] for line in lines]
        head, body = cells[0], cells[2:]
        out = ["<table>", "<tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>"]
        out += ["<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in body]
        return "\n".join(out + ["</table>"])
    if lines and lines[0].startswith("#"):
        level = len(lines[0]) - len(lines[0].lstrip("#"))
        return f"<h{level}>{html.escape(lines[0].lstrip('#').strip())}</h{level}>"
    return "<p>" + html.escape(" ".join(lines)) + "</p>"


def write_report(out_dir: Path, name: str, markdown: str) -> None:
    """Write ``name.md`` and ``name.html`` (the same content; blocks separated by blank lines)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.md").write_text(markdown)
    blocks = [b for b in markdown.split("\n\n") if b.strip()]
    body = "\n".join(_html_block(b) for b in blocks)
    style = "body{font-family:sans-serif;max-width:80em;margin:2em auto}table{border-collapse:collapse}" \
            "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
    (out_dir / f"{name}.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(name)}</title>"
        f"<style>{style}</style></head><body>\n{body}\n</body></html>\n"
    )


def to_json(records: dict[str, dict[str, Any]]) -> str:
    return json.dumps(records, indent=1, default=str)


__all__ += ["read_log", "spec_of", "to_json", "full_costs", "PAPER_SHAPE"]
