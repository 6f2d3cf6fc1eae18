import csv
import json

import pytest

from xmodal.bench.report import summarize, task_losses, write_report
from xmodal.bench.runner import CELLS_DIR, write_json_atomic


def _cell(task, method, seed, test, fraction=1.0, metric="error", direction="min", **extra):
    record = {"task": task, "method": method, "seed": seed, "fraction": fraction, "body": None,
              "scale": 1.0, "status": "ok", "error": None, "metric": metric,
              "direction": direction, "val": test, "test": test, "test_last_epoch": test,
              "otdd_before": None, "otdd_after": None, "timings": {"setup_s": 1.0},
              "seconds": 2.0}  # fmt: skip
    record.update(extra)
    return record


def _write(tmp_path, records):
    for i, record in enumerate(records):
        write_json_atomic(tmp_path / CELLS_DIR / f"cell{i:03d}.json", record)


RECORDS = [
    _cell("ecg", "finetune", 0, 0.8, metric="macro-f1", direction="max", otdd_after=None),
    _cell("ecg", "finetune", 1, 0.6, metric="macro-f1", direction="max"),
    _cell(
        "ecg",
        "orca",
        0,
        0.9,
        metric="macro-f1",
        direction="max",
        otdd_before=3.0,
        otdd_after=1.0,
        timings={"setup_s": 1.0, "align_s": 4.0},
    ),  # fmt: skip
    _cell(
        "ecg",
        "orca",
        1,
        None,
        status="error",
        error="ValueError: bad\nmore",
        metric=None,
        direction=None,
    ),  # fmt: skip
    _cell("darcy", "finetune", 0, 0.2, metric="rel-l2"),
    _cell("darcy", "orca", 0, 0.1, metric="rel-l2", otdd_before=2.0, otdd_after=0.5),
    _cell("darcy", "finetune", 0, 0.4, fraction=0.1, metric="rel-l2"),
    _cell("darcy", "orca", 0, 0.3, fraction=0.1, metric="rel-l2"),
]


def test_summaries_average_over_seeds_and_skip_failures():
    by_key = {(s.task, s.fraction, s.method): s for s in summarize(RECORDS)}
    ecg = by_key[("ecg", 1.0, "finetune")]
    assert ecg.mean == pytest.approx(0.7) and ecg.std == pytest.approx(0.1414, abs=1e-4)
    assert (ecg.n, ecg.failed) == (2, 0)
    orca = by_key[("ecg", 1.0, "orca")]
    assert (orca.mean, orca.std, orca.n, orca.failed) == (0.9, 0.0, 1, 1)
    losses = task_losses(summarize(RECORDS), 1.0)
    assert losses["ecg"] == pytest.approx({"finetune": 0.3, "orca": 0.1})  # 1 - macro-f1
    assert losses["darcy"] == pytest.approx({"finetune": 0.2, "orca": 0.1})


def test_report_files_tables_and_plots(tmp_path):
    _write(tmp_path, RECORDS)
    report = write_report(tmp_path)
    assert report.headline.splitlines()[2:] == [
        "| ecg | macro-f1 ↑ | 0.7 ± 0.14 | **0.9** (1/2) |",
        "| darcy | rel-l2 ↓ | 0.2 | **0.1** |",
    ]
    text = (tmp_path / "report.md").read_text()
    assert "## Low-data study" in text
    assert "| darcy | 0.1 | rel-l2 ↓ | 0.4 | **0.3** |" in text
    assert "| ecg | 1 |" not in text  # run at one fraction only: not part of the study
    assert "| orca | 1.00 | 1.00 | 1.00 | 1.00 |" in text  # best on both tasks
    assert "| finetune | 0.00 | 0.00 | 0.00 | 0.50 |" in text  # ratios 3 (ecg) and 2 (darcy)
    assert "- ecg / orca / seed 1 / fraction 1: ValueError: bad" in text
    assert "| orca | 1.0 | 4.0 | 2.0 |" in text  # mean seconds: setup, align, total
    for name in ("performance_profile.png", "otdd_vs_error.png"):
        assert (tmp_path / name).stat().st_size > 1000
    with open(tmp_path / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(RECORDS) == len(json.loads((tmp_path / "results.json").read_text()))
    assert {"timing_setup_s", "timing_align_s", "otdd_after"} <= set(rows[0])


def test_report_without_alignment_says_so(tmp_path):
    _write(tmp_path, [_cell("ecg", "finetune", 0, 0.5), _cell("ecg", "classic", 0, 0.4)])
    write_report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "No cell has an alignment OTDD" in text
    assert "Low-data" not in text
    assert not (tmp_path / "otdd_vs_error.png").exists()


def test_report_of_an_empty_or_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no benchmark cells"):
        write_report(tmp_path / "nowhere")
    (tmp_path / CELLS_DIR).mkdir()
    assert write_report(tmp_path).headline == "no cells yet"
    assert "No cell has finished yet" in (tmp_path / "report.md").read_text()
