import json

import numpy as np
import pytest
import torch

from xmodal.align.labels import target_labels
from xmodal.align.stage import AlignConfig, align_embedder
from xmodal.api import RunConfig, fit
from xmodal.bodies import load_body
from xmodal.data.arrays import carve_validation, prepare
from xmodal.model.network import ModelConfig, build_model
from xmodal.train.loop import TrainConfig


def test_classification_targets_keep_their_labels():
    y = np.array([3, 1, 3, 0])
    assert target_labels(y, "classification").tolist() == [3, 1, 3, 0]


def test_other_targets_get_k_means_pseudo_labels():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 10.0], [-10.0, 10.0]])
    y = np.concatenate([c + rng.normal(size=(20, 2)) for c in centres])
    labels = target_labels(y, "regression", k=3)
    assert sorted(np.bincount(labels)) == [20, 20, 20]
    assert len(set(labels[:20])) == 1  # one cluster per centre
    assert target_labels(np.ones((5, 4, 6)), "dense-regression", k=10).tolist() == [0] * 5
    with pytest.raises(ValueError, match="k .* must be >= 1"):
        target_labels(y, "regression", k=0)


def _aligned(splits, **align):
    data = carve_validation(prepare(splits))
    torch.manual_seed(0)
    model = build_model(ModelConfig(max_tokens=8), data, load_body("tiny-text"))
    config = AlignConfig(steps=40, lr=1e-2, **align)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    record = align_embedder(model, data, config)
    return model, before, record


@pytest.mark.parametrize("task", ["classification", "dense-regression"])
def test_alignment_lowers_the_objective_and_moves_only_the_embedder(task, splits_of):
    model, before, record = _aligned(splits_of(task))
    assert record["otdd_after"] < record["otdd_before"]
    for name, param in model.named_parameters():
        if not name.startswith("embedder."):
            assert torch.equal(param, before[name]), name
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters()
               if n.startswith("embedder."))  # fmt: skip


@pytest.mark.parametrize("objective", ["mmd", "l2", "otdd-orca"])
def test_other_objectives_run(objective, splits_of):
    from xmodal.align.objectives import ObjectiveConfig

    _, _, record = _aligned(splits_of("classification"),
                            objective=ObjectiveConfig(name=objective))  # fmt: skip
    assert np.isfinite(record["otdd_after"]) and record["align_objective"] == objective


def test_orca_run_records_alignment(splits_of, tmp_path):
    config = RunConfig(
        model=ModelConfig(body="tiny-text", max_tokens=8),
        align=AlignConfig(steps=5),
        train=TrainConfig(method="orca", epochs=1, batch_size=12),
    )
    result = fit(config, out=tmp_path / "run", splits=splits_of("classification"))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["otdd_after"] == pytest.approx(result.metrics["otdd_after"])
    assert {"otdd_before", "otdd_after", "n_source"} <= set(metrics)
    assert metrics["timings"]["align_s"] > 0
    steps = json.loads((tmp_path / "run" / "alignment.json").read_text())["objective"]
    assert len(steps) == 5


@pytest.mark.parametrize("method", ["orca-layernorm", "orca-lora"])
def test_orca_variants_align_then_train_their_own_parameters(method, splits_of):
    before = {n: p.detach().clone() for n, p in load_body("tiny-text").named_parameters()}
    config = RunConfig(
        model=ModelConfig(body="tiny-text", max_tokens=8),
        align=AlignConfig(steps=5),
        train=TrainConfig(method=method, epochs=2, batch_size=12, lr=3e-3),
    )
    result = fit(config, splits=splits_of("classification"))
    assert result.metrics["otdd_after"] < result.metrics["otdd_before"]
    assert np.isfinite(result.metrics["test"])
    body = dict(result.model.body.named_parameters())
    changed = {n for n in before if n in body and not torch.equal(body[n], before[n])}
    if method == "orca-layernorm":
        assert changed and all("layernorm" in n.lower() for n in changed)
    else:  # base weights frozen; only the adapters train
        assert changed == set()
        assert any("lora_" in n and p.requires_grad for n, p in result.model.named_parameters())


def test_source_only_work_is_read_back_from_disk(tmp_path, splits_of):
    from xmodal.align.objectives import ObjectiveConfig, build_objective

    rng = np.random.default_rng(0)
    source_x = torch.from_numpy(rng.normal(size=(60, 8)).astype(np.float32))
    source_y = torch.from_numpy(np.arange(60) % 3)
    target_x = source_x[:20] + 0.5
    first = build_objective(ObjectiveConfig(), source_x, source_y, cache_dir=tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".safetensors"
    assert files[0].stat().st_size < 2000  # the solved terms only, not the source points
    second = build_objective(ObjectiveConfig(), source_x, source_y, cache_dir=tmp_path)
    assert torch.equal(second.cache.self_value, first.cache.self_value)
    value = first(target_x, source_y[:20])
    assert torch.allclose(second(target_x, source_y[:20]), value)
    other = build_objective(ObjectiveConfig(reg=0.2), source_x, source_y, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2 and other.cache is not None
    build_objective(ObjectiveConfig(points_per_class=7), source_x, source_y, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2  # the source work does not depend on b


def test_read_only_source_work_is_used_and_never_written(tmp_path, monkeypatch):
    from xmodal.align.objectives import ObjectiveConfig, build_objective
    from xmodal.align.otdd import OTDD

    source_x = torch.from_numpy(np.random.default_rng(1).normal(size=(40, 5)).astype(np.float32))
    source_y = torch.from_numpy(np.arange(40) % 4)
    shipped, cache = tmp_path / "shipped", tmp_path / "cache"
    build_objective(ObjectiveConfig(), source_x, source_y, cache_dir=shipped)
    calls = []
    original = OTDD._source_self_ot
    monkeypatch.setattr(OTDD, "_source_self_ot", lambda *a: calls.append(1) or original(*a))
    build_objective(ObjectiveConfig(), source_x, source_y, cache, read_only_dirs=[shipped])
    assert calls == [] and not cache.exists()
    build_objective(ObjectiveConfig(), source_x + 1, source_y, cache, read_only_dirs=[shipped])
    assert calls == [1] and len(list(cache.iterdir())) == 1  # other points: computed and kept


@pytest.mark.parametrize("reuse", [True, False])
def test_stage_reuses_stored_source_work_only_when_asked(reuse, splits_of, tmp_path, monkeypatch):
    from xmodal.align import stage
    from xmodal.align.otdd import OTDD

    monkeypatch.setenv("XMODAL_CACHE", str(tmp_path))
    # The work the first run stores is also where the package's shipped work would lie.
    monkeypatch.setattr(stage, "SHIPPED_WORK", tmp_path / "align")
    _aligned(splits_of("classification"))  # solves the source work and stores it
    calls = []
    original = OTDD._source_self_ot
    monkeypatch.setattr(OTDD, "_source_self_ot", lambda *a: calls.append(1) or original(*a))
    _aligned(splits_of("classification"), cache_source_work=reuse)
    assert calls == ([] if reuse else [1])


def test_stale_or_broken_source_work_is_computed_again(tmp_path, caplog):
    from safetensors.torch import save_file

    from xmodal.align.objectives import ObjectiveConfig, build_objective, source_work_name

    source_x = torch.from_numpy(np.random.default_rng(2).normal(size=(30, 4)).astype(np.float32))
    source_y = torch.from_numpy(np.arange(30) % 3)
    fresh = build_objective(ObjectiveConfig(), source_x, source_y)
    path = tmp_path / source_work_name(ObjectiveConfig(), source_x, source_y)
    for broken in ("not a safetensors file", None):
        if broken is None:  # readable, but the terms of another source
            save_file({"self_values": torch.zeros(5), "label_costs": torch.zeros(5, 5),
                       "self_value": torch.zeros(())}, path)  # fmt: skip
        else:
            path.write_text(broken)
        with caplog.at_level("WARNING"):
            again = build_objective(ObjectiveConfig(), source_x, source_y, cache_dir=tmp_path)
        assert "computing it again" in caplog.text
        assert torch.equal(again.cache.label_costs, fresh.cache.label_costs)
        caplog.clear()
