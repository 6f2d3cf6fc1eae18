"""Dolan-More performance profiles: how often each method is close to the best one.

For a task t and a method m with loss l[t, m] (lower is better), the performance ratio is

    r[t, m] = l[t, m] / min over methods m' of l[t, m'],

and the profile of m is rho_m(tau) = |{t : r[t, m] <= tau}| / n_tasks, the share of tasks on
which m is within a factor tau of the best method (Dolan and More 2002, "Benchmarking
optimization software with performance profiles"). rho_m(1) is the share of tasks that m wins
(ties count for every tied method); a method without a result on a task (failed, missing or
undefined) has ratio infinity there, so it is never within any factor.

Metrics become losses by `as_loss`: a metric to minimise (error, nll, rel-l2, mae, mse) is
taken as it is, and one to maximise (macro-f1, auroc, map, all at most 1) as 1 - value.

Example:
    >>> ratios = performance_ratios({"a": {"x": 0.1, "y": 0.2}, "b": {"x": 0.3, "y": 0.3}})
    >>> performance_profile(ratios, [1.0, 2.0])["y"].tolist()
    [0.5, 1.0]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

# Metric value -> loss (lower is better), by the metric's direction.
LOSS_BY_DIRECTION: dict[str, Callable[[float], float]] = {
    "min": lambda value: value,
    "max": lambda value: 1.0 - value,
}


def as_loss(value: float | None, direction: str) -> float:
    """The loss (lower is better) of a metric value; NaN when there is no value."""
    if direction not in LOSS_BY_DIRECTION:
        raise ValueError(f"direction={direction!r} is not one of {list(LOSS_BY_DIRECTION)}")
    if value is None:
        return float("nan")
    return float(LOSS_BY_DIRECTION[direction](float(value)))


def performance_ratios(
    losses: Mapping[str, Mapping[str, float | None]], floor: float = 1e-6
) -> dict[str, np.ndarray]:
    """Performance ratios r[t, m] of every method, one entry per task.

    Args:
        losses: losses[task][method], lower is better; None or NaN means no result.
        floor: losses below it count as `floor`, so that a perfect score (loss 0) divides
            nothing by zero: two methods at 0 tie with ratio 1, while 0.05 against a best
            of 0 gives 0.05 / 1e-6 = 5e4.

    Returns:
        {method: ratios (n_tasks,)} in the order methods first appear, over the tasks where
        at least one method has a result (in the order of `losses`); inf where a method
        has none.
    """
    if floor <= 0:
        raise ValueError(f"floor must be > 0, got {floor!r}")
    methods = list(dict.fromkeys(m for row in losses.values() for m in row))
    table = np.array(
        [[_value(row.get(m)) for m in methods] for row in losses.values()], dtype=float
    ).reshape(len(losses), len(methods))  # (n_tasks, n_methods)
    table = table[~np.isnan(table).all(axis=1)]
    table = np.maximum(table, floor)  # NaN stays NaN
    best = np.nanmin(table, axis=1, keepdims=True) if len(table) else table  # (n_tasks, 1)
    ratios = np.where(np.isnan(table), np.inf, table / best)
    return {m: ratios[:, j] for j, m in enumerate(methods)}


def _value(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def performance_profile(
    ratios: Mapping[str, np.ndarray], taus: Sequence[float] | np.ndarray
) -> dict[str, np.ndarray]:
    """rho_m(tau): the share of tasks with r[t, m] <= tau, for each tau; shape (len(taus),)."""
    taus = np.asarray(taus, dtype=float)
    profiles = {}
    for method, r in ratios.items():
        if len(r) == 0:
            profiles[method] = np.zeros_like(taus)
            continue
        profiles[method] = (r[None, :] <= taus[:, None]).mean(axis=1)  # (n_taus, n_tasks)
    return profiles


def tau_grid(ratios: Mapping[str, np.ndarray], points: int = 200, least: float = 2.0) -> np.ndarray:
    """Log-spaced tau values from 1 to a little past the largest finite ratio (at least `least`),
    with every observed ratio included so that the profile's steps are exact."""
    finite = np.concatenate([r[np.isfinite(r)] for r in ratios.values()] or [np.ones(1)])
    top = max(least, float(finite.max(initial=1.0)) * 1.05)
    return np.unique(np.concatenate([np.geomspace(1.0, top, points), finite]))
