"""The ``nas`` command line: a thin layer over documented Python functions.

Each topic lives in its own module (``nas/cli/catalog.py``, ``nas/cli/data.py``, ...) exposing
``register(app)``. :func:`main` applies the project's error convention (README, "A tour of the CLI"): any user
error is one line ``error: ...`` on stderr and exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import errno
import math
import sys

import typer

from nas import __version__
from space.errors import UserInputError

app = typer.Typer(
    name="nas",
    help="Neural architecture search and benchmarking for temporal 3D-CNNs (SRTG, MTNet).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

_state = {"debug": False}


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"videonas {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors."),
) -> None:
    _state["debug"] = debug


def _register_commands() -> None:
    from nas.cli import catalog, report, search, bench, space, retrain, data, profile, export, settle, confirm

    for module in (catalog, report, search, bench, space, retrain, data, profile, export, settle, confirm):
        module.register(app)


_register_commands()


def _reject_non_finite(ctx: object, param: object, value: object) -> object:
    """Every float option: ``nan`` and ``inf`` parse as floats, but no option of ours means them."""
    values = value if isinstance(value, (list, tuple)) else [value]
    for v in values:
        if isinstance(v, float) and not math.isfinite(v):
            flag = max(getattr(param, "opts", None) or [f"--{getattr(param, 'name', '?')}"], key=len)
            raise UserInputError(f"{flag} {v} is not allowed; allowed: a finite number")
    return value


def _guard_float_options(command: object) -> None:
    """Chain :func:`_reject_non_finite` in front of every parameter of every (sub)command.

    Only float options can produce a float value, so the check needs no type test.
    """
    for param in getattr(command, "params", []):
        original = param.callback

        def callback(ctx, param, value, _original=original):
            value = _reject_non_finite(ctx, param, value)
            return _original(ctx, param, value) if _original else value

        param.callback = callback
    for sub in getattr(command, "commands", {}).values():
        _guard_float_options(sub)


def cli_command() -> object:
    """The click command behind ``app``, with the checks every command shares."""
    command = typer.main.get_command(app)
    _guard_float_options(command)
    return command


def _fail(message: str) -> None:
    first_line = " ".join(str(message).strip().split("\n")[0].split()) or "failed"
    print(f"error: {first_line}", file=sys.stderr)
    sys.exit(2)


def click_error_kind(exc: BaseException) -> str | None:
    """``"help"`` (a command given no arguments: its help was shown), ``"usage"`` (any other click error: a bad
    flag or value, with ``format_message()``), or None (not click's).

    Recognised by the class names along the exception's MRO, not by importing click's classes: typer >= 0.20
    vendors click as its private ``typer._click`` (a ``click`` installed beside it, e.g. for Ray, is another
    copy whose classes typer's errors are not instances of) and re-exports no base class of them; older typer
    raises click's own. The names are click's documented exception classes, the same in both.
    """
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "NoArgsIsHelpError" in names:
        return "help"
    return "usage" if "ClickException" in names else None


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``nas`` console script and ``python -m nas``."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        cli_command().main(args=args, prog_name="nas", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        _handle(exc, debug=debug)


# Conditions of the machine a user fixes (free space, permissions, a path that is a file): one line, exit 2,
# like any other user input (README, "A tour of the CLI").
USER_FIXABLE_ERRNOS = frozenset({
    errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR,
    errno.EEXIST, errno.ENOENT, errno.ENAMETOOLONG, errno.EMFILE,
})


# SQLite's words for the same conditions, when the database (the run's study.db) meets them.
SQLITE_CONDITIONS = ("database or disk is full", "attempt to write a readonly database", "unable to open database file",
                     "disk I/O error")


def machine_condition(exc: BaseException) -> str | None:
    """The line for a condition of the machine behind ``exc`` (itself, or what it wraps: SQLAlchemy keeps the
    database's error as ``orig``, others chain it), or None when it is none of them."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in USER_FIXABLE_ERRNOS:
            return describe_os_error(current)
        words = str(current)
        for condition in SQLITE_CONDITIONS:
            if type(current).__name__ in ("OperationalError", "DatabaseError") and condition in words:
                return f"the run's database: {condition} (free space or write permission where it lives)"
        todo += [getattr(current, "orig", None), current.__cause__, current.__context__]
    return None


def describe_os_error(exc: OSError) -> str:
    """``PATH: No space left on device`` (the path the system call named, and its own words)."""
    where = exc.filename if exc.filename is not None else "a file"
    return f"{where}: {exc.strerror or exc}"


def _handle(exc: Exception, *, debug: bool) -> None:
    """User input (ours or click's): one line, exit 2. Anything else is a bug: one line, exit 1."""
    kind = click_error_kind(exc)
    if kind == "help":
        sys.exit(0)
    if debug:
        raise exc
    if isinstance(exc, UserInputError):
        _fail(str(exc))
    if kind == "usage":
        _fail(exc.format_message())  # type: ignore[attr-defined]
    condition = machine_condition(exc)
    if condition is not None:
        _fail(condition)
    print(f"error: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
    sys.exit(1)
