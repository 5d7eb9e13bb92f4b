"""nas.pareto: exact on hand-made sets, and in agreement with independent computations (moocore, a grid)."""

from __future__ import annotations

import itertools

import moocore
import numpy as np
import pytest

from nas import pareto


def grid_hypervolume(points: np.ndarray, reference: np.ndarray) -> int:
    """Count the unit cells of the integer grid below ``reference`` that some point dominates (exact for integer points)."""
    cells = np.array(list(itertools.product(*(range(int(r)) for r in reference))), dtype=float)
    covered = np.zeros(len(cells), dtype=bool)
    for p in points:
        covered |= (cells >= p).all(axis=1)
    return int(covered.sum())


def inclusion_exclusion_hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """Union of boxes by inclusion-exclusion over all subsets (exponential; for small sets only)."""
    total = 0.0
    for size in range(1, len(points) + 1):
        for subset in itertools.combinations(points, size):
            corner = np.max(subset, axis=0)
            total += (-1) ** (size + 1) * float(np.prod(np.clip(reference - corner, 0, None)))
    return total


# ------------------------------------------------------------------------------------------------
# non-dominated sorting
# ------------------------------------------------------------------------------------------------


def test_non_dominated_sort_hand_made_2d_with_duplicates():
    points = [(1, 5), (2, 3), (3, 4), (4, 1), (2, 3), (5, 5), (6, 0)]
    fronts = pareto.non_dominated_sort(points)
    assert [f.tolist() for f in fronts] == [[0, 1, 3, 4, 6], [2], [5]]
    assert pareto.front_ranks(points).tolist() == [0, 0, 1, 0, 0, 2, 0]
    assert pareto.pareto_mask(points).tolist() == [True, True, False, True, True, False, True]


def test_non_dominated_sort_hand_made_3d():
    points = [(1, 2, 3), (2, 1, 3), (3, 3, 1), (2, 2, 2), (2, 2, 3), (3, 3, 3), (1, 2, 3)]
    # (2,2,3) is dominated by (1,2,3), (2,1,3), (2,2,2); (3,3,3) by everything else.
    fronts = pareto.non_dominated_sort(points)
    assert [f.tolist() for f in fronts] == [[0, 1, 2, 3, 6], [4], [5]]


@pytest.mark.parametrize("dims", [2, 3, 4])
def test_non_dominated_sort_agrees_with_moocore(dims):
    rng = np.random.default_rng(dims)
    points = rng.integers(0, 6, size=(120, dims)).astype(float)  # small range: many ties and duplicates
    ours = pareto.front_ranks(points)
    assert (ours == moocore.pareto_rank(points)).all()  # both 0-based
    assert (pareto.pareto_mask(points) == moocore.is_nondominated(points, keep_weakly=True)).all()


def test_empty_and_nan_inputs():
    assert pareto.non_dominated_sort(np.empty((0, 2))) == []
    assert pareto.hypervolume(np.empty((0, 2)), [1, 1]) == 0.0
    with pytest.raises(ValueError, match="NaN"):
        pareto.non_dominated_sort([(1.0, np.nan), (0.0, 1.0)])
    with pytest.raises(ValueError, match="reference point"):
        pareto.hypervolume([(0.0, 0.0)], [1.0, 1.0, 1.0])


def test_dominates():
    assert pareto.dominates((1, 2), (1, 3))
    assert not pareto.dominates((1, 3), (1, 3))
    assert not pareto.dominates((0, 4), (1, 3))


# ------------------------------------------------------------------------------------------------
# directions and normalisation
# ------------------------------------------------------------------------------------------------


def test_to_minimization_negates_maximised_columns():
    values = np.array([[0.8, 2.0], [0.6, 1.0]])
    assert pareto.to_minimization(values, ["maximize", "minimise"]).tolist() == [[-0.8, 2.0], [-0.6, 1.0]]
    with pytest.raises(ValueError, match="direction"):
        pareto.to_minimization(values, ["up", "minimize"])


def test_normalize_maps_best_bound_to_zero_for_both_directions():
    values = np.array([[1.0, 10.0], [0.0, 50.0], [0.5, 30.0], [1.2, 70.0]])
    scaled = pareto.normalize(values, ["maximize", "minimize"], [(0.0, 1.0), (10.0, 50.0)])
    assert np.allclose(scaled, [[0.0, 0.0], [1.0, 1.0], [0.5, 0.5], [-0.2, 1.5]])
    with pytest.raises(ValueError, match="low < high"):
        pareto.normalize(values, ["maximize", "minimize"], [(1.0, 1.0), (10.0, 50.0)])


def test_normalised_hypervolume_equals_moocore_in_natural_units():
    rng = np.random.default_rng(7)
    accuracy = rng.uniform(0.2, 0.9, 40)
    gmacs = rng.uniform(1.0, 40.0, 40)
    natural = np.column_stack([accuracy, gmacs])
    bounds = [(0.0, 1.0), (0.5, 50.0)]
    reference = np.array([1.0, 1.0])  # = the worst bounds: accuracy 0, 50 GMACs
    ours = pareto.hypervolume(pareto.normalize(natural, ["maximize", "minimize"], bounds), reference)
    theirs = moocore.hypervolume(natural, ref=[0.0, 50.0], maximise=[True, False]) / (1.0 * 49.5)
    assert ours == pytest.approx(theirs, rel=1e-12)


# ------------------------------------------------------------------------------------------------
# crowding distance and ranking
# ------------------------------------------------------------------------------------------------


def test_crowding_distance_hand_made():
    points = [(0, 5), (1, 3), (4, 1), (5, 0)]
    # objective 0 (range 5): (1,3) -> (4-0)/5, (4,1) -> (5-1)/5; objective 1 (range 5): (4,1) -> (3-0)/5, (1,3) -> (5-1)/5
    distance = pareto.crowding_distance(points)
    assert distance[0] == np.inf and distance[3] == np.inf
    assert distance[1] == pytest.approx(0.8 + 0.8)
    assert distance[2] == pytest.approx(0.8 + 0.6)
    assert np.isinf(pareto.crowding_distance([(0, 1), (1, 0)])).all()
    flat = pareto.crowding_distance([(0, 1), (1, 1), (2, 1)])  # objective 1 has zero range: adds nothing
    assert flat[1] == pytest.approx(1.0)


def test_pareto_order_front_then_crowding_then_arrival():
    points = [(3, 3), (0, 5), (1, 3), (4, 1), (5, 0), (1, 3), (6, 6)]
    # front 0 = {1, 2, 3, 4, 5}; crowding: 1 and 4 are extremes (inf), 3 -> 0.8 + 0.6, the tied (1, 3)
    # pair sorts stably: 2 -> 0.2 + 0.4, 5 -> 0.6 + 0.4. Then front 1 = {0}, front 2 = {6}.
    assert pareto.pareto_order(points).tolist() == [1, 4, 3, 5, 2, 0, 6]


# ------------------------------------------------------------------------------------------------
# hypervolume
# ------------------------------------------------------------------------------------------------


def test_hypervolume_hand_made_2d():
    points = [(1, 5), (2, 3), (3, 4), (4, 1), (2, 3), (7, 0)]  # (7, 0) lies beyond the reference: ignored
    # sweep: x in [1,2) height 6-5=1, [2,4) height 3, [4,6) height 5 -> 1 + 6 + 10
    assert pareto.hypervolume(points, (6, 6)) == 17.0


def test_hypervolume_hand_made_3d():
    points = np.array([(1, 2, 3), (2, 1, 3), (3, 3, 1), (2, 2, 2)], dtype=float)
    # inclusion-exclusion by hand: boxes 6+6+3+8, pairs 4+1+4+1+4+2, triples 1+4+1+1, all four 1
    assert pareto.hypervolume(points, (4, 4, 4)) == 13.0
    assert inclusion_exclusion_hypervolume(points, np.array([4.0, 4.0, 4.0])) == 13.0
    assert grid_hypervolume(points, np.array([4, 4, 4])) == 13


@pytest.mark.parametrize("dims,n", [(2, 60), (3, 60), (4, 30), (5, 14)])
def test_hypervolume_agrees_with_moocore(dims, n):
    rng = np.random.default_rng(100 + dims)
    points = rng.uniform(0, 1, size=(n, dims))
    reference = np.full(dims, 1.1)
    assert pareto.hypervolume(points, reference) == pytest.approx(moocore.hypervolume(points, ref=reference), rel=1e-10)


@pytest.mark.parametrize("dims", [3, 4])
def test_hypervolume_agrees_with_brute_force_grid(dims):
    rng = np.random.default_rng(dims)
    reference = np.full(dims, 7)
    points = rng.integers(0, 8, size=(25, dims)).astype(float)  # some touch or exceed the reference
    assert pareto.hypervolume(points, reference) == grid_hypervolume(points, reference)


def test_hypervolume_contribution_is_exclusive_volume():
    others = np.array([(1, 5), (4, 1)], dtype=float)
    point = np.array([2.0, 3.0])
    with_point = pareto.hypervolume(np.vstack([others, point]), (6, 6))
    without = pareto.hypervolume(others, (6, 6))
    assert pareto.hypervolume_contribution(point, others, (6, 6)) == pytest.approx(with_point - without)
    assert pareto.hypervolume_contribution((5, 5), others, (6, 6)) == 0.0  # dominated
    assert pareto.hypervolume_contribution((6, 0), others, (6, 6)) == 0.0  # on the reference


@pytest.mark.parametrize("dims", [2, 3])
def test_hypervolume_history_is_monotone_and_exact_on_prefixes(dims):
    rng = np.random.default_rng(dims)
    points = rng.uniform(0, 1.2, size=(50, dims))
    points[10] = points[3]  # a duplicate adds nothing
    reference = np.ones(dims)
    history = pareto.hypervolume_history(points, reference)
    assert (np.diff(history) >= 0).all()
    assert history[10] == history[9]
    for k in range(1, len(points) + 1):
        inside = points[:k][(points[:k] < reference).all(axis=1)]
        expected = moocore.hypervolume(inside, ref=reference) if len(inside) else 0.0
        assert history[k - 1] == pytest.approx(expected, rel=1e-9, abs=1e-15)
