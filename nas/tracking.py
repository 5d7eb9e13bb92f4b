"""MLflow experiment tracking of a search (``nas search --mlflow URI``; docs/tracking.md).

Design: an idempotent *sync* from the Optuna study (the run's source of truth) to MLflow, never a stream of
events. After every change of the study the driver exports ``trials.parquet`` (:meth:`nas.search._Attempt.export`)
and hands the same table to :meth:`Tracker.update`; a thread of its own makes MLflow hold it
(:mod:`nas.mlflowsync`: one parent run for the search, one child run per trained trial, only what is missing
logged), so a resume continues the same runs and never duplicates one.

The search never waits on MLflow: the thread syncs the latest table only. A store that stops answering costs
one warning line and nothing else: the thread's calls are watched, a server silent for :data:`PROBE_AFTER_S`
is asked ``GET /health`` (and any store silent for :data:`STALL_S` is given up), and from then on nothing is
sent there. The environment is left alone (docs/architecture.md, "Environment variables in one place"), so
MLflow's own HTTP retries run out on that abandoned thread, not in the search. ``--mlflow`` is checked before
anything is created (:func:`check_tracking_uri`); mlflow is imported only then, so ``nas search --help`` stays
quick.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from nas.config import SearchConfig
from nas.mlflowsync import RunIdentity, RunSync, Snapshot, TrackingTarget, run_identity, snapshot
from nas.runmodel import RunDir
from space.errors import UserInputError

__all__ = ["TrackingTarget", "Tracker", "check_tracking_uri", "normalise_uri", "open_tracker", "resolve_target"]

EXTRA_NEEDED = "--mlflow needs the optional extra: pip install 'videonas[mlflow]'"
ALLOWED = "allowed: http(s)://HOST:PORT (an MLflow server), sqlite:///PATH, file:/PATH or a folder"
CONNECT_TIMEOUT_S = 5.0  # the check before a run starts
PROBE_AFTER_S = 3.0  # a call silent this long: ask the server's /health (2 s) whether it still lives
STALL_S = 60.0  # a call silent this long: the store is given up, whatever the probe said
THREAD = "mlflow-sync"
_HOST_PORT = re.compile(r"[\w.-]+:\d+(/.*)?")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):")

# ---- where: --mlflow checked and resolved, before anything is created -----------------------------------


def normalise_uri(text: str) -> str:
    """Local stores with absolute paths, so a resume started from another folder finds the same store."""
    kind, path = _kind(text.strip())
    if _HOST_PORT.fullmatch(text.strip()):  # a server without its scheme: resolve_target says so
        return text
    try:
        absolute = Path(path).expanduser().resolve() if path and kind in ("file", "sqlite", "folder") else None
    except (OSError, ValueError, RuntimeError):  # left as typed: resolve_target names what is wrong with it
        return text
    if absolute is None:
        return text
    return {"folder": str(absolute), "file": absolute.as_uri()}.get(kind, f"sqlite:///{absolute}")


def _kind(text: str) -> tuple[str, str]:
    """(``http``, ``sqlite``, ``file``, ``folder`` or the unknown scheme, the path of a local store)."""
    scheme = _SCHEME.match(text)
    if scheme is None or _HOST_PORT.fullmatch(text):
        return "folder", text
    name = scheme.group(1).lower()
    if name in ("http", "https"):
        return "http", ""
    if name == "sqlite":
        return "sqlite", text[len("sqlite:///"):] if text.startswith("sqlite:///") else ""
    if name == "file":
        return "file", urllib.parse.unquote(urllib.parse.urlparse(text).path)
    return name, ""


def check_tracking_uri(text: str) -> TrackingTarget:
    """Raise :class:`UserInputError` (one line) unless ``--mlflow text`` names a store MLflow can write now:
    its form, then a server's answer, then the extra.

    Imports mlflow, so its loggers are set up before the search's log takes them over (:mod:`nas.searchlog`)."""
    target = resolve_target(text)
    if target.health_url is not None:
        reason = probe(target.health_url, CONNECT_TIMEOUT_S)
        if reason is not None:
            raise UserInputError(f"--mlflow {text}: no MLflow tracking server answers there ({reason}); start "
                                 "one with `mlflow server --host 127.0.0.1 --port 5000` or fix the URI")
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise UserInputError(EXTRA_NEEDED) from None
    return target


def resolve_target(text: str) -> TrackingTarget:
    """The target ``--mlflow text`` names, its form checked (no connection made, nothing created)."""
    text = text.strip()
    kind, path = _kind(text)
    if not text:
        raise UserInputError(f"--mlflow '': empty; {ALLOWED}")
    if not text.isprintable():
        raise UserInputError(f"--mlflow {text!r}: control characters; {ALLOWED}")
    if kind == "folder" and _HOST_PORT.fullmatch(text):
        raise UserInputError(f"--mlflow {text}: a server is an http URI (http://{text}); {ALLOWED}")
    if kind == "http":
        parts = urllib.parse.urlparse(text)
        try:
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            parts = parts._replace(netloc="")
        if not parts.hostname or any(c.isspace() for c in text):
            raise UserInputError(f"--mlflow {text!r} is not a URL; {ALLOWED}")
        shown = text.replace(f":{parts.password}@", ":***@") if parts.password else text
        base = text.rstrip("/")
        return TrackingTarget(shown, base, health_url=parts._replace(path=parts.path.rstrip("/") + "/health",
                                                                     netloc=parts.netloc.rpartition("@")[2]).geturl())
    if kind not in ("sqlite", "file", "folder"):
        raise UserInputError(f"--mlflow {text}: unknown scheme {kind + '://'!r}; {ALLOWED}")
    if not path or path == ":memory:":
        raise UserInputError(f"--mlflow {text}: no path; {ALLOWED}")
    try:
        where = Path(path).expanduser().resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop, an unknown ~user
        raise UserInputError(f"--mlflow {text}: {exc}") from None
    if kind == "sqlite":
        if not where.parent.is_dir():
            raise UserInputError(f"--mlflow {text}: folder {where.parent} does not exist")
        if where.is_dir():
            raise UserInputError(f"--mlflow {text}: {where} is a folder; sqlite:///PATH names a database file")
        return TrackingTarget(text, f"sqlite:///{where}", (where.parent / f"{where.stem}-artifacts").as_uri())
    _check_folder(text, where)
    if kind == "file":
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("true", "1"):
            raise UserInputError(f"--mlflow {text}: MLflow keeps its file store read-only (maintenance mode) unless "
                                 f"MLFLOW_ALLOW_FILE_STORE=true; give the folder itself (--mlflow {where}: a SQLite "
                                 "store in it) or sqlite:///PATH")
        return TrackingTarget(text, where.as_uri())
    return TrackingTarget(text, f"sqlite:///{where / 'mlflow.db'}", (where / "mlflow-artifacts").as_uri())


def _check_folder(text: str, where: Path) -> None:
    existing = next(p for p in (where, *where.parents) if p.exists())
    if not existing.is_dir():
        raise UserInputError(f"--mlflow {text}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserInputError(f"--mlflow {text}: cannot write in {existing}")


def probe(url: str, timeout: float) -> str | None:
    """Why ``GET url`` (an MLflow server's /health) does not answer OK, or None when it does."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return None if answer.status == 200 else f"GET /health: {answer.status}"
    except urllib.error.HTTPError as exc:
        return f"GET /health: {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        reason = exc.reason
        return str(getattr(reason, "strerror", None) or reason)
    except (OSError, ValueError) as exc:  # a timeout, a reset connection
        return str(exc) or type(exc).__name__


# ---- the driver's side: hand the table over, watch the thread, warn once -----------------------------


@dataclass
class _Work:
    snapshot: Snapshot | None = None
    report: Path | None = None
    busy: bool = False
    answered_at: float = field(default_factory=time.monotonic)  # the last call that returned (or the job's start)


class Tracker:
    """The search's MLflow tracking: :meth:`update` after every change, :meth:`finish` at the end, then
    :meth:`log_report` once the report is built. None of them raises; a dead store is one warning line."""

    def __init__(self, target: TrackingTarget, run: RunDir, identity: RunIdentity) -> None:
        self.target, self.run, self.identity = target, run, identity
        self._work = _Work()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._failure: str | None = None  # set by the thread
        self._given_up = False
        self._probed_at = 0.0
        self._latest: Snapshot | None = None
        self._thread = threading.Thread(target=self._loop, name=THREAD, daemon=True)
        self._thread.start()
        retries = logging.getLogger("urllib3.connectionpool")  # a warning on stderr at each of MLflow's HTTP retries
        if _not_from_the_sync_thread not in retries.filters:  # ours say nothing: the one warning line tells it
            retries.addFilter(_not_from_the_sync_thread)

    def __getstate__(self) -> dict:  # Ray pickles the search's callbacks, and what they reach (as nas.searchlog)
        return {}

    def update(self, frame: pd.DataFrame, final_status: str | None = None) -> None:
        """Hand the run's current table to the sync (it keeps only the latest); never waits on MLflow."""
        if not self._alive():
            return
        try:
            self._latest = dataclasses.replace(snapshot(frame, self.identity), final_status=final_status)
        except Exception as exc:  # noqa: BLE001 - a table the sync cannot read stops the tracking, not the search
            self._failure = _reason(exc)
            self._alive()
            return
        self._hand(snapshot=self._latest)

    def finish(self, status: str = "FINISHED") -> None:
        """End the parent run (FINISHED; KILLED after a Ctrl-C) once MLflow holds the latest table."""
        if self._alive() and self._latest is not None:
            self._hand(snapshot=dataclasses.replace(self._latest, final_status=status))
            self._wait()

    def log_report(self, folder: Path) -> None:
        """The built report (``RUN/report``) as the parent run's ``report/`` artifact."""
        if self._alive():
            self._hand(report=folder)
            self._wait()

    def _hand(self, **job: Any) -> None:
        with self._lock:
            for key, value in job.items():
                setattr(self._work, key, value)
        self._wake.set()

    def _wait(self) -> None:
        while self._alive():
            with self._lock:
                if not self._work.busy and self._work.snapshot is None and self._work.report is None:
                    return
            time.sleep(0.1)

    def _alive(self) -> bool:
        """False once the store was given up; checks the thread on the way (the warning is printed here)."""
        if self._given_up:
            return False
        with self._lock:
            silent = time.monotonic() - self._work.answered_at if self._work.busy else 0.0
        reason = self._failure
        if reason is None and silent > PROBE_AFTER_S and self.target.health_url is not None \
                and time.monotonic() - self._probed_at > 2.0:
            self._probed_at = time.monotonic()
            reason = probe(self.target.health_url, 2.0)
        if reason is None and silent > STALL_S:
            reason = f"no answer in {STALL_S:.0f} s"
        if reason is None:
            return True
        self._given_up = True
        print(f"warning: MLflow tracking at {self.target.given} stopped answering ({reason}); the search goes on, "
              "trials are no longer logged there", file=sys.stderr, flush=True)
        return False

    def _beat(self) -> None:
        with self._lock:
            self._work.answered_at = time.monotonic()

    def _loop(self) -> None:
        sync: RunSync | None = None
        while not self._given_up:
            self._wake.wait()
            with self._lock:
                self._wake.clear()
                snap, report = self._work.snapshot, self._work.report
                self._work.snapshot = self._work.report = None
                self._work.busy, self._work.answered_at = snap is not None or report is not None, time.monotonic()
            try:
                sync = sync or RunSync(self.target, self.run, self.identity, self._beat)
                if snap is not None:
                    sync.sync(snap)
                if report is not None:
                    sync.log_report(report)
            except Exception as exc:  # noqa: BLE001 - whatever the store says, the search goes on without it
                self._failure = _reason(exc)
                return
            finally:
                with self._lock:
                    self._work.busy = False


def _reason(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:240]


def _not_from_the_sync_thread(record: logging.LogRecord) -> bool:
    return record.threadName != THREAD


def open_tracker(config: SearchConfig, run: RunDir) -> Tracker | None:
    """The tracker of ``--mlflow`` (None without it); its first sync starts at the first :meth:`Tracker.update`."""
    if config.mlflow is None:
        return None
    return Tracker(resolve_target(config.mlflow), run, run_identity(config, run.read_search(), run))
