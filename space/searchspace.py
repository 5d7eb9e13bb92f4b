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

Where the parts live: :mod:`space.dimension` (a dimension, the suggest callback, the error),
:mod:`space.spaceyaml` (reading the YAML file), this module (the space: sampling, enumeration,
buildability; and loading a preset or a file).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from space.dimension import SIMPLE_DEPTHS, Dimension, SpaceError, SuggestFn, encode_choice
from space.spaceyaml import SpaceFileParser
from space.spec import ArchSpec, MTNetSpec, ResNet3DSpec, SpecError, SRTGSpec

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

    def sample_flat(self, suggest: SuggestFn) -> ArchSpec:
        """Ask ``suggest`` for *every* non-fixed dimension (tree order), then build the spec from the answers.

        For genetic samplers (NSGA-II): Optuna crosses over and mutates only the parameters every trial has
        (its intersection search space), which in a conditional space is ``family`` alone, so NSGA-II would be
        random search. Asked flat, every trial carries every gene; the genes the spec does not use are
        inactive (carried and inherited, not built), as in GA encodings of conditional spaces.
        """
        answers = {dim.name: suggest(dim.name, dim.encoded_choices()) for dim in self.parameters()}
        return self.sample(lambda name, choices: answers[name])

    def flat_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` (those that make one spec, :meth:`params_for`) with every other gene at its first choice.

        How a known spec enters a study sampled flat (a warm start): its inactive genes must be present, or the
        genes every trial carries would shrink back to ``family`` (:meth:`sample_flat`).
        """
        return {**{dim.name: dim.encoded_choices()[0] for dim in self.parameters()}, **params}

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
    return encode_choice(tuple(value)) if isinstance(value, list) else value


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
# Loading
# --------------------------------------------------------------------------------------------


def parse_space(text: str, source: str = "<string>", default_name: str = "space") -> SearchSpace:
    """Parse a space from YAML text; ``source`` names it in error messages."""
    parsed = SpaceFileParser(text, source).parse(default_name)
    return SearchSpace(name=parsed.name, dimensions=parsed.dimensions, description=parsed.description, source=source)


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
