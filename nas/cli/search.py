"""``nas search``, ``nas runs``, ``nas trials``: thin layers over :mod:`nas.search` and :mod:`nas.runs`.

The search, the run model and the report load inside the commands (they import torch, Optuna, Ray, pandas); the
options' defaults come from :class:`nas.config.SearchConfig`, which imports none of them, so ``nas search --help``
stays quick (docs/architecture.md, "Startup").
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from nas.cli.output import console as output_console
from nas.cli.output import print_json, print_table

from nas.config import SearchConfig, load_run_config, resumed_config
from runners.shape import parse_shape
from space.errors import UserInputError


def _csv(text: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (text or "").split(",") if p.strip())


_FIELD_OF_PARAM = {"time_budget": "time_budget_s", "heartbeat_interval": "heartbeat_interval_s"}  # CLI parameter -> SearchConfig field, where they differ


def _given_on_command_line(ctx: typer.Context) -> list[str]:
    """The parameters the user typed (not defaults; ``$RAY_ADDRESS`` counts as typed ``--address``): on resume,
    exactly these are compared with the run."""
    # By the enum member's name, not by importing click's ``ParameterSource``: typer >= 0.20 vendors click as its
    # private ``typer._click`` (see :func:`nas.cli.click_error_kind`).
    return [p.name for p in ctx.command.params
            if getattr(ctx.get_parameter_source(p.name), "name", None) in ("COMMANDLINE", "ENVIRONMENT")]


def register(app: typer.Typer) -> None:
    register_search(app)
    register_runs(app)
    register_demo(app)


DEFAULTS = SearchConfig()  # the CLI's defaults are the dataclass's, never restated


def register_search(app: typer.Typer) -> None:
    @app.command("search")
    def search_command(
        ctx: typer.Context,
        space: str = typer.Option(DEFAULTS.space, help="Search space: a preset (srtg, mtnet, joint, demo) or a YAML file."),
        name: Optional[str] = typer.Option(None, help="Run name: the folder under --runs-dir (default: the space name)."),
        runs_dir: Path = typer.Option(Path(DEFAULTS.runs_dir), help="Where run directories live."),
        trials: int = typer.Option(DEFAULTS.trials, help="Trials that train (COMPLETE, PRUNED, FAIL after retries)."),
        time_budget: Optional[float] = typer.Option(None, help="Seconds: no trial starts after it; running ones stop at their next rung."),
        objectives: str = typer.Option(",".join(DEFAULTS.problem.objectives), help="accuracy and 1-3 of gmacs, latency, params."),
        sampler: str = typer.Option(DEFAULTS.sampler, help="tpe, nsga2, gp or random."),
        scheduler: str = typer.Option(DEFAULTS.scheduler.name, help="costaware (stop only trials clearly beaten at no less cost), moasha, asha, fifo or topk (keep the top 5 after the first rung)."),
        data: str = typer.Option(DEFAULTS.data.dataset, help="Dataset: synthetic (embedded) or a prepared real dataset."),
        root: Optional[Path] = typer.Option(None, help="Root folder of a real dataset (prepare it with `nas data prepare`)."),
        cache: Optional[Path] = typer.Option(None, help="A cache written by `nas data prepare`."),
        num_clips: int = typer.Option(DEFAULTS.data.num_clips, help="Synthetic clips (train + validation)."),
        proxy_epochs: int = typer.Option(DEFAULTS.proxy.epochs, help="Proxy training budget in epochs (the highest fidelity)."),
        proxy_width: float = typer.Option(DEFAULTS.proxy.width_mult, help="Channel multiplier of the proxy models."),
        proxy_frames: int = typer.Option(DEFAULTS.proxy.frames, help="Frames per proxy clip."),
        proxy_size: int = typer.Option(DEFAULTS.proxy.size, help="Proxy clip height and width in pixels."),
        proxy_batch_size: int = typer.Option(DEFAULTS.proxy.batch_size, help="Proxy batch size."),
        proxy_lr: float = typer.Option(DEFAULTS.proxy.lr, help="Proxy learning rate."),
        deploy_shape: str = typer.Option("x".join(map(str, DEFAULTS.problem.deploy_shape)), help="TxHxW of the deployment clip, for GMACs."),
        latency_profile: str = typer.Option(DEFAULTS.problem.latency_profile, help="Latency profile (see `nas profile --help`)."),
        max_gmacs: Optional[float] = typer.Option(None, help="Constraint: GMACs at the deployment shape."),
        max_params: Optional[float] = typer.Option(None, help="Constraint: parameters, in millions."),
        max_latency_ms: Optional[float] = typer.Option(None, help="Constraint: median latency in ms."),
        baselines: Optional[str] = typer.Option(None, help="Comma-separated catalog names evaluated under the same proxy."),
        grace_period: int = typer.Option(DEFAULTS.scheduler.grace_period, help="Scheduler: first rung, in epochs."),
        reduction_factor: int = typer.Option(DEFAULTS.scheduler.reduction_factor, help="Scheduler: eta (keep the top 1/eta at each rung)."),
        executor: str = typer.Option(DEFAULTS.execution.executor, help="Where trials run: ray (Ray Tune, local or --address) or local (worker processes on this machine, no Ray)."),
        address: Optional[str] = typer.Option(None, envvar="RAY_ADDRESS", show_envvar=True, help="Join an existing Ray cluster (e.g. 127.0.0.1:6379); as Ray's own tools, $RAY_ADDRESS when not given."),
        cpus_per_trial: float = typer.Option(DEFAULTS.execution.cpus_per_trial, help="CPUs per trial (also its torch threads)."),
        gpus_per_trial: float = typer.Option(DEFAULTS.execution.gpus_per_trial, help="GPUs per trial (fractional allowed; AMP on GPU)."),
        max_concurrent: Optional[int] = typer.Option(None, help="Trials running at once (default: as resources allow)."),
        storage: Optional[str] = typer.Option(None, help="Optuna storage URL (e.g. postgresql://...); default RUN/study.db."),
        mlflow: Optional[str] = typer.Option(None, help="Log the search to MLflow: a tracking server http://HOST:PORT, sqlite:///PATH, file:/PATH or a folder (needs the optional extra mlflow; docs/tracking.md)."),
        heartbeat_interval: int = typer.Option(DEFAULTS.execution.heartbeat_interval_s, help="Seconds between the driver's heartbeats for its RUNNING trials; a trial with none for 3 intervals is stale (its driver died) and `nas settle` / a resume settle it."),
        seed: int = typer.Option(DEFAULTS.seed, help="Seed of the sampler, the data and the proxies."),
        retries: int = typer.Option(DEFAULTS.retries, help="Re-run a failed trial this many times."),
        warm_start: Optional[str] = typer.Option(None, help="Start the study from known results: a run directory of the same space, objectives and proxy, or a recorded table (demo, small, a `nas bench record` table.parquet)."),
        resume: Optional[Path] = typer.Option(None, help="Resume the run in this directory (its config is reused)."),
        no_report: bool = typer.Option(False, "--no-report", help="Do not write the report at the end."),
        quiet: bool = typer.Option(False, "--quiet", help="No live progress view."),
    ) -> None:
        """Search the space for the best accuracy / cost trade-offs (Optuna on Ray Tune).

        Ctrl-C stops it (exit 130) and prints the `--resume` command. On `--resume RUN` only --trials,
        --time-budget, --executor, --address, --max-concurrent, --retries, --cpus-per-trial, --gpus-per-trial, --mlflow may change.
        """
        options = dict(locals())  # every parameter above, by name (ctx included)
        _search(_config_from_options(ctx, options), resume=resume is not None, quiet=quiet, no_report=no_report)


def _search(config: SearchConfig, *, resume: bool, quiet: bool, no_report: bool) -> None:
    """Run the search, then its report; Ctrl-C exits 130 after printing the resume command."""
    from nas.interruption import INTERRUPT_EXIT_CODE, SearchInterrupted
    from nas.search import run_search

    try:
        outcome = run_search(config, resume=resume, show_progress=not quiet)
    except SearchInterrupted as stopped:
        print(f"{stopped}", file=sys.stderr, flush=True)
        sys.exit(INTERRUPT_EXIT_CODE)
    _report_search(outcome, write_report=not no_report)


def register_runs(app: typer.Typer) -> None:
    @app.command("runs")
    def runs_command(
        runs_dir_argument: Optional[Path] = typer.Argument(None, metavar="[RUNS_DIR]", help="Same as --runs-dir.", show_default=False),
        runs_dir: Path = typer.Option(Path(DEFAULTS.runs_dir), "--runs-dir", help="Where run directories live (as `nas search --runs-dir`)."),
        as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
    ) -> None:
        """List run directories with their progress."""
        from nas.runs import list_runs, run_record, runs_table

        runs = list_runs(runs_dir_argument or runs_dir)
        if as_json:
            print_json([run_record(run) for run in runs])
            return
        print_table(runs_table(runs))

    @app.command("trials")
    def trials_command(
        run: Path = typer.Argument(..., help="A run directory."),
        top: Optional[int] = typer.Option(None, help="Only the N most accurate completed trials."),
        front: bool = typer.Option(False, "--front", help="Only the Pareto front."),
        as_json: bool = typer.Option(False, "--json", help="Print the rows of trials.parquet as a JSON list."),
    ) -> None:
        """Print a run's trials as a table (or JSON: every trials.parquet column, docs/run-directory.md)."""
        from nas.runs import select_trials, trials_table

        if as_json:
            frame = select_trials(run, top=top, front=front)
            print_json([dict(zip(frame.columns, values)) for values in frame.itertuples(index=False, name=None)])
            return
        print_table(trials_table(run, top=top, front=front))


def _search_flags(o: dict) -> dict:
    """The options of ``nas search`` (by parameter name) as :meth:`SearchConfig.from_flags` takes them."""
    return dict(
        name=o["name"] or Path(o["space"]).stem, runs_dir=str(o["runs_dir"]), space=o["space"], trials=o["trials"],
        time_budget_s=o["time_budget"], objectives=_csv(o["objectives"]), sampler=o["sampler"],
        scheduler=o["scheduler"], seed=o["seed"], data=o["data"], root=str(o["root"]) if o["root"] else None,
        cache=str(o["cache"]) if o["cache"] else None, num_clips=o["num_clips"], proxy_epochs=o["proxy_epochs"],
        proxy_width=o["proxy_width"], proxy_frames=o["proxy_frames"], proxy_size=o["proxy_size"],
        proxy_batch_size=o["proxy_batch_size"], proxy_lr=o["proxy_lr"], deploy_shape=parse_shape(o["deploy_shape"]),
        latency_profile=o["latency_profile"], max_gmacs=o["max_gmacs"], max_params=o["max_params"],
        max_latency_ms=o["max_latency_ms"], baselines=_csv(o["baselines"]), grace_period=o["grace_period"],
        reduction_factor=o["reduction_factor"], executor=o["executor"], address=o["address"],
        cpus_per_trial=o["cpus_per_trial"], gpus_per_trial=o["gpus_per_trial"], max_concurrent=o["max_concurrent"],
        storage=o["storage"], retries=o["retries"], heartbeat_interval_s=o["heartbeat_interval"],
        mlflow=_tracking_uri(o["mlflow"]),
        warm_start=o["warm_start"],
    )


def _tracking_uri(text: str | None) -> str | None:
    """``--mlflow`` with a local store's path made absolute (a resume may start elsewhere)."""
    if text is None:
        return None
    from nas.tracking import normalise_uri

    return normalise_uri(text)


def _config_from_options(ctx: typer.Context, options: dict) -> SearchConfig:
    """A new run's config from every option; on ``--resume``, the run's config with the options the user typed."""
    if options["executor"] == "local" and getattr(ctx.get_parameter_source("address"), "name", None) == "ENVIRONMENT":
        options = {**options, "address": None}  # $RAY_ADDRESS is Ray's: the Ray-free executor has no use for it
    flags = _search_flags(options)
    if options["resume"] is not None:
        given = {_FIELD_OF_PARAM.get(p, p): flags[_FIELD_OF_PARAM.get(p, p)] for p in _given_on_command_line(ctx)
                 if _FIELD_OF_PARAM.get(p, p) in flags}
        return resumed_config(load_run_config(options["resume"]), given)
    root, cache, data = options["root"], options["cache"], options["data"]
    if root is not None and cache is None:
        raise UserInputError(
            f"--root {root}: proxy trials read a prepared cache, never videos; run "
            f"`nas data prepare --data {data} --root {root} --out CACHE` and pass --cache CACHE"
        )
    return SearchConfig.from_flags(**flags)


def _report_search(outcome, *, write_report: bool) -> None:
    """After a search: the report (unless ``--no-report``), why it ended early, its Pareto table, where it is."""
    from nas.runs import pareto_table
    from reports.build import build_report

    if write_report:
        build_report(outcome.run_dir)
        if outcome.tracker is not None:  # --mlflow: the report joins the search's run (docs/tracking.md)
            outcome.tracker.log_report(outcome.run_dir / "report")
    console = output_console()
    if outcome.message:
        console.print(f"[yellow]search ended early:[/yellow] {outcome.message}")
    print_table(pareto_table(outcome.run_dir), out=console)
    console.print(f"run: {outcome.run_dir}  ({outcome.counted} trials trained)")
    if write_report:
        console.print(f"report: {outcome.run_dir / 'report' / 'index.html'}")


def register_demo(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_command(
        runs_dir: Path = typer.Option(Path(DEFAULTS.runs_dir), help="Where the demo run directory goes."),
        name: str = typer.Option("demo", help="Run name (an existing demo run is resumed, not overwritten)."),
    ) -> None:
        """The demo: a small search on the embedded synthetic data, then its report (what `make demo` runs)."""
        from nas.demo import demo_config
        from nas.runs import pareto_table
        from nas.search import run_search
        from reports.build import build_report

        config = demo_config(runs_dir, name=name)
        resume = (runs_dir / name / "search.yaml").exists()
        if resume:
            output_console().print(f"resuming {runs_dir / name} (delete it for a fresh demo)")
        outcome = run_search(config, resume=resume)
        build_report(outcome.run_dir)
        console = output_console()
        print_table(pareto_table(outcome.run_dir), out=console)
        console.print(f"report: {outcome.run_dir / 'report' / 'index.html'}")
