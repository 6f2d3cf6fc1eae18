"""Synthetic single-lead ECG rhythm classification, after the PhysioNet/CinC 2017 challenge
(normal, atrial fibrillation, other rhythm, noisy) that NAS-Bench-360's ECG task uses.

sktime ships no labelled ECG set (its `mitdb` file is one short annotated excerpt), so
records are generated: each beat is a sum of Gaussian P, Q, R, S and T waves, in the spirit
of McSharry et al. (2003), "A dynamical model for generating synthetic electrocardiogram
signals". Rhythms differ in their beat timing and morphology; every record gets baseline
wander, noise and a random gain.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import numpy as np

from xmodal.data.catalog.common import cached_splits, scaled, zscore_channels
from xmodal.data.splits import Splits
from xmodal.data.tasks import TaskDef, register_task

RATE = 100  # samples per second
LENGTH = 500  # five seconds


@dataclasses.dataclass(frozen=True)
class Wave:
    """One Gaussian bump of a beat: time from the R peak (s), amplitude (mV), width (s)."""

    offset: float
    amplitude: float
    width: float
    follows_rate: bool = False  # T waves move with sqrt(RR), as the QT interval does


NORMAL_BEAT = (
    Wave(-0.20, 0.15, 0.025),  # P
    Wave(-0.035, -0.12, 0.010),  # Q
    Wave(0.0, 1.0, 0.012),  # R
    Wave(0.035, -0.25, 0.010),  # S
    Wave(0.28, 0.30, 0.045, follows_rate=True),  # T
)
NO_P_BEAT = NORMAL_BEAT[1:]
ECTOPIC_BEAT = (  # premature ventricular beat: no P, wide QRS, inverted T
    Wave(-0.06, -0.2, 0.025),
    Wave(0.0, 1.3, 0.035),
    Wave(0.07, -0.5, 0.03),
    Wave(0.32, -0.35, 0.06, follows_rate=True),
)

Beats = list[tuple[float, tuple[Wave, ...]]]  # (R time in s, waves)


def _regular_beats(rng: np.random.Generator, rate_bpm: float, jitter: float) -> Beats:
    rr = 60.0 / rate_bpm
    t, beats = -rng.uniform(0, rr), []
    while t < LENGTH / RATE + 0.5:
        beats.append((t, NORMAL_BEAT))
        t += rr * (1 + jitter * rng.standard_normal())
    return beats


def normal_rhythm(rng: np.random.Generator) -> Beats:
    """Sinus rhythm at 55-100 bpm with small beat-to-beat variation."""
    return _regular_beats(rng, rng.uniform(55, 100), 0.03)


def atrial_fibrillation(rng: np.random.Generator) -> Beats:
    """Irregularly irregular beats at 70-140 bpm without P waves."""
    rr = 60.0 / rng.uniform(70, 140)
    t, beats = -rng.uniform(0, rr), []
    while t < LENGTH / RATE + 0.5:
        beats.append((t, NO_P_BEAT))
        t += rr * rng.uniform(0.65, 1.35)
    return beats


def ectopic_rhythm(rng: np.random.Generator) -> Beats:
    """Sinus rhythm in which beats are premature ventricular ones with probability 0.3."""
    rate_bpm = rng.uniform(55, 95)
    beats = []
    for t, waves in _regular_beats(rng, rate_bpm, 0.03):
        if rng.random() < 0.3:  # arrives 35% of an RR interval early
            beats.append((t - 0.35 * 60.0 / rate_bpm, ECTOPIC_BEAT))
        else:
            beats.append((t, waves))
    return beats


RHYTHMS: dict[str, Callable[[np.random.Generator], Beats]] = {
    "normal": normal_rhythm,
    "atrial-fibrillation": atrial_fibrillation,
    "other": ectopic_rhythm,
    "noisy": normal_rhythm,  # drowned in noise by `record`
}


def _beat_signal(beats: Beats, time: np.ndarray) -> np.ndarray:
    signal = np.zeros_like(time)
    rr = np.median(np.diff([t for t, _ in beats])) if len(beats) > 1 else 0.8
    for t_r, waves in beats:
        for wave in waves:
            shift = wave.offset * np.sqrt(rr) if wave.follows_rate else wave.offset
            signal += wave.amplitude * np.exp(-((time - t_r - shift) ** 2) / (2 * wave.width**2))
    return signal


def record(rng: np.random.Generator, rhythm: str) -> np.ndarray:
    """One (LENGTH,) record of the named rhythm, with wander, noise and gain."""
    time = np.arange(LENGTH) / RATE
    signal = _beat_signal(RHYTHMS[rhythm](rng), time) * rng.uniform(0.6, 1.4)
    wander = rng.uniform(0.05, 0.15) * np.sin(
        2 * np.pi * rng.uniform(0.15, 0.4) * time + 6 * rng.random()
    )
    signal += wander + rng.uniform(0.02, 0.05) * rng.standard_normal(LENGTH)
    if rhythm == "atrial-fibrillation":  # fibrillatory waves at 4-8 Hz
        signal += rng.uniform(0.03, 0.1) * np.sin(2 * np.pi * rng.uniform(4, 8) * time)
    if rhythm == "noisy":  # muscle noise and electrode motion
        signal += rng.uniform(0.3, 0.6) * rng.standard_normal(LENGTH)
        signal += rng.uniform(0.5, 1.0) * np.sin(2 * np.pi * rng.uniform(0.5, 1.5) * time)
    return signal


def generate_ecg(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` records with balanced random labels: (n, 1, LENGTH) and (n,)."""
    rng = np.random.default_rng(seed)
    names = list(RHYTHMS)
    y = rng.integers(0, len(names), size=n)
    x = np.stack([record(rng, names[label]) for label in y])[:, None]  # (N, 1, LENGTH)
    return x.astype(np.float32), y.astype(np.int64)


def build_ecg(n_train: int, n_test: int, seed: int) -> Splits:
    x, y = generate_ecg(n_train + n_test, seed)
    raw = Splits(x_train=x[:n_train], y_train=y[:n_train], x_test=x[n_train:], y_test=y[n_train:])
    return zscore_channels(raw)


def load_ecg(scale: float, seed: int) -> Splits:
    """Synthetic ECG, 1000 train / 300 test records at scale 1."""
    n_train, n_test = scaled(1000, scale, minimum=8), scaled(300, scale, minimum=8)
    build = functools.partial(build_ecg, n_train, n_test, seed)
    return cached_splits("ecg", 1, {"n": [n_train, n_test], "seed": seed}, build)


register_task(
    TaskDef(
        name="ecg",
        description="Synthetic single-lead ECG, 5 s at 100 Hz, (N, 1, 500) z-scored; 4 classes"
        " (normal, atrial fibrillation, ectopic beats, noisy) as in PhysioNet 2017;"
        " Gaussian-wave beat model, 1000 train / 300 test.",
        family="time series",
        dims=1,
        task_type="classification",
        metric="macro-f1",
        loader=load_ecg,
        source="generated (Gaussian P-QRS-T beat model)",
    )
)
