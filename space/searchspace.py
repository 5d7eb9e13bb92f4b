"""Search spaces: YAML files listing, per family, the choices a search may make (docs/search-space.md).

A space file looks like this (``space/presets/*.yaml`` ship with the package; see docs/search-space.md)::

    name: demo
    families:
      resnet3d:
        conv: [r3d, r2plus1d]          # a list = the choices to search
        depth: 18                      # a scalar (or a one-item list) = fixed, never sampled
        srtg:
          placement: [none, start, mid, res, final]
          recurrent: [lstm, gru]
          gate: [inactive, warmup]
          warmup: [0.5]                # sampled only when gate = warmup
      mtnet:
        depth: 32
        ratio: [0.75, 0.875, 1.0]

Keys are the fields of :class:`~space.spec.ResNet3DSpec`, :class:`~space.spec.SRTGSpec` and
:class:`~space.spec.MTNetSpec`; a field a file does not list keeps the spec's default. Unknown keys,
values the spec rejects, duplicate choices and duplicate keys are :class:`SpaceError` naming the line.

Sampling is conditional, so a sampler only ever sees parameters that change the model:

- ``family`` first (only when the space has several families);
- ``resnet3d.bottleneck_expansion`` only at depths >= 50 (Simple blocks have no expansion);
- the ``resnet3d.srtg.*`` options only when the placement is not ``none``; ``resnet3d.srtg.warmup``
  only when the gate is ``warmup``;
- the placement's choices depend on the block kind (``top``/``end`` exist only in Bottleneck blocks).
  When the listed depths mix Simple (18, 34) and Bottleneck (50+) blocks and the listed placements
  include ``top`` or ``end``, placement is two parameters, ``resnet3d.srtg.placement.simple`` and
  ``resnet3d.srtg.placement.bottleneck``, each with only the placements valid there. Optuna requires one
  parameter name to keep one set of choices across a study, and a sampler must never be offered a value
  that can only come back INVALID: TPE (multivariate, ``group=True``) models each name on the trials
  that have it.

Sampling goes through a :class:`SuggestFn` (``suggest(name, choices) -> value``), so ``space`` never
imports Optuna: ``nas`` passes ``lambda name, choices: trial.suggest_categorical(name, choices)``.
The same code path enumerates the space (every suggestion sequence, depth first), so
:meth:`SearchSpace.size`, :meth:`SearchSpace.enumerate` and :meth:`SearchSpace.sample` cannot disagree.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

import yaml

from space.errors import UserInputError
from space.spec import (
    SIMPLE_BLOCK_PLACEMENTS,
    ArchSpec,
    MTNetSpec,
    ResNet3DSpec,
    SpecError,
    SRTGSpec,
)

__all__ = [
    "Dimension",
    "SearchSpace",
    "SpaceError",
    "SuggestFn",
    "load_space",
    "parse_space",
    "preset_names",
    "structure_of",
]

SIMPLE_DEPTHS = (18, 34)


class SpaceError(UserInputError):
    """An invalid search-space file; the message starts with ``file:line:``."""


class SuggestFn(Protocol):
    """Pick one of ``choices`` for the parameter ``name`` (e.g. a closure over ``suggest_categorical``).

    ``choices`` holds only None, bool, int, float or str (what Optuna's categorical distribution
    accepts); the same ``name`` is always offered the same ``choices``.
    """

    def __call__(self, name: str, choices: list) -> Any: ...


@dataclass(frozen=True)
class Dimension:
    """One searchable choice: its sampler parameter name, its values, and when it is sampled.

    A dimension with a single choice is fixed: it is applied without calling the sampler.
    """

    name: str  # the sampler's parameter name, e.g. "resnet3d.srtg.gate"
    choices: tuple  # spec values (canonical: ratio 1 -> 1.0, stages [2, 1] -> (1, 2))
    when: str = ""  # human-readable condition within its family, "" = always
    line: int | None = None  # line in the space file that listed it

    @property
    def fixed(self) -> bool:
        return len(self.choices) == 1

    def encoded_choices(self) -> list:
        """The choices as the sampler sees them (tuples, i.e. SRTG ``stages``, become "1,2,3,4")."""
        return [_encode(c) for c in self.choices]

    def decode(self, value: Any) -> Any:
        for choice in self.choices:
            if _encode(choice) == value:  # equality, so an enqueued 0 still means align_loss 0.0
                return choice
        raise SpaceError(f"sampler returned {value!r} for {self.name}; allowed: {self.encoded_choices()}")


def _encode(value: Any) -> Any:
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else value


# --------------------------------------------------------------------------------------------
# The space
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SearchSpace:
    """A parsed, validated search space.

    ``dimensions`` is the tree: ``{"family": Dimension, "resnet3d": {"conv": Dimension, ...,
    "srtg": {...}}, "mtnet": {...}}``; leaves are :class:`Dimension`, inner nodes are dicts.
    """

    name: str
    dimensions: Mapping[str, Any]
    description: str = ""
    source: str = "<memory>"
    _build_errors: dict = field(default_factory=dict, repr=False)

    @property
    def families(self) -> tuple[str, ...]:
        return self.dimensions["family"].choices

    def parameters(self) -> list[Dimension]:
        """Every dimension the sampler may be asked about (fixed ones excluded), in tree order."""
        return [d for d in _leaves(self.dimensions) if not d.fixed]

    # ---- sampling -------------------------------------------------------------------------

    def sample(self, suggest: SuggestFn) -> ArchSpec:
        """Build one spec, asking ``suggest`` for every non-fixed dimension on the way."""
        family = _choose(self.dimensions["family"], suggest)
        if family == "resnet3d":
            return self._sample_resnet3d(self.dimensions["resnet3d"], suggest)
        return self._sample_mtnet(self.dimensions["mtnet"], suggest)

    @staticmethod
    def _sample_resnet3d(dims: Mapping[str, Any], suggest: SuggestFn) -> ResNet3DSpec:
        values: dict[str, Any] = {}
        for name in ("conv", "depth"):
            if name in dims:
                values[name] = _choose(dims[name], suggest)
        depth = values.get("depth", ResNet3DSpec().depth)
        simple = depth in SIMPLE_DEPTHS
        if not simple and "bottleneck_expansion" in dims:
            values["bottleneck_expansion"] = _choose(dims["bottleneck_expansion"], suggest)
        srtg_dims = dims.get("srtg", {})
        placement_dims = srtg_dims.get("placement")
        if placement_dims is None:
            return ResNet3DSpec(**values)
        if isinstance(placement_dims, Mapping):  # split by block kind
            placement_dims = placement_dims["simple" if simple else "bottleneck"]
        srtg: dict[str, Any] = {"placement": _choose(placement_dims, suggest)}
        if srtg["placement"] != "none":
            for name, dim in srtg_dims.items():
                if name not in ("placement", "warmup"):
                    srtg[name] = _choose(dim, suggest)
            if srtg.get("gate", SRTGSpec().gate) == "warmup":
                srtg["warmup"] = _choose(srtg_dims["warmup"], suggest)
        return ResNet3DSpec(**values, srtg=SRTGSpec(**srtg))

    @staticmethod
    def _sample_mtnet(dims: Mapping[str, Any], suggest: SuggestFn) -> MTNetSpec:
        return MTNetSpec(**{name: _choose(dim, suggest) for name, dim in dims.items()})

    def params_for(self, spec: ArchSpec) -> dict[str, Any] | None:
        """The sampler parameters that make ``spec`` (e.g. to enqueue it), or None if it is not in the space."""
        wanted = spec.to_dict()
        params: dict[str, Any] = {}

        def suggest(name: str, choices: list) -> Any:
            value = _spec_value(wanted, name)
            if value not in choices:
                raise _NotInSpace
            params[name] = value
            return value

        try:
            sampled = self.sample(suggest)
        except _NotInSpace:
            return None
        return params if sampled.key() == spec.key() else None

    # ---- enumeration ----------------------------------------------------------------------

    def enumerate(self) -> Iterator[ArchSpec]:
        """Every distinct spec of the space (distinct ``spec.key()``), in a fixed order."""
        seen: set[str] = set()
        for spec in self._every_sample():
            key = spec.key()
            if key not in seen:
                seen.add(key)
                yield spec

    def _every_sample(self) -> Iterator[ArchSpec]:
        """Replay :meth:`sample` over every sequence of suggestions (an odometer over the choice indices)."""
        path: list[int] = []
        while True:
            widths: list[int] = []

            def suggest(name: str, choices: list) -> Any:
                position = len(widths)
                widths.append(len(choices))
                return choices[path[position]] if position < len(path) else choices[0]

            yield self.sample(suggest)
            path += [0] * (len(widths) - len(path))
            while path and path[-1] + 1 >= widths[len(path) - 1]:
                path.pop()
            if not path:
                return
            path[-1] += 1

    @cached_property
    def _specs(self) -> tuple[ArchSpec, ...]:
        return tuple(self.enumerate())

    def size(self) -> int:
        """The exact number of distinct architectures (distinct ``spec.key()``)."""
        return len(self._specs)

    # ---- buildability ---------------------------------------------------------------------

    def build_error(self, spec: ArchSpec, width_mult: float = 1.0) -> str | None:
        """Why ``spec`` cannot be built at ``width_mult`` (meta device), or None.

        Cached by the spec's *structure* (see :func:`structure_of`) and the width, so the SRTG variants
        that differ only in gate, fusion or loss settings are built once.
        """
        structure = structure_of(spec)
        cache_key = (structure.key(), float(width_mult))
        if cache_key not in self._build_errors:
            from space.build import validate_buildable

            try:
                validate_buildable(structure, width_mult=width_mult)
                self._build_errors[cache_key] = None
            except SpecError as exc:
                self._build_errors[cache_key] = str(exc)
        return self._build_errors[cache_key]

    def is_buildable(self, spec: ArchSpec, width_mult: float = 1.0) -> bool:
        """Whether ``spec`` builds at full width and at ``width_mult`` (what a trial needs, docs/proxy.md)."""
        return all(self.build_error(spec, w) is None for w in sorted({1.0, float(width_mult)}, reverse=True))

    def valid_share(
        self,
        width_mult: float = 1.0,
        *,
        sample: int | None = None,
        seed: int = 0,
        progress: Callable[[int, int], None] | None = None,
    ) -> float:
        """Share of the space's specs that build at full width and at ``width_mult``.

        Exact over every spec by default; with ``sample=N`` (< size) an estimate from N specs drawn
        without replacement (seeded), for spaces too large to build every structure interactively.
        ``progress(done, total)`` is called after each spec (e.g. to drive a progress bar).
        """
        specs: Sequence[ArchSpec] = self._specs
        if sample is not None and sample < len(specs):
            specs = random.Random(seed).sample(list(specs), sample)
        valid = 0
        for done, spec in enumerate(specs, start=1):
            valid += self.is_buildable(spec, width_mult)
            if progress is not None:
                progress(done, len(specs))
        return valid / len(specs)


# SRTG options that choose what the forward pass computes, not which layers exist or their sizes.
_RUNTIME_SRTG_FIELDS = ("fusion", "gate", "gate_norm", "tau", "tolerance", "quorum", "warmup", "align_loss")


def structure_of(spec: ArchSpec) -> ArchSpec:
    """``spec`` with its runtime-only SRTG options at their defaults: same layers, same shapes.

    Whether a spec builds depends only on its layers, so buildability is checked once per structure.
    """
    if isinstance(spec, ResNet3DSpec) and spec.srtg.enabled:
        defaults = SRTGSpec()
        runtime = {name: getattr(defaults, name) for name in _RUNTIME_SRTG_FIELDS}
        return spec.replace(srtg=dataclasses.replace(spec.srtg, **runtime))
    return spec


class _NotInSpace(Exception):
    pass


def _spec_value(spec_dict: Mapping[str, Any], name: str) -> Any:
    """The value a spec (as ``to_dict()``) holds for the sampler parameter ``name``, encoded as sampled."""
    parts = name.split(".")
    if parts == ["family"]:
        return spec_dict["family"]
    if len(parts) > 2 and parts[-2] == "placement":  # resnet3d.srtg.placement.simple / .bottleneck
        parts = parts[:-1]
    value: Any = spec_dict
    for part in parts[1:]:
        value = value[part]
    return _encode(tuple(value)) if isinstance(value, list) else value


def _choose(dim: Dimension, suggest: SuggestFn) -> Any:
    if dim.fixed:
        return dim.choices[0]
    return dim.decode(suggest(dim.name, dim.encoded_choices()))


def _leaves(tree: Mapping[str, Any]) -> Iterator[Dimension]:
    for value in tree.values():
        if isinstance(value, Dimension):
            yield value
        else:
            yield from _leaves(value)


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------

_TOP_KEYS = ("name", "description", "families")
_FAMILY_FIELDS: dict[str, tuple[str, ...]] = {
    "resnet3d": tuple(f.name for f in dataclasses.fields(ResNet3DSpec)),
    "mtnet": tuple(f.name for f in dataclasses.fields(MTNetSpec)),
}
_SRTG_FIELDS = tuple(f.name for f in dataclasses.fields(SRTGSpec))


def _probe(family: str, field_name: str, value: Any) -> Any:
    """Validate one value through the spec itself; return its canonical form (raises SpecError)."""
    if family == "srtg":
        extra: dict[str, Any] = {}
        if field_name == "warmup":
            extra = {"gate": "warmup"}
        elif field_name == "gate" and value == "warmup":
            extra = {"warmup": 0.5}  # any valid warmup: the probe checks the gate alone
        return getattr(SRTGSpec(**{field_name: value}, **extra), field_name)
    cls = ResNet3DSpec if family == "resnet3d" else MTNetSpec
    return getattr(cls(**{field_name: value}), field_name)


class _Parser:
    """Turns the YAML text into a :class:`SearchSpace`, with line numbers in every error."""

    def __init__(self, text: str, source: str):
        self.source = source
        self.lines: dict[tuple, int] = {}
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)  # nodes only, for line numbers
            self.data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{source}:{mark.line + 1}" if mark is not None else source
            problem = getattr(exc, "problem", None) or str(exc)
            raise SpaceError(f"{where}: not valid YAML: {problem}") from None
        if node is not None:
            self._index(node, ())

    def _index(self, node: yaml.Node, path: tuple, inside: frozenset = frozenset()) -> None:
        if id(node) in inside:  # `a: &x [*x]`: the data would contain itself
            self.fail(path, "a YAML alias refers to a node that contains it (recursive data)", line=node.start_mark.line + 1)
        if len(self.lines) > 100_000:  # anchors re-used in a loop ("billion laughs")
            self.fail((), "the YAML expands to more than 100000 entries (aliases re-used too often)")
        inside = inside | {id(node)}
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self.fail(path, "a key is a list or a mapping; allowed: plain names", line=key_node.start_mark.line + 1)
                key = key_node.value
                if key in seen:
                    self.fail(path + (key,), f"duplicate key {key!r}", line=key_node.start_mark.line + 1)
                seen.add(key)
                self.lines[path + (key,)] = key_node.start_mark.line + 1
                self._index(value_node, path + (key,), inside)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._index(item, path + (i,), inside)

    def fail(self, path: tuple, message: str, line: int | None = None) -> None:
        if line is None:
            probe = path
            while probe not in self.lines and probe:
                probe = probe[:-1]
            line = self.lines.get(probe)
        where = f"{self.source}:{line}" if line else self.source
        dotted = ".".join(str(p) for p in path if not isinstance(p, int))
        raise SpaceError(f"{where}: {dotted + ': ' if dotted else ''}{message}")

    def mapping(self, value: Any, path: tuple, allowed: tuple[str, ...], what: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(path, f"{what} must be a mapping, got {type(value).__name__}")
        for key in value:
            if key not in allowed:
                self.fail(path + (key,), f"unknown key {key!r}; allowed: {', '.join(allowed)}")
        return value

    # ---- the file -------------------------------------------------------------------------

    def parse(self, default_name: str) -> SearchSpace:
        top = self.mapping(self.data, (), _TOP_KEYS, "a search space")
        if "families" not in top:
            self.fail((), "missing key 'families' (a mapping of family -> dimensions)")
        families = self.mapping(top["families"], ("families",), tuple(_FAMILY_FIELDS), "families")
        if not families:
            self.fail(("families",), f"lists no family; allowed: {', '.join(_FAMILY_FIELDS)}")
        tree: dict[str, Any] = {
            "family": Dimension("family", tuple(families), line=self.lines.get(("families",)))
        }
        for family, body in families.items():
            path = ("families", family)
            if body is None:
                body = {}
            body = self.mapping(body, path, _FAMILY_FIELDS[family], f"family {family!r}")
            tree[family] = self.resnet3d(body, path) if family == "resnet3d" else self.mtnet(body, path)
        name = top.get("name", default_name)
        if not isinstance(name, str) or not name:
            self.fail(("name",), f"name={name!r} must be a non-empty string")
        description = top.get("description", "")
        return SearchSpace(name=name, dimensions=tree, description=str(description or ""), source=self.source)

    def mtnet(self, body: Mapping[str, Any], path: tuple) -> dict[str, Dimension]:
        return {key: self.dimension("mtnet", key, value, path + (key,)) for key, value in body.items()}

    def resnet3d(self, body: Mapping[str, Any], path: tuple) -> dict[str, Any]:
        dims: dict[str, Any] = {}
        for key, value in body.items():
            if key != "srtg":
                dims[key] = self.dimension("resnet3d", key, value, path + (key,))
        depths = dims["depth"].choices if "depth" in dims else (ResNet3DSpec().depth,)
        if "bottleneck_expansion" in dims:
            if all(d in SIMPLE_DEPTHS for d in depths):
                self.fail(path + ("bottleneck_expansion",), "has no effect: no depth >= 50 is listed (Simple blocks have no expansion)")
            dims["bottleneck_expansion"] = dataclasses.replace(dims["bottleneck_expansion"], when="depth >= 50")
        if "srtg" in body:
            srtg = self.mapping(body["srtg"] or {}, path + ("srtg",), _SRTG_FIELDS, "srtg")
            dims["srtg"] = self.srtg(srtg, path + ("srtg",), depths)
        return dims

    def srtg(self, body: Mapping[str, Any], path: tuple, depths: tuple[int, ...]) -> dict[str, Any]:
        dims: dict[str, Any] = {}
        for key, value in body.items():
            dim = self.dimension("srtg", key, value, path + (key,), name_prefix="resnet3d.srtg.")
            dims[key] = dataclasses.replace(dim, when="placement != none")
        if "placement" not in dims:
            if dims:
                self.fail(path, "lists SRTG options but no 'placement'; add placement: [...] (none = no SRTG)")
            return dims
        dims["placement"] = self.placement(dims["placement"], path + ("placement",), depths)
        gates = dims["gate"].choices if "gate" in dims else (SRTGSpec().gate,)
        if "warmup" in gates and "warmup" not in dims:
            self.fail(path + ("gate",), "gate 'warmup' needs srtg.warmup: [...] (a fraction 0 < w < 1 or epochs >= 1)")
        if "warmup" not in gates and "warmup" in dims:
            self.fail(path + ("warmup",), "srtg.warmup is only used with gate 'warmup', which gate does not list")
        if "warmup" in dims:
            dims["warmup"] = dataclasses.replace(dims["warmup"], when="gate = warmup")
        return dims

    def placement(self, dim: Dimension, path: tuple, depths: tuple[int, ...]) -> Dimension | dict[str, Dimension]:
        """One placement parameter, or two (by block kind) when the kinds allow different placements."""
        kinds = {"simple": [d for d in depths if d in SIMPLE_DEPTHS], "bottleneck": [d for d in depths if d not in SIMPLE_DEPTHS]}
        simple_choices = tuple(p for p in dim.choices if p in SIMPLE_BLOCK_PLACEMENTS)
        if kinds["simple"] and not kinds["bottleneck"] and simple_choices != dim.choices:
            wrong = next(p for p in dim.choices if p not in simple_choices)
            self.fail(path + (dim.choices.index(wrong),), f"{wrong!r} is not allowed at depth {kinds['simple'][0]} "
                      f"(Simple blocks; no depth >= 50 listed); allowed: {', '.join(SIMPLE_BLOCK_PLACEMENTS)}")
        if kinds["simple"] and not simple_choices:
            self.fail(path, f"none of {list(dim.choices)} is allowed at depth {kinds['simple'][0]} (Simple blocks); "
                            f"allowed there: {', '.join(SIMPLE_BLOCK_PLACEMENTS)}")
        if not kinds["simple"] or not kinds["bottleneck"] or simple_choices == dim.choices:
            return dataclasses.replace(dim, when="")
        return {
            "simple": dataclasses.replace(dim, name=dim.name + ".simple", choices=simple_choices, when="depth in 18, 34"),
            "bottleneck": dataclasses.replace(dim, name=dim.name + ".bottleneck", when="depth >= 50"),
        }

    def dimension(self, family: str, key: str, value: Any, path: tuple, name_prefix: str = "") -> Dimension:
        """A list is the choices, a scalar is fixed; SRTG ``stages`` is itself a list, so choices are a list of lists."""
        is_stages = family == "srtg" and key == "stages"
        listed = isinstance(value, list) and not (is_stages and not any(isinstance(v, list) for v in value))
        raw = value if listed else [value]
        if not raw:
            self.fail(path, "has no choices; give a value or a non-empty list")
        choices: list[Any] = []
        for i, item in enumerate(raw):
            item_path = path + (i,) if listed else path
            if isinstance(item, (list, Mapping)) and not is_stages:
                self.fail(item_path, f"{item!r} is not allowed; give a value or a list of values")
            try:
                canonical = _probe(family, key, item)
            except SpecError as exc:
                self.fail(item_path, _strip_field(str(exc)))
            except TypeError:
                self.fail(item_path, f"{item!r} is not allowed")
            if canonical in choices:
                self.fail(item_path, f"duplicate choice {item!r}")
            choices.append(canonical)
        name = name_prefix + key if name_prefix else f"{family}.{key}"
        return Dimension(name=name, choices=tuple(choices), line=self.lines.get(path))


def _strip_field(message: str) -> str:
    """SpecError says "srtg.gate='x' is not allowed; ..."; the path already names the field."""
    head, sep, rest = message.partition("=")
    return rest if sep and " " not in head else message


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def parse_space(text: str, source: str = "<string>", default_name: str = "space") -> SearchSpace:
    """Parse a space from YAML text; ``source`` names it in error messages."""
    return _Parser(text, source).parse(default_name)


def preset_names() -> list[str]:
    """The spaces shipped with the package (``space/presets/*.yaml``)."""
    folder = resources.files("space") / "presets"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_space(name_or_path: str | Path) -> SearchSpace:
    """A preset name (``srtg``, ``mtnet``, ``joint``, ``demo``) or the path of a space YAML file."""
    text_name = str(name_or_path)
    if text_name in preset_names():
        resource = resources.files("space") / "presets" / f"{text_name}.yaml"
        return parse_space(resource.read_text(), source=f"{text_name}.yaml", default_name=text_name)
    path = Path(name_or_path)
    if not path.is_file():
        raise SpaceError(
            f"unknown search space {text_name!r}; give a preset ({', '.join(preset_names())}) or a YAML file"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpaceError(f"cannot read search space {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SpaceError(f"search space {path} is not a text file (not UTF-8); allowed: a YAML file") from None
    return parse_space(text, source=str(path), default_name=path.stem)
