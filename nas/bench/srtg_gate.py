"""``nas bench srtg-gate``: what makes the cyclic gate open within a proxy budget (``docs/srtg.md``).

Trains ``srtg-r3d-18-final`` (and, for the settings that matter, ``srtg-r3d-34-final``) on the demo proxy's
clip shape with each gate setting below and records, per stage and epoch, the open-rate on the validation clips.
On the same validation pass an inspector measures every sample's *consistency share* (the smaller of the two
directions' shares of frames that cycle back) per block, so the open-rate each quorum x tolerance would have
given on the model as trained is known too (a counterfactual: the gate decision also changes training, which only
the trained settings show).

The rows before "defaults" were trained when a T = 1 gate still counted as open (it then fused with ``mul``);
they are kept as measured (``trials.jsonl``), re-running them today gives the shut-at-T = 1 behaviour.

Settings: the paper's rule (quorum 1, tolerance 0, no align loss), the preset's align-loss weight 0.1, weight 1.0,
quorum 0.5 with and without the align loss, a warm-up (gate inactive for the first third of training), and the
T = 1 question (stage 4 sees T = 1 at 8 frames: the same setting with SRTG on stages 1-3 only is exactly "a T = 1
gate stays shut", since a shut gate returns its input).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.bench.paper_trials import Trial, fmt_mean_std, markdown_table, run_trials, write_report
from runners.clips import ClipSet
from runners.proxy import ProxyConfig
from runners.sampling import predict_probabilities
from space import ResNet3DSpec, SRTGSpec
from space.srtg import SRTG, consistency_share, srtg_modules

__all__ = ["run_srtg_gate_benchmark", "STUDY_SETTINGS", "consistency_inspector", "stage_rates"]

QUORUMS = (1.0, 0.75, 0.5, 0.25)
TOLERANCES = (0, 1)

# name -> (SRTGSpec overrides, depths it is trained at)
STUDY_SETTINGS: dict[str, tuple[dict[str, Any], tuple[int, ...]]] = {
    "paper (q 1, tol 0, align 0)": ({"quorum": 1.0, "align_loss": 0.0}, (18, 34)),
    "align 0.1 (preset)": ({"quorum": 1.0, "align_loss": 0.1}, (18,)),
    "align 1.0": ({"quorum": 1.0, "align_loss": 1.0}, (18,)),
    "q 0.5": ({"quorum": 0.5, "align_loss": 0.0}, (18,)),
    "q 0.5 + align 1.0": ({"quorum": 0.5, "align_loss": 1.0}, (18, 34)),
    "q 0.5 + align 1.0 + warm-up 1/3": ({"quorum": 0.5, "align_loss": 1.0, "gate": "warmup", "warmup": 1}, (18,)),
    "q 0.5 + align 1.0, stages 1-3 (T = 1 shut)": ({"quorum": 0.5, "align_loss": 1.0, "stages": (1, 2, 3)}, (18,)),
    # The defaults chosen from the rows above: quorum 0.5, align loss 1.0, a T = 1 gate shut (SRTGSpec()).
    "defaults (q 0.5, align 1.0, T = 1 shut)": ({}, (18, 34)),
}


def _stage(block: str) -> int:
    return int(block.split(".")[0].removeprefix("layer"))


def stage_rates(rates: dict[str, float | None]) -> dict[int, float | None]:
    """Per stage: the mean open-rate of its blocks (``None`` where every block saw only T = 1)."""
    by_stage: dict[int, list[float]] = {}
    seen: set[int] = set()
    for block, rate in rates.items():
        seen.add(_stage(block))
        if rate is not None:
            by_stage.setdefault(_stage(block), []).append(rate)
    return {s: (sum(by_stage[s]) / len(by_stage[s]) if s in by_stage else None) for s in sorted(seen)}


def consistency_inspector(model: nn.Module, val: ClipSet, proxy: ProxyConfig) -> dict[str, Any]:
    """One extra validation pass: per block and tolerance, every sample's consistency share; returns, per stage,
    the open-rate each (quorum, tolerance) would give, as ``{"q{q}_t{tol}": {stage: rate}}``."""
    shares: dict[tuple[str, int], list[torch.Tensor]] = {}
    frames: dict[str, int] = {}

    def hook(name: str, module: SRTG):
        def pre(_: nn.Module, args: tuple) -> None:
            x = args[0]
            s = x.mean(dim=(3, 4)).transpose(1, 2)
            frames[name] = s.shape[1]
            if s.shape[1] == 1:
                return
            h = module.recurrence(s)
            for tol in TOLERANCES:
                share = consistency_share(s, h, tau=module.tau, tolerance=tol, gate_norm=module.gate_norm)
                shares.setdefault((name, tol), []).append(torch.round(share * s.shape[1]) / s.shape[1])
        return pre

    handles = [m.register_forward_pre_hook(hook(n, m)) for n, m in srtg_modules(model).items()]
    try:
        with torch.no_grad():
            predict_probabilities(model, val, proxy.view, batch_size=proxy.eval_batch_size)
    finally:
        for handle in handles:
            handle.remove()
    out: dict[str, Any] = {}
    for q in QUORUMS:
        for tol in TOLERANCES:
            rates = {}
            for name in frames:
                if frames[name] == 1:
                    rates[name] = None
                    continue
                share = torch.cat(shares[(name, tol)])
                rates[name] = float((share >= q - 1e-6).float().mean())
            out[f"q{q}_t{tol}"] = {str(s): r for s, r in stage_rates(rates).items()}
    return out


INSPECTORS = {"consistency": consistency_inspector}


def _trials(proxy: ProxyConfig, train: int, val: int, seeds: tuple[int, ...], depths: tuple[int, ...]) -> list[Trial]:
    trials = []
    for name, (overrides, setting_depths) in STUDY_SETTINGS.items():
        for depth in setting_depths:
            if depth not in depths:
                continue
            spec = ResNet3DSpec(depth=depth, srtg=SRTGSpec(placement="final", **overrides))
            for seed in seeds:
                trials.append(Trial(
                    key=f"{name}|{depth}|{seed}", label=name, spec=spec, proxy=dataclasses.replace(proxy, seed=seed),
                    train=train, val=val, tags={"setting": name, "depth": depth}, inspect="consistency",
                ))
    return trials


def _fmt_rate(value: float | None) -> str:
    return "T=1" if value is None else f"{value:.2f}"


def _curve(record: dict[str, Any]) -> dict[int, list[float | None]]:
    """Stage -> the open-rate at each epoch (validation clips)."""
    epochs = [stage_rates(e["gate_open_rates"]) for e in record["history"]]
    return {s: [e.get(s) for e in epochs] for s in epochs[0]}


def _markdown(records: dict[str, dict[str, Any]], settings: str) -> str:
    lines = ["# nas bench srtg-gate: the cyclic gate at proxy scale", "", settings, ""]
    lines += ["## Measured open-rate per stage (validation clips), each epoch", "",
              "Stage columns list the open-rate after epoch 1, 2, ... (mean over the stage's blocks; T=1: the stage "
              "sees one frame, nothing decided). Top-1 on the validation clips at the last epoch.", ""]
    rows = []
    for record in records.values():
        curve = _curve(record)
        row = [record["label"], record["tags"]["depth"], record["proxy"]["seed"]]
        row += [" / ".join(_fmt_rate(v) for v in curve.get(s, [])) or "-" for s in (1, 2, 3, 4)]
        row += [f"{100 * record['top1']:.1f}%"]
        rows.append(row)
    lines += [markdown_table(["setting", "depth", "seed", "stage 1", "stage 2", "stage 3", "stage 4", "top-1"], rows), ""]
    lines += ["## Counterfactual open-rate at the last epoch per quorum x tolerance", "",
              "Each trained model's validation samples, re-judged at every (quorum, tolerance): the share whose "
              "consistency share reaches the quorum. Cells: stage 1 / 2 / 3 (stage 4 is T = 1).", ""]
    keys = [f"q{q}_t{t}" for q in QUORUMS for t in TOLERANCES]
    rows = []
    for record in records.values():
        last = record["history"][-1].get("inspection") or {}
        row = [record["label"], record["tags"]["depth"], record["proxy"]["seed"]]
        row += [" / ".join(_fmt_rate(last.get(k, {}).get(str(s))) for s in (1, 2, 3)) for k in keys]
        rows.append(row)
    headers = ["setting", "depth", "seed"] + [f"q {q}, tol {t}" for q in QUORUMS for t in TOLERANCES]
    lines += [markdown_table(headers, rows), ""]
    by_setting: dict[tuple[str, int], list[float]] = {}
    for record in records.values():
        by_setting.setdefault((record["label"], record["tags"]["depth"]), []).append(record["top1"])
    lines += ["## Top-1 per setting (mean ± std over seeds, %)", "",
              markdown_table(["setting", "depth", "top-1"], [[s, d, fmt_mean_std(v)] for (s, d), v in by_setting.items()]),
              ""]
    return "\n".join(lines)


def run_srtg_gate_benchmark(
    out_dir: Path, *, quick: bool = False, workers: int = 2, seeds: tuple[int, ...] = (0,),
    train: int = 1680, val: int = 420, epochs: int = 3, depths: tuple[int, ...] = (18, 34),
) -> dict[str, Any]:
    """The gate study; ``quick``: depth 18 only, 96 / 48 clips, 1 epoch."""
    if quick:
        train, val, epochs, depths = 96, 48, 1, (18,)
    proxy = ProxyConfig(epochs=epochs, batch_size=32, lr=0.1, width_mult=0.25, frames=8, size=32, threads=1)
    trials = _trials(proxy, train, val, seeds, depths)
    records = run_trials(trials, out_dir, workers=workers, inspectors=INSPECTORS, description="srtg gate study")
    settings = (f"Demo proxy shape: 8 frames x 32 x 32 px, width 0.25, SGD lr 0.1, batch 32, {epochs} epochs, "
                f"{train} train / {val} validation synthetic clips, seeds {list(seeds)}; placement `final`, "
                f"tau 0.05, gate_norm std, LSTM, mul fusion.")
    markdown = _markdown(records, settings)
    write_report(out_dir, "srtg-gate", markdown)
    last = {k: {s: r for s, r in stage_rates(v["history"][-1]["gate_open_rates"]).items()} for k, v in records.items()}
    (out_dir / "srtg-gate.json").write_text(json.dumps(records, indent=1))
    return {"trials": len(records), "last_epoch_stage_open_rates": last}
