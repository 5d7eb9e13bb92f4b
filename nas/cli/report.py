"""``nas report RUN [RUN ...] [--out DIR] [--open]``: a run's report, or several runs compared.

A layer over :func:`reports.build.build_report` (one run: ``RUN/report/`` or ``--out``) and
:func:`reports.compare_page.build_comparison` (two or more runs: needs ``--out``).
"""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Optional

import typer

from space.errors import UserInputError


def _trials_from_the_study(run_dir: Path, out: Optional[Path]) -> None:
    """Rebuild a missing or stale ``trials.parquet`` from the study; never replace a report with an empty one."""
    from nas.trialsfile import refresh_trials
    from nas.runmodel import RunDir

    run = RunDir(run_dir)
    if not run.exists():
        return  # build_report names the problem
    outcome = refresh_trials(run_dir)
    existing = (out or run.report_dir) / "index.html"
    if not run.trials_file.exists() and existing.exists():
        raise UserInputError(f"{run.trials_file} is missing and cannot be rebuilt ({outcome}); "
                             f"the report in {existing.parent} is kept")


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_command(
        run_dirs: list[Path] = typer.Argument(..., help="Run directories written by `nas search` (runs/NAME); two or more "
                                                        "are compared. Or one `nas bench proxy` output folder."),
        out: Optional[Path] = typer.Option(None, "--out", help="Folder to write into (default RUN/report; required to compare runs)."),
        open_: bool = typer.Option(False, "--open", help="Open index.html in the default web browser."),
    ) -> None:
        """Write a self-contained index.html, summary.md (and PNGs); works while a run is going.

        With two or more runs: their fronts and hypervolume curves on shared axes and one normalisation, a table
        of final hypervolumes and each run's best architecture (runs must share their objectives).
        """
        from reports.proxybench import is_proxy_bench, write_proxy_report

        if len(run_dirs) == 1 and is_proxy_bench(run_dirs[0]):  # its rank-correlation table and scatters
            page = write_proxy_report(run_dirs[0])
            typer.echo(f"report: {page}")
            typer.echo(f"summary: {page.with_name('proxy.md')}")
            if open_:
                webbrowser.open(page.resolve().as_uri())
            return
        for run_dir in run_dirs:
            _trials_from_the_study(run_dir, out)
        if len(run_dirs) > 1 and out is None:
            raise UserInputError(f"comparing {len(run_dirs)} runs needs --out DIR (where the comparison is written)")
        if len(run_dirs) > 1:
            from reports.compare_page import build_comparison  # plotly loads only for this command

            index = build_comparison(run_dirs, out)
        else:
            from reports.build import build_report

            index = build_report(run_dirs[0], out)
        typer.echo(f"report: {index}")
        typer.echo(f"summary: {index.with_name('summary.md')}")
        if open_:
            webbrowser.open(index.resolve().as_uri())
