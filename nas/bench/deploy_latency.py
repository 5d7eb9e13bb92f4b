"""Eager PyTorch vs ONNX Runtime forward latency, side by side (a section of ``nas bench costs``).

Each model is built once (seeded) and timed twice with the same weights and clip: eager with the ``cpu``
profile's forward protocol, then its ONNX export under ``ort-cpu`` (same batch, clip, thread count, 1 s
warm-up by time, 20 runs, median / p90 / CV). Five catalog models covering every family: timing the
whole catalog (69 models, the largest at ~150 GMACs per clip) would take hours on a 2-core machine,
and each ONNX export alone takes 10-60 s there.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import torch

from runners.latency import LatencyProfile, get_profile, hardware_fingerprint, time_model, time_onnx_model
from space import CATALOG, build_model

DEPLOY_MODELS = ("r3d-18", "r2plus1d-18", "srtg-r3d-18-final", "mtnet-32", "mtnet-64-g8")
QUICK_MODELS = ("r3d-18", "srtg-r3d-18-final")


def side_by_side_profiles(quick: bool) -> tuple[LatencyProfile, LatencyProfile]:
    """(eager, onnxruntime): ``cpu`` forward-only and ``ort-cpu``; ``quick`` shrinks the clip and the runs."""
    eager = dataclasses.replace(get_profile("cpu"), name="cpu (forward)", train=False)
    ort = get_profile("ort-cpu")
    if quick:
        eager = dataclasses.replace(eager, shape=(8, 64, 64), warmup_s=0.2, runs=10)
        ort = dataclasses.replace(ort, shape=(8, 64, 64), warmup_s=0.2, runs=10)
    return eager, ort


def eager_vs_onnxruntime(*, quick: bool = False, progress=None) -> dict[str, Any]:
    """Rows of (arch, eager median / p90 / CV, ORT median / p90 / CV, ORT / eager), plus the machine's state."""
    eager_profile, ort_profile = side_by_side_profiles(quick)
    names = QUICK_MODELS if quick else DEPLOY_MODELS
    task = progress.add_task("eager vs ONNX Runtime", total=len(names)) if progress else None
    load_before = os.getloadavg()
    rows = []
    for name in names:
        torch.manual_seed(0)
        model = build_model(CATALOG[name], num_classes=400).eval()
        eager, _ = time_model(model, eager_profile)
        ort = time_onnx_model(model, ort_profile)
        rows.append({
            "arch": name,
            "eager_ms_median": round(eager.median_ms, 1),
            "eager_ms_p90": round(eager.p90_ms, 1),
            "eager_cv": round(eager.cv, 3),
            "ort_ms_median": round(ort.median_ms, 1),
            "ort_ms_p90": round(ort.p90_ms, 1),
            "ort_cv": round(ort.cv, 3),
            "ort_over_eager": round(ort.median_ms / eager.median_ms, 3),
        })  # fmt: skip
        if progress is not None:
            progress.advance(task)
    return {
        "input": eager_profile.input_label,
        "threads": eager_profile.threads,
        "runs": eager_profile.runs,
        "warmup_s": eager_profile.warmup_s,
        "machine": hardware_fingerprint(ort_profile).label(),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rows": rows,
    }
