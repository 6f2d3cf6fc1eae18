"""Time-series tasks from the UCR/UEA archive files that ship inside sktime.

Every task keeps the archive's official train/test split; `scale < 1` draws a seeded subset
of both. Inputs are z-scored per channel with training statistics. Unequal-length sets are
brought to one length, by linear resampling or by zero-padding, as each description says.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from pathlib import Path

import numpy as np

from xmodal.data.catalog.common import cached_splits, encode_labels, scaled, subsample
from xmodal.data.splits import Splits
from xmodal.data.tasks import TaskDef, register_task

logger = logging.getLogger(__name__)

RAGGED_MODES = ("resample", "pad")


@dataclasses.dataclass(frozen=True)
class ArchiveSet:
    """One sktime-bundled archive dataset and how to turn it into a task."""

    task: str  # task name in the catalog
    folder: str  # folder (and file stem) under sktime/datasets/data
    description: str
    task_type: str = "classification"  # or "regression"
    metric: str = "error"
    length: int | None = None  # fixed length for unequal-length sets
    ragged: str | None = None  # one of RAGGED_MODES for unequal-length sets


def sktime_data_dir() -> Path:
    """The folder of data files bundled with the installed sktime."""
    try:
        import sktime
    except ImportError as err:  # pragma: no cover - sktime is in the `tasks` extra
        raise ImportError("time-series tasks need sktime: pip install 'xmodal[tasks]'") from err
    return Path(sktime.__file__).parent / "datasets" / "data"


def read_archive_file(path: Path, equal_length: bool) -> tuple[list[np.ndarray], np.ndarray]:
    """Read a .ts file into a list of (C, L_i) float arrays and the raw label column."""
    from sktime.datasets import load_from_tsfile

    if not path.exists():
        raise FileNotFoundError(f"sktime data file {path} is missing; reinstall sktime")
    if equal_length:
        x, y = load_from_tsfile(str(path), return_data_type="numpy3d")  # (N, C, L)
        return list(x.astype(np.float64)), np.asarray(y)
    frame, y = load_from_tsfile(str(path), return_data_type="nested_univ")
    series = [
        np.stack([np.asarray(frame.iloc[i, c], dtype=np.float64) for c in range(frame.shape[1])])
        for i in range(len(frame))
    ]
    return series, np.asarray(y)


def fix_length(series: list[np.ndarray], length: int, mode: str) -> np.ndarray:
    """Stack (C, L_i) arrays into (N, C, length) by linear resampling or zero-padding.

    Padding truncates series longer than `length`; since inputs are z-scored first, the
    padded zeros sit at the channel mean.
    """
    if mode not in RAGGED_MODES:
        raise ValueError(f"mode must be one of {RAGGED_MODES}, got {mode!r}")
    out = np.zeros((len(series), series[0].shape[0], length))  # (N, C, length)
    for i, s in enumerate(series):
        if mode == "pad":
            keep = min(length, s.shape[1])
            out[i, :, :keep] = s[:, :keep]
        else:
            grid = np.linspace(0.0, 1.0, length)
            old = np.linspace(0.0, 1.0, s.shape[1])
            out[i] = np.stack([np.interp(grid, old, channel) for channel in s])
    return out


def _normalise(train: list[np.ndarray], other: list[np.ndarray]) -> tuple[list, list]:
    """z-score each channel with statistics of all training values (any lengths)."""
    pooled = np.concatenate(train, axis=1)  # (C, sum of lengths)
    mean = pooled.mean(axis=1, keepdims=True)  # (C, 1)
    std = np.maximum(pooled.std(axis=1, keepdims=True), 1e-8)
    return [(s - mean) / std for s in train], [(s - mean) / std for s in other]


def _targets(spec: ArchiveSet, y_train: np.ndarray, y_test: np.ndarray) -> list[np.ndarray]:
    if spec.task_type == "regression":
        return [y_train.astype(np.float32), y_test.astype(np.float32)]
    return encode_labels(y_train, y_test)


def build_archive_task(spec: ArchiveSet, scale: float, seed: int) -> Splits:
    """Read, normalise, shape and subsample one archive set."""
    root = sktime_data_dir() / spec.folder
    equal = spec.ragged is None
    x_train, y_train = read_archive_file(root / f"{spec.folder}_TRAIN.ts", equal)
    x_test, y_test = read_archive_file(root / f"{spec.folder}_TEST.ts", equal)
    y_train, y_test = _targets(spec, y_train, y_test)
    x_train, x_test = _normalise(x_train, x_test)

    if equal:
        x_train, x_test = np.stack(x_train), np.stack(x_test)  # (N, C, L)
    else:
        x_train = fix_length(x_train, spec.length, spec.ragged)
        x_test = fix_length(x_test, spec.length, spec.ragged)

    stratify = spec.task_type == "classification"
    minimum = len(np.unique(y_train)) if stratify else 2  # every class at least once
    n_train = scaled(len(x_train), scale, minimum)
    x_train, y_train = subsample(x_train, y_train, n_train, seed, stratify)
    x_test, y_test = subsample(x_test, y_test, scaled(len(x_test), scale), seed + 1)
    return Splits(
        x_train=x_train.astype(np.float32),
        y_train=y_train,
        x_test=x_test.astype(np.float32),
        y_test=y_test,
    )


def load_archive_task(spec: ArchiveSet, scale: float, seed: int) -> Splits:
    """Cached `build_archive_task` (parsing the larger .ts files takes seconds)."""
    if scale > 1:
        logger.info("%s has a fixed size; scale %s keeps all examples", spec.task, scale)
        scale = 1.0
    build = functools.partial(build_archive_task, spec, scale, seed)
    return cached_splits(spec.task, 1, {"scale": scale, "seed": seed}, build)


ARCHIVE_SETS = (
    ArchiveSet(
        task="gunpoint",
        folder="GunPoint",
        description="UCR GunPoint: hand x-position while drawing a gun or pointing;"
        " (N, 1, 150), 2 classes, official split 50 train / 150 test.",
    ),
    ArchiveSet(
        task="arrowhead",
        folder="ArrowHead",
        description="UCR ArrowHead: outlines of projectile points as 1D series; (N, 1, 251),"
        " 3 classes, official split 36 train / 175 test.",
    ),
    ArchiveSet(
        task="italy-power",
        folder="ItalyPowerDemand",
        description="UCR ItalyPowerDemand: daily electricity demand curves, winter vs summer;"
        " (N, 1, 24), 2 classes, official split 67 train / 1029 test.",
    ),
    ArchiveSet(
        task="osuleaf",
        folder="OSULeaf",
        description="UCR OSULeaf: leaf outlines unrolled to 1D series; (N, 1, 427), 6 species,"
        " official split 200 train / 242 test.",
    ),
    ArchiveSet(
        task="basic-motions",
        folder="BasicMotions",
        description="UEA BasicMotions: wrist accelerometer and gyroscope (6 channels);"
        " (N, 6, 100), 4 activities, official split 40 train / 40 test.",
    ),
    ArchiveSet(
        task="japanese-vowels",
        folder="JapaneseVowels",
        description="UEA JapaneseVowels: 12 LPC cepstrum channels of spoken vowels, 7-29 frames"
        " each, zero-padded (after z-scoring) to (N, 12, 32); 9 speakers, 270 train / 370 test.",
        length=32,
        ragged="pad",
    ),
    ArchiveSet(
        task="plaid",
        folder="PLAID",
        description="UCR PLAID: current of household appliances, 100-1344 samples each,"
        " linearly resampled to (N, 1, 512); 11 appliance types, official split 537 / 537.",
        length=512,
        ragged="resample",
    ),
    ArchiveSet(
        task="tecator",
        folder="Tecator",
        description="Monash TSER Tecator: near-infrared absorbance spectra of meat;"
        " (N, 1, 100), target fat content in percent (raw units), official split 172 / 43.",
        task_type="regression",
        metric="mae",
    ),
)


def _register_all() -> None:
    for spec in ARCHIVE_SETS:
        register_task(
            TaskDef(
                name=spec.task,
                description=spec.description,
                family="time series",
                dims=1,
                task_type=spec.task_type,
                metric=spec.metric,
                loader=functools.partial(load_archive_task, spec),
                source=f"sktime bundled data: {spec.folder}",
            )
        )


_register_all()
