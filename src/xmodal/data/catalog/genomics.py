"""Synthetic regulatory genomics: find planted transcription-factor-like motifs in DNA.

A fixed set of motifs, each a position weight matrix (PWM), is drawn once. Every sequence is
uniform random DNA in which each motif is planted with some probability, as a sample from
its PWM at a random place (motifs never overlap). Sequences are one-hot (A, C, G, T channels).
`motifs` asks which motifs a sequence holds (multilabel, like DeepSEA's chromatin marks);
`motif-segments` asks which motif covers each position (dense classification).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from xmodal.data.catalog.common import scaled
from xmodal.data.splits import Splits
from xmodal.data.tasks import TaskDef, register_task

logger = logging.getLogger(__name__)

N_MOTIFS = 8
MOTIF_LENGTHS = (6, 12)  # inclusive range
PWM_CONCENTRATION = 0.3  # Dirichlet parameter: small values give sharp, specific motifs
MOTIF_SEED = 20240  # the motifs are part of the task definition, whatever the data seed
SEQUENCE_LENGTH = 200
PLANT_PROBABILITY = 0.25


@dataclasses.dataclass
class MotifSample:
    """Generated sequences and both kinds of annotation."""

    x: np.ndarray  # (N, 4, L) one-hot DNA
    present: np.ndarray  # (N, K) 1 where motif k was planted
    segments: np.ndarray  # (N, L) 0 for background, k + 1 inside motif k


def motif_pwms() -> list[np.ndarray]:
    """The task's N_MOTIFS position weight matrices, each (4, length)."""
    rng = np.random.default_rng(MOTIF_SEED)
    lengths = rng.integers(MOTIF_LENGTHS[0], MOTIF_LENGTHS[1] + 1, size=N_MOTIFS)
    return [rng.dirichlet([PWM_CONCENTRATION] * 4, size=n).T for n in lengths]


def _plant(
    rng: np.random.Generator, bases: np.ndarray, segments: np.ndarray, k: int, pwm: np.ndarray
) -> bool:
    """Write a sample of `pwm` into free positions of one sequence; False if none fit."""
    width = pwm.shape[1]
    for _ in range(20):  # a few tries at a free window
        start = int(rng.integers(0, len(bases) - width + 1))
        if not segments[start : start + width].any():
            for j in range(width):
                bases[start + j] = rng.choice(4, p=pwm[:, j])
            segments[start : start + width] = k + 1
            return True
    return False


def generate_motifs(n: int, seed: int) -> MotifSample:
    """`n` sequences with seeded random backgrounds and motif placements."""
    rng = np.random.default_rng(seed)
    pwms = motif_pwms()
    bases = rng.integers(0, 4, size=(n, SEQUENCE_LENGTH))  # (N, L)
    segments = np.zeros((n, SEQUENCE_LENGTH), dtype=np.int64)
    present = np.zeros((n, N_MOTIFS), dtype=np.int64)
    for i in range(n):
        for k in rng.permutation(N_MOTIFS):
            if rng.random() < PLANT_PROBABILITY:
                present[i, k] = _plant(rng, bases[i], segments[i], k, pwms[k])
    x = np.eye(4, dtype=np.float32)[bases].transpose(0, 2, 1)  # (N, L, 4) -> (N, 4, L)
    return MotifSample(x=x, present=present, segments=segments)


def _split(x: np.ndarray, y: np.ndarray, n_train: int) -> Splits:
    return Splits(x_train=x[:n_train], y_train=y[:n_train], x_test=x[n_train:], y_test=y[n_train:])


def _counts(scale: float) -> tuple[int, int]:
    return scaled(2000, scale, minimum=10), scaled(500, scale, minimum=10)


def load_motifs(scale: float, seed: int) -> Splits:
    """Which of the 8 motifs each sequence holds; 2000 train / 500 test at scale 1."""
    n_train, n_test = _counts(scale)
    sample = generate_motifs(n_train + n_test, seed)
    return _split(sample.x, sample.present, n_train)


def load_motif_segments(scale: float, seed: int) -> Splits:
    """Per-position motif labels for the same sequences as `motifs`."""
    n_train, n_test = _counts(scale)
    sample = generate_motifs(n_train + n_test, seed)
    return _split(sample.x, sample.segments, n_train)


register_task(
    TaskDef(
        name="motifs",
        description="Random DNA, one-hot (N, 4, 200), with each of 8 fixed PWM motifs"
        " (length 6-12) planted with probability 0.25; target (N, 8) motif presence;"
        " 2000 train / 500 test, generated.",
        family="genomics",
        dims=1,
        task_type="multilabel",
        metric="auroc",
        loader=load_motifs,
        source="generated (PWM motifs in uniform DNA, after DeepSEA-style tasks)",
    )
)
register_task(
    TaskDef(
        name="motif-segments",
        description="The `motifs` sequences (N, 4, 200) with a label per position:"
        " 0 background, k + 1 inside motif k (9 classes), target (N, 200);"
        " 2000 train / 500 test, generated.",
        family="genomics",
        dims=1,
        task_type="dense-classification",
        metric="macro-f1",  # background covers most positions, so plain error says little
        loader=load_motif_segments,
        source="generated (PWM motifs in uniform DNA)",
    )
)
