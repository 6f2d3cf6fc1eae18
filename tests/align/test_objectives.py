"""Tests of the objective registry, its config, the MMD and L2 objectives and input checks."""

from __future__ import annotations

import pytest
import torch
from align_data import clusters

from xmodal.align import OBJECTIVES, ObjectiveConfig, build_objective, energy_distance, mmd
from xmodal.registry import UnknownNameError

NAMES = ["otdd", "otdd-classwise", "otdd-orca", "mmd", "l2"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # tiny problems: threads only add synchronisation


def test_registry_holds_the_five_objectives_and_names_them_on_a_miss():
    assert set(NAMES) <= set(OBJECTIVES.names())
    with pytest.raises(UnknownNameError, match="otdd-classwise"):
        OBJECTIVES.get("otdd-fast")
    assert ObjectiveConfig().name == "otdd-classwise"


def test_config_round_trips_through_yaml_and_rejects_bad_values(tmp_path):
    config = ObjectiveConfig(name="mmd", reg=0.2, mmd_bandwidths=(1.0, 3.0), rounds=2)
    config.to_yaml(tmp_path / "objective.yaml")
    assert ObjectiveConfig.from_yaml(tmp_path / "objective.yaml") == config
    with pytest.raises(ValueError, match="unknown key"):
        ObjectiveConfig.from_dict({"regularisation": 0.1})
    for bad, match in [
        ({"name": "otdd-fast"}, "name="),
        ({"inner": "sliced"}, "inner="),
        ({"reg": 0.0}, "reg"),
        ({"scaling": 1.5}, "scaling"),
        ({"points_per_class": 0}, "points_per_class"),
        ({"mmd_bandwidths": ()}, "mmd_bandwidths"),
        ({"chunk_mb": 0}, "chunk_mb"),
    ]:
        with pytest.raises(ValueError, match=match):
            ObjectiveConfig(**bad)


@pytest.mark.parametrize("name", NAMES)
def test_every_objective_is_finite_differentiable_and_runs_without_grad(name):
    xs, ys = clusters([8, 6, 7], seed=0, dtype=torch.float32)
    xt, yt = clusters([5, 9], seed=1, dtype=torch.float32)
    objective = build_objective(ObjectiveConfig(name=name), xs, ys)
    x = (xt + 1).requires_grad_()
    value = objective(x, yt)
    (grad,) = torch.autograd.grad(value, x)
    assert value.dim() == 0 and torch.isfinite(value) and value.item() > 0
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    with torch.no_grad():
        assert objective(xt + 1, yt).item() == pytest.approx(value.item(), rel=1e-3)


@pytest.mark.parametrize("name", ["mmd", "l2"])
def test_mmd_and_l2_are_zero_on_identical_sets_and_positive_otherwise(name):
    xs, ys = clusters([8, 6, 7], seed=2)
    objective = build_objective(ObjectiveConfig(name=name), xs, ys)
    assert abs(objective(xs.clone(), ys).item()) < 1e-10
    assert objective(xs + 0.5, ys).item() > 1e-3
    assert objective(xs[:10] * 2, ys[:10]).item() > 1e-3


def test_one_shot_discrepancies_match_the_objectives():
    xs, ys = clusters([8, 6], seed=3)
    xt, yt = clusters([7, 7], seed=4)
    config = ObjectiveConfig(name="mmd", mmd_bandwidths=(2.0,))
    objective = build_objective(config, xs, ys)
    width = objective.cache.bandwidths
    assert objective(xt, yt).item() == pytest.approx(mmd(xt, xs, width).item(), rel=1e-10)
    energy = build_objective(ObjectiveConfig(name="l2"), xs, ys)(xt, yt)
    assert energy.item() == pytest.approx(energy_distance(xt, xs).item(), rel=1e-10)
    assert energy_distance(xs, xs).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    "target, error, match",
    [
        (lambda x, y: (x[:, :1], y), ValueError, "features per point"),
        (lambda x, y: (x, y[:-1]), ValueError, "target_y must be an integer tensor of shape"),
        (lambda x, y: (x, y.double()), ValueError, "target_y"),
        (lambda x, y: (x[:0], y[:0]), ValueError, "non-empty"),
        (lambda x, y: (x.masked_fill(x > 1, float("nan")), y), ValueError, "NaN"),
        (lambda x, y: (x.float(), y), TypeError, "dtype"),
        (lambda x, y: (x.numpy(), y), TypeError, "torch tensors"),
        (lambda x, y: (x.long(), y), TypeError, "float tensor"),
    ],
)
def test_bad_target_input_is_rejected_with_the_argument_named(target, error, match):
    xs, ys = clusters([5, 5], seed=5)
    objective = build_objective(ObjectiveConfig(name="l2"), xs, ys)
    with pytest.raises(error, match=match):
        objective(*target(xs, ys))


def test_bad_source_input_is_rejected_when_the_objective_is_built():
    xs, ys = clusters([5, 5], seed=6)
    with pytest.raises(ValueError, match="source_y"):
        build_objective(ObjectiveConfig(), xs, ys[:3])
    with pytest.raises(ValueError, match="source_x contains NaN"):
        build_objective(ObjectiveConfig(), xs * float("nan"), ys)


@pytest.mark.parametrize("name", NAMES)
def test_stored_source_terms_rebuild_the_same_objective(name):
    xs, ys = clusters([8, 6, 7], seed=0)
    xt, yt = clusters([5, 9], seed=1)
    config = ObjectiveConfig(name=name)
    fresh = build_objective(config, xs, ys)
    terms = fresh.source_terms()
    assert all(value.numel() <= len(set(ys.tolist())) ** 2 for value in terms.values())
    rebuilt = OBJECTIVES.get(name)(config, xs, ys, terms)
    assert torch.equal(rebuilt(xt, yt), fresh(xt, yt))
