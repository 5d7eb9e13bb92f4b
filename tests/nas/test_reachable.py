"""Constraints no architecture meets are refused before a run, with the exact least cost (nas/reachable.py)."""

from __future__ import annotations

import random

import pytest

from nas.config import Problem
from nas.reachable import DEPLOY_NUM_CLASSES, check_constraints_reachable, cost_floor
from runners.costs import model_costs
from space.errors import UserInputError
from space.searchspace import load_space, parse_space, structure_of

# The ResNets' floor (no SRTG block) is not in this space, and the MTNets' floors (depth 32, no recurrent cell)
# are in it only for some: the bound must hold either way.
SPACE = """\
name: floors
families:
  resnet3d:
    conv: [r3d, r2plus1d]
    depth: 18
    srtg:
      placement: [start, final]
      recurrent: [lstm, gru]
  mtnet:
    depth: [32, 48]
    ratio: [0.75, 1.0]
    substreams: [1, 4]
    recurrent: [gru, none]
"""


@pytest.fixture(scope="module")
def brute_force():
    """Every structure of the space counted: the least GMACs and the fewest parameters, exactly."""
    space = parse_space(SPACE)
    specs = {structure_of(s).key(): s for s in space.enumerate()}.values()
    costs = [model_costs(s, shape=(16, 112, 112), num_classes=DEPLOY_NUM_CLASSES) for s in specs]
    return space, min(c.gmacs for c in costs), min(c.params for c in costs) / 1e6, costs


def _refusal(space, **limits) -> str | None:
    try:
        check_constraints_reachable(Problem(**limits), space, "floors")
    except UserInputError as exc:
        return str(exc)
    return None


@pytest.mark.slow
def test_the_least_cost_it_names_is_the_least_of_every_architecture(brute_force):
    space, least_gmacs, fewest_params, _ = brute_force
    said = _refusal(space, max_gmacs=least_gmacs * 0.999)
    assert said is not None and f"(the least: {least_gmacs:.3g} GMACs)" in said
    assert _refusal(space, max_gmacs=least_gmacs) is None  # the least itself is reachable
    said = _refusal(space, max_params=fewest_params * 0.999)
    assert said is not None and f"(the fewest: {fewest_params:.3g} M)" in said
    assert _refusal(space, max_params=fewest_params) is None


@pytest.mark.slow
def test_both_limits_together_name_the_least_gmacs_within_the_parameter_limit(brute_force):
    space, _, _, costs = brute_force
    params_limit = sorted(c.params for c in costs)[len(costs) // 2] / 1e6
    within = min(c.gmacs for c in costs if c.params / 1e6 <= params_limit)
    said = _refusal(space, max_gmacs=within * 0.999, max_params=params_limit)
    assert said is not None and f"within --max-params {params_limit:g}" in said
    assert f"(the least: {within:.3g} GMACs)" in said
    assert _refusal(space, max_gmacs=within, max_params=params_limit) is None


@pytest.mark.slow
def test_a_floor_never_costs_more_than_its_architecture():
    """What the early stop rests on, over a sample of the joint space (both families, every depth)."""
    space = load_space("joint")
    rng = random.Random(0)
    specs = [space.sample(lambda name, choices: rng.choice(choices)) for _ in range(12)]
    assert {s.family for s in specs} == {"resnet3d", "mtnet"}
    for spec in specs:
        floor, exact = (model_costs(s, shape=(16, 112, 112), num_classes=DEPLOY_NUM_CLASSES)
                        for s in (cost_floor(spec), spec))
        assert floor.gmacs <= exact.gmacs and floor.params <= exact.params, spec


def test_a_preset_of_hundreds_of_structures_is_checked_by_counting_a_few(monkeypatch):
    """The srtg preset has 488 layer structures; its least GMACs is found from its few SRTG-free floors."""
    import runners.costs

    counted: list[str] = []
    real = runners.costs.model_costs

    def counting(spec, **kwargs):
        counted.append(spec.key())
        return real(spec, **kwargs)

    monkeypatch.setattr(runners.costs, "model_costs", counting)
    space = load_space("srtg")
    structures = {structure_of(s).key() for s in space.enumerate()}
    with pytest.raises(UserInputError, match=r"the least: 40\.5 GMACs"):
        check_constraints_reachable(Problem(max_gmacs=1.0), space, "srtg")
    floors = {cost_floor(s).key() for s in space.enumerate()}
    assert len(structures) == 488 and len(counted) <= len(floors) + 1 < 20
