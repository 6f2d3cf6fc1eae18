"""Tests of the built-in task catalog: every task loads offline, small and well-formed."""

from __future__ import annotations

import numpy as np
import pytest

from xmodal.data.arrays import prepare
from xmodal.data.catalog import common, genomics, images, logic, music, pde, timeseries
from xmodal.data.splits import TASK_TYPES
from xmodal.data.tasks import TASKS, get_task, load_task, task_names

SCALE = 0.05
REQUIRED = {"gunpoint", "digits", "basic-motions", "japanese-vowels", "plaid", "ecg", "chorales"}
REQUIRED |= {"darcy", "darcy-mean", "listops", "spherical", "motifs", "motif-segments"}


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XMODAL_CACHE", str(tmp_path / "cache"))


def _available(name: str) -> bool:
    if name != "fashion-mnist":
        return True
    return all(
        (images.fashion_mnist_dir() / f).exists() for f in images.FASHION_MNIST_FILES.values()
    )


def _load(name: str, seed: int = 0):
    if not _available(name):
        pytest.skip("Fashion-MNIST files not installed (apt-get install dataset-fashion-mnist)")
    return load_task(name, scale=SCALE, seed=seed)


def test_catalog_covers_required_tasks_and_types():
    names = set(task_names())
    assert REQUIRED <= names
    tasks = [get_task(n) for n in names]
    assert {t.task_type for t in tasks} == set(TASK_TYPES)
    assert {t.dims for t in tasks} == {1, 2}
    assert len(names) >= 10


@pytest.mark.parametrize("name", task_names())
def test_task_definition_is_documented(name):
    task = TASKS.get(name)
    assert task.name == name
    assert task.task_type in TASK_TYPES
    assert task.dims in (1, 2)
    assert task.metric in {"error", "macro-f1", "auroc", "map", "rel-l2", "mae", "nll"}
    assert len(task.description) > 40
    assert task.source


def _check_targets(task_type: str, x: np.ndarray, y: np.ndarray) -> None:
    spatial = x.shape[2:]
    assert np.isfinite(y.astype(np.float64)).all()
    if task_type == "classification":
        assert y.ndim == 1 and np.issubdtype(y.dtype, np.integer) and y.min() >= 0
    elif task_type == "multilabel":
        assert y.ndim == 2 and set(np.unique(y)) <= {0, 1}
    elif task_type == "regression":
        assert y.ndim in (1, 2) and np.issubdtype(y.dtype, np.floating)
    elif task_type == "dense-classification":
        assert y.shape[1:] == spatial and np.issubdtype(y.dtype, np.integer) and y.min() >= 0
    elif task_type == "dense-multilabel":
        assert y.shape[2:] == spatial and set(np.unique(y)) <= {0, 1}
    else:  # dense-regression
        assert y.shape[-len(spatial) :] == spatial and np.issubdtype(y.dtype, np.floating)


@pytest.mark.parametrize("name", task_names())
def test_task_loads_well_formed(name):
    task = get_task(name)
    splits = _load(name)
    assert len(splits.x_train) >= 2 and len(splits.x_test) >= 2
    for part in ("train", "test"):
        x, y = getattr(splits, f"x_{part}"), getattr(splits, f"y_{part}")
        assert x.dtype == np.float32 and x.ndim == task.dims + 2
        assert len(x) == len(y)
        assert np.isfinite(x).all()
        _check_targets(task.task_type, x, y)
    assert splits.x_train.shape[1:] == splits.x_test.shape[1:]
    if task.task_type in ("classification", "dense-classification"):
        n_classes = max(splits.y_train.max(), splits.y_test.max()) + 1
        assert n_classes <= 12  # every built-in classification task has at most 11 classes


@pytest.mark.parametrize("name", task_names())
def test_task_passes_data_checks(name):
    task = get_task(name)
    data = prepare(_load(name), dims=task.dims)  # the task type is inferred from the targets
    assert data.task_type == task.task_type
    assert data.dims == task.dims


@pytest.mark.parametrize("name", task_names())
def test_task_is_deterministic(name, tmp_path, monkeypatch):
    first = _load(name, seed=3)
    monkeypatch.setenv("XMODAL_CACHE", str(tmp_path / "other-cache"))  # regenerate, not reread
    second = _load(name, seed=3)
    assert first.names() == second.names()
    for field in first.names():
        np.testing.assert_array_equal(getattr(first, field), getattr(second, field))


@pytest.mark.parametrize("name", ["darcy", "listops", "motifs", "ecg", "spherical"])
def test_generated_task_depends_on_seed(name):
    assert not np.array_equal(_load(name, seed=0).x_train, _load(name, seed=1).x_train)


def test_cache_is_reused(tmp_path):
    first = load_task("listops", scale=SCALE, seed=0)
    assert len(list(common.cache_dir().glob("listops-*.npz"))) == 1
    np.testing.assert_array_equal(first.x_train, load_task("listops", scale=SCALE).x_train)


def test_scale_changes_example_counts():
    small, larger = load_task("digits", scale=0.05), load_task("digits", scale=0.2)
    assert len(larger.x_train) > len(small.x_train)
    with pytest.raises(ValueError, match="scale"):
        load_task("digits", scale=0)


def test_official_split_sizes_at_full_scale():
    splits = load_task("gunpoint")
    assert splits.x_train.shape == (50, 1, 150) and splits.x_test.shape == (150, 1, 150)
    assert set(np.unique(splits.y_train)) == {0, 1}
    motions = load_task("basic-motions")
    assert motions.x_train.shape == (40, 6, 100)


def test_zscore_uses_training_statistics():
    splits = load_task("gunpoint")
    assert abs(float(splits.x_train.mean())) < 1e-4
    assert float(splits.x_train.std()) == pytest.approx(1.0, abs=1e-3)


def test_fix_length_modes():
    series = [np.arange(3.0)[None], np.arange(6.0)[None]]  # (1, 3) and (1, 6)
    padded = timeseries.fix_length(series, 4, "pad")
    np.testing.assert_array_equal(padded[:, 0], [[0, 1, 2, 0], [0, 1, 2, 3]])
    resampled = timeseries.fix_length(series, 5, "resample")
    np.testing.assert_allclose(resampled[0, 0], [0, 0.5, 1, 1.5, 2])
    with pytest.raises(ValueError, match="mode"):
        timeseries.fix_length(series, 4, "crop")


def test_darcy_solver_matches_poisson_with_unit_coefficient():
    u = pde.solve_darcy(np.ones((65, 65)))
    assert u[32, 32] == pytest.approx(0.07367, abs=5e-4)  # -Laplace(u) = 1 at the centre
    np.testing.assert_array_equal(u[0], 0.0)
    np.testing.assert_allclose(
        pde.solve_darcy(4 * np.ones((33, 33))) * 4, pde.solve_darcy(np.ones((33, 33)))
    )


def test_darcy_mean_is_mean_of_solution():
    dense, point = load_task("darcy", scale=SCALE), load_task("darcy-mean", scale=SCALE)
    np.testing.assert_allclose(point.y_train, dense.y_train.mean(axis=(1, 2, 3)), rtol=1e-6)


def _evaluate(tokens: list[str]) -> int:
    stack: list[list] = []
    for token in tokens:
        if token in logic.OPERATORS:
            stack.append([token])
        elif token == "]":
            operator, *args = stack.pop()
            value = int(logic.OPERATORS[operator](*args))
            if not stack:
                return value
            stack[-1].append(value)
        else:
            stack[-1].append(int(token))
    raise AssertionError("unbalanced expression")


def test_listops_labels_are_expression_values():
    x, y = logic.generate_listops(20, seed=5)
    for one_hot, label in zip(x, y):
        positions = np.nonzero(one_hot.any(axis=0))[0]
        tokens = [logic.VOCABULARY[i] for i in one_hot[:, positions].argmax(axis=0)]
        assert _evaluate(tokens) == label


def test_chorale_targets_are_next_step():
    splits = load_task("chorales", scale=SCALE)
    assert splits.x_train.shape[1] == music.N_KEYS
    assert splits.x_train.shape[2] == music.WINDOW
    assert splits.y_train.shape == (len(splits.x_train), music.N_KEYS)
    assert 0.0 < splits.x_train.mean() < 0.2  # about four voices of 88 keys sound per step


def test_chorale_windows_hold_only_steps_before_their_target():
    roll = np.random.default_rng(0).integers(0, 2, (music.N_KEYS, 40)).astype(np.float32)
    x, y = music.windows(roll)
    starts = range(0, 40 - music.WINDOW, music.STRIDE)
    assert x.shape == (len(starts), music.N_KEYS, music.WINDOW)
    for i, start in enumerate(starts):
        np.testing.assert_array_equal(x[i], roll[:, start : start + music.WINDOW])
        np.testing.assert_array_equal(y[i], roll[:, start + music.WINDOW])
    short_x, short_y = music.windows(roll[:, : music.WINDOW])  # no step left to predict
    assert short_x.shape == (0, music.N_KEYS, music.WINDOW) and short_y.shape == (0, music.N_KEYS)


def test_harmony_inputs_hold_the_melody_and_targets_the_lower_voices():
    steps = music.HARMONY_WINDOW + music.HARMONY_STRIDE
    rolls = np.random.default_rng(1).integers(0, 2, (4, music.N_KEYS, steps)).astype(np.float32)
    x, y = music.harmony_windows(rolls)
    assert x.shape == y.shape == (2, music.N_KEYS, music.HARMONY_WINDOW)
    for i, start in enumerate((0, music.HARMONY_STRIDE)):
        window = slice(start, start + music.HARMONY_WINDOW)
        np.testing.assert_array_equal(x[i], rolls[0][:, window])
        np.testing.assert_array_equal(y[i], rolls[1:, :, window].max(axis=0))


def test_chorale_harmony_loads_dense_targets():
    splits = load_task("chorale-harmony", scale=SCALE)
    assert splits.x_train.shape[1:] == splits.y_train.shape[1:] == (music.N_KEYS, 32)
    # a melody is one note at a time; the three lower voices sound up to three keys
    assert splits.x_train.sum(axis=1).max() <= 1 and splits.y_train.sum(axis=1).max() <= 3


def test_motif_segments_agree_with_presence():
    sample = genomics.generate_motifs(50, seed=1)
    for k in range(genomics.N_MOTIFS):
        np.testing.assert_array_equal(
            (sample.segments == k + 1).any(axis=1), sample.present[:, k] == 1
        )
    np.testing.assert_array_equal(sample.x.sum(axis=1), 1.0)


def test_sphere_projection_keeps_image_near_pole():
    image = np.ones((8, 8))
    grid = images.sphere_grid(32)
    sphere = images.project_to_sphere(image, np.eye(3), grid)
    assert sphere[0].min() == pytest.approx(1.0)  # rows next to the north pole are covered
    assert sphere[16:].max() == 0.0  # the southern hemisphere is empty


def test_missing_fashion_mnist_names_package(tmp_path, monkeypatch):
    monkeypatch.setenv("XMODAL_FASHION_MNIST", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_task("fashion-mnist", scale=SCALE)
