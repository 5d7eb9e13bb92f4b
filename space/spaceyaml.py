"""The YAML parsing of a search-space file (the format: :mod:`space.searchspace`, docs/search-space.md).

:class:`SpaceFileParser` reads the text twice: as data, and as YAML nodes for the line of every key, so each
:class:`~space.dimension.SpaceError` starts with ``file:line:``. Every listed value is checked by building
the spec field it sets (:func:`_probe`), so the file accepts exactly what the specs accept, in their
canonical form. The result is the dimension tree (:class:`ParsedSpace`); :func:`space.searchspace.parse_space`
wraps it in a :class:`~space.searchspace.SearchSpace`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, NamedTuple

import yaml

from space.dimension import SIMPLE_DEPTHS, Dimension, SpaceError
from space.spec import SIMPLE_BLOCK_PLACEMENTS, MTNetSpec, ResNet3DSpec, SpecError, SRTGSpec


class ParsedSpace(NamedTuple):
    """What a space file says: its name, its dimension tree (see :class:`~space.searchspace.SearchSpace`)
    and its description."""

    name: str
    dimensions: dict[str, Any]
    description: str


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


class SpaceFileParser:
    """Turns the YAML text into a :class:`ParsedSpace`, with line numbers in every error."""

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

    def parse(self, default_name: str) -> ParsedSpace:
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
        return ParsedSpace(name=name, dimensions=tree, description=str(description or ""))

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
