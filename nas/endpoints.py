"""``--storage`` and ``--address`` are checked before anything starts (``docs/reliability.md``).

A database URL of an unknown kind, a malformed one, or a server nobody answers at would otherwise fail deep
inside Optuna or Ray after the run directory exists (or, for Ray, wait minutes for a head node that is not
there). Both checks only read: a SQLite file is not created here, a server is only connected to.
"""

from __future__ import annotations

import socket
from pathlib import Path

from space.errors import UserInputError

CONNECT_TIMEOUT_S = 5
STORAGE_KINDS = "sqlite:///PATH, postgresql://USER@HOST/DB, mysql://USER@HOST/DB"


def check_storage(url: str) -> None:
    """Raise :class:`UserInputError` unless ``url`` is a database Optuna can open now."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise UserInputError(f"--storage {url!r} is not a database URL; allowed: {STORAGE_KINDS}") from None
    shown = parsed.render_as_string(hide_password=True)
    try:
        parsed.get_dialect()
    except NoSuchModuleError:
        raise UserInputError(f"--storage {shown}: unknown database kind {parsed.drivername!r} (or its driver is not "
                             f"installed); allowed: {STORAGE_KINDS}") from None
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise UserInputError(f"--storage {shown}: an in-memory database is not shared with the trials; "
                                 "allowed: sqlite:///PATH")
        folder = Path(parsed.database).expanduser().resolve().parent
        if not folder.is_dir():
            raise UserInputError(f"--storage {shown}: folder {folder} does not exist")
        return
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if parsed.get_backend_name() in ("postgresql", "mysql") else {}
    engine = create_engine(parsed, connect_args=connect_args)
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        reason = " ".join(str(getattr(exc, "orig", exc) or exc).split())[:200]
        raise UserInputError(f"--storage {shown}: cannot connect ({reason})") from None
    finally:
        engine.dispose()


def check_ray_address(address: str) -> None:
    """Raise :class:`UserInputError` unless ``address`` (``HOST:PORT``, ``ray://HOST:PORT`` or ``auto``) answers."""
    text = address.strip()
    if text == "auto":  # Ray's own: the cluster this machine's `ray start` left a record of
        return
    scheme, has_scheme, rest = text.partition("://")
    if has_scheme and scheme != "ray":
        raise UserInputError(f"--address {address!r}: unknown scheme {scheme + '://'!r}; allowed: HOST:PORT, "
                             "ray://HOST:PORT or auto")
    host, colon, port = (rest if has_scheme else text).rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536 or any(c.isspace() for c in host):
        raise UserInputError(f"--address {address!r} is not allowed; allowed: HOST:PORT, ray://HOST:PORT or auto "
                             "(a Ray head node, e.g. 127.0.0.1:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserInputError(f"--address {address}: no Ray head node answers at {host}:{port} ({reason}); "
                             "start one with `ray start --head` or fix the address") from None
