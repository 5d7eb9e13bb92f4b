"""``SearchConfig``: every setting of one search, resolved, validated and stored in ``search.yaml``."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from nas.objectives import CONSTRAINTS, OBJECTIVES
from runners.costs import parse_shape, shape_label
from space.errors import UserInputError

SAMPLERS = ("tpe", "nsga2", "gp", "random")
SCHEDULERS = ("moasha", "asha", "fifo")


@dataclass(frozen=True)
class SearchConfig:
    """What ``nas search`` was asked to do. Frozen; ``to_dict()`` is what ``search.yaml`` stores."""

    name: str = "search"
    runs_dir: str = "runs"
    space: str = "joint"
    trials: int = 20
    time_budget_s: float | None = None
    objectives: tuple[str, ...] = ("accuracy", "gmacs", "latency")
    sampler: str = "tpe"
    scheduler: str = "moasha"
    seed: int = 0
    # data
    data: str = "synthetic"
    root: str | None = None
    cache: str | None = None
    num_clips: int = 1200
    num_classes: int | None = None
    # proxy
    proxy_epochs: int = 4
    proxy_width: float = 0.25
    proxy_frames: int = 16
    proxy_size: int = 32
    proxy_batch_size: int = 32
    proxy_lr: float = 0.05
    # costs
    deploy_shape: tuple[int, int, int] = (16, 112, 112)
    latency_profile: str = "cpu-quick"
    max_gmacs: float | None = None
    max_params: float | None = None
    max_latency_ms: float | None = None
    baselines: tuple[str, ...] = ()
    # scheduler
    grace_period: int = 1
    reduction_factor: int = 2
    # execution
    address: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    storage: str | None = None
    retries: int = 0
    heartbeat_interval_s: int = 10  # the driver's beat for its RUNNING trials; stale after 3 missed (nas.settle)
    max_resamples: int = 200
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise UserInputError(f"--{f.name.replace('_', '-')} {value} is not allowed; allowed: a finite number")
        self._check_objectives()
        if self.sampler not in SAMPLERS:
            raise UserInputError(f"--sampler {self.sampler!r} is not allowed; allowed: {', '.join(SAMPLERS)}")
        if self.scheduler not in SCHEDULERS:
            raise UserInputError(f"--scheduler {self.scheduler!r} is not allowed; allowed: {', '.join(SCHEDULERS)}")
        positive = {"trials": self.trials, "proxy-epochs": self.proxy_epochs, "proxy-frames": self.proxy_frames,
                    "proxy-size": self.proxy_size, "proxy-batch-size": self.proxy_batch_size,
                    "num-clips": self.num_clips, "grace-period": self.grace_period}
        for flag, value in positive.items():
            if value < 1:
                raise UserInputError(f"--{flag} {value} is not allowed; allowed: an integer >= 1")
        if not 0 < self.proxy_width <= 1:
            raise UserInputError(f"--proxy-width {self.proxy_width} is not allowed; allowed: 0 < w <= 1")
        if self.reduction_factor < 2:
            raise UserInputError(f"--reduction-factor {self.reduction_factor} is not allowed; allowed: >= 2")
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0:
            raise UserInputError("--cpus-per-trial must be > 0 and --gpus-per-trial >= 0")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise UserInputError(f"--max-concurrent {self.max_concurrent} is not allowed; allowed: >= 1")
        if not isinstance(self.heartbeat_interval_s, int) or self.heartbeat_interval_s < 1:
            raise UserInputError(
                f"--heartbeat-interval {self.heartbeat_interval_s} is not allowed; allowed: an integer >= 1 (seconds)")
        if self.retries < 0:
            raise UserInputError(f"--retries {self.retries} is not allowed; allowed: >= 0")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise UserInputError(f"--time-budget {self.time_budget_s} is not allowed; allowed: seconds > 0")
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise UserInputError(f"--name {self.name!r} is not allowed; allowed: a plain folder name")
        for flag, limit in self.constraints.items():
            if limit <= 0:
                raise UserInputError(f"--{flag.replace('_', '-')} {limit} is not allowed; allowed: a number > 0")

    def _check_objectives(self) -> None:
        objectives = tuple(self.objectives)
        unknown = [o for o in objectives if o not in OBJECTIVES]
        if unknown:
            raise UserInputError(
                f"--objectives: unknown {', '.join(unknown)}; allowed: 2-4 of {', '.join(OBJECTIVES)}"
            )
        if not 2 <= len(objectives) <= 4 or len(set(objectives)) != len(objectives):
            raise UserInputError(
                f"--objectives {','.join(objectives)} is not allowed; allowed: 2-4 distinct of {', '.join(OBJECTIVES)}"
            )

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

    @property
    def rungs(self) -> list[int]:
        """Epochs at which the scheduler compares trials (grace * eta^k below the proxy budget)."""
        rungs, epoch = [], self.grace_period
        while epoch < self.proxy_epochs:
            rungs.append(epoch)
            epoch *= self.reduction_factor
        return rungs

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["objectives"] = list(self.objectives)
        d["baselines"] = list(self.baselines)
        d["deploy_shape"] = shape_label(self.deploy_shape)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SearchConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["objectives"] = tuple(data.get("objectives", cls.objectives))
        data["baselines"] = tuple(data.get("baselines", ()))
        if isinstance(data.get("deploy_shape"), str):
            data["deploy_shape"] = parse_shape(data["deploy_shape"].split("x", 2)[-1])
        return cls(**data)

    def replace(self, **changes: Any) -> "SearchConfig":
        return dataclasses.replace(self, **changes)
