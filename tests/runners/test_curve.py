"""The learning-curve trainer: the proxy loop's training, evaluated at several budgets (runners/curve.py)."""

from __future__ import annotations

import numpy as np
import pytest

from runners.curve import budget_steps, train_curve
from runners.proxy import ProxyConfig, ProxyConfigError, train_proxy
from runners.synthetic import SyntheticConfig, synthetic_splits
from space import catalog_spec

TINY = ProxyConfig(epochs=2, batch_size=8, width_mult=0.125, frames=4, size=16, threads=1, lr=0.05)


@pytest.fixture(scope="module")
def tiny_data():
    return synthetic_splits(train=32, val=16, config=SyntheticConfig(num_classes=4, frames=6, size=20), seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["r3d-18", "srtg-r3d-18-final", "mtnet-32"])
def test_whole_epoch_points_are_what_a_search_trial_reports(tiny_data, name) -> None:
    """Evaluating more often must not change training: at epochs 1 and 2 the curve equals the proxy run."""
    spec = catalog_spec(name)
    proxy = train_proxy(spec, tiny_data["train"], tiny_data["val"], TINY)
    curve = train_curve(spec, tiny_data["train"], tiny_data["val"], TINY, budgets=(0.5, 1, 1.5, 2))
    assert [p.budget for p in curve] == [0.5, 1.0, 1.5, 2.0]
    assert [p.steps for p in curve] == [2, 4, 6, 8]
    assert [curve[1].accuracy, curve[3].accuracy] == [e.accuracy for e in proxy.history]
    np.testing.assert_allclose([curve[1].train_loss + curve[0].train_loss, curve[3].train_loss + curve[2].train_loss],
                               [2 * e.loss for e in proxy.history], rtol=1e-6)


@pytest.mark.slow
def test_each_point_keeps_per_clip_correctness_and_loss(tiny_data) -> None:
    curve = train_curve(catalog_spec("r3d-18"), tiny_data["train"], tiny_data["val"], TINY, budgets=(1, 2))
    labels = np.asarray(tiny_data["val"].labels)
    for point in curve:
        assert point.correct.shape == labels.shape and point.correct.dtype == bool
        assert point.accuracy == pytest.approx(point.correct.mean())
        assert point.clip_loss.shape == labels.shape and np.all(point.clip_loss >= 0)
        assert point.val_loss == pytest.approx(float(point.clip_loss.mean()), rel=1e-6)
        assert point.seconds > 0 and point.cpu_seconds > 0


def test_budgets_are_checked() -> None:
    assert budget_steps((0.5, 1, 2, 4), 48, 4) == [24, 48, 96, 192]
    for bad in [(), (1, 1, 2), (2, 1), (0, 2), (1, 3)]:
        with pytest.raises(ProxyConfigError):
            budget_steps(bad, 4, 2)
    with pytest.raises(ProxyConfigError, match="same step"):
        budget_steps((0.1, 0.2, 2), 4, 2)
