import json
import logging
from types import SimpleNamespace

import numpy as np
import pytest

from xmodal import api
from xmodal.bench.report import write_report
from xmodal.bench.runner import BenchConfig, Cell, cell_run_config, grid, load_cells, run_bench


class FakeFit:
    """Stands in for `xmodal.api.fit`: records its calls, fails where told, returns metrics."""

    def __init__(self, fail_on: tuple = ()) -> None:
        self.calls: list[tuple] = []
        self.fail_on = fail_on

    def __call__(self, config, out=None, splits=None, progress=False):
        cell = (config.data, config.train.method, config.train.seed, config.train_fraction)
        self.calls.append((*cell, config.model.body, config.train.epochs))
        if (config.data, config.train.method) in self.fail_on:
            raise RuntimeError("the body ran out of patience")
        value = 0.1 + 0.1 * config.train.seed - 0.05 * config.train.method.startswith("orca")
        metrics = {"metric": "error", "direction": "min", "val": value, "test": value,
                   "test_last_epoch": value + 0.05, "best_epoch": 1,
                   "timings": {"setup_s": 0.1, "finetune_s": 1.0}}  # fmt: skip
        if config.train.method.startswith("orca"):
            metrics.update(otdd_before=5.0, otdd_after=2.0 + value, timings={
                "setup_s": 0.1, "align_s": 0.5, "finetune_s": 1.0})  # fmt: skip
        return SimpleNamespace(metrics=metrics)


@pytest.fixture
def fake_fit(monkeypatch):
    fake = FakeFit()
    monkeypatch.setattr(api, "fit", fake)
    return fake


def _config(tmp_path, **changes) -> BenchConfig:
    settings = dict(tasks=["digits", "italy-power"], methods=["finetune", "orca"], seeds=2,
                    scale=0.1, body_1d="tiny-text", body_2d="tiny-vision", out=str(tmp_path),
                    run={"train": {"epochs": 1}})  # fmt: skip
    return BenchConfig.from_dict({**settings, **changes})


def test_grid_sets_body_by_dims_and_run_settings_per_cell(tmp_path):
    config = _config(tmp_path, methods=["finetune", "classic"], train_fractions=[0.5, 1.0])
    cells = grid(config)
    assert len(cells) == 2 * 2 * 2 * 2
    assert cells[0] == Cell("digits", "finetune", 0, 0.5, "tiny-vision")
    assert cells[1] == Cell("digits", "classic", 0, 0.5, None)
    assert {c.body for c in cells if c.task == "italy-power"} == {"tiny-text", None}
    run = cell_run_config(Cell("italy-power", "lora", 1, 0.5, "tiny-text"), config)
    assert (run.data, run.scale, run.train_fraction) == ("italy-power", 0.1, 0.5)
    assert (run.model.body, run.train.method, run.train.seed, run.train.epochs) == (
        "tiny-text", "lora", 1, 1)  # fmt: skip
    assert len({c.key for c in cells}) == len(cells)


def test_runner_writes_one_file_per_cell_and_the_report(tmp_path, fake_fit):
    records = run_bench(_config(tmp_path))
    assert len(records) == len(fake_fit.calls) == 8
    files = sorted((tmp_path / "cells").iterdir())
    assert len(files) == 8 and all(f.suffix == ".json" for f in files)  # no temporary leftovers
    record = json.loads((tmp_path / "cells" / "digits__orca__tiny-vision__seed1__frac1.json")
                        .read_text())  # fmt: skip
    assert record["status"] == "ok" and record["error"] is None
    assert record["test"] == pytest.approx(0.15) and record["test_last_epoch"] == pytest.approx(0.2)
    assert record["otdd_before"] == 5.0 and record["otdd_after"] == pytest.approx(2.15)
    assert record["timings"] == {"setup_s": 0.1, "align_s": 0.5, "finetune_s": 1.0}
    plain = json.loads((tmp_path / "cells" / "digits__finetune__tiny-vision__seed0__frac1.json")
                       .read_text())  # fmt: skip
    assert plain["otdd_before"] is None and plain["otdd_after"] is None
    assert (tmp_path / "bench.yaml").is_file()

    report = write_report(tmp_path)
    for name in ("results.csv", "results.json", "report.md", "performance_profile.png",
                 "otdd_vs_error.png"):  # fmt: skip
        assert (tmp_path / name).is_file(), name
    assert len(json.loads((tmp_path / "results.json").read_text())) == 8
    assert "| digits | error ↓ | 0.15 ± 0.071 | **0.1 ± 0.071** |" in report.headline


def test_a_second_run_resumes_without_recomputing(tmp_path, fake_fit):
    config = _config(tmp_path)
    run_bench(config)
    assert len(fake_fit.calls) == 8
    stamp = (tmp_path / "cells" / "digits__finetune__tiny-vision__seed0__frac1.json").stat()
    run_bench(config)
    assert len(fake_fit.calls) == 8  # nothing ran again
    again = (tmp_path / "cells" / "digits__finetune__tiny-vision__seed0__frac1.json").stat()
    assert again.st_mtime_ns == stamp.st_mtime_ns

    (tmp_path / "cells" / "italy-power__orca__tiny-text__seed1__frac1.json").unlink()
    records = run_bench(config.replace(seeds=3))  # one lost cell and a new seed
    assert fake_fit.calls[8:] == [  # grid order: task, fraction, seed, method
        ("digits", "finetune", 2, 1.0, "tiny-vision", 1),
        ("digits", "orca", 2, 1.0, "tiny-vision", 1),
        ("italy-power", "orca", 1, 1.0, "tiny-text", 1),
        ("italy-power", "finetune", 2, 1.0, "tiny-text", 1),
        ("italy-power", "orca", 2, 1.0, "tiny-text", 1),
    ]
    assert len(records) == 12 and len(load_cells(tmp_path)) == 12


def test_a_failing_cell_is_recorded_and_the_grid_goes_on(tmp_path, monkeypatch):
    fake = FakeFit(fail_on=(("italy-power", "orca"),))
    monkeypatch.setattr(api, "fit", fake)
    records = run_bench(_config(tmp_path))
    assert len(fake.calls) == 8
    failed = [r for r in records if r["status"] == "error"]
    assert [(r["task"], r["method"]) for r in failed] == [("italy-power", "orca")] * 2
    assert failed[0]["error"] == "RuntimeError: the body ran out of patience"
    assert "Traceback" in failed[0]["traceback"] and failed[0]["test"] is None
    assert sum(r["status"] == "ok" for r in records) == 6

    report = write_report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "2 cell(s) failed" in text and "out of patience" in text
    assert "| italy-power | error ↓ | **0.15 ± 0.071** | failed |" in report.headline

    # Failed cells stay failed on a resume unless retried; then only they run again.
    run_bench(_config(tmp_path))
    assert len(fake.calls) == 8
    fake.fail_on = ()
    records = run_bench(_config(tmp_path, retry_failed=True))
    assert len(fake.calls) == 10 and all(r["status"] == "ok" for r in records)


def test_undefined_values_are_written_as_null(tmp_path, monkeypatch):
    nan = float("nan")
    metrics = {"metric": "auroc", "direction": "max", "val": nan, "test": nan,
               "test_last_epoch": np.float32(0.5), "history": [{"epoch": 1, "val_auroc": nan}],
               "timings": {"setup_s": 0.1}}  # fmt: skip
    monkeypatch.setattr(api, "fit", lambda *a, **k: SimpleNamespace(metrics=metrics))
    (record,) = run_bench(_config(tmp_path, tasks=["digits"], methods=["finetune"], seeds=1))
    assert record["status"] == "ok" and record["test"] is None and record["val"] is None
    assert record["history"] == [{"epoch": 1, "val_auroc": None}]
    saved = load_cells(tmp_path)[0]
    assert saved["test_last_epoch"] == 0.5 and type(saved["test_last_epoch"]) is float


def test_classic_cells_use_the_same_splits_as_fine_tuning(tmp_path, fake_fit):
    config = _config(tmp_path, tasks=["digits"], methods=["classic"], seeds=1,
                     train_fractions=[0.5, 1.0])  # fmt: skip
    records = run_bench(config)
    assert fake_fit.calls == []
    assert [r["status"] for r in records] == ["ok", "ok"]
    assert [r["baseline"] for r in records] == ["logistic", "logistic"]
    # The same data preparation as `fit`: the training subset, then the validation split.
    data, _ = api.prepare_run_data(cell_run_config(grid(config)[0], config))
    assert (records[0]["n_train"], records[0]["n_val"]) == (len(data.splits.x_train),
                                                            len(data.splits.x_val))  # fmt: skip
    assert records[0]["n_train"] < records[1]["n_train"]
    assert records[1]["test"] < 0.5  # ten classes: chance is 0.9


def test_bench_config_names_bad_values(tmp_path):
    with pytest.raises(ValueError, match=r"tasks=\['nope'\].*unknown"):
        _config(tmp_path, tasks=["nope"])
    with pytest.raises(ValueError, match="methods=.*choose from"):
        _config(tmp_path, methods=["fine-tune"])
    with pytest.raises(ValueError, match="train_fractions"):
        _config(tmp_path, train_fractions=[0.0, 1.0])
    with pytest.raises(ValueError, match="unknown key"):
        BenchConfig.from_dict({"task": ["digits"]})
    config = _config(tmp_path, train_fractions=[0.1, 1])
    assert BenchConfig.from_yaml(config.to_yaml()) == config


def test_changed_settings_warn_and_keep_finished_cells(tmp_path, fake_fit, caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("xmodal"), "propagate", True)  # a CLI test may unset it
    run_bench(_config(tmp_path, seeds=1))
    with caplog.at_level(logging.WARNING, logger="xmodal.bench.runner"):
        run_bench(_config(tmp_path, seeds=1, run={"train": {"epochs": 2}}))
    assert "settings ['run'] differ" in caplog.text
    assert len(fake_fit.calls) == 4  # finished cells are kept
