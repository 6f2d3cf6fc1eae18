"""Bach chorales as piano rolls, for next-step polyphonic music prediction.

Chorales come from music21's bundled Bach corpus (offline). Each is sampled once per quarter
note, as in the JSB Chorales benchmark (Boulanger-Lewandowski et al. 2012): a key of the
88-key piano (MIDI 21-108) is on at a step if a note sounds at that beat. Rolls are cut into
fixed windows; the target at step t is the roll at step t + 1. Chorales, not windows, are
split into train and test, so no chorale appears in both.
"""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path

import numpy as np

from xmodal.data.catalog.common import cached_splits, scaled
from xmodal.data.splits import Splits
from xmodal.data.tasks import TaskDef, register_task

logger = logging.getLogger(__name__)

LOWEST_KEY, N_KEYS = 21, 88  # MIDI number of A0; keys up to C8
WINDOW = 32  # steps (quarter notes) per example: eight 4/4 bars
STRIDE = 8
N_CHORALES = 100  # parsed at scale 1 (about 10 s, then cached)
TEST_FRACTION = 0.2
CHORALE_FILE = re.compile(r"^bwv\d+(\.\d+)?\.mxl$")  # skips variants such as bwv18.5-w


def chorale_paths() -> list[Path]:
    """Sorted paths of the four-part chorales in music21's Bach corpus."""
    try:
        from music21 import corpus
    except ImportError as err:  # pragma: no cover - music21 is in the `tasks` extra
        raise ImportError("the chorales task needs music21: pip install 'xmodal[tasks]'") from err
    paths = [Path(p) for p in corpus.getComposer("bach")]
    return sorted(p for p in paths if CHORALE_FILE.match(p.name))


def piano_roll(path: Path) -> np.ndarray | None:
    """A chorale's (88, T) binary roll at quarter-note steps, or None if not four voices."""
    from music21 import converter

    score = converter.parse(str(path))
    if len(score.parts) != 4:
        return None
    n_steps = int(np.ceil(float(score.highestTime)))
    roll = np.zeros((N_KEYS, n_steps), dtype=np.float32)
    for note in score.flatten().notes:
        start, end = float(note.offset), float(note.offset + note.quarterLength)
        steps = np.arange(int(np.ceil(start)), int(np.ceil(end)))  # beats the note sounds on
        for pitch in note.pitches:
            key = pitch.midi - LOWEST_KEY
            if 0 <= key < N_KEYS:
                roll[key, steps[steps < n_steps]] = 1.0
    return roll


def windows(roll: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut an (88, T) roll into (n, 88, WINDOW) inputs and their next-step targets."""
    starts = range(0, roll.shape[1] - WINDOW, STRIDE)  # leaves one step for the last target
    x = [roll[:, s : s + WINDOW] for s in starts]
    y = [roll[:, s + 1 : s + WINDOW + 1] for s in starts]
    empty = np.zeros((0, N_KEYS, WINDOW), dtype=np.float32)
    return (np.stack(x), np.stack(y)) if x else (empty, empty)


def _stack(rolls: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    pairs = [windows(roll) for roll in rolls]
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


def build_chorales(n_chorales: int, seed: int) -> Splits:
    """Parse `n_chorales` seeded-random chorales and split them 80/20 into train/test."""
    paths = chorale_paths()
    order = np.random.default_rng(seed).permutation(len(paths))
    rolls: list[np.ndarray] = []
    for i in order:
        roll = piano_roll(paths[i])
        if roll is not None and roll.shape[1] > WINDOW:
            rolls.append(roll)
        if len(rolls) == n_chorales:
            break
    n_test = max(1, int(round(TEST_FRACTION * len(rolls))))
    x_train, y_train = _stack(rolls[n_test:])  # (N, 88, WINDOW) each
    x_test, y_test = _stack(rolls[:n_test])
    y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)  # 0/1 labels
    logger.info("chorales: %d chorales, %d/%d windows", len(rolls), len(x_train), len(x_test))
    return Splits(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def load_chorales(scale: float, seed: int) -> Splits:
    """Piano-roll windows of N_CHORALES * scale chorales (capped at the corpus size)."""
    n_chorales = scaled(N_CHORALES, scale, minimum=3)
    build = functools.partial(build_chorales, n_chorales, seed)
    params = {"n": n_chorales, "seed": seed, "window": WINDOW, "stride": STRIDE}
    return cached_splits("chorales", 1, params, build)


register_task(
    TaskDef(
        name="chorales",
        description="Bach chorales (music21 corpus) as 88-key piano rolls at quarter-note"
        " steps; input a 32-step window (N, 88, 32) in {0, 1}, target the next step's notes"
        " at every position (N, 88, 32); 100 chorales split 80/20 by chorale, stride 8.",
        family="music",
        dims=1,
        task_type="dense-multilabel",
        metric="nll",
        loader=load_chorales,
        source="music21.corpus (Bach chorales), after JSB Chorales",
    )
)
