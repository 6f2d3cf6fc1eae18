"""Tests of OTDD: zero on equal sets, gradients, invariances, edge cases and the cache."""

from __future__ import annotations

import weakref

import pytest
import torch
from align_data import clusters

from xmodal.align import ObjectiveConfig, build_objective, otdd
from xmodal.align.otdd import (
    OTDD,
    ClassGroups,
    GroupPair,
    SinkhornOptions,
    class_index,
    group_distances,
    squared_distances_gradient,
)

OTDD_NAMES = ["otdd", "otdd-classwise", "otdd-orca"]
TIGHT = {"tol": 1e-10, "max_iter": 5000, "warm_start": False}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # tiny problems: threads only add synchronisation


def _config(name="otdd-classwise", **changes):
    return ObjectiveConfig(name=name, **{**TIGHT, **changes})


def _sets(scale=0.5):
    """A source (3 classes) and a different target (2 classes), small and well conditioned."""
    xs, ys = clusters([6, 5, 4], seed=0)
    xt, yt = clusters([5, 4], seed=1)
    return xs * scale, ys, xt * scale + 0.3, yt


@pytest.mark.parametrize("inner", ["exact", "gaussian"])
def test_debiased_otdd_of_a_dataset_with_itself_is_zero(inner):
    x, y = clusters([7, 5, 6], seed=2)
    same = otdd(x, y, x.clone(), y.clone(), inner=inner, max_iter=3000, tol=1e-10)
    shifted = otdd(x, y, x + 1.0, y.clone(), inner=inner, max_iter=3000, tol=1e-10)
    assert abs(float(same)) < 1e-5
    assert float(shifted) > 0.5


@pytest.mark.parametrize(
    "name, inner",
    [
        ("otdd", "exact"),
        ("otdd-classwise", "exact"),
        ("otdd", "gaussian"),
        ("otdd-classwise", "gaussian"),
        ("otdd-orca", "exact"),
    ],
)
def test_gradient_agrees_with_finite_differences(name, inner):
    xs, ys, xt, yt = _sets()
    objective = build_objective(_config(name, inner=inner, reg=0.5, tol=1e-12), xs, ys)
    x = xt.clone().requires_grad_()
    (grad,) = torch.autograd.grad(objective(x, yt), x)

    step = 1e-5
    for i, j in ((0, 0), (4, 1), (7, 0)):
        shift = torch.zeros_like(xt)
        shift[i, j] = step
        numeric = (objective(xt + shift, yt) - objective(xt - shift, yt)) / (2 * step)
        assert float(grad[i, j]) == pytest.approx(float(numeric), rel=1e-4, abs=1e-7)


@pytest.mark.parametrize("name", ["otdd", "otdd-classwise"])
def test_detached_label_costs_keep_the_value_and_drop_their_gradient(name):
    xs, ys, xt, yt = _sets()
    grads, values = [], []
    for detach in (False, True):
        objective = build_objective(_config(name, detach_label_cost=detach), xs, ys)
        x = xt.clone().requires_grad_()
        value = objective(x, yt)
        values.append(value.item())
        grads.append(torch.autograd.grad(value, x)[0])
    assert values[0] == pytest.approx(values[1], rel=1e-12)
    assert (grads[0] - grads[1]).abs().max() > 1e-3


class _Saved:
    """A tensor saved for backward, held by the autograd graph in place of the tensor."""

    def __init__(self, tensor):
        self.tensor = tensor


@pytest.mark.parametrize("name", ["otdd-classwise", "otdd-orca"])
@pytest.mark.parametrize("inner", ["exact", "gaussian"])
def test_backward_keeps_a_gradient_per_point_and_no_transport_plan(name, inner):
    xs, ys = clusters([30, 25, 35], dim=3, seed=9)  # plans: 20 x 90 per target class
    xt, yt = clusters([20, 20], dim=3, seed=10)
    objective = build_objective(_config(name, inner=inner, tol=1e-6), xs, ys)
    x = xt.clone().requires_grad_()
    saved = []

    def pack(tensor):
        holder = _Saved(tensor)
        saved.append(weakref.ref(holder))
        return holder

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda holder: holder.tensor):
        value = objective(x, yt)
    kept = [ref().tensor for ref in saved if ref() is not None]  # what the graph still holds
    assert saved and kept  # the hooks saw the chunks' work and the per-point gradient
    assert max(tensor.numel() for tensor in kept) <= x.numel()
    (grad,) = torch.autograd.grad(value, x)
    (expected,) = torch.autograd.grad(objective(x, yt), x)
    assert torch.allclose(grad, expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", ["otdd-classwise", "otdd-orca"])
def test_chunks_of_target_classes_change_neither_values_nor_gradients(name):
    xs, ys, xt, yt = _sets()
    xt, yt = torch.cat([xt, xt + 0.2]), torch.cat([yt, yt + 2])  # 4 target classes
    results = []
    for chunk_mb in (1e-6, 1e6):  # one class per chunk; all classes in one
        objective = build_objective(_config(name, chunk_mb=chunk_mb), xs, ys)
        x = xt.clone().requires_grad_()
        value = objective(x, yt)
        results.append((value.item(), torch.autograd.grad(value, x)[0]))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-9)
    assert torch.allclose(results[0][1], results[1][1], rtol=1e-7, atol=1e-10)


def test_squared_distances_gradient_matches_autograd():
    generator = torch.Generator().manual_seed(11)
    x = torch.randn(2, 5, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    y = torch.randn(7, 3, generator=generator, dtype=torch.float64)
    weights = torch.rand(2, 5, 7, generator=generator, dtype=torch.float64)
    dist = (x.unsqueeze(-2) - y).pow(2).sum(-1)  # (2, 5, 7)
    (expected,) = torch.autograd.grad((weights * 0.5 * dist).sum(), x)
    gradient = squared_distances_gradient(x.detach(), y, weights, 0.5)
    assert torch.allclose(gradient, expected, rtol=1e-12, atol=1e-12)


def test_gradient_steps_reduce_the_distance_to_a_fixed_source():
    xs, ys = clusters([10, 10, 10], seed=3, spread=1.0, dtype=torch.float32)
    xt, yt = clusters([10, 10], seed=4, spread=1.0, dtype=torch.float32)
    objective = build_objective(ObjectiveConfig(), 0.5 * xs, ys)
    x = (0.5 * xt + 2.0).requires_grad_()
    optimizer = torch.optim.Adam([x], lr=0.05)
    start = objective(x, yt).item()
    for _ in range(200):
        optimizer.zero_grad()
        objective(x, yt).backward()
        optimizer.step()
    assert objective(x, yt).item() < 0.05 * start


@pytest.mark.parametrize("name", OTDD_NAMES)
def test_renaming_the_labels_changes_nothing(name):
    xs, ys, xt, yt = _sets()
    xt, yt = torch.cat([xt, xt[:3] + 0.1]), torch.cat([yt, torch.zeros(3, dtype=yt.dtype)])
    settings = {"points_per_class": 4, "rounds": 3}  # subsamples: class 0 has 8 points
    value = build_objective(_config(name, **settings), xs, ys)(xt, yt)
    source_names, target_names = torch.tensor([40, -2, 7]), torch.tensor([5, -9])
    renamed = build_objective(_config(name, **settings), xs, source_names[ys])
    assert float(renamed(xt, target_names[yt])) == pytest.approx(float(value), rel=1e-9)


@pytest.mark.parametrize("name", OTDD_NAMES)
@pytest.mark.parametrize("inner", ["exact", "gaussian"])
@pytest.mark.parametrize(
    "sizes", [[6], [5, 1, 3], [9, 2]], ids=["one-class", "single-point-class", "unequal"]
)
def test_edge_cases_give_finite_values_and_gradients(name, inner, sizes):
    xs, ys = clusters([6, 1, 3], seed=5)  # a single-point source class too
    xt, yt = clusters(sizes, seed=6)
    x = xt.clone().requires_grad_()
    value = build_objective(_config(name, inner=inner, tol=1e-6), xs, ys)(x, yt)
    (grad,) = torch.autograd.grad(value, x, allow_unused=True)
    assert torch.isfinite(value) and value.item() > 0
    assert torch.isfinite(grad).all()


def test_orca_variant_skips_single_point_classes():
    xs, ys, xt, yt = _sets()
    objective = build_objective(_config("otdd-orca"), xs, ys)
    with_single = objective(torch.cat([xt, xt[:1] + 5]), torch.cat([yt, torch.tensor([9])]))
    without = objective(xt, yt)
    n = len(yt)
    assert float(with_single) == pytest.approx(float(without) * n / (n + 1), rel=1e-9)


def test_orca_variant_is_half_the_distance_at_twice_the_reg_with_half_label_weight():
    # OT_eps(C / 2) = OT_2eps(C) / 2: the ORCA code's halved costs at reg 0.1 equal half the
    # distance at reg 0.2 whose label distances count for half.
    xs, ys, xt, yt = _sets()
    orca = build_objective(_config("otdd-orca", reg=0.1), xs, ys)(xt, yt)
    options = SinkhornOptions(reg=0.2, max_iter=5000, tol=1e-10)
    plain = OTDD(xs, ys, options, label_weight=0.5, warm_start=False)
    index = class_index(yt, 2, torch.arange(len(yt)), None)
    per_class = plain.per_group(ClassGroups.gather(xt, index, torch.arange(2)), [0, 1])
    frequencies = torch.bincount(yt) / len(yt)
    assert float(orca) == pytest.approx(0.5 * float((frequencies * per_class).sum()), rel=1e-7)


def test_gaussian_and_exact_label_distances_roughly_agree_on_gaussian_data():
    xs, ys = clusters([40, 40, 40], seed=7, spread=3.0)
    xt, yt = clusters([40, 40], seed=8, spread=3.0)
    settings = {"reg": 0.1, "tol": 1e-3, "max_iter": 500}
    values = {
        inner: otdd(xs, ys, xt, yt, inner=inner, **settings) for inner in ("exact", "gaussian")
    }
    assert float(values["gaussian"]) == pytest.approx(float(values["exact"]), rel=0.1)
    caches = {
        inner: build_objective(_config("otdd", inner=inner, **settings), xs, ys).cache
        for inner in ("exact", "gaussian")
    }
    exact, gaussian = caches["exact"].label_costs, caches["gaussian"].label_costs
    assert torch.allclose(gaussian, exact, rtol=0.15, atol=0.5)


def test_source_work_is_done_once_and_kept_in_the_cache(monkeypatch):
    builds = []
    original = OTDD.build_cache

    def counted(self, x, y, terms=None):
        builds.append(len(x))
        return original(self, x, y, terms)

    monkeypatch.setattr(OTDD, "build_cache", counted)
    xs, ys, xt, yt = _sets()
    objective = build_objective(ObjectiveConfig(), xs, ys)
    cache, source_term = objective.cache, objective.cache.self_value
    for shift in (0.0, 0.1, 0.2):
        objective(xt + shift, yt)
    assert builds == [len(xs)]
    assert objective.cache is cache and objective.cache.self_value is source_term
    assert set(key[0] for key in cache.warm) == {"inner", "outer"}  # warm starts kept


def test_rounds_collapse_to_one_when_no_class_exceeds_b():
    xs, ys, xt, yt = _sets()
    one = build_objective(_config(rounds=1), xs, ys)(xt, yt)
    many = build_objective(_config(rounds=4), xs, ys)(xt, yt)
    assert float(many) == pytest.approx(float(one), rel=1e-12)
    subsampled = build_objective(_config(rounds=4, points_per_class=2), xs, ys)(xt, yt)
    assert torch.isfinite(subsampled) and float(subsampled) != pytest.approx(float(one))


def test_class_index_keeps_the_first_points_of_each_class_in_order():
    labels = torch.tensor([1, 0, 1, 1, 0])
    table = class_index(labels, 2, torch.tensor([4, 3, 2, 1, 0]), limit=2)
    assert table.tolist() == [[4, 1], [3, 2]]
    assert class_index(labels, 2, torch.arange(5), None).tolist() == [[1, 4, -1], [0, 2, 3]]


@pytest.mark.parametrize("inner", ["exact", "gaussian"])
def test_source_work_in_small_chunks_equals_the_dense_computation(inner):
    xs, ys = clusters([9, 4, 7, 1], dim=3, seed=5)  # unequal classes: padded groups
    options = SinkhornOptions(reg=0.1, tol=1e-10, max_iter=5000)
    chunked = OTDD(xs, ys, options, inner=inner, chunk_bytes=64)  # one pair or row at a time
    whole = OTDD(xs, ys, options, inner=inner)

    groups = whole.cache.groups
    within = group_distances(groups, groups)  # (K, m, K, m): what the chunks avoid forming
    pair = GroupPair(groups, groups, within, 1.0, whole.cache.self_values, whole.cache.self_values)
    dense, dense_labels = whole.dataset_self_ot(pair)
    for cache in (chunked.cache, whole.cache):
        assert torch.allclose(cache.label_costs, dense_labels, rtol=1e-8, atol=1e-10)
        assert float(cache.self_value) == pytest.approx(float(dense.value[0]), rel=1e-8)
    assert torch.allclose(chunked.cache.self_values, whole.cache.self_values, rtol=1e-10)


def test_groups_of_points_already_in_class_order_share_their_memory():
    from xmodal.align.otdd import ClassGroups, class_index

    x = torch.randn(12, 3)
    labels = torch.arange(12) // 4  # three classes of four, in order
    index = class_index(labels, 3, torch.arange(12), None)  # (3, 4)
    groups = ClassGroups.gather(x, index, torch.arange(3))
    assert groups.x.data_ptr() == x.data_ptr()  # a view, not a copy
    assert torch.equal(groups.x, x[index])
    shuffled = torch.randperm(12, generator=torch.Generator().manual_seed(0))
    moved = ClassGroups.gather(x, class_index(labels, 3, shuffled, None), torch.arange(3))
    assert moved.x.data_ptr() != x.data_ptr()
    padded = ClassGroups.gather(x, torch.tensor([[0, 1, 2], [3, -1, -1]]), torch.arange(2))
    assert torch.equal(padded.x[1, 1:], torch.zeros(2, 3))  # padding rows are zero
    assert torch.allclose(padded.weights[1], torch.tensor([1.0, 0.0, 0.0]))
