"""Architecture specs: frozen, validated, JSON/YAML-serialisable values with a stable key.

An :class:`ArchSpec` names one point of the search space. Two subclasses exist, one per family:
:class:`ResNet3DSpec` (r3d / r(2+1)d ResNets, optionally carrying SRTG blocks) and :class:`MTNetSpec`.
``spec.key()`` hashes the canonical JSON (every default filled in, floats canonicalised, fields that
cannot change the model dropped) so caches, run names and de-duplication agree on what "the same
architecture" means.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping

import yaml

from space.errors import UserInputError

__all__ = [
    "SpecError",
    "SRTGSpec",
    "ArchSpec",
    "ResNet3DSpec",
    "MTNetSpec",
    "spec_from_dict",
    "load_spec_file",
    "canonical_float",
]


class SpecError(UserInputError):
    """An invalid architecture: the message names the field, the value and what is allowed."""


def canonical_float(value: float) -> float:
    """Round to 10 significant digits so 0.1 + 0.2 and 0.3 hash the same."""
    return float(f"{float(value):.10g}")


def _check_choice(field_name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        allowed_text = ", ".join(repr(a) for a in allowed)
        raise SpecError(f"{field_name}={value!r} is not allowed; allowed: {allowed_text}")


def _check_type(field_name: str, value: Any, kind: type | tuple[type, ...]) -> None:
    if isinstance(value, bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise SpecError(f"{field_name}={value!r} must be of type {names}")


# --------------------------------------------------------------------------------------------
# SRTG
# --------------------------------------------------------------------------------------------

SRTG_PLACEMENTS = ("none", "start", "top", "mid", "end", "res", "final")
SIMPLE_BLOCK_PLACEMENTS = ("none", "start", "mid", "res", "final")
SRTG_RECURRENT = ("lstm", "gru")
SRTG_REDUCTIONS = (1, 2, 4, 8, 16)
SRTG_FUSIONS = ("mul", "residual")
SRTG_GATES = ("inactive", "cyclic", "warmup")
SRTG_GATE_NORMS = ("std", "l2", "none")


@dataclass(frozen=True)
class SRTGSpec:
    """Where and how SRTG blocks sit in a ResNet3D (docs/srtg.md).

    ``warmup`` is only meaningful with ``gate="warmup"``: a fraction of the training epochs
    (0 < w < 1) or a whole number of epochs (>= 1) during which the gate stays inactive.
    """

    placement: str = "none"
    recurrent: str = "lstm"
    reduction: int = 1
    fusion: str = "mul"
    gate: str = "cyclic"
    gate_norm: str = "std"
    tau: float = 0.05
    tolerance: int = 0
    quorum: float = 0.5  # from the gate study (docs/srtg.md); 1.0 with tolerance 0 is the paper's exact rule
    warmup: float | None = None
    align_loss: float = 1.0  # from the gate study (docs/srtg.md): without it the gate stays shut at proxy scale
    stages: tuple[int, ...] = (1, 2, 3, 4)

    def __post_init__(self) -> None:
        _check_choice("srtg.placement", self.placement, SRTG_PLACEMENTS)
        _check_choice("srtg.recurrent", self.recurrent, SRTG_RECURRENT)
        _check_type("srtg.reduction", self.reduction, int)
        _check_choice("srtg.reduction", self.reduction, SRTG_REDUCTIONS)
        _check_choice("srtg.fusion", self.fusion, SRTG_FUSIONS)
        _check_choice("srtg.gate", self.gate, SRTG_GATES)
        _check_choice("srtg.gate_norm", self.gate_norm, SRTG_GATE_NORMS)
        _check_type("srtg.tau", self.tau, (int, float))
        if not (math.isfinite(self.tau) and self.tau > 0):
            raise SpecError(f"srtg.tau={self.tau!r} is not allowed; allowed: a finite number > 0")
        object.__setattr__(self, "tau", canonical_float(self.tau))
        _check_type("srtg.tolerance", self.tolerance, int)
        if self.tolerance < 0:
            raise SpecError(f"srtg.tolerance={self.tolerance!r} is not allowed; allowed: an integer >= 0")
        _check_type("srtg.quorum", self.quorum, (int, float))
        if not (math.isfinite(self.quorum) and 0 < self.quorum <= 1):
            raise SpecError(f"srtg.quorum={self.quorum!r} is not allowed; allowed: a share of frames 0 < q <= 1")
        object.__setattr__(self, "quorum", canonical_float(self.quorum))
        _check_type("srtg.align_loss", self.align_loss, (int, float))
        if not (math.isfinite(self.align_loss) and self.align_loss >= 0):
            raise SpecError(f"srtg.align_loss={self.align_loss!r} is not allowed; allowed: a number >= 0")
        object.__setattr__(self, "align_loss", canonical_float(self.align_loss))
        self._check_warmup()
        self._check_stages()

    def _check_warmup(self) -> None:
        if self.gate != "warmup":
            if self.warmup is not None:
                raise SpecError(
                    f"srtg.warmup={self.warmup!r} is only allowed with srtg.gate='warmup' (gate is {self.gate!r})"
                )
            return
        if self.warmup is None:
            raise SpecError("srtg.warmup=None is not allowed with gate='warmup'; allowed: 0 < w < 1 or an epoch count >= 1")
        _check_type("srtg.warmup", self.warmup, (int, float))
        w = float(self.warmup)
        if 0 < w < 1:
            object.__setattr__(self, "warmup", canonical_float(w))
        elif w >= 1 and w == int(w):
            object.__setattr__(self, "warmup", int(w))
        else:
            raise SpecError(
                f"srtg.warmup={self.warmup!r} is not allowed; allowed: a fraction 0 < w < 1 or a whole epoch count >= 1"
            )

    def _check_stages(self) -> None:
        stages = self.stages
        if isinstance(stages, int) and not isinstance(stages, bool):
            stages = (stages,)
        if not isinstance(stages, (list, tuple)) or not stages:
            raise SpecError(f"srtg.stages={self.stages!r} is not allowed; allowed: a non-empty subset of [1, 2, 3, 4]")
        for s in stages:
            if isinstance(s, bool) or s not in (1, 2, 3, 4):
                raise SpecError(f"srtg.stages={self.stages!r} is not allowed; allowed: a non-empty subset of [1, 2, 3, 4]")
        object.__setattr__(self, "stages", tuple(sorted(set(stages))))

    @property
    def enabled(self) -> bool:
        return self.placement != "none"

    def warmup_epochs(self, total_epochs: int) -> int:
        """Epochs during which a ``warmup`` gate stays inactive, for a run of ``total_epochs``."""
        if self.gate != "warmup" or self.warmup is None:
            return 0
        if isinstance(self.warmup, int):
            return self.warmup
        return int(round(self.warmup * total_epochs))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["stages"] = list(self.stages)
        return d

    def canonical_dict(self) -> dict[str, Any]:
        """Without placement nothing else can change the model: collapse to the bare default."""
        if not self.enabled:
            return SRTGSpec().to_dict()
        return self.to_dict()


# --------------------------------------------------------------------------------------------
# Architecture specs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchSpec:
    """Base of every architecture spec. Use :func:`spec_from_dict` to build one from JSON/YAML."""

    family: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"family": self.family}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            d[f.name] = value.to_dict() if hasattr(value, "to_dict") else value
        return d

    def canonical_dict(self) -> dict[str, Any]:
        return self.to_dict()

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def key(self) -> str:
        """Stable 64-bit hex hash of the canonical JSON (every default filled in)."""
        canonical = json.dumps(self.canonical_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> "ArchSpec":
        return dataclasses.replace(self, **changes)

    @property
    def recurrent_type(self) -> str:
        """The RNN kind the spec carries, or ``"none"`` (each family overrides this)."""
        return "none"


RESNET_CONVS = ("r3d", "r2plus1d")
RESNET_DEPTHS = (18, 34, 50, 101, 152)
RESNET_EXPANSIONS = (1, 4)


@dataclass(frozen=True)
class ResNet3DSpec(ArchSpec):
    """An r3d or r(2+1)d ResNet (docs/search-space.md), optionally with SRTG blocks (docs/srtg.md)."""

    family: ClassVar[str] = "resnet3d"
    conv: str = "r3d"
    depth: int = 18
    bottleneck_expansion: int = 4
    srtg: SRTGSpec = field(default_factory=SRTGSpec)

    def __post_init__(self) -> None:
        _check_choice("conv", self.conv, RESNET_CONVS)
        _check_type("depth", self.depth, int)
        _check_choice("depth", self.depth, RESNET_DEPTHS)
        _check_type("bottleneck_expansion", self.bottleneck_expansion, int)
        _check_choice("bottleneck_expansion", self.bottleneck_expansion, RESNET_EXPANSIONS)
        if isinstance(self.srtg, Mapping):
            object.__setattr__(self, "srtg", _build(SRTGSpec, "srtg", self.srtg))
        if not isinstance(self.srtg, SRTGSpec):
            raise SpecError(f"srtg={self.srtg!r} must be a mapping of SRTG options")
        if self.is_simple and self.srtg.placement not in SIMPLE_BLOCK_PLACEMENTS:
            allowed = ", ".join(repr(p) for p in SIMPLE_BLOCK_PLACEMENTS)
            raise SpecError(
                f"srtg.placement={self.srtg.placement!r} is not allowed at depth {self.depth} "
                f"(Simple blocks have two convs); allowed: {allowed}"
            )

    @property
    def is_simple(self) -> bool:
        return self.depth in (18, 34)

    @property
    def recurrent_type(self) -> str:
        return self.srtg.recurrent if self.srtg.enabled else "none"

    def canonical_dict(self) -> dict[str, Any]:
        d = self.to_dict()
        d["srtg"] = self.srtg.canonical_dict()
        if self.is_simple:  # Simple blocks have no expansion: the field cannot change the model
            d["bottleneck_expansion"] = 4
        return d


MTNET_DEPTHS = (32, 48, 64, 132, 200)
MTNET_SUBSTREAMS = (1, 2, 4, 8, 16)
MTNET_RECURRENT = ("gru", "lstm", "none")


@dataclass(frozen=True)
class MTNetSpec(ArchSpec):
    """A multi-temporal network (docs/mtnet.md): short/long streams split by ``ratio``, ``substreams`` groups."""

    family: ClassVar[str] = "mtnet"
    depth: int = 64
    ratio: float = 0.875
    substreams: int = 1
    recurrent: str = "gru"

    def __post_init__(self) -> None:
        _check_type("depth", self.depth, int)
        _check_choice("depth", self.depth, MTNET_DEPTHS)
        _check_type("ratio", self.ratio, (int, float))
        if not 0.5 <= float(self.ratio) <= 1.0:
            raise SpecError(f"ratio={self.ratio!r} is not allowed; allowed: a number in [0.5, 1.0]")
        object.__setattr__(self, "ratio", canonical_float(self.ratio))
        _check_type("substreams", self.substreams, int)
        _check_choice("substreams", self.substreams, MTNET_SUBSTREAMS)
        _check_choice("recurrent", self.recurrent, MTNET_RECURRENT)

    @property
    def recurrent_type(self) -> str:
        return self.recurrent


FAMILIES: dict[str, type[ArchSpec]] = {"resnet3d": ResNet3DSpec, "mtnet": MTNetSpec}


def _build(cls: type, where: str, data: Mapping[str, Any]) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
    try:
        return cls(**data)
    except TypeError as exc:  # pragma: no cover - dataclass signature errors
        raise SpecError(f"{where}: {exc}") from None


def spec_from_dict(data: Mapping[str, Any]) -> ArchSpec:
    """Build and validate a spec from its JSON/YAML form; raises :class:`SpecError` on anything invalid."""
    if not isinstance(data, Mapping):
        raise SpecError(f"a spec must be a mapping, got {type(data).__name__}")
    family = data.get("family")
    if family not in FAMILIES:
        raise SpecError(f"family={family!r} is not allowed; allowed: {', '.join(repr(f) for f in FAMILIES)}")
    body = {k: v for k, v in data.items() if k != "family"}
    return _build(FAMILIES[family], f"family {family!r}", body)


def load_spec_file(path: str | Path) -> ArchSpec:
    """Read a spec from a YAML or JSON file (YAML is a superset of JSON; a key given twice is refused)."""
    from space.yamlunique import load_unique

    path = Path(path)
    try:
        data = load_unique(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(f"cannot read spec file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SpecError(f"spec file {path} is not a text file (not UTF-8); allowed: a YAML or JSON file") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"spec file {path} is not valid YAML/JSON: {exc}") from None
    try:
        return spec_from_dict(data)
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from None
