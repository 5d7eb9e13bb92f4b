"""Constraints no architecture of the space can meet are refused before a run starts (``docs/search-space.md``).

A search with ``--max-gmacs 0.001`` would otherwise sample and reject architectures until its resample limit,
then blame an exhausted space. The space is enumerable and its static costs come from meta-device builds, so
the check is exact. Architectures that differ only in what an SRTG forward pass computes (gate, fusion, loss
settings: :func:`space.searchspace.structure_of`) share their layers, so one of each structure is counted.
Latency limits need a measurement and are left to the search.

Counting every structure takes minutes on the larger presets (an MTNet's meta-device count takes about a
second), so the least cost is found by branch and bound over **cost floors** (:func:`cost_floor`): each
architecture has a smaller one, shared by many, that costs at most as much in GMACs and in parameters. Structures
are counted in ascending order of their floor's cost, and the count stops once the next floor costs at least the
least found: nothing after it can cost less. The answer, and the least cost an error names, are exact.
"""

from __future__ import annotations

import math
import sys
from typing import Callable, Iterable

from nas.config import Problem
from space import ArchSpec, MTNetSpec, ResNet3DSpec, SRTGSpec, SpecError
from space.errors import UserInputError
from space.searchspace import SearchSpace, structure_of

DEPLOY_NUM_CLASSES = 400  # costs are those of the deployment model at the papers' 400 classes
SAY_PROGRESS_AFTER = 8  # architectures counted before the check says what it is doing

Cost = Callable[[ArchSpec], float]


def cost_floor(spec: ArchSpec) -> ArchSpec:
    """An architecture that costs at most what ``spec`` costs, in GMACs and in parameters, built from its parts.

    A ResNet without its SRTG blocks (they only add layers beside the residual path, docs/srtg.md); an MTNet
    without its recurrent cells (they only add layers) at the shallowest depth whose every stage holds no more
    blocks than ``spec``'s (the same widths, fewer repeat blocks).
    """
    if isinstance(spec, ResNet3DSpec):
        return spec.replace(srtg=SRTGSpec())
    if isinstance(spec, MTNetSpec):
        from space.mtnet import STAGE_BLOCKS  # torch: imported when a check runs, not with the CLI

        blocks = STAGE_BLOCKS[spec.depth]
        shallower = [d for d, b in STAGE_BLOCKS.items() if all(x <= y for x, y in zip(b, blocks))]
        return spec.replace(depth=min(shallower, key=lambda d: sum(STAGE_BLOCKS[d])), recurrent="none")
    return spec


def least_cost(specs: Iterable[ArchSpec], cost: Cost, *, admit: Callable[[ArchSpec], bool] = lambda s: True,
               enough: float = -math.inf, on_count: Callable[[int], None] = lambda n: None) -> float:
    """The least ``cost`` over the ``specs`` that ``admit`` lets in (``inf`` if none), by branch and bound.

    Counting stops early once an admitted spec costs ``enough`` or less (the caller only needs to know one does).
    ``cost`` of :func:`cost_floor` must bound ``cost`` from below; a floor that cannot be built bounds nothing (0).
    """
    floors: dict[str, float] = {}

    def bounded(spec: ArchSpec) -> tuple[float, bool, str, ArchSpec]:
        """(floor cost, whether ``spec`` is not its own floor, key, spec): the order to count in."""
        base = cost_floor(spec)
        if base.key() not in floors:
            try:
                floors[base.key()] = cost(base)
            except SpecError:
                floors[base.key()] = 0.0
        return floors[base.key()], base.key() != spec.key(), spec.key(), spec

    # the floor itself first among equals: its cost is its bound, and it ends the count at once
    ordered = sorted((bounded(spec) for spec in specs), key=lambda entry: entry[:3])
    least, counted = math.inf, 0
    for bound, _, _, spec in ordered:
        if bound >= least:
            break  # every later spec costs at least its floor, at least this
        if not admit(spec):
            continue
        counted += 1
        on_count(counted)
        least = min(least, cost(spec))
        if least <= enough:
            break
    return least


def check_constraints_reachable(problem: Problem, space: SearchSpace, space_name: str) -> None:
    """Raise :class:`UserInputError` when no architecture meets ``--max-gmacs`` and ``--max-params`` together."""
    from runners.costs import model_costs, spec_params

    max_gmacs, max_params = problem.max_gmacs, problem.max_params
    if max_gmacs is None and max_params is None:
        return
    one_per_structure: dict[str, ArchSpec] = {}
    for spec in space.enumerate():
        one_per_structure.setdefault(structure_of(spec).key(), spec)
    structures = list(one_per_structure.values())
    params_cache: dict[str, float] = {}

    def params_m(spec: ArchSpec) -> float:
        if spec.key() not in params_cache:
            params_cache[spec.key()] = spec_params(spec, DEPLOY_NUM_CLASSES) / 1e6
        return params_cache[spec.key()]

    if max_params is not None:
        fewest = least_cost(structures, params_m, enough=max_params)
        if fewest > max_params:
            raise UserInputError(f"--max-params {max_params:g}: no architecture of {space_name} has so few "
                                 f"parameters (the fewest: {fewest:.3g} M); allowed: --max-params >= {fewest:.3g}")
    if max_gmacs is None:
        return

    def gmacs(spec: ArchSpec) -> float:
        return model_costs(spec, shape=problem.deploy_shape, num_classes=DEPLOY_NUM_CLASSES).gmacs

    def say(counted: int) -> None:
        if counted == SAY_PROGRESS_AFTER and sys.stderr.isatty():  # a terminal only: a captured stderr stays one line
            print(f"checking --max-gmacs {max_gmacs:g} against the {len(structures)} layer structures of "
                  f"{space_name} (meta device)...", file=sys.stderr, flush=True)

    admit = (lambda s: True) if max_params is None else (lambda s: params_m(s) <= max_params)
    least = least_cost(structures, gmacs, admit=admit, enough=max_gmacs, on_count=say)
    if least <= max_gmacs:
        return
    within = f" within --max-params {max_params:g}" if max_params is not None else ""
    raise UserInputError(f"--max-gmacs {max_gmacs:g}: no architecture of {space_name}{within} costs so little at "
                         f"{'x'.join(map(str, problem.deploy_shape))} (the least: {least:.3g} GMACs); "
                         f"allowed: --max-gmacs >= {least:.3g}")
