"""``nas settle RUN``: settle the trials a dead driver left RUNNING (a layer over :func:`nas.settle.settle_run`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from nas.cli.output import console as output_console


def register(app: typer.Typer) -> None:
    @app.command("settle")
    def settle_command(
        run: Path = typer.Argument(..., help="A run directory written by `nas search`."),
        storage: Optional[str] = typer.Option(None, help="The study's storage URL as this machine reaches it (default: the run's)."),
        timeout: Optional[float] = typer.Option(None, help="Stop watching after this many seconds (default: until no trial is RUNNING)."),
    ) -> None:
        """Watch a run's study and settle every RUNNING trial whose heartbeat stopped (its driver died).

        Settled trials become FAIL `interrupted`, are not counted, and are re-run by `nas search --resume`.
        A live driver's trials keep their heartbeat and are left alone.
        """
        from nas.settle import settle_run

        if timeout is not None and timeout <= 0:
            from space.errors import UserInputError

            raise UserInputError(f"--timeout {timeout} is not allowed; allowed: seconds > 0")
        outcome = settle_run(run, storage=storage, timeout_s=timeout, say=lambda text: print(text, file=sys.stderr))
        console = output_console()
        console.print(f"settled {len(outcome.settled)} trial(s) ({outcome.settled_baselines} baseline); "
                      f"{outcome.still_running} still RUNNING"
                      + ("; trials.parquet rewritten" if outcome.exported else "; a driver holds the run"))
