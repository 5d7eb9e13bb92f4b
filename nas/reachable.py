"""Constraints no architecture of the space can meet are refused before a run starts (``docs/search-space.md``).

A search with ``--max-gmacs 0.001`` would otherwise sample and reject architectures until its resample limit,
then blame an exhausted space. The space is enumerable and its static costs come from meta-device builds, so
the check is exact: parameters of every layer structure (a build, no forward pass), then GMACs in ascending
order of parameters until one architecture meets every limit. Architectures that differ only in what an SRTG
forward pass computes (gate, fusion, loss settings: :func:`space.searchspace.structure_of`) share their layers,
so one of each structure is counted. Latency limits need a measurement and are left to the search.
"""

from __future__ import annotations

import sys

from nas.config import Problem
from space import ArchSpec
from space.errors import UserInputError
from space.searchspace import SearchSpace, structure_of

DEPLOY_NUM_CLASSES = 400  # costs are those of the deployment model at the papers' 400 classes
SAY_PROGRESS_AFTER = 8  # architectures counted before the check says what it is doing


def check_constraints_reachable(problem: Problem, space: SearchSpace, space_name: str) -> None:
    """Raise :class:`UserInputError` when no architecture meets ``--max-gmacs`` and ``--max-params`` together."""
    from runners.costs import model_costs, spec_params

    max_gmacs, max_params = problem.max_gmacs, problem.max_params
    if max_gmacs is None and max_params is None:
        return
    one_per_structure: dict[str, ArchSpec] = {}
    for spec in space.enumerate():
        one_per_structure.setdefault(structure_of(spec).key(), spec)
    by_params = sorted((spec_params(spec, DEPLOY_NUM_CLASSES), key, spec)
                       for key, spec in one_per_structure.items())
    fewest = by_params[0][0]
    if max_params is not None and fewest / 1e6 > max_params:
        raise UserInputError(f"--max-params {max_params:g}: no architecture of {space_name} has so few parameters "
                             f"(the fewest: {fewest / 1e6:.3g} M); allowed: --max-params >= {fewest / 1e6:.3g}")
    if max_gmacs is None:
        return
    candidates = [spec for params, _, spec in by_params if max_params is None or params / 1e6 <= max_params]
    least = float("inf")
    for counted, spec in enumerate(candidates, start=1):
        if counted == SAY_PROGRESS_AFTER and sys.stderr.isatty():  # a terminal only: a captured stderr stays one line
            print(f"checking --max-gmacs {max_gmacs:g} against the {len(candidates)} layer structures of "
                  f"{space_name} (meta device)...", file=sys.stderr, flush=True)
        least = min(least, model_costs(spec, shape=problem.deploy_shape, num_classes=DEPLOY_NUM_CLASSES).gmacs)
        if least <= max_gmacs:
            return
    within = f" within --max-params {max_params:g}" if max_params is not None else ""
    raise UserInputError(f"--max-gmacs {max_gmacs:g}: no architecture of {space_name}{within} costs so little at "
                         f"{'x'.join(map(str, problem.deploy_shape))} (the least: {least:.3g} GMACs); "
                         f"allowed: --max-gmacs >= {least:.3g}")
