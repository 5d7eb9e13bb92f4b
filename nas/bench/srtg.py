"""``nas bench srtg``: the SRTG paper's Table 1 at proxy scale, with gate open-rates (``docs/srtg.md``).

Rows, for each of r3d-34 and r(2+1)d-34: no SRTG; each valid Simple-block placement (start, mid, res, final)
with an LSTM and the gate ``inactive`` (always fuse) and ``cyclic`` (the spec's defaults, chosen by the gate
study in ``docs/srtg.md``); and a GRU row (final, cyclic). Each row is trained with the search's proxy loop on the
synthetic data at several seeds (a seed fixes the data, the initialisation and the batch order, so rows of one
seed are paired). Reported: mean ± std of validation top-1 and top-5, params and GMACs at full width
(1 x 3 x 16 x 224 x 224, 400 classes: the paper's units), each stage's open-rate at the last epoch, the paired
difference to no SRTG with its standard error (a gain within two standard errors is called seed noise), and
the paper's HACS (Table 1) and Kinetics-700 (Table 2, no SRTG and final only) figures beside ours.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
from pathlib import Path
from typing import Any

from nas.bench.srtg_gate import stage_rates
from nas.bench.paper_trials import (
    PAPER_SHAPE, Trial, fmt_mean_std, full_costs, markdown_table, mean_std, read_log, run_trials, spec_of,
    write_report,
)
from runners.proxy import ProxyConfig
from space import ResNet3DSpec, SRTGSpec

__all__ = ["run_srtg_benchmark", "table_rows", "PAPER_TABLE1", "PAPER_K700"]

CONVS = {"r3d": "3D", "r2plus1d": "(2+1)D"}
PLACEMENTS = ("start", "mid", "res", "final")

# SRTG paper Table 1 (HACS, from scratch): (top-1, top-5) per conv.
PAPER_TABLE1: dict[str, dict[str, tuple[float, float]]] = {
    "none": {"r3d": (74.818, 92.839), "r2plus1d": (75.703, 93.571)},
    "start": {"r3d": (75.705, 93.230), "r2plus1d": (76.438, 93.781)},
    "mid": {"r3d": (75.489, 93.224), "r2plus1d": (76.685, 93.746)},
    "res": {"r3d": (76.703, 93.307), "r2plus1d": (77.094, 93.856)},
    "final": {"r3d": (78.599, 93.569), "r2plus1d": (80.389, 94.267)},
}
# SRTG paper Table 2, Kinetics-700 (initialised from HACS): no SRTG and SRTG (final).
PAPER_K700: dict[str, dict[str, tuple[float, float]]] = {
    "none": {"r3d": (46.138, 67.108), "r2plus1d": (46.625, 68.229)},
    "final": {"r3d": (49.153, 72.682), "r2plus1d": (49.427, 73.233)},
}


def row_configs() -> list[tuple[str, str, str, str]]:
    """(row id, placement, recurrent, gate) in table order."""
    rows = [("none", "none", "lstm", "-")]
    for gate in ("inactive", "cyclic"):
        rows += [(f"{p}/lstm/{gate}", p, "lstm", gate) for p in PLACEMENTS]
    return rows + [("final/gru/cyclic", "final", "gru", "cyclic")]


def row_spec(conv: str, placement: str, recurrent: str, gate: str) -> ResNet3DSpec:
    if placement == "none":
        return ResNet3DSpec(conv=conv, depth=34)
    return ResNet3DSpec(conv=conv, depth=34, srtg=SRTGSpec(placement=placement, recurrent=recurrent, gate=gate))


def _trials(proxy: ProxyConfig, train: int, val: int, seeds: tuple[int, ...], convs: tuple[str, ...]) -> list[Trial]:
    trials = []  # seed-major: an interrupted run has whole tables of its first seeds
    for seed in seeds:
        for conv in convs:
            for row, placement, recurrent, gate in row_configs():
                trials.append(Trial(
                    key=f"{conv}|{row}|{seed}", label=row, spec=row_spec(conv, placement, recurrent, gate),
                    proxy=dataclasses.replace(proxy, seed=seed), train=train, val=val,
                    tags={"conv": conv, "row": row, "placement": placement, "recurrent": recurrent, "gate": gate},
                ))
    return trials


def _last_stage_rates(record: dict[str, Any]) -> dict[int, float | None]:
    return stage_rates(record["history"][-1]["gate_open_rates"])


def _paired_difference(rows: list[dict], baseline: list[dict]) -> tuple[float, float]:
    """Mean and standard error of the per-seed top-1 difference (row - no SRTG); seeds share their data."""
    base = {r["proxy"]["seed"]: r["top1"] for r in baseline}
    diffs = [r["top1"] - base[r["proxy"]["seed"]] for r in rows if r["proxy"]["seed"] in base]
    mean, std = mean_std(diffs)
    return mean, (std / math.sqrt(len(diffs)) if diffs else math.nan)


def table_rows(records: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One aggregated row per (conv, table row): what both the Markdown and the JSON report."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for record in records.values():
        groups.setdefault((record["tags"]["conv"], record["tags"]["row"]), []).append(record)
    out = []
    for (conv, row), members in groups.items():
        tags = members[0]["tags"]
        params, gmacs = full_costs(spec_of(members[0]))
        stages: dict[int, list[float]] = {}
        for member in members:
            for stage, rate in _last_stage_rates(member).items():
                if rate is not None:
                    stages.setdefault(stage, []).append(rate)
        diff, se = _paired_difference(members, groups.get((conv, "none"), [])) if row != "none" else (0.0, 0.0)
        out.append({
            "conv": conv, "row": row, "placement": tags["placement"], "recurrent": tags["recurrent"],
            "gate": tags["gate"], "seeds": sorted(m["proxy"]["seed"] for m in members),
            "top1": [m["top1"] for m in members], "top5": [m["top5"] for m in members],
            "params_m": params, "gmacs": gmacs,
            "stage_open_rates": {s: mean_std(v)[0] for s, v in sorted(stages.items())},
            "diff_top1": diff, "diff_top1_se": se,
        })
    return out


def _verdict(row: dict[str, Any]) -> str:
    if row["row"] == "none":
        return "-"
    diff, se = row["diff_top1"], row["diff_top1_se"]
    if len(row["seeds"]) < 2:
        return f"{100 * diff:+.1f} (1 seed: no uncertainty)"
    text = f"{100 * diff:+.1f} ± {100 * se:.1f}"
    if math.isnan(se) or se == 0 or abs(diff) < 2 * se:
        return text + " (seed noise)"
    return text + (" (gain)" if diff > 0 else " (loss)")


def _paper(row: dict[str, Any]) -> tuple[str, str]:
    placement = row["placement"] if row["gate"] == "cyclic" or row["row"] == "none" else None
    if row["recurrent"] == "gru" or placement is None:
        return "-", "-"
    hacs = PAPER_TABLE1[placement][row["conv"]]
    k700 = PAPER_K700.get(placement, {}).get(row["conv"])
    return f"{hacs[0]:.1f} / {hacs[1]:.1f}", (f"{k700[0]:.1f} / {k700[1]:.1f}" if k700 else "-")


def _markdown(rows: list[dict[str, Any]], settings: str) -> str:
    lines = ["# nas bench srtg: the SRTG paper's Table 1 at proxy scale", "", settings, "",
             "Top-1 / top-5: validation clips, mean ± std over seeds (%). Δ top-1: per-seed paired difference to "
             "no SRTG, mean ± standard error (%); within two standard errors is called seed noise. Open-rate: per "
             "stage (1 / 2 / 3 / 4), mean over the stage's blocks and seeds at the last epoch; T=1 where the stage "
             "sees one frame; `inactive` always fuses (1.00). Params (M) and GMACs at full width, 1 x 3 x 16 x 224 x "
             "224, 400 classes. Paper: HACS top-1 / top-5 (Table 1; the paper's SRTG rows are gated) and "
             "Kinetics-700 (Table 2, no SRTG and final only).", ""]
    for conv, label in CONVS.items():
        members = [r for r in rows if r["conv"] == conv]
        if not members:
            continue
        lines += [f"## {label} convolutions ({conv}-34)", ""]
        table = []
        for r in members:
            rates = " / ".join("T=1" if r["stage_open_rates"].get(s) is None else f"{r['stage_open_rates'][s]:.2f}"
                               for s in (1, 2, 3, 4)) if r["row"] != "none" else "-"
            hacs, k700 = _paper(r)
            table.append([r["placement"], r["recurrent"] if r["row"] != "none" else "-", r["gate"], len(r["seeds"]),
                          fmt_mean_std(r["top1"]), fmt_mean_std(r["top5"]), _verdict(r),
                          f"{r['params_m']:.2f}", f"{r['gmacs']:.2f}", rates, hacs, k700])
        lines += [markdown_table(["placement", "RNN", "gate", "seeds", "top-1 (%)", "top-5 (%)", "Δ top-1 vs none (%)",
                                  "params (M)", "GMACs", "open-rate s1/s2/s3/s4", "paper HACS top-1/5",
                                  "paper K-700 top-1/5"], table), ""]
    return "\n".join(lines)


def run_srtg_benchmark(
    out_dir: Path, *, quick: bool = False, workers: int = 2, seeds: tuple[int, ...] = (0, 1, 2),
    train: int = 480, val: int = 240, epochs: int = 3, convs: tuple[str, ...] = ("r3d", "r2plus1d"),
    report_only: bool = False,
) -> dict[str, Any]:
    """Train every row at every seed (resuming from ``out_dir/trials.jsonl``) and write ``srtg.md`` / ``.html``.

    ``quick``: one seed, 16 / 16 clips, one epoch (a smoke test of the whole table, not a measurement).
    ``report_only``: no training; the report of the trials ``trials.jsonl`` already holds.
    """
    if quick:
        seeds, train, val, epochs = (0,), 16, 16, 1
    proxy = ProxyConfig(epochs=epochs, batch_size=8 if quick else 32, lr=0.1, width_mult=0.25, frames=8, size=32,
                        threads=1)
    trials = _trials(proxy, train, val, seeds, convs)
    if report_only:  # what an interrupted run has finished so far (rows with fewer seeds say so)
        done = read_log(out_dir / "trials.jsonl")
        records = {t.key: done[t.key] for t in trials if t.key in done}
    else:
        records = run_trials(trials, out_dir, workers=workers, description="srtg table")
    rows = table_rows(records)
    settings = (f"Proxy: synthetic data (12 classes), {train} train / {val} validation clips, 8 frames x 32 x 32 px, "
                f"width 0.25, SGD lr 0.1 batch {proxy.batch_size}, {epochs} epochs; seeds {list(seeds)}; "
                f"{workers} worker processes x 1 thread on {platform.processor() or platform.machine()}. "
                f"Cyclic gate: spec defaults (tau {SRTGSpec().tau}, tolerance {SRTGSpec().tolerance}, quorum "
                f"{SRTGSpec().quorum}, align loss {SRTGSpec().align_loss}, gate_norm {SRTGSpec().gate_norm}).")
    if report_only and len(records) < len(trials):
        settings += f" **Partial: {len(records)} of {len(trials)} trials finished** (the seeds column says which rows)."
    write_report(out_dir, "srtg", _markdown(rows, settings))
    (out_dir / "srtg.json").write_text(json.dumps({"settings": settings, "shape": PAPER_SHAPE, "rows": rows}, indent=1))
    return {"rows": len(rows), "trials": len(records), "report": str(out_dir / "srtg.md")}
