"""``nas report RUN_DIR [--open]``: write a run's HTML / Markdown / PNG report (a layer over ``build_report``)."""

from __future__ import annotations

import webbrowser
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_command(
        run_dir: Path = typer.Argument(..., help="A run directory written by `nas search` (runs/NAME), or a "
                                                 "`nas bench proxy` output folder."),
        open_: bool = typer.Option(False, "--open", help="Open index.html in the default web browser."),
    ) -> None:
        """Write RUN_DIR/report/index.html (self-contained), summary.md and PNGs; works while the run is going."""
        from reports.proxybench import is_proxy_bench, write_proxy_report

        if is_proxy_bench(run_dir):  # a proxy benchmark: its rank-correlation table and scatters
            page = write_proxy_report(run_dir)
            typer.echo(f"report: {page}")
            typer.echo(f"summary: {page.with_name('proxy.md')}")
            if open_:
                webbrowser.open(page.resolve().as_uri())
            return
        from reports.build import build_report  # plotly / matplotlib load only for this command

        index = build_report(run_dir)
        typer.echo(f"report: {index}")
        typer.echo(f"summary: {index.with_name('summary.md')}")
        if open_:
            webbrowser.open(index.resolve().as_uri())
