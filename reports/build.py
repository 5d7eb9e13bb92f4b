"""``build_report(run_dir)``: turn a run directory into ``report/index.html``, ``summary.md`` and PNGs.

The folder is built beside its place and swapped in whole (:func:`space.files.atomic_dir`): a report cut
short (a full disk, a read-only folder) leaves the earlier report byte-identical (docs/reports.md).
"""

from __future__ import annotations

from pathlib import Path

from reports.figures import build_figures
from reports.findings import analyse
from reports.html import render_html
from reports.load import load_run
from reports.markdown import render_markdown
from reports.pngs import write_pngs
from space.errors import UserInputError
from space.files import atomic_dir, atomic_write

REPORT_FILES = ("index.html", "summary.md")  # and *.png: everything a report writes


def build_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write ``RUN/report/`` (or ``out/``) and return the path of ``index.html``.

    Works on a finished run, a run in progress (re-run it any time) and a run with no completed trial.
    Raises :class:`reports.load.ReportInputError` when ``run_dir`` is not a run directory.
    """
    folder = Path(out) if out is not None else Path(run_dir) / "report"
    check_report_folder(folder)
    run = load_run(run_dir)
    findings = analyse(run)
    with atomic_dir(folder) as staged:
        pngs = [folder / p.name for p in write_pngs(run, findings, staged)]
        atomic_write(staged / "summary.md", render_markdown(run, findings, pngs))
        atomic_write(staged / "index.html", render_html(run, findings, build_figures(run, findings)))
    return folder / "index.html"


def check_report_folder(folder: Path) -> None:
    """The report replaces ``folder`` as a whole, so it must be new, empty or an earlier report: never a file,
    never a folder holding anything else (a user's own files would be lost)."""
    if folder.exists() and not folder.is_dir():
        raise UserInputError(f"report folder {folder} is a file, not a folder; choose a new folder or an earlier report's")
    if folder.is_dir():
        foreign = sorted(p.name for p in folder.iterdir() if p.name not in REPORT_FILES and p.suffix != ".png")
        if foreign:
            raise UserInputError(f"{folder} holds files that are not a report's ({', '.join(foreign[:3])}); "
                                 "choose a new folder or an earlier report's")
