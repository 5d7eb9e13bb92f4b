"""Pareto math shared by the search (MOASHA ranking, live hypervolume) and the reports.

Pure numpy; imports nothing else from the project so ``reports`` may use it too.

**Convention: every function here minimises.** Rows are points, columns are objectives. Turn values in
their natural directions into minimisation form with :func:`to_minimization` (negates the maximised
columns) or, for hypervolume, with :func:`normalize` (maps each objective onto fixed bounds so that
0 is the best bound and 1 the worst, whatever the direction). A *reference point* lives in the same
space as the points it measures; only points strictly better than it in every objective add volume.

Definitions: ``a`` dominates ``b`` when ``a <= b`` in every objective and ``a < b`` in at least one.
Equal points do not dominate each other, so duplicates share a front.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "MAXIMIZE",
    "MINIMIZE",
    "check_directions",
    "to_minimization",
    "normalize",
    "dominates",
    "non_dominated_sort",
    "front_ranks",
    "pareto_mask",
    "crowding_distance",
    "pareto_order",
    "hypervolume",
    "hypervolume_contribution",
    "hypervolume_history",
]

MAXIMIZE = "maximize"
MINIMIZE = "minimize"
_ROW_CHUNK = 512  # rows of the domination matrix built at once: bounds memory to CHUNK x N x M booleans


# --------------------------------------------------------------------------------------------
# Directions and normalisation
# --------------------------------------------------------------------------------------------


def check_directions(directions: Sequence[str]) -> tuple[str, ...]:
    """Validate a direction per objective (``"maximize"`` / ``"minimize"``; British spellings accepted)."""
    checked = []
    for direction in directions:
        text = str(direction).lower().replace("maximise", MAXIMIZE).replace("minimise", MINIMIZE)
        if text not in (MAXIMIZE, MINIMIZE):
            raise ValueError(f"direction {direction!r} is not allowed; allowed: 'maximize', 'minimize'")
        checked.append(text)
    return tuple(checked)


def _as_points(points: ArrayLike, *, name: str = "points") -> np.ndarray:
    array = np.asarray(points, dtype=float)
    if array.ndim == 1 and array.size == 0:
        array = array.reshape(0, 0)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (points x objectives), got shape {array.shape}")
    if np.isnan(array).any():
        raise ValueError(f"{name} contain NaN; drop or fill those rows first")
    return array


def to_minimization(values: ArrayLike, directions: Sequence[str]) -> np.ndarray:
    """Negate the maximised columns so smaller is better in every column."""
    array = np.asarray(values, dtype=float)
    directions = check_directions(directions)
    if array.ndim != 2 or array.shape[1] != len(directions):
        raise ValueError(f"values of shape {array.shape} do not match {len(directions)} directions")
    signs = np.array([-1.0 if d == MAXIMIZE else 1.0 for d in directions])
    return array * signs


def normalize(values: ArrayLike, directions: Sequence[str], bounds: Sequence[Sequence[float]]) -> np.ndarray:
    """Map each objective onto its fixed ``(low, high)`` bounds: 0 = best bound, 1 = worst bound.

    For a minimised objective ``(v - low) / (high - low)``; for a maximised one ``(high - v) / (high - low)``.
    Values outside the bounds are not clipped (they land below 0 or above 1), so a point beyond a
    reference point of 1.0 simply adds no hypervolume. Fixed bounds keep hypervolume comparable over a
    run and between runs, which data-dependent normalisation would not.
    """
    array = np.asarray(values, dtype=float)
    directions = check_directions(directions)
    bounds_array = np.asarray(bounds, dtype=float)
    if bounds_array.shape != (len(directions), 2):
        raise ValueError(f"bounds must be one (low, high) pair per objective, got shape {bounds_array.shape}")
    low, high = bounds_array[:, 0], bounds_array[:, 1]
    if not (np.isfinite(bounds_array).all() and (high > low).all()):
        raise ValueError(f"bounds must be finite with low < high, got {bounds_array.tolist()}")
    if array.ndim != 2 or array.shape[1] != len(directions):
        raise ValueError(f"values of shape {array.shape} do not match {len(directions)} directions")
    scaled = (array - low) / (high - low)
    maximised = np.array([d == MAXIMIZE for d in directions])
    scaled[:, maximised] = 1.0 - scaled[:, maximised]
    return scaled


# --------------------------------------------------------------------------------------------
# Dominance and non-dominated sorting
# --------------------------------------------------------------------------------------------


def dominates(a: ArrayLike, b: ArrayLike) -> bool:
    """Whether ``a`` dominates ``b`` (minimisation)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return bool((a <= b).all() and (a < b).any())


def _domination_matrix(points: np.ndarray) -> np.ndarray:
    """``D[i, j]`` is True when point i dominates point j."""
    n = len(points)
    matrix = np.zeros((n, n), dtype=bool)
    for start in range(0, n, _ROW_CHUNK):
        rows = points[start : start + _ROW_CHUNK, None, :]
        no_worse = (rows <= points[None, :, :]).all(axis=2)
        better = (rows < points[None, :, :]).any(axis=2)
        matrix[start : start + _ROW_CHUNK] = no_worse & better
    return matrix


def non_dominated_sort(points: ArrayLike) -> list[np.ndarray]:
    """Fronts of point indices, best first (front 0 is the Pareto front); indices ascend within a front.

    Fast non-dominated sorting (Deb et al. 2002) on a vectorised domination matrix: O(M N^2).
    """
    array = _as_points(points)
    if len(array) == 0:
        return []
    matrix = _domination_matrix(array)
    dominator_counts = matrix.sum(axis=0)
    remaining = np.ones(len(array), dtype=bool)
    fronts: list[np.ndarray] = []
    current = np.flatnonzero(dominator_counts == 0)
    while current.size:
        fronts.append(current)
        remaining[current] = False
        dominator_counts = dominator_counts - matrix[current].sum(axis=0)
        current = np.flatnonzero(remaining & (dominator_counts == 0))
    return fronts


def front_ranks(points: ArrayLike) -> np.ndarray:
    """The front index of every point (0 = non-dominated)."""
    array = _as_points(points)
    ranks = np.empty(len(array), dtype=int)
    for rank, front in enumerate(non_dominated_sort(array)):
        ranks[front] = rank
    return ranks


def pareto_mask(points: ArrayLike) -> np.ndarray:
    """Boolean mask of the non-dominated points."""
    array = _as_points(points)
    mask = np.zeros(len(array), dtype=bool)
    if len(array):
        mask[non_dominated_sort(array)[0]] = True
    return mask


# --------------------------------------------------------------------------------------------
# Crowding distance and the ranking MOASHA uses
# --------------------------------------------------------------------------------------------


def crowding_distance(points: ArrayLike) -> np.ndarray:
    """NSGA-II crowding distance of each point within the given set (call it on one front).

    Per objective, the two extreme points get ``inf`` and each interior point the gap between its
    neighbours divided by the objective's range; distances add up over objectives. An objective with
    zero range adds nothing. Sets of one or two points are all ``inf``.
    """
    array = _as_points(points)
    n = len(array)
    distance = np.zeros(n)
    if n <= 2:
        distance[:] = np.inf
        return distance
    for column in array.T:
        order = np.argsort(column, kind="stable")
        sorted_values = column[order]
        span = sorted_values[-1] - sorted_values[0]
        if not np.isfinite(span) or span <= 0:
            continue
        distance[order[0]] = distance[order[-1]] = np.inf
        distance[order[1:-1]] += (sorted_values[2:] - sorted_values[:-2]) / span
    return distance


def pareto_order(points: ArrayLike) -> np.ndarray:
    """Indices best first: by front index, then larger crowding distance, then smaller index (earlier)."""
    array = _as_points(points)
    ranks = np.empty(len(array), dtype=int)
    crowding = np.empty(len(array))
    for rank, front in enumerate(non_dominated_sort(array)):
        ranks[front] = rank
        crowding[front] = crowding_distance(array[front])
    indices = np.arange(len(array))
    return np.lexsort((indices, -crowding, ranks))


# --------------------------------------------------------------------------------------------
# Hypervolume
# --------------------------------------------------------------------------------------------


def _check_reference(array: np.ndarray, reference: ArrayLike) -> np.ndarray:
    ref = np.asarray(reference, dtype=float).reshape(-1)
    if array.shape[1] and ref.shape[0] != array.shape[1]:
        raise ValueError(f"reference point has {ref.shape[0]} objectives, points have {array.shape[1]}")
    if not np.isfinite(ref).all():
        raise ValueError(f"reference point must be finite, got {ref.tolist()}")
    return ref


def _hv_2d(points: np.ndarray, ref: np.ndarray) -> float:
    """Sweep along the first objective, keeping the running best second objective."""
    order = np.lexsort((points[:, 1], points[:, 0]))
    x = points[order, 0]
    best_y = np.minimum.accumulate(points[order, 1])
    widths = np.diff(np.append(x, ref[0]))
    return float(np.sum(widths * (ref[1] - best_y)))


def _hv_sliced(points: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume of points that all lie strictly inside the reference box.

    1-D and 2-D directly; d >= 3 by slicing along the last objective (HSO, While et al. 2006): between
    consecutive values of the last objective, the dominated region is the (d-1)-D hypervolume of the
    points seen so far, projected. Exact for any d; O(N^(d-1) log N), fine for the few hundred points of
    a front.
    """
    d = points.shape[1]
    if len(points) == 0:
        return 0.0
    if d == 1:
        return float(ref[0] - points[:, 0].min())
    if d == 2:
        return _hv_2d(points, ref)
    order = np.argsort(points[:, -1], kind="stable")
    ordered = points[order]
    depth_edges = np.append(ordered[:, -1], ref[-1])
    total = 0.0
    for i in range(len(ordered)):
        depth = depth_edges[i + 1] - depth_edges[i]
        if depth <= 0:
            continue
        projected = ordered[: i + 1, :-1]
        if d > 3:  # the 2-D sweep needs no filtering; higher slices shrink a lot with it
            projected = projected[pareto_mask(projected)]
        total += depth * _hv_sliced(projected, ref[:-1])
    return float(total)


def hypervolume(points: ArrayLike, reference: ArrayLike) -> float:
    """Exact hypervolume dominated by ``points`` and bounded by ``reference`` (minimisation).

    Points not strictly better than the reference in every objective add nothing and are dropped.
    """
    array = _as_points(points)
    if len(array) == 0:
        return 0.0
    ref = _check_reference(array, reference)
    inside = array[(array < ref).all(axis=1)]
    if len(inside) == 0:
        return 0.0
    front = np.unique(inside[pareto_mask(inside)], axis=0)
    return _hv_sliced(front, ref)


def hypervolume_contribution(point: ArrayLike, others: ArrayLike, reference: ArrayLike) -> float:
    """Volume that ``point`` adds to ``others`` (its exclusive hypervolume, >= 0).

    Computed as the point's own box minus the hypervolume of ``others`` limited to that box (WFG's
    exclusive-volume identity), so its rounding error scales with the box, not with the whole volume.
    """
    p = np.asarray(point, dtype=float).reshape(-1)
    ref = np.asarray(reference, dtype=float).reshape(-1)
    if not (p < ref).all():
        return 0.0
    box = float(np.prod(ref - p))
    rest = _as_points(others, name="others") if np.size(others) else np.empty((0, p.size))
    if len(rest) == 0:
        return box
    limited = np.maximum(rest, p)
    return max(0.0, box - hypervolume(limited, ref))


def hypervolume_history(points: ArrayLike, reference: ArrayLike) -> np.ndarray:
    """Hypervolume of the first k points for every k = 1..N (points in arrival order).

    Grows by each new point's exclusive contribution (never negative), so the history is
    non-decreasing by construction and agrees with :func:`hypervolume` of every prefix up to rounding.
    """
    array = _as_points(points)
    history = np.zeros(len(array))
    if len(array) == 0:
        return history
    ref = _check_reference(array, reference)
    front = np.empty((0, array.shape[1]))
    total = 0.0
    for k, point in enumerate(array):
        if (point < ref).all() and not (front <= point).all(axis=1).any():
            total += hypervolume_contribution(point, front, ref)
            keep = ~(point <= front).all(axis=1)  # drop what the new point weakly dominates
            front = np.vstack([front[keep], point])
        history[k] = total
    return history
