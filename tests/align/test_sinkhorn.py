"""Tests of the batched log-stabilised Sinkhorn solver against POT and finite differences."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch

from xmodal.align.sinkhorn import (
    epsilon_schedule,
    sinkhorn,
    sinkhorn_divergence,
    symmetric_sinkhorn_by_blocks,
)

TIGHT = {"max_iter": 20000, "tol": 1e-11}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # tiny problems: threads only add synchronisation


def _problem(n=12, m=17, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=generator, dtype=dtype)
    y = torch.randn(m, 2, generator=generator, dtype=dtype) + 0.5
    a = torch.rand(n, generator=generator, dtype=dtype) + 0.1
    b = torch.rand(m, generator=generator, dtype=dtype) + 0.1
    return torch.cdist(x, y) ** 2, a / a.sum(), b / b.sum()


@pytest.mark.parametrize("reg", [1.0, 0.1, 0.03])
def test_value_agrees_with_pot_sinkhorn2(reg):
    cost, a, b = _problem()
    result = sinkhorn(cost, a, b, reg, **TIGHT)
    args = (a.numpy(), b.numpy(), cost.numpy(), reg)
    pot = dict(method="sinkhorn_log", stopThr=1e-13, numItermax=200000)
    expected_linear = float(ot.sinkhorn2(*args, **pot))
    plan = ot.sinkhorn(*args, **pot)
    expected_entropic = expected_linear + reg * np.sum(plan * np.log(plan / np.outer(a, b)))

    assert result.converged
    assert float(result.transport_cost()) == pytest.approx(expected_linear, rel=1e-4)
    assert float(result.value) == pytest.approx(expected_entropic, rel=1e-4)
    assert np.abs(result.plan.numpy() - plan).max() < 1e-4 * plan.max()


def test_small_reg_approaches_emd2():
    cost, a, b = _problem()
    exact = ot.emd2(a.numpy(), b.numpy(), cost.numpy())
    gaps = [
        float(sinkhorn(cost, a, b, reg, **TIGHT).transport_cost()) - exact
        for reg in (0.3, 0.03, 0.003)
    ]
    assert gaps[0] > gaps[1] > gaps[2] >= -1e-9
    assert gaps[2] < 1e-3 * exact


def test_batch_with_padding_matches_single_problems():
    problems = [_problem(n, m, seed) for n, m, seed in ((5, 9, 1), (8, 6, 2))]
    cost = torch.zeros(2, 8, 9, dtype=torch.float64)
    a, b = torch.zeros(2, 8, dtype=torch.float64), torch.zeros(2, 9, dtype=torch.float64)
    for k, (c, wa, wb) in enumerate(problems):
        cost[k, : len(wa), : len(wb)], a[k, : len(wa)], b[k, : len(wb)] = c, wa, wb
    batched = sinkhorn(cost, a, b, 0.1, **TIGHT)
    for k, problem in enumerate(problems):
        single = sinkhorn(*problem, 0.1, **TIGHT)
        assert float(batched.value[k]) == pytest.approx(float(single.value), rel=1e-9)
    assert torch.all(batched.plan[0, 5:] == 0) and torch.all(batched.plan[1, :, 6:] == 0)


def _primal(result, reg):
    """<P, C> + reg KL(P | a b^T) of a result's plan, for uniform weights."""
    plan = result.plan
    reference = plan.sum(1, keepdim=True) * plan.sum(0, keepdim=True)
    entropy = torch.where(plan > 0, plan * torch.log(plan / reference), 0.0).sum()
    return float(result.transport_cost() + reg * entropy)


def test_symmetric_updates_converge_where_alternating_ones_crawl():
    x = torch.randn(30, 2, dtype=torch.float64)
    cost = torch.cdist(x, x) ** 2
    alternating = sinkhorn(cost, reg=0.3, max_iter=3000, tol=1e-11)
    symmetric = sinkhorn(cost, reg=0.3, symmetric=True, **TIGHT)
    assert symmetric.converged and symmetric.n_iter < 100
    assert not alternating.converged  # a known slow case of alternating updates
    assert float(symmetric.value) == pytest.approx(_primal(symmetric, 0.3), rel=1e-9)
    assert float(alternating.value) == pytest.approx(float(symmetric.value), rel=1e-4)


def test_gradient_is_the_plan_and_agrees_with_finite_differences():
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(7, 2, generator=generator, dtype=torch.float64, requires_grad=True)
    y = torch.randn(9, 2, generator=generator, dtype=torch.float64)
    result = sinkhorn(torch.cdist(x, y) ** 2, reg=0.2, **TIGHT)
    (grad,) = torch.autograd.grad(result.value, x)

    def value(points):
        return float(sinkhorn(torch.cdist(points, y) ** 2, reg=0.2, **TIGHT).value)

    step = 1e-6
    for i, j in ((0, 0), (3, 1), (6, 0)):
        shift = torch.zeros_like(x)
        shift[i, j] = step
        numeric = (value(x.detach() + shift) - value(x.detach() - shift)) / (2 * step)
        assert float(grad[i, j]) == pytest.approx(numeric, rel=1e-5, abs=1e-8)


def test_warm_start_reaches_the_same_value_with_fewer_iterations():
    cost, a, b = _problem(30, 40)
    first = sinkhorn(cost, a, b, 0.01, **TIGHT)
    moved = cost + 0.01 * torch.rand_like(cost)
    cold = sinkhorn(moved, a, b, 0.01, **TIGHT)
    warm = sinkhorn(moved, a, b, 0.01, init=first.g, **TIGHT)
    assert float(warm.value) == pytest.approx(float(cold.value), rel=1e-8)
    assert warm.n_iter < cold.n_iter


def test_divergence_of_a_measure_with_itself_is_zero():
    x = torch.randn(15, 3, dtype=torch.float64)
    cost = torch.cdist(x, x) ** 2
    # the cross term is a symmetric problem solved by alternating updates, which crawl there
    assert abs(float(sinkhorn_divergence(cost, cost, cost, reg=0.1, max_iter=2000))) < 1e-5
    y = x + 1.0
    cross, other = torch.cdist(x, y) ** 2, torch.cdist(y, y) ** 2
    positive = sinkhorn_divergence(cross, cost, other, max_iter=2000)
    assert float(positive) > 0.5


def test_float32_with_large_costs_stays_finite():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(40, 64, generator=generator) * 10  # squared distances ~ 1e4, reg 0.1
    cost = torch.cdist(x, x[:30] + 1) ** 2
    result = sinkhorn(cost, reg=0.1, max_iter=200, tol=1e-3)
    assert torch.isfinite(result.value) and torch.isfinite(result.plan).all()
    assert torch.allclose(result.plan.sum(0), torch.full((30,), 1 / 30), atol=1e-3 / 30 * 5)


def test_epsilon_schedule_halves_from_the_cost_spread_down_to_reg():
    cost = torch.tensor([[0.0, 8.0], [1.0, 3.0]])
    assert epsilon_schedule(cost, 1.0, 0.5, warm=False) == [8.0, 4.0, 2.0, 1.0]
    assert epsilon_schedule(cost, 1.0, 0.5, warm=True) == [1.0]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"cost": torch.zeros(0, 3)}, "non-empty"),
        ({"cost": torch.full((2, 3), float("nan"))}, "NaN"),
        ({"a": torch.tensor([0.5, 0.6])}, "sum to 1"),
        ({"b": torch.ones(4) / 4}, "shape"),
        ({"reg": 0.0}, "reg"),
        ({"scaling": 1.0}, "scaling"),
    ],
)
def test_bad_input_is_rejected_with_the_argument_named(kwargs, match):
    args = {"cost": torch.rand(2, 3), "a": None, "b": None, "reg": 0.1, "scaling": 0.5}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        sinkhorn(args["cost"], args["a"], args["b"], args["reg"], scaling=args["scaling"])


def _rows_of(cost):
    """A `cost_block` callable that copies tiles of a known cost matrix."""
    return lambda rows, cols, out: out.copy_(cost[rows, cols])


@pytest.mark.parametrize("block_size", [1, 5, 64])
def test_blockwise_symmetric_sinkhorn_matches_the_dense_solver(block_size):
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(23, 3, generator=generator, dtype=torch.float64)
    a = torch.rand(23, generator=generator, dtype=torch.float64) + 0.1
    a[[4, 17]] = 0.0  # padding
    a /= a.sum()
    cost = torch.cdist(x, x) ** 2
    for reg in (1.0, 0.1):
        dense = sinkhorn(cost, a, a, reg, symmetric=True, **TIGHT)
        blocks = symmetric_sinkhorn_by_blocks(
            _rows_of(cost), a, reg, block_size=block_size, **TIGHT
        )
        assert blocks.converged
        assert float(blocks.value) == pytest.approx(float(dense.value), rel=1e-9)
        assert torch.allclose(blocks.potential, dense.g, atol=1e-8)
        assert float(blocks.potential[4]) == 0.0


def test_blockwise_symmetric_sinkhorn_reports_non_convergence_and_bad_weights():
    x = torch.randn(30, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cost = torch.cdist(x, x) ** 2
    a = torch.full((30,), 1 / 30, dtype=torch.float64)
    result = symmetric_sinkhorn_by_blocks(_rows_of(cost), a, 1e-3, max_iter=1, tol=1e-12)
    assert not result.converged and result.n_iter == 1 and result.error > 1e-12
    with pytest.raises(ValueError, match="sum to 1"):
        symmetric_sinkhorn_by_blocks(_rows_of(cost), 2 * a, 0.1)
    with pytest.raises(ValueError, match="reg"):
        symmetric_sinkhorn_by_blocks(_rows_of(cost), a, 0.0)
