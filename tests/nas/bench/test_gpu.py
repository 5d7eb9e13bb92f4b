"""The GPU check (nas/bench/gpu.py) on a machine without CUDA: it skips cleanly, imports only torch's world,
and its measuring pieces work on the CPU at a tiny shape (so the first GPU run is not their first run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nas.bench.gpu import ProxyShape, _markdown, precision_table, run_gpu_benchmark

REPO = Path(__file__).resolve().parents[3]
TINY = ProxyShape(batch=2, frames=4, size=16, width=0.125, num_classes=3)
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU path of the GPU check")


@no_cuda
def test_without_cuda_every_section_skips_with_one_clear_message(tmp_path):
    result = run_gpu_benchmark(tmp_path)
    assert set(result) == {"skipped"} and result["skipped"].startswith("no CUDA device")
    assert f"Skipped: {result['skipped']}." in (tmp_path / "gpu.md").read_text()
    docs_file = tmp_path / "docs" / "gpu.md"
    assert run_gpu_benchmark(tmp_path, out_file=docs_file) == result
    assert not docs_file.exists()  # an explicit report file (docs/gpu.md) keeps its GPU figures


@no_cuda
def test_the_script_runs_on_torch_alone_and_exits_zero(tmp_path):
    """``make gpu-check`` runs the file by path: no Ray, Optuna, rich, scipy, pandas, nor the ``nas`` package."""
    probe = (
        "import runpy, sys\n"
        f"sys.argv = ['gpu.py', '--out', {str(tmp_path / 'gpu.md')!r}]\n"
        "try:\n    runpy.run_path('nas/bench/gpu.py', run_name='__main__')\n"
        "except SystemExit as stop:\n    print('exit', stop.code)\n"
        "print(sorted(m for m in ('ray', 'optuna', 'rich', 'scipy', 'pandas', 'nas') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "GPU check skipped: no CUDA device" in done.stdout
    assert done.stdout.strip().splitlines()[-2:] == ["exit 0", "[]"]


def test_precision_table_measures_shares_against_same_precision_roofs():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = precision_table(torch.device("cpu"), TINY, ("mtnet-32",), steps=1, warmup_s=0.0,
                               precisions=("fp32", "bf16"))
    finally:
        torch.set_num_threads(threads)
    assert [(r["family"], r["precision"]) for r in rows] == [("mtnet-32", "fp32"), ("mtnet-32", "bf16")]
    for row in rows:  # a tiny proxy's share rounds to 0.0% of a CPU roof: check the measured pieces
        assert row["ms_median"] > 0 and row["conv_roof_GMAC_per_s"] > 0 and row["matmul_roof_GMAC_per_s"] > 0
        assert row["conv_roof_pct"] >= 0 and row["matmul_roof_pct"] >= 0


def test_report_shows_tables_skips_and_the_pytest_summary():
    result = {"machine": "GPU X", "proxy": TINY.label, "wall_s": 1.0, "sections": {
        "CUDA tests": {"exit_code": 0, "summary": "5 passed", "tail": ["5 passed"]},
        "Proxy step": {"rows": [{"family": "mtnet-32", "precision": "fp32", "ms_median": 1.0}]},
        "Sharing": {"skipped": "10 s of the 480 s budget left"}}}
    report = _markdown(result)
    assert "pytest exit code 0: 5 passed" in report and "| mtnet-32 | fp32 | 1.0 |" in report
    assert "Skipped: 10 s of the 480 s budget left" in report
