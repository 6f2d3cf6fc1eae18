import json

import numpy as np
import pytest

from xmodal.cli.main import main


@pytest.fixture
def npz(tmp_path, splits_of):
    s = splits_of("classification")
    path = tmp_path / "data.npz"
    np.savez(path, x_train=s.x_train, y_train=s.y_train, x_test=s.x_test, y_test=s.y_test)
    return path


FAST = ["--body", "tiny-text", "--epochs", "2", "--batch-size", "12", "--max-tokens", "8", "-q"]


def test_fit_predict_evaluate_agree(npz, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["fit", str(npz), "--out", str(run), *FAST]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["metric"] == "error" and summary["run"] == str(run)
    assert main(["evaluate", str(run), str(npz), "-q"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["value"] == pytest.approx(summary["test"])
    preds = tmp_path / "p.npy"
    assert main(["predict", str(run), str(npz), "--out", str(preds), "-q"]) == 0
    logits = np.load(preds)
    y = np.load(npz)["y_test"]
    assert np.mean(logits.argmax(1) != y) == pytest.approx(summary["test"])


def test_fit_on_a_built_in_task_with_a_config_file(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("model:\n  body: tiny-text\n  max_tokens: 8\ntrain:\n  epochs: 1\n")
    assert main(["fit", "gunpoint", "--config", str(config), "--lr", "1e-3", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["body"] == "tiny-text"


def _bad_npz(tmp_path, **changes):
    rng = np.random.default_rng(0)
    arrays = dict(x_train=rng.normal(size=(8, 1, 10)), y_train=np.arange(8) % 2,
                  x_test=rng.normal(size=(4, 1, 10)), y_test=np.arange(4) % 2)  # fmt: skip
    arrays.update(changes)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(x_train=np.zeros((8,))), "expected (N, L)"),
        (dict(x_train=np.full((8, 1, 10), np.nan)), "NaN or infinite"),
        (dict(x_test=np.full((4, 1, 10), -np.inf)), "NaN or infinite"),
        (
            dict(y_train=np.arange(80).reshape(8, 10) % 2, y_test=np.arange(40).reshape(4, 10) % 2),
            "state it with --task",
        ),  # 0/1 per position: dense classes or ten labels?
        (dict(y_test=np.array([0, 1, 9, 0])), "out of range"),
        (dict(y_train=np.arange(7) % 2), "8 examples but y_train has 7"),
        (dict(x_test=np.zeros((0, 1, 10)), y_test=np.zeros(0, int)), "x_test is empty"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, changes, message):
    run = tmp_path / "run"
    code = main(["fit", _bad_npz(tmp_path, **changes), "--out", str(run), *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("xmodal: error: ") and message in err[-1]
    assert not run.exists() and [p.name for p in tmp_path.iterdir()] == ["bad.npz"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["fit", "no-such-task", *FAST], "neither a built-in task"),
        (["fit", "gunpoint", "--body", "no-such-body", "-q"], "no-such-body"),
        (["fit", "gunpoint", "--method", "full", *FAST], "unknown method 'full'"),
        (["fit", "gunpoint", "--optimizer", "rmsprop", *FAST], "optimizer='rmsprop'"),
        (["evaluate", "/nonexistent/run", "gunpoint"], "not a run folder"),
    ],
)
def test_unknown_names_exit_2_and_write_nothing(tmp_path, capsys, argv, message):
    run = tmp_path / "run"
    if argv[0] == "fit":
        argv = [*argv, "--out", str(run)]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not run.exists()


def test_an_unknown_task_type_exits_2_and_names_the_choices(npz, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["fit", str(npz), "--task", "segmentation", "--out", str(run), *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("xmodal: error: ") and "'segmentation'" in err[-1]
    assert "dense-classification" in err[-1]
    assert not run.exists()


def test_listings(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "gunpoint" in out and "digits" in out
    assert main(["bodies"]) == 0
    out = capsys.readouterr().out
    assert "minilm" in out and "dinov2-small" in out and "antiberty" in out
