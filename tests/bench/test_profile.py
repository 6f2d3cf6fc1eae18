import math

import numpy as np
import pytest

from xmodal.bench.profile import as_loss, performance_profile, performance_ratios, tau_grid

# Hand-made losses: t3 has two perfect scores, t2 a method without a result, t4 no result at all.
LOSSES = {
    "t1": {"A": 0.1, "B": 0.2, "C": 0.4},
    "t2": {"A": 0.3, "B": 0.15, "C": None},
    "t3": {"A": 0.0, "B": 0.0, "C": 0.5},
    "t4": {"A": None, "B": float("nan")},
}


def test_ratios_divide_by_the_best_method_of_each_task():
    ratios = performance_ratios(LOSSES)
    assert list(ratios) == ["A", "B", "C"]
    np.testing.assert_allclose(ratios["A"], [1.0, 2.0, 1.0])
    np.testing.assert_allclose(ratios["B"], [2.0, 1.0, 1.0])
    assert ratios["C"][0] == pytest.approx(4.0)
    assert ratios["C"][1] == math.inf  # no result: never within any factor
    assert ratios["C"][2] == pytest.approx(0.5 / 1e-6)  # the floor stands in for a loss of 0


def test_profile_counts_tasks_within_a_factor_of_the_best():
    rho = performance_profile(performance_ratios(LOSSES), [1.0, 2.0, 4.0, 1e6])
    np.testing.assert_allclose(rho["A"], [2 / 3, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(rho["B"], [2 / 3, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(rho["C"], [0.0, 0.0, 1 / 3, 2 / 3])


def test_a_larger_floor_turns_small_gaps_into_ties():
    ratios = performance_ratios({"t": {"A": 0.0, "B": 0.01}}, floor=0.01)
    np.testing.assert_allclose(ratios["B"], [1.0])


def test_losses_from_both_directions():
    assert as_loss(0.25, "min") == 0.25
    assert as_loss(0.8, "max") == pytest.approx(0.2)
    assert math.isnan(as_loss(None, "max"))
    with pytest.raises(ValueError, match="direction='up'"):
        as_loss(0.5, "up")
    with pytest.raises(ValueError, match="floor"):
        performance_ratios(LOSSES, floor=0)


def test_tau_grid_starts_at_one_and_holds_every_finite_ratio():
    ratios = performance_ratios(LOSSES)
    taus = tau_grid(ratios)
    assert taus[0] == 1.0 and np.all(np.diff(taus) > 0)
    assert {2.0, 4.0} <= set(taus.tolist())
    assert taus[-1] > 0.5 / 1e-6
