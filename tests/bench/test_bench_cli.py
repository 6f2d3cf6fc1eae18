import json

from xmodal.bench.runner import load_cells
from xmodal.cli.main import main

TINY = ["--scale", "0.2", "--seeds", "1", "--body-1d", "tiny-text", "--body-2d", "tiny-vision",
        "--epochs", "1", "--max-tokens", "8", "--batch-size", "16", "--align-steps", "2",
        "--align-source-points", "200", "-q"]  # fmt: skip


def test_bench_runs_the_grid_reports_and_rebuilds_the_report(tmp_path, capsys):
    out = tmp_path / "bench"
    grid = ["--tasks", "digits,tecator", "--methods", "finetune,orca,classic"]
    assert main(["bench", *grid, "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("| task | metric | finetune | orca | classic |")
    assert "| digits | error ↓ |" in printed and "| tecator | mae ↓ |" in printed

    records = load_cells(out)
    assert len(records) == 6 and all(r["status"] == "ok" for r in records)
    by_method = {(r["task"], r["method"]): r for r in records}
    finetune, classic = by_method[("digits", "finetune")], by_method[("digits", "classic")]
    assert finetune["body"] == "tiny-vision" and by_method[("tecator", "finetune")]["body"] == (
        "tiny-text")  # fmt: skip
    assert (finetune["n_train"], finetune["n_val"]) == (classic["n_train"], classic["n_val"])
    assert finetune["best_epoch"] == 1 and finetune["timings"]["finetune_s"] > 0
    assert finetune["otdd_after"] is None and classic["timings"]["fit_s"] > 0
    for task in ("digits", "tecator"):  # the alignment stage ran and measured its objective
        orca = by_method[(task, "orca")]
        assert orca["otdd_before"] > 0 and orca["otdd_after"] > 0 and orca["timings"]["align_s"] > 0
    assert (out / "otdd_vs_error.png").is_file()

    (out / "report.md").unlink()
    assert main(["bench", "--report-only", "--out", str(out), "-q"]) == 0
    assert capsys.readouterr().out.startswith("| task | metric | finetune | orca | classic |")
    assert (out / "report.md").is_file() and (out / "performance_profile.png").is_file()
    assert len(json.loads((out / "results.json").read_text())) == 6


def test_bench_reads_a_config_file_and_flags_override_it(tmp_path, capsys, monkeypatch):
    from xmodal import api

    seen = []
    monkeypatch.setattr(api, "fit", lambda config, out=None, **_: seen.append(config) or _fake())
    config = tmp_path / "bench.yaml"
    config.write_text(f"tasks: [digits]\nmethods: [finetune]\nseeds: 2\nout: {tmp_path / 'b'}\n"
                      "run:\n  train: {epochs: 3, lr: 0.01}\n  align: {steps: 7}\n")  # fmt: skip
    assert main(["bench", "--config", str(config), "--seeds", "1", "--epochs", "2",
                 "--fractions", "0.5,1", "--body-2d", "tiny-vision", "-q"]) == 0  # fmt: skip
    assert [(c.train.seed, c.train_fraction) for c in seen] == [(0, 0.5), (0, 1.0)]
    assert {(c.train.epochs, c.train.lr, c.align.steps, c.model.body) for c in seen} == {
        (2, 0.01, 7, "tiny-vision")}  # fmt: skip
    assert "## Low-data study" in (tmp_path / "b" / "report.md").read_text()


def test_bench_rejects_bad_arguments_in_one_line(tmp_path, capsys):
    assert main(["bench", "--tasks", "digits,nope", "--out", str(tmp_path), "-q"]) == 2
    assert "tasks=['digits', 'nope']: unknown ['nope']" in capsys.readouterr().err
    assert main(["bench", "--report-only", "--out", str(tmp_path / "none"), "-q"]) == 2
    assert "no benchmark cells" in capsys.readouterr().err


def _fake():
    from types import SimpleNamespace

    metrics = {"metric": "error", "direction": "min", "val": 0.5, "test": 0.5,
               "test_last_epoch": 0.5, "timings": {"setup_s": 0.0}}  # fmt: skip
    return SimpleNamespace(metrics=metrics)
