"""``nas confirm RUN``: train a finished run's front candidates with further seeds and re-rank them (:mod:`nas.confirm`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from nas.cli.output import console as output_console
from nas.cli.output import print_table


def register(app: typer.Typer) -> None:
    @app.command("confirm")
    def confirm_command(
        run: Path = typer.Argument(..., help="A run directory written by `nas search`."),
        seeds: int = typer.Option(2, help="Further seeds per candidate (the search's own run is averaged in too)."),
        top: int = typer.Option(8, help="Candidates: the run's Pareto front, most accurate first, at most this many."),
        workers: int = typer.Option(1, help="Trials training at once."),
        executor: Optional[str] = typer.Option(None, help="ray or local (default: the run's)."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress lines."),
    ) -> None:
        """Confirm a run's front: its candidates trained with more seeds, averaged, and the front computed again.

        Writes RUN/confirm/table.parquet (resumable: run it again after an interruption, or with more --seeds)
        and RUN/confirmed.parquet (the front before and after); `nas report RUN` then shows both.
        """
        from nas.config import EXECUTORS
        from nas.confirm import confirm_front
        from space.errors import UserInputError

        if executor is not None and executor not in EXECUTORS:
            raise UserInputError(f"--executor {executor!r} is not allowed; allowed: {', '.join(EXECUTORS)}")
        outcome = confirm_front(run, seeds=seeds, top=top, workers=workers, executor=executor, show_progress=not quiet)
        print_table(_table(outcome.confirmed, run), out=output_console())
        output_console().print(f"trained {outcome.trained} proxy run(s); {run / 'confirmed.parquet'} written "
                               f"(`nas report {run}` shows the front before and after)")


def _table(confirmed, run: Path):
    from rich.table import Table

    table = Table(title=f"{run}: the front before and after confirmation",
                  caption="accuracy: mean over the seeds trained ± its standard error; search: the search's one run")
    for column in ("id", "accuracy", "search", "seeds", "GMACs", "front before", "front after"):
        table.add_column(column, no_wrap=True)
    for row in confirmed.itertuples():
        se = f" ± {100 * row.accuracy_se:.1f}" if row.accuracy_se == row.accuracy_se and row.accuracy_se else ""
        table.add_row(str(row.trial_id), f"{100 * row.accuracy:.1f}%{se}", f"{100 * row.accuracy_search:.1f}%",
                      str(row.seeds), f"{row.gmacs:.4g}", "yes" if row.front_before else "-",
                      "yes" if row.front_after else "-")
    return table
