"""``build_report(run_dir)``: turn a run directory into ``report/index.html``, ``summary.md`` and PNGs."""

from __future__ import annotations

from pathlib import Path

from reports.figures import build_figures
from reports.findings import analyse
from reports.html import render_html
from reports.load import load_run
from reports.markdown import render_markdown
from reports.pngs import write_pngs
from space.files import atomic_write


def build_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write ``RUN/report/`` (or ``out/``) and return the path of ``index.html``.

    Works on a finished run, a run in progress (re-run it any time) and a run with no completed trial.
    Raises :class:`reports.load.ReportInputError` when ``run_dir`` is not a run directory.
    """
    run = load_run(run_dir)
    findings = analyse(run)
    folder = Path(out) if out is not None else Path(run_dir) / "report"
    folder.mkdir(parents=True, exist_ok=True)
    pngs = write_pngs(run, findings, folder)
    atomic_write(folder / "summary.md", render_markdown(run, findings, pngs))
    index = folder / "index.html"
    atomic_write(index, render_html(run, findings, build_figures(run, findings)))
    return index
