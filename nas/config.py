"""``SearchConfig``: every setting of one search, resolved, validated and stored in ``search.yaml``.

A search config is composed of parts, and each component of a search receives only the part it uses:

* :class:`Problem`: what is optimised and under which limits (objectives, constraints, the deployment shape
  and latency profile the costs are measured at, the baselines measured beside the search);
* ``proxy``: a :class:`runners.proxy.ProxyConfig`, the proxy training every trial runs (the trial sets only
  its own seed, threads and device on it);
* :class:`DataSource`: the proxy data (synthetic or a prepared cache);
* :class:`SchedulerConfig`: the rung rule (costaware, moasha, asha, fifo, topk) and its rungs;
* :class:`Execution`: where trials run (Ray address, resources per trial, concurrency, Optuna storage).

The command line and ``search.yaml`` speak flat *flags* (``proxy_epochs``, ``max_gmacs``, ...; the ``nas search``
options): :meth:`SearchConfig.from_flags` builds a config from them (validated with the flag's name in the
message) and :meth:`SearchConfig.to_dict` writes them back, so the ``config`` section of ``search.yaml``
is the same flat mapping it always was and old runs resume (``docs/architecture.md``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.objectives import CONSTRAINTS, OBJECTIVES
from runners.proxyconfig import ProxyConfig, ProxyConfigError
from runners.shape import parse_shape, shape_label
from space.errors import UserInputError

SAMPLERS = ("tpe", "nsga2", "gp", "random")
# Samplers that are asked every parameter of the space, used or not (SearchSpace.sample_flat): a genetic
# sampler crosses over only the parameters all trials share, in a conditional space ``family`` alone.
FLAT_SAMPLERS = ("nsga2",)
SCHEDULERS = ("moasha", "asha", "fifo", "costaware", "topk")
EXECUTORS = ("ray", "local")  # nas.executors: Ray Tune (the default; a cluster) or a local process pool
SEARCH_PROXY = ProxyConfig(epochs=4, width_mult=0.25, frames=16, size=32, batch_size=32, lr=0.05)


# Config fields whose ``nas search`` flag is not the field's name with dashes (the unit suffix is dropped).
_FLAG_NAMES = {"time_budget_s": "--time-budget", "heartbeat_interval_s": "--heartbeat-interval"}


def _flag(name: str) -> str:
    """The ``nas search`` flag that sets the config field ``name``: every message names the flag a user typed."""
    return _FLAG_NAMES.get(name, "--" + name.replace("_", "-"))


def _check_finite(values: dict[str, object]) -> None:
    """Non-finite numbers are bad input (README, Guarantees: hostile input), whatever the setting."""
    for name, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise UserInputError(f"{_flag(name)} {value} is not allowed; allowed: a finite number")


def _check_at_least(values: dict[str, object], low: int) -> None:
    for name, value in values.items():
        if value < low:  # type: ignore[operator]
            raise UserInputError(f"{_flag(name)} {value} is not allowed; allowed: an integer >= {low}")


@dataclass(frozen=True)
class Problem:
    """What is optimised and under which limits; costs are those of the deployment model at ``deploy_shape``."""

    objectives: tuple[str, ...] = ("accuracy", "gmacs", "latency")
    deploy_shape: tuple[int, int, int] = (16, 112, 112)
    latency_profile: str = "cpu-quick"
    max_gmacs: float | None = None
    max_params: float | None = None  # millions
    max_latency_ms: float | None = None
    baselines: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_finite({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        objectives = tuple(self.objectives)
        unknown = [o for o in objectives if o not in OBJECTIVES]
        if unknown:
            raise UserInputError(f"--objectives: unknown {', '.join(unknown)}; allowed: 2-4 of {', '.join(OBJECTIVES)}")
        if not 2 <= len(objectives) <= 4 or len(set(objectives)) != len(objectives):
            raise UserInputError(
                f"--objectives {','.join(objectives)} is not allowed; allowed: 2-4 distinct of {', '.join(OBJECTIVES)}"
            )
        if "accuracy" not in objectives:  # costs are known before any trial: nothing would need training
            raise UserInputError(
                f"--objectives {','.join(objectives)} is not allowed: without accuracy no trial needs training; "
                "allowed: accuracy and 1-3 of gmacs, latency, params (costs alone: `nas profile`)")
        for name, limit in self.constraints.items():
            if limit <= 0:
                raise UserInputError(f"{_flag(name)} {limit} is not allowed; allowed: a number > 0")

    @property
    def constraints(self) -> dict[str, float]:
        """Active constraints: flag name -> limit."""
        limits = {"max_gmacs": self.max_gmacs, "max_params": self.max_params, "max_latency_ms": self.max_latency_ms}
        return {k: float(v) for k, v in limits.items() if v is not None and k in CONSTRAINTS}

    @property
    def needs_latency(self) -> bool:
        return "latency" in self.objectives or self.max_latency_ms is not None

    @property
    def directions(self) -> list[str]:
        return [OBJECTIVES[o].direction for o in self.objectives]


@dataclass(frozen=True)
class DataSource:
    """The proxy data: ``dataset`` ``synthetic`` (embedded, ``num_clips`` of them) or a prepared ``cache``."""

    dataset: str = "synthetic"
    root: str | None = None
    cache: str | None = None
    num_clips: int = 1200
    num_classes: int | None = None

    def __post_init__(self) -> None:
        _check_at_least({"num_clips": self.num_clips}, 1)


@dataclass(frozen=True)
class SchedulerConfig:
    """The rung rule: trials are compared at ``grace_period * reduction_factor**k`` epochs."""

    name: str = "costaware"  # the default from the recorded benchmarks (README, "Decisions"; docs/search-space.md)
    grace_period: int = 1
    reduction_factor: int = 2

    def __post_init__(self) -> None:
        if self.name not in SCHEDULERS:
            raise UserInputError(f"--scheduler {self.name!r} is not allowed; allowed: {', '.join(SCHEDULERS)}")
        _check_at_least({"grace_period": self.grace_period}, 1)
        if self.reduction_factor < 2:
            raise UserInputError(f"--reduction-factor {self.reduction_factor} is not allowed; allowed: >= 2")

    def rungs(self, max_epochs: int) -> list[int]:
        """Epochs at which the scheduler compares trials (:func:`nas.core.rungs.rung_levels`: the one definition)."""
        from nas.core.rungs import rung_levels

        return [int(level) for level in rung_levels(self.grace_period, self.reduction_factor, max_epochs)]


@dataclass(frozen=True)
class Execution:
    """Where and how trials run; may change between attempts of one run (``--resume --address``)."""

    address: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    storage: str | None = None
    heartbeat_interval_s: int = 10  # the driver's beat for its RUNNING trials; stale after 3 missed (nas.heartbeat)
    executor: str = "ray"

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise UserInputError(f"--executor {self.executor!r} is not allowed; allowed: {', '.join(EXECUTORS)}")
        if self.executor == "local" and self.address:
            raise UserInputError("--executor local runs on this machine; --address joins a Ray cluster: use one")
        _check_finite({"cpus_per_trial": self.cpus_per_trial, "gpus_per_trial": self.gpus_per_trial})
        if not isinstance(self.heartbeat_interval_s, int) or self.heartbeat_interval_s < 1:
            raise UserInputError(
                f"--heartbeat-interval {self.heartbeat_interval_s} is not allowed; allowed: an integer >= 1 (seconds)")
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0:
            raise UserInputError("--cpus-per-trial must be > 0 and --gpus-per-trial >= 0")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise UserInputError(f"--max-concurrent {self.max_concurrent} is not allowed; allowed: >= 1")


_PARTS = ("problem", "proxy", "data", "scheduler", "execution")  # the fields of SearchConfig that are parts

# flag (a ``nas search`` option, a key of search.yaml's ``config``) -> (part, field of that part)
PART_FLAGS: dict[str, tuple[str, str]] = {
    **{name: ("problem", name) for name in ("objectives", "deploy_shape", "latency_profile", "max_gmacs",
                                             "max_params", "max_latency_ms", "baselines")},
    "proxy_epochs": ("proxy", "epochs"),
    "proxy_width": ("proxy", "width_mult"),
    "proxy_frames": ("proxy", "frames"),
    "proxy_size": ("proxy", "size"),
    "proxy_batch_size": ("proxy", "batch_size"),
    "proxy_lr": ("proxy", "lr"),
    "data": ("data", "dataset"),
    **{name: ("data", name) for name in ("root", "cache", "num_clips", "num_classes")},
    "scheduler": ("scheduler", "name"),
    **{name: ("scheduler", name) for name in ("grace_period", "reduction_factor")},
    **{name: ("execution", name) for name in ("address", "cpus_per_trial", "gpus_per_trial", "max_concurrent",
                                               "storage", "heartbeat_interval_s", "executor")},
}  # fmt: skip


@dataclass(frozen=True)
class SearchConfig:
    """What ``nas search`` was asked to do. Frozen; ``to_dict()`` is what ``search.yaml`` stores."""

    name: str = "search"  # the run directory's folder under runs_dir
    runs_dir: str = "runs"
    study_name: str | None = None  # the Optuna study's name, fixed at creation (None: ``name``); a renamed run keeps it
    space: str = "joint"
    trials: int = 20
    time_budget_s: float | None = None
    sampler: str = "tpe"
    seed: int = 0
    retries: int = 0
    max_resamples: int = 200
    mlflow: str | None = None  # MLflow tracking URI (nas.tracking, docs/tracking.md); None: not tracked
    warm_start: str | None = None  # a run directory or a recorded table whose results start the study (nas.warmstart)
    problem: Problem = field(default_factory=Problem)
    proxy: ProxyConfig = SEARCH_PROXY
    data: DataSource = field(default_factory=DataSource)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    execution: Execution = field(default_factory=Execution)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_finite({"time_budget_s": self.time_budget_s})
        if self.sampler not in SAMPLERS:
            raise UserInputError(f"--sampler {self.sampler!r} is not allowed; allowed: {', '.join(SAMPLERS)}")
        _check_at_least({"trials": self.trials}, 1)
        if not 0 <= self.seed < 2**32:  # numpy's, torch's and Optuna's seeds are unsigned 32-bit
            raise UserInputError(f"--seed {self.seed} is not allowed; allowed: an integer from 0 to {2**32 - 1}")
        if self.retries < 0:
            raise UserInputError(f"--retries {self.retries} is not allowed; allowed: >= 0")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise UserInputError(f"--time-budget {self.time_budget_s} is not allowed; allowed: seconds > 0")
        if self.warm_start is not None and not str(self.warm_start).strip():
            raise UserInputError("--warm-start '' is not allowed; allowed: a run directory or a recorded table "
                                 "(demo, small, a table.parquet)")
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise UserInputError(f"--name {self.name!r} is not allowed; allowed: a plain folder name")
        if self.scheduler.grace_period > self.proxy.epochs:
            raise UserInputError(f"--grace-period {self.scheduler.grace_period} is more than --proxy-epochs "
                                 f"{self.proxy.epochs}; allowed: a grace period of at most the proxy epochs")

    @property
    def study(self) -> str:
        """The Optuna study's name: chosen once when the run is created, never taken from the folder again."""
        return self.study_name or self.name

    @property
    def rungs(self) -> list[int]:
        return self.scheduler.rungs(self.proxy.epochs)

    # ---- flags: the command line's and search.yaml's flat view ----------------------------------------

    @classmethod
    def from_flags(cls, **flags: Any) -> "SearchConfig":
        """A config from ``nas search``'s flags (``proxy_epochs=3, max_gmacs=5.0, ...``); unset ones default."""
        top = {f.name for f in dataclasses.fields(cls)} - set(_PARTS)
        unknown = set(flags) - top - set(PART_FLAGS)
        if unknown:
            raise TypeError(f"SearchConfig.from_flags: unknown flags {', '.join(sorted(unknown))}")
        parts: dict[str, dict[str, Any]] = {part: {} for part in _PARTS}
        for flag, value in flags.items():
            if flag in PART_FLAGS:
                part, name = PART_FLAGS[flag]
                parts[part][name] = tuple(value) if name in ("objectives", "baselines") else value
        return cls(
            **{k: v for k, v in flags.items() if k in top},
            problem=Problem(**parts["problem"]),
            proxy=_proxy(parts["proxy"]),
            data=DataSource(**parts["data"]),
            scheduler=SchedulerConfig(**parts["scheduler"]),
            execution=Execution(**parts["execution"]),
        )

    def flags(self) -> dict[str, Any]:
        """Every flag's value (the inverse of :meth:`from_flags`)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                               if f.name not in _PARTS}
        for flag, (part, name) in PART_FLAGS.items():
            out[flag] = getattr(getattr(self, part), name)
        return out

    def replace(self, **flags: Any) -> "SearchConfig":
        """This config with some flags changed (``config.replace(address=..., max_concurrent=1)``)."""
        return SearchConfig.from_flags(**{**self.flags(), **flags})

    def to_dict(self) -> dict[str, Any]:
        d = self.flags()
        d["objectives"] = list(self.problem.objectives)
        d["baselines"] = list(self.problem.baselines)
        d["deploy_shape"] = shape_label(self.problem.deploy_shape)
        d["extra"] = dict(self.extra)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SearchConfig":
        """Read back ``to_dict()`` (search.yaml's ``config``); keys a newer or older version wrote are ignored."""
        known = {f.name for f in dataclasses.fields(cls)} - set(_PARTS) | set(PART_FLAGS)
        data = {k: v for k, v in data.items() if k in known}
        data["objectives"] = tuple(data.get("objectives", Problem.objectives))
        data["baselines"] = tuple(data.get("baselines", ()))
        if isinstance(data.get("deploy_shape"), str):
            data["deploy_shape"] = parse_shape(data["deploy_shape"].split("x", 2)[-1])
        elif data.get("deploy_shape") is not None:
            data["deploy_shape"] = tuple(data["deploy_shape"])
        return cls.from_flags(**data)


def _proxy(fields: dict[str, Any]) -> ProxyConfig:
    """The search's proxy with the flags given; :class:`ProxyConfig` validates it (once), and its error is told
    with the flag the user typed (``--proxy-width 2 is not allowed; allowed: 0 < w <= 1``)."""
    flag_of_field = {name: flag for flag, (part, name) in PART_FLAGS.items() if part == "proxy"}
    try:
        return dataclasses.replace(SEARCH_PROXY, **fields)
    except ProxyConfigError as error:
        if error.field not in flag_of_field:
            raise
        raise UserInputError(f"{_flag(flag_of_field[error.field])} {error.value} is not allowed; "
                             f"allowed: {error.allowed}") from None

def load_run_config(run_dir: Path) -> SearchConfig:
    """The config a run was started with (``nas search --resume``), wherever its folder now is.

    The folder may have been moved or renamed: the run's name is its folder's, but the study keeps the name
    it was created with (``study_name``; runs older than that field: ``search.yaml``'s ``name``).
    """
    from nas.runmodel import RunDir

    stored = RunDir(run_dir).read_search()
    config = stored.get("config")
    if not isinstance(config, dict):
        raise UserInputError(f"{run_dir / 'search.yaml'} has no config mapping; it was not written by `nas search`")
    study_name = config.get("study_name") or stored.get("name") or config.get("name")
    return SearchConfig.from_dict({**config, "runs_dir": str(run_dir.parent), "name": run_dir.name,
                                   "study_name": str(study_name) if study_name else None})


# What may change between attempts of one run: how many trials, for how long, where and how wide they run.
# Everything else defines *what* is searched (the space, the objectives, the proxy, the data, the seed...):
# changing it mid-run would mix two searches in one study, so it is refused, never silently ignored.
RESUME_CHANGEABLE = ("trials", "time_budget_s", "executor", "address", "max_concurrent", "retries", "cpus_per_trial",
                     "gpus_per_trial", "heartbeat_interval_s", "mlflow")
_PATH_FIELDS = ("runs_dir", "space", "root", "cache", "warm_start")


def flag_of(field_name: str) -> str:
    """The ``nas search`` flag that sets a config field."""
    return _flag(field_name)


def resumed_config(stored: SearchConfig, given: dict[str, Any]) -> SearchConfig:
    """The stored config with the changes ``given`` on a resume's command line; a fixed field that differs is refused.

    A fixed flag given with the run's own value is accepted (a user repeating the whole command line).
    """
    flags = stored.flags()
    refused = [f for f, value in given.items()
               if f not in RESUME_CHANGEABLE and not _same_value(f, value, flags.get(f))]
    if refused:
        changes = ", ".join(f"{flag_of(f)} {_shown(given[f])} (the run has {_shown(flags.get(f))})"
                            for f in refused)
        raise UserInputError(
            f"cannot change {changes} on resume; only {', '.join(flag_of(f) for f in RESUME_CHANGEABLE)} may change "
            f"(start a new run with another --name to search differently)"
        )
    return stored.replace(**{f: v for f, v in given.items() if f in RESUME_CHANGEABLE})


def _same_value(field_name: str, a: Any, b: Any) -> bool:
    if field_name in _PATH_FIELDS and a is not None and b is not None:
        return str(a) == str(b) or Path(a).resolve() == Path(b).resolve()
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return tuple(a or ()) == tuple(b or ())
    return a == b


def _shown(value: Any) -> str:
    """A value as it is typed: ``accuracy,gmacs``, ``16x112x112``."""
    if isinstance(value, (list, tuple)):
        separator = "x" if value and all(isinstance(v, int) for v in value) else ","
        return separator.join(map(str, value))
    return str(value)
